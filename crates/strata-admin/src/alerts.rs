//! Alerts: thresholds from `[alerts]` judged per namespace at every evaluation, with
//! hysteresis so a value hovering at a threshold does not flap.
//!
//! Each evaluation reads [`Store::stats`] and compares it with the previous reading, so the
//! ratios are over the last interval, not since start-up (a namespace that was cold an
//! hour ago is not still "low" now):
//! - **hit ratio** = Δhits ÷ (Δhits + Δmisses), below `hit_ratio_below`;
//! - **memory** = bytes held ÷ the namespace's `max_bytes`, above `memory_above` (a level,
//!   judged at every evaluation, the first included);
//! - **load p99** = the 0.99 quantile of the interval's load-latency histogram (the upper
//!   bound of its bucket), above `load_p99_above`;
//! - **load errors** = Δerrors ÷ Δloads, above `load_error_rate_above`.
//!
//! A ratio over fewer than `min_samples` reads (or loads) is not judged: that interval
//! neither counts toward firing nor toward clearing. An alert fires once `fire_after`
//! judged intervals in a row breach, and clears once `clear_after` in a row do not. Firing
//! is logged as a warning, clearing as info.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use strata::config::AlertsConfig;
use strata::store::{Latency, NamespaceStats, StoreStats};
use strata::Store;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The hit ratio is below `hit_ratio_below`.
    HitRatioLow,
    /// The bytes held are above `memory_above` of the namespace's bound.
    MemoryHigh,
    /// The p99 load latency is above `load_p99_above`.
    LoadLatencyHigh,
    /// The share of failed loads is above `load_error_rate_above`.
    LoadErrorsHigh,
}

impl AlertKind {
    /// The snake_case name, as in JSON and in the metrics' `alert` label.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::HitRatioLow => "hit_ratio_low",
            AlertKind::MemoryHigh => "memory_high",
            AlertKind::LoadLatencyHigh => "load_latency_high",
            AlertKind::LoadErrorsHigh => "load_errors_high",
        }
    }

    const ALL: [AlertKind; 4] = [
        AlertKind::HitRatioLow,
        AlertKind::MemoryHigh,
        AlertKind::LoadLatencyHigh,
        AlertKind::LoadErrorsHigh,
    ];
}

/// An active (or just cleared) alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// The namespace.
    pub namespace: String,
    /// The value that fired it (a ratio, or seconds for latency).
    pub value: f64,
    /// The threshold it crossed (same unit).
    pub threshold: f64,
    /// When it fired, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    /// A sentence for people.
    pub message: String,
}

/// What an evaluation changed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The alert fired.
    Fired(Alert),
    /// The alert cleared (its last value inside).
    Cleared(Alert),
}

/// The alerts of one store: evaluate them with [`evaluate`](Self::evaluate) or
/// [`spawn`](Self::spawn), read them with [`active`](Self::active). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: AlertsConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    previous: Option<StoreStats>,
    streaks: BTreeMap<(String, AlertKind), Streak>,
    active: BTreeMap<(String, AlertKind), Alert>,
}

/// Judged intervals in a row that breached, and that did not.
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    breaching: u32,
    inside: u32,
}

/// One condition's reading in one interval.
enum Reading {
    /// Off, or nothing to compare with yet.
    Off,
    /// Too few samples to judge.
    TooFew,
    /// A value and its threshold; `breach` says whether it is on the wrong side.
    Judged {
        value: f64,
        threshold: f64,
        breach: bool,
    },
}

impl Alerts {
    /// Alerts with `config`'s thresholds; nothing is active until evaluated.
    pub fn new(config: AlertsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The thresholds.
    pub fn config(&self) -> &AlertsConfig {
        &self.inner.config
    }

    /// The active alerts, by namespace and kind.
    pub fn active(&self) -> Vec<Alert> {
        self.inner.state.lock().active.values().cloned().collect()
    }

    /// Evaluates every condition against `store`'s figures now; answers what fired and
    /// what cleared.
    pub fn evaluate(&self, store: &Store) -> Vec<Transition> {
        let now = store.stats();
        let config = &self.inner.config;
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        let previous = state.previous.take();
        let mut transitions = Vec::new();
        for (ns, figures) in now.namespaces.iter().filter(|(_, f)| f.opened) {
            let before = previous.as_ref().and_then(|p| p.namespaces.get(ns));
            for kind in AlertKind::ALL {
                let reading = read(config, kind, figures, before);
                let Reading::Judged {
                    value,
                    threshold,
                    breach,
                } = reading
                else {
                    continue;
                };
                let key = (ns.clone(), kind);
                let streak = state.streaks.entry(key.clone()).or_default();
                if breach {
                    streak.breaching += 1;
                    streak.inside = 0;
                } else {
                    streak.inside += 1;
                    streak.breaching = 0;
                }
                let streak = *streak;
                let active = state.active.contains_key(&key);
                if !active && breach && streak.breaching >= config.fire_after {
                    let alert = alert(kind, ns, value, threshold);
                    tracing::warn!(namespace = %ns, alert = kind.as_str(), value, threshold, "alert fired: {}", alert.message);
                    state.active.insert(key, alert.clone());
                    transitions.push(Transition::Fired(alert));
                } else if active && !breach && streak.inside >= config.clear_after {
                    if let Some(mut alert) = state.active.remove(&key) {
                        alert.value = value;
                        tracing::info!(namespace = %ns, alert = kind.as_str(), value, threshold, "alert cleared");
                        transitions.push(Transition::Cleared(alert));
                    }
                } else if let Some(alert) = state.active.get_mut(&key) {
                    alert.value = value;
                }
            }
        }
        state.previous = Some(now);
        transitions
    }

    /// Evaluates every `every` (tokio's clock) on the current runtime until the task is
    /// aborted. The first evaluation, at once, takes the baseline.
    pub fn spawn(&self, store: Store) -> tokio::task::JoinHandle<()> {
        let alerts = self.clone();
        let every = self.inner.config.every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                alerts.evaluate(&store);
            }
        })
    }
}

