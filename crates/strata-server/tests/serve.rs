//! What `strata serve` adds to Redis, through real Redis clients: namespaces chosen by key
//! prefix (their TTLs, limits and counters), tags and invalidation commands, the memory
//! budget under `CONFIG SET maxmemory`, `noeviction`, atomic counters under concurrency,
//! limits against abusive clients, the admin API beside the protocol, and a graceful stop.
//! `tests/resp.rs` checks the Redis commands themselves (also against a real redis-server).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::{err_text, eventually, Server};
use redis::Value;

const NAMESPACES: &str = r#"
max_bytes = "64MiB"
[namespaces.session]
ttl = "30m"
[namespaces.wallet]
max_bytes = "4MiB"
[server.prefixes]
"session:*" = "session"
"wallet:*" = "wallet"
"wallet:audit:*" = "default"
"#;

fn cmd<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn try_cmd<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// `INFO` as field → value.
fn info(con: &mut redis::Connection, section: &str) -> HashMap<String, String> {
    let text: String = cmd(con, &["INFO", section]);
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn keys_live_in_the_namespace_their_prefix_names_with_its_ttl() {
    let Some(server) = Server::start_with_config(NAMESPACES) else {
        return;
    };
    for (round, resp3) in [false, true].into_iter().enumerate() {
        let mut con = server.con(resp3);
        let _: () = cmd(&mut con, &["FLUSHALL"]);
        for (key, ns) in [
            ("session:abc", "session"),
            ("wallet:42", "wallet"),
            ("wallet:audit:1", "default"),
            ("walletx", "default"),
            ("other", "default"),
        ] {
            let got: String = cmd(&mut con, &["STRATA.NAMESPACE", key]);
            assert_eq!(got, ns, "{key}");
        }
        // SET without EX takes the namespace's TTL (30 minutes); elsewhere none.
        let _: () = cmd(&mut con, &["SET", "session:abc", "v"]);
        let _: () = cmd(&mut con, &["SET", "other", "v"]);
        let ttl: i64 = cmd(&mut con, &["TTL", "session:abc"]);
        assert!((1790..=1800).contains(&ttl), "TTL {ttl}");
        assert_eq!(cmd::<i64>(&mut con, &["TTL", "other"]), -1);
        // EX and PERSIST still win over it.
        let _: () = cmd(&mut con, &["SET", "session:x", "v", "EX", "5"]);
        assert_eq!(cmd::<i64>(&mut con, &["TTL", "session:x"]), 5);
        assert_eq!(cmd::<i64>(&mut con, &["PERSIST", "session:abc"]), 1);
        assert_eq!(cmd::<i64>(&mut con, &["TTL", "session:abc"]), -1);
        // Counters are per namespace.
        let _: Option<String> = cmd(&mut con, &["GET", "wallet:42"]);
        let _: Option<String> = cmd(&mut con, &["GET", "session:abc"]);
        let namespaces = info(&mut con, "namespaces");
        let wallet = &namespaces["ns_wallet"];
        // Counters run on across FLUSHALL: one miss a round.
        assert!(
            wallet.contains(&format!("misses={}", round + 1)),
            "{wallet}"
        );
        assert!(
            wallet.contains(&format!("max_bytes={}", 4 << 20)),
            "{wallet}"
        );
        assert!(
            namespaces["ns_session"].contains("keys=2"),
            "{namespaces:?}"
        );
        let stats: HashMap<String, HashMap<String, i64>> = cmd(&mut con, &["STRATA.STATS"]);
        assert_eq!(stats["session"]["hits"], if resp3 { 2 } else { 1 });
        assert_eq!(stats["wallet"]["keys"], 0);
        let one: HashMap<String, HashMap<String, i64>> = cmd(&mut con, &["STRATA.STATS", "wallet"]);
        assert_eq!(one.len(), 1);
        assert_eq!(
            err_text(try_cmd::<Value>(&mut con, &["STRATA.STATS", "nope"])),
            "ERR no namespace \"nope\" (configure it under [namespaces])"
        );
    }
}

#[test]
fn tags_and_invalidation_commands() {
    let config = format!(
        "{NAMESPACES}\n[events.\"user.changed\"]\nparams = [\"id\"]\nkeys = [\"user:{{id}}\"]\n"
    );
    let Some(server) = Server::start_with_config(&config) else {
        return;
    };
    let mut con = server.con(false);
    for key in [
        "wallet:1",
        "wallet:2",
        "session:1",
        "user:7",
        "user:8",
        "a1",
        "a2",
        "b1",
    ] {
        let _: () = cmd(&mut con, &["SET", key, "v"]);
    }
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.SETTAGS", "wallet:1", "u:1", "all"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.SETTAGS", "session:1", "u:1"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.SETTAGS", "missing", "u:1"]),
        0
    );
    // Tags survive an INCR-style rewrite of the value (APPEND keeps them).
    assert_eq!(cmd::<i64>(&mut con, &["APPEND", "wallet:1", "w"]), 2);
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.INVALIDATE", "TAG", "u:1"]),
        2
    );
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "wallet:1"]), None);
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "session:1"]), None);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["GET", "wallet:2"]).as_deref(),
        Some("v")
    );
    // A plain SET drops the tags it replaces.
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.SETTAGS", "wallet:2", "t2"]),
        1
    );
    let _: () = cmd(&mut con, &["SET", "wallet:2", "new"]);
    assert_eq!(cmd::<i64>(&mut con, &["STRATA.INVALIDATE", "TAG", "t2"]), 0);

    assert_eq!(
        cmd::<i64>(
            &mut con,
            &["STRATA.INVALIDATE", "EVENT", "user.changed", "id", "7"]
        ),
        1
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "user:7", "user:8"]), 1);
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.INVALIDATE", "PREFIX", "a"]),
        2
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.INVALIDATE", "PATTERN", "b?"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["STRATA.INVALIDATE", "KEY", "user:8"]),
        1
    );
    // A clear counts every entry it drops: the live wallet:2, and wallet:1 (whose tag was
    // invalidated) if the background purge, every 10 ms, has not removed it yet.
    let cleared: i64 = cmd(&mut con, &["STRATA.INVALIDATE", "NAMESPACE", "wallet"]);
    assert!((1..=2).contains(&cleared), "cleared {cleared}");
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "wallet:2"]), 0);
    // DBSIZE counts entries, as Redis counts keys not yet expired away: the tag-invalidated
    // session:1 leaves when the background thread purges it (it looks every 10 ms).
    assert!(eventually(Duration::from_secs(5), || cmd::<i64>(
        &mut con,
        &["DBSIZE"]
    ) == 0));
    assert_eq!(
        err_text(try_cmd::<Value>(
            &mut con,
            &["STRATA.INVALIDATE", "EVENT", "nope"]
        )),
        "ERR no rule for event \"nope\""
    );
    assert_eq!(
        err_text(try_cmd::<Value>(
            &mut con,
            &["STRATA.INVALIDATE", "NAMESPACE", "nope"]
        )),
        "ERR no namespace \"nope\" (configure it under [namespaces])"
    );
    assert_eq!(
        err_text(try_cmd::<Value>(
            &mut con,
            &["STRATA.INVALIDATE", "COLOUR", "red"]
        )),
        "ERR syntax error"
    );
}

