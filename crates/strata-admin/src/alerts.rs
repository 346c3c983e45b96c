//! Alerts: the thresholds of `[alerts]` judged per namespace at every evaluation, with
//! hysteresis, so a value hovering at a threshold does not flap.
//!
//! ## Design
//! **Over the last interval, not since start-up.** Each evaluation reads [`Store::stats`]
//! and keeps it; the next one judges the difference. A namespace that was cold an hour ago
//! is not still "low" now, and one that degrades after a week of good service is noticed
//! at once rather than diluted by the week. Per opened namespace (one never opened has no
//! traffic to judge):
//! - **hit ratio** = Δhits ÷ (Δhits + Δmisses), an alert when below `hit_ratio_below`;
//! - **memory** = bytes held ÷ the namespace's `max_bytes` (its share of the budget), an
//!   alert when above `memory_above`. A level, not a rate: it needs no previous reading and
//!   is judged at every evaluation, the first included;
//! - **load p99** = the 0.99 quantile of the interval's load-latency histogram (the
//!   store's cumulative bucket counts minus the previous ones), an alert when above
//!   `load_p99_above`. The histogram knows buckets, not times, so the value is the upper
//!   bound of the bucket holding the p99 ([`LATENCY_BOUNDS`]), or infinity past the last
//!   one: the p99 is over-estimated up to the next bound, and a threshold set on a bound
//!   is judged exactly;
//! - **load errors** = Δerrors ÷ Δloads, an alert when above `load_error_rate_above`.
//!
//! The first evaluation only takes the baseline for the three ratios.
//!
//! With a shared tier watched ([`Alerts::watch_link`]), one more condition, for the whole
//! instance (its `namespace` is `*`): **Redis link**, an alert while the link to Redis is
//! down, judged at every evaluation with the same hysteresis. It needs no threshold: an
//! instance on a shared tier that cannot reach it serves only what it holds.
//!
//! **Too few samples is no verdict.** A ratio over fewer than `min_samples` reads (for the
//! hit ratio) or loads (for latency and errors, which share the one setting) says little:
//! five reads in a quiet interval are no evidence of a bad hit ratio, nor of a recovered
//! one. Such an interval is not judged at all: it counts neither toward firing nor toward
//! clearing, and the streak in progress goes on at the next judged interval.
//!
//! **Hysteresis.** An alert fires when `fire_after` judged evaluations in a row breach its
//! threshold, and clears when `clear_after` in a row do not. A value alternating around the
//! threshold never gets a streak long enough to change anything. While an alert is active,
//! its `value` and `message` follow the latest judged interval; `since_unix_ms` stays the
//! moment it fired. Firing is logged with `tracing::warn!`, clearing with `tracing::info!`.
//!
//! **Who evaluates.** [`Alerts::evaluate`] is one evaluation, for tests and for callers with
//! their own schedule; [`Alerts::spawn`] runs it every `every` on tokio's clock, so a test
//! with a paused clock drives it exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use strata::config::AlertsConfig;
use strata::store::{Latency, NamespaceStats, StoreStats, LATENCY_BOUNDS};
use strata::Store;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The interval's hit ratio is below `hit_ratio_below`.
    HitRatioLow,
    /// The bytes held are above `memory_above` of the namespace's `max_bytes`.
    MemoryHigh,
    /// The interval's p99 load latency is above `load_p99_above`.
    LoadLatencyHigh,
    /// The share of the interval's loads that failed is above `load_error_rate_above`.
    LoadErrorsHigh,
    /// The link to the shared tier (Redis) is down (the whole instance: namespace `*`).
    RedisLinkDown,
}

impl AlertKind {
    /// The snake_case name, as in JSON and in the metrics' `alert` label.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::HitRatioLow => "hit_ratio_low",
            AlertKind::MemoryHigh => "memory_high",
            AlertKind::LoadLatencyHigh => "load_latency_high",
            AlertKind::LoadErrorsHigh => "load_errors_high",
            AlertKind::RedisLinkDown => "redis_link_down",
        }
    }

    /// The per-namespace conditions.
    const PER_NAMESPACE: [AlertKind; 4] = [
        AlertKind::HitRatioLow,
        AlertKind::MemoryHigh,
        AlertKind::LoadLatencyHigh,
        AlertKind::LoadErrorsHigh,
    ];
}

