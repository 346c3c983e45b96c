//! Server commands.
//!
//! ```text
//! DBSIZE                                     how many keys (in every namespace)
//! FLUSHDB [ASYNC|SYNC] / FLUSHALL [ASYNC|SYNC]   OK; every namespace emptied in O(1)
//! INFO [section ...]                         server, clients, memory, stats, keyspace,
//!                                            namespaces (strata's own: one line each)
//! CONFIG GET pattern [pattern ...]           parameters matching the glob patterns
//! CONFIG SET parameter value [parameter value ...]   maxmemory, maxmemory-policy,
//!                                            maxmemory-clients
//! COMMAND / COMMAND COUNT / COMMAND DOCS [name ...] / COMMAND INFO [name ...] / COMMAND LIST
//! ```
//!
//! `maxmemory` is the store's memory budget: setting it divides the budget among the
//! namespaces again and evicts until each fits its share. `maxmemory-policy` accepts Redis's
//! names; `noeviction` makes writes that would need room fail with OOM, and every other name
//! means strata's own policy (S3-FIFO with TinyLFU admission), whichever Redis policy it names.
//! `maxmemory-clients` is `[server] max_client_memory`: a size, or a percentage of `maxmemory`
//! (`10%`), bounding all clients' buffers together. Unlike Redis, 0 (no bound) is refused.

use std::fmt::Write as _;

use bytes::Bytes;
use strata::config::{ConfigError, MaxClientMemory, MaxmemoryPolicy};
use strata::store::StoreError;
use strata::Pattern;

use super::parse::Parse;
use super::{is, CommandResult, Ctx, Error, Kind, Spec, COMMANDS};
use crate::resp::{Frame, Protocol};

