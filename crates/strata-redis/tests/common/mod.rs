//! What the fleet tests run on: real `redis-server` processes on free ports (killed with
//! SIGKILL when asked, restarted empty on the same port), a TCP proxy that cuts one
//! instance's link while the others keep theirs, and instances (stores with a tier) to
//! run against them.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::config::Config;
use strata::store::{Namespace, Store};
use strata_redis::{Json, Tier};
use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` of the test's own, without persistence, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Extra `redis-server` arguments (`--requirepass`, say).
    args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self::not_started();
        server.restart();
        server
    }

    /// A port for a server that is not running yet (start it with `restart`).
    pub fn not_started() -> Self {
        Self {
            port: free_port(),
            child: None,
            args: Vec::new(),
        }
    }

    /// A server that requires `password`.
    pub fn with_password(password: &str) -> Self {
        let mut server = Self::not_started();
        server.args = vec!["--requirepass".into(), password.into()];
        server.restart();
        server
    }

    /// The URL to give `[redis] url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (see .ci/run)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Up once it answers, even if only to say a password is needed.
            if let Ok(mut conn) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                match redis::cmd("PING").query::<String>(&mut conn) {
                    Ok(_) => return,
                    Err(e) if e.code() == Some("NOAUTH") => return,
                    Err(_) => {}
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain connection, for looking at what the tier wrote.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test's redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a Redis: `cut` closes every connection through it and refuses
/// new ones until `restore`.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    /// Bumped by `cut`: connections of an older generation close.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (flag, gen) = (Arc::clone(&open), Arc::clone(&generation));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let born = gen.load(Ordering::SeqCst);
                let gen = Arc::clone(&gen);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let cut = async {
                        while gen.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Self {
            port,
            open,
            generation,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// One instance: a store with the tier, and its `user` namespace (JSON strings).
pub struct Instance {
    pub store: Store,
    pub tier: Tier,
    pub users: Namespace<String>,
}

impl Instance {
    /// An instance on Redis at `url`, with `extra` TOML appended to the configuration
    /// (`[redis]` settings go in `redis_extra`).
    pub fn start(url: &str, redis_extra: &str, extra: &str) -> Self {
        let toml = format!(
            "[redis]\nurl = {url:?}\ntimeout = \"200ms\"\nbreaker_cooldown = \"100ms\"\n{redis_extra}\n\
             [namespaces.user]\nttl = \"10m\"\nmax_stale = \"1h\"\n{extra}"
        );
        let config = Config::from_sources(Some(&toml), []).expect("a valid test configuration");
        let (store, tier) = Tier::start(Store::builder(config)).expect("the tier starts");
        let users = tier.namespace::<String, _>("user", Json).unwrap();
        Self { store, tier, users }
    }
}

/// An origin that counts its calls and answers `value`.
pub fn origin(
    calls: &Arc<std::sync::atomic::AtomicUsize>,
    value: &str,
) -> impl FnOnce(strata::Key) -> std::future::Ready<Result<String, std::io::Error>> + Send + 'static
{
    let calls = Arc::clone(calls);
    let value = value.to_owned();
    move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(value))
    }
}

/// Waits up to `limit` for `done`, checking every few milliseconds; false if it never was.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done()
}

/// How long propagation may take in these tests: far above the bound measured by the
/// benchmark, so a loaded CI machine does not fail them.
pub const PROPAGATION: Duration = Duration::from_secs(5);
