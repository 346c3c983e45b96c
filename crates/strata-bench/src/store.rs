//! `store`: what the `strata::store` layer costs, measured side by side.
//!
//! - **A. Tagged hits.** One store, three namespaces holding the same N keys inserted with 0, 1
//!   and 2 tags, plus a plain `strata::Cache<Key, u64>` with the same keys as a reference. Every
//!   variant is timed on the same pre-drawn key sequence, alternating variants within each
//!   round; every get must hit.
//! - **B. Invalidation over 1M entries.** The caller's time of `Store::invalidate_tag` (every
//!   entry carries the tag) and of `Namespace::clear`, the time until the memory is back
//!   (`Store::run_pending_tasks` right after), and the scanning `invalidate_prefix` /
//!   `invalidate_pattern`. A fresh fill before each measurement.
//! - **C. One engine per namespace or one shared engine.** The memory of an opened, empty
//!   namespace; hit cost through four namespaces against the same keys in one engine with the
//!   namespace prefixed onto the key; and the hit ratio of a Zipf namespace next to a scanning
//!   one, in separate engines of half the capacity each or in one shared engine.

use std::fmt::{self, Write as _};
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use strata::config::Config;
use strata::store::{Namespace, Put, Store};
use strata::{Cache, Key};

use crate::alloc;
use crate::zipf::{scramble, Zipf};

/// Parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Tagged hit cost.
    A,
    /// invalidate_tag, clear, prefix and pattern over many entries.
    B,
    /// One engine per namespace vs one shared engine.
    C,
}

/// Everything the subcommand was asked to do.
#[derive(Debug, Clone)]
pub struct Params {
    pub parts: Vec<Part>,
    pub entries: u64,
    pub gets: usize,
    pub rounds: usize,
    pub zipf: Vec<f64>,
    pub threads: Vec<usize>,
    pub tag_groups: u64,
    pub ttl: Option<Duration>,
    pub bulk: u64,
    pub bulk_rounds: usize,
    pub scan_rounds: usize,
    pub iso_keys: u64,
    pub iso_capacity: u64,
    pub iso_requests: usize,
    pub iso_zipf: f64,
    pub scan_per_hot: Vec<usize>,
    pub seed: u64,
}

/// Keys are 16 bytes, `item::` and ten digits, so the sequence of lookups is one flat array.
type RawKey = [u8; 16];

fn item_key(i: u64) -> RawKey {
    let s = format!("item::{i:010}");
    s.as_bytes()
        .try_into()
        .unwrap_or_else(|_| panic!("key index {i} too large"))
}

/// A store with the given namespaces (each `[namespaces.NAME]` table as given) and a budget
/// large enough never to bind.
fn store_with(namespaces: &[(&str, &str)], ttl: Option<Duration>) -> anyhow::Result<Store> {
    let mut toml = String::from("max_bytes = \"16GiB\"\n");
    if let Some(ttl) = ttl {
        writeln!(toml, "[defaults]\nttl = \"{}ms\"", ttl.as_millis())?;
    }
    for (name, body) in namespaces {
        writeln!(toml, "[namespaces.{name}]\n{body}")?;
    }
    let config = Config::from_sources(Some(&toml), std::iter::empty::<(String, String)>())
        .map_err(|e| anyhow!("store configuration refused: {e}"))?;
    Store::from_config(&config).map_err(|e| anyhow!("cannot build store: {e}"))
}

fn open(store: &Store, name: &str) -> anyhow::Result<Namespace<u64>> {
    store
        .namespace::<u64>(name)
        .map_err(|e| anyhow!("cannot open namespace {name}: {e}"))
}

fn plain_cache(max_entries: Option<u64>, ttl: Option<Duration>) -> anyhow::Result<Cache<Key, u64>> {
    let mut b = Cache::<Key, u64>::builder();
    b = match max_entries {
        Some(n) => b.max_entries(n),
        None => b.max_bytes(2 << 30),
    };
    if let Some(ttl) = ttl {
        b = b.default_ttl(ttl);
    }
    b.build().map_err(|e| anyhow!("cannot build cache: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Statistics and output

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// A minimal JSON value (the workspace has no JSON crate; the output is small).
#[derive(Debug, Clone)]
pub enum Json {
    Num(f64),
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn obj<const N: usize>(fields: [(&str, Json); N]) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
    fn nums(xs: &[f64]) -> Json {
        Json::Arr(xs.iter().map(|&x| Json::Num(x)).collect())
    }
}

impl From<f64> for Json {
    fn from(x: f64) -> Self {
        Json::Num(x)
    }
}
impl From<u64> for Json {
    fn from(x: u64) -> Self {
        Json::Int(x as i64)
    }
}
impl From<usize> for Json {
    fn from(x: usize) -> Self {
        Json::Int(x as i64)
    }
}
impl From<i64> for Json {
    fn from(x: i64) -> Self {
        Json::Int(x)
    }
}
impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::Str(s.to_owned())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::Str(s)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Num(x) if x.is_finite() => write!(f, "{x}"),
            Json::Num(_) => f.write_str("null"),
            Json::Int(n) => write!(f, "{n}"),
            Json::Str(s) => {
                f.write_char('"')?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('"')
            }
            Json::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Json::Obj(fields) => {
                f.write_char('{')?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{}:{v}", Json::Str(k.clone()))?;
                }
                f.write_char('}')
            }
        }
    }
}

