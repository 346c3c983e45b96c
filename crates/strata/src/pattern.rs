//! Glob patterns with Redis's `MATCH` semantics, over bytes.
//!
//! The same language as Redis's `KEYS`, `SCAN … MATCH` and `PSUBSCRIBE`, so that a pattern
//! means the same thing whether it reaches strata through its own API or through `strata serve`:
//!
//! | pattern | matches |
//! |---|---|
//! | `*` | any run of bytes, including none |
//! | `?` | exactly one byte |
//! | `[abc]`, `[a-z]` | one byte from the set; a reversed range `[z-a]` means `[a-z]` |
//! | `[^abc]` | one byte not in the set |
//! | `\x` | the byte `x` itself, also inside brackets |
//!
//! Edge cases follow Redis's `stringmatchlen` byte for byte: an unterminated `[` takes the rest
//! of the pattern as its set, `[]` matches nothing, `[^]` matches any byte, and a trailing
//! `\` stands for itself. That includes a quirk: Redis compares the ends of a range as C
//! `char`s, which are signed on x86-64 (where Redis servers run), so a byte of 0x80 or more
//! sorts *below* 0x00 in a range: `[b-\xff]` is the range from -1 to `b`, matching `a` and
//! `\x01` but not `\xfe`. strata does the same, so a pattern selects the same keys in both.
//!
//! One deliberate difference: here a pattern of stars (`*`, `**`) matches the empty key.
//! Redis's matcher says it does not; its `KEYS *` and `SCAN … MATCH *` special-case a lone
//! `*` to hide that, but `KEYS **` still skips the empty key.
//!
//! A pattern is compiled once into tokens and matched in `O(len(pattern) × len(key))` at
//! worst, with the usual star-backtracking walk: every token but `*` consumes exactly one
//! byte, so remembering the last star is enough. (Redis's matcher is recursive and bounds its
//! backtracking since 7.0.9; this one needs no bound.) `tests/pattern_redis.rs` checks it
//! against a real redis-server on thousands of random binary keys and patterns.
//!
//! ```
//! use strata::Pattern;
//!
//! let p = Pattern::new("user::42::*");
//! assert!(p.matches("user::42::profile"));
//! assert!(!p.matches("user::421::profile"));
//! assert_eq!(p.literal_prefix(), b"user::42::");
//!
//! assert!(Pattern::new("h[ae]llo").matches("hallo"));
//! assert!(Pattern::new("h[^e]llo").matches("hallo"));
//! assert!(!Pattern::new("h[^e]llo").matches("hello"));
//! assert!(Pattern::new(r"price\*").matches("price*"));
//! ```

use std::fmt;

/// A compiled glob pattern. Cheap to match many keys against.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: Vec<u8>,
    tokens: Vec<Token>,
    /// Bytes every match starts with: the literal tokens before the first wildcard, unescaped.
    prefix: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyByte,
    Star,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClassItem {
    Byte(u8),
    /// Inclusive, with `low <= high`, as signed bytes (see the module docs).
    Range(i8, i8),
}

impl Token {
    #[inline]
    fn accepts(&self, byte: u8) -> bool {
        match self {
            Token::Byte(b) => *b == byte,
            Token::AnyByte => true,
            Token::Star => unreachable!("stars are handled by the matcher"),
            Token::Class { negated, items } => {
                let hit = items.iter().any(|item| match *item {
                    ClassItem::Byte(b) => b == byte,
                    ClassItem::Range(low, high) => (low..=high).contains(&(byte as i8)),
                });
                hit != *negated
            }
        }
    }
}

