use strata::{cached, invalidates};

#[cached(namespace = "user", key = "user::{id}", time_to_live = "10m")]
fn get_user(id: u64) -> u64 {
    id
}

#[invalidates(namespace = "user", key = ["user::{id}"])]
fn rename_user(id: u64) {
    let _ = id;
}

#[cached(namespace = "user", key = "user::{id}", key = "u::{id}")]
fn twice(id: u64) -> u64 {
    id
}

#[invalidates(keys = "user::{id}")]
fn not_a_list(id: u64) {
    let _ = id;
}

fn main() {}