/// A markdown table, printed when complete.
struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|s| (*s).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n{}\n", self.title)?;
        writeln!(f, "| {} |", self.header.join(" | "))?;
        writeln!(
            f,
            "|{}",
            self.header.iter().map(|_| "---|").collect::<String>()
        )?;
        for row in &self.rows {
            writeln!(f, "| {} |", row.join(" | "))?;
        }
        Ok(())
    }
}

/// Where the tables go: stdout, or stderr when stdout carries JSON.
pub struct Output {
    json: bool,
    doc: Vec<(String, Json)>,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            doc: Vec::new(),
        }
    }

    fn table(&self, t: &Table) {
        if self.json {
            eprint!("{t}");
        } else {
            print!("{t}");
        }
    }

    fn put(&mut self, key: &str, value: Json) {
        self.doc.push((key.to_owned(), value));
    }

    pub fn finish(self) {
        if self.json {
            println!("{}", Json::Obj(self.doc));
        }
    }
}

fn fmt_ns(d: f64) -> String {
    if d >= 1e9 {
        format!("{:.2} s", d / 1e9)
    } else if d >= 1e6 {
        format!("{:.2} ms", d / 1e6)
    } else if d >= 1e3 {
        format!("{:.1} µs", d / 1e3)
    } else {
        format!("{d:.0} ns")
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

// ---------------------------------------------------------------------------------------------
// Timing gets

/// One timed pass of gets.
#[derive(Debug, Clone, Copy)]
struct Pass {
    hits: u64,
    gets: u64,
    /// The slowest thread's time.
    wall: Duration,
    threads: usize,
}

impl Pass {
    /// Nanoseconds per hit per thread (wall time × threads / hits).
    fn ns_per_hit(&self) -> f64 {
        nanos(self.wall) * self.threads as f64 / self.hits.max(1) as f64
    }
}

/// Runs `gets` lookups per thread over `keys` (length a power of two; thread `t` starts at
/// `offset + t * len / threads`) and times them. The result of each lookup feeds a checksum
/// passed to `black_box`, and the key goes through `black_box` too, so nothing can be hoisted
/// or dropped.
fn time_gets<T, F>(keys: &[T], threads: usize, offset: usize, gets: usize, get: &F) -> Pass
where
    T: Sync,
    F: Fn(&T) -> Option<u64> + Sync,
{
    assert!(keys.len().is_power_of_two());
    let mask = keys.len() - 1;
    let run = |start: usize| -> (u64, Duration) {
        let t0 = Instant::now();
        let mut hits = 0u64;
        let mut sum = 0u64;
        let mut idx = start;
        for _ in 0..gets {
            let key = &keys[idx & mask];
            idx = idx.wrapping_add(1);
            if let Some(v) = get(black_box(key)) {
                hits += 1;
                sum = sum.wrapping_add(v);
            }
        }
        black_box(sum);
        (hits, t0.elapsed())
    };
    let (hits, wall) = if threads == 1 {
        run(offset)
    } else {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (run, barrier) = (&run, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        run(offset + t * (keys.len() / threads))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("benchmark thread panicked"))
                .fold((0, Duration::ZERO), |(h, w), (hits, wall)| {
                    (h + hits, w.max(wall))
                })
        })
    };
    Pass {
        hits,
        gets: (gets * threads) as u64,
        wall,
        threads,
    }
}

/// `draws` lookups over `n` keys: Zipf(`s`) ranks (uniform at 0) mapped through a fixed
/// random permutation, so the hottest keys are not the first inserted.
fn draw_indices(n: u64, s: f64, draws: usize, seed: u64) -> anyhow::Result<Vec<u64>> {
    let z = Zipf::new(n, s)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut perm: Vec<u64> = (0..n).collect();
    perm.shuffle(&mut rng);
    Ok((0..draws)
        .map(|_| perm[z.sample(&mut rng) as usize])
        .collect())
}

fn dist_name(s: f64) -> String {
    if s == 0.0 {
        "uniform".into()
    } else {
        format!("Zipf {s}")
    }
}

/// Slices a round's gets are cut into; the variants take turns slice by slice, so that a
/// burst of load from other processes falls on all of them alike.
const SLICES: usize = 10;

