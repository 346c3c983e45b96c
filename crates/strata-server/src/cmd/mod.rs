//! The commands, one module per family, each documenting its commands' wire format. A
//! command is a [`Spec`] in [`COMMANDS`]: its name, its arity as Redis writes it (`n` exactly
//! n arguments counting the name, `-n` at least n), flags, and the function that runs it.
//! A command reads the arguments its arity guarantees by position, and the rest (options,
//! their values, optional arguments) with the [`Parse`](parse::Parse) cursor. Every reply
//! and error is worded as Redis words it, because clients parse them.

mod connection;
mod expiry;
mod extensions;
mod keys;
mod parse;
mod server;
pub(crate) mod strings;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strata::store::Put;
use strata::{DefaultHashBuilder, InsertError};

use crate::client_memory::ClientAccount;
use crate::output::Output;
use crate::resp::{self, Frame, Protocol};
use crate::server::Shared;
use crate::session::ClientState;

/// An error reply: its whole text, code included (`ERR ...`, `WRONGTYPE ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub Cow<'static, str>);

impl Error {
    pub(crate) fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self(text.into())
    }
}

pub(crate) const SYNTAX: Error = Error(Cow::Borrowed("ERR syntax error"));
pub(crate) const NOT_INTEGER: Error =
    Error(Cow::Borrowed("ERR value is not an integer or out of range"));
pub(crate) const OOM: Error = Error(Cow::Borrowed(
    "OOM command not allowed when used memory > 'maxmemory'.",
));

/// What a command returns: `Ok` once its reply is written, or the error to reply with.
pub(crate) type CommandResult = Result<(), Error>;

/// What a command may touch: the server, its own client, and the reply buffer.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) client: &'a mut ClientState,
    pub(crate) out: &'a mut Output,
    /// The client's entry in the bound on all clients' buffers.
    pub(crate) account: &'a ClientAccount,
    /// What the client holds besides its replies (an unfinished command, arguments).
    pub(crate) held: usize,
}

/// The most a bulk string's framing adds to its bytes (`$`, up to 20 digits, two `\r\n`).
pub(crate) const BULK_FRAMING: usize = 25;

impl Ctx<'_> {
    /// Whether a reply element of `n` bytes may be written, having made room for it and
    /// reported the client's memory with it (see [`Output::room_for`]). `false` when it would
    /// take the reply past `output_buffer`, or the client was chosen to be closed to keep all
    /// clients' buffers within `max_client_memory`: the command should stop writing, and the
    /// connection is closed without sending the reply. Every element that may be large (a
    /// value, a key of `KEYS` or `SCAN`) is asked for, so a reply cannot pass either bound.
    pub(crate) fn room_for(&mut self, n: usize) -> bool {
        let limit = self.shared.limits.output_buffer;
        self.out.room_for(n, limit, self.held, self.account)
    }
    pub(crate) fn proto(&self) -> Protocol {
        self.client.proto
    }
    pub(crate) fn ok(&mut self) {
        resp::write_simple(&mut self.out.buf, "OK");
    }
    pub(crate) fn simple(&mut self, s: &str) {
        resp::write_simple(&mut self.out.buf, s);
    }
    /// A bulk string that may be large: written only if there is [room](Self::room_for).
    pub(crate) fn bulk(&mut self, bytes: &[u8]) {
        if self.room_for(bytes.len() + BULK_FRAMING) {
            resp::write_bulk(&mut self.out.buf, bytes);
        }
    }
    pub(crate) fn null(&mut self) {
        resp::write_null(&mut self.out.buf, self.client.proto);
    }
    pub(crate) fn int(&mut self, n: i64) {
        resp::write_integer(&mut self.out.buf, n);
    }
    pub(crate) fn array(&mut self, len: usize) {
        resp::write_array_header(&mut self.out.buf, len);
    }
    pub(crate) fn bulk_or_null(&mut self, value: Option<&[u8]>) {
        match value {
            Some(v) => self.bulk(v),
            None => self.null(),
        }
    }
    pub(crate) fn frame(&mut self, frame: &Frame) {
        frame.encode(self.client.proto, &mut self.out.buf);
    }
    /// `put` under the server's eviction policy: with `noeviction`, a write that needs room
    /// fails (OOM) instead of evicting.
    pub(crate) fn under_policy(&self, put: Put) -> Put {
        self.shared.keyspace.under_policy(put)
    }
}

