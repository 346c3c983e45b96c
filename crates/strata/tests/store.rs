//! `strata::store` through its public API: tags over a million entries, invalidation by key,
//! prefix and pattern (against a transcription of Redis's matcher), event rules, the
//! publisher and remote instances, the budget and the namespaces' limits, O(1) clears, and
//! the odds and ends. Time is a `MockClock`; background work is waited for with
//! `Store::run_pending_tasks`, never with sleeps.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{invalid_config, Rng};
use strata::config::{Config, ConfigError, DEFAULT_MAX_BYTES, DEFAULT_NAMESPACE};
use strata::store::{Invalidation, Put, Store, StoreError, SAMPLE_EVERY};
use strata::{HeapSize, Inserted, Key, MockClock, Namespace};

fn config(toml: &str) -> Config {
    Config::from_sources(Some(toml), []).unwrap_or_else(|e| panic!("config refused: {e}"))
}

/// No periodic maintenance during a test: background work is what the test asks for.
const NO_MAINTENANCE: Duration = Duration::from_secs(24 * 3600);

/// A store for `toml` on a mock clock.
fn store(toml: &str) -> (Store, MockClock) {
    let clock = MockClock::new();
    let store = Store::builder(config(toml))
        .clock(clock.clone())
        .maintenance_interval(NO_MAINTENANCE)
        .build()
        .unwrap();
    (store, clock)
}

/// What a publisher was handed, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Invalidation>>>);

impl Recorder {
    fn take(&self) -> Vec<Invalidation> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A store for `toml` on a mock clock whose publisher records into the returned recorder.
fn recorded_store(toml: &str) -> (Store, Recorder) {
    let recorder = Recorder::default();
    let sink = recorder.clone();
    let store = Store::builder(config(toml))
        .clock(MockClock::new())
        .maintenance_interval(NO_MAINTENANCE)
        .publisher(move |inv| sink.0.lock().unwrap().push(inv.clone()))
        .build()
        .unwrap();
    (store, recorder)
}

/// Runs `work` over `0..n` split across a few threads (debug builds are slow; the work is
/// independent per index, so the outcome does not depend on the split).
fn in_parallel(n: u64, work: impl Fn(Range<u64>) + Sync) {
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get().clamp(1, 8)) as u64;
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || work(t * chunk..((t + 1) * chunk).min(n)));
        }
    });
}

