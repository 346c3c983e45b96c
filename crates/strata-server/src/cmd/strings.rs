//! String commands: `GET`, `SET` and its variants, `MGET`/`MSET`, counters, `APPEND`,
//! `STRLEN`. Read-modify-write commands run through
//! [`Namespace::update`](strata::store::Namespace::update), under the key's shard lock, so
//! concurrent `INCR`s never lose a step.
//!
//! ```text
//! GET key                                    bulk or null
//! SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]
//!                                            OK, null (NX/XX not met), or the old value (GET)
//! SETNX key value                            1 if set, 0 if not
//! SETEX key seconds value / PSETEX key ms value          OK
//! GETDEL key                                 the value (deleted) or null
//! GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]           the value or null
//! MGET key [key ...]                         array of bulk or null
//! MSET key value [key value ...]             OK
//! INCR key / DECR key / INCRBY key n / DECRBY key n      the new value
//! APPEND key value                           the new length
//! STRLEN key                                 the length (0 if missing)
//! ```

use bytes::Bytes;
use strata::store::{Current, Put, Update};

use super::parse::Parse;
use super::{int, is, refused, CommandResult, Ctx, Error, Expiry, TimeArg, SYNTAX};
use crate::keyspace::Value;
use crate::resp;

pub(crate) fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    // Without room the reply is abandoned and the connection closed.
    let _written = reply_value(ctx, &args[1]);
    Ok(())
}

/// Writes the value of `key` straight from the cache (no copy of it is made), or null; the
/// value only if there is [room](Ctx::room_for) for it. `false` when there was not: the reply
/// is abandoned.
#[inline]
fn reply_value(ctx: &mut Ctx<'_>, key: &[u8]) -> bool {
    let shared = ctx.shared;
    let mut room = true;
    let found = shared.keyspace.route(key).get_with(key, |value| {
        room = ctx.room_for(value.len() + super::BULK_FRAMING);
        if room {
            resp::write_bulk(&mut ctx.out.buf, value);
        }
    });
    if found.is_none() {
        ctx.null();
    }
    room
}

/// A copy of an argument to keep: arguments are slices of the connection's read buffer,
/// which a stored value must not pin.
fn own(arg: &[u8]) -> Value {
    Box::from(arg)
}

/// Which state of the key a `SET` needs (`NX`, `XX`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    Always,
    IfAbsent,
    IfPresent,
}

/// `SET key value [options]`'s options, read as Redis reads them.
pub(crate) struct SetOptions {
    pub(crate) condition: Condition,
    /// `GET`: answer with the old value.
    pub(crate) want_old: bool,
    /// The TTL to store with (`KEEPTTL` included), before the eviction policy.
    pub(crate) put: Put,
    /// A deadline already past: the key is removed (if the condition holds), as in Redis.
    pub(crate) past: bool,
    /// `KEEPTTL`: the new value keeps the old one's TTL.
    keeps_ttl: bool,
}

impl SetOptions {
    /// Reads the options after `SET key value`. Options may repeat; the last of each kind
    /// wins, and only conflicting kinds are a syntax error (as in Redis).
    pub(crate) fn parse(args: &[Bytes]) -> Result<Self, Error> {
        let mut condition = Condition::Always;
        let mut want_old = false;
        let mut ttl: Option<TtlOption> = None;
        let mut options = Parse::new(args, 3); // after SET key value
        while let Some(option) = options.next_arg() {
            if is(option, "NX") && condition != Condition::IfPresent {
                condition = Condition::IfAbsent;
            } else if is(option, "XX") && condition != Condition::IfAbsent {
                condition = Condition::IfPresent;
            } else if is(option, "GET") {
                want_old = true;
            } else if is(option, "KEEPTTL") && matches!(ttl, None | Some(TtlOption::Keep)) {
                ttl = Some(TtlOption::Keep);
            } else if let Some(time) = TimeArg::option(option) {
                if matches!(ttl, Some(TtlOption::Keep))
                    || ttl.is_some_and(|t| t.arg() != Some(time))
                {
                    return Err(SYNTAX);
                }
                ttl = Some(TtlOption::Time(
                    time,
                    time.read(options.next_bytes()?, "set")?,
                ));
            } else {
                return Err(SYNTAX);
            }
        }
        let (put, past) = match ttl {
            None => (Put::new(), false),
            Some(TtlOption::Keep) => (Put::new().keep_ttl(), false),
            Some(TtlOption::Time(_, Expiry::In(d))) => (Put::new().ttl(d), false),
            Some(TtlOption::Time(_, Expiry::Past)) => (Put::new(), true),
        };
        Ok(Self {
            condition,
            want_old,
            put,
            past,
            keeps_ttl: matches!(ttl, Some(TtlOption::Keep)),
        })
    }
}

