//! `resp-load`: a mixed GET/SET load over TCP against Redis-protocol servers, for a fixed
//! time, so a fleet of `strata serve` instances and Redis alone can be measured the same way.
//!
//! Each client is one connection and one task; client `i` talks to server `i % servers`.
//! A client writes `--pipeline` commands in one write (GET with probability `--read-ratio`,
//! else SET of a `--value-size` value, on key `key:{n}` with `n` uniform in `0..keys` from
//! its own seeded [`SmallRng`]), then reads exactly that many replies, and again until the
//! deadline. The first second is a warm-up: only batches that complete while the load is
//! [`MEASURING`] are counted, and the rate is those operations over the measured time.
//!
//! Replies are not decoded, only skipped ([`skip_reply`]): the load needs to know where a
//! reply ends, whether a GET found nothing, and whether the server answered with an error,
//! which is counted and reported rather than ignored.
//!
//! `--preload` first SETs every key once, 1000 keys a batch, batch `b` through server
//! `b % servers` (one connection per server, all servers at once), so reads hit and each
//! server is written a share of the keys.

use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Time run before the measured window, uncounted: connections settle, caches fill.
const WARM_UP: Duration = Duration::from_secs(1);

/// How long clients may take to finish their last batch once the deadline has passed
/// before the run is given up (a server that stopped answering).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Keys per preload batch (one write, then as many replies).
const PRELOAD_BATCH: u64 = 1000;

/// The phase of the load before [`WARM_UP`] has passed: batches are not counted.
const WARMING: u8 = 0;
/// The measured window: a batch that completes now is counted.
const MEASURING: u8 = 1;
/// Past the deadline: clients finish their batch and return.
const STOPPED: u8 = 2;

/// What the subcommand was asked to do (checked by the caller).
#[derive(Debug, Clone)]
pub struct Params {
    /// `host:port` of each server.
    pub servers: Vec<String>,
    pub clients: usize,
    pub pipeline: usize,
    /// Measured time; zero runs only the preload.
    pub seconds: Duration,
    pub read_ratio: f64,
    pub keys: u64,
    pub value_size: usize,
    pub preload: bool,
    /// Worker threads of the tokio runtime.
    pub threads: usize,
}

/// The outcome, printed as one line of JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ops_per_sec: f64,
    /// GETs and SETs completed in the measured window (those answered with an error too:
    /// any error fails the run, so a rate with errors is not a result).
    pub ops: u64,
    pub reads: u64,
    pub writes: u64,
    /// GETs in the measured window that found no value (`$-1` or `_`).
    pub misses: u64,
    /// Error replies over the whole run, preload and warm-up included.
    pub errors: u64,
    /// The measured time.
    pub seconds: f64,
    pub servers: usize,
    pub clients: usize,
    pub pipeline: usize,
    /// The text of the first error reply, for the message when `errors > 0`.
    #[serde(skip)]
    pub first_error: Option<String>,
}

/// Runs the load on a multi-thread runtime of `params.threads` workers.
pub fn run(params: &Params) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(params.threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(load(params))
}