impl Pattern {
    /// Compiles `pattern`. Every byte string is a valid pattern, as in Redis.
    pub fn new(pattern: impl AsRef<[u8]>) -> Self {
        let source = pattern.as_ref().to_vec();
        let tokens = compile(&source);
        let prefix = tokens
            .iter()
            .map_while(|t| match t {
                Token::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        Self {
            source,
            tokens,
            prefix,
        }
    }

    /// The pattern as it was given.
    pub fn as_bytes(&self) -> &[u8] {
        &self.source
    }

    /// Whether `key` matches the whole pattern.
    pub fn matches(&self, key: impl AsRef<[u8]>) -> bool {
        let key = key.as_ref();
        let tokens = &self.tokens;
        let (mut t, mut k) = (0, 0);
        // Where to resume after the last star: the token after it, and the key position it
        // has consumed up to.
        let mut resume: Option<(usize, usize)> = None;
        while k < key.len() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    resume = Some((t + 1, k));
                    t += 1;
                }
                Some(token) if token.accepts(key[k]) => {
                    t += 1;
                    k += 1;
                }
                _ => match resume {
                    // Let the last star swallow one more byte and try again from there.
                    Some((after_star, consumed)) => {
                        resume = Some((after_star, consumed + 1));
                        t = after_star;
                        k = consumed + 1;
                    }
                    None => return false,
                },
            }
        }
        tokens[t..].iter().all(|token| *token == Token::Star)
    }

    /// The bytes every matching key starts with (empty when the pattern starts with a
    /// wildcard), with escapes resolved. A store can narrow a scan to keys with this prefix.
    pub fn literal_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether the pattern has no wildcard at all (it matches exactly one key).
    pub fn is_literal(&self) -> bool {
        self.prefix.len() == self.tokens.len()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", String::from_utf8_lossy(&self.source))
    }
}

