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
//!
//! Each part has a file: [`tagged_hits`] (A), [`invalidation`] (B) and [`engines`] (C).
//! [`timing`] times lookups and alternates variants within a round; [`output`] prints the
//! markdown tables and, with `--json`, the [`Report`].

mod engines;
mod invalidation;
mod output;
mod tagged_hits;
mod timing;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use strata::config::Config;
use strata::store::{Namespace, Store};
use strata::{Cache, Key};

use crate::alloc;
use crate::zipf::Zipf;
use output::Output;

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

/// What `--json` prints: one object, a key for each part that ran, in the order they ran.
#[derive(Debug, Serialize)]
pub struct Report {
    strata_bench_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tagged_hits: Option<tagged_hits::TaggedHits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reader_during_purge: Option<Vec<invalidation::ReaderWindow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invalidation: Option<invalidation::Invalidations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engines: Option<engines::Engines>,
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
    let out = Output::new(json);
    let mut report = Report {
        strata_bench_version: env!("CARGO_PKG_VERSION"),
        tagged_hits: None,
        reader_during_purge: None,
        invalidation: None,
        engines: None,
    };
    let t0 = Instant::now();
    // Counting starts after A, so that A's timed loops never pay for it.
    if p.parts.contains(&Part::A) {
        report.tagged_hits = Some(tagged_hits::run(p, &out).context("part A")?);
    }
    alloc::enable();
    if p.parts.contains(&Part::B) {
        let (reader, invalidations) = invalidation::run(p, &out).context("part B")?;
        report.reader_during_purge = Some(reader);
        report.invalidation = Some(invalidations);
    }
    if p.parts.contains(&Part::C) {
        report.engines = Some(engines::run(p, &out).context("part C")?);
    }
    eprintln!("# store: {:.1}s in all", t0.elapsed().as_secs_f64());
    out.finish(&report)
}
