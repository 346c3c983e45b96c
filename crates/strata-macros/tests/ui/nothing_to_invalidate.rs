use strata::invalidates;

#[invalidates(namespace = "user")]
fn rename_user(id: u64) {
    let _ = id;
}

#[invalidates(namespace = "user", keys = [], tags = [])]
fn rename_again(id: u64) {
    let _ = id;
}

fn main() {}
