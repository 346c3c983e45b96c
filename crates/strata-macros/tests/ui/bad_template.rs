use strata::cached;

#[cached(namespace = "user", key = "user::{id")]
fn unclosed(id: u64) -> u64 {
    id
}

#[cached(namespace = "user", key = "user::}{id}")]
fn unmatched(id: u64) -> u64 {
    id
}

#[cached(namespace = "user", key = "user::{}")]
fn empty(id: u64) -> u64 {
    id
}

#[cached(namespace = "user", key = "user::{id + 1}")]
fn expression(id: u64) -> u64 {
    id
}

fn main() {}
