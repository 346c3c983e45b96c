//! Shared helpers for the Redis-protocol integration tests: a server to talk to, and raw
//! sockets for what a client library will not send.
//!
//! `STRATA_TEST_SERVER=redis` runs the tests against a real `redis-server` (to prove they
//! state Redis's behaviour); anything else (the default) against `strata serve`.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server gets to answer its first PING.
const STARTUP: Duration = Duration::from_secs(5);

/// Tells apart the temporary files of the servers of one test process.
static NEXT_FILE: AtomicUsize = AtomicUsize::new(0);

/// True when the tests run against a real `redis-server` (`STRATA_TEST_SERVER=redis`).
pub fn redis_mode() -> bool {
    std::env::var("STRATA_TEST_SERVER").is_ok_and(|v| v.eq_ignore_ascii_case("redis"))
}

/// For tests that only make sense against strata: true (after a note on stderr) when they
/// should return at once because they run against Redis.
pub fn skip_unless_strata(test: &str) -> bool {
    if redis_mode() {
        eprintln!("{test}: strata-only, skipped against redis-server");
        return true;
    }
    false
}

/// A server process on ephemeral ports, killed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    /// What the server writes to stdout and stderr.
    log: PathBuf,
    /// The config file and the log file, removed on drop.
    files: Vec<PathBuf>,
}

impl Server {
    /// A fresh server of the kind `STRATA_TEST_SERVER` asks for, answering PING.
    pub fn start() -> Server {
        if redis_mode() {
            Self::redis(&[])
        } else {
            Self::strata(None)
        }
    }

    /// A strata server with `toml` as its `--config`; `None` (after a note) against Redis,
    /// whose configuration is not strata's: the test should then return.
    pub fn start_with_config(toml: &str) -> Option<Server> {
        if redis_mode() {
            eprintln!("strata config given: test skipped against redis-server");
            return None;
        }
        Some(Self::strata(Some(toml)))
    }

    /// A server that requires `AUTH password`: `requirepass` for Redis, `[server] password`
    /// for strata.
    pub fn start_with_password(password: &str) -> Server {
        if redis_mode() {
            Self::redis(&["--requirepass", password])
        } else {
            Self::strata(Some(&format!("[server]\npassword = {password:?}\n")))
        }
    }

    /// A `redis-server` of the test's own, with `extra` arguments (the shared tier of a
    /// fleet of strata servers, say).
    pub fn redis(extra: &[&str]) -> Server {
        Self::spawn(|port, _| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
                .args(extra);
            (cmd, Vec::new(), false)
        })
    }

    /// A strata server with `toml` as its `--config`, allowed at most `open_files` file
    /// descriptors (`ulimit -n`); `None` against Redis.
    pub fn start_with_open_files(toml: &str, open_files: u32) -> Option<Server> {
        if redis_mode() {
            eprintln!("strata config given: test skipped against redis-server");
            return None;
        }
        Some(Self::strata_with(Some(toml), Some(open_files)))
    }

    fn strata(config: Option<&str>) -> Server {
        Self::strata_with(config, None)
    }

    fn strata_with(config: Option<&str>, open_files: Option<u32>) -> Server {
        Self::spawn(|port, http| {
            let binary = env!("CARGO_BIN_EXE_strata");
            let mut cmd = match open_files {
                Some(n) => {
                    let mut sh = Command::new("sh");
                    sh.args([
                        "-c",
                        &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                        binary,
                    ]);
                    sh
                }
                None => Command::new(binary),
            };
            // Only the file given here configures the server, not the environment.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("STRATA_") {
                    cmd.env_remove(name);
                }
            }
            cmd.arg("serve")
                .args(["--resp-addr", &format!("127.0.0.1:{port}")])
                .args(["--http-addr", &format!("127.0.0.1:{http}")]);
            let mut files = Vec::new();
            if let Some(toml) = config {
                let path = temp_path("toml");
                std::fs::write(&path, toml).expect("writing the test config");
                cmd.arg("--config").arg(&path);
                files.push(path);
            }
            (cmd, files, true)
        })
    }

    /// Starts the command `make` builds for a RESP port and an HTTP port, and waits for
    /// PING. Ports are picked by binding port 0 and letting go, so another process may take
    /// one first: a server that exits at once is retried on new ports.
    fn spawn(make: impl Fn(u16, u16) -> (Command, Vec<PathBuf>, bool)) -> Server {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            match Self::spawn_at(free_port(), free_port(), &make) {
                Ok(server) => return server,
                Err(log) => {
                    eprintln!("server exited at start, retrying:\n{log}");
                    last_log = log;
                }
            }
        }
        panic!("server would not start:\n{last_log}");
    }

    /// Starts the command `make` builds for `port` and `http`, and waits for PING; `Err` with
    /// its log if it exits first.
    fn spawn_at(
        port: u16,
        http: u16,
        make: impl Fn(u16, u16) -> (Command, Vec<PathBuf>, bool),
    ) -> Result<Server, String> {
        let (mut cmd, mut files, has_http) = make(port, http);
        let log = temp_path("log");
        let log_file = std::fs::File::create(&log).expect("creating the server log");
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning the log handle"))
            .stderr(log_file);
        files.push(log.clone());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let http_addr = has_http.then(|| SocketAddr::from(([127, 0, 0, 1], http)));
        let mut server = Server {
            child,
            addr,
            http_addr,
            log: log.clone(),
            files,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("({status}) {log}"));
            }
            if answers_ping(addr) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("server on {addr} did not answer PING within {STARTUP:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills this `redis-server` at once (SIGKILL: no goodbye to its clients) and starts
    /// another, empty, on the same port (as a Redis without persistence comes back).
    pub fn restart_redis_empty(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
        let port = self.addr.port();
        let restarted = Self::spawn_at(port, 0, |port, _| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string()]).args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ]);
            (cmd, Vec::new(), false)
        })
        .unwrap_or_else(|log| panic!("redis-server would not start again on {port}: {log}"));
        *self = restarted;
    }

    /// The server process's peak resident memory in bytes (`VmHWM`, Linux only).
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process (SIGSTOP) until [`resume`](Self::resume): it then neither accepts
    /// nor answers, while the kernel still completes connections into its listen backlog.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill {signal} {pid} failed");
    }

    /// The RESP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin API's address (strata only).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
            .expect("http_addr: only strata serves the admin API")
    }

    /// True when this is `strata serve` rather than `redis-server`.
    pub fn is_strata(&self) -> bool {
        self.http_addr.is_some()
    }

    /// A `redis://` URL for the server, asking for RESP3 (`HELLO 3` at connect) or not.
    pub fn url(&self, resp3: bool) -> String {
        let base = format!("redis://{}/", self.addr);
        if resp3 {
            base + "?protocol=resp3"
        } else {
            base
        }
    }

    /// A connection through the `redis` crate (which also sends `CLIENT SETINFO` at
    /// connect, ignoring the replies), with a read timeout so a hung server fails a test.
    pub fn con(&self, resp3: bool) -> redis::Connection {
        let con = redis::Client::open(self.url(resp3))
            .expect("a valid URL")
            .get_connection()
            .expect("connecting to the test server");
        con.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("setting the read timeout");
        con
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit: its exit status, or
    /// `None` if it was still running (it is then killed, on drop).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.signal("-TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A raw connection, to see replies byte for byte.
    pub fn raw_con(&self) -> RawCon {
        RawCon::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A port nobody listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

fn temp_path(ext: &str) -> PathBuf {
    let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("strata-resp-test-{}-{n}.{ext}", std::process::id()))
}

fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    // A server that wants AUTH first is up too.
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
}

