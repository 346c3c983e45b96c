//! The store's figures: [`NamespaceStats`] per namespace and [`StoreStats`] for the store,
//! as the admin API, the metrics and `STRATA.STATS` report them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::{LoadStats, Store};
use crate::config::NamespaceConfig;
use crate::CacheStats;

/// A namespace's figures, for the admin API and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NamespaceStats {
    /// The namespace's counters (zero until it is first opened).
    #[serde(serialize_with = "serialize_stats")]
    pub stats: CacheStats,
    /// Its loads through `get_or_load` and the like.
    pub loads: LoadStats,
    /// The settings it runs with; `max_bytes` is its share of the budget.
    pub limits: NamespaceConfig,
    /// Whether it was opened (has an engine).
    pub opened: bool,
}

/// Every namespace's figures and their sum.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Summed over namespaces.
    #[serde(serialize_with = "serialize_stats")]
    pub total: CacheStats,
    /// Load figures summed over namespaces.
    pub loads: LoadStats,
    /// The store's budget in bytes.
    pub max_bytes: u64,
    /// By namespace name.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

fn serialize_stats<S: serde::Serializer>(stats: &CacheStats, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut out = s.serialize_struct("CacheStats", 10)?;
    out.serialize_field("hits", &stats.hits)?;
    out.serialize_field("misses", &stats.misses)?;
    out.serialize_field("hit_ratio", &stats.hit_ratio())?;
    out.serialize_field("inserts", &stats.inserts)?;
    out.serialize_field("updates", &stats.updates)?;
    out.serialize_field("removals", &stats.removals)?;
    out.serialize_field("expirations", &stats.expirations)?;
    out.serialize_field("evictions", &stats.evictions)?;
    out.serialize_field("entries", &stats.entries)?;
    out.serialize_field("bytes", &stats.weighted_size)?;
    out.end()
}

impl Store {
    /// Every namespace's counters and limits, and their sum.
    pub fn stats(&self) -> StoreStats {
        let mut total = CacheStats::default();
        let mut total_loads = LoadStats::default();
        let namespaces = self
            .inner
            .namespaces
            .iter()
            .map(|(name, slot)| {
                let opened = slot.opened.read();
                let stats = opened.as_ref().map(|o| o.ns.stats()).unwrap_or_default();
                let loads = opened
                    .as_ref()
                    .map(|o| o.ns.load_stats())
                    .unwrap_or_default();
                total += stats;
                total_loads += loads;
                let figures = NamespaceStats {
                    stats,
                    loads,
                    limits: NamespaceConfig {
                        max_bytes: Some(slot.share.load(Ordering::Relaxed)),
                        ..slot.limits.clone()
                    },
                    opened: opened.is_some(),
                };
                (name.clone(), figures)
            })
            .collect();
        StoreStats {
            total,
            loads: total_loads,
            max_bytes: self.max_bytes(),
            namespaces,
        }
    }
}