#[test]
fn config_set_maxmemory_shrinks_the_budget_and_evicts() {
    let Some(server) = Server::start_with_config("max_bytes = \"32MiB\"\n") else {
        return;
    };
    let mut con = server.con(false);
    let value = "x".repeat(1000);
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(&value).ignore();
    }
    let _: () = pipe.query(&mut con).expect("pipeline");
    let before: i64 = cmd(&mut con, &["DBSIZE"]);
    assert!(before > 15_000, "32 MiB holds most of 20 MB: {before}");
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory", "4mb"]);
    let got: HashMap<String, String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(got["maxmemory"], (4u64 << 20).to_string());
    let after: i64 = cmd(&mut con, &["DBSIZE"]);
    assert!(
        after < 4_000,
        "4 MiB holds fewer than 4,000 entries of 1 KB: {after}"
    );
    let memory = info(&mut con, "memory");
    let used: u64 = memory["used_memory"].parse().expect("a number");
    assert!(used <= 4 << 20, "used_memory {used}");
    let evicted: u64 = info(&mut con, "stats")["evicted_keys"]
        .parse()
        .expect("a number");
    assert!(evicted as i64 >= before - after, "evicted {evicted}");
    assert_eq!(
        err_text(try_cmd::<Value>(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "0"]
        )),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - strata always \
         has a memory bound; 0 (no limit) is not supported"
    );
    assert!(err_text(try_cmd::<Value>(
        &mut con,
        &["CONFIG", "SET", "maxmemory", "1000"]
    ))
    .starts_with("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - "));
    let got: HashMap<String, String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(
        got["maxmemory"],
        (4u64 << 20).to_string(),
        "a refused value changes nothing"
    );
    // A budget past what a gauge can show (2^64 - 1 once broke every /metrics scrape) is
    // refused in the parameter's own words, and changes nothing; a smaller one still holds.
    assert_eq!(
        err_text(try_cmd::<Value>(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "18446744073709551615"],
        )),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - more than the \
         largest budget, 4611686018427387904 bytes (4 EiB)"
    );
    let got: HashMap<String, String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(got["maxmemory"], (4u64 << 20).to_string());
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory", "2mb"]);
    for i in 0..5_000 {
        let _: () = cmd(&mut con, &["SET", &format!("again{i}"), &value]);
    }
    let used: u64 = info(&mut con, "memory")["used_memory"]
        .parse()
        .expect("a number");
    assert!(used <= 2 << 20, "used_memory {used} past a 2 MiB budget");
}