impl SetOptions {
    /// Whether the `SET` replaces the value without reading the old one (no `NX`, `XX`,
    /// `GET`, `KEEPTTL`).
    pub(crate) fn reads_nothing(&self) -> bool {
        self.condition == Condition::Always && !self.want_old && !self.keeps_ttl
    }
}

pub(crate) fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let SetOptions {
        condition,
        want_old,
        put,
        past,
        ..
    } = SetOptions::parse(args)?;
    let put = ctx.under_policy(put);
    let ns = ctx.shared.keyspace.route(&args[1]);
    if condition == Condition::Always && !want_old && !past {
        // Nothing to decide from the old entry (KEEPTTL reads it inside the insert).
        ns.insert_with(&args[1][..], own(&args[2]), put)
            .map_err(|e| refused(ns.name(), &e))?;
        ctx.ok();
        return Ok(());
    }
    let value = own(&args[2]);
    let (done, old) = ns
        .update(&args[1][..], |current| {
            // The old value is copied only for GET, which answers with it.
            let old = current
                .as_ref()
                .filter(|_| want_old)
                .map(|c| c.value.clone());
            let go = match condition {
                Condition::Always => true,
                Condition::IfAbsent => current.is_none(),
                Condition::IfPresent => current.is_some(),
            };
            let what = match (go, past) {
                (false, _) => Update::Keep,
                (true, true) => Update::Remove,
                (true, false) => Update::Put(value, put),
            };
            (what, (go, old))
        })
        .map_err(|e| refused(ns.name(), &e))?;
    if want_old {
        ctx.bulk_or_null(old.as_deref());
    } else if done {
        ctx.ok();
    } else {
        ctx.null();
    }
    Ok(())
}

/// `SET`'s TTL option: `KEEPTTL`, or a time and what it came to.
#[derive(Clone, Copy)]
enum TtlOption {
    Keep,
    Time(TimeArg, Expiry),
}

impl TtlOption {
    /// Which time option gave it (`None` for `KEEPTTL`).
    fn arg(self) -> Option<TimeArg> {
        match self {
            TtlOption::Keep => None,
            TtlOption::Time(arg, _) => Some(arg),
        }
    }
}

pub(crate) fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let ns = ctx.shared.keyspace.route(&args[1]);
    let value = own(&args[2]);
    let put = ctx.under_policy(Put::new());
    let set = ns
        .update(&args[1][..], |current| match current {
            Some(_) => (Update::Keep, false),
            None => (Update::Put(value, put), true),
        })
        .map_err(|e| refused(ns.name(), &e))?;
    ctx.int(i64::from(set));
    Ok(())
}

fn set_expiring(ctx: &mut Ctx<'_>, args: &[Bytes], unit: i64, command: &str) -> CommandResult {
    let time = TimeArg {
        unit_ms: unit,
        absolute: false,
        positive: true,
    };
    let ttl = match time.read(&args[2], command)? {
        Expiry::In(d) => d,
        // A positive time from now is never past.
        Expiry::Past => {
            return Err(Error::new(format!(
                "ERR invalid expire time in '{command}' command"
            )))
        }
    };
    let ns = ctx.shared.keyspace.route(&args[1]);
    ns.insert_with(
        &args[1][..],
        own(&args[3]),
        ctx.under_policy(Put::new().ttl(ttl)),
    )
    .map_err(|e| refused(ns.name(), &e))?;
    ctx.ok();
    Ok(())
}

pub(crate) fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_expiring(ctx, args, 1000, "setex")
}

pub(crate) fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_expiring(ctx, args, 1, "psetex")
}

pub(crate) fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let ns = ctx.shared.keyspace.route(&args[1]);
    let old = ns
        .update(&args[1][..], |current| match current {
            Some(c) => (Update::Remove, Some(c.value.clone())),
            None => (Update::Keep, None),
        })
        .map_err(|e| refused(ns.name(), &e))?;
    ctx.bulk_or_null(old.as_deref());
    Ok(())
}

