//! One convention for structured keys, used everywhere in strata: parts joined by `::`.
//!
//! ```
//! use strata::key;
//!
//! let user = 42;
//! assert_eq!(strata::key!("user", user, "profile"), "user::42::profile");
//!
//! // Parts are escaped, so a key always splits back into the parts it was made of, and a
//! // part can never forge extra levels.
//! let odd = strata::key!("user", "a::b", "profile");
//! assert_eq!(odd, "user::a%3A%3Ab::profile");
//! assert_eq!(key::split(&odd), ["user", "a::b", "profile"]);
//!
//! // Everything under a prefix, as a pattern for invalidation.
//! let p = key::prefix_pattern(["user", "42"]);
//! assert!(p.matches("user::42::profile"));
//! assert!(!p.matches("user::421::profile"));
//!
//! // Query caches: a stable digest of the query's parameters.
//! let k = strata::key!("query", "users_by_city", key::digest(["Lisbon", "active", "50"]));
//! assert_eq!(k.len(), "query::users_by_city::".len() + 32);
//! ```
//!
//! Escaping is percent-encoding of the two bytes that would make a key ambiguous: `:` is
//! written `%3A` and `%` is written `%25`. Everything else stays as it is, so keys stay
//! readable in `KEYS`, `SCAN` and the admin API.
//!
//! [`digest`] is xxh3-128 over the parts, each prefixed with its length, written as 32 hex
//! digits. It is stable across processes, platforms and strata versions (it does not go
//! through `std::hash::Hash`, whose output is not), so keys computed by different instances
//! meet in a shared Redis tier. It is not cryptographic: use it for cache keys, not for
//! anything an attacker could exploit by forging collisions.

use std::borrow::Borrow;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{HeapSize, Pattern};

/// A key of a [`Store`](crate::Store)'s namespaces: any bytes, binary-safe like a Redis key.
/// Built from `&str`, `String`, `&[u8]`, `Vec<u8>` or `Bytes`; looked up by anything that is
/// `AsRef<[u8]>`. It hashes as its bytes, and serialises as a string when it is UTF-8 (as
/// bytes otherwise), so invalidations carrying keys read naturally as JSON.
///
/// Short keys, up to 22 bytes (most: `user::42::profile` is 17), are stored in the key's
/// own 24 bytes: no allocation, and comparing a key found in the hash table with the one
/// asked for reads no other cache line. Longer keys live on the heap.
#[derive(Clone)]
pub struct Key(Repr);

/// The most bytes a key holds in itself, without a heap allocation.
const SHORT: usize = 22;

#[derive(Clone)]
enum Repr {
    /// `len` ≤ [`SHORT`] bytes at the front of `bytes`.
    Short {
        len: u8,
        bytes: [u8; SHORT],
    },
    Heap(Box<[u8]>),
}

impl Key {
    fn copy(b: &[u8]) -> Self {
        if b.len() <= SHORT {
            let mut bytes = [0; SHORT];
            bytes[..b.len()].copy_from_slice(b);
            Key(Repr::Short {
                len: b.len() as u8,
                bytes,
            })
        } else {
            Key(Repr::Heap(b.into()))
        }
    }

    fn owned(b: Vec<u8>) -> Self {
        if b.len() <= SHORT {
            Self::copy(&b)
        } else {
            Key(Repr::Heap(b.into_boxed_slice()))
        }
    }

    /// The key's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Short { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// The key as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// How many bytes the key has.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    /// As the bytes hash, which `Borrow<[u8]>` requires.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Borrow<[u8]> for Key {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::copy(s.as_bytes())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key::owned(s.into_bytes())
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Self {
        Key::copy(s.as_bytes())
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Self {
        Key::copy(b)
    }
}

impl From<Vec<u8>> for Key {
    fn from(b: Vec<u8>) -> Self {
        Key::owned(b)
    }
}

impl From<bytes::Bytes> for Key {
    fn from(b: bytes::Bytes) -> Self {
        Key::copy(&b)
    }
}

impl HeapSize for Key {
    fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Short { .. } => 0,
            Repr::Heap(b) => b.len(),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => fmt::Debug::fmt(s, f),
            None => write!(f, "b\"{}\"", self.as_bytes().escape_ascii()),
        }
    }
}

