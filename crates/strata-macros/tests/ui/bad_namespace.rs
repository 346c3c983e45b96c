use strata::{cached, invalidates};

#[cached(namespace = "User Profiles", key = "user::{id}")]
fn get_user(id: u64) -> u64 {
    id
}

#[invalidates(namespace = "", keys = ["user::{id}"])]
fn rename_user(id: u64) {
    let _ = id;
}

fn main() {}