pub(crate) fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    // None: leave the TTL; Some(None): persist; Some(Some(e)): expire. An option may
    // repeat (the last wins); two different ones are a syntax error.
    let mut change: Option<Option<Expiry>> = None;
    let mut given: Option<Option<TimeArg>> = None;
    let mut options = Parse::new(args, 2); // after GETEX key
    while let Some(option) = options.next_arg() {
        let this = if is(option, "PERSIST") {
            None
        } else {
            Some(TimeArg::option(option).ok_or(SYNTAX)?)
        };
        if given.is_some_and(|g| g != this) {
            return Err(SYNTAX);
        }
        given = Some(this);
        change = Some(match this {
            None => None,
            Some(time) => Some(time.read(options.next_bytes()?, "getex")?),
        });
    }
    let ns = ctx.shared.keyspace.route(&args[1]);
    let Some(change) = change else {
        let _written = reply_value(ctx, &args[1]);
        return Ok(());
    };
    let value = ns
        .update(&args[1][..], |current| {
            let Some(current) = current else {
                return (Update::Keep, None);
            };
            let value = current.value.clone();
            let what = match change {
                None => Update::Expire(None),
                Some(Expiry::In(d)) => Update::Expire(Some(d)),
                Some(Expiry::Past) => Update::Remove,
            };
            (what, Some(value))
        })
        .map_err(|e| refused(ns.name(), &e))?;
    ctx.bulk_or_null(value.as_deref());
    Ok(())
}

pub(crate) fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ctx.array(args.len() - 1);
    for key in &args[1..] {
        // The same big key asked a million times would make a reply far larger than the
        // store: stop once a value does not fit the client's output limit or the bound on
        // all clients' buffers (the connection is then closed).
        if !reply_value(ctx, key) {
            break;
        }
    }
    Ok(())
}

pub(crate) fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len().is_multiple_of(2) {
        return Err(Error::new(
            "ERR wrong number of arguments for 'mset' command",
        ));
    }
    for pair in args[1..].chunks_exact(2) {
        let ns = ctx.shared.keyspace.route(&pair[0]);
        ns.insert_with(&pair[0][..], own(&pair[1]), ctx.under_policy(Put::new()))
            .map_err(|e| refused(ns.name(), &e))?;
    }
    ctx.ok();
    Ok(())
}

/// Adds `by` to the integer at `key` (0 if missing), keeping its TTL and tags.
fn add(ctx: &mut Ctx<'_>, key: &Bytes, by: i64) -> CommandResult {
    let ns = ctx.shared.keyspace.route(key);
    let put = ctx.under_policy(Put::new().keep_ttl().keep_tags());
    let result = ns
        .update(&key[..], |current: Option<Current<'_, Value>>| {
            let now = match current {
                None => 0,
                Some(c) => match resp::parse_integer(c.value) {
                    Some(n) => n,
                    None => return (Update::Keep, Err(super::NOT_INTEGER)),
                },
            };
            match now.checked_add(by) {
                Some(next) => {
                    let text = Value::from(itoa::Buffer::new().format(next).as_bytes());
                    (Update::Put(text, put), Ok(next))
                }
                None => (
                    Update::Keep,
                    Err(Error::new("ERR increment or decrement would overflow")),
                ),
            }
        })
        .map_err(|e| refused(ns.name(), &e))??;
    ctx.int(result);
    Ok(())
}

pub(crate) fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    add(ctx, &args[1], 1)
}

pub(crate) fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    add(ctx, &args[1], -1)
}

pub(crate) fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    add(ctx, &args[1], int(&args[2])?)
}

pub(crate) fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let by = int(&args[2])?;
    let by = by
        .checked_neg()
        .ok_or_else(|| Error::new("ERR decrement would overflow"))?;
    add(ctx, &args[1], by)
}

pub(crate) fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let ns = ctx.shared.keyspace.route(&args[1]);
    let limit = ctx.shared.limits.max_bulk_len;
    let put = ctx.under_policy(Put::new().keep_ttl().keep_tags());
    let tail = &args[2];
    let len = ns
        .update(&args[1][..], |current| {
            let head: &[u8] = current.as_ref().map_or(&[], |c| &c.value[..]);
            if head.len() + tail.len() > limit {
                return (
                    Update::Keep,
                    Err(Error::new(
                        "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                    )),
                );
            }
            let mut joined = Vec::with_capacity(head.len() + tail.len());
            joined.extend_from_slice(head);
            joined.extend_from_slice(tail);
            let len = joined.len() as i64;
            (Update::Put(joined.into_boxed_slice(), put), Ok(len))
        })
        .map_err(|e| refused(ns.name(), &e))??;
    ctx.int(len);
    Ok(())
}

pub(crate) fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let len = ctx
        .shared
        .keyspace
        .route(&args[1])
        .get_with(&args[1], |v| v.len());
    ctx.int(len.map_or(0, |n| n as i64));
    Ok(())
}
