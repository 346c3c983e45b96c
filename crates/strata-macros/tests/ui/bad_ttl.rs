use strata::cached;

#[cached(namespace = "user", key = "user::{id}", ttl = "10 minutez")]
fn get_user(id: u64) -> u64 {
    id
}

#[cached(namespace = "user", key = "user::{id}", ttl = "0s")]
fn zero(id: u64) -> u64 {
    id
}

#[cached(namespace = "user", key = "user::{id}", ttl = 600)]
fn number(id: u64) -> u64 {
    id
}

fn main() {}