/// Writes `bytes` to a new connection to `addr` and returns everything read back until the
/// server closes the connection or nothing more comes for about a second.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    raw_with_close(addr, bytes).0
}

/// As [`raw`], and whether the server closed the connection (rather than going quiet).
pub fn raw_with_close(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("setting the read timeout");
    stream.write_all(bytes).expect("writing");
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the server closed (it may not have read all we sent) is a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A connection that sends commands as RESP arrays and returns each reply as the exact
/// bytes of its frame (RESP2 or RESP3).
pub struct RawCon {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawCon {
    pub fn connect(addr: SocketAddr) -> RawCon {
        let stream = TcpStream::connect(addr).expect("connecting");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("setting the read timeout");
        RawCon {
            writer: stream.try_clone().expect("cloning the stream"),
            reader: BufReader::new(stream),
        }
    }

    /// Sends one command and returns its reply's bytes.
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bytes(&args)
    }

    /// [`RawCon::cmd`], with the reply as (lossy) text for readable assertions.
    pub fn cmd_str(&mut self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.cmd(args)).into_owned()
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args));
        self.read_frame()
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing");
    }

    /// Reads one complete reply frame, returning its bytes.
    pub fn read_frame(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.frame_into(&mut out);
        out
    }

    fn line_into(&mut self, out: &mut Vec<u8>) -> String {
        let start = out.len();
        let n = self.reader.read_until(b'\n', out).expect("reading a reply");
        assert!(
            n > 0 && out.ends_with(b"\r\n"),
            "connection closed or bad line: {:?}",
            String::from_utf8_lossy(&out[start..])
        );
        String::from_utf8_lossy(&out[start + 1..out.len() - 2]).into_owned()
    }

    fn frame_into(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        let rest = self.line_into(out);
        let len = || -> i64 { rest.parse().expect("a length") };
        match out[start] {
            b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => {}
            b'$' | b'!' | b'=' => {
                if len() >= 0 {
                    let mut body = vec![0u8; len() as usize + 2];
                    self.reader.read_exact(&mut body).expect("reading a bulk");
                    out.extend_from_slice(&body);
                }
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..len().max(0) {
                    self.frame_into(out);
                }
            }
            b'%' | b'|' => {
                for _ in 0..len().max(0) * 2 {
                    self.frame_into(out);
                }
                if out[start] == b'|' {
                    // An attribute comes before the reply it describes.
                    self.frame_into(out);
                }
            }
            other => panic!("unknown RESP type byte {:?}", other as char),
        }
    }
}

/// A server error as Redis sends it after the `-`: `"CODE detail"`. Panics on success.
pub fn err_text<T: std::fmt::Debug>(result: redis::RedisResult<T>) -> String {
    match result {
        Ok(v) => panic!("expected an error reply, got {v:?}"),
        Err(e) => {
            let code = e
                .code()
                .unwrap_or_else(|| panic!("not a server error: {e}"));
            match e.detail() {
                Some(detail) => format!("{code} {detail}"),
                None => code.to_string(),
            }
        }
    }
}

/// Polls `done` until it is true or `within` passes; returns whether it became true.
pub fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
