//! The configuration as written, before it is checked: [`Raw`] values (an integer, a float
//! or text, as TOML or the environment gave them), the sections that hold them, and the field
//! parsers that turn them into durations, sizes, counts and shares, each error naming the
//! field and the value.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use super::admin::{self, RawAdmin, RawAlerts};
use super::events::{EventRule, Rules};
use super::redis::RawRedis;
use super::server::RawServer;
use super::{Config, ConfigError, NamespaceConfig, DEFAULT_MAX_BYTES, DEFAULT_NAMESPACE};

/// A value as written: TOML may give an integer or a string, the environment always a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Raw {
    Bool(bool),
    Int(u64),
    Float(f64),
    Text(String),
}

impl Raw {
    /// The value as it was written.
    pub(super) fn text(&self) -> String {
        match self {
            Raw::Bool(b) => b.to_string(),
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Text(s) => s.clone(),
        }
    }
}

/// The whole file (and environment) as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    max_bytes: Option<Raw>,
    #[serde(default)]
    defaults: RawNamespace,
    #[serde(default)]
    namespaces: BTreeMap<String, RawNamespace>,
    #[serde(default)]
    events: BTreeMap<String, EventRule>,
    admin_token: Option<String>,
    admin_read_token: Option<String>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    server: RawServer,
    redis: Option<RawRedis>,
}

impl RawConfig {
    /// Parses and checks every section, then the event rules and the budget they share.
    pub(super) fn resolve(self) -> Result<Config, ConfigError> {
        let max_bytes = match &self.max_bytes {
            Some(raw) => size("max_bytes", raw)?,
            None => DEFAULT_MAX_BYTES,
        };
        let defaults = self
            .defaults
            .resolve("defaults", &NamespaceConfig::default())?;
        check_budget("defaults.max_bytes", defaults.max_bytes, max_bytes)?;
        let mut namespaces = BTreeMap::new();
        for (name, raw) in &self.namespaces {
            let path = format!("namespaces.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::Invalid {
                    field: path,
                    value: name.clone(),
                    reason: "a namespace name is lower-case letters, digits, '_' and '-'".into(),
                });
            }
            let ns = raw.resolve(&path, &defaults)?;
            check_budget(&format!("{path}.max_bytes"), ns.max_bytes, max_bytes)?;
            namespaces.insert(name.clone(), ns);
        }
        let mut names: BTreeSet<String> = namespaces.keys().cloned().collect();
        names.insert(DEFAULT_NAMESPACE.to_string());
        Rules::compile(&self.events, &names)?;
        let server = self.server.resolve(&namespaces)?;
        let config = Config {
            max_bytes,
            defaults,
            namespaces,
            events: self.events,
            admin_token: admin::token("admin_token", self.admin_token)?,
            admin_read_token: admin::token("admin_read_token", self.admin_read_token)?,
            admin: self.admin.resolve()?,
            alerts: self.alerts.resolve()?,
            server,
            redis: self.redis.as_ref().map(RawRedis::resolve).transpose()?,
        };
        config.budget_shares()?;
        Ok(config)
    }
}

/// A namespace may not be allowed more memory than the whole budget.
fn check_budget(field: &str, bytes: Option<u64>, budget: u64) -> Result<(), ConfigError> {
    match bytes {
        Some(bytes) if bytes > budget => Err(ConfigError::Invalid {
            field: field.to_string(),
            value: bytes.to_string(),
            reason: format!("more than the whole budget, max_bytes = {budget}"),
        }),
        _ => Ok(()),
    }
}

/// A namespace (or `[defaults]`) as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespace {
    ttl: Option<Raw>,
    time_to_idle: Option<Raw>,
    max_entries: Option<Raw>,
    max_bytes: Option<Raw>,
    max_stale: Option<Raw>,
    soft_timeout: Option<Raw>,
    hard_timeout: Option<Raw>,
    refresh_ahead: Option<Raw>,
    negative_ttl: Option<Raw>,
    shared: Option<Raw>,
    compress_above: Option<Raw>,
}

impl RawNamespace {
    /// Parses every field, each one falling back to `base` when absent, and checks that they
    /// make sense together.
    fn resolve(&self, path: &str, base: &NamespaceConfig) -> Result<NamespaceConfig, ConfigError> {
        let ns = self.parse(path, base)?;
        let field = |name: &str| format!("{path}.{name}");
        let text = |d: Duration| humantime::format_duration(d).to_string();
        if let (Some(soft), Some(hard)) = (ns.soft_timeout, ns.hard_timeout) {
            if soft >= hard {
                return Err(ConfigError::Invalid {
                    field: field("soft_timeout"),
                    value: text(soft),
                    reason: format!("must be shorter than hard_timeout ({})", text(hard)),
                });
            }
        }
        if ns.ttl.is_none() {
            if let Some(stale) = ns.max_stale {
                return Err(ConfigError::Invalid {
                    field: field("max_stale"),
                    value: text(stale),
                    reason: "needs a ttl: without one nothing goes stale".into(),
                });
            }
            if let Some(share) = ns.refresh_ahead {
                return Err(ConfigError::Invalid {
                    field: field("refresh_ahead"),
                    value: format!("{share}%"),
                    reason: "needs a ttl: without one nothing expires".into(),
                });
            }
        }
        Ok(ns)
    }

