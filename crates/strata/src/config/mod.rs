//! Configuration: a TOML file, every value overridable from the environment, human units.
//!
//! ```toml
//! # The memory budget across all namespaces (default 256 MiB).
//! max_bytes = "1GiB"
//!
//! # What every namespace starts from.
//! [defaults]
//! ttl = "10m"
//! max_entries = 100000
//!
//! [namespaces.wallet]
//! ttl = "2m"
//! max_bytes = "64MiB"
//!
//! [namespaces.user]
//! ttl = "10m"
//! time_to_idle = "5m"
//! max_stale = "1h"          # get_or_load: serve up to 1 h past the TTL if the origin fails
//! soft_timeout = "100ms"    # ... or is slower than this (the load goes on)
//! hard_timeout = "2s"       # a load is abandoned after this
//! refresh_ahead = 0.8       # a get_or_load hit after 80% of the TTL reloads in the background
//! negative_ttl = "30s"      # remember the origin's "not found" this long
//! compress_above = "1KiB"   # values longer than this are compressed in Redis (zstd)
//! ```
//!
//! Event rules say what an event invalidates; `{param}` placeholders take the event's
//! parameters:
//!
//! ```toml
//! [events."payment.succeeded"]
//! params = ["user_id", "bill_id"]                 # optional: the event's signature, checked
//! keys = ["payment::history::{user_id}", "bill::status::{bill_id}"]
//! tags = ["dashboard:{user_id}"]
//! cascade = ["wallet.changed"]                    # emitted next, with the same parameters
//!
//! [events."wallet.changed"]
//! namespaces = ["wallet"]                         # keys, prefixes, patterns apply here only
//! prefixes = ["wallet::{user_id}::"]
//! patterns = ["audit::{user_id}::*"]
//! ```
//!
//! A parameter is substituted into a key, prefix or pattern as one key part, escaped the way
//! [`key::join`](crate::key::join) escapes parts (and, in a pattern, for the glob language
//! too), so a parameter can neither forge extra key levels nor widen a pattern; tags take
//! parameters as they are; `{{` and `}}` write braces. Loading checks the templates, the
//! namespaces named, that cascades name defined events, that declared `params` cover every
//! placeholder (the event's own and its cascades'), and that cascades form no cycle; a cycle
//! is reported with its path. Rules come from the file only: event names contain dots, which
//! environment variable names cannot.
//!
//! Any value can be set or overridden by an environment variable: `STRATA_` followed by the
//! path, with `__` between levels, for example `STRATA_MAX_BYTES=2GiB`,
//! `STRATA_DEFAULTS__TTL=5m` or `STRATA_NAMESPACES__WALLET__TTL=90s`. The environment wins
//! over the file. `STRATA_URL`, `STRATA_CONFIG` and `STRATA_TEST_SERVER` belong to the command
//! line and the tests, and are not read as configuration ([`NOT_CONFIGURATION`]). Namespace
//! names are lower case (`[a-z0-9_-]`), since environment variables cannot carry case.
//!
//! Durations are written like `500ms`, `90s`, `2m`, `12h` or `1d` (parsed by `humantime`).
//! Sizes are written like `4096`, `64KiB`, `100MiB`, `1GiB` or `1GB` (parsed by `bytesize`;
//! `MB` is 10^6 bytes and `MiB` is 2^20). Counts are plain integers. A value that doesn't
//! parse, a zero where zero means nothing, an unknown key, a budget above [`MAX_BUDGET`], or a
//! namespace allowed more memory than the whole budget fails with an error naming the field
//! and the value. With no file and no variables, [`Config::default`] applies. The sections
//! `[server]`, `[admin]` and `[alerts]` are described with their types ([`ServerConfig`],
//! [`AdminConfig`], [`AlertsConfig`]).
//!
//! ```
//! use strata::config::Config;
//! use std::time::Duration;
//!
//! let config = Config::from_sources(
//!     Some("[namespaces.wallet]\nttl = \"2m\"\n"),
//!     [("STRATA_NAMESPACES__WALLET__MAX_ENTRIES".to_string(), "5000".to_string())],
//! )
//! .unwrap();
//! let wallet = &config.namespaces["wallet"];
//! assert_eq!(wallet.ttl, Some(Duration::from_secs(120)));
//! assert_eq!(wallet.max_entries, Some(5000));
//!
//! let err = Config::from_sources(Some("[namespaces.wallet]\nttl = \"2x\"\n"), []).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "namespaces.wallet.ttl = \"2x\": not a duration (write it like 500ms, 90s, 2m, 12h or 1d)"
//! );
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

// `raw` reads the configuration as written and holds the field parsers every section uses;
// each section has a file of its own with its type and how its raw form is checked (`server`,
// `admin`); `events` compiles the event rules, which the store runs.
mod admin;
pub(crate) mod events;
mod raw;
mod redis;
mod server;

