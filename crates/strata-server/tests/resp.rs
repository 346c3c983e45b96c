//! `strata serve` against the Redis protocol: every command it serves, checked for Redis's
//! replies and Redis's exact error wording (clients parse both), under RESP2 and RESP3.
//!
//! `STRATA_TEST_SERVER=redis cargo test -p strata-server --test resp` runs the same tests
//! against a real redis-server 7, to prove they state what Redis does; strata-only tests
//! (configuration, the single database) are skipped there.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, raw, raw_with_close, Server};
use redis::{Connection, FromRedisValue, Value};

/// A command from string arguments.
fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Runs a command that must succeed, converting its reply.
fn q<T: FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    cmd(args)
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Runs a command that must fail, returning the error as sent: `"CODE detail"`.
fn e(con: &mut Connection, args: &[&str]) -> String {
    common::err_text(cmd(args).query::<Value>(con))
}

/// `q` for a reply that is a string (or nil).
fn s(con: &mut Connection, args: &[&str]) -> Option<String> {
    q(con, args)
}

/// `q` for an integer reply.
fn i(con: &mut Connection, args: &[&str]) -> i64 {
    q(con, args)
}

fn ok(con: &mut Connection, args: &[&str]) {
    assert_eq!(q::<Value>(con, args), Value::Okay, "{args:?}");
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn assert_in<T: PartialOrd + std::fmt::Debug>(
    v: T,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) {
    assert!(range.contains(&v), "{what}: {v:?} not in {range:?}");
}

/// Each test twice: `NAME::resp2` and `NAME::resp3`, each on a fresh server with a
/// connection speaking that protocol.
macro_rules! both {
    ($(fn $name:ident($server:ident, $con:ident, $resp3:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_variables)]
            fn run($server: &Server, $con: &mut Connection, $resp3: bool) $body

            #[test]
            fn resp2() {
                let server = Server::start();
                let mut con = server.con(false);
                run(&server, &mut con, false);
            }

            #[test]
            fn resp3() {
                let server = Server::start();
                let mut con = server.con(true);
                run(&server, &mut con, true);
            }
        }
    )*};
}

const ARITY: &str = "ERR wrong number of arguments for";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const EXPIRE_OPTS: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";