#[test]
fn noeviction_refuses_writes_with_oom_and_loses_nothing() {
    let config = "max_bytes = \"2MiB\"\n[server]\nmaxmemory_policy = \"noeviction\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut con = server.con(false);
    let value = "x".repeat(1000);
    let mut stored = Vec::new();
    let mut oom = 0;
    for i in 0..5_000 {
        let key = format!("k{i}");
        match try_cmd::<()>(&mut con, &["SET", &key, &value]) {
            Ok(()) => stored.push(key),
            Err(e) => {
                assert_eq!(
                    err_text::<()>(Err(e)),
                    "OOM command not allowed when used memory > 'maxmemory'."
                );
                oom += 1;
            }
        }
    }
    assert!(
        oom > 0 && !stored.is_empty(),
        "stored {}, refused {oom}",
        stored.len()
    );
    for key in &stored {
        let got: Option<String> = cmd(&mut con, &["GET", key]);
        assert!(
            got.is_some(),
            "{key} was acknowledged and must still be there"
        );
    }
    // Overwriting a stored key with a value of the same size needs no room.
    let _: () = cmd(&mut con, &["SET", &stored[0], &value]);
    // Nor may tags make room by evicting.
    let tags: Vec<String> = (0..200).map(|i| format!("a-rather-long-tag-{i}")).collect();
    let mut settags = vec!["STRATA.SETTAGS", stored[1].as_str()];
    settags.extend(tags.iter().map(String::as_str));
    let before: i64 = cmd(&mut con, &["DBSIZE"]);
    let _ = try_cmd::<i64>(&mut con, &settags);
    assert_eq!(
        cmd::<i64>(&mut con, &["DBSIZE"]),
        before,
        "nothing was evicted"
    );
    // Back to an evicting policy: writes go through again.
    let _: () = cmd(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let _: () = cmd(&mut con, &["SET", "late", &value]);
    let got: HashMap<String, String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory-policy"]);
    assert_eq!(got["maxmemory-policy"], "allkeys-lru");
}

#[test]
fn concurrent_incr_and_append_lose_nothing() {
    let server = Server::start();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut con = server.con(false);
            thread::spawn(move || {
                for _ in 0..500 {
                    let _: i64 = cmd(&mut con, &["INCR", "counter"]);
                    let _: i64 = cmd(&mut con, &["APPEND", "log", "x"]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    let mut con = server.con(false);
    assert_eq!(cmd::<i64>(&mut con, &["GET", "counter"]), 2_000);
    assert_eq!(cmd::<i64>(&mut con, &["STRLEN", "log"]), 2_000);
}

#[test]
fn a_value_larger_than_a_namespace_can_hold_is_refused_and_the_server_carries_on() {
    let config = "max_bytes = \"8MiB\"\n[namespaces.tiny]\nmax_bytes = \"1MiB\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut con = server.con(false);
    let big = "x".repeat(2 << 20);
    let err = err_text(try_cmd::<()>(&mut con, &["SET", "tiny:big", &big]));
    assert!(
        err.starts_with("ERR value too large for namespace 'tiny'"),
        "{err}"
    );
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "tiny:big"]), None);
    let _: () = cmd(&mut con, &["SET", "tiny:small", "ok"]);
    assert_eq!(cmd::<String>(&mut con, &["GET", "tiny:small"]), "ok");
}

#[test]
fn a_reply_past_the_output_buffer_closes_that_client_only() {
    let config = "[server]\noutput_buffer = \"64KiB\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut other = server.con(false);
    let mut con = server.con(false);
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.cmd("SET").arg(format!("key:{i:06}")).arg("v").ignore();
    }
    let _: () = pipe.query(&mut con).expect("pipeline");
    assert!(
        try_cmd::<Vec<String>>(&mut con, &["KEYS", "*"]).is_err(),
        "closed"
    );
    // Smaller replies are fine, for this client on a new connection and for the others.
    let mut con = server.con(false);
    let few: Vec<String> = cmd(&mut con, &["KEYS", "key:00001*"]);
    assert_eq!(few.len(), 10);
    assert_eq!(cmd::<i64>(&mut other, &["DBSIZE"]), 10_000);
}

#[test]
fn max_clients_and_idle_timeout() {
    let config = "[server]\nmax_clients = 2\nidle_timeout = \"300ms\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut a = server.con(false);
    let mut b = server.con(false);
    let _: () = cmd(&mut a, &["PING"]);
    let _: () = cmd(&mut b, &["PING"]);
    let reply = common::raw(server.addr(), b"PING\r\n");
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    // Idle clients are closed; their places free up.
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut c = TcpStream::connect(server.addr()).expect("connect");
            c.write_all(b"PING\r\n").expect("write");
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).unwrap_or(0);
            &buf[..n] == b"+PONG\r\n"
        }),
        "idle connections were never closed"
    );
    assert!(
        try_cmd::<Value>(&mut a, &["PING"]).is_err(),
        "the idle client was closed"
    );
}

