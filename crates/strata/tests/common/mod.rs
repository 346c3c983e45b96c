//! Helpers shared by the integration tests. Each test crate uses only some of them.
#![allow(dead_code)]

pub mod cache;
pub mod store;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// splitmix64: a small deterministic generator, enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A `redis-server` of the test's own on a free loopback port, stopped when dropped. Tests use
/// it as the reference for Redis semantics (and, later, to kill it).
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts one and waits until it answers PING (up to 10 s).
    ///
    /// # Panics
    /// If `redis-server` is not installed (`apt-get install redis-server`; `.ci/run` installs
    /// it) or does not come up.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (apt-get install redis-server)")
            });
        let server = Self { child, port };
        let started = Instant::now();
        loop {
            if let Ok(mut con) = server.connection() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return server;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ConfigError::Invalid` that `toml` loads to, checked to name `field` and `value` (also
/// in its message); returns its reason.
pub fn invalid_config(toml: &str, field: &str, value: &str) -> String {
    match strata::config::Config::from_sources(Some(toml), []) {
        Err(err @ strata::config::ConfigError::Invalid { .. }) => {
            let strata::config::ConfigError::Invalid {
                field: f,
                value: v,
                reason,
            } = &err
            else {
                unreachable!()
            };
            assert_eq!((f.as_str(), v.as_str()), (field, value), "{reason}");
            assert!(err.to_string().contains(field), "{err}");
            reason.clone()
        }
        other => panic!("expected an invalid {field}, got {other:?}"),
    }
}