fn key_text(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. Tags

#[test]
fn a_tag_over_a_million_entries_is_invalidated_at_once() {
    const N: u64 = 1_000_000;
    let (store, _clock) = store("max_bytes = \"1GiB\"\n[namespaces.big]\n");
    let ns = store.namespace::<u64>("big").unwrap();
    // One entry in ten is a control without the tag; one tagged entry in three carries a
    // second tag as well.
    let is_control = |i: u64| i % 10 == 7;
    let has_second = |i: u64| !is_control(i) && i.is_multiple_of(3);
    in_parallel(N, |range| {
        for i in range {
            let put = if is_control(i) {
                Put::new()
            } else if has_second(i) {
                Put::new().tag("bulk").tag("other")
            } else {
                Put::new().tag("bulk")
            };
            ns.insert_with(format!("e::{i}"), i, put).unwrap();
        }
    });
    let tagged = (0..N).filter(|&i| !is_control(i)).count() as u64;
    let second = (0..N).filter(|&i| has_second(i)).count() as u64;
    let controls = N - tagged;
    assert_eq!(ns.len() as u64, N, "every insert must have been kept");
    assert_eq!(store.tag_count("bulk"), tagged);
    assert_eq!(store.tag_count("other"), second);

    assert_eq!(store.invalidate_tag("bulk"), tagged);
    assert_eq!(store.tag_count("bulk"), 0);
    // Every entry, at once (the purge may be running meanwhile; it changes no answer).
    in_parallel(N, |range| {
        for i in range {
            let got = ns.get(format!("e::{i}"));
            if is_control(i) {
                assert_eq!(got, Some(i), "control e::{i} was dropped");
            } else {
                assert_eq!(got, None, "tagged e::{i} still reads");
            }
        }
    });
    let stats = ns.stats();
    assert_eq!((stats.hits, stats.misses), (controls, tagged));
    assert_eq!(
        store.invalidate_tag("bulk"),
        0,
        "nothing carries it any more"
    );

    store.run_pending_tasks();
    assert_eq!(ns.len() as u64, controls, "dead entries were not reclaimed");
    assert_eq!(ns.stats().entries, controls);
    // The entries with the second tag are gone, so the second tag counts none.
    assert_eq!(store.tag_count("other"), 0);
    assert_eq!(store.invalidate_tag("other"), 0);

    // The same tag, used after the invalidation, is a new generation: live.
    ns.insert_with("late", 1, Put::new().tag("bulk")).unwrap();
    assert_eq!(ns.get("late"), Some(1));
    assert_eq!(store.tag_count("bulk"), 1);
    store.run_pending_tasks();
    assert_eq!(ns.get("late"), Some(1), "the purge took a live entry");
    assert_eq!(store.invalidate_tag("bulk"), 1);
    assert_eq!(ns.get("late"), None);
}

#[test]
fn tag_counts_follow_replacements_removals_evictions_and_expiry() {
    let (store, clock) = store(
        "[namespaces.a]\n[namespaces.b]\n[namespaces.tiny]\nmax_entries = 100\n\
         [namespaces.short]\nttl = \"1m\"\n",
    );
    let a = store.namespace::<u64>("a").unwrap();
    let b = store.namespace::<String>("b").unwrap();
    for i in 0..100 {
        a.insert_with(format!("k{i}"), i, Put::new().tag("t"))
            .unwrap();
    }
    // The same tag twice on one entry counts once.
    b.insert_with("x", "x".into(), Put::new().tag("t").tag("t"))
        .unwrap();
    assert_eq!(store.tag_count("t"), 101);
    // Replaced without the tag, replaced with it again, removed, invalidated by key.
    for i in 0..10 {
        a.insert(format!("k{i}"), i).unwrap();
    }
    for i in 10..20 {
        a.insert_with(format!("k{i}"), i, Put::new().tag("t"))
            .unwrap();
    }
    for i in 20..25 {
        assert_eq!(a.remove(format!("k{i}")), Some(i));
    }
    // k3 (no longer tagged) and k30..k39.
    assert_eq!(a.invalidate_prefix("k3"), 11);
    assert_eq!(store.tag_count("t"), 101 - 10 - 5 - 10);

    // Evicted entries stop counting.
    let tiny = store.namespace::<u64>("tiny").unwrap();
    for i in 0..1_000 {
        tiny.insert_with(format!("k{i}"), i, Put::new().tag("e"))
            .unwrap();
    }
    assert!(tiny.len() <= 100);
    assert_eq!(store.tag_count("e"), tiny.len() as u64);

    // Expired entries count until they are reclaimed.
    let short = store.namespace::<u64>("short").unwrap();
    for i in 0..7 {
        short
            .insert_with(format!("k{i}"), i, Put::new().tag("s"))
            .unwrap();
    }
    short
        .insert_with(
            "long",
            0,
            Put::new().tag("s").ttl(Duration::from_secs(3600)),
        )
        .unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(short.get("k0"), None);
    assert_eq!(short.get("long"), Some(0));
    store.run_pending_tasks();
    assert_eq!(store.tag_count("s"), 1);

    // A tag spans namespaces: the count is over all of them.
    let expected = store.tag_count("t");
    assert_eq!(expected, 76);
    assert_eq!(store.invalidate_tag("t"), expected);
    assert_eq!(b.get("x"), None);
    assert_eq!(a.get("k50"), None);
    assert_eq!(a.get("k0"), Some(0), "an untagged replacement was dropped");
    // (Read the length first: the purge may take them as soon as they are dead.)
    let held = tiny.len() as u64;
    assert_eq!(store.invalidate_tag("e"), held);
    assert_eq!(store.invalidate_tag("s"), 1);
    assert_eq!(short.get("long"), None);
}

#[test]
fn dead_entries_answer_like_absent_ones() {
    let (store, _clock) = store("[namespaces.n]\nttl = \"1h\"\n");
    let ns = store.namespace::<String>("n").unwrap();
    ns.insert_with("k", "v".into(), Put::new().tag("t"))
        .unwrap();
    assert_eq!(ns.ttl("k"), Some(Some(Duration::from_secs(3600))));
    store.invalidate_tag("t");
    assert!(!ns.contains_key("k"));
    assert_eq!(ns.ttl("k"), None);
    assert!(!ns.set_ttl("k", None));
    assert_eq!(ns.remove("k"), None);
    ns.insert_with("k2", "v".into(), Put::new().tag("t2"))
        .unwrap();
    store.invalidate_tag("t2");
    let key_invalidation = Invalidation::Key {
        namespace: Some("n".into()),
        key: "k2".into(),
    };
    assert_eq!(store.invalidate(&key_invalidation).unwrap(), 0);
    ns.insert_with("p::1", "v".into(), Put::new().tag("t3"))
        .unwrap();
    ns.insert("p::2", "v".into()).unwrap();
    store.invalidate_tag("t3");
    assert_eq!(ns.invalidate_prefix("p::"), 1);
    assert_eq!(ns.invalidate_pattern("*"), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Invalidation by pattern, prefix and key

/// Redis 7's `stringmatchlen` (src/util.c, `nocase` off), transcribed as directly as Rust
/// allows, as the reference the store's pattern invalidation is checked against; plus the
/// one difference strata documents in src/pattern.rs: a pattern of stars only (the empty
/// pattern included) matches the empty key, which Redis's matcher says it does not.
fn redis_match(pattern: &[u8], string: &[u8]) -> bool {
    if string.is_empty() && pattern.iter().all(|&c| c == b'*') {
        // strata, not Redis (Redis: only the empty pattern matches the empty key).
        return true;
    }
    let mut skip_longer_matches = false;
    stringmatchlen_impl(pattern, string, &mut skip_longer_matches, 0)
}

/// `pattern` and `string` in Redis are a pointer and a length; here `p` and `s` are the
/// pointers, as indices, and the lengths are what is left after them. Redis reads
/// `pattern[k]` past the length in places; there it finds the NUL ending the pattern, which
/// `at` returns.
fn stringmatchlen_impl(
    pat: &[u8],
    st: &[u8],
    skip_longer_matches: &mut bool,
    nesting: u32,
) -> bool {
    let at = |i: usize| pat.get(i).copied().unwrap_or(0);
    // Protection against abusive patterns.
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    while p < pat.len() && s < st.len() {
        match pat[p] {
            b'*' => {
                while p < pat.len() && at(p + 1) == b'*' {
                    p += 1;
                }
                if pat.len() - p == 1 {
                    return true;
                }
                while s < st.len() {
                    if stringmatchlen_impl(
                        &pat[p + 1..],
                        &st[s..],
                        skip_longer_matches,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer_matches {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer_matches = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = at(p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    if at(p) == b'\\' && pat.len() - p >= 2 {
                        p += 1;
                        if pat[p] == st[s] {
                            matched = true;
                        }
                    } else if at(p) == b']' {
                        break;
                    } else if p == pat.len() {
                        // Unterminated set: step back so that the `pattern++` below lands on
                        // the end.
                        p -= 1;
                        break;
                    } else if pat.len() - p >= 3 && pat[p + 1] == b'-' {
                        // `int start = pattern[0]` from a `char`: signed on x86-64, where Redis
                        // servers run, and strata follows it (src/pattern.rs).
                        let mut start = i32::from(pat[p] as i8);
                        let mut end = i32::from(pat[p + 2] as i8);
                        let c = i32::from(st[s] as i8);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if pat[p] == st[s] {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            c => {
                // `case '\\'` falls through to `default` after skipping the backslash, when
                // something follows it; a trailing backslash is itself.
                if c == b'\\' && pat.len() - p >= 2 {
                    p += 1;
                }
                if pat[p] != st[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == st.len() {
            while at(p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pat.len() && s == st.len()
}

#[test]
fn the_reference_matcher_knows_redis() {
    for (p, s, want) in [
        (&b"h?llo"[..], &b"hello"[..], true),
        (b"h*llo", b"heeeello", true),
        (b"h*llo", b"hllo", true),
        (b"h[ae]llo", b"hallo", true),
        (b"h[ae]llo", b"hillo", false),
        (b"h[^e]llo", b"hello", false),
        (b"h[a-b]llo", b"hbllo", true),
        (b"[z-a]", b"m", true),
        // Unterminated set, empty set, negated empty set.
        (b"a[bc", b"ab", true),
        (b"a[bc", b"abc", false),
        (b"[]", b"a", false),
        (b"[^]", b"a", true),
        (b"[^", b"a", true),
        (b"[", b"[", false),
        // Escapes inside and outside sets; a trailing backslash is itself.
        (b"\\?", b"?", true),
        (b"\\?", b"x", false),
        (b"[\\]]", b"]", true),
        (b"a\\", b"a\\", true),
        (b"[a\\", b"\\", true),
        // A range may end in `]`.
        (b"[a-]", b"b", false),
        (b"[^-a]x", b"]x", true),
        // Range ends compare as signed chars.
        (b"[b-\xff]", b"a", true),
        (b"[b-\xff]", b"\x01", true),
        (b"[b-\xff]", b"\xfe", false),
        (b"[\x80-\x90]", b"\x85", true),
        // Stars: trailing ones match nothing; the empty key.
        (b"a**", b"a", true),
        (b"*a*b", b"xaxxb", true),
        (b"*a*b", b"xaxx", false),
        (b"*", b"", true),
        (b"**", b"", true),
        (b"", b"", true),
        (b"*?", b"", false),
        (b"", b"a", false),
    ] {
        assert_eq!(redis_match(p, s), want, "{} ~ {}", key_text(p), key_text(s));
    }
}

/// Key bytes: letters, every character the glob language gives a meaning to, the key
/// separator's `:`, and two bytes above 0x7f (where signed range ends differ).
const KEY_BYTES: &[u8] = b"ab:*?[]^\\-\x80\xff";
/// Pattern bytes, weighted towards the wildcards so that patterns match something.
const PATTERN_BYTES: &[u8] = b"aab:**??[[]]^-\\\x80\xff";

fn random_bytes(rng: &mut Rng, alphabet: &[u8], max_len: u64) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
        .collect()
}

fn random_keys(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut keys = BTreeSet::new();
    keys.insert(Vec::new()); // the empty key, where strata and Redis differ
    while keys.len() < n {
        keys.insert(random_bytes(rng, KEY_BYTES, 5));
    }
    keys.into_iter().collect()
}

/// Fills `ns` with `keys` (value: the key's index), runs `invalidate`, and checks its count and
/// the keys left against `doomed`; then puts back what went.
fn check_invalidation(
    ns: &Namespace<u64>,
    keys: &[Vec<u8>],
    what: &str,
    invalidate: impl FnOnce() -> u64,
    doomed: impl Fn(&[u8]) -> bool,
) -> usize {
    assert_eq!(ns.len(), keys.len());
    let expected: Vec<bool> = keys.iter().map(|k| doomed(k)).collect();
    let n = expected.iter().filter(|&&d| d).count();
    assert_eq!(invalidate(), n as u64, "count for {what}");
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            ns.contains_key(key),
            !expected[i],
            "{what}: key {} should {}",
            key_text(key),
            if expected[i] { "be gone" } else { "be left" }
        );
    }
    assert_eq!(ns.len(), keys.len() - n, "{what}");
    for (i, key) in keys.iter().enumerate() {
        if expected[i] {
            ns.insert(key.clone(), i as u64).unwrap();
        }
    }
    n
}

fn filled(store: &Store, name: &str, keys: &[Vec<u8>]) -> Namespace<u64> {
    let ns = store.namespace::<u64>(name).unwrap();
    for (i, key) in keys.iter().enumerate() {
        ns.insert(key.clone(), i as u64).unwrap();
    }
    ns
}

#[test]
fn pattern_invalidation_agrees_with_the_reference_matcher() {
    let (store, _clock) = store("[namespaces.p]\n");
    let mut rng = Rng(0x5eed_0001);
    let keys = random_keys(&mut rng, 300);
    let ns = filled(&store, "p", &keys);
    let fixed: [&[u8]; 16] = [
        b"",
        b"*",
        b"**",
        b"?",
        b"[",
        b"[^",
        b"[]",
        b"\\",
        b"a\\",
        b"[a-]",
        b"[b-\xff]*",
        b"*\\*",
        b"a*",
        b"*:*",
        b"[^a-b]?",
        b"\xff*",
    ];
    let mut patterns: Vec<Vec<u8>> = fixed.iter().map(|p| p.to_vec()).collect();
    patterns.extend((0..2_000).map(|_| random_bytes(&mut rng, PATTERN_BYTES, 8)));
    let (mut matched_some, mut matched_all) = (0, 0);
    for pattern in &patterns {
        let n = check_invalidation(
            &ns,
            &keys,
            &format!("pattern {}", key_text(pattern)),
            || ns.invalidate_pattern(pattern),
            |key| redis_match(pattern, key),
        );
        matched_some += usize::from(n > 0);
        matched_all += usize::from(n == keys.len());
    }
    // The generator must exercise both sides of the matcher.
    assert!(
        matched_some > patterns.len() / 4 && matched_some - matched_all > patterns.len() / 4,
        "patterns too rarely match: {matched_some} of {} match something, {matched_all} all",
        patterns.len()
    );
}

#[test]
fn prefix_and_key_invalidation_drop_exactly_their_keys() {
    let (store, _clock) = store("[namespaces.p]\n");
    let mut rng = Rng(0x5eed_0002);
    let keys = random_keys(&mut rng, 300);
    let ns = filled(&store, "p", &keys);
    let mut dropped = 0;
    for _ in 0..300 {
        let prefix = random_bytes(&mut rng, KEY_BYTES, 3);
        dropped += check_invalidation(
            &ns,
            &keys,
            &format!("prefix {}", key_text(&prefix)),
            || ns.invalidate_prefix(&prefix),
            |key| key.starts_with(&prefix),
        );
    }
    assert!(dropped > 0);
    // The empty prefix is every key; glob characters in a prefix are literal.
    check_invalidation(
        &ns,
        &keys,
        "prefix ''",
        || ns.invalidate_prefix(""),
        |_| true,
    );
    check_invalidation(
        &ns,
        &keys,
        "prefix '*'",
        || ns.invalidate_prefix("*"),
        |k| k.starts_with(b"*"),
    );

    // Keys, present or not, by the handle and by value.
    for round in 0..400 {
        let key = random_bytes(&mut rng, KEY_BYTES, 5);
        let index = keys.iter().position(|k| *k == key);
        let by_value = round % 2 == 0;
        check_invalidation(
            &ns,
            &keys,
            &format!("key {}", key_text(&key)),
            || {
                if by_value {
                    let inv = Invalidation::Key {
                        namespace: Some("p".into()),
                        key: Key::from(key.as_slice()),
                    };
                    store.invalidate(&inv).unwrap()
                } else {
                    let removed = ns.remove(&key);
                    assert_eq!(removed, index.map(|i| i as u64));
                    u64::from(removed.is_some())
                }
            },
            |k| k == key.as_slice(),
        );
    }
}

#[test]
fn invalidations_without_a_namespace_span_every_namespace() {
    let (store, _clock) = store("[namespaces.a]\n[namespaces.b]\n[namespaces.c]\n");
    let a = store.namespace::<String>("a").unwrap();
    let b = store.namespace::<u64>("b").unwrap();
    // c and default are never opened: invalidations pass them by, and they stay unopened.
    let users = ["1", "2", "3"];
    for user in users {
        for field in ["profile", "session", "avatar"] {
            a.insert(format!("user::{user}::{field}"), field.into())
                .unwrap();
            b.insert(format!("user::{user}::{field}"), 7).unwrap();
        }
    }
    b.insert("only-b::session", 1).unwrap();
    let scope = |namespace: Option<&str>| namespace.map(str::to_owned);

    let inv = Invalidation::Key {
        namespace: scope(None),
        key: "user::1::profile".into(),
    };
    assert_eq!(store.invalidate(&inv).unwrap(), 2);
    assert!(!a.contains_key("user::1::profile") && !b.contains_key("user::1::profile"));

    let inv = Invalidation::Prefix {
        namespace: scope(None),
        prefix: "user::2::".into(),
    };
    assert_eq!(store.invalidate(&inv).unwrap(), 6);

    let inv = Invalidation::Pattern {
        namespace: scope(None),
        pattern: "*::session".into(),
    };
    // user 1's and 3's sessions in both, and only-b's.
    assert_eq!(store.invalidate(&inv).unwrap(), 5);
    assert_eq!(a.len(), 3); // user::1::avatar, user::3::profile, user::3::avatar
    assert_eq!(b.len(), 3);

    // The same, restricted to one namespace, leaves the other alone.
    let inv = Invalidation::Prefix {
        namespace: scope(Some("a")),
        prefix: "user::3::".into(),
    };
    assert_eq!(store.invalidate(&inv).unwrap(), 2);
    assert_eq!((a.len(), b.len()), (1, 3));

    let stats = store.stats();
    assert!(!stats.namespaces["c"].opened);
    assert!(!stats.namespaces[DEFAULT_NAMESPACE].opened);
    assert!(stats.namespaces["a"].opened && stats.namespaces["b"].opened);

    assert_eq!(
        store
            .invalidate(&Invalidation::Clear { namespace: None })
            .unwrap(),
        4
    );
    assert!(a.is_empty() && b.is_empty());

    // An unknown namespace is an error, not a no-op.
    for inv in [
        Invalidation::Key {
            namespace: scope(Some("nope")),
            key: "k".into(),
        },
        Invalidation::Prefix {
            namespace: scope(Some("nope")),
            prefix: "k".into(),
        },
        Invalidation::Pattern {
            namespace: scope(Some("nope")),
            pattern: "*".into(),
        },
        Invalidation::Clear {
            namespace: scope(Some("nope")),
        },
    ] {
        assert_eq!(
            store.invalidate(&inv),
            Err(StoreError::UnknownNamespace("nope".into())),
            "{inv:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Event rules

const EVENTS: &str = r#"
max_bytes = "64MiB"
[namespaces.payment]
[namespaces.bill]
[namespaces.wallet]
[namespaces.dashboard]

[events."payment.succeeded"]
params = ["user_id", "bill_id"]
keys = ["payment::history::{user_id}", "bill::status::{bill_id}"]
tags = ["dashboard:{user_id}"]
cascade = ["wallet.changed", "bill.paid"]

# Level 2, restricted to one namespace (but its tags are store-wide).
[events."wallet.changed"]
params = ["user_id"]
namespaces = ["wallet"]
prefixes = ["wallet::{user_id}::"]
tags = ["wallet:{user_id}"]
cascade = ["ledger.changed"]

[events."bill.paid"]
namespaces = ["bill"]
patterns = ["bill::{bill_id}::line::*"]
cascade = ["ledger.changed"]

# Level 3, reached twice (a diamond), in every namespace.
[events."ledger.changed"]
keys = ["ledger::{user_id}"]
tags = ["ledger:{user_id}"]

# Declares a parameter its rules do not use: still part of its signature.
[events."refund.issued"]
params = ["user_id", "amount"]
keys = ["payment::history::{user_id}"]
"#;

/// An entry for the event tests: namespace, key, tag.
type Row = (&'static str, String, Option<String>);

fn insert_rows(store: &Store, rows: &[Row]) {
    for (ns, key, tag) in rows {
        let put = tag.iter().fold(Put::new(), |put, t| put.tag(t.clone()));
        store
            .namespace::<String>(ns)
            .unwrap()
            .insert_with(key.clone(), key.clone(), put)
            .unwrap();
    }
}

fn present(store: &Store, (ns, key, _): &Row) -> bool {
    store.namespace::<String>(ns).unwrap().get(key).as_deref() == Some(key.as_str())
}

fn row(ns: &'static str, key: &str, tag: Option<&str>) -> Row {
    (ns, key.to_owned(), tag.map(str::to_owned))
}

#[test]
fn an_event_drops_what_its_rules_and_their_cascades_name() {
    let (store, _clock) = store(EVENTS);
    // (entry, whether payment.succeeded{42, b1} drops it, and why)
    let table: Vec<(Row, bool)> = vec![
        (row("payment", "payment::history::42", None), true), // key, level 1
        (row("payment", "payment::history::7", None), false),
        (row("payment", "payment::history::420", None), false),
        (row("payment", "wallet::42::mirror", None), false), // level 2 prefix is wallet-only
        (row("payment", "widget::42", Some("wallet:42")), true), // level 2 tag, store-wide
        (row("bill", "bill::status::b1", None), true),       // key, level 1
        (row("bill", "bill::status::b2", None), false),
        (row("bill", "bill::b1::line::1", None), true), // pattern, level 2
        (row("bill", "bill::b1::line::2", None), true),
        (row("bill", "bill::b10::line::1", None), false),
        (row("bill", "payment::history::42", None), true), // level 1 keys: every namespace
        (row("wallet", "wallet::42::balance", None), true), // prefix, level 2
        (row("wallet", "wallet::42::limits", None), true),
        (row("wallet", "wallet::420::balance", None), false),
        (row("wallet", "wallet::7::balance", None), false),
        (row("wallet", "bill::b1::line::9", None), false), // level 2 pattern is bill-only
        (row("dashboard", "dash::42", Some("dashboard:42")), true), // tag, level 1
        (row("dashboard", "dash::7", Some("dashboard:7")), false),
        (row("dashboard", "ledger::42", None), true), // key, level 3
        (row("dashboard", "ledger::7", None), false),
        (row("dashboard", "ledger-view::42", Some("ledger:42")), true), // tag, level 3
        (row("dashboard", "ledger-view::7", Some("ledger:7")), false),
        (row(DEFAULT_NAMESPACE, "ledger::42", None), true),
    ];
    let rows: Vec<Row> = table.iter().map(|(r, _)| r.clone()).collect();
    insert_rows(&store, &rows);
    let expected = table.iter().filter(|(_, dropped)| *dropped).count() as u64;
    let dropped = store
        .emit("payment.succeeded", [("user_id", "42"), ("bill_id", "b1")])
        .unwrap();
    for (r, gone) in &table {
        assert_eq!(present(&store, r), !gone, "{r:?}");
    }
    // Exact, although ledger.changed ran twice (through both sides of the diamond).
    assert_eq!(dropped, expected);

    // A level-2 event on its own runs its cascade too.
    insert_rows(&store, &rows);
    let dropped = store.emit("wallet.changed", [("user_id", "7")]).unwrap();
    // wallet::7::balance (level 1 prefix), ledger::7 and ledger-view::7 (level 2 key and tag).
    assert_eq!(dropped, 3);
    assert!(!present(&store, &row("wallet", "wallet::7::balance", None)));
    assert!(!present(&store, &row("dashboard", "ledger::7", None)));
    assert!(present(&store, &row("wallet", "wallet::42::balance", None)));
    assert!(present(
        &store,
        &row("payment", "payment::history::7", None)
    ));
}

#[test]
fn parameters_are_escaped_as_key_parts() {
    // Other users and bills, keyed by the convention (`key!`), and keys written by hand that
    // an unescaped parameter would reach; all must survive every emit below.
    let other_users = ["4", "2", "42", "9", "4%3A%3A2", "b1"];
    let other_bills = ["b1", "b2", "b10", "b1x", "4"];
    let bystanders = |store: &Store| -> Vec<Row> {
        let mut rows = Vec::new();
        for u in other_users {
            rows.push(row("payment", &strata::key!("payment", "history", u), None));
            rows.push(row("wallet", &strata::key!("wallet", u, "balance"), None));
            rows.push(row("dashboard", &strata::key!("ledger", u), None));
            let tag = format!("dashboard:{u}");
            rows.push(row("dashboard", &strata::key!("dash", u), Some(&tag)));
        }
        for b in other_bills {
            rows.push(row("bill", &strata::key!("bill", "status", b), None));
            rows.push(row("bill", &strata::key!("bill", b, "line", "1"), None));
        }
        for raw in [
            "payment::history::4::2",
            "payment::history::4:",
            "payment::history::",
        ] {
            rows.push(row("payment", raw, None));
        }
        for raw in [
            "wallet::4::2::balance",
            "wallet::4:::balance",
            "wallet::4::balance::",
        ] {
            rows.push(row("wallet", raw, None));
        }
        for raw in ["bill::b::1::line::1", "bill::status::b::1"] {
            rows.push(row("bill", raw, None));
        }
        insert_rows(store, &rows);
        rows
    };
    for (user, bill) in [
        ("4::2", "b::1"),
        ("*", "*"),
        ("4%3A", "b?"),
        ("?", "[b]1"),
        ("\\", "b1\\"),
        ("4:", "b1*"),
    ] {
        let (store, _clock) = store(EVENTS);
        let others = bystanders(&store);
        let own: Vec<Row> = vec![
            row("payment", &strata::key!("payment", "history", user), None),
            row("wallet", &strata::key!("wallet", user, "balance"), None),
            row("bill", &strata::key!("bill", "status", bill), None),
            row("bill", &strata::key!("bill", bill, "line", "1"), None),
            row("dashboard", &strata::key!("ledger", user), None),
            row("dashboard", "own-dash", Some(&format!("dashboard:{user}"))),
        ];
        for o in &own {
            assert!(
                !others.iter().any(|b| b.0 == o.0 && b.1 == o.1),
                "test setup: {o:?} is a bystander's key"
            );
        }
        insert_rows(&store, &own);
        let dropped = store
            .emit("payment.succeeded", [("user_id", user), ("bill_id", bill)])
            .unwrap();
        for o in &own {
            assert!(
                !present(&store, o),
                "user {user:?} bill {bill:?}: {o:?} kept"
            );
        }
        for b in &others {
            assert!(
                present(&store, b),
                "user {user:?} bill {bill:?}: {b:?} dropped"
            );
        }
        assert_eq!(dropped, own.len() as u64, "user {user:?} bill {bill:?}");
    }
}

#[test]
fn a_bad_emit_drops_nothing() {
    let (store, recorder) = recorded_store(EVENTS);
    let rows = vec![
        row("payment", "payment::history::42", None),
        row("bill", "bill::status::b1", None),
        row("bill", "bill::b1::line::1", None),
        row("wallet", "wallet::42::balance", None),
        row("dashboard", "dash::42", Some("dashboard:42")),
        row("dashboard", "ledger::42", None),
    ];
    insert_rows(&store, &rows);
    let missing = |event: &str, param: &str| StoreError::MissingParam {
        event: event.into(),
        param: param.into(),
    };
    assert_eq!(
        store.emit("payment.succeeded", [("user_id", "42")]),
        Err(missing("payment.succeeded", "bill_id"))
    );
    assert_eq!(
        store.emit("payment.succeeded", [("bill_id", "b1")]),
        Err(missing("payment.succeeded", "user_id"))
    );
    // bill.paid uses only bill_id itself; its cascade needs user_id, which is checked first.
    assert_eq!(
        store.emit("bill.paid", [("bill_id", "b1")]),
        Err(missing("bill.paid", "user_id"))
    );
    assert_eq!(
        store.emit("wallet.changed", [("bill_id", "b1")]),
        Err(missing("wallet.changed", "user_id"))
    );
    assert_eq!(
        store.emit("payment.failed", [("user_id", "42")]),
        Err(StoreError::UnknownEvent("payment.failed".into()))
    );
    assert_eq!(
        store.emit("refund.issued", [("user_id", "42")]),
        Err(missing("refund.issued", "amount"))
    );
    let mut params = BTreeMap::new();
    params.insert("bill_id".to_string(), "b1".to_string());
    assert_eq!(
        store.invalidate(&Invalidation::Event {
            event: "bill.paid".into(),
            params,
        }),
        Err(missing("bill.paid", "user_id"))
    );
    for r in &rows {
        assert!(present(&store, r), "{r:?} was dropped by a refused event");
    }
    assert_eq!(store.tag_count("dashboard:42"), 1);
    assert_eq!(recorder.take(), [], "a refused event was published");
    // Extra parameters are fine.
    let n = store
        .emit(
            "payment.succeeded",
            [("user_id", "42"), ("bill_id", "b1"), ("extra", "x")],
        )
        .unwrap();
    assert_eq!(n, rows.len() as u64);
}

#[test]
fn cascade_cycles_are_refused_with_their_path() {
    let reason = invalid_config(
        r#"
        [events.a]
        cascade = ["b"]
        [events.b]
        cascade = ["c"]
        [events.c]
        cascade = ["a"]
        "#,
        "events.\"c\".cascade",
        "a",
    );
    assert!(reason.contains("a -> b -> c -> a"), "{reason}");

    let reason = invalid_config(
        "[events.self]\nkeys = [\"k\"]\ncascade = [\"self\"]\n",
        "events.\"self\".cascade",
        "self",
    );
    assert!(reason.contains("self -> self"), "{reason}");

    // A cycle below an acyclic start is reported as the cycle alone, whichever rotation.
    let err = Config::from_sources(
        Some(
            r#"
            [events.start]
            cascade = ["x"]
            [events.x]
            cascade = ["y"]
            [events.y]
            cascade = ["z"]
            [events.z]
            cascade = ["x"]
            "#,
        ),
        [],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        ["x -> y -> z -> x", "y -> z -> x -> y", "z -> x -> y -> z"]
            .iter()
            .any(|cycle| text.contains(cycle)),
        "{text}"
    );
    assert!(!text.contains("start ->"), "{text}");

    // A diamond is not a cycle.
    Config::from_sources(
        Some(
            r#"
            [events.top]
            cascade = ["left", "right"]
            [events.left]
            cascade = ["bottom"]
            [events.right]
            cascade = ["bottom"]
            [events.bottom]
            keys = ["k"]
            "#,
        ),
        [],
    )
    .unwrap();
}

#[test]
fn bad_rules_name_their_field() {
    invalid_config(
        "[events.a]\ncascade = [\"ghost\"]\n",
        "events.\"a\".cascade",
        "ghost",
    );
    invalid_config(
        "[events.a]\nnamespaces = [\"nope\"]\nkeys = [\"k\"]\n",
        "events.\"a\".namespaces",
        "nope",
    );
    invalid_config(
        "[events.a]\nkeys = [\"user::{id\"]\n",
        "events.\"a\".keys",
        "user::{id",
    );
    invalid_config(
        "[events.a]\nprefixes = [\"user::{}\"]\n",
        "events.\"a\".prefixes",
        "user::{}",
    );
    invalid_config(
        "[events.a]\npatterns = [\"user::}*\"]\n",
        "events.\"a\".patterns",
        "user::}*",
    );
    invalid_config(
        "[events.a]\ntags = [\"user:{a b}\"]\n",
        "events.\"a\".tags",
        "user:{a b}",
    );
    let reason = invalid_config(
        "[events.a]\nparams = [\"user_id\"]\nkeys = [\"x::{user_id}::{bill_id}\"]\n",
        "events.\"a\".params",
        "user_id",
    );
    assert!(reason.contains("bill_id"), "{reason}");
    // Parameters a cascade needs count as the event's own.
    let reason = invalid_config(
        "[events.a]\nparams = [\"user_id\"]\nkeys = [\"u::{user_id}\"]\ncascade = [\"b\"]\n\
         [events.b]\nkeys = [\"b::{bill_id}\"]\n",
        "events.\"a\".params",
        "user_id",
    );
    assert!(reason.contains("bill_id"), "{reason}");
    // Unknown fields in a rule are refused too.
    let err = Config::from_sources(Some("[events.a]\nkey = [\"k\"]\n"), []).unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    // A rule may name the default namespace, which always exists.
    config("[events.a]\nnamespaces = [\"default\"]\nkeys = [\"k\"]\n");
}

// ---------------------------------------------------------------------------------------------
// 4. The publisher

#[test]
fn every_invalidation_path_publishes_once() {
    let (store, recorder) = recorded_store(EVENTS);
    let wallet = store.namespace::<String>("wallet").unwrap();
    let bill = store.namespace::<u64>("bill").unwrap();
    let some = |name: &str| Some(name.to_owned());
    wallet.insert("wallet::1::balance", "1".into()).unwrap();
    wallet.insert("wallet::2::balance", "2".into()).unwrap();
    bill.insert_with("bill::status::9", 9, Put::new().tag("t"))
        .unwrap();
    assert_eq!(recorder.take(), [], "inserts are not invalidations");

    assert_eq!(wallet.remove("wallet::1::balance").as_deref(), Some("1"));
    assert_eq!(
        recorder.take(),
        [Invalidation::Key {
            namespace: some("wallet"),
            key: "wallet::1::balance".into(),
        }]
    );
    // Removing an absent key is still an invalidation others must hear of.
    assert_eq!(wallet.remove("absent"), None);
    assert_eq!(
        recorder.take(),
        [Invalidation::Key {
            namespace: some("wallet"),
            key: "absent".into(),
        }]
    );
    assert_eq!(wallet.invalidate_prefix("wallet::2"), 1);
    assert_eq!(
        recorder.take(),
        [Invalidation::Prefix {
            namespace: some("wallet"),
            prefix: "wallet::2".into(),
        }]
    );
    assert_eq!(wallet.invalidate_pattern("w*[0-9]*"), 0);
    assert_eq!(
        recorder.take(),
        [Invalidation::Pattern {
            namespace: some("wallet"),
            pattern: "w*[0-9]*".into(),
        }]
    );
    wallet.insert("x", "x".into()).unwrap();
    assert_eq!(wallet.clear(), 1);
    assert_eq!(
        recorder.take(),
        [Invalidation::Clear {
            namespace: some("wallet"),
        }]
    );
    assert_eq!(store.invalidate_tag("t"), 1);
    assert_eq!(recorder.take(), [Invalidation::Tag { tag: "t".into() }]);

    // An event is published once, as the event, however far it cascades.
    wallet.insert("wallet::5::balance", "5".into()).unwrap();
    let n = store
        .emit("payment.succeeded", [("user_id", "5"), ("bill_id", "9")])
        .unwrap();
    assert_eq!(n, 1);
    let params: BTreeMap<String, String> = [("user_id", "5"), ("bill_id", "9")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        recorder.take(),
        [Invalidation::Event {
            event: "payment.succeeded".into(),
            params: params.clone(),
        }]
    );

    // Store::invalidate publishes exactly the value it was given, every variant.
    for inv in [
        Invalidation::Key {
            namespace: None,
            key: Key::from(&b"\xff\x00bin"[..]),
        },
        Invalidation::Prefix {
            namespace: some("bill"),
            prefix: "bill::".into(),
        },
        Invalidation::Pattern {
            namespace: None,
            pattern: "*".into(),
        },
        Invalidation::Tag { tag: "t".into() },
        Invalidation::Event {
            event: "ledger.changed".into(),
            params,
        },
        Invalidation::Clear {
            namespace: some("dashboard"),
        },
        Invalidation::Clear { namespace: None },
    ] {
        store.invalidate(&inv).unwrap();
        assert_eq!(recorder.take(), [inv]);
    }

    wallet.insert("y", "y".into()).unwrap();
    assert_eq!(store.clear_namespace("wallet").unwrap(), 1);
    assert_eq!(
        recorder.take(),
        [Invalidation::Clear {
            namespace: some("wallet"),
        }]
    );
    wallet.insert("z", "z".into()).unwrap();
    bill.insert("z", 1).unwrap();
    assert_eq!(store.clear(), 2);
    assert_eq!(recorder.take(), [Invalidation::Clear { namespace: None }]);

    // What is refused is not published; what comes from elsewhere is not published again.
    assert!(store.clear_namespace("nope").is_err());
    assert!(store.emit("nope", [("a", "b")]).is_err());
    wallet.insert("r", "r".into()).unwrap();
    let remote = Invalidation::Key {
        namespace: some("wallet"),
        key: "r".into(),
    };
    assert_eq!(store.apply_remote(&remote).unwrap(), 1);
    assert_eq!(
        store
            .apply_remote(&Invalidation::Tag { tag: "t".into() })
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .apply_remote(&Invalidation::Clear { namespace: None })
            .unwrap(),
        0
    );
    assert!(!wallet.contains_key("r"));
    assert_eq!(recorder.take(), []);
}

#[test]
fn invalidations_serialise_as_documented_and_round_trip() {
    let cases: Vec<(Invalidation, &str)> = vec![
        (
            Invalidation::Tag {
                tag: "dashboard:42".into(),
            },
            r#"{"tag":{"tag":"dashboard:42"}}"#,
        ),
        (
            Invalidation::Key {
                namespace: Some("wallet".into()),
                key: "wallet::42".into(),
            },
            r#"{"key":{"namespace":"wallet","key":"wallet::42"}}"#,
        ),
        (
            Invalidation::Prefix {
                namespace: None,
                prefix: "user::".into(),
            },
            r#"{"prefix":{"prefix":"user::"}}"#,
        ),
        (
            Invalidation::Pattern {
                namespace: Some("a".into()),
                pattern: "user::*".into(),
            },
            r#"{"pattern":{"namespace":"a","pattern":"user::*"}}"#,
        ),
        (
            Invalidation::Event {
                event: "payment.succeeded".into(),
                params: [("user_id".to_string(), "42".to_string())].into(),
            },
            r#"{"event":{"event":"payment.succeeded","params":{"user_id":"42"}}}"#,
        ),
        (Invalidation::Clear { namespace: None }, r#"{"clear":{}}"#),
        // Binary keys are byte arrays.
        (
            Invalidation::Key {
                namespace: None,
                key: Key::from(vec![0xff, 0x00, b':', 0x80]),
            },
            r#"{"key":{"key":[255,0,58,128]}}"#,
        ),
    ];
    for (inv, json) in cases {
        let text = serde_json::to_string(&inv).unwrap();
        assert_eq!(text, json);
        let back: Invalidation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, inv);
    }
    // Every byte value survives, in keys, prefixes and patterns.
    let all_bytes: Vec<u8> = (0..=255u8).rev().collect();
    for inv in [
        Invalidation::Key {
            namespace: None,
            key: Key::from(all_bytes.clone()),
        },
        Invalidation::Prefix {
            namespace: Some("p".into()),
            prefix: Key::from(all_bytes.clone()),
        },
        Invalidation::Pattern {
            namespace: None,
            pattern: Key::from(all_bytes.clone()),
        },
    ] {
        let back: Invalidation =
            serde_json::from_slice(&serde_json::to_vec(&inv).unwrap()).unwrap();
        assert_eq!(back, inv);
    }
    // Omitted fields take their defaults.
    let event: Invalidation = serde_json::from_str(r#"{"event":{"event":"e"}}"#).unwrap();
    assert_eq!(
        event,
        Invalidation::Event {
            event: "e".into(),
            params: BTreeMap::new(),
        }
    );
}

#[test]
fn a_remote_instance_applying_what_was_published_ends_in_the_same_state() {
    let json = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&json);
    let local = Store::builder(config(EVENTS))
        .clock(MockClock::new())
        .maintenance_interval(NO_MAINTENANCE)
        .publisher(move |inv| {
            sink.lock()
                .unwrap()
                .push(serde_json::to_string(inv).unwrap())
        })
        .build()
        .unwrap();
    let (remote, remote_published) = recorded_store(EVENTS);

    // The same data in both, binary keys included.
    let mut rng = Rng(0x5eed_0003);
    let names = ["payment", "bill", "wallet", "dashboard", DEFAULT_NAMESPACE];
    let mut entries: Vec<(&str, Vec<u8>, Put)> = Vec::new();
    for i in 0..2_000u64 {
        let ns = names[rng.below(names.len() as u64) as usize];
        let user = rng.below(20);
        let key = match rng.below(5) {
            0 => format!("payment::history::{user}").into_bytes(),
            1 => format!("wallet::{user}::k{i}").into_bytes(),
            2 => format!("bill::b{user}::line::{i}").into_bytes(),
            3 => format!("ledger::{user}").into_bytes(),
            _ => {
                let mut k = random_bytes(&mut rng, KEY_BYTES, 4);
                k.push(i as u8);
                k
            }
        };
        let put = match rng.below(3) {
            0 => Put::new().tag(format!("dashboard:{user}")),
            1 => Put::new().tag(format!("ledger:{user}")).tag("all"),
            _ => Put::new(),
        };
        entries.push((ns, key, put));
    }
    for store in [&local, &remote] {
        for (ns, key, put) in &entries {
            store
                .namespace::<u64>(ns)
                .unwrap()
                .insert_with(key.clone(), key.len() as u64, put.clone())
                .unwrap();
        }
    }

    // Every path on the local one; what each dropped. Each step is left to settle (dead
    // entries purged) before the next, on both sides, since a clear counts the dead entries
    // still held.
    let payment = local.namespace::<u64>("payment").unwrap();
    let wallet = local.namespace::<u64>("wallet").unwrap();
    let bill = local.namespace::<u64>("bill").unwrap();
    let settle = |n: u64| {
        local.run_pending_tasks();
        n
    };
    let counts = vec![
        settle(u64::from(payment.remove("payment::history::3").is_some())),
        settle(wallet.invalidate_prefix("wallet::4::")),
        settle(bill.invalidate_pattern("bill::b[5-7]::*")),
        settle(local.invalidate_tag("dashboard:8")),
        settle(
            local
                .emit("payment.succeeded", [("user_id", "9"), ("bill_id", "b9")])
                .unwrap(),
        ),
        settle(local.emit("ledger.changed", [("user_id", "10")]).unwrap()),
        settle(
            local
                .invalidate(&Invalidation::Pattern {
                    namespace: None,
                    pattern: Key::from(&b"*\x80*"[..]),
                })
                .unwrap(),
        ),
        settle(
            local
                .invalidate(&Invalidation::Key {
                    namespace: None,
                    key: "ledger::11".into(),
                })
                .unwrap(),
        ),
        settle(local.clear_namespace("dashboard").unwrap()),
        settle(local.invalidate_tag("all")),
    ];
    assert!(
        counts.iter().all(|&n| n > 0),
        "every step should drop something: {counts:?}"
    );
    let published = std::mem::take(&mut *json.lock().unwrap());
    assert_eq!(published.len(), counts.len());

    // The remote one applies the messages in order and drops as much at each step.
    for (message, &expected) in published.iter().zip(&counts) {
        let inv: Invalidation = serde_json::from_str(message).unwrap();
        assert_eq!(remote.apply_remote(&inv).unwrap(), expected, "{message}");
        remote.run_pending_tasks();
    }
    assert_eq!(remote_published.take(), [], "apply_remote published");

    for store in [&local, &remote] {
        store.run_pending_tasks();
    }
    for name in names {
        let (l, r) = (
            local.namespace::<u64>(name).unwrap(),
            remote.namespace::<u64>(name).unwrap(),
        );
        assert_eq!(l.len(), r.len(), "namespace {name}");
        for (ns, key, _) in &entries {
            if *ns == name {
                assert_eq!(
                    l.contains_key(key),
                    r.contains_key(key),
                    "{name}: {}",
                    key_text(key)
                );
            }
        }
    }
    assert!(!local.namespace::<u64>("wallet").unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// 5. Configuration as the store sees it (config-only checks are in tests/config.rs)

#[test]
fn the_default_store_has_one_namespace_with_the_whole_budget() {
    let store = Store::new();
    assert_eq!(
        store.namespace_names().collect::<Vec<_>>(),
        [DEFAULT_NAMESPACE]
    );
    let ns = store.namespace::<String>(DEFAULT_NAMESPACE).unwrap();
    assert_eq!(ns.limits().max_bytes, Some(DEFAULT_MAX_BYTES));
    assert_eq!(ns.limits().ttl, None);
    assert_eq!(ns.limits().max_entries, None);
    ns.insert("k", "v".into()).unwrap();
    assert_eq!(ns.ttl("k"), Some(None));
    assert_eq!(store.stats().max_bytes, DEFAULT_MAX_BYTES);
}

#[test]
fn the_environment_reaches_the_namespaces() {
    let config = Config::from_sources(
        Some("max_bytes = \"64MiB\"\n[namespaces.wallet]\nttl = \"2m\"\nmax_bytes = \"8MiB\"\n"),
        [
            (
                "STRATA_NAMESPACES__WALLET__TTL".to_string(),
                "90s".to_string(),
            ),
            (
                "STRATA_NAMESPACES__WALLET__MAX_ENTRIES".to_string(),
                "500".to_string(),
            ),
            (
                "STRATA_NAMESPACES__USER__TTL".to_string(),
                "10m".to_string(),
            ),
        ],
    )
    .unwrap();
    let store = Store::from_config(&config).unwrap();
    let wallet = store.namespace::<u64>("wallet").unwrap();
    assert_eq!(wallet.limits().ttl, Some(Duration::from_secs(90)));
    assert_eq!(wallet.limits().max_entries, Some(500));
    assert_eq!(wallet.limits().max_bytes, Some(8 << 20));
    let user = store.namespace::<u64>("user").unwrap();
    assert_eq!(user.limits().ttl, Some(Duration::from_secs(600)));
    // user and default share what wallet leaves.
    assert_eq!(user.limits().max_bytes, Some((56 << 20) / 2));

    // A configuration built by hand is checked when the store is built.
    let mut over = Config {
        max_bytes: 4 << 20,
        ..Config::default()
    };
    over.namespaces.insert(
        "a".into(),
        strata::config::NamespaceConfig {
            max_bytes: Some(3 << 20),
            ..Default::default()
        },
    );
    over.namespaces.insert(
        "b".into(),
        strata::config::NamespaceConfig {
            max_bytes: Some(3 << 20),
            ..Default::default()
        },
    );
    match Store::from_config(&over) {
        Err(StoreError::Config(ConfigError::Invalid { field, value, .. })) => {
            assert_eq!((field.as_str(), value.as_str()), ("max_bytes", "4194304"));
        }
        other => panic!("expected a budget error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Limits and the budget

const TIERS: &str = r#"
max_bytes = "8MiB"
[namespaces.small]
max_entries = 300
max_bytes = "1MiB"
[namespaces.blobs]
max_bytes = "2MiB"
[namespaces.wallet]
ttl = "2m"
max_entries = 2000
[namespaces.user]
ttl = "10m"
"#;

#[test]
fn namespaces_hold_their_limits_and_the_store_its_budget() {
    let (store, _clock) = store(TIERS);
    let budget = store.config().max_bytes;
    let small = store.namespace::<Vec<u8>>("small").unwrap();
    let blobs = store.namespace::<Vec<u8>>("blobs").unwrap();
    let wallet = store.namespace::<String>("wallet").unwrap();
    let user = store.namespace::<String>("user").unwrap();
    let default = store.namespace::<Vec<u8>>(DEFAULT_NAMESPACE).unwrap();
    // The budget as divided: fixed shares as configured, the rest split evenly.
    let elastic = (budget - (3 << 20)) / 3;
    assert_eq!(small.limits().max_bytes, Some(1 << 20));
    assert_eq!(blobs.limits().max_bytes, Some(2 << 20));
    for limits in [wallet.limits(), user.limits()] {
        assert_eq!(limits.max_bytes, Some(elastic));
    }
    assert_eq!(default.limits().max_bytes, Some(elastic));
    assert_eq!(small.limits().max_entries, Some(300));
    assert_eq!(wallet.limits().max_entries, Some(2000));

    // Values stay under the heaviest entry a namespace admits (its share over its shards, up
    // to 256 of them on a big machine: 4 KiB for `small`, 8 KiB for `blobs`).
    let mut rng = Rng(0x5eed_0006);
    let bytes = |rng: &mut Rng, max: u64| vec![rng.next() as u8; rng.below(max) as usize];
    let text = |rng: &mut Rng, max: u64| "x".repeat(rng.below(max) as usize);
    for batch in 0..12 {
        for _ in 0..300 {
            let k = rng.below(5_000);
            small
                .insert(format!("s{k}"), bytes(&mut rng, 3_000))
                .unwrap();
        }
        for _ in 0..200 {
            let k = rng.below(5_000);
            blobs
                .insert(format!("b{k}"), bytes(&mut rng, 7_000))
                .unwrap();
        }
        for _ in 0..400 {
            let k = rng.below(10_000);
            wallet.insert(format!("w{k}"), text(&mut rng, 500)).unwrap();
        }
        for _ in 0..500 {
            let k = rng.below(10_000);
            user.insert(format!("u{k}"), text(&mut rng, 2_000)).unwrap();
        }
        for _ in 0..1_000 {
            let k = rng.below(20_000);
            default
                .insert(format!("d{k}"), bytes(&mut rng, 1_000))
                .unwrap();
        }

        let stats = store.stats();
        let mut sum = strata::CacheStats::default();
        let mut held = 0;
        for (name, ns) in &stats.namespaces {
            let s = ns.stats;
            let max_bytes = ns.limits.max_bytes.expect("a store sets every share");
            assert!(
                s.weighted_size <= max_bytes,
                "batch {batch}: {name} holds {} of {max_bytes}",
                s.weighted_size,
            );
            if let Some(max) = ns.limits.max_entries {
                assert!(
                    s.entries <= max,
                    "batch {batch}: {name} has {} of {max}",
                    s.entries
                );
            }
            held += s.weighted_size;
            sum += s;
        }
        assert!(
            held <= budget,
            "batch {batch}: {held} held, budget {budget}"
        );
        assert_eq!(stats.total, sum);
        // The handles see the same figures as the store.
        assert_eq!(stats.namespaces["small"].stats, small.stats());
        assert_eq!(stats.namespaces["user"].stats, user.stats());
        assert_eq!(small.stats().entries, small.len() as u64);
    }
    // Each namespace was filled past a bound, and its bound was what held it.
    let stats = store.stats();
    for (name, ns) in &stats.namespaces {
        let s = ns.stats;
        assert!(s.evictions > 0, "{name} never reached a limit: {s:?}");
        let near_bytes = ns.limits.max_bytes.is_some_and(|m| s.weighted_size > m / 2);
        let near_entries = ns.limits.max_entries.is_some_and(|m| s.entries > m / 2);
        assert!(
            near_bytes || near_entries,
            "{name} holds far below its limits: {s:?}"
        );
    }
    assert_eq!(
        stats.total.entries,
        [
            small.len(),
            blobs.len(),
            wallet.len(),
            user.len(),
            default.len()
        ]
        .iter()
        .sum::<usize>() as u64
    );
}

#[test]
fn each_namespace_expires_on_its_own_ttl() {
    let (store, clock) = store(TIERS);
    let wallet = store.namespace::<String>("wallet").unwrap();
    let user = store.namespace::<String>("user").unwrap();
    let default = store.namespace::<Vec<u8>>(DEFAULT_NAMESPACE).unwrap();
    wallet.insert("wallet::42", "1250".into()).unwrap();
    wallet
        .insert_with(
            "wallet::long",
            "x".into(),
            Put::new().ttl(Duration::from_secs(3600)),
        )
        .unwrap();
    user.insert("user::42", "Ada".into()).unwrap();
    user.insert_with(
        "user::short",
        "x".into(),
        Put::new().ttl(Duration::from_secs(30)),
    )
    .unwrap();
    default.insert("forever", vec![1]).unwrap();
    assert_eq!(
        wallet.ttl("wallet::42"),
        Some(Some(Duration::from_secs(120)))
    );
    assert_eq!(user.ttl("user::42"), Some(Some(Duration::from_secs(600))));
    assert_eq!(default.ttl("forever"), Some(None));

    clock.advance(Duration::from_secs(30));
    assert_eq!(user.get("user::short"), None, "a TTL of its own wins");
    clock.advance(Duration::from_secs(89));
    assert!(wallet.get("wallet::42").is_some(), "expired before 2m");
    clock.advance(Duration::from_secs(1));
    assert_eq!(wallet.get("wallet::42"), None, "alive at 2m");
    assert!(user.get("user::42").is_some());
    assert!(wallet.get("wallet::long").is_some());
    assert_eq!(user.ttl("user::42"), Some(Some(Duration::from_secs(480))));
    clock.advance(Duration::from_secs(479));
    assert!(user.get("user::42").is_some(), "expired before 10m");
    clock.advance(Duration::from_secs(1));
    assert_eq!(user.get("user::42"), None, "alive at 10m");
    assert!(wallet.get("wallet::long").is_some());
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(default.get("forever"), Some(vec![1]));

    // wallet::42, wallet::long, user::42, user::short.
    assert_eq!(
        store.run_pending_tasks(),
        4,
        "entries reclaimed, as counted"
    );
    assert_eq!((wallet.len(), user.len(), default.len()), (0, 0, 1));
    assert_eq!(store.stats().total.expirations, 4);
}

// ---------------------------------------------------------------------------------------------
// 7. Clearing a namespace

/// A value that counts how many of its copies are alive.
struct Counted(Arc<AtomicI64>);

impl Counted {
    fn new(live: &Arc<AtomicI64>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(live))
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(&self.0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HeapSize for Counted {
    fn heap_size(&self) -> usize {
        0
    }
}

#[test]
fn clearing_a_namespace_is_immediate_and_frees_in_the_background() {
    const N: u64 = 200_000;
    let (store, _clock) = store("max_bytes = \"512MiB\"\n[namespaces.big]\n[namespaces.other]\n");
    let live = Arc::new(AtomicI64::new(0));
    let big = store.namespace::<Counted>("big").unwrap();
    let other = store.namespace::<u64>("other").unwrap();
    in_parallel(N, |range| {
        for i in range {
            let put = if i % 2 == 0 {
                Put::new().tag("c")
            } else {
                Put::new()
            };
            big.insert_with(format!("k{i}"), Counted::new(&live), put)
                .unwrap();
        }
    });
    for i in 0..100 {
        other.insert(format!("k{i}"), i).unwrap();
    }
    assert_eq!(big.len() as u64, N);
    assert_eq!(live.load(Ordering::SeqCst), N as i64);
    assert_eq!(store.tag_count("c"), N / 2);

    assert_eq!(big.clear(), N);
    assert_eq!(big.len(), 0);
    assert_eq!(big.stats().entries, 0);
    in_parallel(N, |range| {
        for i in range {
            assert!(
                big.get(format!("k{i}")).is_none(),
                "k{i} read after the clear"
            );
        }
    });
    for i in 0..100 {
        assert_eq!(
            other.get(format!("k{i}")),
            Some(i),
            "other namespace touched"
        );
    }
    // Inserts after the clear are live, tagged or not.
    for i in 0..10 {
        big.insert_with(format!("k{i}"), Counted::new(&live), Put::new().tag("c"))
            .unwrap();
        big.insert(format!("new{i}"), Counted::new(&live)).unwrap();
    }
    store.run_pending_tasks();
    assert_eq!(
        live.load(Ordering::SeqCst),
        20,
        "cleared values were not freed"
    );
    assert_eq!(store.tag_count("c"), 10);
    assert_eq!(big.len(), 20);
    for i in 0..10 {
        assert!(big.get(format!("k{i}")).is_some());
        assert!(big.get(format!("new{i}")).is_some());
    }
    assert_eq!(store.invalidate_tag("c"), 10);
    assert_eq!(other.len(), 100);
    drop(big);
    // A clear counts what is held, dead entries not yet purged included: purge first.
    store.run_pending_tasks();
    assert_eq!(store.clear(), 110);
    store.run_pending_tasks();
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// 8. Odds and ends

#[test]
fn a_namespace_holds_one_type_and_must_exist() {
    let (store, _clock) = store("[namespaces.x]\n");
    let strings = store.namespace::<String>("x").unwrap();
    strings.insert("k", "v".into()).unwrap();
    assert_eq!(
        store.namespace::<u64>("x").unwrap_err(),
        StoreError::WrongType {
            namespace: "x".into(),
            holds: std::any::type_name::<String>(),
            asked: std::any::type_name::<u64>(),
        }
    );
    // Even once every handle is gone, the namespace keeps its type and its entries.
    drop(strings);
    assert!(matches!(
        store.namespace::<Vec<u8>>("x"),
        Err(StoreError::WrongType { .. })
    ));
    assert_eq!(
        store.namespace::<String>("x").unwrap().get("k").as_deref(),
        Some("v")
    );
    assert_eq!(
        store.namespace::<String>("nope").unwrap_err(),
        StoreError::UnknownNamespace("nope".into())
    );
    assert_eq!(
        store.hot_keys("nope", 3),
        Err(StoreError::UnknownNamespace("nope".into()))
    );
    // A configured but unopened namespace has no hot keys yet.
    assert_eq!(store.hot_keys(DEFAULT_NAMESPACE, 3), Ok(vec![]));
}

#[test]
fn insert_if_absent_does_not_lose_to_a_dead_entry() {
    let (store, _clock) = store("[namespaces.n]\n");
    let ns = store.namespace::<String>("n").unwrap();
    ns.insert_with("k", "old".into(), Put::new().tag("t"))
        .unwrap();
    assert_eq!(
        ns.insert_if_absent("k", "other".into()).unwrap(),
        Inserted::Existing("old".into())
    );
    assert_eq!(store.invalidate_tag("t"), 1);
    assert_eq!(
        ns.insert_if_absent("k", "new".into()).unwrap(),
        Inserted::Inserted
    );
    assert_eq!(ns.get("k").as_deref(), Some("new"));
    // And after the purge the new one is still there.
    store.run_pending_tasks();
    assert_eq!(ns.get("k").as_deref(), Some("new"));

    // With a tag of its own, replacing a dead entry with the same tag.
    ns.insert_with("j", "old".into(), Put::new().tag("u"))
        .unwrap();
    store.invalidate_tag("u");
    assert_eq!(
        ns.insert_if_absent_with("j", "new".into(), Put::new().tag("u"))
            .unwrap(),
        Inserted::Inserted
    );
    assert_eq!(store.tag_count("u"), 1);
    assert_eq!(ns.get("j").as_deref(), Some("new"));
    store.run_pending_tasks();
    assert_eq!(ns.get("j").as_deref(), Some("new"));
    assert_eq!(store.invalidate_tag("u"), 1);
}

#[test]
fn hot_keys_surface_among_many_cold_ones() {
    let (store, _clock) = store("[namespaces.n]\n");
    let ns = store.namespace::<u64>("n").unwrap();
    for i in 0..5_000 {
        ns.insert(format!("cold::{i}"), i).unwrap();
    }
    for hot in ["hot::a", "hot::b", "hot::c"] {
        ns.insert(hot, 0).unwrap();
    }
    const ROUNDS: u64 = 20_000;
    // On a thread of its own: sampling counts hits per thread.
    let reader = ns.clone();
    std::thread::spawn(move || {
        for round in 0..ROUNDS {
            for _ in 0..3 {
                reader.get("hot::a").unwrap();
            }
            for _ in 0..2 {
                reader.get("hot::b").unwrap();
            }
            reader.get("hot::c").unwrap();
            reader.get(format!("cold::{}", round % 5_000)).unwrap();
            // Misses, however many, are not hits.
            assert!(reader.get("absent").is_none());
            assert!(reader.get("absent").is_none());
            assert!(reader.get("absent").is_none());
            assert!(reader.get("absent").is_none());
        }
    })
    .join()
    .unwrap();
    let top = store.hot_keys("n", 3).unwrap();
    let keys: Vec<&Key> = top.iter().map(|h| &h.key).collect();
    assert_eq!(
        keys,
        [
            &Key::from("hot::a"),
            &Key::from("hot::b"),
            &Key::from("hot::c")
        ]
    );
    assert_eq!(ns.hot_keys(3), top);
    // The estimates are near the truth (sampling is one hit in SAMPLE_EVERY).
    for (hot, reads) in top.iter().zip([3 * ROUNDS, 2 * ROUNDS, ROUNDS]) {
        let slack = reads / 10 + u64::from(SAMPLE_EVERY);
        assert!(
            hot.hits.abs_diff(reads) <= slack,
            "{:?}: estimated {} hits for {reads}",
            hot.key,
            hot.hits
        );
    }
    assert!(store.hot_keys("n", 100).unwrap().len() <= 64);
    assert!(!store
        .hot_keys("n", 100)
        .unwrap()
        .iter()
        .any(|h| h.key == Key::from("absent")));
    // A clear forgets them.
    ns.clear();
    assert_eq!(store.hot_keys("n", 3).unwrap(), []);
}

// Regressions from the review of the store (each failed before its fix).

/// A value whose weighing runs a hook once: the weigher runs before the shard's lock, so the
/// hook lands an invalidation exactly between an insert's start and its critical section.
#[derive(Clone, Debug, PartialEq)]
struct Hooked(u64);

type Hook = Box<dyn FnOnce() + Send>;
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

impl HeapSize for Hooked {
    fn heap_size(&self) -> usize {
        let hook = HOOK.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        0
    }
}

#[test]
fn insert_if_absent_never_loses_to_an_entry_killed_mid_insert() {
    let (store, _clock) = store("");
    let ns = store.namespace::<Hooked>("default").unwrap();
    ns.insert_with("k", Hooked(1), Put::new().tag("t")).unwrap();
    let killer = store.clone();
    *HOOK.lock().unwrap() = Some(Box::new(move || {
        killer.invalidate_tag("t");
    }));
    let outcome = ns.insert_if_absent("k", Hooked(2)).unwrap();
    assert_eq!(outcome, Inserted::Inserted);
    assert_eq!(ns.get("k"), Some(Hooked(2)));
}

#[test]
fn replacing_a_dead_entry_counts_as_an_insert_and_a_removal() {
    let (store, _clock) = store("");
    let ns = store.namespace::<u64>("default").unwrap();
    ns.insert_with("k", 1, Put::new().tag("t")).unwrap();
    store.invalidate_tag("t");
    ns.insert("k", 2).unwrap();
    let s = ns.stats();
    assert_eq!((s.inserts, s.updates, s.removals), (2, 0, 1));
    assert_eq!(s.entries, s.inserts - s.removals);
    assert_eq!(ns.get("k"), Some(2));
}

#[test]
fn namespaces_outliving_their_store_free_inline() {
    let live = Arc::new(AtomicI64::new(0));
    let store = Store::new();
    let ns = store.namespace::<Counted>("default").unwrap();
    drop(store);
    // The janitor notices within a tick or two.
    std::thread::sleep(Duration::from_millis(100));
    ns.insert("k", Counted::new(&live)).unwrap();
    assert_eq!(ns.clear(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the cleared value was never freed"
    );
}

#[test]
fn a_maintenance_interval_of_forever_keeps_the_janitor_alive() {
    let live = Arc::new(AtomicI64::new(0));
    let store = Store::builder(Config::default())
        .maintenance_interval(Duration::MAX)
        .build()
        .unwrap();
    let ns = store.namespace::<Counted>("default").unwrap();
    ns.insert("k", Counted::new(&live)).unwrap();
    assert_eq!(ns.clear(), 1);
    store.run_pending_tasks();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the cleared value was not freed"
    );
}

/// Each level cascades twice into the next: 2^40 paths, one run per event.
#[test]
fn a_chain_of_diamonds_runs_each_event_once() {
    let mut toml = String::from("[namespaces.a]\n");
    for i in 0..40 {
        toml.push_str(&format!(
            "[events.\"e{i}\"]\nkeys = [\"k{i}::{{id}}\"]\ncascade = [\"e{next}\", \"e{next}\"]\n",
            next = i + 1
        ));
    }
    toml.push_str("[events.\"e40\"]\ntags = [\"last:{id}\"]\n");
    let (store, _clock) = store(&toml);
    let ns = store.namespace::<u64>("a").unwrap();
    ns.insert("k39::7", 1).unwrap();
    ns.insert_with("x", 2, Put::new().tag("last:7")).unwrap();
    assert_eq!(store.emit("e0", [("id", "7")]).unwrap(), 2);
    assert_eq!(ns.get("x"), None);
}

/// A long cascade chain loads (no recursion as deep as the chain).
#[test]
fn a_long_cascade_chain_loads() {
    let mut toml = String::new();
    for i in 0..20_000 {
        toml.push_str(&format!("[events.\"e{i}\"]\ncascade = [\"e{}\"]\n", i + 1));
    }
    toml.push_str("[events.\"e20000\"]\ntags = [\"end:{id}\"]\n");
    let config = Config::from_sources(Some(&toml), []).unwrap();
    assert_eq!(config.events.len(), 20_001);
}