#[test]
fn the_admin_api_serves_the_same_store() {
    let Some(server) = Server::start_with_config(NAMESPACES) else {
        return;
    };
    let mut con = server.con(false);
    let _: () = cmd(&mut con, &["SET", "wallet:1", "v"]);
    let _: Option<String> = cmd(&mut con, &["GET", "wallet:1"]);
    let url = format!("http://{}/stats", server.http_addr());
    let stats: serde_json::Value = ureq::get(&url)
        .call()
        .expect("GET /stats")
        .body_mut()
        .read_json()
        .expect("JSON");
    assert_eq!(stats["namespaces"]["wallet"]["stats"]["hits"], 1);
    assert_eq!(stats["namespaces"]["wallet"]["stats"]["entries"], 1);
    let url = format!("http://{}/invalidate", server.http_addr());
    ureq::post(&url)
        .send_json(serde_json::json!({"prefix": "wallet:"}))
        .expect("POST /invalidate");
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "wallet:1"]), 0);
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let Some(mut server) = Server::start_with_config("") else {
        return;
    };
    let mut con = server.con(false);
    let _: () = cmd(&mut con, &["SET", "k", "v"]);
    let status = server.terminate(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status {status:?}"
    );
    assert!(
        try_cmd::<Value>(&mut con, &["PING"]).is_err(),
        "connections are closed"
    );
}

#[test]
fn mget_of_one_big_value_many_times_is_cut_off_at_the_output_limit() {
    let config = "[server]\noutput_buffer = \"2MiB\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut con = server.con(false);
    let big = "x".repeat(512 << 10);
    let _: () = cmd(&mut con, &["SET", "big", &big]);
    // 10,000 copies of 512 KiB would be a 5 GB reply: the connection is closed instead.
    let mut mget = redis::cmd("MGET");
    for _ in 0..10_000 {
        mget.arg("big");
    }
    assert!(
        mget.query::<Vec<String>>(&mut con).is_err(),
        "closed, not answered"
    );
    let peak = server.peak_rss().expect("VmHWM");
    assert!(peak < 256 << 20, "the server peaked at {peak} bytes");
    let mut con = server.con(false);
    let two: Vec<String> = cmd(&mut con, &["MGET", "big", "big"]);
    assert_eq!(two.len(), 2, "a reply within the limit is answered");
}