both! {
    fn ping(server, con, resp3) {
        assert_eq!(q::<Value>(con, &["PING"]), Value::SimpleString("PONG".into()));
        assert_eq!(q::<Value>(con, &["PING", "hello"]), Value::BulkString(b"hello".to_vec()));
        assert_eq!(e(con, &["PING", "a", "b"]), format!("{ARITY} 'ping' command"));
        // Exactly, on the wire.
        let mut raw = server.raw_con();
        if resp3 {
            raw.cmd(&["HELLO", "3"]);
        }
        assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
        assert_eq!(raw.cmd(&["ping", "x y"]), b"$3\r\nx y\r\n");
    }

    fn echo(server, con, resp3) {
        assert_eq!(s(con, &["ECHO", "hi there"]).as_deref(), Some("hi there"));
        assert_eq!(s(con, &["ECHO", ""]).as_deref(), Some(""));
        assert_eq!(e(con, &["ECHO"]), format!("{ARITY} 'echo' command"));
        assert_eq!(e(con, &["ECHO", "a", "b"]), format!("{ARITY} 'echo' command"));
    }

    fn auth_without_password(server, con, resp3) {
        assert_eq!(
            e(con, &["AUTH", "secret"]),
            "ERR AUTH <password> called without any password configured for the default \
             user. Are you sure your configuration is correct?"
        );
        assert_eq!(e(con, &["AUTH"]), format!("{ARITY} 'auth' command"));
        assert_eq!(e(con, &["AUTH", "a", "b", "c"]), SYNTAX);
        // The connection still works.
        assert_eq!(q::<String>(con, &["PING"]), "PONG");
    }

    fn select(server, con, resp3) {
        ok(con, &["SELECT", "0"]);
        assert_eq!(e(con, &["SELECT", "abc"]), NOT_INT);
        assert_eq!(e(con, &["SELECT", "16"]), "ERR DB index is out of range");
        assert_eq!(e(con, &["SELECT"]), format!("{ARITY} 'select' command"));
        if server.is_strata() {
            // strata has the one database.
            assert_eq!(e(con, &["SELECT", "1"]), "ERR DB index is out of range");
        } else {
            ok(con, &["SELECT", "1"]);
        }
    }

    fn client(server, con, resp3) {
        assert_eq!(s(con, &["CLIENT", "GETNAME"]), None);
        ok(con, &["CLIENT", "SETNAME", "worker-1"]);
        assert_eq!(s(con, &["CLIENT", "GETNAME"]).as_deref(), Some("worker-1"));
        assert_eq!(
            e(con, &["CLIENT", "SETNAME", "a b"]),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(s(con, &["CLIENT", "GETNAME"]).as_deref(), Some("worker-1"));
        // An empty name clears it.
        ok(con, &["CLIENT", "SETNAME", ""]);
        assert_eq!(s(con, &["CLIENT", "GETNAME"]), None);

        let id = i(con, &["CLIENT", "ID"]);
        assert!(id > 0);
        assert_eq!(i(con, &["CLIENT", "ID"]), id, "stable per connection");
        let other = i(&mut server.con(resp3), &["CLIENT", "ID"]);
        assert_ne!(other, id, "unique per connection");

        // CLIENT SETINFO arrived in Redis 7.2; a 7.0 server does not know it.
        match cmd(&["CLIENT", "SETINFO", "lib-name", "x"]).query::<Value>(con) {
            Ok(v) => assert_eq!(v, Value::Okay),
            Err(err) => {
                assert!(!server.is_strata(), "CLIENT SETINFO: {err}");
                assert_eq!(
                    common::err_text::<()>(Err(err)),
                    "ERR unknown subcommand 'SETINFO'. Try CLIENT HELP."
                );
            }
        }
        if server.is_strata() {
            ok(con, &["CLIENT", "SETINFO", "lib-ver", "1.2.3"]);
        }
        assert_eq!(
            e(con, &["CLIENT", "NOSUCH"]),
            "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."
        );
    }

    fn set_get(server, con, resp3) {
        assert_eq!(s(con, &["GET", "k"]), None);
        ok(con, &["SET", "k", "v1"]);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v1"));
        ok(con, &["SET", "k", "v2"]);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v2"));
        assert_eq!(i(con, &["TTL", "k"]), -1);
        // Option names are case-insensitive, and so are command names.
        ok(con, &["set", "k", "v3", "ex", "100"]);
        assert_eq!(s(con, &["get", "k"]).as_deref(), Some("v3"));
        assert_eq!(e(con, &["GET"]), format!("{ARITY} 'get' command"));
        assert_eq!(e(con, &["GET", "a", "b"]), format!("{ARITY} 'get' command"));
        assert_eq!(e(con, &["SET", "k"]), format!("{ARITY} 'set' command"));
    }

    fn set_expiry_options(server, con, resp3) {
        ok(con, &["SET", "k", "v", "EX", "100"]);
        assert_in(i(con, &["TTL", "k"]), 99..=100, "EX 100");
        ok(con, &["SET", "k", "v", "PX", "100000"]);
        assert_in(i(con, &["PTTL", "k"]), 98_000..=100_000, "PX 100000");
        let at = (now_secs() + 100).to_string();
        ok(con, &["SET", "k", "v", "EXAT", &at]);
        assert_in(i(con, &["TTL", "k"]), 98..=100, "EXAT now+100");
        let at = (now_millis() + 100_000).to_string();
        ok(con, &["SET", "k", "v", "PXAT", &at]);
        assert_in(i(con, &["PTTL", "k"]), 98_000..=100_000, "PXAT now+100s");
        // A plain SET drops the TTL; KEEPTTL keeps it.
        ok(con, &["SET", "k", "v", "EX", "100"]);
        ok(con, &["SET", "k", "v2", "KEEPTTL"]);
        assert_in(i(con, &["TTL", "k"]), 99..=100, "KEEPTTL");
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v2"));
        ok(con, &["SET", "k", "v3"]);
        assert_eq!(i(con, &["TTL", "k"]), -1);
        // A time already past: SET succeeds and the key is gone.
        ok(con, &["SET", "gone", "v", "EXAT", "1"]);
        assert_eq!(s(con, &["GET", "gone"]), None);
        assert_eq!(i(con, &["EXISTS", "gone"]), 0);
        ok(con, &["SET", "gone", "v", "PXAT", "1"]);
        assert_eq!(i(con, &["EXISTS", "gone"]), 0);
    }

    fn set_conditions_and_get(server, con, resp3) {
        // NX: only when missing; the reply is nil when not set.
        ok(con, &["SET", "k", "v1", "NX"]);
        assert_eq!(q::<Value>(con, &["SET", "k", "v2", "NX"]), Value::Nil);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v1"));
        // XX: only when present.
        assert_eq!(q::<Value>(con, &["SET", "new", "v", "XX"]), Value::Nil);
        assert_eq!(i(con, &["EXISTS", "new"]), 0);
        ok(con, &["SET", "k", "v2", "XX"]);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v2"));
        // GET: the old value (nil when there was none), and the SET happens.
        assert_eq!(s(con, &["SET", "k", "v3", "GET"]).as_deref(), Some("v2"));
        assert_eq!(s(con, &["SET", "g", "v", "GET"]), None);
        assert_eq!(s(con, &["GET", "g"]).as_deref(), Some("v"));
        // GET with NX (allowed since 7.0): the old value, and nothing set when it existed.
        assert_eq!(s(con, &["SET", "k", "v4", "NX", "GET"]).as_deref(), Some("v3"));
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v3"));
        assert_eq!(s(con, &["SET", "n", "v", "GET", "NX"]), None);
        assert_eq!(s(con, &["GET", "n"]).as_deref(), Some("v"));
        // GET with XX: nil and nothing set when missing.
        assert_eq!(s(con, &["SET", "x", "v", "XX", "GET"]), None);
        assert_eq!(i(con, &["EXISTS", "x"]), 0);
        assert_eq!(s(con, &["SET", "k", "v5", "XX", "GET", "EX", "100"]).as_deref(), Some("v3"));
        assert_in(i(con, &["TTL", "k"]), 99..=100, "XX GET EX");
    }

    fn set_errors(server, con, resp3) {
        let invalid = "ERR invalid expire time in 'set' command";
        for args in [
            ["EX", "0"],
            ["EX", "-1"],
            ["PX", "0"],
            ["PX", "-100"],
            ["EXAT", "0"],
            ["PXAT", "0"],
            ["EX", "9999999999999999"],
            ["PX", "9223372036854775807"],
        ] {
            assert_eq!(e(con, &["SET", "k", "v", args[0], args[1]]), invalid, "{args:?}");
        }
        assert_eq!(e(con, &["SET", "k", "v", "EX", "abc"]), NOT_INT);
        assert_eq!(e(con, &["SET", "k", "v", "EX", "1.5"]), NOT_INT);
        for args in [
            &["NX", "XX"][..],
            &["EX", "10", "PX", "100"],
            &["KEEPTTL", "EX", "10"],
            &["EX", "10", "KEEPTTL"],
            &["PERSIST"],
            &["EX"],
            &["FOO"],
            &["GET", "x"],
        ] {
            let mut full = vec!["SET", "k", "v"];
            full.extend_from_slice(args);
            assert_eq!(e(con, &full), SYNTAX, "{args:?}");
        }
        assert_eq!(i(con, &["EXISTS", "k"]), 0, "no failed SET wrote");
        // A repeated option is no error: the last value wins (and is checked).
        ok(con, &["SET", "k", "v", "EX", "10", "EX", "200"]);
        assert_in(i(con, &["TTL", "k"]), 199..=200, "EX 10 EX 200");
        assert_eq!(
            e(con, &["SET", "k", "v", "EX", "20", "EX", "0"]),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(q::<Value>(con, &["SET", "k", "x", "NX", "NX"]), Value::Nil);
        assert_eq!(s(con, &["SET", "k", "w", "GET", "GET"]).as_deref(), Some("v"));
        assert_eq!(s(con, &["GETEX", "k", "EX", "10", "EX", "300"]).as_deref(), Some("w"));
        assert_in(i(con, &["TTL", "k"]), 299..=300, "GETEX EX 10 EX 300");
    }

    fn setnx_setex_psetex(server, con, resp3) {
        assert_eq!(i(con, &["SETNX", "k", "v1"]), 1);
        assert_eq!(i(con, &["SETNX", "k", "v2"]), 0);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v1"));
        assert_eq!(e(con, &["SETNX", "k"]), format!("{ARITY} 'setnx' command"));

        ok(con, &["SETEX", "e", "100", "v"]);
        assert_eq!(s(con, &["GET", "e"]).as_deref(), Some("v"));
        assert_in(i(con, &["TTL", "e"]), 99..=100, "SETEX");
        assert_eq!(e(con, &["SETEX", "e", "0", "v"]), "ERR invalid expire time in 'setex' command");
        assert_eq!(e(con, &["SETEX", "e", "-5", "v"]), "ERR invalid expire time in 'setex' command");
        assert_eq!(e(con, &["SETEX", "e", "abc", "v"]), NOT_INT);
        assert_eq!(e(con, &["SETEX", "e", "10"]), format!("{ARITY} 'setex' command"));

        ok(con, &["PSETEX", "p", "100000", "v"]);
        assert_in(i(con, &["PTTL", "p"]), 98_000..=100_000, "PSETEX");
        assert_eq!(e(con, &["PSETEX", "p", "0", "v"]), "ERR invalid expire time in 'psetex' command");
        assert_eq!(e(con, &["PSETEX", "p", "x", "v"]), NOT_INT);
    }

    fn getdel(server, con, resp3) {
        ok(con, &["SET", "k", "v"]);
        assert_eq!(s(con, &["GETDEL", "k"]).as_deref(), Some("v"));
        assert_eq!(i(con, &["EXISTS", "k"]), 0);
        assert_eq!(s(con, &["GETDEL", "k"]), None);
        assert_eq!(e(con, &["GETDEL"]), format!("{ARITY} 'getdel' command"));
    }

    fn getex(server, con, resp3) {
        assert_eq!(s(con, &["GETEX", "missing", "EX", "10"]), None);
        assert_eq!(i(con, &["EXISTS", "missing"]), 0);
        ok(con, &["SET", "k", "v"]);
        // No option: just GET, the TTL untouched.
        assert_eq!(s(con, &["GETEX", "k"]).as_deref(), Some("v"));
        assert_eq!(i(con, &["TTL", "k"]), -1);
        assert_eq!(s(con, &["GETEX", "k", "EX", "100"]).as_deref(), Some("v"));
        assert_in(i(con, &["TTL", "k"]), 99..=100, "GETEX EX");
        assert_eq!(s(con, &["GETEX", "k"]).as_deref(), Some("v"));
        assert_in(i(con, &["TTL", "k"]), 99..=100, "GETEX keeps the TTL");
        assert_eq!(s(con, &["GETEX", "k", "PERSIST"]).as_deref(), Some("v"));
        assert_eq!(i(con, &["TTL", "k"]), -1);
        assert_eq!(s(con, &["GETEX", "k", "PX", "100000"]).as_deref(), Some("v"));
        assert_in(i(con, &["PTTL", "k"]), 98_000..=100_000, "GETEX PX");
        let at = (now_secs() + 200).to_string();
        assert_eq!(s(con, &["GETEX", "k", "EXAT", &at]).as_deref(), Some("v"));
        assert_in(i(con, &["TTL", "k"]), 198..=200, "GETEX EXAT");
        let at = (now_millis() + 300_000).to_string();
        assert_eq!(s(con, &["GETEX", "k", "PXAT", &at]).as_deref(), Some("v"));
        assert_in(i(con, &["PTTL", "k"]), 298_000..=300_000, "GETEX PXAT");
        // A time in the past: the value comes back and the key is gone.
        assert_eq!(s(con, &["GETEX", "k", "PXAT", "1"]).as_deref(), Some("v"));
        assert_eq!(i(con, &["EXISTS", "k"]), 0);

        ok(con, &["SET", "k", "v"]);
        let invalid = "ERR invalid expire time in 'getex' command";
        assert_eq!(e(con, &["GETEX", "k", "EX", "0"]), invalid);
        assert_eq!(e(con, &["GETEX", "k", "EX", "-5"]), invalid);
        assert_eq!(e(con, &["GETEX", "k", "PX", "0"]), invalid);
        assert_eq!(e(con, &["GETEX", "k", "EX", "abc"]), NOT_INT);
        assert_eq!(e(con, &["GETEX", "k", "PERSIST", "EX", "10"]), SYNTAX);
        assert_eq!(e(con, &["GETEX", "k", "EX", "10", "PX", "10"]), SYNTAX);
        assert_eq!(e(con, &["GETEX", "k", "EX"]), SYNTAX);
        assert_eq!(e(con, &["GETEX", "k", "FOO"]), SYNTAX);
        assert_eq!(e(con, &["GETEX"]), format!("{ARITY} 'getex' command"));
        assert_eq!(i(con, &["TTL", "k"]), -1, "failed GETEX changed nothing");
    }

    fn mget_mset(server, con, resp3) {
        ok(con, &["MSET", "a", "1", "b", "2", "c", "3"]);
        let got: Vec<Option<String>> = q(con, &["MGET", "a", "missing", "c", "b", "a"]);
        assert_eq!(
            got,
            [Some("1"), None, Some("3"), Some("2"), Some("1")].map(|v| v.map(String::from))
        );
        // A later pair wins.
        ok(con, &["MSET", "a", "x", "a", "y"]);
        assert_eq!(s(con, &["GET", "a"]).as_deref(), Some("y"));
        // MSET drops a TTL.
        ok(con, &["SET", "t", "v", "EX", "100"]);
        ok(con, &["MSET", "t", "w"]);
        assert_eq!(i(con, &["TTL", "t"]), -1);
        assert_eq!(e(con, &["MSET", "a"]), format!("{ARITY} 'mset' command"));
        assert_eq!(e(con, &["MSET", "a", "1", "b"]), format!("{ARITY} 'mset' command"));
        assert_eq!(e(con, &["MGET"]), format!("{ARITY} 'mget' command"));
        // On the wire: RESP3 nulls are `_`.
        let mut raw = server.raw_con();
        if resp3 {
            raw.cmd(&["HELLO", "3"]);
            assert_eq!(raw.cmd(&["MGET", "b", "nope"]), b"*2\r\n$1\r\n2\r\n_\r\n");
        } else {
            assert_eq!(raw.cmd(&["MGET", "b", "nope"]), b"*2\r\n$1\r\n2\r\n$-1\r\n");
        }
    }

    fn incr_decr(server, con, resp3) {
        assert_eq!(i(con, &["INCR", "n"]), 1);
        assert_eq!(i(con, &["INCR", "n"]), 2);
        assert_eq!(i(con, &["INCRBY", "n", "10"]), 12);
        assert_eq!(i(con, &["INCRBY", "n", "-3"]), 9);
        assert_eq!(i(con, &["DECR", "n"]), 8);
        assert_eq!(i(con, &["DECRBY", "n", "10"]), -2);
        assert_eq!(i(con, &["DECRBY", "n", "-5"]), 3);
        assert_eq!(s(con, &["GET", "n"]).as_deref(), Some("3"));
        assert_eq!(i(con, &["DECR", "fresh"]), -1);
        assert_eq!(i(con, &["INCRBY", "fresh2", "-7"]), -7);
        // An INCR keeps the TTL.
        ok(con, &["SET", "t", "5", "EX", "100"]);
        assert_eq!(i(con, &["INCR", "t"]), 6);
        assert_in(i(con, &["TTL", "t"]), 99..=100, "INCR keeps the TTL");

        ok(con, &["SET", "max", "9223372036854775807"]);
        assert_eq!(e(con, &["INCR", "max"]), OVERFLOW);
        assert_eq!(e(con, &["INCRBY", "max", "1"]), OVERFLOW);
        assert_eq!(i(con, &["DECRBY", "max", "1"]), 9223372036854775806);
        ok(con, &["SET", "min", "-9223372036854775808"]);
        assert_eq!(e(con, &["DECR", "min"]), OVERFLOW);
        assert_eq!(e(con, &["INCRBY", "min", "-1"]), OVERFLOW);
        ok(con, &["SET", "five", "5"]);
        assert_eq!(e(con, &["INCRBY", "five", "9223372036854775807"]), OVERFLOW);
        // Negating i64::MIN has its own message.
        assert_eq!(
            e(con, &["DECRBY", "five", "-9223372036854775808"]),
            "ERR decrement would overflow"
        );
        assert_eq!(s(con, &["GET", "five"]).as_deref(), Some("5"));

        // Strict integers only: no spaces, signs other than '-', leading zeros or decimals.
        for bad in ["abc", " 1", "1 ", "01", "+1", "1.5", "", "99999999999999999999"] {
            ok(con, &["SET", "s", bad]);
            assert_eq!(e(con, &["INCR", "s"]), NOT_INT, "INCR on {bad:?}");
            assert_eq!(s(con, &["GET", "s"]).as_deref(), Some(bad));
        }
        assert_eq!(e(con, &["INCRBY", "n", "abc"]), NOT_INT);
        assert_eq!(e(con, &["INCRBY", "n", "1.5"]), NOT_INT);
        assert_eq!(e(con, &["DECRBY", "n", ""]), NOT_INT);
        assert_eq!(e(con, &["INCR"]), format!("{ARITY} 'incr' command"));
        assert_eq!(e(con, &["INCRBY", "n"]), format!("{ARITY} 'incrby' command"));
    }

    fn append_strlen(server, con, resp3) {
        assert_eq!(i(con, &["STRLEN", "k"]), 0);
        assert_eq!(i(con, &["APPEND", "k", "hello"]), 5);
        assert_eq!(i(con, &["APPEND", "k", " world"]), 11);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("hello world"));
        assert_eq!(i(con, &["STRLEN", "k"]), 11);
        assert_eq!(i(con, &["APPEND", "k", ""]), 11);
        // APPEND keeps the TTL.
        ok(con, &["SET", "t", "a", "EX", "100"]);
        assert_eq!(i(con, &["APPEND", "t", "b"]), 2);
        assert_in(i(con, &["TTL", "t"]), 99..=100, "APPEND keeps the TTL");
        assert_eq!(e(con, &["APPEND", "k"]), format!("{ARITY} 'append' command"));
        assert_eq!(e(con, &["STRLEN"]), format!("{ARITY} 'strlen' command"));
    }

    fn del_unlink_exists_type(server, con, resp3) {
        ok(con, &["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]);
        assert_eq!(i(con, &["EXISTS", "a"]), 1);
        assert_eq!(i(con, &["EXISTS", "missing"]), 0);
        // Duplicates count each time.
        assert_eq!(i(con, &["EXISTS", "a", "a", "b", "missing", "a"]), 4);
        assert_eq!(s(con, &["TYPE", "a"]).as_deref(), Some("string"));
        assert_eq!(s(con, &["TYPE", "missing"]).as_deref(), Some("none"));
        // TYPE is a status reply.
        assert_eq!(q::<Value>(con, &["TYPE", "a"]), Value::SimpleString("string".into()));
        // A duplicate is deleted once.
        assert_eq!(i(con, &["DEL", "a", "b", "a", "missing"]), 2);
        assert_eq!(i(con, &["EXISTS", "a", "b"]), 0);
        assert_eq!(i(con, &["UNLINK", "c", "d", "c", "missing"]), 2);
        assert_eq!(i(con, &["DBSIZE"]), 0);
        assert_eq!(i(con, &["DEL", "missing"]), 0);
        assert_eq!(e(con, &["DEL"]), format!("{ARITY} 'del' command"));
        assert_eq!(e(con, &["UNLINK"]), format!("{ARITY} 'unlink' command"));
        assert_eq!(e(con, &["EXISTS"]), format!("{ARITY} 'exists' command"));
        assert_eq!(e(con, &["TYPE"]), format!("{ARITY} 'type' command"));
    }

    fn expire_family(server, con, resp3) {
        assert_eq!(i(con, &["EXPIRE", "missing", "10"]), 0);
        assert_eq!(i(con, &["PEXPIRE", "missing", "10"]), 0);
        ok(con, &["SET", "k", "v"]);
        assert_eq!(i(con, &["EXPIRE", "k", "100"]), 1);
        assert_in(i(con, &["TTL", "k"]), 99..=100, "EXPIRE");
        assert_eq!(i(con, &["PEXPIRE", "k", "50000"]), 1);
        assert_in(i(con, &["PTTL", "k"]), 48_000..=50_000, "PEXPIRE");
        assert_in(i(con, &["TTL", "k"]), 48..=50, "TTL after PEXPIRE");
        let at = now_secs() + 200;
        assert_eq!(i(con, &["EXPIREAT", "k", &at.to_string()]), 1);
        assert_in(i(con, &["TTL", "k"]), 198..=200, "EXPIREAT");
        let at = now_millis() + 300_000;
        assert_eq!(i(con, &["PEXPIREAT", "k", &at.to_string()]), 1);
        assert_in(i(con, &["PTTL", "k"]), 298_000..=300_000, "PEXPIREAT");
        // Zero, negative and past times delete the key (and answer 1).
        for args in [
            ["EXPIRE", "0"],
            ["EXPIRE", "-1"],
            ["PEXPIRE", "-5"],
            ["EXPIREAT", "1"],
            ["PEXPIREAT", "1"],
        ] {
            ok(con, &["SET", "d", "v"]);
            assert_eq!(i(con, &[args[0], "d", args[1]]), 1, "{args:?}");
            assert_eq!(i(con, &["EXISTS", "d"]), 0, "{args:?} deletes");
            assert_eq!(i(con, &[args[0], "d", args[1]]), 0, "{args:?} on a missing key");
        }
        assert_eq!(e(con, &["EXPIRE", "k", "abc"]), NOT_INT);
        assert_eq!(e(con, &["PEXPIREAT", "k", "1.5"]), NOT_INT);
        assert_eq!(e(con, &["EXPIRE", "k", "9999999999999999"]), "ERR invalid expire time in 'expire' command");
        assert_eq!(
            e(con, &["PEXPIRE", "k", "9223372036854775807"]),
            "ERR invalid expire time in 'pexpire' command"
        );
        // Checked before the key is looked up.
        assert_eq!(
            e(con, &["EXPIREAT", "missing", "9999999999999999"]),
            "ERR invalid expire time in 'expireat' command"
        );
        assert_eq!(e(con, &["EXPIRE", "k"]), format!("{ARITY} 'expire' command"));
        assert_eq!(e(con, &["PEXPIREAT", "k"]), format!("{ARITY} 'pexpireat' command"));
    }

    fn expire_conditions(server, con, resp3) {
        ok(con, &["SET", "k", "v"]);
        // No TTL counts as an infinite TTL: GT never applies, LT always does.
        assert_eq!(i(con, &["EXPIRE", "k", "100", "GT"]), 0);
        assert_eq!(i(con, &["TTL", "k"]), -1);
        assert_eq!(i(con, &["EXPIRE", "k", "100", "XX"]), 0);
        assert_eq!(i(con, &["TTL", "k"]), -1);
        assert_eq!(i(con, &["EXPIRE", "k", "100", "LT"]), 1);
        assert_in(i(con, &["TTL", "k"]), 99..=100, "LT on no TTL");
        assert_eq!(i(con, &["EXPIRE", "k", "50", "LT"]), 1);
        assert_in(i(con, &["TTL", "k"]), 49..=50, "LT shorter");
        assert_eq!(i(con, &["EXPIRE", "k", "200", "LT"]), 0);
        assert_eq!(i(con, &["EXPIRE", "k", "200", "GT"]), 1);
        assert_in(i(con, &["TTL", "k"]), 199..=200, "GT longer");
        assert_eq!(i(con, &["EXPIRE", "k", "10", "GT"]), 0);
        assert_eq!(i(con, &["EXPIRE", "k", "10", "NX"]), 0);
        assert_eq!(i(con, &["EXPIRE", "k", "300", "XX"]), 1);
        assert_in(i(con, &["TTL", "k"]), 299..=300, "XX");
        // The same deadline again is neither later nor sooner (an absolute one: a relative
        // 300 s asked a millisecond later is a later deadline, for Redis too).
        let at = (now_millis() + 300_000).to_string();
        assert_eq!(i(con, &["PEXPIREAT", "k", &at, "XX"]), 1);
        assert_eq!(i(con, &["PEXPIREAT", "k", &at, "xx", "gt"]), 0, "XX GT: the same deadline");
        assert_eq!(i(con, &["PEXPIREAT", "k", &at, "LT"]), 0, "LT: the same deadline");
        assert_eq!(i(con, &["EXPIRE", "k", "400", "XX", "GT"]), 1);
        assert_eq!(i(con, &["PERSIST", "k"]), 1);
        assert_eq!(i(con, &["EXPIRE", "k", "10", "NX"]), 1);
        assert_in(i(con, &["TTL", "k"]), 9..=10, "NX");
        // The same for the other three.
        ok(con, &["SET", "p", "v"]);
        assert_eq!(i(con, &["PEXPIRE", "p", "100000", "GT"]), 0);
        assert_eq!(i(con, &["PEXPIRE", "p", "100000", "NX"]), 1);
        assert_eq!(i(con, &["PEXPIRE", "p", "200000", "LT"]), 0);
        let at = (now_secs() + 500).to_string();
        assert_eq!(i(con, &["EXPIREAT", "p", &at, "GT"]), 1);
        assert_in(i(con, &["TTL", "p"]), 498..=500, "EXPIREAT GT");
        let at = (now_millis() + 600_000).to_string();
        assert_eq!(i(con, &["PEXPIREAT", "p", &at, "LT"]), 0);
        assert_eq!(i(con, &["PEXPIREAT", "p", &at, "XX"]), 1);
        assert_in(i(con, &["PTTL", "p"]), 598_000..=600_000, "PEXPIREAT XX");
        // Conditions on a missing key: 0, nothing created.
        assert_eq!(i(con, &["EXPIRE", "missing", "10", "NX"]), 0);
        assert_eq!(i(con, &["EXPIRE", "missing", "10", "LT"]), 0);
        assert_eq!(i(con, &["EXISTS", "missing"]), 0);

        for opts in [["NX", "XX"], ["NX", "GT"], ["NX", "LT"], ["XX", "NX"], ["GT", "NX"]] {
            assert_eq!(e(con, &["EXPIRE", "k", "10", opts[0], opts[1]]), EXPIRE_OPTS, "{opts:?}");
            assert_eq!(e(con, &["PEXPIREAT", "k", "10", opts[0], opts[1]]), EXPIRE_OPTS, "{opts:?}");
        }
        assert_eq!(
            e(con, &["EXPIRE", "k", "10", "GT", "LT"]),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(e(con, &["EXPIRE", "k", "10", "FOO"]), "ERR Unsupported option FOO");
        assert_eq!(e(con, &["PEXPIRE", "k", "10", "NX", "bar"]), "ERR Unsupported option bar");
        assert_in(i(con, &["TTL", "k"]), 9..=10, "failed EXPIREs changed nothing");
    }

    fn ttl_pttl_persist(server, con, resp3) {
        assert_eq!(i(con, &["TTL", "missing"]), -2);
        assert_eq!(i(con, &["PTTL", "missing"]), -2);
        ok(con, &["SET", "k", "v"]);
        assert_eq!(i(con, &["TTL", "k"]), -1);
        assert_eq!(i(con, &["PTTL", "k"]), -1);
        assert_eq!(i(con, &["PERSIST", "k"]), 0, "no TTL to remove");
        assert_eq!(i(con, &["PERSIST", "missing"]), 0);
        ok(con, &["SET", "k", "v", "PX", "1500"]);
        // TTL rounds to the nearest second.
        assert_in(i(con, &["TTL", "k"]), 1..=2, "TTL of 1.5 s");
        assert_eq!(i(con, &["PERSIST", "k"]), 1);
        assert_eq!(i(con, &["TTL", "k"]), -1);
        assert_eq!(s(con, &["GET", "k"]).as_deref(), Some("v"));
        assert_eq!(e(con, &["TTL"]), format!("{ARITY} 'ttl' command"));
        assert_eq!(e(con, &["PERSIST"]), format!("{ARITY} 'persist' command"));
    }

    fn scan(server, con, resp3) {
        assert_eq!(scan_all(con, &[]), BTreeSet::new());
        let mut expected_users = BTreeSet::new();
        let mut pipe = redis::pipe();
        for n in 0..100 {
            let key = format!("user:{n}");
            pipe.cmd("SET").arg(&key).arg(n).ignore();
            expected_users.insert(key);
        }
        for n in 0..50 {
            pipe.cmd("SET").arg(format!("other:{n}")).arg(n).ignore();
        }
        pipe.exec(con).unwrap();
        assert_eq!(scan_all(con, &["MATCH", "user:*", "COUNT", "7"]), expected_users);
        assert_eq!(scan_all(con, &["COUNT", "1000"]).len(), 150);
        assert_eq!(scan_all(con, &[]).len(), 150);
        assert_eq!(scan_all(con, &["MATCH", "user:1?"]).len(), 10);
        assert_eq!(scan_all(con, &["MATCH", "nothing*", "COUNT", "3"]), BTreeSet::new());

        // The reply: [cursor as a bulk string, [keys]], an array under RESP3 too.
        let mut raw = server.raw_con();
        if resp3 {
            raw.cmd(&["HELLO", "3"]);
        }
        let reply = raw.cmd(&["SCAN", "0", "MATCH", "user:42"]);
        assert!(reply.starts_with(b"*2\r\n$"), "{:?}", String::from_utf8_lossy(&reply));

        assert_eq!(e(con, &["SCAN", "abc"]), "ERR invalid cursor");
        assert_eq!(e(con, &["SCAN", "99999999999999999999"]), "ERR invalid cursor");
        assert_eq!(e(con, &["SCAN", "0", "COUNT", "0"]), SYNTAX);
        assert_eq!(e(con, &["SCAN", "0", "COUNT", "-1"]), SYNTAX);
        assert_eq!(e(con, &["SCAN", "0", "COUNT", "x"]), NOT_INT);
        assert_eq!(e(con, &["SCAN", "0", "MATCH"]), SYNTAX);
        assert_eq!(e(con, &["SCAN", "0", "FOO"]), SYNTAX);
        assert_eq!(e(con, &["SCAN"]), format!("{ARITY} 'scan' command"));
    }

    fn keys(server, con, resp3) {
        let all = ["hello", "hallo", "hxllo", "hllo", "heeello", "h*llo", "other"];
        for k in all {
            ok(con, &["SET", k, "1"]);
        }
        let keys = |con: &mut Connection, pattern: &str| -> BTreeSet<String> {
            q::<Vec<String>>(con, &["KEYS", pattern]).into_iter().collect()
        };
        let set = |ks: &[&str]| -> BTreeSet<String> { ks.iter().map(|k| k.to_string()).collect() };
        assert_eq!(keys(con, "*"), set(&all));
        assert_eq!(keys(con, "h?llo"), set(&["hello", "hallo", "hxllo", "h*llo"]));
        assert_eq!(keys(con, "h*llo"), set(&["hello", "hallo", "hxllo", "hllo", "heeello", "h*llo"]));
        assert_eq!(keys(con, "h[ae]llo"), set(&["hello", "hallo"]));
        assert_eq!(keys(con, "h[^e]llo"), set(&["hallo", "hxllo", "h*llo"]));
        assert_eq!(keys(con, "h[a-b]llo"), set(&["hallo"]));
        assert_eq!(keys(con, "h\\*llo"), set(&["h*llo"]));
        assert_eq!(keys(con, "other"), set(&["other"]));
        assert_eq!(keys(con, "nomatch*"), set(&[]));
        assert_eq!(e(con, &["KEYS"]), format!("{ARITY} 'keys' command"));
    }

    fn dbsize_flush(server, con, resp3) {
        assert_eq!(i(con, &["DBSIZE"]), 0);
        ok(con, &["MSET", "a", "1", "b", "2", "c", "3"]);
        assert_eq!(i(con, &["DBSIZE"]), 3);
        ok(con, &["FLUSHDB"]);
        assert_eq!(i(con, &["DBSIZE"]), 0);
        assert_eq!(s(con, &["GET", "a"]), None);
        ok(con, &["MSET", "a", "1", "b", "2"]);
        ok(con, &["FLUSHALL"]);
        assert_eq!(i(con, &["DBSIZE"]), 0);
        ok(con, &["SET", "a", "1"]);
        ok(con, &["FLUSHDB", "ASYNC"]);
        ok(con, &["FLUSHDB", "SYNC"]);
        ok(con, &["FLUSHALL", "ASYNC"]);
        ok(con, &["FLUSHALL", "sync"]);
        assert_eq!(i(con, &["DBSIZE"]), 0);
        assert_eq!(e(con, &["FLUSHDB", "foo"]), SYNTAX);
        assert_eq!(e(con, &["FLUSHALL", "foo"]), SYNTAX);
        assert_eq!(e(con, &["DBSIZE", "x"]), format!("{ARITY} 'dbsize' command"));
    }

    fn info(server, con, resp3) {
        ok(con, &["MSET", "a", "1", "b", "2"]);
        ok(con, &["SET", "t", "v", "EX", "100"]);
        let all: String = q(con, &["INFO"]);
        for section in ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"] {
            assert!(all.contains(section), "INFO lacks {section}:\n{all}");
        }
        assert!(all.contains("\r\n"), "INFO lines end in CRLF");
        let fields = info_fields(&all);
        assert!(fields.iter().any(|(k, _)| k == "redis_version"));
        let connected: u64 = field(&fields, "connected_clients").parse().unwrap();
        assert!(connected >= 1);
        let _: u64 = field(&fields, "used_memory").parse().unwrap();
        let rss: u64 = field(&fields, "used_memory_rss").parse().unwrap();
        assert!(rss > 0, "used_memory_rss:{rss}");
        // What the clients' buffers hold, and how many clients were closed for it.
        let _: u64 = field(&fields, "mem_clients_normal").parse().unwrap();
        let _: u64 = field(&fields, "evicted_clients").parse().unwrap();
        let _: u64 = field(&fields, "keyspace_hits").parse().unwrap();
        let _: u64 = field(&fields, "keyspace_misses").parse().unwrap();
        assert!(
            field(&fields, "db0").starts_with("keys=3,expires=1"),
            "{}",
            field(&fields, "db0")
        );

        // One section.
        let server_only: String = q(con, &["INFO", "server"]);
        assert!(server_only.starts_with("# Server\r\n"), "{server_only}");
        assert!(!server_only.contains("# Clients"));
        let keyspace: String = q(con, &["INFO", "keyspace"]);
        assert!(keyspace.starts_with("# Keyspace\r\n"));
        assert!(keyspace.contains("db0:keys=3,expires=1"), "{keyspace}");
        for section in ["clients", "memory", "stats"] {
            let text: String = q(con, &["INFO", section]);
            let header = format!("# {}{}", section[..1].to_uppercase(), &section[1..]);
            assert!(text.starts_with(&header), "INFO {section}: {text}");
        }
        // An empty keyspace has no db0 line at all.
        ok(con, &["FLUSHALL"]);
        let keyspace: String = q(con, &["INFO", "keyspace"]);
        assert!(!keyspace.contains("db0"), "{keyspace}");

        // On the wire: a bulk string, or under RESP3 a verbatim string of format txt.
        let mut raw = server.raw_con();
        if resp3 {
            raw.cmd(&["HELLO", "3"]);
            let reply = raw.cmd_str(&["INFO", "keyspace"]);
            assert!(reply.starts_with('='), "{reply:?}");
            assert!(reply.contains("\r\ntxt:# Keyspace\r\n"), "{reply:?}");
        } else {
            assert_eq!(raw.cmd_str(&["INFO", "keyspace"]), "$12\r\n# Keyspace\r\n\r\n");
        }
    }

    fn config(server, con, resp3) {
        let pairs = |con: &mut Connection, name: &str| -> Vec<(String, String)> {
            let v: Value = q(con, &["CONFIG", "GET", name]);
            if resp3 {
                assert!(matches!(v, Value::Map(_)), "CONFIG GET is a map under RESP3: {v:?}");
            } else {
                assert!(matches!(v, Value::Array(_)), "CONFIG GET is an array under RESP2: {v:?}");
            }
            let map: std::collections::BTreeMap<String, String> =
                FromRedisValue::from_redis_value(v).unwrap();
            map.into_iter().collect()
        };
        let maxmemory = pairs(con, "maxmemory");
        assert_eq!(maxmemory.len(), 1);
        assert_eq!(maxmemory[0].0, "maxmemory");
        let _: u64 = maxmemory[0].1.parse().unwrap();
        let policy = pairs(con, "maxmemory-policy");
        assert_eq!(policy.len(), 1);
        assert!(
            [
                "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
                "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
            ]
            .contains(&policy[0].1.as_str()),
            "{policy:?}"
        );

        ok(con, &["CONFIG", "SET", "maxmemory", "104857600"]);
        assert_eq!(pairs(con, "maxmemory"), [("maxmemory".into(), "104857600".into())]);
        ok(con, &["CONFIG", "SET", "maxmemory", "200mb"]);
        assert_eq!(pairs(con, "maxmemory"), [("maxmemory".into(), "209715200".into())]);
        ok(con, &["CONFIG", "SET", "maxmemory", "1gb"]);
        assert_eq!(pairs(con, "maxmemory"), [("maxmemory".into(), "1073741824".into())]);
        ok(con, &["config", "set", "MAXMEMORY-POLICY", "allkeys-lru"]);
        assert_eq!(
            pairs(con, "maxmemory-policy"),
            [("maxmemory-policy".into(), "allkeys-lru".into())]
        );
        // An unknown name: an empty reply.
        assert!(pairs(con, "no-such-parameter").is_empty());

        let bad = e(con, &["CONFIG", "SET", "maxmemory", "lots"]);
        assert!(
            bad.starts_with("ERR CONFIG SET failed (possibly related to argument 'maxmemory')"),
            "{bad}"
        );
        let bad = e(con, &["CONFIG", "SET", "maxmemory-policy", "sometimes"]);
        assert!(
            bad.starts_with(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy')"
            ),
            "{bad}"
        );
        assert_eq!(pairs(con, "maxmemory"), [("maxmemory".into(), "1073741824".into())]);
        assert_eq!(e(con, &["CONFIG", "GET"]), format!("{ARITY} 'config|get' command"));
        assert_eq!(e(con, &["CONFIG", "SET", "maxmemory"]), format!("{ARITY} 'config|set' command"));
    }

    fn command(server, con, resp3) {
        assert!(i(con, &["COMMAND", "COUNT"]) > 0);
        assert_eq!(
            e(con, &["COMMAND", "COUNT", "x"]),
            format!("{ARITY} 'command|count' command")
        );
        // An unknown name in COMMAND INFO is a null in its place.
        assert_eq!(
            q::<Value>(con, &["COMMAND", "INFO", "nosuchcommand"]),
            Value::Array(vec![Value::Nil])
        );
        let docs: Value = q(con, &["COMMAND", "DOCS", "get"]);
        let entries: Vec<(Value, Value)> = match docs {
            Value::Map(m) => {
                assert!(resp3, "a map under RESP2");
                m
            }
            Value::Array(a) => {
                assert!(!resp3, "an array under RESP3");
                let mut it = a.into_iter();
                let mut out = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((k, v));
                }
                out
            }
            other => panic!("COMMAND DOCS get: {other:?}"),
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(String::from_redis_value(entries[0].0.clone()).unwrap(), "get");
        let doc: std::collections::HashMap<String, Value> =
            FromRedisValue::from_redis_value(entries[0].1.clone()).unwrap();
        assert!(doc.contains_key("summary"), "{doc:?}");
        // An unknown command has no docs: an empty reply.
        let none: Value = q(con, &["COMMAND", "DOCS", "nosuchcommand"]);
        assert!(
            none == Value::Array(vec![]) || none == Value::Map(vec![]),
            "{none:?}"
        );
    }

    fn unknown_command_and_arity(server, con, resp3) {
        assert_eq!(
            e(con, &["foo", "a"]),
            "ERR unknown command 'foo', with args beginning with: 'a' "
        );
        // Exact on the wire: the name as sent, each argument quoted, a trailing space.
        let mut raw = server.raw_con();
        if resp3 {
            raw.cmd(&["HELLO", "3"]);
        }
        assert_eq!(
            raw.cmd_str(&["foo", "a"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' \r\n"
        );
        assert_eq!(
            raw.cmd_str(&["FOO", "a b", "c"]),
            "-ERR unknown command 'FOO', with args beginning with: 'a b' 'c' \r\n"
        );
        // Arguments are listed while fewer than 128 bytes of them are written, each cut to
        // the room left: a command with a million arguments gets a short error.
        let long = "a".repeat(200);
        assert_eq!(
            raw.cmd_str(&["FOO", &long, "b", "c"]),
            format!("-ERR unknown command 'FOO', with args beginning with: '{}' \r\n", &long[..128])
        );
        let tens: Vec<String> = (0..40).map(|i| format!("{i:09}")).collect();
        let mut args = vec!["FOO"];
        args.extend(tens.iter().map(String::as_str));
        // Ten of 12 bytes each, then 8 bytes of room for the eleventh.
        let listed: String = tens[..10].iter().map(|t| format!("'{t}' ")).collect::<String>()
            + "'00000001' ";
        assert_eq!(
            raw.cmd_str(&args),
            format!("-ERR unknown command 'FOO', with args beginning with: {listed}\r\n")
        );
        assert_eq!(
            raw.cmd_str(&["foo"]),
            "-ERR unknown command 'foo', with args beginning with: \r\n"
        );
        // Arity errors name the command in lower case however it was sent.
        assert_eq!(raw.cmd_str(&["GET"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(raw.cmd_str(&["Get", "a", "b"]), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(raw.cmd_str(&["PING"]), "+PONG\r\n", "the connection lives on");
    }

    fn binary_safe(server, con, resp3) {
        let key: Vec<u8> = (0..=255u8).collect();
        let mut value: Vec<u8> = (0..=255u8).rev().collect();
        value.extend_from_slice(b"\r\n\0$-1\r\n*3\r\n");
        let set: Value = redis::cmd("SET").arg(&key[..]).arg(&value[..]).query(con).unwrap();
        assert_eq!(set, Value::Okay);
        let got: Vec<u8> = redis::cmd("GET").arg(&key[..]).query(con).unwrap();
        assert_eq!(got, value);
        let len: i64 = redis::cmd("STRLEN").arg(&key[..]).query(con).unwrap();
        assert_eq!(len as usize, value.len());
        let n: i64 = redis::cmd("APPEND").arg(&key[..]).arg(b"\0\r\n").query(con).unwrap();
        assert_eq!(n as usize, value.len() + 3);
        value.extend_from_slice(b"\0\r\n");
        let mget: Vec<Vec<u8>> = redis::cmd("MGET").arg(&key[..]).query(con).unwrap();
        assert_eq!(mget, std::slice::from_ref(&value));
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        assert_eq!(keys, std::slice::from_ref(&key));
        let (cursor, scanned): (String, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(0).query(con).unwrap();
        assert_eq!((cursor.as_str(), scanned), ("0", vec![key.clone()]));
        let echoed: Vec<u8> = redis::cmd("ECHO").arg(&value[..]).query(con).unwrap();
        assert_eq!(echoed, value);
        // Keys differing only after a NUL are different keys.
        let set: Value = redis::cmd("SET").arg(b"a\0b").arg(b"1").query(con).unwrap();
        assert_eq!(set, Value::Okay);
        let other: Option<Vec<u8>> = redis::cmd("GET").arg(b"a\0c").query(con).unwrap();
        assert_eq!(other, None);
        let other: Option<Vec<u8>> = redis::cmd("GET").arg(b"a").query(con).unwrap();
        assert_eq!(other, None);
        let del: i64 = redis::cmd("DEL").arg(&key[..]).arg(b"a\0b").query(con).unwrap();
        assert_eq!(del, 2);
    }

    fn pipeline_1000(server, con, resp3) {
        let mut pipe = redis::pipe();
        for n in 0..250 {
            pipe.cmd("SET").arg(format!("k{n}")).arg(format!("v{n}"));
            pipe.cmd("GET").arg(format!("k{n}"));
            pipe.cmd("INCR").arg("counter");
            pipe.cmd("EXISTS").arg(format!("k{n}")).arg(format!("missing{n}"));
        }
        let replies: Vec<Value> = pipe.query(con).unwrap();
        assert_eq!(replies.len(), 1000);
        for n in 0..250 {
            let r = &replies[n * 4..n * 4 + 4];
            assert_eq!(r[0], Value::Okay);
            assert_eq!(r[1], Value::BulkString(format!("v{n}").into_bytes()));
            assert_eq!(r[2], Value::Int(n as i64 + 1));
            assert_eq!(r[3], Value::Int(1));
        }
        // An error in the middle of a pipeline is that command's reply only.
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("x").arg("1")
            .cmd("INCRBY").arg("x").arg("nope")
            .cmd("INCR").arg("x");
        let replies: Vec<Value> = pipe.ignore_errors().query(con).unwrap();
        assert_eq!(replies[0], Value::Okay);
        assert!(matches!(&replies[1], Value::ServerError(err) if err.code() == "ERR"), "{:?}", replies[1]);
        assert_eq!(replies[2], Value::Int(2));
        assert_eq!(i(con, &["DBSIZE"]), 252);
    }
}

/// Every key SCAN returns from cursor 0 back to 0, with `opts` after the cursor.
fn scan_all(con: &mut Connection, opts: &[&str]) -> BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    for _ in 0..100_000 {
        let mut args = vec!["SCAN", &cursor];
        args.extend_from_slice(opts);
        let (next, keys): (String, Vec<String>) = q(con, &args);
        seen.extend(keys);
        if next == "0" {
            return seen;
        }
        cursor = next;
    }
    panic!("SCAN never came back to cursor 0");
}

fn info_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("INFO has no {name}"))
}

#[test]
fn hello() {
    let server = Server::start();
    let mut con = server.con(false);
    let id = i(&mut con, &["CLIENT", "ID"]);

    // HELLO with no version, or 2: the fields as a flat array, proto 2.
    for args in [&["HELLO"][..], &["HELLO", "2"]] {
        let reply: Value = q(&mut con, args);
        let Value::Array(items) = reply else {
            panic!("{args:?} under RESP2: {reply:?}")
        };
        let fields = hello_fields(items.chunks(2).map(|p| (p[0].clone(), p[1].clone())));
        check_hello(&fields, 2, id);
    }

    // On a RESP3 connection: a map, proto 3.
    let mut con3 = server.con(true);
    let id3 = i(&mut con3, &["CLIENT", "ID"]);
    let reply: Value = q(&mut con3, &["HELLO", "3"]);
    let Value::Map(pairs) = reply else {
        panic!("HELLO 3: {reply:?}")
    };
    check_hello(&hello_fields(pairs.into_iter()), 3, id3);

    // Errors, and the connection keeps its protocol.
    assert_eq!(
        e(&mut con, &["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        e(&mut con, &["HELLO", "1"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        e(&mut con, &["HELLO", "abc"]),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(
        e(&mut con, &["HELLO", "3", "FOO"]),
        "ERR Syntax error in HELLO option 'FOO'"
    );

    // On the wire: after HELLO 3 a null is `_`; after HELLO 2 it is `$-1` again.
    let mut raw = server.raw_con();
    assert_eq!(raw.cmd(&["GET", "missing"]), b"$-1\r\n");
    let reply = raw.cmd_str(&["HELLO", "3"]);
    assert!(reply.starts_with("%7\r\n"), "{reply:?}");
    assert!(reply.contains("$5\r\nproto\r\n:3\r\n"), "{reply:?}");
    assert_eq!(raw.cmd(&["GET", "missing"]), b"_\r\n");
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
    let reply = raw.cmd_str(&["HELLO", "4"]);
    assert_eq!(reply, "-NOPROTO unsupported protocol version\r\n");
    assert_eq!(
        raw.cmd(&["GET", "missing"]),
        b"_\r\n",
        "a failed HELLO keeps RESP3"
    );
    let reply = raw.cmd_str(&["HELLO", "2"]);
    assert!(reply.starts_with("*14\r\n"), "{reply:?}");
    assert!(reply.contains("$5\r\nproto\r\n:2\r\n"), "{reply:?}");
    assert_eq!(raw.cmd(&["GET", "missing"]), b"$-1\r\n");

    // HELLO 3 SETNAME names the connection.
    let mut raw = server.raw_con();
    raw.cmd(&["HELLO", "3", "SETNAME", "named"]);
    assert_eq!(raw.cmd(&["CLIENT", "GETNAME"]), b"$5\r\nnamed\r\n");
}

fn hello_fields(pairs: impl Iterator<Item = (Value, Value)>) -> Vec<(String, Value)> {
    pairs
        .map(|(k, v)| (String::from_redis_value(k).unwrap(), v))
        .collect()
}

fn check_hello(fields: &[(String, Value)], proto: i64, id: i64) {
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["server", "version", "proto", "id", "mode", "role", "modules"]
    );
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).unwrap().1.clone();
    assert_eq!(get("proto"), Value::Int(proto));
    assert_eq!(get("id"), Value::Int(id));
    assert_eq!(String::from_redis_value(get("mode")).unwrap(), "standalone");
    assert_eq!(String::from_redis_value(get("role")).unwrap(), "master");
    assert_eq!(get("modules"), Value::Array(vec![]));
    assert!(!String::from_redis_value(get("server")).unwrap().is_empty());
    assert!(!String::from_redis_value(get("version")).unwrap().is_empty());
}

#[test]
fn auth_with_password() {
    let server = Server::start_with_password("s3cret");
    let noauth = "-NOAUTH Authentication required.\r\n";
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    let mut raw = server.raw_con();
    assert_eq!(raw.cmd_str(&["GET", "a"]), noauth);
    assert_eq!(raw.cmd_str(&["PING"]), noauth);
    assert_eq!(raw.cmd_str(&["AUTH", "wrong"]), wrongpass);
    assert_eq!(raw.cmd_str(&["AUTH", "default", "wrong"]), wrongpass);
    // Redis 7.0 says `HELLO AUTH`; 7.2 and later say `HELLO <proto> AUTH`.
    let hello = raw.cmd_str(&["HELLO", "3"]);
    let wording = |proto: &str| {
        format!(
            "-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO {proto}AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time\r\n"
        )
    };
    assert!(
        hello == wording("") || hello == wording("<proto> "),
        "{hello:?}"
    );
    assert_eq!(
        raw.cmd_str(&["HELLO", "3", "AUTH", "default", "wrong"]),
        wrongpass
    );
    assert_eq!(raw.cmd_str(&["SET", "a", "1"]), noauth);
    assert_eq!(raw.cmd_str(&["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(raw.cmd_str(&["PING"]), "+PONG\r\n");
    assert_eq!(
        raw.cmd_str(&["GET", "a"]),
        "$-1\r\n",
        "the SET before AUTH was refused"
    );
    assert_eq!(raw.cmd_str(&["AUTH", "default", "s3cret"]), "+OK\r\n");

    // HELLO AUTH authenticates and switches protocol in one.
    let mut raw = server.raw_con();
    let reply = raw.cmd_str(&["HELLO", "3", "AUTH", "default", "s3cret"]);
    assert!(reply.starts_with("%7\r\n"), "{reply:?}");
    assert_eq!(raw.cmd(&["GET", "a"]), b"_\r\n");

    // Clients authenticate from the URL, with either protocol.
    for resp3 in [false, true] {
        let url = server.url(resp3).replace("redis://", "redis://:s3cret@");
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
    }
    let mut con = redis::Client::open(server.url(false))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(
        e(&mut con, &["GET", "a"]),
        "NOAUTH Authentication required."
    );
}

#[test]
fn quit() {
    let server = Server::start();
    let (reply, closed) =
        raw_with_close(server.addr(), b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(String::from_utf8_lossy(&reply), "+OK\r\n");
    assert!(closed, "QUIT closes the connection");
    // Inline too, and after other commands.
    let (reply, closed) = raw_with_close(server.addr(), b"PING\r\nQUIT\r\nPING\r\n");
    assert_eq!(String::from_utf8_lossy(&reply), "+PONG\r\n+OK\r\n");
    assert!(closed);
    // Through a client.
    let mut con = server.con(true);
    assert_eq!(q::<Value>(&mut con, &["QUIT"]), Value::Okay);
}

#[test]
fn keyspace_hits_and_misses() {
    let server = Server::start();
    let mut con = server.con(false);
    ok(&mut con, &["SET", "a", "1"]);
    ok(&mut con, &["SET", "b", "2"]);
    for key in ["a", "a", "missing", "b", "nope", "a", "missing"] {
        let _: Option<String> = q(&mut con, &["GET", key]);
    }
    let stats: String = q(&mut con, &["INFO", "stats"]);
    let fields = info_fields(&stats);
    assert_eq!(field(&fields, "keyspace_hits"), "4", "{stats}");
    assert_eq!(field(&fields, "keyspace_misses"), "3", "{stats}");
}

#[test]
fn raw_pipelining() {
    let server = Server::start();
    let mut sent = Vec::new();
    let mut expected = String::new();
    for n in 0..500 {
        let value = format!("value-{n}");
        sent.extend(common::encode(&[
            b"SET",
            format!("k{n}").as_bytes(),
            value.as_bytes(),
        ]));
        sent.extend(common::encode(&[b"GET", format!("k{n}").as_bytes()]));
        sent.extend(common::encode(&[b"INCR", b"counter"]));
        expected += &format!("+OK\r\n${}\r\n{value}\r\n:{}\r\n", value.len(), n + 1);
    }
    sent.extend(common::encode(&[b"DBSIZE"]));
    sent.extend(common::encode(&[b"QUIT"]));
    expected += ":501\r\n+OK\r\n";
    let (reply, closed) = raw_with_close(server.addr(), &sent);
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    assert!(closed);

    // A command split across writes is answered once complete.
    let mut raw = server.raw_con();
    raw.send(b"*2\r\n$3\r\nGET\r\n$2\r");
    std::thread::sleep(Duration::from_millis(20));
    raw.send(b"\nk7\r\n");
    assert_eq!(raw.read_frame(), b"$7\r\nvalue-7\r\n");
}

#[test]
fn an_http_request_closes_the_connection_before_anything_after_it_runs() {
    // What a web page makes a browser send (curl -X POST --data-binary 'FLUSHALL' ...): the
    // body is a valid inline command, after a request line and headers that are not.
    let server = Server::start();
    let mut con = server.con(false);
    ok(&mut con, &["SET", "k", "v"]);
    let post = b"POST / HTTP/1.1\r\nHost: 127.0.0.1:6380\r\nUser-Agent: curl/8.5.0\r\n\
        Accept: */*\r\nContent-Length: 10\r\n\
        Content-Type: application/x-www-form-urlencoded\r\n\r\nFLUSHALL\r\n";
    let (reply, closed) = raw_with_close(server.addr(), post);
    assert!(closed, "the connection is closed");
    assert_eq!(reply, b"", "nothing is answered");
    assert_eq!(s(&mut con, &["GET", "k"]).as_deref(), Some("v"));
    // A GET request has no body, but its Host: header closes the connection all the same,
    // and the request line split over two reads changes nothing.
    let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    std::io::Write::write_all(&mut stream, b"POST / HT").expect("write");
    std::thread::sleep(Duration::from_millis(50));
    let rest = b"TP/1.1\r\nContent-Length: 10\r\n\r\nFLUSHALL\r\n";
    let _ = std::io::Write::write_all(&mut stream, rest);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting the read timeout");
    let mut buf = [0u8; 64];
    let read = std::io::Read::read(&mut stream, &mut buf);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "closed without a reply: {read:?}"
    );
    let (_, closed) = raw_with_close(
        server.addr(),
        b"GET / HTTP/1.1\r\nhost: example.com\r\n\r\nFLUSHALL\r\n",
    );
    assert!(closed, "the connection is closed");
    assert_eq!(s(&mut con, &["GET", "k"]).as_deref(), Some("v"));
}

#[test]
fn inline_commands() {
    let server = Server::start();
    let (reply, closed) = raw_with_close(
        server.addr(),
        b"PING\r\nSET a \"hello world\"\r\nGET a\r\n\r\nECHO 'x y'\r\nPING\n\
          ECHO \"a\\x41\\n\"\r\n  EXISTS   a   b  \r\nQUIT\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "+PONG\r\n+OK\r\n$11\r\nhello world\r\n$3\r\nx y\r\n+PONG\r\n$3\r\naA\n\r\n:1\r\n+OK\r\n"
    );
    assert!(closed);
    // Inline and RESP arrays mix on one connection.
    let (reply, _) = raw_with_close(
        server.addr(),
        b"GET a\r\n*1\r\n$4\r\nPING\r\nPING x\r\nQUIT\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "$11\r\nhello world\r\n+PONG\r\n$1\r\nx\r\n+OK\r\n"
    );
}

/// Malformed input: a protocol error reply, then the connection is closed, and other
/// connections are unaffected.
#[test]
fn malformed_frames() {
    let server = Server::start();
    let mut bystander = server.raw_con();
    let cases: [(&[u8], &str); 10] = [
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*99999999999\r\n", "invalid multibulk length"),
        (b"*1\r\n:5\r\n", "expected '$', got ':'"),
        (b"*2\r\n$4\r\nECHO\r\n+foo\r\n", "expected '$', got '+'"),
        (b"*1\r\n$9999999999\r\n", "invalid bulk length"),
        (b"SET a \"hello\r\n", "unbalanced quotes in request"),
        (b"SET a \"x\"y\r\n", "unbalanced quotes in request"),
    ];
    for (bytes, message) in cases {
        let (reply, closed) = raw_with_close(server.addr(), bytes);
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("-ERR Protocol error: {message}\r\n"),
            "for {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(closed, "closed after {:?}", String::from_utf8_lossy(bytes));
        assert_eq!(bystander.cmd(&["PING"]), b"+PONG\r\n");
    }
    // Commands before the bad frame are answered first.
    let (reply, closed) =
        raw_with_close(server.addr(), b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\nPING\r\n");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    );
    assert!(closed);
    // A bulk string outside an array is no frame error: it is read as inline commands.
    let (reply, closed) = raw_with_close(server.addr(), b"$3\r\nfoo\r\nQUIT\r\n");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR unknown command '$3', with args beginning with: \r\n\
         -ERR unknown command 'foo', with args beginning with: \r\n+OK\r\n"
    );
    assert!(closed);
    // Empty and negative arrays are skipped silently.
    let (reply, _) = raw_with_close(server.addr(), b"*0\r\n*-1\r\nPING\r\nQUIT\r\n");
    assert_eq!(String::from_utf8_lossy(&reply), "+PONG\r\n+OK\r\n");
    // An inline command longer than 64 KiB without a newline.
    let (reply, closed) = raw_with_close(server.addr(), &vec![b'a'; 70_000]);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert!(closed);
    assert_eq!(bystander.cmd(&["PING"]), b"+PONG\r\n");
}

/// strata's limits from its configuration: a bulk, an array or an inline command over its
/// limit is a protocol error, as Redis's own limits are.
#[test]
fn configured_protocol_limits() {
    let Some(server) = Server::start_with_config(
        "[server]\nmax_bulk_len = \"1KiB\"\nmax_array_len = 4\nmax_inline_len = \"1KiB\"\n",
    ) else {
        return;
    };
    let ok_reply = raw(server.addr(), b"*2\r\n$4\r\nECHO\r\n$1024\r\n");
    assert_eq!(ok_reply, b"", "a bulk at the limit is waited for");
    let cases: [(Vec<u8>, &str); 3] = [
        (
            b"*2\r\n$4\r\nECHO\r\n$1025\r\n".to_vec(),
            "invalid bulk length",
        ),
        (b"*5\r\n".to_vec(), "invalid multibulk length"),
        (vec![b'a'; 2000], "too big inline request"),
    ];
    for (bytes, message) in cases {
        let (reply, closed) = raw_with_close(server.addr(), &bytes);
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("-ERR Protocol error: {message}\r\n")
        );
        assert!(closed);
    }
    let mut con = server.con(false);
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
}

/// The default bulk limit (64 MiB) is below Redis's 512 MB: 100 MB is refused at once.
#[test]
fn default_bulk_limit() {
    if common::skip_unless_strata("default_bulk_limit") {
        return;
    }
    let server = Server::start();
    let (reply, closed) = raw_with_close(server.addr(), b"*2\r\n$4\r\nECHO\r\n$100000000\r\n");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(closed);
}

#[test]
fn scan_under_concurrent_writes() {
    let server = Server::start();
    let mut con = server.con(false);
    let mut pipe = redis::pipe();
    let mut base = BTreeSet::new();
    for n in 0..2000 {
        pipe.cmd("SET").arg(format!("base:{n}")).arg(n).ignore();
        base.insert(format!("base:{n}"));
    }
    pipe.exec(&mut con).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicUsize::new(0));
    let mut other = server.con(false);
    let churn = {
        let (stop, churned) = (Arc::clone(&stop), Arc::clone(&churned));
        std::thread::spawn(move || {
            let mut m = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for _ in 0..20 {
                    pipe.cmd("SET").arg(format!("churn:{m}")).arg(m).ignore();
                    if m >= 100 {
                        pipe.cmd("DEL").arg(format!("churn:{}", m - 100)).ignore();
                    }
                    m += 1;
                }
                pipe.exec(&mut other).unwrap();
                churned.fetch_add(20, Ordering::Relaxed);
            }
        })
    };
    // Let the churn get going before the scan starts.
    assert!(eventually(Duration::from_secs(5), || churned
        .load(Ordering::Relaxed)
        >= 100));
    let seen = scan_all(&mut con, &["COUNT", "10"]);
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    let missed: Vec<&String> = base.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "SCAN missed {} keys, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    assert!(seen
        .iter()
        .all(|k| k.starts_with("base:") || k.starts_with("churn:")));
}

#[test]
fn expiry() {
    let server = Server::start();
    let mut con = server.con(false);
    ok(&mut con, &["SET", "short", "v", "PX", "80"]);
    let pttl = i(&mut con, &["PTTL", "short"]);
    assert!(pttl == -2 || (1..=80).contains(&pttl), "PTTL {pttl}");
    assert!(
        eventually(Duration::from_secs(3), || s(&mut con, &["GET", "short"])
            .is_none()),
        "a PX 80 key still there after 3 s"
    );
    assert_eq!(i(&mut con, &["EXISTS", "short"]), 0);
    assert_eq!(i(&mut con, &["TTL", "short"]), -2);

    // A key nobody reads expires too: DBSIZE gets to 0 on its own.
    ok(&mut con, &["SET", "unread", "v", "PX", "50"]);
    assert!(
        eventually(Duration::from_secs(3), || i(&mut con, &["DBSIZE"]) == 0),
        "an expired key never left the keyspace"
    );

    // TTLs count down.
    ok(&mut con, &["SET", "k", "v", "PX", "2000"]);
    let first = i(&mut con, &["PTTL", "k"]);
    assert_in(first, 1..=2000, "PTTL");
    assert!(eventually(Duration::from_secs(3), || {
        i(&mut con, &["PTTL", "k"]) < first - 50
    }));
    assert_eq!(s(&mut con, &["GET", "k"]).as_deref(), Some("v"));
    // EXPIRE via PEXPIRE on an existing key.
    ok(&mut con, &["SET", "p", "v"]);
    assert_eq!(i(&mut con, &["PEXPIRE", "p", "60"]), 1);
    assert!(eventually(Duration::from_secs(3), || i(
        &mut con,
        &["EXISTS", "p"]
    ) == 0));
}

/// Any bytes, as key and value, come back as they went in, under either protocol.
#[test]
fn binary_roundtrip_property() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let server = Server::start();
    for resp3 in [false, true] {
        let con = std::cell::RefCell::new(server.con(resp3));
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..2048),
        );
        runner
            .run(&strategy, |(key, value)| {
                let con = &mut *con.borrow_mut();
                let set: Value = redis::cmd("SET").arg(&key).arg(&value).query(con).unwrap();
                prop_assert_eq!(set, Value::Okay);
                let got: Vec<u8> = redis::cmd("GET").arg(&key).query(con).unwrap();
                prop_assert_eq!(&got, &value);
                let len: usize = redis::cmd("STRLEN").arg(&key).query(con).unwrap();
                prop_assert_eq!(len, value.len());
                let gone: i64 = redis::cmd("DEL").arg(&key).query(con).unwrap();
                prop_assert_eq!(gone, 1);
                Ok(())
            })
            .unwrap();
    }
}