fn read(
    config: &AlertsConfig,
    kind: AlertKind,
    now: &NamespaceStats,
    before: Option<&NamespaceStats>,
) -> Reading {
    let judged = |value: f64, threshold: f64, above: bool| Reading::Judged {
        value,
        threshold,
        breach: if above {
            value > threshold
        } else {
            value < threshold
        },
    };
    match kind {
        AlertKind::MemoryHigh => match (config.memory_above, now.limits.max_bytes) {
            (Some(share), Some(max)) if max > 0 => {
                judged(now.stats.weighted_size as f64 / max as f64, share, true)
            }
            _ => Reading::Off,
        },
        AlertKind::HitRatioLow => {
            let (Some(threshold), Some(before)) = (config.hit_ratio_below, before) else {
                return Reading::Off;
            };
            let hits = now.stats.hits.saturating_sub(before.stats.hits);
            let misses = now.stats.misses.saturating_sub(before.stats.misses);
            let reads = hits + misses;
            if reads < config.min_samples.max(1) {
                return Reading::TooFew;
            }
            judged(hits as f64 / reads as f64, threshold, false)
        }
        AlertKind::LoadLatencyHigh => {
            let (Some(threshold), Some(before)) = (config.load_p99_above, before) else {
                return Reading::Off;
            };
            let (now, before) = (now.loads.latency, before.loads.latency);
            let interval = Latency {
                buckets: std::array::from_fn(|i| now.buckets[i].saturating_sub(before.buckets[i])),
                sum_nanos: now.sum_nanos.saturating_sub(before.sum_nanos),
            };
            if interval.count() < config.min_samples.max(1) {
                return Reading::TooFew;
            }
            let p99 = interval.quantile(0.99).map_or(0.0, |d| {
                if d == Duration::MAX {
                    f64::INFINITY
                } else {
                    d.as_secs_f64()
                }
            });
            judged(p99, threshold.as_secs_f64(), true)
        }
        AlertKind::LoadErrorsHigh => {
            let (Some(threshold), Some(before)) = (config.load_error_rate_above, before) else {
                return Reading::Off;
            };
            let loads = now.loads.loads.saturating_sub(before.loads.loads);
            let errors = now.loads.errors.saturating_sub(before.loads.errors);
            if loads < config.min_samples.max(1) {
                return Reading::TooFew;
            }
            judged(errors as f64 / loads as f64, threshold, true)
        }
    }
}

