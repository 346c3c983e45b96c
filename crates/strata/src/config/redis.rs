//! The shared tier's settings, the `[redis]` section ([`RedisConfig`]), and how its raw form
//! is checked. The tier itself is the `strata-redis` crate; this crate only carries the
//! settings, so the core stays free of a Redis client.

use std::time::Duration;

use serde::Deserialize;

use super::admin::Secret;
use super::raw::{count, duration, flag, or_base, Raw};
use super::ConfigError;

/// Redis as the shared second tier of a fleet of instances, the `[redis]` section. With no
/// `[redis]` section nothing is shared and nothing changes. Every namespace uses the tier
/// unless it says `shared = false` (or `[defaults]` does, and it says `shared = true`).
///
/// ```toml
/// [redis]
/// url = "redis://127.0.0.1:6379/0"   # redis:// or rediss://, with a database number
/// password = "…"                     # or in the URL; STRATA_REDIS__PASSWORD keeps it out of files
/// prefix = "strata:"                 # every key strata writes starts with it
/// timeout = "50ms"                   # one Redis call; slower counts as a failure
/// connect_timeout = "1s"
/// required = false                   # true: /health is down (503) while the link is
/// partitions = 16                    # streams of the invalidation log
/// log_max_len = 100000               # entries each partition keeps (trimmed approximately)
/// queue_max = 10000                  # writes kept while Redis is away
/// ```
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct RedisConfig {
    /// Where Redis is: `redis://[user[:password]@]host[:port][/db]` (or `rediss://`). A
    /// password in the URL is shown as `***` wherever the configuration is shown.
    #[serde(serialize_with = "redacted_url")]
    pub url: String,
    /// The user to authenticate as (Redis 6 ACLs), when not in the URL.
    pub username: Option<String>,
    /// The password, when not in the URL.
    pub password: Option<Secret>,
    /// What every key strata writes to Redis starts with, so several fleets (or other
    /// applications) can share one Redis.
    pub prefix: String,
    /// How long one Redis call may take before it counts as failed: a read then falls through
    /// to the origin, a write waits in the queue (default 50 ms).
    #[serde(serialize_with = "super::human")]
    pub timeout: Duration,
    /// How long connecting may take (default 1 s). The instance starts without Redis and
    /// connects when it can.
    #[serde(serialize_with = "super::human")]
    pub connect_timeout: Duration,
    /// Whether the instance is unhealthy without Redis: `/health` answers `down` (503) while
    /// the link is down when set, `degraded` otherwise (default false).
    pub required: bool,
    /// How many streams the invalidation log is split over (default 16); a key always goes
    /// to the same one. On Redis Cluster each lives in its own hash slot.
    pub partitions: u64,
    /// About how many entries each partition of the log keeps (default 100,000). An instance
    /// cut off for longer than the log reaches back marks what it holds unverified.
    pub log_max_len: u64,
    /// How many writes and invalidations an instance keeps while Redis is away, the latest
    /// per key (default 10,000). Past it, the instance tells every instance to treat what
    /// it holds as unverified when Redis comes back, rather than drop anything silently.
    pub queue_max: u64,
    /// After this many Redis calls fail in a row, calls fail at once for `breaker_cooldown`
    /// rather than each waiting its timeout (default 5).
    pub breaker_failures: u64,
    /// How long the breaker stays open before one call tries again (default 1 s).
    #[serde(serialize_with = "super::human")]
    pub breaker_cooldown: Duration,
    /// How long a deletion is remembered in Redis, so a load that read the origin before the
    /// deletion cannot write the old value back after it (default 10 s).
    #[serde(serialize_with = "super::human")]
    pub tombstone_ttl: Duration,
}

/// As derived, with the URL's password shown as `***` (the configuration is logged).
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("required", &self.required)
            .field("partitions", &self.partitions)
            .field("log_max_len", &self.log_max_len)
            .field("queue_max", &self.queue_max)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            username: None,
            password: None,
            prefix: "strata:".into(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            required: false,
            partitions: 16,
            log_max_len: 100_000,
            queue_max: 10_000,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
            tombstone_ttl: Duration::from_secs(10),
        }
    }
}

/// The most partitions the log may have.
pub const MAX_PARTITIONS: u64 = 1024;

/// A URL as shown: the password replaced by `***`.
fn redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

/// `url` with any password in it replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The `[redis]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    prefix: Option<String>,
    timeout: Option<Raw>,
    connect_timeout: Option<Raw>,
    required: Option<Raw>,
    partitions: Option<Raw>,
    log_max_len: Option<Raw>,
    queue_max: Option<Raw>,
    breaker_failures: Option<Raw>,
    breaker_cooldown: Option<Raw>,
    tombstone_ttl: Option<Raw>,
}

impl RawRedis {
    /// Parses every setting, each one falling back to its default when absent.
    pub(super) fn resolve(&self) -> Result<RedisConfig, ConfigError> {
        let base = RedisConfig::default();
        let invalid = |field: &str, value: &str, reason: &str| ConfigError::Invalid {
            field: format!("redis.{field}"),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let url = self.url.clone().unwrap_or(base.url);
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(
                "url",
                &redact_url(&url),
                "write it like redis://host:6379/0 (or rediss:// for TLS)",
            ));
        }
        let prefix = self.prefix.clone().unwrap_or(base.prefix);
        if prefix.contains(['{', '}']) {
            return Err(invalid(
                "prefix",
                &prefix,
                "braces are Redis Cluster's hash tags, which strata places itself",
            ));
        }
        let partitions = or_base(
            "redis",
            &self.partitions,
            "partitions",
            count,
            base.partitions,
        )?;
        if partitions > MAX_PARTITIONS {
            return Err(invalid(
                "partitions",
                &partitions.to_string(),
                &format!("at most {MAX_PARTITIONS}"),
            ));
        }
        Ok(RedisConfig {
            url,
            username: self.username.clone(),
            password: self
                .password
                .clone()
                .filter(|p| !p.is_empty())
                .map(Secret::new),
            prefix,
            timeout: or_base("redis", &self.timeout, "timeout", duration, base.timeout)?,
            connect_timeout: or_base(
                "redis",
                &self.connect_timeout,
                "connect_timeout",
                duration,
                base.connect_timeout,
            )?,
            required: or_base("redis", &self.required, "required", flag, base.required)?,
            partitions,
            log_max_len: or_base(
                "redis",
                &self.log_max_len,
                "log_max_len",
                count,
                base.log_max_len,
            )?,
            queue_max: or_base("redis", &self.queue_max, "queue_max", count, base.queue_max)?,
            breaker_failures: or_base(
                "redis",
                &self.breaker_failures,
                "breaker_failures",
                count,
                base.breaker_failures,
            )?,
            breaker_cooldown: or_base(
                "redis",
                &self.breaker_cooldown,
                "breaker_cooldown",
                duration,
                base.breaker_cooldown,
            )?,
            tombstone_ttl: or_base(
                "redis",
                &self.tombstone_ttl,
                "tombstone_ttl",
                duration,
                base.tombstone_ttl,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            redact_url("redis://app:hunter2@cache:6379/1"),
            "redis://app:***@cache:6379/1"
        );
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(redact_url("redis://app@cache"), "redis://app@cache");
        let config = RedisConfig {
            url: "redis://app:hunter2@cache:6379/1".into(),
            ..RedisConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://app:***@cache:6379/1"), "{shown}");
    }
}