/// Command flags, as `COMMAND` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Reads keys.
    Read,
    /// Writes keys.
    Write,
    /// Neither: connection and server commands.
    Other,
}

/// One command.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) arity: i32,
    pub(crate) kind: Kind,
    /// Positions of the first and last key and the step between keys (0, 0, 0 for none;
    /// a negative last counts from the end), as `COMMAND` reports them.
    pub(crate) keys: (i32, i32, i32),
    /// Allowed before `AUTH`.
    pub(crate) no_auth: bool,
    pub(crate) group: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) run: fn(&mut Ctx<'_>, &[Bytes]) -> CommandResult,
}

macro_rules! spec {
    ($name:literal, $arity:expr, $kind:ident, $keys:expr, $group:literal, $run:path, $summary:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            kind: Kind::$kind,
            keys: $keys,
            no_auth: false,
            group: $group,
            summary: $summary,
            run: $run,
        }
    };
    ($name:literal, $arity:expr, $kind:ident, $keys:expr, $group:literal, $run:path, $summary:literal, no_auth) => {
        Spec {
            no_auth: true,
            ..spec!($name, $arity, $kind, $keys, $group, $run, $summary)
        }
    };
}

const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);

/// Every command the server knows, one line each.
#[rustfmt::skip]
pub(crate) static COMMANDS: &[Spec] = &[
    // connection
    spec!("ping", -1, Other, NO_KEYS, "connection", connection::ping, "Returns the server's liveliness response."),
    spec!("echo", 2, Other, NO_KEYS, "connection", connection::echo, "Returns the given string."),
    spec!("hello", -1, Other, NO_KEYS, "connection", connection::hello, "Handshakes with the server: protocol version, authentication, client name.", no_auth),
    spec!("auth", -2, Other, NO_KEYS, "connection", connection::auth, "Authenticates the connection.", no_auth),
    spec!("select", 2, Other, NO_KEYS, "connection", connection::select, "Changes the selected database (only 0 exists)."),
    spec!("client", -2, Other, NO_KEYS, "connection", connection::client, "CLIENT SETNAME, GETNAME, SETINFO and ID."),
    spec!("quit", -1, Other, NO_KEYS, "connection", connection::quit, "Closes the connection.", no_auth),
    spec!("reset", 1, Other, NO_KEYS, "connection", connection::reset, "Resets the connection's state."),
    // strings
    spec!("get", 2, Read, ONE_KEY, "string", strings::get, "Returns the string value of a key."),
    spec!("set", -3, Write, ONE_KEY, "string", strings::set, "Sets the string value of a key, with EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET."),
    spec!("setnx", 3, Write, ONE_KEY, "string", strings::setnx, "Sets the value of a key only when it does not exist."),
    spec!("setex", 4, Write, ONE_KEY, "string", strings::setex, "Sets the value and the expiration in seconds of a key."),
    spec!("psetex", 4, Write, ONE_KEY, "string", strings::psetex, "Sets the value and the expiration in milliseconds of a key."),
    spec!("getdel", 2, Write, ONE_KEY, "string", strings::getdel, "Returns the value of a key and deletes it."),
    spec!("getex", -2, Write, ONE_KEY, "string", strings::getex, "Returns the value of a key and sets or removes its expiration."),
    spec!("mget", -2, Read, ALL_KEYS, "string", strings::mget, "Returns the values of one or more keys."),
    spec!("mset", -3, Write, (1, -1, 2), "string", strings::mset, "Sets the values of one or more keys."),
    spec!("incr", 2, Write, ONE_KEY, "string", strings::incr, "Increments the integer value of a key by one."),
    spec!("decr", 2, Write, ONE_KEY, "string", strings::decr, "Decrements the integer value of a key by one."),
    spec!("incrby", 3, Write, ONE_KEY, "string", strings::incrby, "Increments the integer value of a key by a number."),
    spec!("decrby", 3, Write, ONE_KEY, "string", strings::decrby, "Decrements the integer value of a key by a number."),
    spec!("append", 3, Write, ONE_KEY, "string", strings::append, "Appends a string to the value of a key."),
    spec!("strlen", 2, Read, ONE_KEY, "string", strings::strlen, "Returns the length of a string value."),
    // keys
    spec!("del", -2, Write, ALL_KEYS, "generic", keys::del, "Deletes one or more keys."),
    spec!("unlink", -2, Write, ALL_KEYS, "generic", keys::del, "Deletes one or more keys."),
    spec!("exists", -2, Read, ALL_KEYS, "generic", keys::exists, "Counts how many of the given keys exist."),
    spec!("type", 2, Read, ONE_KEY, "generic", keys::type_, "Returns the type of the value of a key."),
    spec!("scan", -2, Read, NO_KEYS, "generic", keys::scan, "Iterates over the keys (MATCH, COUNT, TYPE)."),
    spec!("keys", 2, Read, NO_KEYS, "generic", keys::keys, "Returns every key matching a pattern."),
    // expiry
    spec!("expire", -3, Write, ONE_KEY, "generic", expiry::expire, "Sets a key's time to live in seconds (NX/XX/GT/LT)."),
    spec!("pexpire", -3, Write, ONE_KEY, "generic", expiry::pexpire, "Sets a key's time to live in milliseconds (NX/XX/GT/LT)."),
    spec!("expireat", -3, Write, ONE_KEY, "generic", expiry::expireat, "Sets a key's expiration to a Unix time in seconds (NX/XX/GT/LT)."),
    spec!("pexpireat", -3, Write, ONE_KEY, "generic", expiry::pexpireat, "Sets a key's expiration to a Unix time in milliseconds (NX/XX/GT/LT)."),
    spec!("ttl", 2, Read, ONE_KEY, "generic", expiry::ttl, "Returns a key's time to live in seconds."),
    spec!("pttl", 2, Read, ONE_KEY, "generic", expiry::pttl, "Returns a key's time to live in milliseconds."),
    spec!("persist", 2, Write, ONE_KEY, "generic", expiry::persist, "Removes a key's expiration."),
    // server
    spec!("dbsize", 1, Read, NO_KEYS, "server", server::dbsize, "Returns the number of keys."),
    spec!("flushdb", -1, Write, NO_KEYS, "server", server::flush, "Removes every key."),
    spec!("flushall", -1, Write, NO_KEYS, "server", server::flush, "Removes every key."),
    spec!("info", -1, Other, NO_KEYS, "server", server::info, "Returns information and statistics about the server."),
    spec!("config", -2, Other, NO_KEYS, "server", server::config, "CONFIG GET and SET (maxmemory, maxmemory-policy)."),
    spec!("command", -1, Other, NO_KEYS, "server", server::command, "Returns details about the commands (COUNT, DOCS, INFO)."),
    // strata's own
    spec!("strata.settags", -3, Write, ONE_KEY, "strata", extensions::settags, "Replaces the tags of a key: STRATA.SETTAGS key tag [tag ...]."),
    spec!("strata.invalidate", -3, Write, NO_KEYS, "strata", extensions::invalidate, "Drops keys by KEY, PREFIX, PATTERN, TAG, NAMESPACE or EVENT name [param value ...]."),
    spec!("strata.namespace", 2, Other, ONE_KEY, "strata", extensions::namespace, "Returns the namespace a key lives in."),
    spec!("strata.stats", -1, Other, NO_KEYS, "strata", extensions::stats, "Returns the counters of every namespace, or of one."),
];

