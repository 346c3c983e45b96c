//! `GET /metrics`: the store's figures for Prometheus, labelled by namespace.
//!
//! ## Design
//! **Read at scrape time, not mirrored.** Every figure already lives in the engine as an
//! exact counter ([`Store::stats`]), and the load latency as a histogram on Prometheus's
//! usual bounds ([`Latency`](strata::store::Latency)). Keeping a second set of
//! `prometheus-client` counters in step with them would mean a write on every hit; instead
//! a [`Collector`] takes one `stats()` snapshot per scrape and encodes it. That is the hook
//! `prometheus-client` offers for values computed on each scrape, and it keeps the text
//! itself (escaping, `_total` suffixes, cumulative buckets, `+Inf`) the crate's business:
//! nothing here formats exposition lines by hand.
//!
//! **The format is OpenMetrics text 1.0** ([`CONTENT_TYPE`]), the only text format
//! `prometheus-client` writes. Prometheus asks for it first when it scrapes (since 2.5), so
//! it gets every type. A reader of the older 0.0.4 text format reads the same samples with
//! the same names and values (`# HELP` and `# TYPE` lines included; `# UNIT` and the final
//! `# EOF` are comments to it) with one difference: a counter's `# TYPE` line names the
//! family (`strata_hits`) while its sample is `strata_hits_total`, so such a reader takes
//! the counters as untyped. The unit tests parse the output with a 0.0.4 parser
//! (`prometheus-parse`) and check the OpenMetrics naming rules themselves.
//!
//! **The histogram is the store's own.** `strata_load_duration_seconds` exposes the
//! per-bucket counts of [`LoadStats::latency`](strata::store::LoadStats::latency) on
//! [`LATENCY_BOUNDS`] plus `+Inf`; the encoder makes them cumulative, `_count` is the loads
//! timed and `_sum` their total time in seconds. Failed and timed-out loads are timed too.
//!
//! **Never a broken exposition.** The encoder refuses a gauge above `i64::MAX` (OpenMetrics
//! gauges are signed), and once stopped halfway on a budget of 2^64 - 1 bytes, leaving a
//! scrape with no value and no `# EOF`. Budgets are now bounded well below that
//! ([`MAX_BUDGET`](strata::config::MAX_BUDGET)), and every gauge is clamped to `i64::MAX`
//! before it is encoded, so one absurd figure reads as 9.2e18 rather than costing the whole
//! scrape: a 500 would leave every other series without a sample. Should the encoder fail
//! anyway, [`render`] returns the error and no text, and `/metrics` answers 500: a scraper
//! then marks the target down instead of reading part of it.
//!
//! ## The metrics
//! Per namespace (label `namespace`; every configured namespace, opened or not, so series
//! do not appear out of nowhere):
//!
//! | metric | type | from |
//! |---|---|---|
//! | `strata_hits_total`, `strata_misses_total` | counter | reads that found a live entry, and those that did not |
//! | `strata_inserts_total`, `strata_updates_total`, `strata_removals_total` | counter | writes |
//! | `strata_expirations_total`, `strata_evictions_total` | counter | entries reclaimed by TTL, pushed out by the bounds |
//! | `strata_entries`, `strata_bytes` | gauge | held now |
//! | `strata_max_bytes` | gauge | the namespace's share of the budget |
//! | `strata_loads_total`, `strata_load_errors_total`, `strata_load_timeouts_total` | counter | origin loads |
//! | `strata_stale_served_total`, `strata_refreshes_total` | counter | fail-safe answers, refresh-ahead loads |
//! | `strata_load_duration_seconds` | histogram | load latency |
//!
//! And once per store: `strata_alert_active{alert, namespace}` (gauge, 1 per active alert;
//! no sample when none is), `strata_budget_bytes` (gauge, the store's `max_bytes`) and
//! `strata_uptime_seconds` (gauge).
//!
//! The process's resident memory, `process_resident_memory_bytes` (gauge, the name every
//! Prometheus client library uses; from `/proc/self/statm`, so on Linux only).
//!
//! And when the API runs beside a server that hands it its figures
//! ([`Admin::with_server_stats`](crate::Admin::with_server_stats), as `strata serve` does),
//! named after Redis's `INFO` fields:
//!
//! | metric | type | from |
//! |---|---|---|
//! | `strata_server_connected_clients` | gauge | clients connected now |
//! | `strata_server_connections_received_total` | counter | connections accepted, refused ones included |
//! | `strata_server_rejected_connections_total` | counter | connections refused at `max_clients` |
//! | `strata_server_commands_processed_total` | counter | commands run |
//! | `strata_server_evicted_clients_total` | counter | clients closed because all clients' buffers passed their bound |
//! | `strata_server_client_buffer_bytes` | gauge | bytes held by all clients' buffers now |
//! | `strata_server_client_buffer_limit_bytes` | gauge | the bound on them (0 for none) |

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use strata::store::{NamespaceStats, LATENCY_BOUNDS};
use strata::Store;

