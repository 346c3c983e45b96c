//! `strata serve`'s section, `[server]`: [`ServerConfig`], its [`MaxmemoryPolicy`], and how
//! its raw form is checked.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::raw::{count, duration, size, Raw};
use super::{ConfigError, NamespaceConfig, Secret, DEFAULT_NAMESPACE};

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
/// max_client_memory = "25%"         # all clients' buffers together; past it the biggest
///                                   # client is closed (a size, or a share of max_bytes)
///
/// [server.prefixes]                 # which namespace a key lives in, by key prefix
/// "wallet:*" = "wallet"             # (default: "NAME:*" for each configured namespace)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub maxmemory_policy: MaxmemoryPolicy,
    /// The most clients connected at once; more are refused with an error.
    pub max_clients: u64,
    /// Clients idle this long are closed.
    #[serde(serialize_with = "super::human_opt")]
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
    /// The bound on all clients' buffers together (what they sent and was not run yet,
    /// replies not written yet): past it the client holding the most is closed, as with
    /// Redis 7's `maxmemory-clients`. See [`MaxClientMemory`].
    pub max_client_memory: MaxClientMemory,
}

/// `max_client_memory`: the bound on all clients' buffers together, a size or a share of the
/// memory budget (`max_bytes`), as Redis's `maxmemory-clients` takes either. The default is a
/// quarter of the budget, so the whole process stays within 1.25 times it plus a constant
/// however clients behave; a share is never taken below what one client may legitimately
/// hold (see [`bytes`](Self::bytes)), so a small budget cannot shut out the largest command
/// or reply the other limits allow.
///
/// ```
/// use strata::config::MaxClientMemory;
///
/// let quarter = MaxClientMemory::Percent(25);
/// assert_eq!(quarter.bytes(1 << 30, 128 << 20), 256 << 20);
/// // A share below the floor (here 128 MiB) is raised to it; a size is taken as written.
/// assert_eq!(quarter.bytes(256 << 20, 128 << 20), 128 << 20);
/// assert_eq!(MaxClientMemory::Bytes(1 << 20).bytes(1 << 30, 128 << 20), 1 << 20);
/// assert_eq!(quarter.to_string(), "25%");
/// assert_eq!("10%".parse(), Ok(MaxClientMemory::Percent(10)));
/// assert_eq!("64MiB".parse(), Ok(MaxClientMemory::Bytes(64 << 20)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxClientMemory {
    /// This many bytes, whatever the budget.
    Bytes(u64),
    /// This many percent of `max_bytes` (1 to 100), following the budget when it changes.
    Percent(u8),
}

impl MaxClientMemory {
    /// The bound in bytes for a budget of `max_bytes`. A share is raised to `floor` when
    /// below it: the server passes the most one client may legitimately hold (a whole command
    /// of twice `max_bulk_len`, or a whole reply of `output_buffer`), so the bound never closes
    /// a client that is alone doing what the other limits allow.
    pub fn bytes(self, max_bytes: u64, floor: u64) -> u64 {
        match self {
            Self::Bytes(n) => n,
            Self::Percent(p) => {
                let share = u128::from(max_bytes) * u128::from(p) / 100;
                u64::try_from(share).unwrap_or(u64::MAX).max(floor)
            }
        }
    }
}

impl Default for MaxClientMemory {
    fn default() -> Self {
        Self::Percent(25)
    }
}

/// Why a `max_client_memory` value was refused: it displays as what the value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a size (like 256MiB) or a whole percentage of max_bytes from 1% to 100% (like \"25%\")")]
pub struct InvalidClientMemory;

impl FromStr for MaxClientMemory {
    type Err = InvalidClientMemory;

    /// Parses `"25%"` (whole percent, 1 to 100) or a size (`"64MiB"`, `"1048576"`; not zero).
    fn from_str(text: &str) -> Result<Self, InvalidClientMemory> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            return match percent.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Self::Percent(p)),
                _ => Err(InvalidClientMemory),
            };
        }
        match text.parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() > 0 => Ok(Self::Bytes(size.as_u64())),
            _ => Err(InvalidClientMemory),
        }
    }
}

/// As the configuration writes it: `25%`, or a number of bytes.
impl fmt::Display for MaxClientMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Serialised as the configuration writes it: a number of bytes, or `"25%"`.
impl Serialize for MaxClientMemory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bytes(n) => s.serialize_u64(*n),
            Self::Percent(_) => s.collect_str(self),
        }
    }
}

