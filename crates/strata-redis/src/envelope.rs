//! The envelope: how a value (or a deletion) is written in Redis.
//!
//! ```text
//! S1 <version> v <tags>\n          a value: its version, how many tags it carries,
//! <tag length> <tag> <generation>\n   one line per tag, with the generation it was written under,
//! <payload>                         then the value as its codec wrote it
//!
//! S1 <version> z <tags>\n...        the same, the payload compressed (one zstd frame)
//!
//! S1 <version> t\n                  a deletion's tombstone
//! ```
//!
//! The header is text so that the scripts can read the version with one `string.match`; the
//! version is given by Redis (the partition's counter) inside the script that writes, so a
//! client never chooses it. Anything else under one of strata's keys (another program's
//! value, a truncated write, a newer format) is [`Corrupt`] and treated as a miss.

use std::fmt::Write as _;

use thiserror::Error;

/// What a value's Redis key held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// A value.
    Value {
        version: u64,
        /// Each tag with the generation it was written under.
        tags: Vec<(String, u64)>,
        /// Whether `payload` is compressed (a zstd frame).
        compressed: bool,
        payload: &'a [u8],
    },
    /// A deletion, remembered for a while.
    Tombstone { version: u64 },
}

/// Not an envelope strata wrote.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a strata envelope: {0}")]
pub(crate) struct Corrupt(&'static str);

const MAGIC: &[u8] = b"S1 ";

/// What follows the version in a value's header (the script writes `S1 <version>` before
/// it): the kind (a value, compressed or not) and the tags with their generations.
pub(crate) fn value_header_rest(tags: &[(String, u64)], compressed: bool) -> Vec<u8> {
    let kind = if compressed { 'z' } else { 'v' };
    let mut rest = format!(" {kind} {}\n", tags.len());
    for (tag, generation) in tags {
        let _ = writeln!(rest, "{} {tag} {generation}", tag.len());
    }
    rest.into_bytes()
}

/// Reads what a value's Redis key held.
pub(crate) fn parse(bytes: &[u8]) -> Result<Stored<'_>, Corrupt> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(Corrupt("no S1 header"))?;
    let (version, rest) = number(rest, b' ')?;
    let (&kind, rest) = rest.split_first().ok_or(Corrupt("no kind"))?;
    match kind {
        b't' if rest == b"\n" => Ok(Stored::Tombstone { version }),
        b'v' | b'z' => {
            let rest = rest.strip_prefix(b" ").ok_or(Corrupt("no tag count"))?;
            let (count, mut rest) = number(rest, b'\n')?;
            let mut tags = Vec::with_capacity(count.min(64) as usize);
            for _ in 0..count {
                let (len, after) = number(rest, b' ')?;
                let len = usize::try_from(len).map_err(|_| Corrupt("tag length"))?;
                if after.len() < len + 1 || after[len] != b' ' {
                    return Err(Corrupt("tag cut short"));
                }
                let tag =
                    std::str::from_utf8(&after[..len]).map_err(|_| Corrupt("tag not UTF-8"))?;
                let (generation, after) = number(&after[len + 1..], b'\n')?;
                tags.push((tag.to_owned(), generation));
                rest = after;
            }
            Ok(Stored::Value {
                version,
                tags,
                compressed: kind == b'z',
                payload: rest,
            })
        }
        _ => Err(Corrupt("unknown kind")),
    }
}

/// A decimal number ended by `end`, and what follows `end`.
fn number(bytes: &[u8], end: u8) -> Result<(u64, &[u8]), Corrupt> {
    let stop = bytes
        .iter()
        .take(21)
        .position(|&b| b == end)
        .ok_or(Corrupt("number not ended"))?;
    let digits = &bytes[..stop];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Corrupt("not a number"));
    }
    let n = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Corrupt("number too large"))?;
    Ok((n, &bytes[stop + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(version: u64, tags: &[(String, u64)], payload: &[u8]) -> Vec<u8> {
        let mut bytes = format!("S1 {version}").into_bytes();
        bytes.extend(value_header_rest(tags, false));
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn values_and_tombstones_read_back() {
        let tags = vec![("user:42".to_owned(), 3), ("a b\n".to_owned(), 0)];
        let bytes = written(17, &tags, b"{\"x\":1}\n");
        assert_eq!(
            parse(&bytes),
            Ok(Stored::Value {
                version: 17,
                tags,
                compressed: false,
                payload: b"{\"x\":1}\n"
            })
        );
        assert_eq!(parse(b"S1 9 t\n"), Ok(Stored::Tombstone { version: 9 }));
        assert_eq!(
            parse(&written(1, &[], b"")),
            Ok(Stored::Value {
                version: 1,
                tags: vec![],
                compressed: false,
                payload: b""
            })
        );
        let mut packed = b"S1 3".to_vec();
        packed.extend(value_header_rest(&[], true));
        packed.extend_from_slice(b"frame");
        assert!(matches!(
            parse(&packed),
            Ok(Stored::Value {
                version: 3,
                compressed: true,
                payload: b"frame",
                ..
            })
        ));
    }

    #[test]
    fn anything_else_is_corrupt_not_a_panic() {
        for bad in [
            &b""[..],
            b"hello",
            b"S1 ",
            b"S1 x v 0\n",
            b"S1 1 q\n",
            b"S1 1 t\nextra",
            b"S1 1 v 2\n3 abc 1\n",
            b"S1 1 v 1\n99 abc 1\n",
            b"S1 99999999999999999999999 v 0\n",
            b"S1 1 v 1\n3 ab",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