impl fmt::Display for Key {
    /// UTF-8 as it is; other bytes escaped as `\xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => f.write_str(s),
            None => write!(f, "{}", self.as_bytes().escape_ascii()),
        }
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(s) => serializer.serialize_str(s),
            None => serializer.serialize_bytes(self.as_bytes()),
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key: a string or bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::from(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Key, E> {
                Ok(Key::from(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Key::from(bytes))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The separator between the parts of a key.
pub const SEPARATOR: &str = "::";

/// Builds a key from parts, each displayed, escaped and joined by [`SEPARATOR`].
pub fn join<I>(parts: I) -> String
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    let mut key = String::new();
    let mut part = String::new();
    for (i, item) in parts.into_iter().enumerate() {
        if i > 0 {
            key.push_str(SEPARATOR);
        }
        part.clear();
        // Writing to a String cannot fail.
        let _ = write!(part, "{item}");
        escape_into(&part, &mut key);
    }
    key
}

/// Builds a key from parts of any displayable types: `key!("user", id, "profile")`.
#[macro_export]
macro_rules! key {
    ($($part:expr),+ $(,)?) => {
        $crate::key::join([$(&$part as &dyn ::std::fmt::Display),+])
    };
}

/// Escapes `part` as one key part (see [`join`]) and appends it to `out`.
pub(crate) fn escape_into(part: &str, out: &mut String) {
    for c in part.chars() {
        match c {
            ':' => out.push_str("%3A"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
}

/// The parts a key was built from, unescaped. A key not built by [`join`] splits at every
/// `::`, and escapes it does not contain are left as they are.
pub fn split(key: &str) -> Vec<String> {
    key.split(SEPARATOR).map(unescape).collect()
}

/// Decodes `%3A` and `%25` left to right; any other `%` stays as it is.
fn unescape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("%3A") {
            out.push(':');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%25") {
            out.push('%');
            rest = after;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A pattern matching every key whose first parts are `parts` and that has at least one part
/// more: `prefix_pattern(["user", "42"])` is `user::42::*`. Parts are escaped for keys and for
/// the pattern language, so a part containing `*` or `?` matches only itself.
pub fn prefix_pattern<I>(parts: I) -> Pattern
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    let mut pattern = String::new();
    glob_escape_into(&join(parts), &mut pattern);
    pattern.push_str(SEPARATOR);
    pattern.push('*');
    Pattern::new(pattern)
}

/// Appends `text` to a glob pattern so that it matches only itself.
pub(crate) fn glob_escape_into(text: &str, pattern: &mut String) {
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
}

/// A stable 128-bit digest of `parts`, as 32 lower-case hex digits, for keys of query caches
/// whose parameters are too long or too many to spell out.
pub fn digest<I>(parts: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        let part = part.as_ref();
        // Length-prefixed, so ["ab", "c"] and ["a", "bc"] differ.
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    format!("{:032x}", hasher.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn a_key_is_24_bytes_and_short_ones_need_no_heap() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(Key::from("user::42::profile").heap_size(), 0);
        assert_eq!(Key::from("x".repeat(22)).heap_size(), 0);
        assert_eq!(Key::from("x".repeat(23)).heap_size(), 23);
    }

    proptest! {
        /// Short or on the heap, a key is its bytes: equal, ordered and hashed as they are (the
        /// hash must match the slice's, or `Borrow<[u8]>` lookups would miss).
        #[test]
        fn keys_behave_as_their_bytes(a in proptest::collection::vec(any::<u8>(), 0..40),
                                      b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let (ka, kb) = (Key::from(a.clone()), Key::from(b.as_slice()));
            prop_assert_eq!(ka.as_bytes(), a.as_slice());
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let hasher = RandomState::new();
            prop_assert_eq!(hasher.hash_one(&ka), hasher.hash_one(a.as_slice()));
            prop_assert_eq!(ka.clone(), ka);
        }
    }

    #[test]
    fn digests_are_stable_and_separate_parts() {
        // Pinned: a change here breaks keys shared with other instances through Redis. The
        // values were computed independently with Python's `xxhash` package (xxh3_128 over
        // each part's little-endian u64 length followed by its bytes).
        assert_eq!(
            digest(["Lisbon", "active", "50"]),
            "a3fd206bc23e608fbe97f4bf8cb541a2"
        );
        assert_eq!(digest([""; 0]), "99aa06d3014798d86001c324468d497f");
        assert_eq!(digest(["a", "bc"]), digest(["a", "bc"]));
        assert_ne!(digest(["ab", "c"]), digest(["a", "bc"]));
        assert_ne!(digest([""; 0]), digest([""]));
        assert_eq!(digest(["Lisbon", "active", "50"]).len(), 32);
        assert_eq!(
            digest(["Lisbon", "active", "50"]),
            digest(vec![b"Lisbon".to_vec(), b"active".to_vec(), b"50".to_vec()])
        );
    }

    #[test]
    fn escaping_keeps_levels_apart() {
        assert_eq!(join(["a:b", "c%d"]), "a%3Ab::c%25d");
        assert_eq!(split("a%3Ab::c%25d"), ["a:b", "c%d"]);
        // A literal "%3A" in a part survives the round trip.
        assert_eq!(split(&join(["%3A"])), ["%3A"]);
        assert_eq!(crate::key!("n", 1, 2.5, 'x'), "n::1::2.5::x");
    }

    #[test]
    fn prefix_patterns_escape_glob_characters() {
        let p = prefix_pattern(["q", "a*b"]);
        assert!(p.matches(join(["q", "a*b", "1"])));
        assert!(!p.matches(join(["q", "aXb", "1"])));
        assert!(!p.matches(join(["q", "a*b"])));
        assert_eq!(p.literal_prefix(), b"q::a*b::");
    }

    fn part() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a', 'b', ':', '%', '3', 'A', '2', '5', '*', '?', '[', '\\',
            ]),
            0..6,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn split_inverts_join(parts in prop::collection::vec(part(), 1..5)) {
            prop_assert_eq!(split(&join(&parts)), parts);
        }

        /// A prefix pattern matches a key exactly when the key's parts start with the prefix
        /// and go on for at least one more part.
        #[test]
        fn prefix_patterns_match_exactly_the_keys_below(
            prefix in prop::collection::vec(part(), 1..3),
            parts in prop::collection::vec(part(), 1..5),
        ) {
            let below = parts.len() > prefix.len() && parts[..prefix.len()] == prefix[..];
            prop_assert_eq!(prefix_pattern(&prefix).matches(join(&parts)), below);
        }
    }
}
