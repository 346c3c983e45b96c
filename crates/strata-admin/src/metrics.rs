//! `GET /metrics`: the store's figures in the Prometheus text format, labelled by namespace.
//!
//! The figures are read from [`Store::stats`] at scrape time and written through the
//! `prometheus-client` crate, by a collector that encodes one snapshot: the counters already
//! live in the engine, so there is no second set of metrics to keep in step. The output is
//! OpenMetrics text, which Prometheus scrapes (counters end in `_total`, the document in
//! `# EOF`).

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use strata::store::{StoreStats, LATENCY_BOUNDS};
use strata::Store;

use crate::alerts::Alert;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `store`'s figures, the active `alerts` and the `uptime`.
pub fn render(store: &Store, alerts: &[Alert], uptime: Duration) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        stats: store.stats(),
        alerts: alerts.to_vec(),
        uptime,
    }));
    let mut text = String::new();
    // Writing to a String cannot fail, and every name and label here is well formed.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "the metrics could not be encoded");
    }
    text
}

/// One scrape's figures.
#[derive(Debug)]
struct Snapshot {
    stats: StoreStats,
    alerts: Vec<Alert>,
    uptime: Duration,
}

type Labels = [(&'static str, String); 1];

impl Snapshot {
    /// One labelled value per namespace.
    fn per_namespace<M: EncodeMetric>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        kind: MetricType,
        value: impl Fn(&strata::store::NamespaceStats) -> M,
    ) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
        for (ns, figures) in &self.stats.namespaces {
            let labels: Labels = [("namespace", ns.clone())];
            value(figures).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let e = &mut encoder;
        let counter = |v: u64| ConstCounter::new(v);
        self.per_namespace(
            e,
            "strata_hits",
            "Reads that found a live entry",
            Counter,
            |n| counter(n.stats.hits),
        )?;
        self.per_namespace(e, "strata_misses", "Reads that found none", Counter, |n| {
            counter(n.stats.misses)
        })?;
        self.per_namespace(e, "strata_inserts", "Entries inserted", Counter, |n| {
            counter(n.stats.inserts)
        })?;
        self.per_namespace(e, "strata_updates", "Entries replaced", Counter, |n| {
            counter(n.stats.updates)
        })?;
        self.per_namespace(e, "strata_removals", "Entries removed", Counter, |n| {
            counter(n.stats.removals)
        })?;
        self.per_namespace(e, "strata_expirations", "Entries expired", Counter, |n| {
            counter(n.stats.expirations)
        })?;
        self.per_namespace(e, "strata_evictions", "Entries evicted", Counter, |n| {
            counter(n.stats.evictions)
        })?;
        self.per_namespace(e, "strata_entries", "Entries held", Gauge, |n| {
            ConstGauge::new(n.stats.entries as i64)
        })?;
        self.per_namespace(e, "strata_bytes", "Bytes held", Gauge, |n| {
            ConstGauge::new(n.stats.weighted_size as i64)
        })?;
        self.per_namespace(
            e,
            "strata_max_bytes",
            "The namespace's byte bound",
            Gauge,
            |n| ConstGauge::new(n.limits.max_bytes.unwrap_or(0) as i64),
        )?;
        self.per_namespace(
            e,
            "strata_loads",
            "Keys loaded from the origin",
            Counter,
            |n| counter(n.loads.loads),
        )?;
        self.per_namespace(e, "strata_load_errors", "Loads that failed", Counter, |n| {
            counter(n.loads.errors)
        })?;
        self.per_namespace(
            e,
            "strata_load_timeouts",
            "Loads abandoned at the hard timeout",
            Counter,
            |n| counter(n.loads.timeouts),
        )?;
        self.per_namespace(
            e,
            "strata_stale_served",
            "Answers served stale by the fail-safe",
            Counter,
            |n| counter(n.loads.stale_served),
        )?;
        self.per_namespace(
            e,
            "strata_refreshes",
            "Loads started ahead of expiry",
            Counter,
            |n| counter(n.loads.refreshes),
        )?;

        let mut histogram = encoder.encode_descriptor(
            "strata_load_duration_seconds",
            "How long loads took, from the first miss to the landing",
            None,
            MetricType::Histogram,
        )?;
        for (ns, figures) in &self.stats.namespaces {
            let latency = figures.loads.latency;
            let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
            // Per bucket, not cumulative: the encoder adds them up.
            let buckets: Vec<(f64, u64)> = bounds.zip(latency.buckets).collect();
            let sum = latency.sum_nanos as f64 / 1e9;
            let labels: Labels = [("namespace", ns.clone())];
            histogram
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, latency.count(), &buckets, None)?;
        }

        let mut active = encoder.encode_descriptor(
            "strata_alert_active",
            "1 for each active alert",
            None,
            Gauge,
        )?;
        for alert in &self.alerts {
            let labels = [
                ("alert", alert.kind.as_str().to_string()),
                ("namespace", alert.namespace.clone()),
            ];
            ConstGauge::new(1i64).encode(active.encode_family(&labels)?)?;
        }
        let budget = encoder.encode_descriptor(
            "strata_budget_bytes",
            "The store's memory budget",
            None,
            Gauge,
        )?;
        ConstGauge::new(self.stats.max_bytes as i64).encode(budget)?;
        let uptime = encoder.encode_descriptor(
            "strata_uptime_seconds",
            "Seconds since the admin API was built",
            None,
            Gauge,
        )?;
        ConstGauge::new(self.uptime.as_secs_f64()).encode(uptime)?;
        Ok(())
    }
}
