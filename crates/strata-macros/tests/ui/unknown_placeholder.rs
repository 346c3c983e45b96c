use strata::{cached, invalidates};

struct Repo;

impl Repo {
    #[cached(namespace = "user", key = "user::{user_id}")]
    fn get_user(&self, id: u64, region: &str) -> String {
        format!("user {id} in {region}")
    }
}

#[invalidates(namespace = "user", keys = ["user::{id}"], tags = ["user:{who}"])]
fn rename_user(id: u64) {
    let _ = id;
}

#[cached(namespace = "user", key = "user::{id}")]
fn everyone() -> Vec<String> {
    Vec::new()
}

fn main() {}
