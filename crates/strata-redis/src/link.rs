//! The link to Redis: one multiplexed connection (reconnected by the `redis` crate's
//! connection manager), every call under the configured timeout, and a circuit breaker so
//! that, once Redis is known to be away, calls fail at once instead of each waiting out its
//! timeout.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use strata::config::{redact_url, RedisConfig};
use thiserror::Error;

/// Why a Redis call gave no answer.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The breaker is open: recent calls failed, so this one was not tried.
    #[error("the Redis link is down (breaker open)")]
    BreakerOpen,
    /// The call took longer than `redis.timeout`.
    #[error(
        "Redis did not answer within {0:?} (redis.timeout, or redis.connect_timeout for writes)"
    )]
    TimedOut(Duration),
    /// The connection failed, or Redis answered with an error.
    #[error("Redis: {0}")]
    Redis(#[from] RedisError),
}

impl LinkError {
    /// What an operator should read: a refused password names the settings to check.
    pub fn explain(&self) -> String {
        match self {
            LinkError::Redis(e) if is_refused_credentials(e) => format!(
                "Redis refused the credentials: check redis.password and redis.username \
                 (or the user and password in redis.url): {e}"
            ),
            other => other.to_string(),
        }
    }

    /// Whether the link itself failed (rather than Redis refusing one command): what opens
    /// the breaker and keeps a write queued.
    pub fn is_link_failure(&self) -> bool {
        match self {
            LinkError::BreakerOpen | LinkError::TimedOut(_) => true,
            LinkError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
            }
        }
    }
}

/// Whether Redis refused the username or password.
fn is_refused_credentials(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// The Redis client for a `[redis]` section, with the credentials set apart applied. The
/// error names the setting.
pub(crate) fn client(config: &RedisConfig) -> Result<Client, RedisError> {
    let mut info: redis::ConnectionInfo = config.url.as_str().into_connection_info()?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(user) = &config.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &config.password {
        redis_info = redis_info.set_password(password.expose());
    }
    info = info.set_redis_settings(redis_info);
    Client::open(info)
}

use redis::IntoConnectionInfo;

/// The shared connection, its timeout and its breaker.
pub(crate) struct Link {
    conn: ConnectionManager,
    timeout: Duration,
    /// The limit of a patient call (`redis.connect_timeout`, at least `redis.timeout`).
    patience: Duration,
    breaker: Breaker,
    up: AtomicBool,
    url: String,
    /// Why the link last failed, for `/health`.
    last_error: parking_lot::Mutex<Option<String>>,
}

impl Link {
    /// A link that connects on first use (and reconnects after a failure), so an instance
    /// starts whether or not Redis is there. Needs a tokio runtime.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.timeout.max(config.connect_timeout)))
            .set_number_of_retries(1)
            .set_max_delay(config.breaker_cooldown);
        let conn = ConnectionManager::new_lazy_with_config(client(config)?, manager)?;
        Ok(Self {
            conn,
            timeout: config.timeout,
            patience: config.connect_timeout.max(config.timeout),
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            up: AtomicBool::new(false),
            url: redact_url(&config.url),
            last_error: parking_lot::Mutex::new(None),
        })
    }

    /// Runs `call` on the connection, under `redis.timeout` and the breaker. A call that
    /// finds the connection dropped (Redis restarted, a proxy cut it) is made once more on
    /// the connection the manager opens in its place, within the same timeout: the first
    /// call after a reconnect is otherwise the one that discovers the old connection is dead.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, LinkError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.call_within(self.timeout, call).await
    }

    /// [`call`](Self::call) with a time limit of its own: for what has nothing better to do
    /// than wait (the writer's batches; a read with no origin to fall back on), up to
    /// `redis.connect_timeout` rather than `redis.timeout`.
    pub(crate) async fn call_patiently<T, F, Fut>(&self, call: F) -> Result<T, LinkError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.call_within(self.patience, call).await
    }

    async fn call_within<T, F, Fut>(&self, limit: Duration, call: F) -> Result<T, LinkError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allows() {
            return Err(LinkError::BreakerOpen);
        }
        let attempts = async {
            match call(self.conn.clone()).await {
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                    call(self.conn.clone()).await
                }
                other => other,
            }
        };
        let result = match tokio::time::timeout(limit, attempts).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(LinkError::Redis(e)),
            Err(_) => Err(LinkError::TimedOut(limit)),
        };
        match &result {
            Err(e) if e.is_link_failure() => self.failed(e),
            _ => {
                self.breaker.succeeded();
                self.up.store(true, Ordering::Relaxed);
            }
        }
        result
    }

    fn failed(&self, error: &LinkError) {
        self.breaker.failed();
        if matches!(error, LinkError::BreakerOpen) {
            return;
        }
        self.down(error.explain());
    }

    /// Records that the link is down, and why; logs it once per outage (and again if the
    /// reason changes).
    fn down(&self, why: String) {
        let was_up = self.up.swap(false, Ordering::Relaxed);
        let mut last = self.last_error.lock();
        if was_up || last.as_deref() != Some(why.as_str()) {
            tracing::warn!(url = %self.url, error = %why, "the Redis link is down; serving from this instance");
        }
        *last = Some(why);
    }

    /// Why the link last failed, while it is down.
    pub(crate) fn last_error(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        self.last_error.lock().clone()
    }

    /// Whether the last call reached Redis.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records what the log tailer (on a connection of its own) learnt of the link: up, or
    /// down with the error.
    pub(crate) fn tailer_saw(&self, outcome: Result<(), &RedisError>) {
        match outcome {
            Ok(()) => {
                self.breaker.succeeded();
                self.up.store(true, Ordering::Relaxed);
            }
            Err(e) => self.down(LinkError::Redis(e.clone()).explain()),
        }
    }
}

/// Opens after `threshold` failures in a row; lets one call through every `cooldown` while
/// open; closes on a success.
struct Breaker {
    threshold: u64,
    cooldown: Duration,
    failures: AtomicU64,
    /// Nanoseconds since `epoch` before which calls are refused.
    open_until: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    fn new(threshold: u64, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn allows(&self) -> bool {
        if self.failures.load(Ordering::Relaxed) < self.threshold {
            return true;
        }
        let now = self.now();
        let until = self.open_until.load(Ordering::Relaxed);
        // Half open: the first caller past the cooldown tries; the others wait another one.
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + self.cooldown.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn failed(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= self.threshold {
            self.open_until.store(
                self.now() + self.cooldown.as_nanos() as u64,
                Ordering::Relaxed,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_lets_one_try_per_cooldown() {
        let breaker = Breaker::new(3, Duration::from_secs(3600));
        breaker.failed();
        breaker.failed();
        assert!(breaker.allows());
        breaker.succeeded();
        breaker.failed();
        breaker.failed();
        assert!(
            breaker.allows(),
            "a success in between starts the count again"
        );
        breaker.failed();
        assert!(!breaker.allows());
        breaker.open_until.store(0, Ordering::Relaxed); // the cooldown passed
        assert!(breaker.allows(), "one call tries");
        assert!(!breaker.allows(), "and only one");
        breaker.succeeded();
        assert!(breaker.allows());
    }
}