/// What `strata serve` does when memory is full, by Redis's `maxmemory-policy` names (the
/// `maxmemory_policy` setting and `CONFIG SET maxmemory-policy`). `noeviction` refuses writes
/// that need room (OOM); every other policy means strata's own eviction (S3-FIFO with TinyLFU
/// admission), whichever Redis policy it names. The discriminants are fixed, so a server can
/// keep the policy in an atomic `u8` (`policy as u8`, read back with [`from_u8`](Self::from_u8)).
///
/// ```
/// use strata::config::MaxmemoryPolicy;
///
/// let policy: MaxmemoryPolicy = "allkeys-lru".parse().unwrap();
/// assert_eq!(policy, MaxmemoryPolicy::AllKeysLru);
/// assert!(policy.evicts());
/// assert_eq!(policy.to_string(), "allkeys-lru");
/// assert_eq!(MaxmemoryPolicy::from_u8(policy as u8), Some(policy));
/// assert!(!MaxmemoryPolicy::NoEviction.evicts());
/// assert!("lru".parse::<MaxmemoryPolicy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MaxmemoryPolicy {
    /// `noeviction`: a write that needs another entry's room fails with OOM.
    NoEviction = 0,
    /// `allkeys-lru`.
    AllKeysLru = 1,
    /// `allkeys-lfu`, the default.
    AllKeysLfu = 2,
    /// `allkeys-random`.
    AllKeysRandom = 3,
    /// `volatile-lru`.
    VolatileLru = 4,
    /// `volatile-lfu`.
    VolatileLfu = 5,
    /// `volatile-random`.
    VolatileRandom = 6,
    /// `volatile-ttl`.
    VolatileTtl = 7,
}

impl MaxmemoryPolicy {
    /// Every policy, in the order messages list them.
    pub const ALL: [Self; 8] = [
        Self::NoEviction,
        Self::AllKeysLru,
        Self::AllKeysLfu,
        Self::AllKeysRandom,
        Self::VolatileLru,
        Self::VolatileLfu,
        Self::VolatileRandom,
        Self::VolatileTtl,
    ];

    /// Redis's name for the policy.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoEviction => "noeviction",
            Self::AllKeysLru => "allkeys-lru",
            Self::AllKeysLfu => "allkeys-lfu",
            Self::AllKeysRandom => "allkeys-random",
            Self::VolatileLru => "volatile-lru",
            Self::VolatileLfu => "volatile-lfu",
            Self::VolatileRandom => "volatile-random",
            Self::VolatileTtl => "volatile-ttl",
        }
    }

    /// Whether the policy evicts to make room: every policy but `noeviction`.
    pub const fn evicts(self) -> bool {
        !matches!(self, Self::NoEviction)
    }

    /// The policy whose discriminant (`policy as u8`) is `n`, if any.
    pub const fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::NoEviction,
            1 => Self::AllKeysLru,
            2 => Self::AllKeysLfu,
            3 => Self::AllKeysRandom,
            4 => Self::VolatileLru,
            5 => Self::VolatileLfu,
            6 => Self::VolatileRandom,
            7 => Self::VolatileTtl,
            _ => return None,
        })
    }
}

/// A name that is not one of Redis's `maxmemory-policy` names. It displays as what the name
/// must be ("one of noeviction, allkeys-lru, ..."), the reason a configuration error gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("one of {}", MaxmemoryPolicy::ALL.map(MaxmemoryPolicy::as_str).join(", "))]
pub struct UnknownPolicy;

impl FromStr for MaxmemoryPolicy {
    type Err = UnknownPolicy;

    /// Parses Redis's name for a policy, exactly as written (lower case).
    fn from_str(name: &str) -> Result<Self, UnknownPolicy> {
        Self::ALL
            .into_iter()
            .find(|policy| policy.as_str() == name)
            .ok_or(UnknownPolicy)
    }
}

impl fmt::Display for MaxmemoryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Serialised as its name, like the configuration writes it.
impl Serialize for MaxmemoryPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            resp_addr: "127.0.0.1:6380".into(),
            http_addr: "127.0.0.1:8080".into(),
            password: None,
            prefixes: BTreeMap::new(),
            maxmemory_policy: MaxmemoryPolicy::AllKeysLfu,
            max_clients: 10_000,
            idle_timeout: None,
            max_bulk_len: 64 << 20,
            max_array_len: 1 << 20,
            max_inline_len: 64 << 10,
            output_buffer: 128 << 20,
            max_client_memory: MaxClientMemory::default(),
        }
    }
}

/// `[server]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
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
    max_client_memory: Option<Raw>,
}

