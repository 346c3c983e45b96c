use strata::cached;

#[cached(namespace = "user", key = "user::{id}")]
fn warm_user(id: u64) {
    let _ = id;
}

#[cached(namespace = "user", key = "user::{id}")]
async fn warm_user_async(id: u64) -> () {
    let _ = id;
}

fn main() {}