#[test]
fn a_client_dripping_arguments_holds_only_what_it_sent() {
    let Some(server) = Server::start_with_config("") else {
        return;
    };
    // Each connection starts a 2,000-argument command and sends one-byte arguments in
    // separate writes. Held as slices of the read buffer, each would keep a 16 KiB chunk
    // alive (about 160 MB here); copied out between reads they hold about 33 bytes each.
    let threads: Vec<_> = (0..5)
        .map(|_| {
            let addr = server.addr();
            thread::spawn(move || {
                let mut c = TcpStream::connect(addr).expect("connect");
                c.set_nodelay(true).expect("nodelay");
                c.write_all(b"*2001\r\n$3\r\nDEL\r\n").expect("write");
                for _ in 0..2_000 {
                    c.write_all(b"$1\r\na\r\n").expect("write");
                    thread::sleep(Duration::from_micros(50));
                }
                let mut reply = [0u8; 16];
                let n = c.read(&mut reply).expect("read");
                assert_eq!(&reply[..n], b":0\r\n");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    let peak = server.peak_rss().expect("VmHWM");
    assert!(peak < 64 << 20, "the server peaked at {peak} bytes");
}

#[test]
fn before_auth_only_small_commands_are_read() {
    let Some(server) = Server::start_with_config("[server]\npassword = \"pw\"\n") else {
        return;
    };
    let big = "x".repeat(20_000);
    let frame = common::encode(&[b"SET", b"k", big.as_bytes()]);
    assert_eq!(
        common::raw(server.addr(), &frame),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    let many: Vec<&[u8]> = std::iter::once(&b"DEL"[..])
        .chain([&b"k"[..]; 11])
        .collect();
    assert_eq!(
        common::raw(server.addr(), &common::encode(&many)),
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
    // After AUTH the configured limits apply.
    let mut auth = common::encode(&[b"AUTH", b"pw"]);
    auth.extend(frame);
    assert_eq!(common::raw(server.addr(), &auth), b"+OK\r\n+OK\r\n");
}

/// A numeric `INFO` field.
fn info_number(con: &mut redis::Connection, section: &str, field: &str) -> u64 {
    info(con, section)
        .get(field)
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
        .parse()
        .unwrap_or_else(|e| panic!("INFO {field}: {e}"))
}

/// Whether the server has closed `stream` (reading gives the end of the stream or a reset);
/// waits up to 10 seconds for it.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting the read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Opens a connection and sends the start of `SET key <value of len bytes>` with `sent` bytes
/// of the value: a client holding an unfinished command. Write errors (the server may close
/// it at once) are left to the caller to notice.
fn unfinished_set(server: &Server, key: &str, len: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    let head = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${len}\r\n", key.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&vec![b'v'; sent]);
    stream
}

/// Sends the rest of the value `unfinished_set` started, and reads the reply.
fn finish_set(stream: &mut TcpStream, len: usize, sent: usize) -> Vec<u8> {
    let mut rest = vec![b'v'; len - sent];
    rest.extend_from_slice(b"\r\n");
    stream.write_all(&rest).expect("the rest of the value");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting the read timeout");
    let mut reply = [0u8; 16];
    let n = stream.read(&mut reply).expect("the reply");
    reply[..n].to_vec()
}

/// Polls `INFO memory` until all clients' buffers hold at least `bytes`.
fn wait_for_client_memory(con: &mut redis::Connection, bytes: u64) {
    assert!(
        eventually(Duration::from_secs(10), || info_number(
            con,
            "memory",
            "mem_clients_normal"
        ) >= bytes),
        "client buffers never reached {bytes} bytes"
    );
}

#[test]
fn unfinished_commands_past_max_client_memory_close_the_biggest_client() {
    let config = "[server]\nmax_bulk_len = \"1MiB\"\nmax_client_memory = \"1MiB\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut control = server.con(false);
    assert_eq!(
        info_number(&mut control, "memory", "maxmemory_clients"),
        1 << 20
    );
    // Each client announces a value and sends the first 100 KB of it: the server holds a
    // buffer the size announced (these are counted as soon as the header is read).
    let mut a = unfinished_set(&server, "a", 300_000, 100_000);
    wait_for_client_memory(&mut control, 300_000);
    let mut b = unfinished_set(&server, "b", 350_000, 100_000);
    wait_for_client_memory(&mut control, 650_000);
    assert_eq!(info_number(&mut control, "stats", "evicted_clients"), 0);
    // 300 + 350 + 500 thousand pass 1 MiB: the biggest, the newcomer, is closed.
    let mut c = unfinished_set(&server, "c", 500_000, 100_000);
    assert!(closed_by_server(&mut c), "the biggest client was closed");
    assert_eq!(info_number(&mut control, "stats", "evicted_clients"), 1);
    let held = info_number(&mut control, "memory", "mem_clients_normal");
    assert!(held <= 1 << 20, "{held} bytes held after the eviction");
    // The others were not touched: they finish their commands.
    assert_eq!(finish_set(&mut a, 300_000, 100_000), b"+OK\r\n");
    assert_eq!(finish_set(&mut b, 350_000, 100_000), b"+OK\r\n");
    assert_eq!(cmd::<i64>(&mut control, &["STRLEN", "b"]), 350_000);
    assert_eq!(cmd::<i64>(&mut control, &["EXISTS", "c"]), 0);
}

#[test]
fn many_held_arguments_count_against_max_client_memory() {
    // A command may hold up to twice max_bulk_len: 2 MiB, more than all clients together.
    let config = "[server]\nmax_bulk_len = \"1MiB\"\nmax_client_memory = \"1MiB\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut control = server.con(false);
    // An MGET announcing `total` keys, with `sent` one-byte keys sent: each held key costs
    // its byte and a 32-byte handle, and the vector holding them grows by doubling.
    let start = |total: usize, sent: usize| {
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        let mut head = format!("*{}\r\n$4\r\nMGET\r\n", total + 1).into_bytes();
        head.extend(b"$1\r\nk\r\n".repeat(sent));
        let _ = stream.write_all(&head);
        stream
    };
    let mut a = start(6_000, 5_000);
    wait_for_client_memory(&mut control, 260_000);
    let mut b = start(6_000, 5_000);
    wait_for_client_memory(&mut control, 520_000);
    assert_eq!(info_number(&mut control, "stats", "evicted_clients"), 0);
    let mut c = start(20_000, 12_000);
    assert!(closed_by_server(&mut c), "the biggest client was closed");
    assert_eq!(info_number(&mut control, "stats", "evicted_clients"), 1);
    // The others finish their MGETs and are answered.
    for client in [&mut a, &mut b] {
        client
            .write_all(&b"$1\r\nk\r\n".repeat(1_000))
            .expect("the rest of the keys");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("setting the read timeout");
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        // 6,000 nulls: "*6000\r\n" and "$-1\r\n" each.
        while reply.len() < 7 + 6_000 * 5 {
            let n = client.read(&mut buf).expect("the reply");
            assert!(n > 0, "closed before the reply");
            reply.extend_from_slice(&buf[..n]);
        }
        assert!(reply.starts_with(b"*6000\r\n$-1\r\n"));
    }
}

#[test]
fn a_reply_past_max_client_memory_closes_the_biggest_client_not_the_one_writing() {
    let config = "[server]\nmax_bulk_len = \"1MiB\"\nmax_client_memory = \"1MiB\"\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    let mut control = server.con(false);
    let big = "x".repeat(64 << 10);
    let _: () = cmd(&mut control, &["SET", "big", &big]);
    // A client holding the start of a 700 KB value...
    let mut holder = unfinished_set(&server, "held", 700_000, 10_000);
    wait_for_client_memory(&mut control, 700_000);
    // ...and one asking for six copies of a 64 KiB value: about 400 KB, which takes all
    // clients past 1 MiB while the reply is built. The holder has more: it goes.
    let mut reader = server.con(false);
    let six: Vec<Vec<u8>> = cmd(
        &mut reader,
        &["MGET", "big", "big", "big", "big", "big", "big"],
    );
    assert_eq!(six.len(), 6);
    assert!(six.iter().all(|v| v.len() == 64 << 10));
    assert!(
        closed_by_server(&mut holder),
        "the biggest client was closed"
    );
    assert_eq!(info_number(&mut control, "stats", "evicted_clients"), 1);
    // Asking for a hundred copies (6.4 MB) makes the reader the biggest by far: it goes,
    // the others carry on.
    let mut hundred = redis::cmd("MGET");
    for _ in 0..100 {
        hundred.arg("big");
    }
    assert!(
        hundred.query::<Vec<Vec<u8>>>(&mut reader).is_err(),
        "closed, not answered"
    );
    assert_eq!(info_number(&mut control, "stats", "evicted_clients"), 2);
    assert_eq!(cmd::<String>(&mut control, &["PING"]), "PONG");
    let held = info_number(&mut control, "memory", "mem_clients_normal");
    assert!(held < 64 << 10, "{held} bytes still held");
}

#[test]
fn idle_clients_give_their_buffers_back() {
    let Some(server) = Server::start_with_config("") else {
        return;
    };
    let mut control = server.con(false);
    let _: () = cmd(&mut control, &["SET", "v", &"x".repeat(20 << 10)]);
    // Fifty clients each read a 20 KiB value, then go quiet.
    let mut clients: Vec<redis::Connection> = (0..50).map(|_| server.con(false)).collect();
    for client in &mut clients {
        let value: Vec<u8> = cmd(client, &["GET", "v"]);
        assert_eq!(value.len(), 20 << 10);
    }
    // What they hold now is next to nothing (a 20 KiB reply buffer each, kept, would be
    // 1 MB): only the control connection's own small buffers remain.
    let held = info_number(&mut control, "memory", "mem_clients_normal");
    assert!(held < 16 << 10, "{held} bytes held by idle clients");
    assert_eq!(
        info_number(&mut control, "clients", "connected_clients"),
        51
    );
}

#[test]
fn maxmemory_clients_is_a_share_of_maxmemory_or_a_size() {
    let Some(server) = Server::start_with_config("max_bytes = \"1GiB\"\n") else {
        return;
    };
    let mut con = server.con(false);
    let got: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory-clients"]);
    assert_eq!(got, ["maxmemory-clients", "25%"]);
    assert_eq!(
        info_number(&mut con, "memory", "maxmemory_clients"),
        256 << 20
    );
    // A share follows the budget, but never below the most one client may hold (a whole
    // command of twice max_bulk_len, or a whole reply of output_buffer: 128 MiB here).
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory", "2gb"]);
    assert_eq!(
        info_number(&mut con, "memory", "maxmemory_clients"),
        512 << 20
    );
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory-clients", "1%"]);
    assert_eq!(
        info_number(&mut con, "memory", "maxmemory_clients"),
        128 << 20
    );
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory-clients", "64mb"]);
    assert_eq!(
        info_number(&mut con, "memory", "maxmemory_clients"),
        64 << 20
    );
    let got: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory-clients"]);
    assert_eq!(
        got,
        ["maxmemory-clients", (64u64 << 20).to_string().as_str()]
    );
    for bad in ["0", "0%", "150%", "lots"] {
        let err = err_text(try_cmd::<()>(
            &mut con,
            &["CONFIG", "SET", "maxmemory-clients", bad],
        ));
        assert!(err.contains("maxmemory-clients"), "{bad}: {err}");
    }
    assert_eq!(
        info_number(&mut con, "memory", "maxmemory_clients"),
        64 << 20
    );
}

#[test]
fn a_ttl_strata_cannot_keep_is_refused_not_stored_as_another() {
    let Some(server) = Server::start_with_config("") else {
        return;
    };
    let mut con = server.con(false);
    // 2^64 nanoseconds and more: once stored with no expiry at all.
    for (args, command) in [
        (&["SET", "k", "v", "EX", "18446744074"][..], "set"),
        (&["SET", "k", "v", "PX", "18446744073710"], "set"),
        (&["SETEX", "k", "18446744074", "v"], "setex"),
        (&["PSETEX", "k", "18446744073710", "v"], "psetex"),
    ] {
        let err = err_text(try_cmd::<()>(&mut con, args));
        assert_eq!(
            err,
            format!("ERR invalid expire time in '{command}' command")
        );
        assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "k"]), 0, "{args:?}");
    }
    // On a key that exists, an expiry that far away changes nothing (once clamped).
    let _: () = cmd(&mut con, &["SET", "k", "v", "EX", "100"]);
    let far_deadline = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 9_300_000_000)
        .to_string();
    for (args, command) in [
        (&["EXPIRE", "k", "4611686018427387"][..], "expire"),
        (&["PEXPIRE", "k", "4611686018427387000"], "pexpire"),
        (&["EXPIREAT", "k", far_deadline.as_str()], "expireat"),
        (&["GETEX", "k", "EX", "9223372037"], "getex"),
    ] {
        let err = err_text(try_cmd::<i64>(&mut con, args));
        assert_eq!(
            err,
            format!("ERR invalid expire time in '{command}' command")
        );
        let ttl: i64 = cmd(&mut con, &["TTL", "k"]);
        assert!((99..=100).contains(&ttl), "{args:?} left TTL {ttl}");
    }
    // Up to 2^63 - 1 nanoseconds (about 292 years), a TTL is kept exactly.
    let _: () = cmd(&mut con, &["SET", "k", "v", "EX", "9223372036"]);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "k"]), 9_223_372_036);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "k", "4611686018"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "k"]), 4_611_686_018);
}