impl RawServer {
    /// Parses every setting, each one falling back to its default when absent, and checks the
    /// prefix routes against the `namespaces` configured.
    pub(super) fn resolve(
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
        let maxmemory_policy = match self.maxmemory_policy {
            Some(name) => name
                .parse()
                .map_err(|e: UnknownPolicy| ConfigError::Invalid {
                    field: field("maxmemory_policy"),
                    value: name,
                    reason: e.to_string(),
                })?,
            None => base.maxmemory_policy,
        };
        let password = match self.password {
            Some(p) if p.is_empty() => {
                return Err(ConfigError::Invalid {
                    field: field("password"),
                    value: String::new(),
                    reason: "an empty password would let anyone in; leave it out instead".into(),
                })
            }
            other => other.map(Secret::new),
        };
        let max_bulk_len = opt(&self.max_bulk_len, "max_bulk_len", size, base.max_bulk_len)?;
        let max_client_memory = match &self.max_client_memory {
            None => base.max_client_memory,
            Some(raw) => client_memory(&field("max_client_memory"), raw, max_bulk_len)?,
        };
        Ok(ServerConfig {
            resp_addr: self.resp_addr.unwrap_or(base.resp_addr),
            http_addr: self.http_addr.unwrap_or(base.http_addr),
            password,
            prefixes,
            maxmemory_policy,
            max_clients: opt(&self.max_clients, "max_clients", count, base.max_clients)?,
            idle_timeout: self
                .idle_timeout
                .as_ref()
                .map(|raw| duration(&field("idle_timeout"), raw))
                .transpose()?,
            max_bulk_len,
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
            max_client_memory,
        })
    }
}

/// Parses `max_client_memory`: a size, or a percentage of `max_bytes`. A size below
/// `max_bulk_len` is refused: the client sending the largest value the server accepts would
/// be closed for it every time.
fn client_memory(
    field: &str,
    raw: &Raw,
    max_bulk_len: u64,
) -> Result<MaxClientMemory, ConfigError> {
    let text = raw.text();
    let invalid = |reason: String| ConfigError::Invalid {
        field: field.to_string(),
        value: text.clone(),
        reason,
    };
    let limit: MaxClientMemory = text
        .parse()
        .map_err(|e: InvalidClientMemory| invalid(e.to_string()))?;
    match limit {
        MaxClientMemory::Bytes(n) if n < max_bulk_len => Err(invalid(format!(
            "below max_bulk_len ({max_bulk_len} bytes): a client sending the largest value \
             allowed would be closed for it"
        ))),
        _ => Ok(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_round_trips_through_its_name_and_its_discriminant() {
        for policy in MaxmemoryPolicy::ALL {
            assert_eq!(policy.as_str().parse(), Ok(policy));
            assert_eq!(MaxmemoryPolicy::from_u8(policy as u8), Some(policy));
            assert_eq!(policy.evicts(), policy != MaxmemoryPolicy::NoEviction);
        }
        assert_eq!(MaxmemoryPolicy::from_u8(8), None);
        // Names are matched as written; CONFIG SET lower-cases its argument first.
        assert_eq!("ALLKEYS-LRU".parse::<MaxmemoryPolicy>(), Err(UnknownPolicy));
    }

    /// `[server]` with the settings `toml` gives.
    fn resolve(toml: &str) -> Result<ServerConfig, ConfigError> {
        super::super::Config::from_sources(Some(&format!("[server]\n{toml}")), [])
            .map(|config| config.server)
    }

    #[test]
    fn max_client_memory_is_a_size_or_a_percentage_of_the_budget() {
        let default = resolve("").expect("defaults");
        assert_eq!(default.max_client_memory, MaxClientMemory::Percent(25));
        for (written, want) in [
            ("max_client_memory = \"10%\"", MaxClientMemory::Percent(10)),
            (
                "max_client_memory = \"100%\"",
                MaxClientMemory::Percent(100),
            ),
            (
                "max_client_memory = \"256MiB\"",
                MaxClientMemory::Bytes(256 << 20),
            ),
            (
                "max_client_memory = 134217728",
                MaxClientMemory::Bytes(128 << 20),
            ),
        ] {
            let config = resolve(written).expect(written);
            assert_eq!(config.max_client_memory, want, "{written}");
        }
        for bad in ["\"0%\"", "\"101%\"", "\"2.5%\"", "0", "\"lots\"", "1.5"] {
            let err = resolve(&format!("max_client_memory = {bad}")).expect_err(bad);
            assert!(
                err.to_string().contains("server.max_client_memory"),
                "{err}"
            );
        }
        // A size must leave room for the largest value a client may send.
        let err = resolve("max_bulk_len = \"1MiB\"\nmax_client_memory = \"512KiB\"")
            .expect_err("below max_bulk_len");
        assert!(err.to_string().contains("below max_bulk_len"), "{err}");
        assert!(resolve("max_bulk_len = \"64KiB\"\nmax_client_memory = \"1MiB\"").is_ok());
    }

    #[test]
    fn a_share_of_the_budget_is_never_below_the_floor() {
        let share = MaxClientMemory::Percent(25);
        assert_eq!(share.bytes(1 << 30, 128 << 20), 256 << 20);
        assert_eq!(share.bytes(256 << 20, 128 << 20), 128 << 20);
        assert_eq!(MaxClientMemory::Percent(100).bytes(u64::MAX, 0), u64::MAX);
        assert_eq!(
            MaxClientMemory::Bytes(1 << 20).bytes(1 << 30, 128 << 20),
            1 << 20
        );
        for limit in [MaxClientMemory::Percent(7), MaxClientMemory::Bytes(12345)] {
            assert_eq!(limit.to_string().parse(), Ok(limit));
        }
    }
}
