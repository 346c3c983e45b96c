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
//! parse, a zero where zero means nothing, an unknown key, or a namespace allowed more
//! memory than the whole budget fails with an error naming the field and the value. With no
//! file and no variables, [`Config::default`] applies.
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
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub(crate) mod events;

pub use events::EventRule;

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

/// The configuration in effect, with every value parsed and checked.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The memory budget across all namespaces, in bytes.
    pub max_bytes: u64,
    /// What every namespace starts from.
    pub defaults: NamespaceConfig,
    /// Each configured namespace, with the defaults already applied.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// Event rules by event name (see [`crate::store`] for how they run). Checked when loaded:
    /// templates, namespaces, cascade targets, parameters, and cycles.
    pub events: BTreeMap<String, EventRule>,
    /// The admin API's token, for every route (`admin_token`, or `STRATA_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// A token for the admin API's read-only routes (`admin_read_token`, or
    /// `STRATA_ADMIN_READ_TOKEN`).
    pub admin_read_token: Option<Secret>,
    /// Alert thresholds, under `[alerts]`.
    pub alerts: AlertsConfig,
    /// `strata serve`'s settings, under `[server]`.
    pub server: ServerConfig,
}

/// `strata serve`'s settings: addresses, the password, how keys map to namespaces, and the
/// limits that keep a client from exhausting the server.
///
/// ```toml
/// [server]
/// resp_addr = "127.0.0.1:6380"
/// http_addr = "127.0.0.1:8080"
/// password = "s3cret"               # AUTH; or STRATA_SERVER__PASSWORD
/// maxmemory_policy = "allkeys-lfu"  # or "noeviction": refuse writes (OOM) instead of evicting
/// max_clients = 10000
/// idle_timeout = "5m"               # close clients idle this long (default: never)
/// max_bulk_len = "64MiB"            # the largest argument (a value, say)
/// max_array_len = 1048576           # the most arguments in one command
/// max_inline_len = "64KiB"          # the longest inline command
/// output_buffer = "128MiB"          # a client whose reply passes this is closed (keep it
///                                   # above max_bulk_len, or the largest value cannot be read)
///
/// [server.prefixes]                 # which namespace a key lives in, by key prefix
/// "wallet:*" = "wallet"             # (default: "NAME:*" for each configured namespace)
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServerConfig {
    /// Where the Redis protocol is served.
    pub resp_addr: String,
    /// Where the admin API is served.
    pub http_addr: String,
    /// The password `AUTH` must give; none means no `AUTH` is needed.
    pub password: Option<Secret>,
    /// Key prefixes and the namespace each maps to; the longest matching prefix wins, and a
    /// key matching none lives in `default`. Written `"wallet:*"` in the file.
    pub prefixes: BTreeMap<String, String>,
    /// `noeviction`, or one of Redis's evicting policies (all of which mean strata's own).
    pub maxmemory_policy: String,
    /// The most clients connected at once; more are refused with an error.
    pub max_clients: u64,
    /// Clients idle this long are closed.
    #[serde(serialize_with = "human_opt")]
    pub idle_timeout: Option<Duration>,
    /// The longest bulk string a client may send, in bytes.
    pub max_bulk_len: u64,
    /// The most elements of a command array.
    pub max_array_len: u64,
    /// The longest inline command, in bytes.
    pub max_inline_len: u64,
    /// Reply bytes past which a client is closed. Keep it above `max_bulk_len`, or a value
    /// that could be written cannot be read back.
    pub output_buffer: u64,
}

/// The policies `maxmemory_policy` and `CONFIG SET maxmemory-policy` accept (Redis's names).
pub const MAXMEMORY_POLICIES: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            resp_addr: "127.0.0.1:6380".into(),
            http_addr: "127.0.0.1:8080".into(),
            password: None,
            prefixes: BTreeMap::new(),
            maxmemory_policy: "allkeys-lfu".into(),
            max_clients: 10_000,
            idle_timeout: None,
            max_bulk_len: 64 << 20,
            max_array_len: 1 << 20,
            max_inline_len: 64 << 10,
            output_buffer: 128 << 20,
        }
    }
}

/// Serialises a duration as people write it ("10m", "1h 30m").
fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

