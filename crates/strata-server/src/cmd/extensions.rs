//! strata's extensions to Redis's command set, the `STRATA.*` commands: what Redis lacks for
//! caching, reachable from any Redis client.
//!
//! ```text
//! STRATA.SETTAGS key tag [tag ...]           1 if the key's tags were replaced, 0 if no key
//! STRATA.INVALIDATE KEY key | PREFIX prefix | PATTERN glob | TAG tag | NAMESPACE name
//!                 | EVENT name [param value ...]
//!                                            how many live entries were dropped (a
//!                                            NAMESPACE clear counts every entry it drops)
//! STRATA.NAMESPACE key                       the namespace the key lives in
//! STRATA.STATS [namespace]                   per namespace: keys, bytes, max_bytes, hits,
//!                                            misses, inserts, updates, removals,
//!                                            expirations, evictions
//! ```
//!
//! Invalidations go through the store, so event rules and the publisher see them exactly
//! as they see the library's and the admin API's.

use std::collections::BTreeMap;

use bytes::Bytes;
use strata::store::{Invalidation, Put, StoreError, Update};

use super::parse::Parse;
use super::{is, CommandResult, Ctx, Error, SYNTAX};
use crate::resp::Frame;

fn text(arg: &[u8]) -> Result<String, Error> {
    String::from_utf8(arg.to_vec()).map_err(|_| Error::new("ERR the argument must be UTF-8 text"))
}

pub(crate) fn settags(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let tags = args[2..]
        .iter()
        .map(|t| text(t))
        .collect::<Result<Vec<_>, _>>()?;
    let ns = ctx.shared.keyspace.route(&args[1]);
    let put = ctx.under_policy(Put::new().keep_ttl().tags(tags));
    let done = ns
        .update(&args[1][..], |current| match current {
            Some(c) => (Update::Put(c.value.clone(), put), true),
            None => (Update::Keep, false),
        })
        .map_err(|e| super::refused(ns.name(), &e))?;
    ctx.int(i64::from(done));
    Ok(())
}

pub(crate) fn invalidate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    // EVENT takes a name and parameter pairs; every other form exactly one target.
    let mut given = Parse::new(args, 1);
    let invalidation = if given.eat("EVENT") {
        let event = given.next_bytes()?;
        if given.remaining() % 2 == 1 {
            return Err(SYNTAX);
        }
        let mut params = BTreeMap::new();
        while !given.is_done() {
            params.insert(text(given.next_bytes()?)?, text(given.next_bytes()?)?);
        }
        Invalidation::Event {
            event: text(event)?,
            params,
        }
    } else {
        let what = given.next_bytes()?;
        let target = given.next_bytes()?;
        given.finish()?;
        if is(what, "KEY") {
            Invalidation::Key {
                namespace: None,
                key: target[..].into(),
            }
        } else if is(what, "PREFIX") {
            Invalidation::Prefix {
                namespace: None,
                prefix: target[..].into(),
            }
        } else if is(what, "PATTERN") {
            Invalidation::Pattern {
                namespace: None,
                pattern: target[..].into(),
            }
        } else if is(what, "TAG") {
            Invalidation::Tag { tag: text(target)? }
        } else if is(what, "NAMESPACE") {
            Invalidation::Clear {
                namespace: Some(text(target)?),
            }
        } else {
            return Err(SYNTAX);
        }
    };
    let dropped = ctx
        .shared
        .keyspace
        .store()
        .invalidate(&invalidation)
        .map_err(|e| Error::new(format!("ERR {e}")))?;
    ctx.int(dropped as i64);
    Ok(())
}

pub(crate) fn namespace(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let name = ctx.shared.keyspace.route(&args[1]).name().to_owned();
    ctx.bulk(name.as_bytes());
    Ok(())
}

pub(crate) fn stats(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut given = Parse::new(args, 1);
    let only = given.next_arg();
    given.finish()?;
    let only = only.map(|name| text(name)).transpose()?;
    let stats = ctx.shared.keyspace.store().stats();
    if let Some(name) = &only {
        if !stats.namespaces.contains_key(name) {
            let error = StoreError::UnknownNamespace(name.clone());
            return Err(Error::new(format!("ERR {error}")));
        }
    }
    let key = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
    let map = stats
        .namespaces
        .iter()
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o == *name))
        .map(|(name, ns)| {
            let s = &ns.stats;
            let fields = vec![
                (key("keys"), Frame::Integer(s.entries as i64)),
                (key("bytes"), Frame::Integer(s.weighted_size as i64)),
                (
                    key("max_bytes"),
                    Frame::Integer(ns.limits.max_bytes.unwrap_or(0) as i64),
                ),
                (key("hits"), Frame::Integer(s.hits as i64)),
                (key("misses"), Frame::Integer(s.misses as i64)),
                (key("inserts"), Frame::Integer(s.inserts as i64)),
                (key("updates"), Frame::Integer(s.updates as i64)),
                (key("removals"), Frame::Integer(s.removals as i64)),
                (key("expirations"), Frame::Integer(s.expirations as i64)),
                (key("evictions"), Frame::Integer(s.evictions as i64)),
            ];
            (Frame::Bulk(Bytes::from(name.clone())), Frame::Map(fields))
        })
        .collect();
    ctx.frame(&Frame::Map(map));
    Ok(())
}
