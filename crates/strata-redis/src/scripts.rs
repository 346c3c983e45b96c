//! The Lua scripts that change a value (and, for a deletion or a write-through, append to the
//! log) in one atomic step. Each touches one partition: the value's key, the partition's
//! version counter and its log (`KEYS`), which share a hash tag (see `keys.rs`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

/// The Lua function the writing scripts share: takes the partition's next version and writes
/// the value's envelope under it (`KEYS[1]`, counter `KEYS[2]`), with a TTL in milliseconds
/// (`'0'`: none). Returns the version.
const WRITE_VALUE: &str = r#"
local function write_value(ttl, header, payload)
  local version = redis.call('INCR', KEYS[2])
  local body = 'S1 ' .. version .. header .. payload
  if ttl ~= '0' then
    redis.call('SET', KEYS[1], body, 'PX', ttl)
  else
    redis.call('SET', KEYS[1], body)
  end
  return version
end
"#;

/// Writes a load's fill: the origin's answer, if the key is still at the version the load
/// saw in Redis (a value, a tombstone or a corrupt entry count as the version their header
/// says, nothing as 0) and no prefix, pattern, clear or event invalidation moved the
/// partition's scope since. Not logged: it changes nothing another instance holds.
///
/// `KEYS`: the value's key, the partition's counter, the partition's scope.
/// `ARGV`: the version seen, the TTL in milliseconds (0: none), the header after the version,
/// the payload, the scope seen.
///
/// Returns the version written, or 0 when the key had changed.
pub(crate) static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{WRITE_VALUE}
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = tonumber(string.match(current, '^S1 (%d+) ')) or 0 end
if version ~= tonumber(ARGV[1]) then return 0 end
if tonumber(redis.call('GET', KEYS[3]) or '0') ~= tonumber(ARGV[5]) then return 0 end
return write_value(ARGV[2], ARGV[3], ARGV[4])
"#
    ))
});

/// Deletes a value, leaving a tombstone with a new version for a while, so that a load that
/// read the origin before the deletion cannot write its old value back after it.
///
/// `KEYS`: the value's key, the partition's counter, the partition's log.
/// `ARGV`: the tombstone's TTL in milliseconds, the log's length, this instance's id, the
/// log entry.
///
/// Returns the tombstone's version.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local version = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], 'S1 ' .. version .. ' t\n', 'PX', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'o', ARGV[3], 'e', ARGV[4])
return version
"#,
    )
});

/// Writes a value with a new version and logs it, so the other instances drop what they hold
/// and read it back from Redis: what an instance holds for a key whose source of truth is
/// Redis (`strata serve`'s write-through), or an insert-if-absent Redis decides for every
/// instance (a claim: stored only if the key holds no live value; a tombstone or nothing
/// counts as absent).
///
/// `KEYS`: the value's key, the partition's counter, the partition's log.
/// `ARGV`: the TTL in milliseconds (0: none), the header after the version, the payload, the
/// log's length, this instance's id, the log entry, `1` for a claim (else `0`).
///
/// Returns the version written (an integer), or, for a claim that found a live value, that
/// value's envelope (a string).
pub(crate) static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{WRITE_VALUE}
if ARGV[7] == '1' then
  local current = redis.call('GET', KEYS[1])
  if current and string.match(current, '^S1 %d+ [vz]') then return current end
end
local version = write_value(ARGV[1], ARGV[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'o', ARGV[5], 'e', ARGV[6])
return version
"#
    ))
});

/// A TTL as the scripts take it: milliseconds, at least one; 0 for none.
pub(crate) fn ttl_millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| t.as_millis().clamp(1, u128::from(u64::MAX)) as u64)
}
