use strata::cached;

#[cached(namespace = "user", key = "user::{id}", cache_errors)]
fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {}
