//! The admin API's settings: its tokens ([`Secret`]), its HTTP listener and request limits
//! ([`AdminConfig`], the `[admin]` section) and when it raises alerts ([`AlertsConfig`], the
//! `[alerts]` section), with how their raw forms are checked.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::raw::{count, duration, or_base, ratio, size, Raw};
use super::ConfigError;

/// A token or password: compared by the admin API, never shown by `Debug` or serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for comparing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// An admin token as written (`admin_token`, `admin_read_token`): absent, or a secret. An
/// empty one is refused, since it would let anyone in.
pub(super) fn token(field: &str, text: Option<String>) -> Result<Option<Secret>, ConfigError> {
    match text {
        Some(text) if text.trim().is_empty() => Err(ConfigError::Invalid {
            field: field.into(),
            value: String::new(),
            reason: "an empty token would let anyone in; leave it out instead".into(),
        }),
        other => Ok(other.map(Secret)),
    }
}

/// The admin API's HTTP limits, the `[admin]` section: what one client of the admin port can
/// hold. The first three bound the listener (`strata_admin::serve`), the last two every
/// request the router reads (so a service that mounts the router keeps them).
///
/// ```toml
/// [admin]
/// max_connections = 128     # more are accepted and closed at once
/// idle_timeout = "60s"      # a connection waiting this long for a request is closed
/// header_timeout = "10s"    # a request's head must arrive this soon after its first byte
/// body_timeout = "10s"      # and its body this soon after its head
/// max_body = "64KiB"        # a larger body gets 413
/// ```
///
/// What the admin port holds in memory is bounded by `max_connections` × (`max_body` + the
/// 16 KiB a request head may take): 10 MiB with the defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminConfig {
    /// The most connections open at once; each holds a file descriptor, which the Redis port
    /// needs too (default 128: scrapers, probes and the CLI use a handful).
    pub max_connections: u64,
    /// How long a connection may wait for a request, once accepted or once its last
    /// response is written, before it is closed (default 60 s, as long as a typical scrape
    /// interval, so a scraper's kept-alive connection is reused).
    #[serde(serialize_with = "super::human")]
    pub idle_timeout: Duration,
    /// How long a request's head (its line and headers) may take from its first byte
    /// (default 10 s: a slow sender cannot hold a connection open byte by byte).
    #[serde(serialize_with = "super::human")]
    pub header_timeout: Duration,
    /// How long a request's body may take once its head is read; 408 after it (default
    /// 10 s).
    #[serde(serialize_with = "super::human")]
    pub body_timeout: Duration,
    /// The largest request body, in bytes; a larger one gets 413 (default 64 KiB: the
    /// API's bodies are a few hundred bytes of JSON).
    pub max_body: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            max_connections: 128,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body: 64 << 10,
        }
    }
}

/// `[admin]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    max_connections: Option<Raw>,
    idle_timeout: Option<Raw>,
    header_timeout: Option<Raw>,
    body_timeout: Option<Raw>,
    max_body: Option<Raw>,
}

impl RawAdmin {
    /// Parses every limit, each one falling back to its default when absent.
    pub(super) fn resolve(&self) -> Result<AdminConfig, ConfigError> {
        let base = AdminConfig::default();
        Ok(AdminConfig {
            max_connections: or_base(
                "admin",
                &self.max_connections,
                "max_connections",
                count,
                base.max_connections,
            )?,
            idle_timeout: or_base(
                "admin",
                &self.idle_timeout,
                "idle_timeout",
                duration,
                base.idle_timeout,
            )?,
            header_timeout: or_base(
                "admin",
                &self.header_timeout,
                "header_timeout",
                duration,
                base.header_timeout,
            )?,
            body_timeout: or_base(
                "admin",
                &self.body_timeout,
                "body_timeout",
                duration,
                base.body_timeout,
            )?,
            max_body: or_base("admin", &self.max_body, "max_body", size, base.max_body)?,
        })
    }
}

