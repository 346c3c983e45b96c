//! `strata`: `strata serve` runs an instance (the Redis protocol and the admin API); the
//! other subcommands operate a running one through its admin API.
//!
//! [`serve`] starts the server of the `strata_server` library; each other subcommand lives
//! in [`cli`], one module each; [`client`] is the blocking HTTP client they share; [`exit`]
//! has the exit codes scripts can rely on.

mod cli;
mod client;
mod exit;
mod serve;

use std::process::ExitCode;

/// mimalloc rather than the system allocator: less memory per small allocation (keys and
/// values are mostly small) and faster; docs/benchmarks.md has the comparison.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

use client::Failure;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Run strata (`strata serve`), or operate a running instance through its admin API",
    after_help = exit::HELP
)]
struct Cli {
    #[command(flatten)]
    remote: cli::Remote,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run strata: the Redis protocol (RESP2/3) and the admin API, until SIGINT or SIGTERM.
    Serve(serve::Args),
    /// Hits, misses, hit ratio, entries, bytes, evictions and loads, per namespace.
    Stats(cli::stats::Args),
    /// The version, the auth mode and the configuration in effect.
    Info,
    /// ok, degraded or down, with the reasons (exit 5 unless ok).
    Health,
    /// The active alerts (exit 0 whether or not there are any).
    Alerts,
    /// The hottest keys of a namespace (sampled estimates).
    Top(cli::top::Args),
    /// Empty every namespace, or one.
    Clear(cli::clear::Args),
    /// Drop entries by key, prefix, glob pattern, tag or event.
    Invalidate(cli::invalidate::Args),
    /// Run the warming jobs of a scope and follow them with a progress bar.
    Warm(cli::warm::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        return serve::run(args);
    }
    let context = cli::Context::new(&cli.remote);
    let result = match &cli.command {
        Command::Stats(args) => cli::stats::run(&context, args),
        Command::Info => cli::info::run(&context),
        Command::Health => cli::health::run(&context),
        Command::Alerts => cli::alerts::run(&context),
        Command::Top(args) => cli::top::run(&context, args),
        Command::Clear(args) => cli::clear::run(&context, args),
        Command::Invalidate(args) => cli::invalidate::run(&context, args),
        Command::Warm(args) => cli::warm::run(&context, args),
        Command::Serve(_) => unreachable!("served above"),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => fail(&failure),
    }
}

/// One line on stderr, and the failure's exit code.
fn fail(failure: &Failure) -> ExitCode {
    eprintln!("strata: {failure}");
    ExitCode::from(failure.exit_code())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