/// The commands by name, hashed with foldhash (a few nanoseconds for a short name).
static BY_NAME: LazyLock<HashMap<&'static [u8], &'static Spec, DefaultHashBuilder>> =
    LazyLock::new(|| {
        COMMANDS
            .iter()
            .map(|spec| (spec.name.as_bytes(), spec))
            .collect()
    });

/// The command called `name` (any case).
#[inline]
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    BY_NAME.get(&*lower).copied()
}

/// Where the keys are among a command's `len` arguments (name included), as its spec says;
/// positions past the end (a wrong arity, left to the command's error) are left out.
pub(crate) fn key_positions(spec: &Spec, len: usize) -> impl Iterator<Item = usize> {
    let (first, last, step) = spec.keys;
    let len = len as i32;
    let last = if last < 0 {
        len + last
    } else {
        last.min(len - 1)
    };
    // No keys (0, 0, 0): an empty range.
    let (first, last) = if first > 0 && step > 0 {
        (first, last)
    } else {
        (1, 0)
    };
    (first..=last)
        .step_by(step.max(1) as usize)
        .map(|at| at as usize)
}

/// Whether a command's name is the first word of an HTTP request or one of its headers:
/// `POST` (a web page can make a browser send one to any port, with a body it chooses) or
/// `Host:` (every HTTP/1.1 request has one). Redis has the same two commands for the same
/// reason; the connection is closed before anything else it sent is run.
pub(crate) fn is_cross_protocol(name: &[u8]) -> bool {
    is(name, "POST") || is(name, "HOST:")
}