/// An alert: active, or (in a [`Transition::Cleared`]) just cleared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// The namespace.
    pub namespace: String,
    /// The latest judged value: a ratio from 0 to 1, or seconds for latency (infinite, which
    /// JSON writes as `null`, when the p99 is past the last bucket bound, 10 s).
    pub value: f64,
    /// The threshold, in the same unit.
    pub threshold: f64,
    /// When it fired, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    /// A sentence for people, about the latest value.
    pub message: String,
}

/// What an evaluation changed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The alert fired.
    Fired(Alert),
    /// The alert cleared; it carries the value that completed the clearing streak.
    Cleared(Alert),
}

/// The alerts of one store: evaluate them with [`evaluate`](Self::evaluate) or
/// [`spawn`](Self::spawn), read them with [`active`](Self::active). Cheap to clone; every
/// clone shares the same state. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    config: AlertsConfig,
    state: Mutex<State>,
    /// Why the shared tier's link is down (`None` while it is up), when one is watched.
    link: Mutex<Option<LinkProbe>>,
}

/// Reads the shared tier's link: `Some(reason)` while it is down.
type LinkProbe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("link_watched", &self.link.lock().is_some())
            .finish()
    }
}

/// The `namespace` of an alert about the whole instance.
pub const WHOLE_INSTANCE: &str = "*";

#[derive(Debug, Default)]
struct State {
    /// The figures the previous evaluation read, the baseline of the next one's deltas.
    previous: Option<StoreStats>,
    streaks: BTreeMap<(String, AlertKind), Streak>,
    active: BTreeMap<(String, AlertKind), Alert>,
    /// Why the link was down at the last evaluation, for its alert's message.
    link_error: Option<String>,
}

impl State {
    /// Counts `reading` of condition `kind` for `ns` into its streak, and fires or clears
    /// its alert when the streak is long enough (see the module docs), adding what changed
    /// to `transitions`.
    fn judge(
        &mut self,
        config: &AlertsConfig,
        ns: &str,
        kind: AlertKind,
        reading: Reading,
        transitions: &mut Vec<Transition>,
    ) {
        let Reading::Judged {
            value,
            threshold,
            breach,
        } = reading
        else {
            return;
        };
        let key = (ns.to_owned(), kind);
        let streak = self.streaks.entry(key.clone()).or_default();
        if breach {
            *streak = Streak {
                breaching: streak.breaching.saturating_add(1),
                inside: 0,
            };
        } else {
            *streak = Streak {
                breaching: 0,
                inside: streak.inside.saturating_add(1),
            };
        }
        let streak = *streak;
        let message = describe(
            kind,
            ns,
            value,
            threshold,
            breach,
            self.link_error.as_deref(),
        );
        match self.active.get_mut(&key) {
            None if breach && streak.breaching >= config.fire_after.max(1) => {
                let alert = Alert {
                    kind,
                    namespace: ns.to_owned(),
                    value,
                    threshold,
                    since_unix_ms: unix_ms_now(),
                    message,
                };
                tracing::warn!(
                    namespace = %ns,
                    alert = kind.as_str(),
                    value,
                    threshold,
                    "alert fired: {}",
                    alert.message
                );
                self.active.insert(key, alert.clone());
                transitions.push(Transition::Fired(alert));
            }
            None => {}
            Some(alert) => {
                alert.value = value;
                alert.message = message;
                if !breach && streak.inside >= config.clear_after.max(1) {
                    tracing::info!(
                        namespace = %ns,
                        alert = kind.as_str(),
                        value,
                        threshold,
                        "alert cleared: {}",
                        alert.message
                    );
                    if let Some(alert) = self.active.remove(&key) {
                        transitions.push(Transition::Cleared(alert));
                    }
                }
            }
        }
    }
}

/// Judged evaluations in a row that breached, and that did not (one of them is 0).
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    breaching: u32,
    inside: u32,
}

