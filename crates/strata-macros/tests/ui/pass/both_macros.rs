//! Both macros on free functions and methods, sync and async, compile and run.

use std::sync::atomic::{AtomicUsize, Ordering};

use strata::{cached, invalidates};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone)]
struct Lookup(String);

#[cached(namespace = "user", ttl = "1h 30m", key = "user::{id}::{{raw}}")]
pub fn get_user(id: u64) -> Result<String, Lookup> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        return Err(Lookup("no user 0".into()));
    }
    Ok(format!("user {id}"))
}

struct Point {
    x: i32,
    y: i32,
}

struct Maps {
    region: String,
}

impl Maps {
    #[cached(namespace = "map-tiles_2", key = "{self.region}::{at.x}::{at.y}")]
    async fn tile(&self, at: &Point) -> Vec<u8> {
        vec![at.x as u8, at.y as u8]
    }

    #[invalidates(namespace = "map-tiles_2", patterns = ["{self.region}::*"], tags = ["map"])]
    async fn redraw(&mut self, (x, y): (i32, i32)) -> Result<(), std::io::Error> {
        let _ = (x, y);
        Ok(())
    }
}

#[cached(namespace = "user", key = "all")]
fn all_users() -> std::io::Result<Vec<String>> {
    Ok(Vec::new())
}

#[cached(namespace = "user", key = "lookup::{name}", cache_errors)]
fn lookup(name: &str) -> Result<u64, Lookup> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Err(Lookup(format!("no {name}")))
}

fn main() {
    assert_eq!(get_user(1).unwrap(), "user 1");
    assert_eq!(get_user(1).unwrap(), "user 1");
    assert!(get_user(0).is_err());
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    assert!(all_users().unwrap().is_empty());
    assert!(lookup("ada").is_err());
    assert!(lookup("ada").is_err());
    assert_eq!(RUNS.load(Ordering::SeqCst), 3);
    let maps = Maps { region: "eu".into() };
    let _ = maps.tile(&Point { x: 1, y: 2 });
    let _ = Maps::redraw;
}