use crate::alerts::Alert;
use crate::process;
use crate::server_stats::ServerStats;
use strata_redis::TierStats;

/// The content type of [`render`]'s text (OpenMetrics 1.0; see the module docs).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What runs beside the store and has figures of its own: a server, a shared tier.
#[derive(Debug, Clone, Default)]
pub struct Beside {
    /// The server's figures, if there is a server.
    pub server: Option<ServerStats>,
    /// The shared tier's figures, if the store has one.
    pub tier: Option<TierStats>,
}

/// The exposition of `store`'s figures (read now), the active `alerts`, the `uptime`, the
/// process's resident memory, and the figures of what runs `beside` the store.
///
/// Complete or nothing: every gauge is clamped to what the encoder takes (see the module
/// docs), and should encoding fail anyway the error is returned, never part of the text.
pub fn render(
    store: &Store,
    alerts: &[Alert],
    uptime: Duration,
    beside: &Beside,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures {
        store: store.clone(),
        alerts: alerts.to_vec(),
        uptime,
        beside: beside.clone(),
        resident_memory: process::resident_memory_bytes(),
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Everything one scrape exposes: the store, read at scrape time and encoded as read (see
/// the module docs), and the figures taken with it.
#[derive(Debug)]
struct Figures {
    store: Store,
    alerts: Vec<Alert>,
    uptime: Duration,
    beside: Beside,
    resident_memory: Option<u64>,
}

/// A byte count or a count of things as a gauge, clamped to `i64::MAX`, the most a gauge
/// can be (see the module docs).
fn gauge(value: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// A figure of something beside the store (`T`: a server's, a tier's): its name (before the
/// unit suffix and, for a counter, `_total`), help, type, unit and field.
type BesideFamily<T> = (
    &'static str,
    &'static str,
    MetricType,
    Option<Unit>,
    fn(&T) -> u64,
);

/// Encodes one figure of each family in `families`, read from `figures`.
fn encode_beside<T>(
    encoder: &mut DescriptorEncoder<'_>,
    families: &[BesideFamily<T>],
    figures: &T,
) -> Result<(), std::fmt::Error> {
    for (name, help, kind, unit, field) in families {
        let family = encoder.encode_descriptor(name, help, unit.as_ref(), *kind)?;
        let value = field(figures);
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(family)?,
            _ => gauge(value).encode(family)?,
        }
    }
    Ok(())
}

const TIER: [BesideFamily<TierStats>; 17] = [
    ("strata_redis_link_up", "Whether the last call to Redis (or the log's tailer) reached it (1) or not (0)", MetricType::Gauge, None, |t| u64::from(t.link_up)),
    ("strata_redis_log_following", "Whether this instance follows the invalidation log (1) or cannot hear of other instances' changes (0)", MetricType::Gauge, None, |t| u64::from(t.log_following)),
    ("strata_redis_hits", "Loads that found the value in Redis", MetricType::Counter, None, |t| t.l2_hits),
    ("strata_redis_misses", "Loads that found nothing usable in Redis", MetricType::Counter, None, |t| t.l2_misses),
    ("strata_redis_errors", "Redis calls that failed or timed out", MetricType::Counter, None, |t| t.l2_errors),
    ("strata_redis_corrupt", "Values under strata's keys that were not strata's, treated as misses", MetricType::Counter, None, |t| t.l2_corrupt),
    ("strata_redis_lookup_micros", "Time spent in Redis lookups, in microseconds", MetricType::Counter, None, |t| t.l2_lookup_micros),
    ("strata_redis_lookups", "Redis lookups made", MetricType::Counter, None, |t| t.l2_lookups),
    ("strata_redis_writes_sent", "Values written to Redis", MetricType::Counter, None, |t| t.writes_sent),
    ("strata_redis_writes_refused", "Loads' values Redis refused because the key changed while the origin was read", MetricType::Counter, None, |t| t.writes_refused),
    ("strata_redis_invalidations_sent", "Invalidations this instance sent", MetricType::Counter, None, |t| t.invalidations_sent),
    ("strata_redis_invalidations_received", "Invalidations received from other instances and applied", MetricType::Counter, None, |t| t.invalidations_received),
    ("strata_redis_invalidations_replayed", "Invalidations read after a reconnect (missed while the link was down)", MetricType::Counter, None, |t| t.invalidations_replayed),
    ("strata_redis_gaps", "Times what the shared namespaces hold was marked unverified (the log could not be replayed, or writes were lost)", MetricType::Counter, None, |t| t.gaps),
    ("strata_redis_queue_depth", "Writes and invalidations waiting to be sent to Redis", MetricType::Gauge, None, |t| t.queue_depth),
    ("strata_redis_queue_overflows", "Times the queue was full while Redis was away", MetricType::Counter, None, |t| t.queue_overflows),
    ("strata_redis_jobs_dropped", "Writes and invalidations Redis kept refusing, given up on", MetricType::Counter, None, |t| t.jobs_dropped),
];

const SERVER: [BesideFamily<ServerStats>; 7] = [
    (
        "strata_server_connected_clients",
        "Clients connected now",
        MetricType::Gauge,
        None,
        |s| s.connected_clients,
    ),
    (
        "strata_server_connections_received",
        "Connections accepted since start, refused ones included",
        MetricType::Counter,
        None,
        |s| s.connections_received,
    ),
    (
        "strata_server_rejected_connections",
        "Connections refused because max_clients were connected",
        MetricType::Counter,
        None,
        |s| s.rejected_connections,
    ),
    (
        "strata_server_commands_processed",
        "Commands run since start",
        MetricType::Counter,
        None,
        |s| s.commands_processed,
    ),
    (
        "strata_server_evicted_clients",
        "Clients closed because the buffers of all clients passed their bound",
        MetricType::Counter,
        None,
        |s| s.evicted_clients,
    ),
    (
        "strata_server_client_buffer",
        "Bytes held by all clients' buffers now",
        MetricType::Gauge,
        Some(Unit::Bytes),
        |s| s.client_buffer_bytes,
    ),
    (
        "strata_server_client_buffer_limit",
        "The bound on the bytes held by all clients' buffers (0 for none)",
        MetricType::Gauge,
        Some(Unit::Bytes),
        |s| s.client_buffer_limit,
    ),
];

/// A per-namespace counter: its family name (the encoder adds `_total`), help, and field.
type CounterFamily = (&'static str, &'static str, fn(&NamespaceStats) -> u64);

const COUNTERS: [CounterFamily; 12] = [
    ("strata_hits", "Reads that found a live entry", |n| {
        n.stats.hits
    }),
    ("strata_misses", "Reads that found no live entry", |n| {
        n.stats.misses
    }),
    (
        "strata_inserts",
        "Entries added for a key that had none",
        |n| n.stats.inserts,
    ),
    (
        "strata_updates",
        "Values replaced for a key that had one",
        |n| n.stats.updates,
    ),
    (
        "strata_removals",
        "Entries removed by remove or clear",
        |n| n.stats.removals,
    ),
    (
        "strata_expirations",
        "Entries reclaimed past their TTL or idle time",
        |n| n.stats.expirations,
    ),
    (
        "strata_evictions",
        "Entries pushed out to respect a bound",
        |n| n.stats.evictions,
    ),
    (
        "strata_loads",
        "Keys loaded from the origin (one per flight)",
        |n| n.loads.loads,
    ),
    (
        "strata_load_errors",
        "Loads that failed, panicked, timed out or were cancelled",
        |n| n.loads.errors,
    ),
    (
        "strata_load_timeouts",
        "Loads abandoned at the hard timeout",
        |n| n.loads.timeouts,
    ),
    (
        "strata_stale_served",
        "Answers served stale by the fail-safe",
        |n| n.loads.stale_served,
    ),
    (
        "strata_refreshes",
        "Loads started ahead of expiry by refresh ahead",
        |n| n.loads.refreshes,
    ),
];

/// A per-namespace gauge: its name (before the unit suffix, if any), help, unit and field.
type GaugeFamily = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&NamespaceStats) -> u64,
);

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.store.stats();
        let namespaces = &stats.namespaces;
        let labels = |ns: &str| [("namespace", ns.to_owned())];

        for (name, help, field) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (ns, figures) in namespaces {
                ConstCounter::new(field(figures)).encode(family.encode_family(&labels(ns))?)?;
            }
        }

        // A unit is written as a name suffix by the encoder: "strata" + bytes is strata_bytes.
        let gauges: [GaugeFamily; 3] = [
            ("strata_entries", "Entries held now", None, |n| {
                n.stats.entries
            }),
            (
                "strata",
                "Bytes held now (the entries' weights)",
                Some(Unit::Bytes),
                |n| n.stats.weighted_size,
            ),
            (
                "strata_max",
                "The namespace's share of the memory budget",
                Some(Unit::Bytes),
                |n| n.limits.max_bytes.unwrap_or(0),
            ),
        ];
        for (name, help, unit, field) in &gauges {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            for (ns, figures) in namespaces {
                gauge(field(figures)).encode(family.encode_family(&labels(ns))?)?;
            }
        }

        let mut histogram = encoder.encode_descriptor(
            "strata_load_duration",
            "How long loads took, from the first caller's miss to the landing",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (ns, figures) in namespaces {
            let latency = figures.loads.latency;
            // `f64::MAX` is how prometheus-client spells the +Inf bound. The counts are per
            // bucket, as the store keeps them: the encoder adds them up.
            let bounds = LATENCY_BOUNDS.into_iter().chain([f64::MAX]);
            let buckets: Vec<(f64, u64)> = bounds.zip(latency.buckets).collect();
            let sum = Duration::from_nanos(latency.sum_nanos).as_secs_f64();
            histogram
                .encode_family(&labels(ns))?
                .encode_histogram::<NoLabelSet>(sum, latency.count(), &buckets, None)?;
        }

        let mut active = encoder.encode_descriptor(
            "strata_alert_active",
            "1 for each active alert, by alert and namespace",
            None,
            MetricType::Gauge,
        )?;
        for alert in &self.alerts {
            let labels = [
                ("alert", alert.kind.as_str().to_owned()),
                ("namespace", alert.namespace.clone()),
            ];
            ConstGauge::new(1u32).encode(active.encode_family(&labels)?)?;
        }

        let budget = encoder.encode_descriptor(
            "strata_budget",
            "The store's memory budget, shared by its namespaces",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        gauge(stats.max_bytes).encode(budget)?;

        let uptime = encoder.encode_descriptor(
            "strata_uptime",
            "Time since the admin API was built",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.uptime.as_secs_f64()).encode(uptime)?;

        if let Some(bytes) = self.resident_memory {
            let resident = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size of the process",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            gauge(bytes).encode(resident)?;
        }

        if let Some(server) = &self.beside.server {
            encode_beside(&mut encoder, &SERVER, server)?;
        }
        if let Some(tier) = &self.beside.tier {
            encode_beside(&mut encoder, &TIER, tier)?;
            let mut lag = encoder.encode_descriptor(
                "strata_redis_log_lag_entries",
                "Entries of each partition of the invalidation log this instance had not read, \
                 sampled about once a second",
                None,
                MetricType::Gauge,
            )?;
            for (partition, behind) in tier.log_lag.iter().enumerate() {
                let labels = [("partition", partition.to_string())];
                gauge(*behind).encode(lag.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use prometheus_parse::{Scrape, Value};
    use strata::config::Config;
    use strata::store::Put;
    use strata::MockClock;

    use super::*;
    use crate::alerts::AlertKind;

    /// A store of two namespaces: `user` (1 MiB of its own, on a mock clock) and `default`,
    /// which is never opened and takes the rest of the 16 MiB budget.
    fn store() -> (Store, MockClock) {
        let toml = "max_bytes = \"16MiB\"\n[namespaces.user]\nmax_bytes = \"1MiB\"\n";
        let config = Config::from_sources(Some(toml), []).unwrap();
        let clock = MockClock::new();
        let store = Store::builder(config).clock(clock.clone()).build().unwrap();
        (store, clock)
    }

    fn parse(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    /// The value of the sample `name` whose labels are exactly `labels`. A 0.0.4 parser
    /// reads the counters as untyped (see the module docs), so any plain number will do.
    fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let found: Vec<&Value> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| {
                let have: BTreeMap<&str, &str> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                have == want
            })
            .map(|s| &s.value)
            .collect();
        match found[..] {
            [Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x)] => *x,
            _ => panic!("{name}{labels:?}: found {found:?}"),
        }
    }

    /// The cumulative buckets of the latency histogram of `ns`, by bound.
    fn buckets(scrape: &Scrape, ns: &str) -> Vec<(f64, f64)> {
        let histogram = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "strata_load_duration_seconds" && s.labels.get("namespace") == Some(ns)
            })
            .map(|s| &s.value);
        match histogram {
            Some(Value::Histogram(buckets)) => {
                buckets.iter().map(|b| (b.less_than, b.count)).collect()
            }
            other => panic!("no histogram for {ns}: {other:?}"),
        }
    }

    /// Checks the text against the OpenMetrics rules a 0.0.4 parser does not: every sample
    /// belongs to a family declared before it, with the suffixes its type allows; `+Inf`
    /// is spelled so; the text ends with `# EOF`. Returns each family's type.
    fn check_openmetrics(text: &str) -> BTreeMap<String, String> {
        let mut types = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in text.lines().filter(|l| *l != "# EOF") {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "{name} declared twice"
                );
                current = Some((name.to_owned(), kind.to_owned()));
                continue;
            }
            if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
                continue;
            }
            let (family, kind) = current.as_ref().expect("a sample before any # TYPE");
            let sample = line.split(['{', ' ']).next().unwrap();
            let suffix = sample.strip_prefix(family.as_str()).unwrap_or_else(|| {
                panic!("{sample} is not in family {family}");
            });
            let allowed: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "gauge" => &[""],
                "histogram" => &["_bucket", "_sum", "_count"],
                other => panic!("unexpected type {other}"),
            };
            assert!(allowed.contains(&suffix), "{line} in a {kind}");
            if line.contains("le=") {
                assert!(!line.contains("inf\""), "+Inf is spelled +Inf: {line}");
            }
        }
        types
    }

    #[test]
    fn every_family_has_its_name_and_type() {
        let (store, _) = store();
        let text = render(&store, &[], Duration::ZERO, &Beside::default()).unwrap();
        let types = check_openmetrics(&text);
        let counters = [
            "hits",
            "misses",
            "inserts",
            "updates",
            "removals",
            "expirations",
            "evictions",
            "loads",
            "load_errors",
            "load_timeouts",
            "stale_served",
            "refreshes",
        ];
        let gauges = [
            "entries",
            "bytes",
            "max_bytes",
            "alert_active",
            "budget_bytes",
            "uptime_seconds",
        ];
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        for name in counters {
            expected.insert(format!("strata_{name}"), "counter".into());
        }
        for name in gauges {
            expected.insert(format!("strata_{name}"), "gauge".into());
        }
        expected.insert("strata_load_duration_seconds".into(), "histogram".into());
        if cfg!(target_os = "linux") {
            expected.insert("process_resident_memory_bytes".into(), "gauge".into());
        }
        assert_eq!(types, expected);
        // Every family has its help, and the units are declared.
        let scrape = parse(&text);
        let helped: BTreeSet<&String> = scrape.docs.keys().collect();
        assert_eq!(helped, expected.keys().collect());
        assert!(text.contains("# UNIT strata_load_duration_seconds seconds\n"));
        assert!(text.contains("# UNIT strata_budget_bytes bytes\n"));
    }

    #[test]
    fn known_traffic_gives_exact_values() {
        let (store, clock) = store();
        let user = store.namespace::<u64>("user").unwrap();
        user.insert("a", 1).unwrap();
        user.insert("a", 2).unwrap(); // an update
        user.insert("b", 3).unwrap();
        user.insert("gone", 4).unwrap();
        assert_eq!(user.get("a"), Some(2));
        assert_eq!(user.get("b"), Some(3));
        assert_eq!(user.get("b"), Some(3));
        assert_eq!(user.get("nothing"), None);
        user.remove("gone");
        let loaded = user
            .get_or_load_blocking("c", |_| Ok::<_, std::io::Error>(5))
            .unwrap();
        assert!(!loaded.from_cache());
        let failed =
            user.get_or_load_blocking("d", |_| Err::<u64, _>(std::io::Error::other("down")));
        assert!(failed.is_err());
        // One entry with a TTL of its own expires and is reclaimed.
        user.insert_with("brief", 6, Put::new().ttl(Duration::from_secs(60)))
            .unwrap();
        clock.advance(Duration::from_secs(61));
        store.run_pending_tasks();

        let alert = Alert {
            kind: AlertKind::MemoryHigh,
            namespace: "user".into(),
            value: 0.95,
            threshold: 0.9,
            since_unix_ms: 0,
            message: String::new(),
        };
        let text = render(
            &store,
            &[alert],
            Duration::from_millis(1_500),
            &Beside::default(),
        )
        .unwrap();
        check_openmetrics(&text);
        let scrape = parse(&text);
        let user = |name: &str| value(&scrape, name, &[("namespace", "user")]);
        // Hits: a, b, b. Misses: nothing, and c and d (the loads' own lookups).
        assert_eq!(user("strata_hits_total"), 3.0);
        assert_eq!(user("strata_misses_total"), 3.0);
        // a, b, gone, c (loaded), brief.
        assert_eq!(user("strata_inserts_total"), 5.0);
        assert_eq!(user("strata_updates_total"), 1.0);
        assert_eq!(user("strata_removals_total"), 1.0);
        assert_eq!(user("strata_expirations_total"), 1.0);
        assert_eq!(user("strata_evictions_total"), 0.0);
        // a, b and c.
        assert_eq!(user("strata_entries"), 3.0);
        let figures = store.stats().namespaces["user"].stats;
        assert!(figures.weighted_size > 0);
        assert_eq!(user("strata_bytes"), figures.weighted_size as f64);
        assert_eq!(user("strata_max_bytes"), f64::from(1u32 << 20));
        assert_eq!(user("strata_loads_total"), 2.0);
        assert_eq!(user("strata_load_errors_total"), 1.0);
        assert_eq!(user("strata_load_timeouts_total"), 0.0);
        assert_eq!(user("strata_stale_served_total"), 0.0);
        assert_eq!(user("strata_refreshes_total"), 0.0);
        assert_eq!(user("strata_load_duration_seconds_count"), 2.0);

        // The namespace never opened is there, at zero, with its share of the budget.
        let default = |name: &str| value(&scrape, name, &[("namespace", "default")]);
        assert_eq!(default("strata_hits_total"), 0.0);
        assert_eq!(default("strata_load_duration_seconds_count"), 0.0);
        assert_eq!(default("strata_max_bytes"), f64::from(15u32 << 20));

        let labels = [("alert", "memory_high"), ("namespace", "user")];
        assert_eq!(value(&scrape, "strata_alert_active", &labels), 1.0);
        assert_eq!(
            value(&scrape, "strata_budget_bytes", &[]),
            f64::from(16u32 << 20)
        );
        assert_eq!(value(&scrape, "strata_uptime_seconds", &[]), 1.5);

        // Both loads took far less than a second, on the real clock: where exactly is not
        // known, but the buckets are cumulative and end with both at +Inf.
        let user_buckets = buckets(&scrape, "user");
        let bounds: Vec<f64> = user_buckets.iter().map(|(le, _)| *le).collect();
        let expected: Vec<f64> = LATENCY_BOUNDS.into_iter().chain([f64::INFINITY]).collect();
        assert_eq!(bounds, expected);
        assert!(
            user_buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{user_buckets:?}"
        );
        assert_eq!(user_buckets[9], (1.0, 2.0), "both under a second");
        assert_eq!(user_buckets[13], (f64::INFINITY, 2.0));
    }

    #[test]
    fn the_bytes_held_are_the_engine_s_weights() {
        let (store, _) = store();
        let user = store.namespace::<String>("user").unwrap();
        user.insert("k", "x".repeat(1000)).unwrap();
        let weighted = store.stats().namespaces["user"].stats.weighted_size;
        assert!(weighted >= 1000, "{weighted}");
        let scrape = parse(&render(&store, &[], Duration::ZERO, &Beside::default()).unwrap());
        let labels = [("namespace", "user")];
        assert_eq!(value(&scrape, "strata_bytes", &labels), weighted as f64);
        assert_eq!(value(&scrape, "strata_entries", &labels), 1.0);
        assert!(
            scrape
                .samples
                .iter()
                .all(|s| s.metric != "strata_alert_active"),
            "no alert, no sample"
        );
    }

    /// On tokio's paused clock the loads take exactly as long as their loaders sleep, so
    /// every bucket's count is known.
    #[tokio::test(start_paused = true)]
    async fn the_latency_histogram_is_cumulative_on_the_store_s_bounds() {
        let (store, _) = store();
        let user = store.namespace::<u64>("user").unwrap();
        for (i, ms) in [3u64, 40, 40, 300, 20_000].into_iter().enumerate() {
            let loaded = user
                .get_or_load(format!("k{i}"), move |_| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<_, std::io::Error>(ms)
                })
                .await
                .unwrap();
            assert_eq!(loaded.value, ms);
        }
        let text = render(&store, &[], Duration::ZERO, &Beside::default()).unwrap();
        check_openmetrics(&text);
        assert!(text.contains("le=\"+Inf\""), "{text}");
        let scrape = parse(&text);
        // 3 ms is at most 5 ms; 40 ms at most 50 ms; 300 ms at most 0.5 s; 20 s past 10 s.
        let expected = [
            (0.001, 0.0),
            (0.0025, 0.0),
            (0.005, 1.0),
            (0.01, 1.0),
            (0.025, 1.0),
            (0.05, 3.0),
            (0.1, 3.0),
            (0.25, 3.0),
            (0.5, 4.0),
            (1.0, 4.0),
            (2.5, 4.0),
            (5.0, 4.0),
            (10.0, 4.0),
            (f64::INFINITY, 5.0),
        ];
        assert_eq!(buckets(&scrape, "user"), expected);
        let labels = [("namespace", "user")];
        assert_eq!(
            value(&scrape, "strata_load_duration_seconds_count", &labels),
            5.0
        );
        let sum = value(&scrape, "strata_load_duration_seconds_sum", &labels);
        assert!((sum - 20.383).abs() < 1e-9, "{sum}");
    }

    fn server_beside(server: ServerStats) -> Beside {
        Beside {
            server: Some(server),
            tier: None,
        }
    }

    fn server_stats() -> ServerStats {
        ServerStats {
            connected_clients: 3,
            connections_received: 40,
            rejected_connections: 2,
            commands_processed: 1_000,
            client_buffer_bytes: 4096,
            client_buffer_limit: 64 << 20,
            evicted_clients: 1,
        }
    }

    #[test]
    fn a_server_s_figures_are_families_of_their_own() {
        let (store, _) = store();
        let without = render(&store, &[], Duration::ZERO, &Beside::default()).unwrap();
        assert!(!without.contains("strata_server_"), "{without}");
        let text = render(&store, &[], Duration::ZERO, &server_beside(server_stats())).unwrap();
        let types = check_openmetrics(&text);
        let scrape = parse(&text);
        let expected = [
            ("strata_server_connected_clients", "gauge", 3.0),
            ("strata_server_connections_received", "counter", 40.0),
            ("strata_server_rejected_connections", "counter", 2.0),
            ("strata_server_commands_processed", "counter", 1_000.0),
            ("strata_server_evicted_clients", "counter", 1.0),
            ("strata_server_client_buffer_bytes", "gauge", 4096.0),
            (
                "strata_server_client_buffer_limit_bytes",
                "gauge",
                f64::from(64u32 << 20),
            ),
        ];
        for (family, kind, figure) in expected {
            assert_eq!(
                types.get(family).map(String::as_str),
                Some(kind),
                "{family}"
            );
            let sample = match kind {
                "counter" => format!("{family}_total"),
                _ => family.to_owned(),
            };
            assert_eq!(value(&scrape, &sample, &[]), figure, "{sample}");
        }
        assert!(text.contains("# UNIT strata_server_client_buffer_bytes bytes\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_s_resident_memory_is_there_without_a_server() {
        let (store, _) = store();
        let scrape = parse(&render(&store, &[], Duration::ZERO, &Beside::default()).unwrap());
        let rss = value(&scrape, "process_resident_memory_bytes", &[]);
        assert!(rss > f64::from(1u32 << 20), "{rss}");
    }

    /// A gauge past `i64::MAX` once stopped the encoder halfway: a scrape without values or
    /// `# EOF`. It is clamped now, and the rest of the text is whole.
    #[test]
    fn a_gauge_past_what_the_encoder_takes_is_clamped_and_the_text_is_whole() {
        let (store, _) = store();
        let absurd = ServerStats {
            client_buffer_bytes: u64::MAX,
            client_buffer_limit: 1 << 63,
            ..server_stats()
        };
        let text = render(&store, &[], Duration::ZERO, &server_beside(absurd)).unwrap();
        check_openmetrics(&text);
        let scrape = parse(&text);
        let clamped = i64::MAX as f64;
        assert_eq!(
            value(&scrape, "strata_server_client_buffer_bytes", &[]),
            clamped
        );
        assert_eq!(
            value(&scrape, "strata_server_client_buffer_limit_bytes", &[]),
            clamped
        );
        assert_eq!(value(&scrape, "strata_server_connected_clients", &[]), 3.0);
    }
}
