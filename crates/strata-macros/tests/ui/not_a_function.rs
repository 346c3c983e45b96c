use strata::{cached, invalidates};

#[cached(namespace = "user", key = "user::{id}")]
struct User {
    id: u64,
}

#[invalidates(namespace = "user", keys = ["user"])]
const LIMIT: u64 = 10;

trait Users {
    #[cached(namespace = "user", key = "user::{id}")]
    fn get_user(&self, id: u64) -> u64;
}

fn main() {}
