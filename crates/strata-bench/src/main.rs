//! `strata-bench`: trace replay, throughput, memory and trace-generation tool
//! comparing strata against moka and quick_cache, and a load generator for
//! Redis-protocol servers (`resp-load`).

mod alloc;
mod caches;
mod gen;
mod memory;
mod replay;
mod resp_load;
mod store;
mod throughput;
mod trace;
mod zipf;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Args, Parser, Subcommand};
use rand::rngs::StdRng;
use rand::SeedableRng;

use caches::{BenchCache, Impl};
use throughput::{run_phase, start_positions, PhaseResult, Stop};
use trace::TraceFormat;

#[global_allocator]
static GLOBAL: alloc::CountingAlloc = alloc::CountingAlloc;

#[derive(Debug, Parser)]
#[command(
    name = "strata-bench",
    version,
    about = "Benchmarks the strata cache against moka and quick_cache",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a trace read-through (get; insert on miss) and print hit ratios.
    ///
    /// Output: `impl=NAME capacity=N hit_ratio=0.xxxx`, one line per
    /// capacity and implementation.
    Replay(ReplayArgs),
    /// Multi-threaded Zipf get/insert-on-miss throughput.
    ///
    /// Output: `impl=NAME mops=X hit_ratio=Y`, one line per implementation.
    Throughput(ThroughputArgs),
    /// Live heap bytes per entry after inserting N entries into a cache of capacity N.
    ///
    /// Output: `impl=NAME bytes_per_entry=X` plus a `#` line with raw totals.
    Memory(MemoryArgs),
    /// Generate the synthetic oracleGeneral trace suite and DIR/suite.tsv.
    Gen(GenArgs),
    /// Convert a trace (text or oracleGeneral, optionally .xz) to oracleGeneral with unit
    /// sizes and next-access times, the form libCacheSim's reference policies read.
    ///
    /// Output: `requests=N distinct=D` on stdout.
    Convert(ConvertArgs),
    /// What the store layer costs: hits on tagged entries, invalidation over 1M entries,
    /// and one engine per namespace against one shared engine.
    ///
    /// Output: markdown tables (on stderr with --json, which puts one JSON object on stdout).
    Store(StoreArgs),
    /// A mixed GET/SET load on Redis-protocol servers for a fixed time (after a 1 s
    /// warm-up), clients spread round-robin over the servers.
    ///
    /// Output: one JSON object on stdout (`ops_per_sec`, `ops`, `reads`, `writes`, `misses`,
    /// `errors`, `seconds`, `servers`, `clients`, `pipeline`), a summary line on stderr.
    /// Exits non-zero when any server answered with an error.
    RespLoad(RespLoadArgs),
}

#[derive(Debug, Args)]
struct ImplArg {
    /// Implementations, comma separated.
    #[arg(
        long = "impl",
        value_delimiter = ',',
        default_values = ["strata", "moka", "quick_cache"]
    )]
    impls: Vec<Impl>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Trace file.
    trace: PathBuf,
    /// Cache capacity in entries; a comma-separated list runs each one.
    #[arg(long, value_delimiter = ',', required = true)]
    capacity: Vec<u64>,
    /// Trace format [default: from extension: .oracleGeneral/.bin → oracle, else text].
    #[arg(long, value_enum)]
    format: Option<TraceFormat>,
    #[command(flatten)]
    impls: ImplArg,
}