fn human_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => human(d, s),
        None => s.serialize_none(),
    }
}

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
    #[serde(serialize_with = "human")]
    pub every: Duration,
    /// Fire when a namespace's hit ratio over an interval is below this (0 to 1).
    pub hit_ratio_below: Option<f64>,
    /// Fire when a namespace holds more than this share of its `max_bytes` (0 to 1).
    pub memory_above: Option<f64>,
    /// Fire when a namespace's p99 load latency over an interval is above this.
    #[serde(serialize_with = "human_opt")]
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
            alerts: AlertsConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

impl Config {
    /// The settings of namespace `name`: its own if configured, else the defaults.
    pub fn namespace(&self, name: &str) -> &NamespaceConfig {
        self.namespaces.get(name).unwrap_or(&self.defaults)
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
    /// takes memory from another (the isolation tiers are for). Fails when the fixed shares
    /// exceed the budget or leave nothing for the others.
    pub fn budget_shares(&self) -> Result<BTreeMap<String, u64>, ConfigError> {
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

/// A value as written: TOML may give an integer or a string, the environment always a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
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
    alerts: RawAlerts,
    #[serde(default)]
    server: RawServer,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    resp_addr: Option<String>,
    http_addr: Option<String>,
    password: Option<String>,
    #[serde(default)]
    prefixes: BTreeMap<String, String>,
    maxmemory_policy: Option<String>,
    max_clients: Option<Raw>,
    idle_timeout: Option<Raw>,
    max_bulk_len: Option<Raw>,
    max_array_len: Option<Raw>,
    max_inline_len: Option<Raw>,
    output_buffer: Option<Raw>,
}

impl RawServer {
    fn resolve(
        self,
        namespaces: &BTreeMap<String, NamespaceConfig>,
    ) -> Result<ServerConfig, ConfigError> {
        let base = ServerConfig::default();
        let field = |name: &str| format!("server.{name}");
        let opt = |raw: &Option<Raw>,
                   name: &str,
                   parse: fn(&str, &Raw) -> Result<u64, ConfigError>,
                   base: u64| {
            raw.as_ref()
                .map_or(Ok(base), |raw| parse(&field(name), raw))
        };
        let mut prefixes = BTreeMap::new();
        if self.prefixes.is_empty() {
            for name in namespaces.keys() {
                prefixes.insert(format!("{name}:"), name.clone());
            }
        }
        for (pattern, namespace) in self.prefixes {
            let invalid = |reason: String| ConfigError::Invalid {
                field: format!("server.prefixes.\"{pattern}\""),
                value: namespace.clone(),
                reason,
            };
            let prefix = pattern.strip_suffix('*').ok_or_else(|| {
                invalid("a prefix is written with a trailing '*', like \"wallet:*\"".into())
            })?;
            if prefix.contains(['*', '?', '[', '\\']) {
                return Err(invalid(
                    "only a trailing '*' is allowed (a prefix, not a pattern)".into(),
                ));
            }
            if namespace != DEFAULT_NAMESPACE && !namespaces.contains_key(&namespace) {
                return Err(invalid(format!("no namespace '{namespace}' is configured")));
            }
            prefixes.insert(prefix.to_string(), namespace);
        }
        let policy = self.maxmemory_policy.unwrap_or(base.maxmemory_policy);
        if !MAXMEMORY_POLICIES.contains(&policy.as_str()) {
            return Err(ConfigError::Invalid {
                field: field("maxmemory_policy"),
                value: policy,
                reason: format!("one of {}", MAXMEMORY_POLICIES.join(", ")),
            });
        }
        let password = match self.password {
            Some(p) if p.is_empty() => {
                return Err(ConfigError::Invalid {
                    field: field("password"),
                    value: String::new(),
                    reason: "an empty password would let anyone in; leave it out instead".into(),
                })
            }
            other => other.map(Secret),
        };
        Ok(ServerConfig {
            resp_addr: self.resp_addr.unwrap_or(base.resp_addr),
            http_addr: self.http_addr.unwrap_or(base.http_addr),
            password,
            prefixes,
            maxmemory_policy: policy,
            max_clients: opt(&self.max_clients, "max_clients", count, base.max_clients)?,
            idle_timeout: self
                .idle_timeout
                .as_ref()
                .map(|raw| duration(&field("idle_timeout"), raw))
                .transpose()?,
            max_bulk_len: opt(&self.max_bulk_len, "max_bulk_len", size, base.max_bulk_len)?,
            max_array_len: opt(
                &self.max_array_len,
                "max_array_len",
                count,
                base.max_array_len,
            )?,
            max_inline_len: opt(
                &self.max_inline_len,
                "max_inline_len",
                size,
                base.max_inline_len,
            )?,
            output_buffer: opt(
                &self.output_buffer,
                "output_buffer",
                size,
                base.output_buffer,
            )?,
        })
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
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
    fn resolve(&self) -> Result<AlertsConfig, ConfigError> {
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

/// Parses a share from 0 to 1, written `0.05` or `"5%"`.
fn ratio(field: &str, raw: &Raw) -> Result<f64, ConfigError> {
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
}

fn invalid(field: &str, raw: &Raw, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        value: raw.text(),
        reason: reason.into(),
    }
}

/// Parses a duration such as `90s`, `2m`, `12h`; zero is refused.
fn duration(field: &str, raw: &Raw) -> Result<Duration, ConfigError> {
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
fn size(field: &str, raw: &Raw) -> Result<u64, ConfigError> {
    positive(field, raw, "1 byte", |text| {
        text.parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| "not a size (write it like 4096, 64KiB, 100MiB or 1GiB)")
    })
}

/// A share written as a number (`0.8`) or a percentage (`"80%"`); an integer is not one.
fn share(raw: &Raw) -> Option<f64> {
    match raw {
        Raw::Float(x) => Some(*x),
        Raw::Int(_) => None,
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

/// Parses a count such as `100000`; zero is refused.
fn count(field: &str, raw: &Raw) -> Result<u64, ConfigError> {
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
        Raw::Float(_) => return Err(invalid(field, raw, "must be a whole number")),
        Raw::Text(text) => parse(text.trim()).map_err(|reason| invalid(field, raw, reason))?,
    };
    if n == 0 {
        return Err(invalid(field, raw, format!("must be at least {least}")));
    }
    Ok(n)
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
        })
    }
}

impl RawConfig {
    fn resolve(self) -> Result<Config, ConfigError> {
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
        let mut names: std::collections::BTreeSet<String> = namespaces.keys().cloned().collect();
        names.insert(DEFAULT_NAMESPACE.to_string());
        events::Rules::compile(&self.events, &names)?;
        let secret = |field: &str, text: Option<String>| match text {
            Some(text) if text.trim().is_empty() => Err(ConfigError::Invalid {
                field: field.into(),
                value: String::new(),
                reason: "an empty token would let anyone in; leave it out instead".into(),
            }),
            other => Ok(other.map(Secret)),
        };
        let server = self.server.resolve(&namespaces)?;
        let config = Config {
            max_bytes,
            defaults,
            namespaces,
            events: self.events,
            admin_token: secret("admin_token", self.admin_token)?,
            admin_read_token: secret("admin_read_token", self.admin_read_token)?,
            alerts: self.alerts.resolve()?,
            server,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's example configuration loads, and a store built from it runs its event.
    #[test]
    fn the_readme_configuration_is_valid() {
        let readme = include_str!("../../../README.md");
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|rest| &rest[..rest.find("```").expect("the block ends")])
            .collect();
        assert!(blocks.len() >= 2, "README's toml blocks went missing");
        for block in &blocks[1..] {
            Config::from_sources(Some(block), []).unwrap_or_else(|e| panic!("{e}\n{block}"));
        }
        let config = Config::from_sources(Some(blocks[0]), []).unwrap();
        assert_eq!(config.max_bytes, 1 << 30);
        assert_eq!(
            config.namespaces["wallet"].ttl,
            Some(Duration::from_secs(120))
        );
        let store = crate::Store::from_config(&config).unwrap();
        let wallet = store.namespace::<i64>("wallet").unwrap();
        wallet
            .insert_with(
                "wallet::42::balance",
                1_250,
                crate::store::Put::new().tag("dashboard:42"),
            )
            .unwrap();
        wallet.insert("wallet::43::balance", 7).unwrap();
        let dropped = store
            .emit("payment.succeeded", [("user_id", "42"), ("bill_id", "7")])
            .unwrap();
        assert_eq!(dropped, 1);
        assert_eq!(wallet.get("wallet::42::balance"), None);
        assert_eq!(wallet.get("wallet::43::balance"), Some(7));
    }
}
