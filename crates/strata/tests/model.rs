//! Property tests: the cache against a plain model, a `HashMap<key, (value, deadline, hard)>`
//! on a manual clock.
//!
//! * `exact`: the capacity exceeds the key domain, so nothing is evicted and every answer
//!   (get, contains_key, remove, insert_if_absent, keys) and every counter must equal the
//!   model's, TTL and time-to-idle expiry included, at exact boundaries.
//! * `evicting`: small bounds. The cache may have lost any entry the model still holds, but it
//!   must never return a value the model does not hold for that key (no stale, foreign or
//!   expired value), must stay within its bounds after every operation, and its removal
//!   listener must report every stored value exactly once, with a cause the model allows.
#![cfg(not(feature = "shuttle"))]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use strata::{Cache, Inserted, MockClock, RemovalCause};

const NEVER: u64 = u64::MAX;
const MS: u64 = 1_000_000;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    InsertTtl(u64, u64),
    InsertIfAbsent(u64),
    InsertIfAbsentTtl(u64, u64),
    Get(u64),
    Remove(u64),
    Contains(u64),
    /// The key's time left.
    Ttl(u64),
    /// A new TTL in milliseconds (zero expires at once), or none.
    SetTtl(u64, Option<u64>),
    /// Milliseconds.
    Advance(u64),
    RunPending,
    Clear,
    /// `clear_deferred`, the returned entries dropped at once.
    ClearDeferred,
    Keys,
    /// `remove_where(key % m == r)`.
    RemoveWhere(u64, u64),
    /// `remove_if(key, value % 2 == parity)`.
    RemoveIf(u64, u64),
}

fn op(keys: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..keys).prop_map(Op::Insert),
        4 => (0..keys, 1..150u64).prop_map(|(k, t)| Op::InsertTtl(k, t)),
        4 => (0..keys).prop_map(Op::InsertIfAbsent),
        2 => (0..keys, 1..150u64).prop_map(|(k, t)| Op::InsertIfAbsentTtl(k, t)),
        12 => (0..keys).prop_map(Op::Get),
        2 => (0..keys).prop_map(Op::Remove),
        4 => (0..keys).prop_map(Op::Contains),
        3 => (0..keys).prop_map(Op::Ttl),
        3 => (0..keys, prop::option::of(0..150u64)).prop_map(|(k, t)| Op::SetTtl(k, t)),
        6 => prop_oneof![1..5u64, 1..60u64].prop_map(Op::Advance),
        2 => Just(Op::RunPending),
        1 => Just(Op::Clear),
        1 => Just(Op::ClearDeferred),
        2 => Just(Op::Keys),
        2 => (2..5u64, 0..2u64).prop_map(|(m, r)| Op::RemoveWhere(m, r)),
        2 => (0..keys, 0..2u64).prop_map(|(k, p)| Op::RemoveIf(k, p)),
    ]
}

fn fine_op(keys: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..keys).prop_map(Op::Insert),
        2 => (0..keys, 1..30u64).prop_map(|(k, t)| Op::InsertTtl(k, t)),
        2 => (0..keys).prop_map(Op::InsertIfAbsent),
        1 => (0..keys, 1..30u64).prop_map(|(k, t)| Op::InsertIfAbsentTtl(k, t)),
        10 => (0..keys).prop_map(Op::Get),
        1 => (0..keys).prop_map(Op::Remove),
        4 => (0..keys).prop_map(Op::Contains),
        2 => (0..keys).prop_map(Op::Ttl),
        2 => (0..keys, prop::option::of(0..30u64)).prop_map(|(k, t)| Op::SetTtl(k, t)),
        10 => (1..4u64).prop_map(Op::Advance),
        1 => Just(Op::RunPending),
        1 => Just(Op::Keys),
    ]
}

