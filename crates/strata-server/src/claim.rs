//! `SET key value NX` and `SETNX` on a key of a shared namespace, decided for the whole fleet:
//! Redis stores the value only if no server's value is there ([`Namespace::claim`]), so of
//! clients racing through different servers exactly one gets `OK` (a lock, a webhook's
//! idempotency key). The session holds such a command ([`Step::Claim`](crate::session::Step))
//! until the connection has awaited the decision, then answers it here.

use bytes::Bytes;
use strata::store::{ClaimError, Namespace, Put};
use strata::Inserted;

use crate::cmd::strings::{Condition, SetOptions};
use crate::cmd::{self, Spec};
use crate::keyspace::{Keyspace, Value};
use crate::output::Output;
use crate::resp::{self, Protocol};

/// A claim to make, and how its command answers.
pub(crate) struct Claim {
    ns: Namespace<Value>,
    key: Bytes,
    value: Value,
    put: Put,
    reply: Reply,
}

/// How the command answers the decision.
#[derive(Clone, Copy)]
enum Reply {
    /// `SET ... NX`: `OK` or nil; with `GET`, the value that was there or nil.
    Set { old: bool },
    /// `SETNX`: 1 or 0.
    SetNx,
}

impl Claim {
    /// The claim the command `args` makes, if it is a `SET ... NX` (with a TTL in the future,
    /// or none) or a `SETNX` of a key in a shared namespace. Anything else (a syntax error
    /// included, which the command itself answers) runs as usual.
    pub(crate) fn of(keyspace: &Keyspace, spec: &Spec, args: &[Bytes]) -> Option<Claim> {
        let (put, reply) = match spec.name {
            "setnx" if args.len() == 3 => (Put::new(), Reply::SetNx),
            "set" if args.len() >= 4 => match SetOptions::parse(args) {
                Ok(options) if options.condition == Condition::IfAbsent && !options.past => (
                    options.put,
                    Reply::Set {
                        old: options.want_old,
                    },
                ),
                _ => return None,
            },
            _ => return None,
        };
        let ns = keyspace.route(&args[1]);
        ns.is_shared().then(|| Claim {
            ns: ns.clone(),
            key: args[1].clone(),
            value: Box::from(&args[2][..]),
            put: keyspace.under_policy(put),
            reply,
        })
    }

    /// Asks the fleet, and writes the command's answer to `out`.
    pub(crate) async fn decide(self, out: &mut Output, proto: Protocol) {
        let Claim {
            ns,
            key,
            value,
            put,
            reply,
        } = self;
        let decided = ns.claim(&key[..], value, put).await;
        let buf = &mut out.buf;
        match (decided, reply) {
            (Ok(Inserted::Inserted), Reply::Set { old: false }) => resp::write_simple(buf, "OK"),
            (Ok(Inserted::Inserted), Reply::Set { old: true }) => resp::write_null(buf, proto),
            (Ok(Inserted::Existing(_)), Reply::Set { old: false }) => resp::write_null(buf, proto),
            (Ok(Inserted::Existing(old)), Reply::Set { old: true }) => resp::write_bulk(buf, &old),
            (Ok(inserted), Reply::SetNx) => {
                resp::write_integer(buf, i64::from(matches!(inserted, Inserted::Inserted)))
            }
            (Err(ClaimError::Insert(e)), _) => {
                resp::write_error(buf, &cmd::refused(ns.name(), &e).0)
            }
            (Err(_), _) => resp::write_error(
                buf,
                "TRYAGAIN the shared tier (Redis) could not decide this NX write; nothing was \
                 written",
            ),
        }
    }
}