#[test]
fn an_error_at_a_size_limit_reaches_a_client_that_sends_the_whole_command_first() {
    let config = "[server]\nmax_bulk_len = \"1MiB\"\nmax_array_len = 1000\n";
    let Some(server) = Server::start_with_config(config) else {
        return;
    };
    // The redis crate writes a whole command before it reads: the server refuses the
    // command at its header, and must still be reading (and discarding) when the rest
    // arrives, or closing the socket resets it and the error is lost.
    let mut con = server.con(false);
    let mut mset = redis::cmd("MSET");
    for i in 0..50_000 {
        mset.arg(format!("key:{i}")).arg("value");
    }
    assert_eq!(
        err_text(mset.query::<()>(&mut con)),
        "ERR Protocol error: invalid multibulk length"
    );
    let mut con = server.con(false);
    let too_big = "x".repeat((1 << 20) + 1);
    assert_eq!(
        err_text(try_cmd::<()>(&mut con, &["SET", "k", &too_big])),
        "ERR Protocol error: invalid bulk length"
    );
    let mut con = server.con(false);
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn a_burst_of_connects_waits_in_the_listen_backlog() {
    let Some(server) = Server::start_with_config("") else {
        return;
    };
    // While the server is stopped, the kernel completes connections into the listen
    // backlog and drops the rest: 300 fit in 511, not in the 128 of a default listener.
    server.pause();
    let addr = server.addr();
    let connects: Vec<_> = (0..300)
        .map(|_| {
            thread::spawn(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        })
        .collect();
    let streams: Vec<TcpStream> = connects
        .into_iter()
        .filter_map(|t| t.join().expect("no panic"))
        .collect();
    server.resume();
    assert_eq!(streams.len(), 300, "connections completed while stopped");
    for mut stream in streams {
        stream.write_all(b"PING\r\n").expect("write");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("setting the read timeout");
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).expect("PONG");
        assert_eq!(&reply, b"+PONG\r\n");
    }
}

#[test]
fn running_out_of_descriptors_backs_off_and_warns_once_a_second() {
    let Some(server) = Server::start_with_open_files("", 40) else {
        return;
    };
    let started = std::time::Instant::now();
    // More connections than descriptors: those past the limit wait in the backlog while
    // accept fails with EMFILE.
    let mut streams: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(server.addr()).ok())
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let log = server.log();
    let warnings = log.matches("accept failed").count();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(warnings >= 1, "no warning:\n{log}");
    // At most one a second (the old loop warned every 50 ms).
    assert!(
        warnings as f64 <= elapsed.ceil() + 1.0,
        "{warnings} warnings in {elapsed:.1} s:\n{log}"
    );
    // Once descriptors are free again, the waiting connections are served.
    streams.truncate(5);
    let mut con = server.con(false);
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn refusals_at_max_clients_are_logged_once_a_second() {
    let Some(server) = Server::start_with_config("[server]\nmax_clients = 1\n") else {
        return;
    };
    let started = std::time::Instant::now();
    // The one client allowed (once the harness's own check has left).
    let mut one = None;
    assert!(eventually(Duration::from_secs(5), || {
        let mut c = TcpStream::connect(server.addr()).expect("connect");
        c.write_all(b"PING\r\n").expect("write");
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        let served = &buf[..n] == b"+PONG\r\n";
        one = Some(c);
        served
    }));
    for _ in 0..20 {
        let reply = common::raw(server.addr(), b"PING\r\n");
        assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    }
    let log = server.log();
    let warnings = log.matches("max_clients reached").count();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(warnings >= 1, "no warning:\n{log}");
    assert!(
        warnings as f64 <= elapsed.ceil() + 1.0,
        "{warnings} warnings in {elapsed:.1} s:\n{log}"
    );
}
