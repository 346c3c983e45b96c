//! Keyspace commands.
//!
//! ```text
//! DEL key [key ...] / UNLINK key [key ...]   how many keys were removed
//! EXISTS key [key ...]                       how many of the keys exist (repeats count)
//! TYPE key                                   string, or none
//! SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
//!                                            [next cursor, [key ...]]; cursor 0 ends
//! KEYS pattern                               every key matching the glob pattern
//! ```
//!
//! SCAN keeps Redis's guarantee: a key present for the whole iteration is returned at least
//! once (it may be returned more than once). The cursor names a namespace, a shard and a
//! position in the shard's dense slab, walked from the top down; see
//! [`strata::Cache::scan`] for why writes in between cannot hide a key from it.

use bytes::Bytes;
use strata::Pattern;

use super::parse::Parse;
use super::{is, CommandResult, Ctx, Error, SYNTAX};

pub(crate) fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let removed = args[1..]
        .iter()
        .filter(|key| ctx.shared.keyspace.route(key).remove(key).is_some())
        .count();
    ctx.int(removed as i64);
    Ok(())
}

pub(crate) fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let found = args[1..]
        .iter()
        .filter(|key| ctx.shared.keyspace.route(key).contains_key(key))
        .count();
    ctx.int(found as i64);
    Ok(())
}

pub(crate) fn type_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let found = ctx.shared.keyspace.route(&args[1]).contains_key(&args[1]);
    ctx.simple(if found { "string" } else { "none" });
    Ok(())
}

pub(crate) fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::new("ERR invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10usize;
    let mut strings = true;
    let mut options = Parse::new(args, 2); // after SCAN cursor
    while let Some(option) = options.next_arg() {
        if is(option, "MATCH") {
            pattern = Some(Pattern::new(options.next_bytes()?));
        } else if is(option, "COUNT") {
            count = match options.next_int()? {
                n if n >= 1 => n as usize,
                _ => return Err(SYNTAX),
            };
        } else if is(option, "TYPE") {
            strings = is(options.next_bytes()?, "string");
        } else {
            return Err(SYNTAX);
        }
    }
    let mut keys = Vec::new();
    let next = ctx.shared.keyspace.scan(cursor, count, |key| {
        if strings && pattern.as_ref().is_none_or(|p| p.matches(key)) {
            keys.push(Bytes::copy_from_slice(key));
        }
    });
    ctx.array(2);
    ctx.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.array(keys.len());
    write_keys(ctx, &keys);
    Ok(())
}

/// Writes `keys` as bulk strings, stopping once one has no room (the reply is then
/// abandoned and the connection closed).
fn write_keys(ctx: &mut Ctx<'_>, keys: &[Bytes]) {
    for key in keys {
        if ctx.out.abandoned().is_some() {
            return;
        }
        ctx.bulk(key);
    }
}

pub(crate) fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let pattern = Pattern::new(&args[1]);
    let mut keys = Vec::new();
    let mut cursor = 0;
    loop {
        cursor = ctx.shared.keyspace.scan(cursor, 1024, |key| {
            if pattern.matches(key) {
                keys.push(Bytes::copy_from_slice(key));
            }
        });
        if cursor == 0 {
            break;
        }
    }
    // A walk may return a key twice (when writes move it); KEYS answers each once.
    keys.sort_unstable();
    keys.dedup();
    ctx.array(keys.len());
    write_keys(ctx, &keys);
    Ok(())
}
