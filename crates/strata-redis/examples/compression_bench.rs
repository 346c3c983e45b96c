//! Which codec compresses values in Redis: lz4 (`lz4_flex`, pure Rust) against zstd (the C
//! library through the `zstd` crate) at levels 1 and 3, on JSON shaped like what caches hold
//! (a page of payment history: objects with the same keys, ids, amounts, timestamps, status
//! words, free text), from 1 KiB to 1 MiB. For each: the ratio (compressed / original), and
//! compression and decompression speed on one core, best of 5 rounds.
//!
//! `cargo run --release -p strata-redis --example compression_bench`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A JSON array of payment records, at least `size` bytes long (deterministic).
fn payments(size: usize) -> Vec<u8> {
    let statuses = ["succeeded", "pending", "failed", "refunded"];
    let methods = ["card", "sepa_debit", "paypal", "apple_pay"];
    let notes = [
        "Monthly subscription renewal",
        "Top-up from the mobile app",
        "Invoice 2026-11 settled by bank transfer",
        "Refund for order cancelled by the customer",
    ];
    let mut out = String::from("[");
    let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut i = 0u64;
    while out.len() < size {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = |k: u64| ((n >> (k * 8)) % 4) as usize;
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"id":"pay_{:016x}","user_id":{},"amount_cents":{},"currency":"EUR","status":"{}","method":"{}","created_at":"2026-{:02}-{:02}T{:02}:{:02}:{:02}Z","note":"{}","fee_cents":{},"metadata":{{"attempt":{},"ip":"10.{}.{}.{}"}}}}"#,
            n,
            1000 + (n % 5000),
            n % 100_000,
            statuses[pick(1)],
            methods[pick(2)],
            1 + (n >> 20) % 12,
            1 + (n >> 24) % 28,
            (n >> 28) % 24,
            (n >> 32) % 60,
            (n >> 36) % 60,
            notes[pick(3)],
            (n >> 40) % 500,
            1 + (n >> 44) % 3,
            (n >> 48) % 256,
            (n >> 52) % 256,
            (n >> 56) % 256,
        );
        i += 1;
    }
    out.push(']');
    out.into_bytes()
}

/// The best time of `rounds` runs of `f`, each repeated until it took at least 20 ms.
fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let (mut runs, start) = (0u32, Instant::now());
        while start.elapsed() < Duration::from_millis(20) {
            f();
            runs += 1;
        }
        best = best.min(start.elapsed() / runs);
    }
    best
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e6
}

fn main() {
    println!("| size | codec | ratio | compress MB/s | decompress MB/s |");
    println!("|---:|---|---:|---:|---:|");
    for size in [1 << 10, 16 << 10, 256 << 10, 1 << 20] {
        let json = payments(size);
        let lz4 = lz4_flex::compress_prepend_size(&json);
        let c = best(5, || drop(lz4_flex::compress_prepend_size(&json)));
        let d = best(5, || {
            drop(lz4_flex::decompress_size_prepended(&lz4).unwrap())
        });
        assert_eq!(lz4_flex::decompress_size_prepended(&lz4).unwrap(), json);
        row(size, "lz4", json.len(), lz4.len(), c, d);
        for level in [1, 3] {
            // Contexts made once and reused, as a codec would keep them per thread (making
            // one per call costs more than compressing a small value).
            let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
            let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
            let z = compressor.compress(&json).unwrap();
            let c = best(5, || drop(compressor.compress(&json).unwrap()));
            let d = best(5, || drop(decompressor.decompress(&z, json.len()).unwrap()));
            assert_eq!(decompressor.decompress(&z, json.len()).unwrap(), json);
            row(size, &format!("zstd {level}"), json.len(), z.len(), c, d);
        }
    }
}

fn row(size: usize, codec: &str, raw: usize, packed: usize, c: Duration, d: Duration) {
    println!(
        "| {} KiB | {codec} | {:.3} | {:.0} | {:.0} |",
        size >> 10,
        packed as f64 / raw as f64,
        mb_per_s(raw, c),
        mb_per_s(raw, d)
    );
}
