//! `gen`: deterministic synthetic trace suite (oracleGeneral + suite.tsv).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::trace::{self, TraceFormat};
use crate::zipf::{scramble, Zipf};

/// Suite parameters.
#[derive(Debug, Clone, Copy)]
pub struct GenParams {
    pub requests: u64,
    pub keys: u64,
    pub seed: u64,
}

/// One generated trace.
#[derive(Debug, Clone)]
pub struct TraceSpec {
    pub file: String,
    pub description: String,
    pub capacities: Vec<u64>,
}

/// Key-space offsets so that different key families never collide.
const SCAN_SPACE: u64 = 1 << 48;
const LOOP_SPACE: u64 = 1 << 40;

fn rng_for(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(scramble(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn pct(keys: u64, p: u64) -> u64 {
    (keys * p / 100).max(1)
}

fn zipf_trace(z: &Zipf, n: usize, rng: &mut StdRng) -> Vec<u64> {
    (0..n).map(|_| scramble(z.sample(rng))).collect()
}

/// Generates all traces, writes them to `dir` and writes `dir/suite.tsv`.
/// Returns the specs in suite order.
pub fn generate(dir: &Path, p: GenParams) -> anyhow::Result<Vec<TraceSpec>> {
    ensure!(p.requests > 0, "--requests must be > 0");
    ensure!(p.keys > 0, "--keys must be > 0");
    ensure!(
        p.requests < u64::from(u32::MAX),
        "--requests must be < 2^32 (oracleGeneral time field is u32)"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let n = p.requests as usize;
    let k = p.keys;
    let std_caps = vec![pct(k, 1), pct(k, 5), pct(k, 10)];
    let mut specs = Vec::new();
    let mut emit = |file: String, description: String, caps: Vec<u64>, keys: Vec<u64>| {
        let path = dir.join(&file);
        trace::write_file(&path, &keys, TraceFormat::Oracle)?;
        eprintln!("# wrote {} ({} requests)", path.display(), keys.len());
        specs.push(TraceSpec {
            file,
            description,
            capacities: caps,
        });
        anyhow::Ok(())
    };

    // 1. Plain Zipf at several skews.
    for (i, s) in [0.6, 0.8, 1.0, 1.2].into_iter().enumerate() {
        let z = Zipf::new(k, s)?;
        let mut rng = rng_for(p.seed, 1 + i as u64);
        emit(
            format!("zipf-{s:.1}.oracleGeneral"),
            format!("Zipf(s={s:.1}) over {k} keys, {n} requests"),
            std_caps.clone(),
            zipf_trace(&z, n, &mut rng),
        )?;
    }

    let z1 = Zipf::new(k, 1.0)?;

    // 2. Zipf 1.0 with one-time scans woven in: every `period` requests the
    //    last `burst` are never-seen-again keys (10% of all requests).
    {
        let burst = pct(k, 5) as usize;
        let period = burst * 10;
        let mut rng = rng_for(p.seed, 10);
        let mut next_scan = 0u64;
        let keys: Vec<u64> = (0..n)
            .map(|i| {
                if i % period >= period - burst {
                    next_scan += 1;
                    scramble(SCAN_SPACE + next_scan)
                } else {
                    scramble(z1.sample(&mut rng))
                }
            })
            .collect();
        emit(
            "zipf-1.0-scan.oracleGeneral".into(),
            format!(
                "Zipf(s=1.0) over {k} keys; every {period} requests a burst of {burst} one-time scan keys (10% of requests), {n} requests"
            ),
            std_caps.clone(),
            keys,
        )?;
    }

    // 3. Loops slightly larger than the cache (capacity = 10% of keys).
    let loop_cap = pct(k, 10);
    for (stream, factor, noise) in [(20u64, 1.1, 0.0), (21, 1.5, 0.0), (22, 1.1, 0.1)] {
        let len = ((loop_cap as f64 * factor).round() as u64).max(loop_cap + 1);
        let mut rng = rng_for(p.seed, stream);
        let mut pos = 0u64;
        let keys: Vec<u64> = (0..n)
            .map(|_| {
                if noise > 0.0 && rng.random::<f64>() < noise {
                    scramble(z1.sample(&mut rng))
                } else {
                    let key = scramble(LOOP_SPACE + pos);
                    pos = (pos + 1) % len;
                    key
                }
            })
            .collect();
        let (file, description) = if noise > 0.0 {
            (
                format!("loop-{factor:.1}x-zipf.oracleGeneral"),
                format!(
                    "cyclic scan over {len} keys ({factor:.1}x capacity {loop_cap}) with {:.0}% Zipf(s=1.0) noise over {k} other keys, {n} requests",
                    noise * 100.0
                ),
            )
        } else {
            (
                format!("loop-{factor:.1}x.oracleGeneral"),
                format!(
                    "cyclic scan over {len} keys ({factor:.1}x capacity {loop_cap}), {n} requests"
                ),
            )
        };
        emit(file, description, vec![loop_cap], keys)?;
    }

    // 4. Popularity shifting in phases: Zipf(1.0) ranks are rotated by
    //    `stride` key ids every `phase_len` requests, so each phase's hot set
    //    lands on keys that were cold in the previous phase.
    {
        let phases = 8u64;
        let phase_len = (n as u64 / phases).max(1);
        let stride = (k / phases).max(1);
        let mut rng = rng_for(p.seed, 30);
        let keys: Vec<u64> = (0..n as u64)
            .map(|i| {
                let phase = i / phase_len;
                let rank = z1.sample(&mut rng);
                scramble((rank + phase * stride) % k)
            })
            .collect();
        emit(
            "shift.oracleGeneral".into(),
            format!(
                "Zipf(s=1.0) over {k} keys whose hot set moves to different keys every {phase_len} requests, {n} requests"
            ),
            std_caps.clone(),
            keys,
        )?;
    }

    // 5. Recency: every other new key is asked for once more, exactly `gap` requests later,
    //    and never again. A third of the requests can hit (LRU gets all of them once the cache
    //    holds the keys of `gap` requests); frequency admission behind a small window gets
    //    almost none, since a key leaves the window before its second request.
    {
        let gap = 100usize;
        let mut rng = rng_for(p.seed, 40);
        let mut again: Vec<Option<u64>> = vec![None; n];
        let mut next_key = 0u64;
        let keys: Vec<u64> = (0..n)
            .map(|i| {
                if let Some(key) = again[i].take() {
                    return key;
                }
                next_key += 1;
                let key = scramble(SCAN_SPACE + LOOP_SPACE + next_key);
                if rng.random::<bool>() {
                    if let Some(slot) = again.get_mut(i + gap).filter(|slot| slot.is_none()) {
                        *slot = Some(key);
                    }
                }
                key
            })
            .collect();
        emit(
            "reuse-twice.oracleGeneral".into(),
            format!(
                "every other new key asked for once more, {gap} requests later, and never again, {n} requests"
            ),
            vec![128, 1000],
            keys,
        )?;
    }

    let mut tsv = String::from("file\tdescription\tsuggested_capacities\n");
    for s in &specs {
        let caps: Vec<String> = s.capacities.iter().map(u64::to_string).collect();
        writeln!(tsv, "{}\t{}\t{}", s.file, s.description, caps.join(",")).unwrap();
    }
    let tsv_path = dir.join("suite.tsv");
    std::fs::write(&tsv_path, tsv)
        .with_context(|| format!("cannot write {}", tsv_path.display()))?;
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::read_keys;
    use std::collections::HashSet;

    #[test]
    fn suite_is_deterministic_and_well_formed() {
        let base = std::env::temp_dir().join(format!("strata-bench-gen-{}", std::process::id()));
        let p = GenParams {
            requests: 20_000,
            keys: 1_000,
            seed: 3,
        };
        let a = generate(&base.join("a"), p).unwrap();
        generate(&base.join("b"), p).unwrap();
        assert_eq!(a.len(), 10);
        for s in &a {
            let ka = read_keys(&base.join("a").join(&s.file), TraceFormat::Oracle).unwrap();
            let kb = read_keys(&base.join("b").join(&s.file), TraceFormat::Oracle).unwrap();
            assert_eq!(ka.len(), 20_000, "{}", s.file);
            assert_eq!(ka, kb, "{} not deterministic", s.file);
        }
        let loop_keys =
            read_keys(&base.join("a/loop-1.1x.oracleGeneral"), TraceFormat::Oracle).unwrap();
        let distinct: HashSet<u64> = loop_keys.iter().copied().collect();
        assert_eq!(distinct.len(), 110);
        assert_eq!(loop_keys[0], loop_keys[110]);
        let tsv = std::fs::read_to_string(base.join("a/suite.tsv")).unwrap();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "file\tdescription\tsuggested_capacities");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("loop-1.1x.oracleGeneral\t") && l.ends_with("\t100")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("zipf-1.0.oracleGeneral\t") && l.ends_with("\t10,50,100")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