/// One condition's reading in one evaluation.
#[derive(Debug, PartialEq)]
enum Reading {
    /// Off, or no baseline yet.
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
    /// Alerts with `config`'s thresholds; nothing is active until evaluated. A `fire_after`
    /// or `clear_after` of 0 acts as 1, a `min_samples` of 0 as 1 (the configuration
    /// refuses zeros; a hand-built [`AlertsConfig`] may not).
    pub fn new(config: AlertsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                link: Mutex::new(None),
            }),
        }
    }

    /// Judges the shared tier's link too, from now on: `down` answers why the link is down,
    /// or `None` while it is up.
    pub fn watch_link(&self, down: impl Fn() -> Option<String> + Send + Sync + 'static) {
        *self.inner.link.lock() = Some(Arc::new(down));
    }

    /// The thresholds.
    pub fn config(&self) -> &AlertsConfig {
        &self.inner.config
    }

    /// The active alerts, sorted by namespace, then kind.
    pub fn active(&self) -> Vec<Alert> {
        self.inner.state.lock().active.values().cloned().collect()
    }

    /// One evaluation against the store's figures now: judges every condition of every
    /// opened namespace over the interval since the previous evaluation, and returns what
    /// fired and what cleared (sorted by namespace, then kind).
    pub fn evaluate(&self, store: &Store) -> Vec<Transition> {
        let config = &self.inner.config;
        let link = self.inner.link.lock().clone();
        let mut guard = self.inner.state.lock();
        // Read under the lock, so that concurrent evaluations take their readings in the
        // order they judge them and every interval is counted once.
        let now = store.stats();
        let state = &mut *guard;
        let previous = state.previous.take();
        let mut transitions = Vec::new();
        for (ns, figures) in now.namespaces.iter().filter(|(_, f)| f.opened) {
            let before = previous.as_ref().and_then(|p| p.namespaces.get(ns));
            for kind in AlertKind::PER_NAMESPACE {
                let reading = read(config, kind, figures, before);
                state.judge(config, ns, kind, reading, &mut transitions);
            }
        }
        if let Some(link) = link {
            let down = link();
            let reading = Reading::Judged {
                value: f64::from(u8::from(down.is_some())),
                threshold: 0.5,
                breach: down.is_some(),
            };
            state.link_error = down;
            let kind = AlertKind::RedisLinkDown;
            state.judge(config, WHOLE_INSTANCE, kind, reading, &mut transitions);
        }
        state.previous = Some(now);
        transitions
    }

    /// Evaluates every `config.every` on tokio's clock, on the current runtime (it panics
    /// outside one, as `tokio::spawn` does); the first evaluation, at once, takes the
    /// baseline. It runs until the handle is aborted, or until every clone of these
    /// `Alerts` is dropped (checked at each tick). Dropping the `JoinHandle` alone detaches
    /// the task, as with any tokio task; it does not stop it. An evaluation that falls
    /// behind (a stalled runtime) is delayed, not made up for in a burst.
    pub fn spawn(&self, store: Store) -> tokio::task::JoinHandle<()> {
        let alerts: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.config.every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = alerts.upgrade() else {
                    break;
                };
                Alerts { inner }.evaluate(&store);
            }
        })
    }
}

/// The reading of condition `kind` for a namespace now, against its previous figures.
fn read(
    config: &AlertsConfig,
    kind: AlertKind,
    now: &NamespaceStats,
    before: Option<&NamespaceStats>,
) -> Reading {
    let min_samples = config.min_samples.max(1);
    let judged = |value: f64, threshold: f64, breach: bool| Reading::Judged {
        value,
        threshold,
        breach,
    };
    match kind {
        // Judged for the instance, not per namespace (see `Alerts::evaluate`).
        AlertKind::RedisLinkDown => Reading::Off,
        AlertKind::MemoryHigh => match (config.memory_above, now.limits.max_bytes) {
            (Some(share), Some(max)) if max > 0 => {
                let used = now.stats.weighted_size as f64 / max as f64;
                judged(used, share, used > share)
            }
            _ => Reading::Off,
        },
        AlertKind::HitRatioLow => {
            let (Some(threshold), Some(before)) = (config.hit_ratio_below, before) else {
                return Reading::Off;
            };
            let hits = now.stats.hits.saturating_sub(before.stats.hits);
            let misses = now.stats.misses.saturating_sub(before.stats.misses);
            let reads = hits.saturating_add(misses);
            if reads < min_samples {
                return Reading::TooFew;
            }
            let ratio = hits as f64 / reads as f64;
            judged(ratio, threshold, ratio < threshold)
        }
        AlertKind::LoadLatencyHigh => {
            let (Some(threshold), Some(before)) = (config.load_p99_above, before) else {
                return Reading::Off;
            };
            let interval = since(&now.loads.latency, &before.loads.latency);
            if interval.count() < min_samples {
                return Reading::TooFew;
            }
            let p99 = match interval.quantile(0.99) {
                Some(Duration::MAX) => f64::INFINITY,
                Some(bound) => bound.as_secs_f64(),
                None => return Reading::TooFew,
            };
            let threshold = threshold.as_secs_f64();
            judged(p99, threshold, p99 > threshold)
        }
        AlertKind::LoadErrorsHigh => {
            let (Some(threshold), Some(before)) = (config.load_error_rate_above, before) else {
                return Reading::Off;
            };
            let loads = now.loads.loads.saturating_sub(before.loads.loads);
            let errors = now.loads.errors.saturating_sub(before.loads.errors);
            if loads < min_samples {
                return Reading::TooFew;
            }
            let rate = errors as f64 / loads as f64;
            judged(rate, threshold, rate > threshold)
        }
    }
}