/// Times `variants` side by side: one warm-up slice each, then `rounds` rounds in which the
/// variants take turns for [`SLICES`] slices of `gets / SLICES` lookups per thread (the first
/// variant rotating). `run(v, offset, gets)` times `gets` lookups of variant `v` starting at
/// `offset` in the key sequence. Returns each variant's passes, one per round, and fails if any
/// lookup missed.
fn alternate(
    variants: usize,
    rounds: usize,
    gets: usize,
    mut run: impl FnMut(usize, usize, usize) -> Pass,
) -> anyhow::Result<Vec<Vec<Pass>>> {
    let slice = (gets / SLICES).max(1);
    let check = |v: usize, pass: Pass| -> anyhow::Result<Pass> {
        ensure!(
            pass.hits == pass.gets,
            "variant {v}: {} hits out of {} gets; every get must hit",
            pass.hits,
            pass.gets
        );
        Ok(pass)
    };
    for v in 0..variants {
        check(v, run(v, 0, slice))?;
    }
    let mut out = vec![Vec::with_capacity(rounds); variants];
    for round in 0..rounds {
        let mut sums: Vec<Option<Pass>> = vec![None; variants];
        for s in 0..SLICES {
            for i in 0..variants {
                let v = (round + s + i) % variants;
                let pass = check(v, run(v, (round * SLICES + s) * slice, slice))?;
                sums[v] = Some(match sums[v] {
                    None => pass,
                    Some(sum) => Pass {
                        hits: sum.hits + pass.hits,
                        gets: sum.gets + pass.gets,
                        wall: sum.wall + pass.wall,
                        threads: pass.threads,
                    },
                });
            }
        }
        for (v, sum) in sums.into_iter().enumerate() {
            out[v].push(sum.expect("every variant ran"));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// A. Tagged hits

pub fn part_a(p: &Params, out: &mut Output) -> anyhow::Result<()> {
    let n = p.entries;
    eprintln!(
        "# A: {n} entries per variant, {} gets per thread per pass, {} rounds",
        p.gets, p.rounds
    );
    let t0 = Instant::now();
    let store = store_with(&[("tags0", ""), ("tags1", ""), ("tags2", "")], p.ttl)?;
    let ns = [
        open(&store, "tags0")?,
        open(&store, "tags1")?,
        open(&store, "tags2")?,
    ];
    let cache = plain_cache(None, p.ttl)?;
    let groups = p.tag_groups.max(1);
    for i in 0..n {
        let key = item_key(i);
        let t1 = format!("group:{}", i % groups);
        let t2 = format!("owner:{}", scramble(i) % groups);
        cache.insert(Key::from(&key[..]), i)?;
        ns[0].insert(&key[..], i)?;
        ns[1].insert_with(&key[..], i, Put::new().tag(t1.clone()))?;
        ns[2].insert_with(&key[..], i, Put::new().tag(t1).tag(t2))?;
    }
    for (tags, ns) in ns.iter().enumerate() {
        ensure!(
            ns.len() as u64 == n,
            "namespace with {tags} tags holds {} of {n} entries",
            ns.len()
        );
    }
    ensure!(
        cache.len() as u64 == n,
        "cache holds {} of {n}",
        cache.len()
    );
    eprintln!("# A: filled in {:.2}s", t0.elapsed().as_secs_f64());

    let names = [
        "strata::Cache<Key, u64> (reference)",
        "Namespace, 0 tags",
        "Namespace, 1 tag",
        "Namespace, 2 tags",
        "get_or_load_blocking, 0 tags",
        "get_or_load (async, polled once), 0 tags",
        "get_or_load_optional (async, polled once), 0 tags",
    ];
    let unused = |_: &Key| -> Result<u64, std::io::Error> { Err(std::io::Error::other("a miss")) };
    let load_blocking = |k: &RawKey| ns[0].get_or_load_blocking(k, unused).ok().map(|l| l.value);
    let load_async = |k: &RawKey| {
        poll_once(ns[0].get_or_load(k, |_| async {
            Err::<u64, _>(std::io::Error::other("a miss"))
        }))
        .and_then(Result::ok)
        .map(|l| l.value)
    };
    let load_optional = |k: &RawKey| {
        poll_once(ns[0].get_or_load_optional(k, |_| async {
            Err::<Option<u64>, _>(std::io::Error::other("a miss"))
        }))
        .and_then(Result::ok)
        .and_then(|l| l.value)
    };
    let draws = p.gets.max(1 << 20).next_power_of_two();
    let mut json_runs = Vec::new();
    for &s in &p.zipf {
        let keys: Vec<RawKey> = draw_indices(n, s, draws, p.seed)?
            .into_iter()
            .map(item_key)
            .collect();
        for &threads in &p.threads {
            let passes = alternate(names.len(), p.rounds, p.gets, |v, at, gets| match v {
                0 => time_gets(&keys, threads, at, gets, &|k: &RawKey| cache.get(&k[..])),
                1 => time_gets(&keys, threads, at, gets, &|k: &RawKey| ns[0].get(k)),
                2 => time_gets(&keys, threads, at, gets, &|k: &RawKey| ns[1].get(k)),
                3 => time_gets(&keys, threads, at, gets, &|k: &RawKey| ns[2].get(k)),
                4 => time_gets(&keys, threads, at, gets, &load_blocking),
                5 => time_gets(&keys, threads, at, gets, &load_async),
                _ => time_gets(&keys, threads, at, gets, &load_optional),
            })?;
            let ns_hit: Vec<Vec<f64>> = passes
                .iter()
                .map(|ps| ps.iter().map(Pass::ns_per_hit).collect())
                .collect();
            // Ratios are taken within a round, then the median over rounds.
            let ratio = |a: usize, b: usize| -> Vec<f64> {
                ns_hit[a]
                    .iter()
                    .zip(&ns_hit[b])
                    .map(|(x, y)| x / y)
                    .collect()
            };
            let mut t = Table::new(
                format!(
                    "A. hit cost, {}, {threads} thread(s), {n} entries, median of {} rounds",
                    dist_name(s),
                    p.rounds
                ),
                &[
                    "variant",
                    "ns/hit",
                    "min–max",
                    "÷ Namespace 0 tags",
                    "ratio range",
                ],
            );
            let mut json_rows = Vec::new();
            for (v, name) in names.iter().enumerate() {
                let (lo, hi) = min_max(&ns_hit[v]);
                let r = ratio(v, 1);
                let (rlo, rhi) = min_max(&r);
                t.row(vec![
                    (*name).to_owned(),
                    format!("{:.1}", median(&ns_hit[v])),
                    format!("{lo:.1}–{hi:.1}"),
                    if v == 1 {
                        "1".to_owned()
                    } else {
                        format!("**{:.3}**", median(&r))
                    },
                    if v == 1 {
                        String::new()
                    } else {
                        format!("{rlo:.3}–{rhi:.3}")
                    },
                ]);
                json_rows.push(Json::obj([
                    ("variant", (*name).into()),
                    ("ns_per_hit", Json::nums(&ns_hit[v])),
                    ("ns_per_hit_median", median(&ns_hit[v]).into()),
                    ("ratio_to_untagged", Json::nums(&r)),
                    ("ratio_to_untagged_median", median(&r).into()),
                ]));
            }
            out.table(&t);
            json_runs.push(Json::obj([
                ("zipf", s.into()),
                ("threads", threads.into()),
                ("variants", Json::Arr(json_rows)),
            ]));
        }
    }
    out.put(
        "tagged_hits",
        Json::obj([
            ("entries", n.into()),
            ("gets_per_thread", p.gets.into()),
            ("rounds", p.rounds.into()),
            ("tag_groups", groups.into()),
            ("runs", Json::Arr(json_runs)),
        ]),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// B. Invalidation over many entries

/// One measurement of an invalidation.
#[derive(Debug, Clone, Copy, Default)]
struct Invalidated {
    /// The caller's time.
    caller: Duration,
    /// `run_pending_tasks` right after: the background reclaim finishing.
    reclaim: Duration,
    /// What the call returned.
    dropped: u64,
    /// Nanoseconds the caller's thread spent runnable but waiting for a CPU during the call,
    /// and the time slices it started (more than 0: it was switched out), when known.
    runqueue_wait: Option<u64>,
    switches: Option<u64>,
    len_before: usize,
    len_after_call: usize,
    len_after_reclaim: usize,
    /// Live heap bytes (counting allocator) after the fill and after the reclaim.
    heap_filled: isize,
    heap_after: isize,
}

/// This thread's scheduler figures from `/proc/thread-self/schedstat` (Linux): nanoseconds on
/// a CPU, nanoseconds waiting on a run queue, and time slices. `None` elsewhere.
fn schedstat() -> Option<[u64; 3]> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut it = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn fill(ns: &Namespace<u64>, n: u64, tag: Option<&str>) -> anyhow::Result<()> {
    for i in 0..n {
        let key = item_key(i);
        match tag {
            Some(tag) => ns.insert_with(&key[..], i, Put::new().tag(tag))?,
            None => ns.insert(&key[..], i)?,
        }
    }
    ensure!(
        ns.len() as u64 == n,
        "namespace holds {} of {n} entries after the fill",
        ns.len()
    );
    Ok(())
}

fn invalidate_once(
    store: &Store,
    ns: &Namespace<u64>,
    n: u64,
    tag: Option<&str>,
    call: impl FnOnce() -> u64,
) -> anyhow::Result<Invalidated> {
    let heap0 = alloc::live_bytes();
    fill(ns, n, tag)?;
    // Let the janitor finish anything left over from the last measurement.
    store.run_pending_tasks();
    let heap_filled = alloc::live_bytes() - heap0;
    let len_before = ns.len();
    let sched0 = schedstat();
    let t0 = Instant::now();
    let dropped = black_box(call());
    let caller = t0.elapsed();
    let sched1 = schedstat();
    let (runqueue_wait, switches) = match (sched0, sched1) {
        (Some(a), Some(b)) => (Some(b[1] - a[1]), Some(b[2] - a[2])),
        _ => (None, None),
    };
    let len_after_call = ns.len();
    let t1 = Instant::now();
    store.run_pending_tasks();
    let reclaim = t1.elapsed();
    Ok(Invalidated {
        caller,
        reclaim,
        dropped,
        runqueue_wait,
        switches,
        len_before,
        len_after_call,
        len_after_reclaim: ns.len(),
        heap_filled,
        heap_after: alloc::live_bytes() - heap0,
    })
}

/// Latencies of one window, in nanoseconds.
fn percentiles(mut xs: Vec<u64>) -> (usize, [u64; 5], usize) {
    xs.sort_unstable();
    let at = |q: f64| -> u64 {
        if xs.is_empty() {
            0
        } else {
            xs[((xs.len() - 1) as f64 * q).round() as usize]
        }
    };
    let over_1ms = xs.iter().filter(|&&x| x > 1_000_000).count();
    (
        xs.len(),
        [at(0.5), at(0.99), at(0.999), at(0.9999), at(1.0)],
        over_1ms,
    )
}

/// B2: what a reader on another thread sees while the janitor purges `n` entries whose tag
/// was invalidated: the latency of each get (hit or miss) over a quiet window of `quiet`
/// and then over the purge (from `invalidate_tag` to the end of `run_pending_tasks`).
fn reader_during_purge(
    store: &Store,
    ns: &Namespace<u64>,
    n: u64,
    rounds: usize,
    out: &mut Output,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU8, Ordering};
    const QUIET: Duration = Duration::from_millis(300);
    let keys: Vec<RawKey> = draw_indices(n, 0.9, 1 << 16, 7)?
        .into_iter()
        .map(item_key)
        .collect();
    let mut windows: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut purge_times = Vec::new();
    for round in 0..rounds {
        let tag = format!("reader:{round}");
        fill(ns, n, Some(&tag))?;
        store.run_pending_tasks();
        // 0: quiet window, 1: purge window, 2: stop.
        let phase = AtomicU8::new(0);
        let ((quiet, during), purge) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut lat: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
                let mut i = 0usize;
                loop {
                    let ph = phase.load(Ordering::Relaxed);
                    if ph > 1 {
                        break;
                    }
                    let key = &keys[i & (keys.len() - 1)];
                    i += 1;
                    let t0 = Instant::now();
                    black_box(ns.get(black_box(key)));
                    lat[ph as usize].push(t0.elapsed().as_nanos() as u64);
                }
                lat
            });
            std::thread::sleep(QUIET);
            let t0 = Instant::now();
            phase.store(1, Ordering::Relaxed);
            store.invalidate_tag(&tag);
            store.run_pending_tasks();
            let purge = t0.elapsed();
            phase.store(2, Ordering::Relaxed);
            let [quiet, during] = reader.join().expect("reader panicked");
            ((quiet, during), purge)
        });
        windows[0].extend(quiet);
        windows[1].extend(during);
        purge_times.push(nanos(purge));
    }
    let mut t = Table::new(
        format!(
            "B2. latency of a get on another thread: a quiet {} ms, then while the janitor purges {n} entries of an invalidated tag ({rounds} rounds pooled; purge median {})",
            QUIET.as_millis(),
            fmt_ns(median(&purge_times))
        ),
        &["window", "gets", "p50", "p99", "p99.9", "p99.99", "max", "gets > 1 ms"],
    );
    let mut rows = Vec::new();
    for (name, w) in ["quiet", "during the purge"].iter().zip(windows) {
        let (count, q, over) = percentiles(w);
        let mut cells = vec![(*name).to_owned(), count.to_string()];
        cells.extend(q.iter().map(|&x| fmt_ns(x as f64)));
        cells.push(over.to_string());
        t.row(cells);
        rows.push(Json::obj([
            ("window", (*name).into()),
            ("gets", count.into()),
            ("p50_ns", q[0].into()),
            ("p99_ns", q[1].into()),
            ("p999_ns", q[2].into()),
            ("p9999_ns", q[3].into()),
            ("max_ns", q[4].into()),
            ("over_1ms", over.into()),
        ]));
    }
    out.table(&t);
    out.put("reader_during_purge", Json::Arr(rows));
    Ok(())
}

