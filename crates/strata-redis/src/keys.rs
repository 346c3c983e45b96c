//! Where things live in Redis: every key strata writes, named in one place.
//!
//! ```text
//! {prefix}{7}:d:{namespace}:{key}   a value (or a deletion's tombstone), in partition 7
//! {prefix}{7}:v                     partition 7's version counter
//! {prefix}{7}:s                     partition 7's scope generation (prefix, pattern, clear)
//! {prefix}{7}:log                   partition 7's invalidation log (a stream)
//! {prefix}t:{tag}                   a tag's generation
//! {prefix}epoch                     the log's epoch: changes when Redis loses the log
//! ```
//!
//! A key's value, its partition's counter and its partition's log share the hash tag `{7}`,
//! so the script that changes a value, takes a version and appends to the log touches one
//! Redis Cluster slot.

use strata::Key;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// The key names of one fleet (one prefix, one number of partitions).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    partitions: u32,
}

impl Keys {
    pub(crate) fn new(prefix: &str, partitions: u32) -> Self {
        Self {
            prefix: prefix.to_owned(),
            partitions: partitions.max(1),
        }
    }

    pub(crate) fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition of `key` in `namespace`.
    pub(crate) fn partition(&self, namespace: &str, key: &[u8]) -> u32 {
        let mut hash = Xxh3::new();
        hash.update(namespace.as_bytes());
        hash.update(&[0]);
        hash.update(key);
        (hash.digest() % u64::from(self.partitions)) as u32
    }

    /// The partition a namespace-wide entry (prefix, pattern, clear) is logged in.
    pub(crate) fn namespace_partition(&self, namespace: &str) -> u32 {
        (xxh3_64(namespace.as_bytes()) % u64::from(self.partitions)) as u32
    }

    fn partition_head(&self, partition: u32) -> String {
        format!("{}{{{partition}}}:", self.prefix)
    }

    /// Where `key` of `namespace` keeps its value.
    pub(crate) fn data(&self, namespace: &str, key: &[u8]) -> Vec<u8> {
        let mut name = self
            .partition_head(self.partition(namespace, key))
            .into_bytes();
        name.extend_from_slice(b"d:");
        name.extend_from_slice(namespace.as_bytes());
        name.push(b':');
        name.extend_from_slice(key);
        name
    }

    /// A SCAN pattern covering every value of `namespace` whose key matches the glob
    /// `key_glob` (in any partition). What it finds is checked again with [`Self::parse_data`]:
    /// the partition's `*` could in theory swallow more than digits.
    pub(crate) fn data_glob(&self, namespace: &str, key_glob: &[u8]) -> Vec<u8> {
        let mut glob = escape_glob(self.prefix.as_bytes());
        glob.extend_from_slice(b"{*}:d:");
        glob.extend_from_slice(&escape_glob(namespace.as_bytes()));
        glob.push(b':');
        glob.extend_from_slice(key_glob);
        glob
    }

    /// The namespace and key of a value's Redis key, if it is one of this fleet's.
    pub(crate) fn parse_data<'a>(&self, name: &'a [u8]) -> Option<(&'a str, Key)> {
        let rest = name
            .strip_prefix(self.prefix.as_bytes())?
            .strip_prefix(b"{")?;
        let close = rest.iter().position(|&b| b == b'}')?;
        if !rest[..close].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let rest = rest[close + 1..].strip_prefix(b":d:")?;
        let colon = rest.iter().position(|&b| b == b':')?;
        let namespace = std::str::from_utf8(&rest[..colon]).ok()?;
        Some((namespace, Key::from(&rest[colon + 1..])))
    }

    /// Partition `partition`'s version counter.
    pub(crate) fn version(&self, partition: u32) -> String {
        self.partition_head(partition) + "v"
    }

    /// Partition `partition`'s scope generation: moved by every invalidation that is not of
    /// one key, so a load's fill that read the origin before it is refused.
    pub(crate) fn scope(&self, partition: u32) -> String {
        self.partition_head(partition) + "s"
    }

    /// Partition `partition`'s log.
    pub(crate) fn log(&self, partition: u32) -> String {
        self.partition_head(partition) + "log"
    }

    /// Every partition's log, in order.
    pub(crate) fn logs(&self) -> Vec<String> {
        (0..self.partitions).map(|p| self.log(p)).collect()
    }

    /// `tag`'s generation.
    pub(crate) fn tag(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.prefix)
    }

    /// The log's epoch.
    pub(crate) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }
}

/// `text` as a glob that matches exactly it.
pub(crate) fn escape_glob(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_its_counter_and_its_log_share_a_hash_tag() {
        let keys = Keys::new("s:", 16);
        let data = String::from_utf8(keys.data("user", b"user::42")).unwrap();
        let p = keys.partition("user", b"user::42");
        assert!(data.starts_with(&format!("s:{{{p}}}:d:user:")), "{data}");
        assert!(keys.version(p).starts_with(&format!("s:{{{p}}}:")));
        assert!(keys.log(p).starts_with(&format!("s:{{{p}}}:")));
    }

    #[test]
    fn a_data_key_parses_back() {
        let keys = Keys::new("s:", 16);
        let name = keys.data("user", b"a:b}:d:x");
        let (ns, key) = keys.parse_data(&name).unwrap();
        assert_eq!((ns, key.as_bytes()), ("user", &b"a:b}:d:x"[..]));
        assert_eq!(keys.parse_data(b"s:{x}:d:user:k"), None);
        assert_eq!(keys.parse_data(b"other:{1}:d:user:k"), None);
    }

    #[test]
    fn globs_escape_what_they_must() {
        assert_eq!(escape_glob(b"a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\".to_vec());
        let keys = Keys::new("s*:", 4);
        assert_eq!(
            keys.data_glob("ns", b"user::*"),
            b"s\\*:{*}:d:ns:user::*".to_vec()
        );
    }
}