/// Runs one command (`args[0]` is its name), writing its reply.
pub(crate) fn execute(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let Some(name) = args.first() else { return };
    let Some(spec) = lookup(name) else {
        // As Redis words it: arguments quoted, while fewer than 128 bytes of them are
        // written, each cut to the room left.
        let mut text = format!(
            "ERR unknown command '{}', with args beginning with: ",
            printable(name, 128)
        );
        let mut listed = String::new();
        for arg in args.iter().skip(1) {
            if listed.len() >= 128 {
                break;
            }
            listed.push_str(&format!("'{}' ", printable(arg, 128 - listed.len())));
        }
        text.push_str(&listed);
        return reply_error(ctx, &Error::new(text));
    };
    ctx.client.commands += 1;
    if !spec.no_auth && !ctx.client.authenticated {
        return reply_error(ctx, &Error::new("NOAUTH Authentication required."));
    }
    let arity_ok = if spec.arity >= 0 {
        args.len() == spec.arity as usize
    } else {
        args.len() >= spec.arity.unsigned_abs() as usize
    };
    if !arity_ok {
        let text = format!("ERR wrong number of arguments for '{}' command", spec.name);
        return reply_error(ctx, &Error::new(text));
    }
    if let Err(e) = (spec.run)(ctx, args) {
        reply_error(ctx, &e);
    }
}

fn reply_error(ctx: &mut Ctx<'_>, error: &Error) {
    resp::write_error(&mut ctx.out.buf, &error.0);
}

/// Text for an error message: at most `max` bytes, lossy UTF-8.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// An argument as an integer, Redis-strict: no spaces, no `+`, no leading zeros.
pub(crate) fn int(arg: &[u8]) -> Result<i64, Error> {
    resp::parse_integer(arg).ok_or(NOT_INTEGER)
}

/// Whether `arg` is `word`, ignoring case.
#[inline]
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The longest time to live strata keeps: 2^63 - 1 nanoseconds, about 292 years. Deadlines
/// are nanoseconds on a 64-bit clock that starts with the process (about 584 years in all);
/// half of it is for TTLs, the other half for the time the server has been up and a
/// namespace's stale window. Redis keeps milliseconds and so accepts up to about 292
/// million years; a TTL or a deadline further away than this is refused with Redis's
/// `invalid expire time` rather than stored as something else (no expiry, or a shorter one).
pub(crate) const MAX_TTL: Duration = Duration::from_nanos(i64::MAX as u64);

/// When a key should expire, as the commands give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// In this long (positive).
    In(Duration),
    /// At a time already past: the key goes at once.
    Past,
}

impl Expiry {
    /// From a deadline in Unix milliseconds, measured from now to the nanosecond: the same
    /// deadline given twice must come out the same (for `GT` and `LT`), whatever part of a
    /// millisecond passed in between.
    pub(crate) fn at_millis(at: i64) -> Self {
        let left = i128::from(at) * 1_000_000 - unix_nanos();
        if left <= 0 {
            return Expiry::Past;
        }
        let secs = u64::try_from(left / 1_000_000_000).unwrap_or(u64::MAX);
        Expiry::In(Duration::new(secs, (left % 1_000_000_000) as u32))
    }
}

