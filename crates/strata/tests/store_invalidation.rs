//! `strata::store` invalidation by key, prefix and pattern through the public API, checked
//! against a transcription of Redis's glob matcher on random keys and patterns, in one
//! namespace and across all of them. Time is a `MockClock`; background work is waited for with
//! `Store::run_pending_tasks`, never with sleeps.

mod common;

use std::collections::BTreeSet;

use common::store::{key_text, random_bytes, store, KEY_BYTES};
use common::Rng;
use strata::config::DEFAULT_NAMESPACE;
use strata::store::{Invalidation, Store, StoreError};
use strata::{Key, Namespace};

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

/// Pattern bytes, weighted towards the wildcards so that patterns match something.
const PATTERN_BYTES: &[u8] = b"aab:**??[[]]^-\\\x80\xff";

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
