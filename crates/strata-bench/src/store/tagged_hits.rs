//! Part A, tagged hits: one store, three namespaces holding the same keys inserted with 0, 1
//! and 2 tags, plus a plain `strata::Cache<Key, u64>` with the same keys as a reference, and
//! the read-through calls on a hit; every variant timed on the same key sequence.

use std::time::Instant;

use anyhow::ensure;
use serde::Serialize;
use strata::store::Put;
use strata::Key;

use super::output::{dist_name, median, min_max, Output, Run, Table};
use super::timing::{alternate, time_gets, Pass};
use super::{draw_indices, item_key, open, plain_cache, store_with, Params, RawKey};
use crate::zipf::scramble;

/// Part A's figures, as the report has them under `tagged_hits`.
#[derive(Debug, Serialize)]
pub struct TaggedHits {
    entries: u64,
    gets_per_thread: usize,
    rounds: usize,
    tag_groups: u64,
    runs: Vec<Run<VariantHits>>,
}

/// One variant's hit cost in one run, per round and as the median over rounds.
#[derive(Debug, Serialize)]
struct VariantHits {
    variant: &'static str,
    ns_per_hit: Vec<f64>,
    ns_per_hit_median: f64,
    ratio_to_untagged: Vec<f64>,
    ratio_to_untagged_median: f64,
}

/// Runs part A; its tables go to `out`.
pub fn run(p: &Params, out: &Output) -> anyhow::Result<TaggedHits> {
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
                json_rows.push(VariantHits {
                    variant: name,
                    ns_per_hit: ns_hit[v].clone(),
                    ns_per_hit_median: median(&ns_hit[v]),
                    ratio_to_untagged_median: median(&r),
                    ratio_to_untagged: r,
                });
            }
            out.table(&t);
            json_runs.push(Run {
                zipf: s,
                threads,
                variants: json_rows,
            });
        }
    }
    Ok(TaggedHits {
        entries: n,
        gets_per_thread: p.gets,
        rounds: p.rounds,
        tag_groups: groups,
        runs: json_runs,
    })
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