/// Bits of the causes a departed value may be reported with.
fn bit(cause: RemovalCause) -> u8 {
    match cause {
        RemovalCause::Expired => 1,
        RemovalCause::Evicted => 2,
        RemovalCause::Removed => 4,
        RemovalCause::Replaced => 8,
        RemovalCause::Cleared => 16,
        RemovalCause::Invalidated => 32,
    }
}
const EXPIRED: u8 = 1;
const EVICTED: u8 = 2;
const REMOVED: u8 = 4;
const REPLACED: u8 = 8;
const CLEARED: u8 = 16;
const INVALIDATED: u8 = 32;

#[derive(Debug, Clone, Copy)]
struct Slot {
    value: u64,
    deadline: u64,
    hard: u64,
}

#[derive(Debug)]
struct Model {
    now: u64,
    default_ttl: Option<u64>,
    tti: Option<u64>,
    map: HashMap<u64, Slot>,
}

impl Model {
    fn is_live(&self, slot: &Slot) -> bool {
        slot.deadline == NEVER || slot.deadline > self.now
    }

    fn live(&self, key: u64) -> Option<Slot> {
        self.map.get(&key).copied().filter(|s| self.is_live(s))
    }

    fn new_slot(&self, value: u64, ttl_ms: Option<u64>) -> Slot {
        let ttl = ttl_ms.map(|t| t * MS).or(self.default_ttl);
        let hard = ttl.map_or(NEVER, |t| self.now.saturating_add(t).min(NEVER - 1));
        let deadline = self
            .tti
            .map_or(hard, |tti| hard.min(self.now.saturating_add(tti)));
        Slot {
            value,
            deadline,
            hard,
        }
    }

