//! Part C, one engine per namespace or one shared engine: the memory of an opened, empty
//! namespace (C1); hit cost through four namespaces against the same keys in one engine with
//! the namespace prefixed onto the key (C2); and the hit ratio of a Zipf namespace next to a
//! scanning one, in separate engines of half the capacity each or in one shared engine (C3).

use std::io::Write as _;
use std::time::Instant;

use anyhow::ensure;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use strata::store::Namespace;
use strata::{Cache, Key};

use super::output::{dist_name, median, min_max, Output, Run, Table};
use super::timing::{alternate, time_gets, Pass};
use super::{draw_indices, item_key, open, plain_cache, store_with, Params, RawKey};
use crate::alloc;
use crate::zipf::Zipf;

/// Part C's figures, as the report has them under `engines`.
#[derive(Debug, Serialize)]
pub struct Engines {
    empty_namespace: Vec<EmptyNamespace>,
    four_namespaces: FourNamespaces,
    isolation: Isolation,
}

/// C1: one configuration's empty namespace.
#[derive(Debug, Serialize)]
struct EmptyNamespace {
    configured: &'static str,
    max_bytes: u64,
    engine_heap_bytes: usize,
    live_heap_bytes: isize,
    allocations: u64,
}

/// C2's figures.
#[derive(Debug, Serialize)]
struct FourNamespaces {
    keys_per_namespace: u64,
    runs: Vec<Run<VariantCost>>,
}

/// C2: one variant's hit cost in one run.
#[derive(Debug, Serialize)]
struct VariantCost {
    variant: &'static str,
    ns_per_hit: Vec<f64>,
    ns_per_hit_median: f64,
    ratio_to_shared_median: f64,
}

/// C3's figures.
#[derive(Debug, Serialize)]
struct Isolation {
    capacity: u64,
    hot_keys: u64,
    hot_zipf: f64,
    hot_requests: usize,
    rows: Vec<IsolationRow>,
}

/// C3: the hit ratios of one configuration.
#[derive(Debug, Serialize)]
struct IsolationRow {
    scan_per_hot: usize,
    configuration: String,
    a_hit_ratio: f64,
    b_hit_ratio: f64,
    a_requests: u64,
    b_requests: u64,
}

/// Runs part C; its tables go to `out`.
pub fn run(p: &Params, out: &Output) -> anyhow::Result<Engines> {
    Ok(Engines {
        empty_namespace: empty_namespace_memory(out)?,
        four_namespaces: four_namespaces(p, out)?,
        isolation: isolation(p, out)?,
    })
}

/// C1: what opening an empty namespace costs, by its bounds.
fn empty_namespace_memory(out: &Output) -> anyhow::Result<Vec<EmptyNamespace>> {
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
        rows.push(EmptyNamespace {
            configured,
            max_bytes: share,
            engine_heap_bytes: engine,
            live_heap_bytes: live,
            allocations: allocs,
        });
    }
    out.table(&t);
    Ok(rows)
}

/// A lookup in C2: which namespace, its key, and the key with the namespace prefixed.
struct NsKey {
    ns: usize,
    key: RawKey,
    prefixed: [u8; 21],
}

/// C2: hit cost through 4 namespaces against one engine holding all their keys, prefixed.
fn four_namespaces(p: &Params, out: &Output) -> anyhow::Result<FourNamespaces> {
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
                rows.push(VariantCost {
                    variant: name,
                    ns_per_hit: ns_hit[v].clone(),
                    ns_per_hit_median: median(&ns_hit[v]),
                    ratio_to_shared_median: median(&r),
                });
            }
            out.table(&t);
            runs.push(Run {
                zipf: s,
                threads,
                variants: rows,
            });
        }
    }
    Ok(FourNamespaces {
        keys_per_namespace: per,
        runs,
    })
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
fn isolation(p: &Params, out: &Output) -> anyhow::Result<Isolation> {
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
        rows.push(IsolationRow {
            scan_per_hot: scan,
            configuration: label.to_owned(),
            a_hit_ratio: a,
            b_hit_ratio: b,
            a_requests: r.a_requests,
            b_requests: r.b_requests,
        });
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
    Ok(Isolation {
        capacity: cap,
        hot_keys: p.iso_keys,
        hot_zipf: p.iso_zipf,
        hot_requests: p.iso_requests,
        rows,
    })
}