async fn load(params: &Params) -> anyhow::Result<Report> {
    let value: Arc<[u8]> = vec![b'x'; params.value_size].into();
    let mut total = Tally::default();
    if params.preload {
        let started = Instant::now();
        total.add(&preload(&params.servers, params.keys, &value).await?);
        eprintln!(
            "# resp-load: preloaded {} keys through {} server(s) in {:.2}s",
            params.keys,
            params.servers.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let (measured, elapsed) = if params.seconds.is_zero() {
        (Tally::default(), Duration::ZERO)
    } else {
        measure(params, &value).await?
    };
    total.add(&measured);
    let ops = total.reads + total.writes;
    let seconds = elapsed.as_secs_f64();
    Ok(Report {
        ops_per_sec: if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        },
        ops,
        reads: total.reads,
        writes: total.writes,
        misses: total.misses,
        errors: total.errors,
        seconds,
        servers: params.servers.len(),
        clients: params.clients,
        pipeline: params.pipeline,
        first_error: total.first_error,
    })
}

/// The workload every client draws its batches from.
struct Workload {
    pipeline: usize,
    read_ratio: f64,
    keys: u64,
    value: Arc<[u8]>,
}

/// Connects the clients, runs the warm-up and the measured window, and returns the
/// clients' tallies added up with the measured time.
async fn measure(params: &Params, value: &Arc<[u8]>) -> anyhow::Result<(Tally, Duration)> {
    let workload = Arc::new(Workload {
        pipeline: params.pipeline,
        read_ratio: params.read_ratio,
        keys: params.keys,
        value: Arc::clone(value),
    });
    let phase = Arc::new(AtomicU8::new(WARMING));
    let mut clients: Vec<(&str, JoinHandle<anyhow::Result<Tally>>)> =
        Vec::with_capacity(params.clients);
    for id in 0..params.clients {
        let server = params.servers[id % params.servers.len()].as_str();
        let conn = connect(server).await?;
        let (workload, phase) = (Arc::clone(&workload), Arc::clone(&phase));
        clients.push((
            server,
            tokio::spawn(client(conn, id as u64, workload, phase)),
        ));
    }

    tokio::time::sleep(WARM_UP).await;
    phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(params.seconds).await;
    phase.store(STOPPED, Ordering::Relaxed);
    let elapsed = started.elapsed();

    let mut total = Tally::default();
    let drain_deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    for (server, handle) in clients {
        let abort = handle.abort_handle();
        let tally = match tokio::time::timeout_at(drain_deadline, handle).await {
            Ok(joined) => joined.context("a client task panicked")?,
            Err(_) => {
                abort.abort();
                bail!(
                    "a client of {server} did not finish its batch within {DRAIN_TIMEOUT:?} \
                     of the deadline"
                );
            }
        };
        total.add(&tally.with_context(|| format!("a client of {server}"))?);
    }
    Ok((total, elapsed))
}

/// One client: batches of `pipeline` commands until the load is [`STOPPED`].
async fn client(
    mut conn: TcpStream,
    id: u64,
    workload: Arc<Workload>,
    phase: Arc<AtomicU8>,
) -> anyhow::Result<Tally> {
    let mut rng = SmallRng::seed_from_u64(id);
    let mut commands = Commands::new(&workload.value);
    let mut replies = ReplyReader::default();
    let mut tally = Tally::default();
    loop {
        commands.clear();
        let mut gets = 0;
        for _ in 0..workload.pipeline {
            let key = rng.random_range(0..workload.keys);
            if rng.random_bool(workload.read_ratio) {
                commands.get(key);
                gets += 1;
            } else {
                commands.set(key);
            }
        }
        conn.write_all(commands.bytes()).await?;
        let batch = replies.read(&mut conn, workload.pipeline).await?;
        tally.errors += batch.errors;
        if tally.first_error.is_none() {
            tally.first_error = batch.first_error;
        }
        match phase.load(Ordering::Relaxed) {
            MEASURING => {
                tally.reads += gets;
                tally.writes += workload.pipeline as u64 - gets;
                tally.misses += batch.nils;
            }
            STOPPED => return Ok(tally),
            _ => {}
        }
    }
}

/// SETs keys `0..keys` once, batch `b` of [`PRELOAD_BATCH`] through server `b % servers`.
async fn preload(servers: &[String], keys: u64, value: &Arc<[u8]>) -> anyhow::Result<Tally> {
    let mut loaders = Vec::with_capacity(servers.len());
    for (index, server) in servers.iter().enumerate() {
        let conn = connect(server).await?;
        let (stride, value) = (servers.len() as u64, Arc::clone(value));
        let loader = tokio::spawn(async move {
            let mut conn = conn;
            let mut commands = Commands::new(&value);
            let mut replies = ReplyReader::default();
            let mut tally = Tally::default();
            let mut batch = index as u64;
            while batch * PRELOAD_BATCH < keys {
                let first = batch * PRELOAD_BATCH;
                let last = keys.min(first + PRELOAD_BATCH);
                commands.clear();
                (first..last).for_each(|key| commands.set(key));
                conn.write_all(commands.bytes()).await?;
                let got = replies.read(&mut conn, (last - first) as usize).await?;
                tally.errors += got.errors;
                if tally.first_error.is_none() {
                    tally.first_error = got.first_error;
                }
                batch += stride;
            }
            anyhow::Ok(tally)
        });
        loaders.push((server, loader));
    }
    let mut total = Tally::default();
    for (server, loader) in loaders {
        let tally = loader.await.context("a preload task panicked")?;
        total.add(&tally.with_context(|| format!("preloading through {server}"))?);
    }
    Ok(total)
}

async fn connect(server: &str) -> anyhow::Result<TcpStream> {
    let conn = TcpStream::connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    conn.set_nodelay(true)
        .with_context(|| format!("setting TCP_NODELAY on the connection to {server}"))?;
    Ok(conn)
}

/// What one client (or all of them, added up) saw.
#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    writes: u64,
    misses: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.misses += other.misses;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// Raw RESP commands for one write, in a buffer reused from batch to batch.
struct Commands {
    buf: Vec<u8>,
    /// `$len\r\nvalue\r\n`, the end of every SET.
    set_tail: Vec<u8>,
    key: Vec<u8>,
}

impl Commands {
    fn new(value: &[u8]) -> Self {
        let mut set_tail = format!("${}\r\n", value.len()).into_bytes();
        set_tail.extend_from_slice(value);
        set_tail.extend_from_slice(b"\r\n");
        Commands {
            buf: Vec::new(),
            set_tail,
            key: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
    }

    fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// `GET key:{n}`.
    fn get(&mut self, n: u64) {
        self.buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
        self.push_key(n);
    }

    /// `SET key:{n} value`.
    fn set(&mut self, n: u64) {
        self.buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
        self.push_key(n);
        self.buf.extend_from_slice(&self.set_tail);
    }

    /// `$len\r\nkey:{n}\r\n`.
    fn push_key(&mut self, n: u64) {
        self.key.clear();
        // Writing to a Vec cannot fail.
        let _ = write!(self.key, "key:{n}");
        let _ = write!(self.buf, "${}\r\n", self.key.len());
        self.buf.extend_from_slice(&self.key);
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// What a batch of replies held, beyond plain values.
#[derive(Debug, Default, PartialEq, Eq)]
struct Batch {
    /// Null replies: a GET that found nothing.
    nils: u64,
    errors: u64,
    first_error: Option<String>,
}

/// The bytes read from one connection and not yet skipped.
#[derive(Debug, Default)]
struct ReplyReader {
    buf: Vec<u8>,
    /// Where the next reply starts in `buf`.
    start: usize,
}

impl ReplyReader {
    /// Bytes asked of the socket at once.
    const READ_SIZE: usize = 16 * 1024;

    /// Reads until `count` replies have been skipped; bytes after them stay for the next call.
    async fn read<R: AsyncRead + Unpin>(
        &mut self,
        conn: &mut R,
        count: usize,
    ) -> anyhow::Result<Batch> {
        let mut batch = Batch::default();
        let mut left = count;
        while left > 0 {
            match skip_reply(&self.buf[self.start..])? {
                Some(skipped) => {
                    let reply = &self.buf[self.start..self.start + skipped.len];
                    match skipped.kind {
                        Reply::Value => {}
                        Reply::Nil => batch.nils += 1,
                        Reply::Error => {
                            batch.errors += 1;
                            if batch.first_error.is_none() {
                                let text = reply[1..].trim_ascii_end();
                                batch.first_error = Some(String::from_utf8_lossy(text).into());
                            }
                        }
                    }
                    self.start += skipped.len;
                    left -= 1;
                }
                None => self.fill(conn).await?,
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(batch)
    }

    /// Moves the unread bytes to the front and reads more after them.
    async fn fill<R: AsyncRead + Unpin>(&mut self, conn: &mut R) -> anyhow::Result<()> {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.reserve(Self::READ_SIZE);
        if conn.read_buf(&mut self.buf).await? == 0 {
            bail!("the server closed the connection before all replies arrived");
        }
        Ok(())
    }
}

/// A reply, as far as the load needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// `+OK`, an integer or a bulk string.
    Value,
    /// `$-1` or RESP3's `_`: a GET that found nothing.
    Nil,
    /// `-ERR …`.
    Error,
}

/// A complete reply at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Skipped {
    kind: Reply,
    /// Its length in bytes, `\r\n` included.
    len: usize,
}

/// Finds where the reply at the front of `buf` ends: `None` while it is incomplete, an
/// error for anything a GET or a SET cannot be answered with (arrays, maps, a bad length),
/// after which the connection cannot be read on.
fn skip_reply(buf: &[u8]) -> anyhow::Result<Option<Skipped>> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(line_len) = buf[1..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[1..1 + line_len];
    let after_line = 1 + line_len + 2;
    let skipped = |kind, len| Ok(Some(Skipped { kind, len }));
    match kind {
        b'+' | b':' => skipped(Reply::Value, after_line),
        b'-' => skipped(Reply::Error, after_line),
        b'_' if line.is_empty() => skipped(Reply::Nil, after_line),
        b'$' if line == b"-1" => skipped(Reply::Nil, after_line),
        b'$' => {
            let len: usize = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("bad bulk length {:?}", String::from_utf8_lossy(line)))?;
            let end = after_line
                .checked_add(len)
                .and_then(|n| n.checked_add(2))
                .ok_or_else(|| anyhow!("bulk length {len} too large"))?;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                bail!("a bulk string of {len} bytes is not followed by \\r\\n");
            }
            skipped(Reply::Value, end)
        }
        other => bail!(
            "unexpected reply type {:?} (in {:?})",
            char::from(other),
            String::from_utf8_lossy(&buf[..after_line.min(40)])
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    fn skip(buf: &[u8]) -> Option<Skipped> {
        skip_reply(buf).expect("a well-formed reply")
    }

    fn value(len: usize) -> Option<Skipped> {
        Some(Skipped {
            kind: Reply::Value,
            len,
        })
    }

    #[test]
    fn skips_complete_replies_one_at_a_time() {
        let wire = b"+OK\r\n$3\r\nfoo\r\n:42\r\n$0\r\n\r\n";
        assert_eq!(skip(wire), value(5));
        assert_eq!(skip(&wire[5..]), value(9));
        assert_eq!(skip(&wire[14..]), value(5));
        assert_eq!(skip(&wire[19..]), value(6));
        assert_eq!(skip(&wire[25..]), None);
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete() {
        for wire in [
            &b"+OK\r\n"[..],
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"-ERR no\r\n",
            b"_\r\n",
        ] {
            for cut in 0..wire.len() {
                assert_eq!(skip(&wire[..cut]), None, "{:?}", &wire[..cut]);
            }
            assert_eq!(skip(wire).map(|s| s.len), Some(wire.len()));
        }
    }

    #[test]
    fn a_missing_key_is_nil() {
        let nil = Some(Skipped {
            kind: Reply::Nil,
            len: 5,
        });
        assert_eq!(skip(b"$-1\r\n+OK\r\n"), nil);
        assert_eq!(skip(b"_\r\n").map(|s| s.kind), Some(Reply::Nil));
    }

    #[test]
    fn an_error_reply_is_an_error_not_a_value() {
        let wire = b"-OOM command not allowed\r\n";
        assert_eq!(
            skip(wire),
            Some(Skipped {
                kind: Reply::Error,
                len: wire.len()
            })
        );
    }

    #[test]
    fn what_get_and_set_cannot_answer_is_refused() {
        for wire in [
            &b"*1\r\n+OK\r\n"[..],
            b"$x\r\n",
            b"$-2\r\n",
            b"$3\r\nfooXY",
            b"_x\r\n",
        ] {
            assert!(skip_reply(wire).is_err(), "{:?}", wire);
        }
    }

    /// Hands out its chunks one read at a time, then end of stream.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk[n..].to_vec());
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| p.to_vec()).collect())
    }

    #[tokio::test]
    async fn reads_replies_split_across_reads() {
        let mut conn = chunks(&[
            b"+OK\r\n$5\r\nhel",
            b"lo\r",
            b"\n$-1\r\n-ERR wr",
            b"ong\r\n:1\r\n",
        ]);
        let mut reader = ReplyReader::default();
        let batch = reader.read(&mut conn, 3).await.expect("three replies");
        assert_eq!(
            batch,
            Batch {
                nils: 1,
                ..Batch::default()
            }
        );
        let batch = reader.read(&mut conn, 2).await.expect("two replies");
        assert_eq!(
            batch,
            Batch {
                nils: 0,
                errors: 1,
                first_error: Some("ERR wrong".into()),
            }
        );
        assert!(reader.buf.is_empty(), "everything was consumed");
    }

    #[tokio::test]
    async fn bytes_after_the_batch_wait_for_the_next_one() {
        let mut conn = chunks(&[b"+OK\r\n+OK\r\n$1\r\n", b"x\r\n"]);
        let mut reader = ReplyReader::default();
        assert_eq!(
            reader.read(&mut conn, 1).await.expect("one"),
            Batch::default()
        );
        assert_eq!(
            reader.read(&mut conn, 2).await.expect("two"),
            Batch::default()
        );
    }

    #[tokio::test]
    async fn a_connection_closed_mid_batch_is_an_error() {
        let mut conn = chunks(&[b"+OK\r\n$5\r\nhe"]);
        let mut reader = ReplyReader::default();
        let err = reader.read(&mut conn, 2).await.expect_err("closed early");
        assert!(err.to_string().contains("closed"), "{err}");
    }

    #[test]
    fn commands_are_raw_resp() {
        let mut commands = Commands::new(b"vv");
        commands.get(7);
        commands.set(12);
        assert_eq!(
            commands.bytes(),
            b"*2\r\n$3\r\nGET\r\n$5\r\nkey:7\r\n*3\r\n$3\r\nSET\r\n$6\r\nkey:12\r\n$2\r\nvv\r\n"
        );
        commands.clear();
        assert!(commands.bytes().is_empty());
    }
}
