//! Part B, invalidation over many entries: the caller's time of `Store::invalidate_tag` (every
//! entry carries the tag), of `Namespace::clear` and of the scanning `invalidate_prefix` and
//! `invalidate_pattern`, the time until the memory is back, and what a reader on another
//! thread sees while the janitor purges.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde::Serialize;
use strata::store::{Namespace, Put, Store};

use super::output::{fmt_ns, median, min_max, nanos, Output, Table};
use super::{draw_indices, item_key, open, store_with, Params, RawKey};
use crate::alloc;

/// Part B's figures, as the report has them under `invalidation`.
#[derive(Debug, Serialize)]
pub struct Invalidations {
    entries: u64,
    rounds: usize,
    operations: Vec<Operation>,
}

/// One operation's measurements over the rounds, and the last round's counts.
#[derive(Debug, Serialize)]
struct Operation {
    operation: &'static str,
    caller_ns: Vec<f64>,
    caller_ns_median: f64,
    caller_ns_max: f64,
    caller_minus_runqueue_wait_ns: Vec<f64>,
    /// `null` where the scheduler's figures are unknown.
    runqueue_wait_ns: Vec<Option<u64>>,
    reclaim_ns: Vec<f64>,
    reclaim_ns_median: f64,
    dropped: u64,
    /// Before the call, after it, after the reclaim.
    len: [usize; 3],
    /// After the fill, after the reclaim.
    heap_bytes: [isize; 2],
}

/// B2's latencies of one window, as the report has them under `reader_during_purge`.
#[derive(Debug, Serialize)]
pub struct ReaderWindow {
    window: &'static str,
    gets: usize,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    p9999_ns: u64,
    max_ns: u64,
    over_1ms: usize,
}

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
    out: &Output,
) -> anyhow::Result<Vec<ReaderWindow>> {
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
        rows.push(ReaderWindow {
            window: name,
            gets: count,
            p50_ns: q[0],
            p99_ns: q[1],
            p999_ns: q[2],
            p9999_ns: q[3],
            max_ns: q[4],
            over_1ms: over,
        });
    }
    out.table(&t);
    Ok(rows)
}

/// Runs part B; its tables go to `out`. Returns B2's windows and the figures of the rest.
pub fn run(p: &Params, out: &Output) -> anyhow::Result<(Vec<ReaderWindow>, Invalidations)> {
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
        json_ops.push(Operation {
            operation: op,
            caller_ns_median: median(&caller),
            caller_ns: caller,
            caller_ns_max: max,
            caller_minus_runqueue_wait_ns: own,
            runqueue_wait_ns: rs.iter().map(|r| r.runqueue_wait).collect(),
            reclaim_ns_median: median(&reclaim),
            reclaim_ns: reclaim,
            dropped: last.dropped,
            len: [last.len_before, last.len_after_call, last.len_after_reclaim],
            heap_bytes: [last.heap_filled, last.heap_after],
        });
    }
    out.table(&t);
    let reader = reader_during_purge(&store, &ns, n, p.scan_rounds.min(p.bulk_rounds).max(1), out)?;
    Ok((
        reader,
        Invalidations {
            entries: n,
            rounds: p.bulk_rounds,
            operations: json_ops,
        },
    ))
}
