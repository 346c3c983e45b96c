//! The admin API's settings: its tokens ([`Secret`]) and when it raises alerts
//! ([`AlertsConfig`], the `[alerts]` section), with how their raw forms are checked.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::raw::{count, duration, ratio, Raw};
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