/// Compiles a pattern into tokens, following Redis's `stringmatchlen`.
fn compile(p: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                // Consecutive stars are one star.
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
                i += 1;
            }
            b'?' => {
                tokens.push(Token::AnyByte);
                i += 1;
            }
            b'[' => {
                i += 1;
                let negated = p.get(i) == Some(&b'^');
                if negated {
                    i += 1;
                }
                let mut items = Vec::new();
                loop {
                    match p.get(i) {
                        // Unterminated: the set ends with the pattern.
                        None => break,
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if i + 1 < p.len() => {
                            items.push(ClassItem::Byte(p[i + 1]));
                            i += 2;
                        }
                        Some(&low) if i + 2 < p.len() && p[i + 1] == b'-' => {
                            let (low, high) = (low as i8, p[i + 2] as i8);
                            items.push(ClassItem::Range(low.min(high), low.max(high)));
                            i += 3;
                        }
                        Some(&b) => {
                            items.push(ClassItem::Byte(b));
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Class { negated, items });
            }
            b'\\' if i + 1 < p.len() => {
                tokens.push(Token::Byte(p[i + 1]));
                i += 2;
            }
            b => {
                tokens.push(Token::Byte(b));
                i += 1;
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Redis's `stringmatchlen` (src/util.c, without `nocase`), transcribed as directly as
    /// Rust allows: the recursive reference the compiled matcher is checked against. One
    /// documented deviation: an empty key matches a pattern of stars (see the module docs).
    fn redis_match(mut p: &[u8], mut s: &[u8]) -> bool {
        if s.is_empty() {
            return p.iter().all(|&c| c == b'*');
        }
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    while !s.is_empty() {
                        if redis_match(&p[1..], s) {
                            return true;
                        }
                        s = &s[1..];
                    }
                    return false;
                }
                b'?' => s = &s[1..],
                b'[' => {
                    p = &p[1..];
                    let not = p.first() == Some(&b'^');
                    if not {
                        p = &p[1..];
                    }
                    let mut hit = false;
                    loop {
                        if p.first() == Some(&b'\\') && p.len() >= 2 {
                            p = &p[1..];
                            if p[0] == s[0] {
                                hit = true;
                            }
                        } else if p.first() == Some(&b']') || p.is_empty() {
                            // The set ends at `]`, or (unterminated) with the pattern.
                            break;
                        } else if p.len() >= 3 && p[1] == b'-' {
                            // C `char`, signed on x86-64.
                            let (mut start, mut end) = (p[0] as i8, p[2] as i8);
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            p = &p[2..];
                            if (s[0] as i8) >= start && (s[0] as i8) <= end {
                                hit = true;
                            }
                        } else if p[0] == s[0] {
                            hit = true;
                        }
                        p = &p[1..];
                    }
                    if not {
                        hit = !hit;
                    }
                    if !hit {
                        return false;
                    }
                    s = &s[1..];
                    if p.is_empty() {
                        // Unterminated set: Redis steps back one byte so that the `pattern++`
                        // after the switch lands on the end; here `p` is already there.
                        if s.is_empty() {
                            break;
                        }
                        continue;
                    }
                    // Terminated: `p` stands on the `]`, which the step below consumes.
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if p[0] != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if c != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }

    #[test]
    fn the_reference_agrees_with_redis_documentation() {
        for (p, s, want) in [
            ("h?llo", "hello", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(redis_match(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
            assert_eq!(Pattern::new(p).matches(s), want, "{p} ~ {s}");
        }
    }

    #[test]
    fn edge_cases() {
        // Unterminated set: the rest of the pattern is the set.
        assert!(Pattern::new("a[bc").matches("ab"));
        assert!(!Pattern::new("a[bc").matches("abc"));
        assert!(!Pattern::new("a[").matches("a"));
        assert!(!Pattern::new("a[").matches("ab"));
        // Empty and negated-empty sets.
        assert!(!Pattern::new("[]").matches("a"));
        assert!(Pattern::new("[^]").matches("a"));
        // Reversed range, escapes inside and outside sets, trailing backslash.
        assert!(Pattern::new("[z-a]").matches("m"));
        // Range ends compare as signed bytes, as in Redis on x86-64.
        assert!(Pattern::new(b"[b-\xff]").matches("a"));
        assert!(Pattern::new(b"[b-\xff]").matches(b"\x01"));
        assert!(!Pattern::new(b"[b-\xff]").matches(b"\xfe"));
        assert!(Pattern::new(r"[\]]").matches("]"));
        assert!(Pattern::new(r"\?").matches("?"));
        assert!(!Pattern::new(r"\?").matches("x"));
        assert!(Pattern::new("a\\").matches("a\\"));
        // The one deliberate difference from Redis: stars match the empty key.
        assert!(Pattern::new("**").matches(""));
        assert!(!Pattern::new("*?").matches(""));
        // Binary keys.
        assert!(Pattern::new(b"\x00*\xff").matches(b"\x00abc\xff"));
        // Literal prefixes and literal patterns.
        assert_eq!(Pattern::new(r"ab\*c*").literal_prefix(), b"ab*c");
        assert!(Pattern::new(r"ab\*c").is_literal());
        assert!(!Pattern::new("ab?").is_literal());
        assert_eq!(Pattern::new("*x").literal_prefix(), b"");
    }

    #[test]
    fn many_stars_take_linear_time_per_try() {
        // Exponential for a naive recursive matcher; instant here.
        let p = Pattern::new("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
        assert!(!p.matches("a".repeat(200)));
    }

    fn pattern_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'*', b'?', b'[', b']', b'^', b'-', b'\\']),
            0..10,
        )
    }

    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'c', b'-', b'^', b']', b'[', b'*', b'\\']),
            0..10,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn matches_like_redis(pattern in pattern_bytes(), key in key_bytes()) {
            prop_assert_eq!(
                Pattern::new(&pattern).matches(&key),
                redis_match(&pattern, &key),
                "pattern {:?} key {:?}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&key)
            );
        }

        #[test]
        fn every_match_starts_with_the_literal_prefix(pattern in pattern_bytes(), key in key_bytes()) {
            let p = Pattern::new(&pattern);
            if p.matches(&key) {
                prop_assert!(key.starts_with(p.literal_prefix()));
            }
        }
    }
}