#[derive(Debug, Args)]
struct ThroughputArgs {
    #[command(flatten)]
    impls: ImplArg,
    /// Worker threads.
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Key universe size (Zipf ranks 0..K).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Cache capacity in entries.
    #[arg(long, default_value_t = 100_000)]
    capacity: u64,
    /// Zipf exponent.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Total measured seconds per implementation (split over the rounds).
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Rounds; implementations alternate within each round.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Number of pre-drawn keys (rounded up to a power of two).
    #[arg(long, default_value_t = 1 << 22)]
    draws: usize,
    /// Seed for the key sequence.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Args)]
struct MemoryArgs {
    /// Capacity and number of distinct entries inserted.
    #[arg(long)]
    entries: u64,
    #[command(flatten)]
    impls: ImplArg,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// Trace to read.
    input: PathBuf,
    /// oracleGeneral file to write.
    output: PathBuf,
    /// Input format [default: from extension, as for replay].
    #[arg(long, value_enum)]
    format: Option<TraceFormat>,
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Requests per trace.
    #[arg(long, default_value_t = 2_000_000)]
    requests: u64,
    /// Key universe size.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// RNG seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// Parts to run: a (tagged hits), b (invalidation), c (engines), comma separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["a", "b", "c"])]
    parts: Vec<store::Part>,
    /// A and C2: entries per variant (C2 splits them over 4 namespaces).
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// A and C2: gets per thread per variant in each round (taken in 10 interleaved slices).
    #[arg(long, default_value_t = 500_000)]
    gets: usize,
    /// A and C2: timed rounds; variants alternate within each round.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// A and C2: Zipf exponents of the lookup sequence, comma separated (0 = uniform).
    #[arg(long, value_delimiter = ',', default_values_t = [0.9, 0.0])]
    zipf: Vec<f64>,
    /// A and C2: thread counts, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// A: distinct values of each tag (entry i carries group:{i % G}, and owner:{hash(i) % G}).
    #[arg(long, default_value_t = 1000)]
    tag_groups: u64,
    /// A, B and C2: a default TTL in seconds on every namespace and cache [default: none].
    #[arg(long)]
    ttl: Option<u64>,
    /// B: entries filled before each invalidation.
    #[arg(long, default_value_t = 1_000_000)]
    bulk: u64,
    /// B: repetitions of invalidate_tag and clear (a fresh fill for each).
    #[arg(long, default_value_t = 7)]
    bulk_rounds: usize,
    /// B: repetitions of the scanning invalidate_prefix / invalidate_pattern.
    #[arg(long, default_value_t = 3)]
    scan_rounds: usize,
    /// C3: keys of the hot namespace A.
    #[arg(long, default_value_t = 100_000)]
    iso_keys: u64,
    /// C3: total capacity in entries (separate engines get half each).
    #[arg(long, default_value_t = 20_000)]
    iso_capacity: u64,
    /// C3: requests to A (B gets --scan-per-hot times as many).
    #[arg(long, default_value_t = 1_000_000)]
    iso_requests: usize,
    /// C3: Zipf exponent of A.
    #[arg(long, default_value_t = 0.9)]
    iso_zipf: f64,
    /// C3: B requests after each A request, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4])]
    scan_per_hot: Vec<usize>,
    /// Seed for the lookup sequences.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object on stdout (the tables go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RespLoadArgs {
    /// Servers as host:port, comma separated; client i talks to server i % N.
    #[arg(long, value_delimiter = ',', required = true)]
    servers: Vec<String>,
    /// Connections, each with one batch in flight.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Commands per batch: written in one write, then as many replies read.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Measured seconds, after the warm-up; 0 only preloads (needs --preload).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Probability that a command is a GET (else a SET).
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Key universe: `key:{n}`, n uniform in 0..K.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Bytes of each SET's value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// SET every key once before the run (1000 a batch, batch b through server b % N).
    #[arg(long)]
    preload: bool,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn dedup(impls: &[Impl]) -> Vec<Impl> {
    let mut out: Vec<Impl> = Vec::new();
    for &i in impls {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn cmd_replay(a: ReplayArgs) -> anyhow::Result<()> {
    ensure!(a.capacity.iter().all(|&c| c > 0), "--capacity must be > 0");
    let format = match a.format {
        Some(f) => f,
        None => TraceFormat::guess(&a.trace)?,
    };
    if !a.trace.exists() {
        bail!("trace file {} does not exist", a.trace.display());
    }
    let keys = trace::read_keys(&a.trace, format)?;
    ensure!(
        !keys.is_empty(),
        "trace {} contains no requests",
        a.trace.display()
    );
    let impls = dedup(&a.impls.impls);
    for &cap in &a.capacity {
        for &which in &impls {
            let hits = with_cache!(which, cap, None, |cache| replay::replay(&cache, &keys));
            println!(
                "impl={} capacity={cap} hit_ratio={:.4}",
                which.name(),
                hits as f64 / keys.len() as f64
            );
        }
    }
    Ok(())
}

fn bench_round<C: BenchCache>(
    cache: &C,
    keys: &[u64],
    threads: usize,
    capacity: u64,
    measure: Duration,
) -> PhaseResult {
    let mut pos = start_positions(keys.len(), threads);
    run_phase(
        cache,
        keys,
        &mut pos,
        Stop::WarmUp {
            ops_per_thread: capacity.saturating_mul(2),
            max_time: Duration::from_millis(500),
        },
    );
    run_phase(cache, keys, &mut pos, Stop::After(measure))
}

fn cmd_throughput(a: ThroughputArgs) -> anyhow::Result<()> {
    ensure!(a.threads > 0, "--threads must be > 0");
    ensure!(a.keys > 0, "--keys must be > 0");
    ensure!(a.capacity > 0, "--capacity must be > 0");
    ensure!(a.rounds > 0, "--rounds must be > 0");
    ensure!(a.draws > 0, "--draws must be > 0");
    ensure!(
        a.seconds.is_finite() && a.seconds > 0.0,
        "--seconds must be > 0"
    );
    let impls = dedup(&a.impls.impls);
    let draws = a
        .draws
        .checked_next_power_of_two()
        .context("--draws too large")?;

    let t0 = Instant::now();
    let z = zipf::Zipf::new(a.keys, a.zipf)?;
    let mut rng = StdRng::seed_from_u64(a.seed);
    let keys: Vec<u64> = (0..draws)
        .map(|_| zipf::scramble(z.sample(&mut rng)))
        .collect();
    drop(z);
    eprintln!(
        "# threads={} keys={} capacity={} zipf={} seconds={} rounds={} draws={} (keys drawn in {:.2}s)",
        a.threads,
        a.keys,
        a.capacity,
        a.zipf,
        a.seconds,
        a.rounds,
        draws,
        t0.elapsed().as_secs_f64()
    );

    let per_round = Duration::from_secs_f64(a.seconds / f64::from(a.rounds));
    let ttl = Some(Duration::from_secs(3600));
    let mut totals = vec![PhaseResult::default(); impls.len()];
    for round in 1..=a.rounds {
        for (i, &which) in impls.iter().enumerate() {
            let r = with_cache!(which, a.capacity, ttl, |cache| bench_round(
                &cache, &keys, a.threads, a.capacity, per_round
            ));
            eprintln!(
                "# round {round}/{} impl={} mops={:.2} hit_ratio={:.4}",
                a.rounds,
                which.name(),
                r.ops as f64 / r.elapsed.as_secs_f64() / 1e6,
                r.hits as f64 / r.ops.max(1) as f64
            );
            let t = &mut totals[i];
            t.ops += r.ops;
            t.hits += r.hits;
            t.elapsed += r.elapsed;
        }
    }
    for (which, t) in impls.iter().zip(&totals) {
        println!(
            "impl={} mops={:.2} hit_ratio={:.4}",
            which.name(),
            t.ops as f64 / t.elapsed.as_secs_f64() / 1e6,
            t.hits as f64 / t.ops.max(1) as f64
        );
    }
    Ok(())
}

fn cmd_memory(a: MemoryArgs) -> anyhow::Result<()> {
    ensure!(a.entries > 0, "--entries must be > 0");
    let impls = dedup(&a.impls.impls);
    alloc::enable();
    for which in impls {
        let r = memory::measure(which, a.entries)?;
        println!(
            "impl={} bytes_per_entry={:.1}",
            which.name(),
            r.bytes as f64 / a.entries as f64
        );
        println!(
            "# impl={} total_bytes={} entries_inserted={} entries_held={} allocations={}",
            which.name(),
            r.bytes,
            a.entries,
            r.entries,
            r.allocs
        );
    }
    Ok(())
}

fn cmd_convert(a: ConvertArgs) -> anyhow::Result<()> {
    let format = match a.format {
        Some(f) => f,
        None => TraceFormat::guess(&a.input)?,
    };
    let keys = trace::read_keys(&a.input, format)?;
    ensure!(
        !keys.is_empty(),
        "trace {} contains no requests",
        a.input.display()
    );
    trace::write_file(&a.output, &keys, TraceFormat::Oracle)?;
    let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len();
    println!("requests={} distinct={distinct}", keys.len());
    Ok(())
}

fn cmd_gen(a: GenArgs) -> anyhow::Result<()> {
    let specs = gen::generate(
        &a.out,
        gen::GenParams {
            requests: a.requests,
            keys: a.keys,
            seed: a.seed,
        },
    )?;
    eprintln!(
        "# wrote {} traces and {}",
        specs.len(),
        a.out.join("suite.tsv").display()
    );
    Ok(())
}

fn cmd_store(a: StoreArgs) -> anyhow::Result<()> {
    let params = store::Params {
        parts: dedup_parts(&a.parts),
        entries: a.entries,
        gets: a.gets,
        rounds: a.rounds,
        zipf: a.zipf,
        threads: a.threads,
        tag_groups: a.tag_groups,
        ttl: a.ttl.map(Duration::from_secs),
        bulk: a.bulk,
        bulk_rounds: a.bulk_rounds,
        scan_rounds: a.scan_rounds,
        iso_keys: a.iso_keys,
        iso_capacity: a.iso_capacity,
        iso_requests: a.iso_requests,
        iso_zipf: a.iso_zipf,
        scan_per_hot: a.scan_per_hot,
        seed: a.seed,
    };
    store::run(&params, a.json)
}

/// Redis caps a bulk string at 512 MiB (`proto-max-bulk-len`).
const MAX_VALUE_SIZE: usize = 512 << 20;

fn cmd_resp_load(a: RespLoadArgs) -> anyhow::Result<()> {
    ensure!(
        a.servers.iter().all(|s| !s.trim().is_empty()),
        "--servers must not hold an empty address"
    );
    ensure!(a.clients > 0, "--clients must be > 0");
    ensure!(a.pipeline > 0, "--pipeline must be > 0");
    ensure!(a.keys > 0, "--keys must be > 0");
    ensure!(a.threads > 0, "--threads must be > 0");
    ensure!(
        (0.0..=1.0).contains(&a.read_ratio),
        "--read-ratio must be between 0 and 1"
    );
    ensure!(
        a.value_size <= MAX_VALUE_SIZE,
        "--value-size must be <= {MAX_VALUE_SIZE}"
    );
    ensure!(
        a.seconds.is_finite() && a.seconds >= 0.0,
        "--seconds must be >= 0"
    );
    ensure!(
        a.seconds > 0.0 || a.preload,
        "--seconds 0 only preloads: pass --preload"
    );
    let params = resp_load::Params {
        servers: a.servers.iter().map(|s| s.trim().to_owned()).collect(),
        clients: a.clients,
        pipeline: a.pipeline,
        seconds: Duration::from_secs_f64(a.seconds),
        read_ratio: a.read_ratio,
        keys: a.keys,
        value_size: a.value_size,
        preload: a.preload,
        threads: a.threads,
    };
    let r = resp_load::run(&params)?;
    println!("{}", serde_json::to_string(&r)?);
    if !params.seconds.is_zero() {
        eprintln!(
            "# resp-load: {:.0} ops/s over {:.2}s ({} reads, {} misses, {} writes, {} errors), \
             {} clients x pipeline {} on {} server(s)",
            r.ops_per_sec,
            r.seconds,
            r.reads,
            r.misses,
            r.writes,
            r.errors,
            r.clients,
            r.pipeline,
            r.servers
        );
    }
    if r.errors > 0 {
        bail!(
            "{} error replies, the first: {}",
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

fn dedup_parts(parts: &[store::Part]) -> Vec<store::Part> {
    let mut out = Vec::new();
    for &p in parts {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay(a) => cmd_replay(a),
        Command::Throughput(a) => cmd_throughput(a),
        Command::Memory(a) => cmd_memory(a),
        Command::Gen(a) => cmd_gen(a),
        Command::Convert(a) => cmd_convert(a),
        Command::Store(a) => cmd_store(a),
        Command::RespLoad(a) => cmd_resp_load(a),
    }
}

/// Parses the command line; usage errors become one line on stderr (exit 2),
/// while `--help`, `--version` and a bare `strata-bench` print as usual.
fn parse_cli() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let rendered = e.render().to_string();
                let msg: Vec<&str> = rendered
                    .lines()
                    .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                eprintln!("strata-bench: {} (see --help)", msg.join(" "));
                Err(ExitCode::from(2))
            }
        },
    }
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("strata-bench: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