/// The loads timed between two readings of a histogram.
fn since(now: &Latency, before: &Latency) -> Latency {
    Latency {
        buckets: std::array::from_fn(|i| now.buckets[i].saturating_sub(before.buckets[i])),
        sum_nanos: now.sum_nanos.saturating_sub(before.sum_nanos),
    }
}

/// The sentence of an alert: about a breach, or about a value back inside (with why the
/// Redis link is down, for its alert).
fn describe(
    kind: AlertKind,
    ns: &str,
    value: f64,
    threshold: f64,
    breach: bool,
    link_error: Option<&str>,
) -> String {
    let percent = |share: f64| format!("{:.1}%", share * 100.0);
    match (kind, breach) {
        (AlertKind::RedisLinkDown, true) => format!(
            "the link to Redis (the shared tier) is down: {}; serving what this instance \
             holds",
            link_error.unwrap_or("no answer")
        ),
        (AlertKind::RedisLinkDown, false) => "the link to Redis (the shared tier) is up".into(),
        (AlertKind::HitRatioLow, true) => {
            format!("namespace {ns}: hit ratio {value:.3} is below {threshold:.3}")
        }
        (AlertKind::HitRatioLow, false) => {
            format!("namespace {ns}: hit ratio {value:.3} is back at or above {threshold:.3}")
        }
        (AlertKind::MemoryHigh, true) => format!(
            "namespace {ns}: {} of its max_bytes is used, above {}",
            percent(value),
            percent(threshold)
        ),
        (AlertKind::MemoryHigh, false) => format!(
            "namespace {ns}: {} of its max_bytes is used, back at or below {}",
            percent(value),
            percent(threshold)
        ),
        (AlertKind::LoadLatencyHigh, breach) => {
            let p99 = if value.is_finite() {
                format!("at most {value}s")
            } else {
                format!("over {}s", LATENCY_BOUNDS[LATENCY_BOUNDS.len() - 1])
            };
            let verdict = if breach { "above" } else { "back within" };
            format!("namespace {ns}: p99 load latency is {p99}, {verdict} {threshold}s")
        }
        (AlertKind::LoadErrorsHigh, breach) => {
            let verdict = if breach { "above" } else { "back at or below" };
            format!(
                "namespace {ns}: {} of loads failed, {verdict} {}",
                percent(value),
                percent(threshold)
            )
        }
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use strata::config::Config;
    use strata::MockClock;

    use super::*;

    /// A store with namespaces `user` and `session` (1 MiB each) on a mock clock, and
    /// alerts from the `[alerts]` lines given.
    fn setup(alerts_toml: &str) -> (Store, Alerts, MockClock) {
        let toml = format!(
            "[namespaces.user]\nmax_bytes = \"1MiB\"\nttl = \"1m\"\n\
             [namespaces.session]\nmax_bytes = \"1MiB\"\n\
             [alerts]\n{alerts_toml}"
        );
        let config = Config::from_sources(Some(&toml), []).unwrap();
        let alerts = Alerts::new(config.alerts.clone());
        let clock = MockClock::new();
        let store = Store::builder(config).clock(clock.clone()).build().unwrap();
        (store, alerts, clock)
    }

    /// `hits` hits and `misses` misses on namespace `ns`.
    fn reads(store: &Store, ns: &str, hits: u64, misses: u64) {
        let ns = store.namespace::<u64>(ns).unwrap();
        ns.insert("present", 1).unwrap();
        for _ in 0..hits {
            assert!(ns.get("present").is_some());
        }
        for _ in 0..misses {
            assert!(ns.get("absent").is_none());
        }
    }

    fn fired(t: &[Transition]) -> Vec<(String, AlertKind)> {
        t.iter()
            .filter_map(|t| match t {
                Transition::Fired(a) => Some((a.namespace.clone(), a.kind)),
                Transition::Cleared(_) => None,
            })
            .collect()
    }

    fn cleared(t: &[Transition]) -> Vec<(String, AlertKind)> {
        t.iter()
            .filter_map(|t| match t {
                Transition::Cleared(a) => Some((a.namespace.clone(), a.kind)),
                Transition::Fired(_) => None,
            })
            .collect()
    }

    fn user(kind: AlertKind) -> Vec<(String, AlertKind)> {
        vec![("user".to_owned(), kind)]
    }

    #[test]
    fn fires_after_exactly_fire_after_breaching_evaluations() {
        let (store, alerts, _) = setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 3");
        reads(&store, "user", 0, 0);
        assert!(alerts.evaluate(&store).is_empty(), "the baseline");
        for round in 1..=2 {
            reads(&store, "user", 2, 8);
            assert!(alerts.evaluate(&store).is_empty(), "round {round}");
            assert!(alerts.active().is_empty(), "round {round}");
        }
        let before = unix_ms_now();
        reads(&store, "user", 2, 8);
        let t = alerts.evaluate(&store);
        assert_eq!(fired(&t), user(AlertKind::HitRatioLow));
        let active = alerts.active();
        assert_eq!(active.len(), 1);
        let alert = &active[0];
        assert_eq!(Transition::Fired(alert.clone()), t[0]);
        assert_eq!((alert.value, alert.threshold), (0.2, 0.5));
        assert!((before..=unix_ms_now()).contains(&alert.since_unix_ms));
        assert_eq!(
            alert.message,
            "namespace user: hit ratio 0.200 is below 0.500"
        );
        // Still breaching: still active, nothing new.
        reads(&store, "user", 1, 9);
        assert!(alerts.evaluate(&store).is_empty());
        assert_eq!(alerts.active()[0].value, 0.1, "the latest value");
        assert_eq!(alerts.active()[0].since_unix_ms, alert.since_unix_ms);
    }

    #[test]
    fn clears_after_clear_after_evaluations_inside() {
        let (store, alerts, _) =
            setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 2\nclear_after = 3");
        let interval = |hits, misses| {
            reads(&store, "user", hits, misses);
            alerts.evaluate(&store)
        };
        interval(0, 0);
        interval(0, 10);
        assert_eq!(fired(&interval(0, 10)), user(AlertKind::HitRatioLow));
        // Two good intervals, then a bad one: the clearing streak starts again.
        assert!(interval(9, 1).is_empty());
        assert!(interval(9, 1).is_empty());
        let still = &alerts.active()[0];
        assert_eq!(still.value, 0.9);
        assert_eq!(
            still.message,
            "namespace user: hit ratio 0.900 is back at or above 0.500"
        );
        assert!(interval(0, 10).is_empty(), "already active");
        assert!(interval(9, 1).is_empty());
        assert!(interval(9, 1).is_empty());
        let t = interval(8, 2);
        assert_eq!(cleared(&t), user(AlertKind::HitRatioLow));
        match &t[0] {
            Transition::Cleared(alert) => assert_eq!(alert.value, 0.8),
            other => panic!("{other:?}"),
        }
        assert!(alerts.active().is_empty());
        // Firing again takes fire_after breaches again.
        assert!(interval(0, 10).is_empty());
        assert_eq!(fired(&interval(0, 10)), user(AlertKind::HitRatioLow));
    }

    #[test]
    fn a_value_flapping_around_the_threshold_never_fires_nor_clears() {
        let (store, alerts, _) =
            setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 2\nclear_after = 2");
        reads(&store, "user", 0, 0);
        alerts.evaluate(&store);
        for round in 0..20 {
            let (hits, misses) = if round % 2 == 0 { (4, 6) } else { (6, 4) };
            reads(&store, "user", hits, misses);
            assert!(alerts.evaluate(&store).is_empty(), "round {round}");
        }
        // Once active, flapping does not clear it either.
        for _ in 0..2 {
            reads(&store, "user", 0, 10);
            alerts.evaluate(&store);
        }
        assert_eq!(alerts.active().len(), 1);
        for round in 0..20 {
            let (hits, misses) = if round % 2 == 0 { (6, 4) } else { (4, 6) };
            reads(&store, "user", hits, misses);
            assert!(alerts.evaluate(&store).is_empty(), "round {round}");
        }
        assert_eq!(alerts.active().len(), 1);
    }

    #[test]
    fn too_few_samples_keep_the_streak_toward_firing_and_clearing() {
        let (store, alerts, _) =
            setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 2\nclear_after = 2");
        reads(&store, "user", 0, 0);
        alerts.evaluate(&store);
        reads(&store, "user", 0, 10);
        assert!(alerts.evaluate(&store).is_empty());
        // Nine reads, all good: too few to judge, so neither a good interval nor a bad one.
        reads(&store, "user", 9, 0);
        assert!(alerts.evaluate(&store).is_empty());
        assert!(alerts.evaluate(&store).is_empty(), "no reads at all");
        reads(&store, "user", 0, 10);
        assert_eq!(
            fired(&alerts.evaluate(&store)),
            user(AlertKind::HitRatioLow),
            "the streak went on"
        );
        reads(&store, "user", 10, 0);
        assert!(alerts.evaluate(&store).is_empty());
        reads(&store, "user", 0, 9);
        assert!(alerts.evaluate(&store).is_empty(), "too few: not a breach");
        reads(&store, "user", 10, 0);
        assert_eq!(
            cleared(&alerts.evaluate(&store)),
            user(AlertKind::HitRatioLow)
        );
    }

    #[test]
    fn the_hit_ratio_is_over_the_interval_and_falls_when_entries_expire() {
        let (store, alerts, clock) =
            setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 1");
        let users = store.namespace::<u64>("user").unwrap();
        for i in 0..10 {
            users.insert(format!("u{i}"), i).unwrap();
        }
        // A long good history: 1000 hits.
        for _ in 0..100 {
            for i in 0..10 {
                assert!(users.get(format!("u{i}")).is_some());
            }
        }
        alerts.evaluate(&store);
        for i in 0..10 {
            assert!(users.get(format!("u{i}")).is_some());
        }
        assert!(alerts.evaluate(&store).is_empty());
        // The TTL (one minute) passes: every read misses. Since start-up the ratio would
        // still be 0.99; over the interval it is 0.
        clock.advance(Duration::from_secs(61));
        for i in 0..10 {
            assert!(users.get(format!("u{i}")).is_none());
        }
        assert_eq!(
            fired(&alerts.evaluate(&store)),
            user(AlertKind::HitRatioLow)
        );
        assert_eq!(alerts.active()[0].value, 0.0);
    }

    #[test]
    fn memory_high_on_a_small_namespace_filled_past_its_share() {
        // 3 MiB shared by user, session and default: 1 MiB each.
        let toml = "max_bytes = \"3MiB\"\n[namespaces.user]\n[namespaces.session]\n\
                    [alerts]\nmemory_above = 0.6\nfire_after = 1\nclear_after = 1\n";
        let config = Config::from_sources(Some(toml), []).unwrap();
        let store = Store::builder(config.clone())
            .clock(MockClock::new())
            .build()
            .unwrap();
        let alerts = Alerts::new(config.alerts);
        let users = store.namespace::<String>("user").unwrap();
        assert_eq!(users.limits().max_bytes, Some(1 << 20));
        let fill = |n: usize| {
            for i in 0..n {
                users
                    .insert(format!("k{i}"), "x".repeat(100 << 10))
                    .unwrap();
            }
        };
        // About 70%: the very first evaluation judges it.
        fill(7);
        let t = alerts.evaluate(&store);
        assert_eq!(fired(&t), user(AlertKind::MemoryHigh));
        let held = store.stats().namespaces["user"].stats.weighted_size;
        let alert = &alerts.active()[0];
        assert_eq!(alert.value, held as f64 / f64::from(1u32 << 20));
        assert!(alert.value > 0.6, "{}", alert.value);
        assert_eq!(alert.threshold, 0.6);
        assert!(
            alert
                .message
                .contains("of its max_bytes is used, above 60.0%"),
            "{}",
            alert.message
        );
        users.clear();
        store.run_pending_tasks();
        assert_eq!(
            cleared(&alerts.evaluate(&store)),
            user(AlertKind::MemoryHigh)
        );
        // About 50%: inside.
        fill(5);
        assert!(alerts.evaluate(&store).is_empty());
        assert!(alerts.active().is_empty());
    }

    #[test]
    fn load_errors_from_blocking_loads_over_the_interval() {
        let (store, alerts, _) =
            setup("load_error_rate_above = 0.25\nmin_samples = 4\nfire_after = 1\nclear_after = 1");
        let users = store.namespace::<u64>("user").unwrap();
        let mut next = 0;
        let mut loads = |ok: usize, failing: usize| {
            for i in 0..ok + failing {
                next += 1;
                let result = users.get_or_load_blocking(format!("k{next}"), |_| {
                    if i < failing {
                        Err(std::io::Error::other("the origin is down"))
                    } else {
                        Ok(1)
                    }
                });
                assert_eq!(result.is_err(), i < failing);
            }
            alerts.evaluate(&store)
        };
        loads(0, 0);
        let t = loads(2, 2);
        assert_eq!(fired(&t), user(AlertKind::LoadErrorsHigh));
        let alert = &alerts.active()[0];
        assert_eq!((alert.value, alert.threshold), (0.5, 0.25));
        assert_eq!(
            alert.message,
            "namespace user: 50.0% of loads failed, above 25.0%"
        );
        assert!(loads(0, 3).is_empty(), "three loads are too few to judge");
        // One failure in four is not above 25%, although 6 in 11 since start-up would be.
        let t = loads(3, 1);
        assert_eq!(cleared(&t), user(AlertKind::LoadErrorsHigh));
        match &t[0] {
            Transition::Cleared(alert) => assert_eq!(alert.value, 0.25),
            other => panic!("{other:?}"),
        }
    }

    /// Loads `n` keys of `users` whose loaders sleep `ms` on tokio's clock; with the clock
    /// paused, each load takes exactly that long.
    async fn slow_loads(users: &strata::Namespace<u64>, first: usize, n: usize, ms: u64) {
        for i in first..first + n {
            users
                .get_or_load(format!("k{i}"), move |_| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<_, std::io::Error>(1)
                })
                .await
                .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn load_p99_over_the_interval() {
        let (store, alerts, _) =
            setup("load_p99_above = \"100ms\"\nmin_samples = 4\nfire_after = 1\nclear_after = 1");
        let users = store.namespace::<u64>("user").unwrap();
        alerts.evaluate(&store);
        slow_loads(&users, 0, 4, 300).await;
        let t = alerts.evaluate(&store);
        assert_eq!(fired(&t), user(AlertKind::LoadLatencyHigh));
        let alert = &alerts.active()[0];
        assert_eq!(
            (alert.value, alert.threshold),
            (0.5, 0.1),
            "300 ms is in the bucket up to 0.5 s"
        );
        assert_eq!(
            alert.message,
            "namespace user: p99 load latency is at most 0.5s, above 0.1s"
        );
        slow_loads(&users, 4, 3, 3).await;
        assert!(alerts.evaluate(&store).is_empty(), "three are too few");
        // 100 fast loads: the interval's p99 is 5 ms (since start-up it would be 0.5 s).
        slow_loads(&users, 7, 100, 3).await;
        let t = alerts.evaluate(&store);
        assert_eq!(cleared(&t), user(AlertKind::LoadLatencyHigh));
        match &t[0] {
            Transition::Cleared(alert) => assert_eq!(alert.value, 0.005),
            other => panic!("{other:?}"),
        }
        // Past the last bound, the p99 is infinite; JSON writes it as null.
        slow_loads(&users, 107, 4, 20_000).await;
        assert_eq!(
            fired(&alerts.evaluate(&store)),
            user(AlertKind::LoadLatencyHigh)
        );
        let alert = &alerts.active()[0];
        assert_eq!(alert.value, f64::INFINITY);
        assert_eq!(
            alert.message,
            "namespace user: p99 load latency is over 10s, above 0.1s"
        );
        assert_eq!(
            serde_json::to_value(alert).unwrap()["value"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn thresholds_left_out_are_off() {
        let (store, alerts, _) = setup("min_samples = 1\nfire_after = 1");
        let users = store.namespace::<String>("user").unwrap();
        for i in 0..9 {
            users
                .insert(format!("k{i}"), "x".repeat(100 << 10))
                .unwrap();
        }
        for _ in 0..5 {
            for _ in 0..100 {
                assert!(users.get("absent").is_none());
            }
            let _ = users
                .get_or_load_blocking("down", |_| Err::<String, _>(std::io::Error::other("down")));
            assert!(alerts.evaluate(&store).is_empty());
        }
    }

    #[test]
    fn only_opened_namespaces_are_judged_and_active_is_sorted() {
        let (store, alerts, _) =
            setup("hit_ratio_below = 0.5\nmemory_above = 0.5\nmin_samples = 1\nfire_after = 1");
        for ns in ["user", "session"] {
            let values = store.namespace::<String>(ns).unwrap();
            for i in 0..7 {
                values
                    .insert(format!("k{i}"), "x".repeat(100 << 10))
                    .unwrap();
            }
        }
        alerts.evaluate(&store);
        reads_strings(&store, "user");
        reads_strings(&store, "session");
        alerts.evaluate(&store);
        let active: Vec<(String, AlertKind)> = alerts
            .active()
            .into_iter()
            .map(|a| (a.namespace, a.kind))
            .collect();
        let expected: Vec<(String, AlertKind)> = [
            ("session", AlertKind::HitRatioLow),
            ("session", AlertKind::MemoryHigh),
            ("user", AlertKind::HitRatioLow),
            ("user", AlertKind::MemoryHigh),
        ]
        .into_iter()
        .map(|(ns, kind)| (ns.to_owned(), kind))
        .collect();
        assert_eq!(active, expected, "`default` was never opened");
    }

    /// One miss on namespace `ns` of strings.
    fn reads_strings(store: &Store, ns: &str) {
        assert!(store
            .namespace::<String>(ns)
            .unwrap()
            .get("absent")
            .is_none());
    }

    #[test]
    fn alerts_and_transitions_serialise_with_snake_case_names() {
        let alert = Alert {
            kind: AlertKind::LoadErrorsHigh,
            namespace: "user".into(),
            value: 0.5,
            threshold: 0.25,
            since_unix_ms: 1_700_000_000_000,
            message: "m".into(),
        };
        let json = serde_json::to_value(Transition::Fired(alert)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "fired": {
                "kind": "load_errors_high", "namespace": "user", "value": 0.5,
                "threshold": 0.25, "since_unix_ms": 1_700_000_000_000u64, "message": "m"
            } })
        );
        for kind in AlertKind::PER_NAMESPACE
            .into_iter()
            .chain([AlertKind::RedisLinkDown])
        {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    /// With tokio's clock paused, the task evaluates at 0 (the baseline), `every`, 2 ×
    /// `every`...: a hit ratio bad in every interval fires at `every` × `fire_after`.
    #[tokio::test(start_paused = true)]
    async fn spawn_evaluates_every_period() {
        let (store, alerts, _) =
            setup("hit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 3\nevery = \"10s\"");
        reads(&store, "user", 0, 0);
        let task = alerts.spawn(store.clone());
        let every = alerts.config().every;
        let start = tokio::time::Instant::now();
        // Bad reads in the middle of each of the first three intervals.
        for i in 0..3u32 {
            tokio::time::sleep_until(start + every * i + every / 2).await;
            reads(&store, "user", 1, 9);
        }
        tokio::time::sleep_until(start + every * 3 - Duration::from_millis(1)).await;
        assert!(alerts.active().is_empty(), "two judged evaluations so far");
        tokio::time::sleep_until(start + every * 3 + Duration::from_millis(1)).await;
        assert_eq!(alerts.active().len(), 1, "the third, at 30 s, fired it");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_spawned_task_ends_when_the_alerts_are_dropped() {
        let (store, alerts, _) = setup("memory_above = 0.5\nevery = \"10s\"");
        let task = alerts.spawn(store);
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(!task.is_finished());
        drop(alerts);
        let ended = tokio::time::timeout(Duration::from_secs(11), task).await;
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    }
}
