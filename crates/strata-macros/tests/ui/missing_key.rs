use strata::cached;

#[cached(namespace = "user")]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