fn alert(kind: AlertKind, namespace: &str, value: f64, threshold: f64) -> Alert {
    let message = match kind {
        AlertKind::HitRatioLow => {
            format!("namespace {namespace}: hit ratio {value:.3} is below {threshold:.3}")
        }
        AlertKind::MemoryHigh => format!(
            "namespace {namespace}: {:.1}% of its bytes are used, above {:.1}%",
            value * 100.0,
            threshold * 100.0
        ),
        AlertKind::LoadLatencyHigh => format!(
            "namespace {namespace}: p99 load latency {} is above {threshold}s",
            if value.is_infinite() {
                format!(
                    "> {}s",
                    strata::store::LATENCY_BOUNDS[strata::store::LATENCY_BOUNDS.len() - 1]
                )
            } else {
                format!("{value}s")
            }
        ),
        AlertKind::LoadErrorsHigh => format!(
            "namespace {namespace}: {:.1}% of loads failed, above {:.1}%",
            value * 100.0,
            threshold * 100.0
        ),
    };
    let since_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Alert {
        kind,
        namespace: namespace.to_owned(),
        value,
        threshold,
        since_unix_ms,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata::config::Config;

    fn setup(alerts_toml: &str) -> (Store, Alerts) {
        let toml = format!("[namespaces.user]\nmax_bytes = \"1MiB\"\n\n[alerts]\n{alerts_toml}");
        let config = Config::from_sources(Some(&toml), []).unwrap();
        let alerts = Alerts::new(config.alerts.clone());
        (Store::from_config(&config).unwrap(), alerts)
    }

    /// `hits` hits and `misses` misses on namespace `user`.
    fn reads(store: &Store, hits: u64, misses: u64) {
        let ns = store.namespace::<u64>("user").unwrap();
        ns.insert("present", 1).unwrap();
        for _ in 0..hits {
            assert!(ns.get("present").is_some());
        }
        for _ in 0..misses {
            assert!(ns.get("absent").is_none());
        }
    }

    fn fired(t: &[Transition]) -> usize {
        t.iter()
            .filter(|t| matches!(t, Transition::Fired(_)))
            .count()
    }

    fn cleared(t: &[Transition]) -> usize {
        t.iter()
            .filter(|t| matches!(t, Transition::Cleared(_)))
            .count()
    }

    #[test]
    fn fires_after_fire_after_breaches_and_clears_after_clear_after() {
        let (store, alerts) =
            setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 3\nclear_after = 2");
        reads(&store, 0, 0);
        assert!(alerts.evaluate(&store).is_empty(), "the baseline");
        for round in 1..=3 {
            reads(&store, 2, 8);
            let t = alerts.evaluate(&store);
            assert_eq!(fired(&t), usize::from(round == 3), "round {round}");
        }
        let active = alerts.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].kind, AlertKind::HitRatioLow);
        assert_eq!(active[0].namespace, "user");
        assert!((active[0].value - 0.2).abs() < 1e-9);
        reads(&store, 9, 1);
        assert_eq!(
            cleared(&alerts.evaluate(&store)),
            0,
            "one good interval is not enough"
        );
        reads(&store, 9, 1);
        assert_eq!(cleared(&alerts.evaluate(&store)), 1);
        assert!(alerts.active().is_empty());
    }

    #[test]
    fn a_value_flapping_around_the_threshold_never_fires() {
        let (store, alerts) = setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 2");
        reads(&store, 0, 0);
        alerts.evaluate(&store);
        for round in 0..20 {
            if round % 2 == 0 {
                reads(&store, 4, 6);
            } else {
                reads(&store, 6, 4);
            }
            assert!(alerts.evaluate(&store).is_empty(), "round {round}");
        }
    }

    #[test]
    fn too_few_samples_neither_fire_nor_break_the_streak() {
        let (store, alerts) = setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 2");
        reads(&store, 0, 0);
        alerts.evaluate(&store);
        reads(&store, 0, 10);
        assert!(alerts.evaluate(&store).is_empty());
        reads(&store, 0, 3); // too few to judge
        assert!(alerts.evaluate(&store).is_empty());
        reads(&store, 0, 10);
        assert_eq!(fired(&alerts.evaluate(&store)), 1, "the streak went on");
    }

    #[test]
    fn memory_is_a_level_judged_from_the_first_evaluation() {
        let (store, alerts) = setup("memory_above = 0.5\nfire_after = 1");
        let ns = store.namespace::<String>("user").unwrap();
        assert!(alerts.evaluate(&store).is_empty());
        for i in 0..8 {
            ns.insert(format!("k{i}"), "x".repeat(100 << 10)).unwrap();
        }
        let t = alerts.evaluate(&store);
        assert_eq!(fired(&t), 1, "{t:?}");
        assert_eq!(alerts.active()[0].kind, AlertKind::MemoryHigh);
        assert!(alerts.active()[0].value > 0.5);
    }

    #[tokio::test(start_paused = true)]
    async fn load_errors_and_p99_latency_over_the_interval() {
        let (store, alerts) = setup(
            "load_error_rate_above = 0.25\nload_p99_above = \"100ms\"\nmin_samples = 4\nfire_after = 1",
        );
        let ns = store.namespace::<u64>("user").unwrap();
        alerts.evaluate(&store);
        for i in 0..4 {
            let _ = ns
                .get_or_load(format!("k{i}"), move |_| async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if i < 2 {
                        Err(std::io::Error::other("down"))
                    } else {
                        Ok(1)
                    }
                })
                .await;
        }
        let t = alerts.evaluate(&store);
        assert_eq!(fired(&t), 2, "{t:?}");
        let kinds: Vec<AlertKind> = alerts.active().iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [AlertKind::LoadLatencyHigh, AlertKind::LoadErrorsHigh]
        );
        let latency = &alerts.active()[0];
        assert_eq!(
            (latency.value, latency.threshold),
            (0.5, 0.1),
            "300 ms is in the 0.5 s bucket"
        );
        assert_eq!(alerts.active()[1].value, 0.5, "2 of 4 failed");
    }

    #[tokio::test(start_paused = true)]
    async fn spawn_evaluates_every_period() {
        let (store, alerts) = setup("memory_above = 0.5\nfire_after = 3\nevery = \"10s\"");
        let ns = store.namespace::<String>("user").unwrap();
        for i in 0..8 {
            ns.insert(format!("k{i}"), "x".repeat(100 << 10)).unwrap();
        }
        let task = alerts.spawn(store.clone());
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(
            alerts.active().is_empty(),
            "two evaluations so far (0 s, 10 s)"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(alerts.active().len(), 1, "the third, at 20 s, fired it");
        task.abort();
    }
}