pub use admin::{AdminConfig, AlertsConfig, Secret};
pub use events::EventRule;
pub use redis::{redact_url, RedisConfig, MAX_PARTITIONS};
pub use server::{
    InvalidClientMemory, MaxClientMemory, MaxmemoryPolicy, ServerConfig, UnknownPolicy,
};

use raw::RawConfig;

/// The prefix of the environment variables that override the configuration.
pub const ENV_PREFIX: &str = "STRATA";

/// Variables with the prefix that are not configuration: the `strata` command line's own
/// (`--url` of the admin commands, `strata serve --config`) and the test harness's. A shell
/// that exports `STRATA_URL` for the CLI must still be able to run `strata serve`.
pub const NOT_CONFIGURATION: [&str; 3] = ["STRATA_URL", "STRATA_CONFIG", "STRATA_TEST_SERVER"];

/// The namespace that always exists: it takes the `[defaults]` settings unless configured
/// under `[namespaces.default]`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The memory budget when none is configured.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The smallest share of the budget a namespace without `max_bytes` may be left with.
pub const MIN_SHARE: u64 = 1 << 20;

/// The largest memory budget accepted, 2^62 bytes (4 EiB), by the configuration and by
/// [`Store::set_max_bytes`](crate::Store::set_max_bytes) (`CONFIG SET maxmemory`). Far
/// beyond any machine, so it only refuses mistakes like `18446744073709551615`; and low
/// enough that every byte figure fits the signed 64-bit integers metrics are exposed in
/// (OpenMetrics gauges are `i64`), with room to add a share and an entry's weight without
/// overflow.
pub const MAX_BUDGET: u64 = 1 << 62;

/// The configuration in effect, with every value parsed and checked.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The memory budget across all namespaces, in bytes.
    pub max_bytes: u64,
    /// What every namespace starts from.
    pub defaults: NamespaceConfig,
    /// Each configured namespace, with the defaults already applied.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// Event rules by event name (see [`Store::emit`](crate::Store::emit) for how they run).
    /// Checked when loaded: templates, namespaces, cascade targets, parameters, and cycles.
    pub events: BTreeMap<String, EventRule>,
    /// The admin API's token, for every route (`admin_token`, or `STRATA_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// A token for the admin API's read-only routes (`admin_read_token`, or
    /// `STRATA_ADMIN_READ_TOKEN`).
    pub admin_read_token: Option<Secret>,
    /// The admin API's connection and request limits, under `[admin]`.
    pub admin: AdminConfig,
    /// Alert thresholds, under `[alerts]`.
    pub alerts: AlertsConfig,
    /// `strata serve`'s settings, under `[server]`.
    pub server: ServerConfig,
    /// Redis as the shared second tier, under `[redis]`; `None` (no section) keeps every
    /// instance on its own.
    pub redis: Option<RedisConfig>,
}

/// The settings of one namespace. `None` means "no such limit" (or no expiry).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceConfig {
    /// How long an entry lives unless inserted with a TTL of its own.
    #[serde(serialize_with = "human_opt")]
    pub ttl: Option<Duration>,
    /// How long an entry lives without being read.
    #[serde(serialize_with = "human_opt")]
    pub time_to_idle: Option<Duration>,
    /// At most this many entries.
    pub max_entries: Option<u64>,
    /// At most this many bytes (within the global budget).
    pub max_bytes: Option<u64>,
    /// Fail-safe: how long after its TTL an entry may still be served by `get_or_load` when
    /// the origin fails or is too slow. Plain reads never see it once its TTL has passed.
    #[serde(serialize_with = "human_opt")]
    pub max_stale: Option<Duration>,
    /// How long `get_or_load` waits for a load before answering with a stale value (when
    /// it has one); the load goes on in the background and refreshes the entry.
    #[serde(serialize_with = "human_opt")]
    pub soft_timeout: Option<Duration>,
    /// How long a load may take at all: then waiters get the stale value if there is one,
    /// and an error otherwise.
    #[serde(serialize_with = "human_opt")]
    pub hard_timeout: Option<Duration>,
    /// Refresh ahead, in percent of the TTL (1 to 99): an entry read by `get_or_load` after
    /// this share of its TTL is reloaded in the background, so a hot key never expires under
    /// its readers. Written `0.8` or `"80%"`.
    pub refresh_ahead: Option<u8>,
    /// Negative caching: how long the origin's "not found" (a `None` from the loader of
    /// `get_or_load_optional`, a key missing from a `get_many_or_load` answer) is
    /// remembered, so a key that does not exist does not reach the origin on every read.
    /// Without it "not found" is not cached.
    #[serde(serialize_with = "human_opt")]
    pub negative_ttl: Option<Duration>,
    /// Whether the namespace uses the shared tier when `[redis]` is configured: `None` and
    /// `Some(true)` do, `Some(false)` keeps it to this instance.
    pub shared: Option<bool>,
    /// Values whose encoding is longer than this many bytes are compressed (zstd) in the
    /// shared tier; `None`: none are.
    pub compress_above: Option<u64>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that doesn't parse or doesn't make sense, with the field it was given for.
    #[error("{field} = {value:?}: {reason}")]
    Invalid {
        /// The dotted path of the field, for example `namespaces.wallet.ttl`.
        field: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read, is not valid TOML, or has keys strata does not know.
    #[error("{0}")]
    Source(String),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            defaults: NamespaceConfig::default(),
            namespaces: BTreeMap::new(),
            events: BTreeMap::new(),
            admin_token: None,
            admin_read_token: None,
            admin: AdminConfig::default(),
            alerts: AlertsConfig::default(),
            server: ServerConfig::default(),
            redis: None,
        }
    }
}

