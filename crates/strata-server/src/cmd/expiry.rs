//! Expiry commands.
//!
//! ```text
//! EXPIRE key seconds [NX|XX|GT|LT]           1 if the TTL was set, 0 if not
//! PEXPIRE key ms [NX|XX|GT|LT]               (a time not in the future removes the key)
//! EXPIREAT key unix-seconds [NX|XX|GT|LT]
//! PEXPIREAT key unix-ms [NX|XX|GT|LT]
//! TTL key / PTTL key                         seconds / ms left; -1 no TTL, -2 no key
//! PERSIST key                                1 if a TTL was removed, 0 if not
//! ```
//!
//! NX sets only a key without a TTL, XX only one with; GT only a later deadline and LT
//! only an earlier one, a key without a TTL counting as one that never expires (as Redis
//! counts it). The test and the change are one atomic [`update`](strata::store::Namespace::update).

use std::time::Duration;

use bytes::Bytes;
use strata::store::Update;

use super::{is, CommandResult, Ctx, Error, Expiry, TimeArg};

#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    NoTtl,
    Later,
    Sooner,
}

fn set_expiry(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    unit: i64,
    absolute: bool,
    command: &str,
) -> CommandResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for arg in &args[3..] {
        if is(arg, "NX") {
            nx = true;
        } else if is(arg, "XX") {
            xx = true;
        } else if is(arg, "GT") {
            gt = true;
        } else if is(arg, "LT") {
            lt = true;
        } else {
            return Err(Error::new(format!(
                "ERR Unsupported option {}",
                super::printable(arg, 128)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Error::new(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Error::new(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    // XX combines with GT and LT: both must hold.
    let when = match (nx, gt, lt) {
        (true, _, _) => When::NoTtl,
        (_, true, _) => When::Later,
        (_, _, true) => When::Sooner,
        _ => When::Always,
    };
    let time = TimeArg {
        unit_ms: unit,
        absolute,
        positive: false,
    };
    let expiry = time.read(&args[2], command)?;
    let left = match expiry {
        Expiry::In(d) => d,
        Expiry::Past => Duration::ZERO,
    };
    let ns = ctx.shared.keyspace.route(&args[1]);
    // Redis keeps deadlines in milliseconds; ours are read from a clock of coarser grain.
    // Deadlines closer than either are the same deadline for GT and LT, so an EXPIREAT
    // repeated with its own time is neither later nor sooner.
    let grain = ns.ttl_resolution().max(Duration::from_millis(1));
    let set = ns
        .update(&args[1][..], |current| {
            let Some(current) = current else {
                return (Update::Keep, false);
            };
            // None: no TTL, which counts as never expiring.
            let now_left = ns.remaining(current.fresh_until);
            let ok = (!xx || now_left.is_some())
                && match when {
                    When::Always => true,
                    When::NoTtl => now_left.is_none(),
                    When::Later => now_left.is_some_and(|now| left > now + grain),
                    When::Sooner => now_left.is_none_or(|now| left + grain < now),
                };
            if !ok {
                return (Update::Keep, false);
            }
            let what = match expiry {
                Expiry::Past => Update::Remove,
                Expiry::In(d) => Update::Expire(Some(d)),
            };
            (what, true)
        })
        .map_err(|e| super::refused(ns.name(), &e))?;
    ctx.int(i64::from(set));
    Ok(())
}

pub(crate) fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_expiry(ctx, args, 1000, false, "expire")
}

pub(crate) fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_expiry(ctx, args, 1, false, "pexpire")
}

pub(crate) fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_expiry(ctx, args, 1000, true, "expireat")
}

pub(crate) fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    set_expiry(ctx, args, 1, true, "pexpireat")
}

fn time_left(ctx: &mut Ctx<'_>, key: &[u8], millis: bool) -> CommandResult {
    let reply = match ctx.shared.keyspace.route(key).ttl(key) {
        None => -2,
        Some(None) => -1,
        Some(Some(left)) => {
            let ms = left.as_millis() as i64;
            if millis {
                ms
            } else {
                (ms + 500) / 1000
            }
        }
    };
    ctx.int(reply);
    Ok(())
}

pub(crate) fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    time_left(ctx, &args[1], false)
}

pub(crate) fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    time_left(ctx, &args[1], true)
}

pub(crate) fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let ns = ctx.shared.keyspace.route(&args[1]);
    let done = ns
        .update(&args[1][..], |current| match current {
            Some(c) if ns.remaining(c.fresh_until).is_some() => (Update::Expire(None), true),
            _ => (Update::Keep, false),
        })
        .map_err(|e| super::refused(ns.name(), &e))?;
    ctx.int(i64::from(done));
    Ok(())
}