pub fn part_b(p: &Params, out: &mut Output) -> anyhow::Result<()> {
    let n = p.bulk;
    eprintln!("# B: {n} entries, {} rounds", p.bulk_rounds);
    let store = store_with(&[("bulk", "")], p.ttl)?;
    let ns = open(&store, "bulk")?;
    let ops: [&str; 5] = [
        "invalidate_tag (every entry tagged)",
        "clear",
        "invalidate_prefix(\"item::\") (all)",
        "invalidate_pattern(\"item::*\") (all)",
        "invalidate_pattern(\"*7\") (10%)",
    ];
    let mut results: Vec<Vec<Invalidated>> = vec![Vec::new(); ops.len()];
    for round in 0..p.bulk_rounds {
        let t0 = Instant::now();
        for (op, results) in results.iter_mut().enumerate() {
            if op >= 2 && round >= p.scan_rounds {
                continue;
            }
            let r = match op {
                0 => {
                    let tag = format!("bulk:{round}");
                    let r =
                        invalidate_once(&store, &ns, n, Some(&tag), || store.invalidate_tag(&tag))?;
                    ensure!(
                        ns.get(item_key(0)).is_none(),
                        "a key of the invalidated tag still hits"
                    );
                    r
                }
                1 => invalidate_once(&store, &ns, n, None, || ns.clear())?,
                2 => invalidate_once(&store, &ns, n, None, || ns.invalidate_prefix("item::"))?,
                3 => invalidate_once(&store, &ns, n, None, || ns.invalidate_pattern("item::*"))?,
                _ => invalidate_once(&store, &ns, n, None, || ns.invalidate_pattern("*7"))?,
            };
            let expected = if op == 4 { n / 10 } else { n };
            ensure!(
                r.dropped == expected,
                "{}: dropped {} of {expected}",
                ops[op],
                r.dropped
            );
            eprintln!(
                "# B: round {} {}: caller {} (run-queue wait {}, switches {}) reclaim {}",
                round + 1,
                ops[op],
                fmt_ns(nanos(r.caller)),
                r.runqueue_wait.map_or("?".into(), |w| fmt_ns(w as f64)),
                r.switches.map_or("?".into(), |n| n.to_string()),
                fmt_ns(nanos(r.reclaim))
            );
            results.push(r);
            // Empty the namespace for the next fill (after the 10% pattern, 90% is left).
            ns.clear();
            store.run_pending_tasks();
        }
        eprintln!(
            "# B: round {}/{} in {:.2}s",
            round + 1,
            p.bulk_rounds,
            t0.elapsed().as_secs_f64()
        );
    }
    let mut t = Table::new(
        format!(
            "B. invalidation over {n} entries: caller's time and reclaim time; {} rounds ({} for the scans)",
            p.bulk_rounds,
            p.scan_rounds.min(p.bulk_rounds)
        ),
        &[
            "operation",
            "rounds",
            "caller median",
            "caller max",
            "rounds switched out during the call",
            "caller − run-queue wait: median / max",
            "reclaim median (run_pending_tasks after)",
            "dropped",
            "len before → after call → after reclaim",
            "heap after fill → after reclaim",
        ],
    );
    let mut json_ops = Vec::new();
    for (op, rs) in ops.iter().zip(&results) {
        if rs.is_empty() {
            continue;
        }
        let caller: Vec<f64> = rs.iter().map(|r| nanos(r.caller)).collect();
        let reclaim: Vec<f64> = rs.iter().map(|r| nanos(r.reclaim)).collect();
        let last = rs.last().copied().unwrap_or_default();
        let (_, max) = min_max(&caller);
        let switched = rs.iter().filter(|r| r.switches.unwrap_or(0) > 0).count();
        let waits: Vec<u64> = rs.iter().filter_map(|r| r.runqueue_wait).collect();
        // The caller's time without the time it sat runnable on a run queue.
        let own: Vec<f64> = rs
            .iter()
            .filter_map(|r| Some((nanos(r.caller) - r.runqueue_wait? as f64).max(0.0)))
            .collect();
        t.row(vec![
            (*op).to_owned(),
            rs.len().to_string(),
            format!("**{}**", fmt_ns(median(&caller))),
            fmt_ns(max),
            if waits.len() == rs.len() {
                format!(
                    "{switched} (run-queue wait max {})",
                    fmt_ns(waits.iter().copied().max().unwrap_or(0) as f64)
                )
            } else {
                "unknown".to_owned()
            },
            if own.len() == rs.len() {
                format!("{} / {}", fmt_ns(median(&own)), fmt_ns(min_max(&own).1))
            } else {
                "unknown".to_owned()
            },
            fmt_ns(median(&reclaim)),
            last.dropped.to_string(),
            format!(
                "{} → {} → {}",
                last.len_before, last.len_after_call, last.len_after_reclaim
            ),
            format!(
                "{:.1} MiB → {:.1} MiB",
                last.heap_filled as f64 / 1048576.0,
                last.heap_after as f64 / 1048576.0
            ),
        ]);
        json_ops.push(Json::obj([
            ("operation", (*op).into()),
            ("caller_ns", Json::nums(&caller)),
            ("caller_ns_median", median(&caller).into()),
            ("caller_ns_max", max.into()),
            ("caller_minus_runqueue_wait_ns", Json::nums(&own)),
            (
                "runqueue_wait_ns",
                Json::Arr(
                    rs.iter()
                        .map(|r| r.runqueue_wait.map_or(Json::Num(f64::NAN), Json::from))
                        .collect(),
                ),
            ),
            ("reclaim_ns", Json::nums(&reclaim)),
            ("reclaim_ns_median", median(&reclaim).into()),
            ("dropped", last.dropped.into()),
            (
                "len",
                Json::Arr(vec![
                    last.len_before.into(),
                    last.len_after_call.into(),
                    last.len_after_reclaim.into(),
                ]),
            ),
            (
                "heap_bytes",
                Json::Arr(vec![
                    (last.heap_filled as i64).into(),
                    (last.heap_after as i64).into(),
                ]),
            ),
        ]));
    }
    out.table(&t);
    reader_during_purge(&store, &ns, n, p.scan_rounds.min(p.bulk_rounds).max(1), out)?;
    out.put(
        "invalidation",
        Json::obj([
            ("entries", n.into()),
            ("rounds", p.bulk_rounds.into()),
            ("operations", Json::Arr(json_ops)),
        ]),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// C. One engine per namespace vs one shared engine

pub fn part_c(p: &Params, out: &mut Output) -> anyhow::Result<()> {
    let json = vec![
        ("empty_namespace", empty_namespace_memory(out)?),
        ("four_namespaces", four_namespaces(p, out)?),
        ("isolation", isolation(p, out)?),
    ];
    out.put(
        "engines",
        Json::Obj(json.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    );
    Ok(())
}

/// C1: what opening an empty namespace costs, by its bounds.
fn empty_namespace_memory(out: &mut Output) -> anyhow::Result<Json> {
    let cases: [(&str, &str); 4] = [
        ("tiny", "max_bytes = \"1MiB\""),
        ("mid", "max_bytes = \"64MiB\""),
        ("counted", "max_entries = 1000"),
        ("big", ""),
    ];
    let store = store_with(&cases, None)?;
    let mut t = Table::new(
        "C1. memory of an opened, empty namespace (Namespace<u64>)",
        &[
            "configured",
            "max_bytes (its share)",
            "engine_heap_bytes",
            "live heap (counting allocator)",
            "allocations",
        ],
    );
    let mut rows = Vec::new();
    for (name, body) in cases {
        let engine0 = store.engine_heap_bytes();
        let live0 = alloc::live_bytes();
        let allocs0 = alloc::alloc_count();
        let ns = open(&store, name)?;
        let engine = store.engine_heap_bytes() - engine0;
        let live = alloc::live_bytes() - live0;
        let allocs = alloc::alloc_count() - allocs0;
        let configured = if body.is_empty() { "nothing" } else { body };
        let share = ns.limits().max_bytes.unwrap_or_default();
        t.row(vec![
            format!("`{configured}`"),
            format!("{:.1} MiB", share as f64 / 1048576.0),
            format!("{engine} ({:.2} MiB)", engine as f64 / 1048576.0),
            format!("{live} ({:.2} MiB)", live as f64 / 1048576.0),
            allocs.to_string(),
        ]);
        rows.push(Json::obj([
            ("configured", configured.into()),
            ("max_bytes", share.into()),
            ("engine_heap_bytes", engine.into()),
            ("live_heap_bytes", (live as i64).into()),
            ("allocations", allocs.into()),
        ]));
    }
    out.table(&t);
    Ok(Json::Arr(rows))
}

/// A lookup in C2: which namespace, its key, and the key with the namespace prefixed.
struct NsKey {
    ns: usize,
    key: RawKey,
    prefixed: [u8; 21],
}

/// C2: hit cost through 4 namespaces against one engine holding all their keys, prefixed.
fn four_namespaces(p: &Params, out: &mut Output) -> anyhow::Result<Json> {
    const NS: usize = 4;
    let names = ["ns0", "ns1", "ns2", "ns3"];
    let per = (p.entries / NS as u64).max(1);
    let total = per * NS as u64;
    let store = store_with(&names.map(|n| (n, "")), p.ttl)?;
    let namespaces: Vec<Namespace<u64>> = names
        .iter()
        .map(|n| open(&store, n))
        .collect::<anyhow::Result<_>>()?;
    let caches: Vec<Cache<Key, u64>> = (0..NS)
        .map(|_| plain_cache(None, p.ttl))
        .collect::<anyhow::Result<_>>()?;
    let shared = plain_cache(None, p.ttl)?;
    let prefixed = |ns: usize, key: &RawKey| -> [u8; 21] {
        let mut out = [0u8; 21];
        out[..5].copy_from_slice(format!("{}::", names[ns]).as_bytes());
        out[5..].copy_from_slice(key);
        out
    };
    for g in 0..total {
        let (ns, i) = ((g % NS as u64) as usize, g / NS as u64);
        let key = item_key(i);
        namespaces[ns].insert(&key[..], g)?;
        caches[ns].insert(Key::from(&key[..]), g)?;
        shared.insert(Key::from(&prefixed(ns, &key)[..]), g)?;
    }
    ensure!(shared.len() as u64 == total, "shared engine lost entries");
    let variants = [
        "4 Namespaces (one engine each)",
        "4 strata::Caches (one engine each, no namespace layer)",
        "1 strata::Cache, namespace prefixed onto the key",
    ];
    let draws = p.gets.max(1 << 20).next_power_of_two();
    let mut runs = Vec::new();
    for &s in &p.zipf {
        let keys: Vec<NsKey> = draw_indices(total, s, draws, p.seed ^ 0xC2)?
            .into_iter()
            .map(|g| {
                let (ns, i) = ((g % NS as u64) as usize, g / NS as u64);
                let key = item_key(i);
                NsKey {
                    ns,
                    key,
                    prefixed: prefixed(ns, &key),
                }
            })
            .collect();
        for &threads in &p.threads {
            let passes = alternate(variants.len(), p.rounds, p.gets, |v, at, gets| match v {
                0 => time_gets(&keys, threads, at, gets, &|k: &NsKey| {
                    namespaces[k.ns].get(k.key)
                }),
                1 => time_gets(&keys, threads, at, gets, &|k: &NsKey| {
                    caches[k.ns].get(&k.key[..])
                }),
                _ => time_gets(&keys, threads, at, gets, &|k: &NsKey| {
                    shared.get(&k.prefixed[..])
                }),
            })?;
            let ns_hit: Vec<Vec<f64>> = passes
                .iter()
                .map(|ps| ps.iter().map(Pass::ns_per_hit).collect())
                .collect();
            let mut t = Table::new(
                format!(
                    "C2. hit cost, {NS} namespaces × {per} keys, {}, {threads} thread(s), median of {} rounds",
                    dist_name(s),
                    p.rounds
                ),
                &["variant", "ns/hit", "min–max", "÷ shared engine", "ratio range"],
            );
            let mut rows = Vec::new();
            for (v, name) in variants.iter().enumerate() {
                let r: Vec<f64> = ns_hit[v]
                    .iter()
                    .zip(&ns_hit[2])
                    .map(|(a, b)| a / b)
                    .collect();
                let (lo, hi) = min_max(&ns_hit[v]);
                let (rlo, rhi) = min_max(&r);
                t.row(vec![
                    (*name).to_owned(),
                    format!("{:.1}", median(&ns_hit[v])),
                    format!("{lo:.1}–{hi:.1}"),
                    format!("**{:.3}**", median(&r)),
                    format!("{rlo:.3}–{rhi:.3}"),
                ]);
                rows.push(Json::obj([
                    ("variant", (*name).into()),
                    ("ns_per_hit", Json::nums(&ns_hit[v])),
                    ("ns_per_hit_median", median(&ns_hit[v]).into()),
                    ("ratio_to_shared_median", median(&r).into()),
                ]));
            }
            out.table(&t);
            runs.push(Json::obj([
                ("zipf", s.into()),
                ("threads", threads.into()),
                ("variants", Json::Arr(rows)),
            ]));
        }
    }
    Ok(Json::obj([
        ("keys_per_namespace", per.into()),
        ("runs", Json::Arr(runs)),
    ]))
}

/// A read-through cache for C3.
trait ReadThrough {
    fn get(&self, key: &[u8]) -> bool;
    fn put(&self, key: &[u8]);
}

impl ReadThrough for Namespace<u64> {
    fn get(&self, key: &[u8]) -> bool {
        Namespace::get(self, key).is_some()
    }
    fn put(&self, key: &[u8]) {
        let _ = self.insert(key, 0);
    }
}

impl ReadThrough for Cache<Key, u64> {
    fn get(&self, key: &[u8]) -> bool {
        Cache::get(self, key).is_some()
    }
    fn put(&self, key: &[u8]) {
        let _ = self.insert(Key::from(key), 0);
    }
}

/// Hit counts of the hot namespace A and the scanning namespace B.
#[derive(Debug, Default, Clone, Copy)]
struct IsoResult {
    a_hits: u64,
    a_requests: u64,
    b_hits: u64,
    b_requests: u64,
}

/// Replays A's Zipf sequence read-through on `a`, with `scan` requests of never-seen keys on
/// `b` after each (none when `b` is `None`). Hits count after the first quarter (warm-up).
fn replay_iso<A: ReadThrough, B: ReadThrough>(
    a: &A,
    b: Option<&B>,
    hot: &[u64],
    scan: usize,
) -> IsoResult {
    let warm = hot.len() / 4;
    let mut r = IsoResult::default();
    let mut next_scan = 0u64;
    let mut buf = Vec::with_capacity(32);
    for (i, &k) in hot.iter().enumerate() {
        buf.clear();
        let _ = write!(&mut buf, "A::{k:010}");
        let hit = a.get(&buf);
        if !hit {
            a.put(&buf);
        }
        if i >= warm {
            r.a_requests += 1;
            r.a_hits += u64::from(hit);
        }
        if let Some(b) = b {
            for _ in 0..scan {
                buf.clear();
                let _ = write!(&mut buf, "B::{next_scan:012}");
                next_scan += 1;
                let hit = b.get(&buf);
                if !hit {
                    b.put(&buf);
                }
                if i >= warm {
                    r.b_requests += 1;
                    r.b_hits += u64::from(hit);
                }
            }
        }
    }
    r
}

/// C3: the hit ratio of a Zipf namespace next to a scanning one, separate or shared.
fn isolation(p: &Params, out: &mut Output) -> anyhow::Result<Json> {
    let cap = p.iso_capacity;
    ensure!(cap >= 2, "--iso-capacity must be at least 2");
    let half = cap / 2;
    let z = Zipf::new(p.iso_keys, p.iso_zipf)?;
    let mut rng = StdRng::seed_from_u64(p.seed ^ 0xC3);
    let hot: Vec<u64> = (0..p.iso_requests).map(|_| z.sample(&mut rng)).collect();
    drop(z);
    let mut t = Table::new(
        format!(
            "C3. isolation: A = Zipf({}) over {} keys, B = one pass over unique keys; capacity {cap} in all; {} A requests (hit ratio over the last 3/4)",
            p.iso_zipf, p.iso_keys, p.iso_requests
        ),
        &[
            "B requests per A request",
            "configuration",
            "A hit ratio",
            "B hit ratio",
        ],
    );
    let mut rows = Vec::new();
    let none: Option<&Cache<Key, u64>> = None;
    let mut record = |scan: usize, label: &str, r: IsoResult| {
        let a = r.a_hits as f64 / r.a_requests.max(1) as f64;
        let b = r.b_hits as f64 / r.b_requests.max(1) as f64;
        t.row(vec![
            scan.to_string(),
            label.to_owned(),
            format!("**{a:.4}**"),
            if r.b_requests == 0 {
                "–".to_owned()
            } else {
                format!("{b:.4}")
            },
        ]);
        rows.push(Json::obj([
            ("scan_per_hot", scan.into()),
            ("configuration", label.into()),
            ("a_hit_ratio", a.into()),
            ("b_hit_ratio", b.into()),
            ("a_requests", r.a_requests.into()),
            ("b_requests", r.b_requests.into()),
        ]));
    };
    let t0 = Instant::now();
    // References: A alone in half the capacity and in all of it.
    let r = replay_iso(&plain_cache(Some(half), None)?, none, &hot, 0);
    record(0, &format!("A alone, 1 engine of {half}"), r);
    let r = replay_iso(&plain_cache(Some(cap), None)?, none, &hot, 0);
    record(0, &format!("A alone, 1 engine of {cap}"), r);
    for &scan in &p.scan_per_hot {
        let body = format!("max_entries = {half}");
        let store = store_with(&[("a", &body), ("b", &body)], None)?;
        let (a, b) = (open(&store, "a")?, open(&store, "b")?);
        let r = replay_iso(&a, Some(&b), &hot, scan);
        record(
            scan,
            &format!("separate: 2 Store namespaces of {half} (max_entries)"),
            r,
        );
        drop((a, b, store));
        let (a, b) = (
            plain_cache(Some(half), None)?,
            plain_cache(Some(half), None)?,
        );
        let r = replay_iso(&a, Some(&b), &hot, scan);
        record(scan, &format!("separate: 2 strata::Caches of {half}"), r);
        drop((a, b));
        let shared = plain_cache(Some(cap), None)?;
        let r = replay_iso(&shared, Some(&shared), &hot, scan);
        record(
            scan,
            &format!("shared: 1 strata::Cache of {cap}, keys prefixed A::/B::"),
            r,
        );
    }
    eprintln!("# C3: {:.2}s", t0.elapsed().as_secs_f64());
    out.table(&t);
    Ok(Json::obj([
        ("capacity", cap.into()),
        ("hot_keys", p.iso_keys.into()),
        ("hot_zipf", p.iso_zipf.into()),
        ("hot_requests", p.iso_requests.into()),
        ("rows", Json::Arr(rows)),
    ]))
}

/// Runs the parts asked for.
pub fn run(p: &Params, json: bool) -> anyhow::Result<()> {
    ensure!(p.entries > 0, "--entries must be > 0");
    ensure!(p.gets > 0, "--gets must be > 0");
    ensure!(p.rounds > 0, "--rounds must be > 0");
    ensure!(p.bulk >= 10, "--bulk must be at least 10");
    ensure!(p.threads.iter().all(|&t| t > 0), "--threads must be > 0");
    ensure!(
        p.entries < 10_000_000_000 && p.bulk < 10_000_000_000,
        "too many entries"
    );
    let mut out = Output::new(json);
    out.put("strata_bench_version", env!("CARGO_PKG_VERSION").into());
    let t0 = Instant::now();
    // Counting starts after A, so that A's timed loops never pay for it.
    if p.parts.contains(&Part::A) {
        part_a(p, &mut out).context("part A")?;
    }
    alloc::enable();
    if p.parts.contains(&Part::B) {
        part_b(p, &mut out).context("part B")?;
    }
    if p.parts.contains(&Part::C) {
        part_c(p, &mut out).context("part C")?;
    }
    eprintln!("# store: {:.1}s in all", t0.elapsed().as_secs_f64());
    out.finish();
    Ok(())
}

/// Polls `future` once with a no-op waker: a hit through `get_or_load` is ready at once, and
/// this measures it without a runtime's scheduling (`None` if it was not ready).
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}