    fn parse(&self, path: &str, base: &NamespaceConfig) -> Result<NamespaceConfig, ConfigError> {
        // A field as written, parsed by `parse` under its dotted name, or `base`'s value.
        fn or<T>(
            raw: &Option<Raw>,
            base: Option<T>,
            path: &str,
            name: &str,
            parse: fn(&str, &Raw) -> Result<T, ConfigError>,
        ) -> Result<Option<T>, ConfigError> {
            match raw {
                Some(raw) => parse(&format!("{path}.{name}"), raw).map(Some),
                None => Ok(base),
            }
        }
        Ok(NamespaceConfig {
            ttl: or(&self.ttl, base.ttl, path, "ttl", duration)?,
            time_to_idle: or(
                &self.time_to_idle,
                base.time_to_idle,
                path,
                "time_to_idle",
                duration,
            )?,
            max_entries: or(
                &self.max_entries,
                base.max_entries,
                path,
                "max_entries",
                count,
            )?,
            max_bytes: or(&self.max_bytes, base.max_bytes, path, "max_bytes", size)?,
            max_stale: or(&self.max_stale, base.max_stale, path, "max_stale", duration)?,
            soft_timeout: or(
                &self.soft_timeout,
                base.soft_timeout,
                path,
                "soft_timeout",
                duration,
            )?,
            hard_timeout: or(
                &self.hard_timeout,
                base.hard_timeout,
                path,
                "hard_timeout",
                duration,
            )?,
            refresh_ahead: or(
                &self.refresh_ahead,
                base.refresh_ahead,
                path,
                "refresh_ahead",
                fraction,
            )?,
            negative_ttl: or(
                &self.negative_ttl,
                base.negative_ttl,
                path,
                "negative_ttl",
                duration,
            )?,
            shared: or(&self.shared, base.shared, path, "shared", flag)?,
            compress_above: or(
                &self.compress_above,
                base.compress_above,
                path,
                "compress_above",
                size,
            )?,
        })
    }
}

/// The error refusing `raw`, as given for `field`, with `reason`.
fn invalid(field: &str, raw: &Raw, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        value: raw.text(),
        reason: reason.into(),
    }
}

/// Parses a duration such as `90s`, `2m`, `12h`; zero is refused.
pub(super) fn duration(field: &str, raw: &Raw) -> Result<Duration, ConfigError> {
    let text = raw.text();
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        invalid(
            field,
            raw,
            "not a duration (write it like 500ms, 90s, 2m, 12h or 1d)",
        )
    })?;
    if d.is_zero() {
        return Err(invalid(field, raw, "must be longer than zero"));
    }
    Ok(d)
}

/// Parses a size such as `4096`, `64KiB`, `100MiB`; zero is refused.
pub(super) fn size(field: &str, raw: &Raw) -> Result<u64, ConfigError> {
    positive(field, raw, "1 byte", |text| {
        text.parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| "not a size (write it like 4096, 64KiB, 100MiB or 1GiB)")
    })
}

/// Parses a count such as `100000`; zero is refused.
pub(super) fn count(field: &str, raw: &Raw) -> Result<u64, ConfigError> {
    positive(field, raw, "1", |text| {
        text.parse::<u64>().map_err(|_| "not a whole number")
    })
}

/// An integer as written in TOML, or text parsed by `parse`; zero is refused as below `least`.
fn positive(
    field: &str,
    raw: &Raw,
    least: &str,
    parse: impl FnOnce(&str) -> Result<u64, &'static str>,
) -> Result<u64, ConfigError> {
    let n = match raw {
        Raw::Int(n) => *n,
        Raw::Float(_) | Raw::Bool(_) => return Err(invalid(field, raw, "must be a whole number")),
        Raw::Text(text) => parse(text.trim()).map_err(|reason| invalid(field, raw, reason))?,
    };
    if n == 0 {
        return Err(invalid(field, raw, format!("must be at least {least}")));
    }
    Ok(n)
}

/// A field of `section` as written, parsed by `parse` under its dotted name (`section.name`),
/// or `base` when absent.
pub(super) fn or_base<T>(
    section: &str,
    raw: &Option<Raw>,
    name: &str,
    parse: fn(&str, &Raw) -> Result<T, ConfigError>,
    base: T,
) -> Result<T, ConfigError> {
    raw.as_ref()
        .map_or(Ok(base), |raw| parse(&format!("{section}.{name}"), raw))
}

/// Parses `true` or `false` (TOML's booleans, or the words from the environment).
pub(super) fn flag(field: &str, raw: &Raw) -> Result<bool, ConfigError> {
    match raw {
        Raw::Bool(b) => Ok(*b),
        Raw::Text(text) if text.trim().eq_ignore_ascii_case("true") => Ok(true),
        Raw::Text(text) if text.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid(field, raw, "true or false")),
    }
}

/// A share written as a number (`0.8`) or a percentage (`"80%"`); an integer is not one.
fn share(raw: &Raw) -> Option<f64> {
    match raw {
        Raw::Float(x) => Some(*x),
        Raw::Int(_) | Raw::Bool(_) => None,
        Raw::Text(text) => {
            let text = text.trim();
            match text.strip_suffix('%') {
                Some(percent) => percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
                None => text.parse::<f64>().ok(),
            }
        }
    }
}

/// Parses a share of the TTL written `0.8` or `"80%"` into whole percent, 1 to 99.
fn fraction(field: &str, raw: &Raw) -> Result<u8, ConfigError> {
    match share(raw) {
        Some(x) if x > 0.0 && x < 1.0 => Ok(((x * 100.0).round() as u8).clamp(1, 99)),
        _ => Err(invalid(
            field,
            raw,
            "a share of the TTL between 0 and 1, like 0.8 or \"80%\"",
        )),
    }
}

/// Parses a share from 0 to 1, written `0.05` or `"5%"`.
pub(super) fn ratio(field: &str, raw: &Raw) -> Result<f64, ConfigError> {
    let share = match raw {
        Raw::Int(n) => Some(*n as f64),
        other => share(other),
    };
    match share {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(invalid(
            field,
            raw,
            "a share between 0 and 1, like 0.05 or \"5%\"",
        )),
    }
}
