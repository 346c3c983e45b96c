//! `strata::Pattern` against a real Redis: the same random binary keys are stored in a
//! redis-server of the test's own, and for random patterns `KEYS pattern` must return exactly
//! the keys `Pattern::matches` accepts.

mod common;

use std::collections::BTreeSet;

use common::{RedisServer, Rng};
use strata::Pattern;

/// Bytes that exercise the pattern language: its metacharacters, plain letters, and bytes
/// outside ASCII.
const KEY_BYTES: &[u8] = b"abc-^][*?\\\x00\xff";
const PATTERN_BYTES: &[u8] = b"abc*?[]^-\\\x00\xff";

fn random_bytes(rng: &mut Rng, alphabet: &[u8], min: u64, max: u64) -> Vec<u8> {
    let len = min + rng.below(max - min + 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
        .collect()
}

#[test]
fn keys_and_pattern_agree_with_redis() {
    let server = RedisServer::start();
    let mut con = server
        .connection()
        .expect("connect to the test's redis-server");
    let mut rng = Rng(0x5eed);

    // Non-empty keys: for the empty key strata deliberately differs (a pattern of stars
    // matches it; see the pattern module docs).
    let keys: BTreeSet<Vec<u8>> = (0..600)
        .map(|_| random_bytes(&mut rng, KEY_BYTES, 1, 6))
        .collect();
    for key in &keys {
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query::<()>(&mut con)
            .expect("SET");
    }

    let mut patterns: Vec<Vec<u8>> = [
        "*", "a*", "*a", "a?", "[abc]*", "[^a]*", "*[a-c]", "[c-a]?", r"\**", r"*\\", "a[", "[]",
        "[^]", "[^]*", "**", "?*?",
    ]
    .iter()
    .map(|p| p.as_bytes().to_vec())
    .collect();
    patterns.extend((0..2000).map(|_| random_bytes(&mut rng, PATTERN_BYTES, 0, 7)));

    let mut nonempty = 0;
    for pattern in &patterns {
        let mut from_redis: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut con)
            .expect("KEYS");
        from_redis.sort();
        let compiled = Pattern::new(pattern);
        let ours: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| compiled.matches(k))
            .cloned()
            .collect();
        assert_eq!(
            ours,
            from_redis,
            "pattern {:?}",
            String::from_utf8_lossy(pattern)
        );
        nonempty += usize::from(!ours.is_empty());
    }
    // The comparison means something only if many patterns matched some keys.
    assert!(nonempty > 100, "only {nonempty} patterns matched anything");
}