/// How a command's time argument is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeArg {
    /// Milliseconds per unit: 1000 for seconds (`EX`, `EXPIRE`), 1 for milliseconds.
    pub(crate) unit_ms: i64,
    /// A Unix time (`EXAT`, `EXPIREAT`) rather than a time from now.
    pub(crate) absolute: bool,
    /// Zero and negative times are errors (`SET`'s options, `SETEX`, `GETEX`) rather than
    /// times already past, which remove the key (`EXPIRE` and its kin).
    pub(crate) positive: bool,
}

impl TimeArg {
    /// `SET`'s and `GETEX`'s time options, by name.
    pub(crate) fn option(name: &[u8]) -> Option<TimeArg> {
        let (unit_ms, absolute) = match () {
            () if is(name, "EX") => (1000, false),
            () if is(name, "PX") => (1, false),
            () if is(name, "EXAT") => (1000, true),
            () if is(name, "PXAT") => (1, true),
            () => return None,
        };
        Some(TimeArg {
            unit_ms,
            absolute,
            positive: true,
        })
    }

    /// Reads `arg`, checked as Redis checks it (`command` names the command in the error),
    /// and refused the same way when further away than [`MAX_TTL`].
    pub(crate) fn read(self, arg: &[u8], command: &str) -> Result<Expiry, Error> {
        let n = int(arg)?;
        let invalid = || Error::new(format!("ERR invalid expire time in '{command}' command"));
        if n <= 0 && self.positive {
            return Err(invalid());
        }
        let ms = n.checked_mul(self.unit_ms).ok_or_else(invalid)?;
        let expiry = if self.absolute {
            Expiry::at_millis(ms)
        } else if ms <= 0 {
            Expiry::Past
        } else {
            Expiry::In(Duration::from_millis(ms as u64))
        };
        match expiry {
            Expiry::In(left) if left > MAX_TTL => Err(invalid()),
            representable => Ok(representable),
        }
    }
}

/// The reply to a write the engine refused.
pub(crate) fn refused(namespace: &str, error: &InsertError) -> Error {
    match error {
        InsertError::NoRoom => OOM,
        InsertError::TooLarge { weight, limit } => Error::new(format!(
            "ERR value too large for namespace '{namespace}': the entry weighs {weight} bytes, \
             at most {limit} fit"
        )),
        other => Error::new(format!("ERR {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_to_live_are_kept_exactly_up_to_the_longest_the_clock_holds() {
        let ex = TimeArg::option(b"EX").expect("EX");
        let px = TimeArg::option(b"PX").expect("PX");
        let most = MAX_TTL.as_secs();
        assert_eq!(most, 9_223_372_036);
        let read = |time: TimeArg, n: u64| time.read(n.to_string().as_bytes(), "set");
        assert_eq!(
            read(ex, most),
            Ok(Expiry::In(Duration::from_secs(most))),
            "exact at the limit"
        );
        assert_eq!(
            read(px, most * 1000),
            Ok(Expiry::In(Duration::from_millis(most * 1000)))
        );
        let invalid = Err(Error::new("ERR invalid expire time in 'set' command"));
        assert_eq!(read(ex, most + 1), invalid);
        // Past u64 nanoseconds: once stored as "no expiry".
        assert_eq!(read(ex, 18_446_744_074), invalid);
        let expire = TimeArg {
            unit_ms: 1000,
            absolute: false,
            positive: false,
        };
        // Once silently clamped.
        assert_eq!(
            expire.read(b"4611686018427387", "expire"),
            Err(Error::new("ERR invalid expire time in 'expire' command"))
        );
        // A deadline that far away, too; one in the past is still "remove the key".
        let exat = TimeArg::option(b"EXAT").expect("EXAT");
        let far = (unix_nanos() / 1_000_000_000) as u64 + most + 10;
        assert_eq!(read(exat, far), invalid);
        assert_eq!(read(exat, 1), Ok(Expiry::Past));
    }

    #[test]
    fn every_command_is_found_by_its_name_in_any_case() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "names are unique");
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            for name in [spec.name.to_string(), spec.name.to_ascii_uppercase()] {
                let found = lookup(name.as_bytes()).map(|s| s.name);
                assert_eq!(found, Some(spec.name));
            }
        }
        assert!(lookup(b"gett").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(&[b'x'; 40]).is_none());
    }
}