impl Config {
    /// The settings of namespace `name`: its own if configured, else the defaults.
    pub fn namespace(&self, name: &str) -> &NamespaceConfig {
        self.namespaces.get(name).unwrap_or(&self.defaults)
    }

    /// Whether namespace `name` uses the shared tier: `[redis]` is configured and the
    /// namespace does not say `shared = false`.
    pub fn is_shared(&self, name: &str) -> bool {
        self.redis.is_some() && self.namespace(name).shared != Some(false)
    }

    /// Every namespace a store built from this configuration has: the configured ones and
    /// [`DEFAULT_NAMESPACE`].
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.namespaces.keys().cloned().collect();
        if !self.namespaces.contains_key(DEFAULT_NAMESPACE) {
            names.push(DEFAULT_NAMESPACE.to_string());
            names.sort();
        }
        names
    }

    /// How the memory budget is divided: each namespace with a `max_bytes` gets it, and the
    /// rest of the budget is split evenly between the others. The shares never add up to more
    /// than `max_bytes`, so the budget holds however the namespaces fill; a namespace never
    /// takes memory from another (the isolation tiers are for). Fails when the budget is
    /// above [`MAX_BUDGET`], or the fixed shares exceed it or leave nothing for the others.
    pub fn budget_shares(&self) -> Result<BTreeMap<String, u64>, ConfigError> {
        if self.max_bytes > MAX_BUDGET {
            return Err(ConfigError::Invalid {
                field: "max_bytes".into(),
                value: self.max_bytes.to_string(),
                reason: format!("more than the largest budget, {MAX_BUDGET} bytes (4 EiB)"),
            });
        }
        let names = self.namespace_names();
        let fixed: u64 = names
            .iter()
            .filter_map(|n| self.namespace(n).max_bytes)
            .fold(0u64, u64::saturating_add);
        if fixed > self.max_bytes {
            return Err(ConfigError::Invalid {
                field: "max_bytes".into(),
                value: self.max_bytes.to_string(),
                reason: format!(
                    "the namespaces' own max_bytes add up to {fixed}, more than the budget"
                ),
            });
        }
        let elastic: Vec<&String> = names
            .iter()
            .filter(|n| self.namespace(n).max_bytes.is_none())
            .collect();
        let share = match elastic.len() as u64 {
            0 => 0,
            n => (self.max_bytes - fixed) / n,
        };
        if !elastic.is_empty() && share < MIN_SHARE {
            return Err(ConfigError::Invalid {
                field: "max_bytes".into(),
                value: self.max_bytes.to_string(),
                reason: format!(
                    "leaves {share} bytes each to {} (fewer than {MIN_SHARE}); raise the budget \
                     or give them max_bytes",
                    elastic
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(names
            .iter()
            .map(|n| (n.clone(), self.namespace(n).max_bytes.unwrap_or(share)))
            .collect())
    }

    /// Reads the TOML file at `path` (if any) and overrides it with the process's `STRATA_*`
    /// environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Source(format!("cannot read {}: {e}", path.display()))
            })?),
            None => None,
        };
        Self::from_sources(text.as_deref(), std::env::vars())
    }

    /// Builds the configuration from TOML text (if any) and environment variables given as
    /// pairs; only those starting with `STRATA_` are read. Tests pass their own pairs here
    /// instead of changing the process's environment.
    pub fn from_sources(
        toml: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let prefix = format!("{ENV_PREFIX}_");
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| {
                key.starts_with(&prefix) && !NOT_CONFIGURATION.contains(&key.as_str())
            })
            .collect();
        let mut builder = config::Config::builder();
        if let Some(toml) = toml {
            builder = builder.add_source(config::File::from_str(toml, config::FileFormat::Toml));
        }
        let raw: RawConfig = builder
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(env)),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        raw.resolve()
    }
}

/// Serialises a duration as people write it ("10m", "1h 30m").
fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Serialises an optional duration as people write it, and none as nothing.
fn human_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => human(d, s),
        None => s.serialize_none(),
    }
}