/// When the admin API raises alerts. Each threshold is off unless set. An alert fires after
/// `fire_after` evaluations in a row find its condition, and clears after `clear_after` in a
/// row do not, so a value hovering at the threshold does not flap.
///
/// ```toml
/// [alerts]
/// every = "10s"                  # how often the conditions are evaluated
/// hit_ratio_below = 0.5          # per namespace, over the last interval's reads
/// memory_above = 0.9             # bytes held, as a share of the namespace's max_bytes
/// load_p99_above = "500ms"       # per namespace, over the last interval's loads
/// load_error_rate_above = 0.05   # failed loads, as a share of the interval's loads
/// min_samples = 100              # reads (or loads) an interval needs to judge a ratio
/// fire_after = 3
/// clear_after = 3
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertsConfig {
    /// How often the conditions are evaluated (default 10 s).
    #[serde(serialize_with = "super::human")]
    pub every: Duration,
    /// Fire when a namespace's hit ratio over an interval is below this (0 to 1).
    pub hit_ratio_below: Option<f64>,
    /// Fire when a namespace holds more than this share of its `max_bytes` (0 to 1).
    pub memory_above: Option<f64>,
    /// Fire when a namespace's p99 load latency over an interval is above this.
    #[serde(serialize_with = "super::human_opt")]
    pub load_p99_above: Option<Duration>,
    /// Fire when the share of a namespace's loads that failed over an interval is above
    /// this (0 to 1).
    pub load_error_rate_above: Option<f64>,
    /// Reads (for the hit ratio) or loads (for latency and errors) an interval needs before
    /// its ratio is judged (default 100).
    pub min_samples: u64,
    /// Evaluations in a row that must find a condition before its alert fires (default 3).
    pub fire_after: u32,
    /// Evaluations in a row that must not find it before the alert clears (default 3).
    pub clear_after: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(10),
            hit_ratio_below: None,
            memory_above: None,
            load_p99_above: None,
            load_error_rate_above: None,
            min_samples: 100,
            fire_after: 3,
            clear_after: 3,
        }
    }
}

/// `[alerts]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    every: Option<Raw>,
    hit_ratio_below: Option<Raw>,
    memory_above: Option<Raw>,
    load_p99_above: Option<Raw>,
    load_error_rate_above: Option<Raw>,
    min_samples: Option<Raw>,
    fire_after: Option<Raw>,
    clear_after: Option<Raw>,
}

impl RawAlerts {
    /// Parses every threshold, each one falling back to its default when absent.
    pub(super) fn resolve(&self) -> Result<AlertsConfig, ConfigError> {
        let base = AlertsConfig::default();
        fn field(name: &str) -> String {
            format!("alerts.{name}")
        }
        fn opt<T>(
            raw: &Option<Raw>,
            name: &str,
            parse: fn(&str, &Raw) -> Result<T, ConfigError>,
        ) -> Result<Option<T>, ConfigError> {
            raw.as_ref().map(|raw| parse(&field(name), raw)).transpose()
        }
        let whole = |raw: &Option<Raw>, name: &str, base: u64| -> Result<u64, ConfigError> {
            Ok(opt(raw, name, count)?.unwrap_or(base))
        };
        let times = |raw: &Option<Raw>, name: &str, base: u32| -> Result<u32, ConfigError> {
            let n = whole(raw, name, u64::from(base))?;
            u32::try_from(n).map_err(|_| ConfigError::Invalid {
                field: field(name),
                value: n.to_string(),
                reason: "too large".into(),
            })
        };
        Ok(AlertsConfig {
            every: opt(&self.every, "every", duration)?.unwrap_or(base.every),
            hit_ratio_below: opt(&self.hit_ratio_below, "hit_ratio_below", ratio)?,
            memory_above: opt(&self.memory_above, "memory_above", ratio)?,
            load_p99_above: opt(&self.load_p99_above, "load_p99_above", duration)?,
            load_error_rate_above: opt(
                &self.load_error_rate_above,
                "load_error_rate_above",
                ratio,
            )?,
            min_samples: whole(&self.min_samples, "min_samples", base.min_samples)?,
            fire_after: times(&self.fire_after, "fire_after", base.fire_after)?,
            clear_after: times(&self.clear_after, "clear_after", base.clear_after)?,
        })
    }
}