    /// A read hit: time-to-idle moves the deadline to `min(hard, now + tti)`, unless that
    /// moves it by a millisecond or less (the engine skips such refreshes).
    fn touch(&mut self, key: u64) {
        let (now, tti) = (self.now, self.tti);
        let slot = self.map.get_mut(&key).unwrap();
        if let Some(tti) = tti {
            if slot.deadline != NEVER {
                let next = now.saturating_add(tti).min(slot.hard);
                if next > slot.deadline.saturating_add(MS) {
                    slot.deadline = next;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    shards: usize,
    default_ttl_ms: Option<u64>,
    tti_ms: Option<u64>,
    max_entries: Option<u64>,
    /// With a weigher `value % 4 + 1`.
    max_weight: Option<u64>,
}

type Events = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

struct Harness {
    cache: Cache<u64, u64>,
    clock: MockClock,
    events: Events,
    model: Model,
    exact: bool,
    cfg: Config,
    next_value: u64,
    /// Departed values: key and the causes they may be reported with.
    departed: HashMap<u64, (u64, u8)>,
    /// Values refused by insert_if_absent: never stored, never reported.
    refused: Vec<u64>,
    hits: u64,
    misses: u64,
    inserts: u64,
    updates: u64,
    removals: u64,
}

impl Harness {
    fn new(cfg: Config, exact: bool) -> Self {
        let clock = MockClock::new();
        let events: Events = Arc::default();
        let sink = Arc::clone(&events);
        let mut b = Cache::builder()
            .shards(cfg.shards)
            .clock(clock.clone())
            .removal_listener(move |k, v, c| sink.lock().unwrap().push((k, v, c)));
        if let Some(n) = cfg.max_entries {
            b = b.max_entries(n);
        }
        if let Some(w) = cfg.max_weight {
            b = b.max_weight(w).weigher(|_: &u64, v: &u64| v % 4 + 1);
        }
        if let Some(t) = cfg.default_ttl_ms {
            b = b.default_ttl(Duration::from_millis(t));
        }
        if let Some(t) = cfg.tti_ms {
            b = b.time_to_idle(Duration::from_millis(t));
        }
        let cache = b.build().unwrap();
        let model = Model {
            now: 0,
            default_ttl: cfg.default_ttl_ms.map(|t| t * MS),
            tti: cfg.tti_ms.map(|t| t * MS),
            map: HashMap::new(),
        };
        Self {
            cache,
            clock,
            events,
            model,
            exact,
            cfg,
            next_value: 1,
            departed: HashMap::new(),
            refused: Vec::new(),
            hits: 0,
            misses: 0,
            inserts: 0,
            updates: 0,
            removals: 0,
        }
    }

    /// The model's entry for `key` leaves; `live_causes`/`dead_causes` are what the listener
    /// may report, depending on whether the model still had it live. Without eviction, a
    /// live entry's cause is exact; with it, the cache may have evicted it earlier.
    fn depart(&mut self, key: u64, live_causes: u8, dead_causes: u8) {
        if let Some(slot) = self.model.map.remove(&key) {
            let mut causes = if self.model.is_live(&slot) {
                live_causes
            } else {
                dead_causes
            };
            if !self.exact {
                causes |= EVICTED;
            }
            assert!(self.departed.insert(slot.value, (key, causes)).is_none());
        }
    }

    /// The cache showed that it no longer holds `key`'s live entry: only eviction explains it.
    fn lost(&mut self, key: u64) {
        assert!(
            !self.exact,
            "key {key} lost without eviction: model has {:?}",
            self.model.map.get(&key)
        );
        let slot = self.model.map.remove(&key).unwrap();
        self.departed.insert(slot.value, (key, EVICTED));
    }

    fn store(&mut self, key: u64, ttl_ms: Option<u64>, if_absent: bool) {
        let value = self.next_value;
        self.next_value += 1;
        let had_live = self.model.live(key);
        let result = match (ttl_ms, if_absent) {
            (None, false) => self.cache.insert(key, value).map(|()| Inserted::Inserted),
            (Some(t), false) => self
                .cache
                .insert_with_ttl(key, value, Duration::from_millis(t))
                .map(|()| Inserted::Inserted),
            (None, true) => self.cache.insert_if_absent(key, value),
            (Some(t), true) => {
                self.cache
                    .insert_if_absent_with_ttl(key, value, Duration::from_millis(t))
            }
        }
        .unwrap();
        match result {
            Inserted::Existing(existing) => {
                assert!(if_absent);
                let slot = had_live.unwrap_or_else(|| {
                    panic!("insert_if_absent({key}) found {existing}, model has no live entry")
                });
                assert_eq!(
                    existing, slot.value,
                    "insert_if_absent({key}) found a wrong value"
                );
                self.refused.push(value);
                return;
            }
            Inserted::Inserted => {}
        }
        if if_absent && had_live.is_some() {
            // The cache had lost the entry the model still holds.
            self.lost(key);
        }
        if self.exact {
            if had_live.is_some() {
                self.updates += 1;
            } else {
                self.inserts += 1;
            }
        }
        self.depart(key, REPLACED, EXPIRED);
        let slot = self.model.new_slot(value, ttl_ms);
        self.model.map.insert(key, slot);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Insert(k) => self.store(k, None, false),
            Op::InsertTtl(k, t) => self.store(k, Some(t), false),
            Op::InsertIfAbsent(k) => self.store(k, None, true),
            Op::InsertIfAbsentTtl(k, t) => self.store(k, Some(t), true),
            Op::Get(k) => {
                let got = self.cache.get(&k);
                let expected = self.model.live(k).map(|s| s.value);
                match got {
                    Some(v) => {
                        self.hits += 1;
                        assert_eq!(Some(v), expected, "get({k}) at {} ms", self.model.now / MS);
                        self.model.touch(k);
                    }
                    None => {
                        self.misses += 1;
                        if expected.is_some() {
                            self.lost(k);
                        }
                    }
                }
            }
            Op::Contains(k) => {
                let got = self.cache.contains_key(&k);
                let expected = self.model.live(k).is_some();
                if got {
                    assert!(
                        expected,
                        "contains_key({k}) true, model has {:?}",
                        self.model.map.get(&k)
                    );
                } else if expected {
                    self.lost(k);
                }
            }
            Op::Ttl(k) => {
                let got = self.cache.ttl(&k);
                let now = self.model.now;
                let expected = self
                    .model
                    .live(k)
                    .map(|s| (s.deadline != NEVER).then(|| Duration::from_nanos(s.deadline - now)));
                match (got, expected) {
                    (Some(got), Some(want)) => assert_eq!(got, want, "ttl({k})"),
                    (Some(got), None) => panic!("ttl({k}) = {got:?}, model has no live entry"),
                    (None, Some(_)) => self.lost(k),
                    (None, None) => {}
                }
            }
            Op::SetTtl(k, ttl_ms) => {
                let found = self.cache.set_ttl(&k, ttl_ms.map(Duration::from_millis));
                let live = self.model.live(k).is_some();
                if found {
                    assert!(
                        live,
                        "set_ttl({k}) found an entry the model does not have live"
                    );
                    let (now, tti) = (self.model.now, self.model.tti);
                    let hard = ttl_ms.map_or(NEVER, |t| now.saturating_add(t * MS).min(NEVER - 1));
                    let slot = self.model.map.get_mut(&k).unwrap();
                    slot.hard = hard;
                    slot.deadline = tti.map_or(hard, |tti| hard.min(now.saturating_add(tti)));
                } else if live {
                    self.lost(k);
                }
            }
            Op::Remove(k) => {
                let got = self.cache.remove(&k);
                let expected = self.model.live(k).map(|s| s.value);
                match got {
                    Some(v) => {
                        assert_eq!(Some(v), expected, "remove({k})");
                        self.removals += 1;
                        self.depart(k, REMOVED, 0);
                        // A value returned by remove was present: its cause is exact.
                        self.departed.insert(v, (k, REMOVED));
                    }
                    None if expected.is_some() => self.lost(k),
                    None => self.depart(k, 0, EXPIRED),
                }
            }
            Op::Advance(ms) => {
                self.clock.advance(Duration::from_millis(ms));
                self.model.now += ms * MS;
            }
            Op::RunPending => {
                let dead: Vec<u64> = self
                    .model
                    .map
                    .iter()
                    .filter(|(_, s)| !self.model.is_live(s))
                    .map(|(&k, _)| k)
                    .collect();
                let reclaimed = self.cache.run_pending_tasks();
                assert!(
                    reclaimed <= dead.len(),
                    "reclaimed {reclaimed}, model has {} dead",
                    dead.len()
                );
                for k in dead {
                    self.depart(k, 0, EXPIRED);
                }
                if self.exact {
                    assert_eq!(self.cache.len(), self.model.map.len());
                }
            }
            Op::Clear => {
                let held = self.cache.len();
                self.cache.clear();
                self.removals += held as u64;
                let keys: Vec<u64> = self.model.map.keys().copied().collect();
                for k in keys {
                    self.depart(k, CLEARED, EXPIRED | CLEARED);
                }
                assert_eq!(self.cache.len(), 0);
                assert_eq!(self.cache.weighted_size(), 0);
            }
            Op::ClearDeferred => {
                let cleared = self.cache.clear_deferred();
                let held = cleared.len();
                assert_eq!(self.cache.len(), 0);
                drop(cleared);
                self.removals += held as u64;
                let keys: Vec<u64> = self.model.map.keys().copied().collect();
                for k in keys {
                    self.depart(k, CLEARED, EXPIRED | CLEARED);
                }
                assert_eq!(self.cache.weighted_size(), 0);
            }
            Op::RemoveWhere(m, r) => {
                let chosen: Vec<u64> = self
                    .model
                    .map
                    .keys()
                    .copied()
                    .filter(|k| k % m == r)
                    .collect();
                let live = chosen
                    .iter()
                    .filter(|&&k| self.model.live(k).is_some())
                    .count();
                let removed = self.cache.remove_where(|k, _| k % m == r);
                if self.exact {
                    assert_eq!(removed, live, "remove_where(% {m} == {r})");
                } else {
                    assert!(removed <= live, "remove_where removed {removed} of {live}");
                }
                self.removals += removed as u64;
                for k in chosen {
                    self.depart(k, INVALIDATED, EXPIRED);
                }
            }
            Op::RemoveIf(k, parity) => {
                let expected = self.model.live(k).map(|s| s.value);
                let got = self.cache.remove_if(&k, |v| v % 2 == parity);
                match (got, expected) {
                    (Some(v), _) => {
                        assert_eq!(Some(v), expected, "remove_if({k})");
                        assert_eq!(v % 2, parity);
                        self.removals += 1;
                        self.depart(k, REMOVED, 0);
                        self.departed.insert(v, (k, REMOVED));
                    }
                    (None, Some(v)) if v % 2 == parity => self.lost(k),
                    (None, Some(_)) => {}
                    (None, None) => {}
                }
            }
            Op::Keys => {
                let keys: Vec<u64> = self.cache.keys().collect();
                let got: BTreeSet<u64> = keys.iter().copied().collect();
                assert_eq!(got.len(), keys.len(), "duplicate keys");
                let live: BTreeSet<u64> = self
                    .model
                    .map
                    .keys()
                    .copied()
                    .filter(|&k| self.model.live(k).is_some())
                    .collect();
                if self.exact {
                    assert_eq!(got, live);
                } else {
                    assert!(got.is_subset(&live), "keys {got:?} not within {live:?}");
                }
            }
        }
        self.check_invariants();
    }

    fn check_invariants(&self) {
        // The engine's own structure first: table, slab, queues, weights, deadline counts.
        self.cache.check_invariants();
        let len = self.cache.len();
        let weight = self.cache.weighted_size();
        let s = self.cache.stats();
        assert_eq!(s.entries, len as u64);
        assert_eq!(s.weighted_size, weight);
        assert_eq!(
            s.entries,
            s.inserts - s.removals - s.expirations - s.evictions,
            "{s:?}"
        );
        assert_eq!((s.hits, s.misses), (self.hits, self.misses));
        if let Some(n) = self.cfg.max_entries {
            assert!(len as u64 <= n, "len {len} > max_entries {n}");
        }
        if let Some(w) = self.cfg.max_weight {
            assert!(weight <= w, "weighted_size {weight} > max_weight {w}");
        } else {
            assert_eq!(weight, len as u64);
        }
        let live = self
            .model
            .map
            .values()
            .filter(|s| self.model.is_live(s))
            .count();
        if self.exact {
            assert!(len >= live, "len {len} < live {live}");
            assert_eq!(s.evictions, 0);
            assert_eq!(
                (s.inserts, s.updates, s.removals),
                (self.inserts, self.updates, self.removals)
            );
        }
    }

    /// Clears the cache and checks that every stored value was reported exactly once.
    fn finish(mut self) {
        self.apply(&Op::Clear);
        assert!(self.model.map.is_empty());
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        let mut seen = HashMap::new();
        let mut by_cause = [0u64; 6];
        for &(k, v, cause) in &events {
            assert!(seen.insert(v, cause).is_none(), "value {v} reported twice");
            let (key, allowed) = *self.departed.get(&v).unwrap_or_else(|| {
                panic!("value {v} of key {k} reported ({cause:?}) but never stored")
            });
            assert_eq!(k, key, "value {v} reported under the wrong key");
            assert!(
                allowed & bit(cause) != 0,
                "value {v} of key {k} reported as {cause:?}, allowed {allowed:#07b}"
            );
            by_cause[bit(cause).trailing_zeros() as usize] += 1;
        }
        for v in self.departed.keys() {
            assert!(seen.contains_key(v), "value {v} never reported");
        }
        for v in &self.refused {
            assert!(!seen.contains_key(v), "refused value {v} reported");
        }
        let s = self.cache.stats();
        let [expired, evicted, removed, replaced, cleared, invalidated] = by_cause;
        assert_eq!(s.expirations, expired);
        assert_eq!(s.evictions, evicted);
        assert_eq!(s.removals, removed + cleared + invalidated);
        assert_eq!(s.updates, replaced);
        assert_eq!(s.inserts, self.departed.len() as u64 - replaced);
    }
}

fn run(cfg: Config, ops: &[Op], exact: bool) {
    let mut h = Harness::new(cfg, exact);
    for op in ops {
        h.apply(op);
    }
    h.finish();
}

fn durations() -> impl Strategy<Value = (Option<u64>, Option<u64>)> {
    (
        prop_oneof![Just(None), (10..300u64).prop_map(Some)],
        prop_oneof![Just(None), (10..120u64).prop_map(Some)],
    )
}

/// 300 cases from a fixed seed, so runs are reproducible; `PROPTEST_CASES` and
/// `PROPTEST_RNG_SEED` (e.g. `PROPTEST_CASES=20000 PROPTEST_RNG_SEED=$RANDOM`) explore further.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 300;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x5EED_57A7A);
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn exact(
        shards in prop_oneof![Just(1usize), Just(4)],
        (default_ttl_ms, tti_ms) in durations(),
        ops in prop::collection::vec(op(64), 1..300),
    ) {
        // 256 entries per shard: no shard can be full with 64 keys.
        let cfg = Config {
            shards,
            default_ttl_ms,
            tti_ms,
            max_entries: Some(256 * shards as u64),
            max_weight: None,
        };
        run(cfg, &ops, true);
    }

    /// Few keys and fine time steps: reads, refreshes and expiry meet at exact boundaries,
    /// including time-to-idle refreshes that move the deadline by exactly 1 ms (skipped).
    #[test]
    fn exact_fine_time(
        shards in prop_oneof![Just(1usize), Just(4)],
        default_ttl_ms in prop_oneof![Just(None), (5..40u64).prop_map(Some)],
        tti_ms in prop_oneof![Just(None), (2..20u64).prop_map(Some), (2..20u64).prop_map(Some)],
        ops in prop::collection::vec(fine_op(4), 1..300),
    ) {
        let cfg = Config {
            shards,
            default_ttl_ms,
            tti_ms,
            max_entries: Some(256 * shards as u64),
            max_weight: None,
        };
        run(cfg, &ops, true);
    }

    #[test]
    fn evicting(
        shards in prop_oneof![Just(1usize), Just(4)],
        (default_ttl_ms, tti_ms) in durations(),
        bound in 0..3u8,
        per_shard in 16..40u64,
        ops in prop::collection::vec(op(128), 1..400),
    ) {
        // Per-shard bounds of at least 16 entries: `evicting_tiny` covers smaller ones.
        let n = shards as u64;
        let cfg = Config {
            shards,
            default_ttl_ms,
            tti_ms,
            max_entries: (bound != 1).then_some(per_shard * n),
            max_weight: (bound != 0).then_some(per_shard * n * 2),
        };
        run(cfg, &ops, false);
    }

    /// Bounds of 1 to 15 entries (or weight units) per shard: the sizes where a shard has no
    /// main share, or its slab's first growth step exceeds its bound (see cache_bounds.rs's
    /// `tiny_cache_survives_clear` and `one_entry_per_shard`, each once a panic).
    #[test]
    fn evicting_tiny(
        shards in prop_oneof![Just(1usize), Just(2)],
        (default_ttl_ms, tti_ms) in durations(),
        bound in 0..3u8,
        per_shard in 1..16u64,
        ops in prop::collection::vec(op(16), 1..300),
    ) {
        let n = shards as u64;
        let cfg = Config {
            shards,
            default_ttl_ms,
            tti_ms,
            max_entries: (bound != 1).then_some(per_shard * n),
            max_weight: (bound != 0).then_some(per_shard * n * 4),
        };
        run(cfg, &ops, false);
    }
}

/// The same harness, deterministic: a weight bound of 4 per shard with weights 1 to 4, so a
/// shard holds one to four entries and nearly every insert evicts.
#[test]
fn evicting_one_entry_per_shard_by_weight() {
    let cfg = Config {
        shards: 2,
        default_ttl_ms: None,
        tti_ms: Some(20),
        max_entries: None,
        max_weight: Some(8),
    };
    let mut ops = Vec::new();
    for i in 0..2000u64 {
        let k = (i * 7) % 8;
        ops.push(match i % 9 {
            0..=2 => Op::Insert(k),
            3 => Op::InsertIfAbsent(k),
            4 | 5 => Op::Get(k),
            6 => Op::Advance(i % 13 + 1),
            7 => Op::Contains(k),
            _ => Op::Remove(k),
        });
    }
    run(cfg, &ops, false);
}