pub(crate) fn dbsize(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CommandResult {
    let n = ctx.shared.keyspace.len();
    ctx.int(n as i64);
    Ok(())
}

pub(crate) fn flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut options = Parse::new(args, 1);
    // Both modes do the same: every namespace is emptied in O(1).
    let _mode = options.eat("ASYNC") || options.eat("SYNC");
    options.finish()?;
    ctx.shared.keyspace.store().clear();
    ctx.ok();
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

pub(crate) fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let all = args.len() == 1
        || args[1..]
            .iter()
            .any(|a| is(a, "all") || is(a, "everything") || is(a, "default"));
    let wants = |section: &str| all || args[1..].iter().any(|a| is(a, section));
    let shared = ctx.shared;
    let store = shared.keyspace.store();
    let stats = store.stats();
    let mut text = String::new();
    let mut section = |title: &str, body: String| {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let _ = write!(text, "# {title}\r\n{body}");
    };
    if wants("server") {
        let uptime = shared.started.elapsed().as_secs();
        section(
            "Server",
            format!(
                "redis_version:{}\r\nstrata_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\n\
                 arch_bits:64\r\nmultiplexing_api:tokio\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
                 uptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
                crate::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
                std::process::id(),
                shared.port,
                uptime / 86_400,
            ),
        );
    }
    if wants("clients") {
        section(
            "Clients",
            format!(
                "connected_clients:{}\r\nmaxclients:{}\r\n",
                shared.clients(),
                shared.limits.max_clients
            ),
        );
    }
    if wants("memory") {
        let used = stats.total.weighted_size;
        let max = store.max_bytes();
        // Redis's `used_memory_rss`; 0 where the system does not tell.
        let rss = strata_admin::process::resident_memory_bytes().unwrap_or(0);
        let clients = &shared.client_memory;
        section(
            "Memory",
            format!(
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\n\
                 used_memory_rss_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\n\
                 maxmemory_policy:{}\r\nmem_clients_normal:{}\r\nmaxmemory_clients:{}\r\n",
                human_bytes(used),
                human_bytes(rss),
                human_bytes(max),
                shared.keyspace.policy(),
                clients.total(),
                clients.bound(),
            ),
        );
    }
    if wants("stats") {
        section(
            "Stats",
            format!(
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
                 evicted_clients:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
                shared.connections_received(),
                shared.commands_processed(),
                shared.rejected(),
                stats.total.expirations,
                stats.total.evictions,
                shared.client_memory.evicted(),
                stats.total.hits,
                stats.total.misses,
            ),
        );
    }
    if wants("keyspace") {
        let keys = shared.keyspace.len();
        let mut body = String::new();
        if keys > 0 {
            let expires = shared.keyspace.expiring_len();
            let _ = write!(body, "db0:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
        section("Keyspace", body);
    }
    if wants("namespaces") {
        let mut body = String::new();
        for (name, ns) in &stats.namespaces {
            let s = &ns.stats;
            let _ = write!(
                body,
                "ns_{name}:keys={},bytes={},max_bytes={},hits={},misses={},evictions={},expirations={}\r\n",
                s.entries,
                s.weighted_size,
                ns.limits.max_bytes.unwrap_or(0),
                s.hits,
                s.misses,
                s.evictions,
                s.expirations,
            );
        }
        section("Namespaces", body);
    }
    let text = Bytes::from(text);
    let frame = match ctx.proto() {
        Protocol::Resp3 => Frame::Verbatim {
            format: *b"txt",
            text,
        },
        Protocol::Resp2 => Frame::Bulk(text),
    };
    ctx.frame(&frame);
    Ok(())
}

/// The parameters `CONFIG GET` knows, with their values now.
fn parameters(ctx: &Ctx<'_>) -> Vec<(&'static str, String)> {
    let shared = ctx.shared;
    vec![
        ("maxmemory", shared.keyspace.store().max_bytes().to_string()),
        ("maxmemory-policy", shared.keyspace.policy().to_string()),
        (
            "maxmemory-clients",
            shared.client_memory_setting().to_string(),
        ),
        ("maxclients", shared.limits.max_clients.to_string()),
        (
            "timeout",
            shared
                .limits
                .idle_timeout
                .map_or(0, |d| d.as_secs())
                .to_string(),
        ),
        ("proto-max-bulk-len", shared.limits.max_bulk_len.to_string()),
        ("databases", "1".into()),
        ("save", String::new()),
        ("appendonly", "no".into()),
    ]
}

/// A memory size as Redis's config reads it: `100`, `1k` (1000), `1kb` (1024), `mb`, `gb`.
fn memory(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `maxmemory-clients` as Redis reads it: a percentage of `maxmemory` (`10%`), or a memory
/// size; 0 (Redis's "no bound") is refused.
fn client_memory(text: &[u8]) -> Option<MaxClientMemory> {
    let text = std::str::from_utf8(text).ok()?;
    if let Some(percent) = text.strip_suffix('%') {
        return match percent.parse::<u8>() {
            Ok(p @ 1..=100) => Some(MaxClientMemory::Percent(p)),
            _ => None,
        };
    }
    match memory(text.as_bytes())? {
        0 => None,
        bytes => Some(MaxClientMemory::Bytes(bytes)),
    }
}

pub(crate) fn config(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let sub = &args[1];
    if is(sub, "GET") {
        if args.len() < 3 {
            return Err(Error::new(
                "ERR wrong number of arguments for 'config|get' command",
            ));
        }
        let patterns: Vec<Pattern> = args[2..]
            .iter()
            .map(|p| Pattern::new(p.to_ascii_lowercase()))
            .collect();
        let pairs: Vec<(Frame, Frame)> = parameters(ctx)
            .into_iter()
            .filter(|(name, _)| patterns.iter().any(|p| p.matches(name)))
            .map(|(name, value)| {
                (
                    Frame::Bulk(Bytes::from_static(name.as_bytes())),
                    Frame::Bulk(Bytes::from(value)),
                )
            })
            .collect();
        ctx.frame(&Frame::Map(pairs));
        return Ok(());
    }
    if is(sub, "SET") {
        if args.len() < 4 || !args.len().is_multiple_of(2) {
            return Err(Error::new(
                "ERR wrong number of arguments for 'config|set' command",
            ));
        }
        for pair in args[2..].chunks_exact(2) {
            set_parameter(ctx, &pair[0], &pair[1])?;
        }
        ctx.ok();
        return Ok(());
    }
    if is(sub, "RESETSTAT") {
        // strata's counters are the engine's and never go back to zero (the admin API and
        // the metrics read them too): saying OK would be a lie.
        return Err(Error::new(
            "ERR CONFIG RESETSTAT is not supported: strata's counters are cumulative",
        ));
    }
    Err(Error::new(format!(
        "ERR unknown subcommand '{}'. Try CONFIG HELP.",
        super::printable(sub, 128)
    )))
}

fn set_parameter(ctx: &mut Ctx<'_>, name: &[u8], value: &[u8]) -> CommandResult {
    let failed = |param: &str, why: &str| {
        Error::new(format!(
            "ERR CONFIG SET failed (possibly related to argument '{param}') - {why}"
        ))
    };
    if is(name, "maxmemory") {
        let bytes = memory(value)
            .ok_or_else(|| failed("maxmemory", "argument couldn't be parsed into an integer"))?;
        if bytes == 0 {
            return Err(failed(
                "maxmemory",
                "strata always has a memory bound; 0 (no limit) is not supported",
            ));
        }
        ctx.shared
            .keyspace
            .store()
            .set_max_bytes(bytes)
            .map_err(|e| match e {
                // The configuration's words name its own field (`max_bytes = ...`); here the
                // parameter is `maxmemory`, so only the reason is told.
                StoreError::Config(ConfigError::Invalid { reason, .. }) => {
                    failed("maxmemory", &reason)
                }
                other => failed("maxmemory", &other.to_string()),
            })?;
        // A bound on client buffers given as a share of the budget follows it.
        ctx.shared.apply_client_memory_setting();
        tracing::info!(maxmemory = bytes, "memory budget changed by CONFIG SET");
        return Ok(());
    }
    if is(name, "maxmemory-clients") {
        let setting = client_memory(value).ok_or_else(|| {
            failed(
                "maxmemory-clients",
                "a size or a percentage of maxmemory (like 10%); 0 (no bound) is not supported",
            )
        })?;
        ctx.shared.set_client_memory_setting(setting);
        tracing::info!(
            max_client_memory = %setting,
            bound = ctx.shared.client_memory.bound(),
            "bound on client buffers changed by CONFIG SET"
        );
        return Ok(());
    }
    if is(name, "maxmemory-policy") {
        let policy: MaxmemoryPolicy = String::from_utf8_lossy(value)
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| failed("maxmemory-policy", "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"))?;
        ctx.shared.keyspace.set_policy(policy);
        tracing::info!(
            policy = policy.as_str(),
            "maxmemory-policy changed by CONFIG SET"
        );
        return Ok(());
    }
    Err(Error::new(format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
        super::printable(name, 128)
    )))
}

fn flags(spec: &Spec) -> Frame {
    let mut flags = match spec.kind {
        Kind::Write => vec!["write", "denyoom"],
        Kind::Read => vec!["readonly", "fast"],
        Kind::Other => vec!["fast"],
    };
    if spec.no_auth {
        flags.push("no_auth");
    }
    Frame::Set(flags.into_iter().map(|f| Frame::Simple(f.into())).collect())
}

fn command_info(spec: &Spec) -> Frame {
    let (first, last, step) = spec.keys;
    Frame::Array(vec![
        Frame::Bulk(Bytes::from_static(spec.name.as_bytes())),
        Frame::Integer(i64::from(spec.arity)),
        flags(spec),
        Frame::Integer(i64::from(first)),
        Frame::Integer(i64::from(last)),
        Frame::Integer(i64::from(step)),
        Frame::Set(Vec::new()),
        Frame::Set(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

fn command_doc(spec: &Spec) -> Frame {
    let text = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
    Frame::Map(vec![
        (text("summary"), text(spec.summary)),
        (text("since"), text("1.0.0")),
        (text("group"), text(spec.group)),
    ])
}

pub(crate) fn command(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let Some(sub) = args.get(1) else {
        ctx.frame(&Frame::Array(COMMANDS.iter().map(command_info).collect()));
        return Ok(());
    };
    let named =
        || -> Vec<Option<&'static Spec>> { args[2..].iter().map(|n| super::lookup(n)).collect() };
    if is(sub, "COUNT") {
        if args.len() != 2 {
            return Err(Error::new(
                "ERR wrong number of arguments for 'command|count' command",
            ));
        }
        ctx.int(COMMANDS.len() as i64);
    } else if is(sub, "LIST") {
        let names = COMMANDS
            .iter()
            .map(|s| Frame::Bulk(Bytes::from_static(s.name.as_bytes())))
            .collect();
        ctx.frame(&Frame::Array(names));
    } else if is(sub, "INFO") {
        let infos = if args.len() == 2 {
            COMMANDS.iter().map(command_info).collect()
        } else {
            named()
                .into_iter()
                .map(|s| s.map_or(Frame::Null, command_info))
                .collect()
        };
        ctx.frame(&Frame::Array(infos));
    } else if is(sub, "DOCS") {
        let specs: Vec<&Spec> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            named().into_iter().flatten().collect()
        };
        let docs = specs
            .into_iter()
            .map(|s| {
                (
                    Frame::Bulk(Bytes::from_static(s.name.as_bytes())),
                    command_doc(s),
                )
            })
            .collect();
        ctx.frame(&Frame::Map(docs));
    } else {
        return Err(Error::new(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            super::printable(sub, 128)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::memory;
    use strata::config::MaxClientMemory;

    #[test]
    fn memory_sizes_read_as_redis_reads_them() {
        assert_eq!(memory(b"100"), Some(100));
        assert_eq!(memory(b"1k"), Some(1000));
        assert_eq!(memory(b"1KB"), Some(1024));
        assert_eq!(memory(b"2mb"), Some(2 << 20));
        assert_eq!(memory(b"1gb"), Some(1 << 30));
        assert_eq!(memory(b"1tb"), None);
        assert_eq!(memory(b"-1"), None);
        assert_eq!(memory(b""), None);
    }

    #[test]
    fn maxmemory_clients_is_a_percentage_or_a_size_but_never_zero() {
        use super::client_memory;
        assert_eq!(client_memory(b"10%"), Some(MaxClientMemory::Percent(10)));
        assert_eq!(client_memory(b"100%"), Some(MaxClientMemory::Percent(100)));
        assert_eq!(
            client_memory(b"64mb"),
            Some(MaxClientMemory::Bytes(64 << 20))
        );
        assert_eq!(client_memory(b"1000"), Some(MaxClientMemory::Bytes(1000)));
        for bad in [&b"0"[..], b"0%", b"101%", b"-1%", b"x%", b"ten"] {
            assert_eq!(
                client_memory(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
