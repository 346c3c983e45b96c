//! `strata serve`: the Redis protocol on one address, the admin API on another, over one
//! store, until SIGINT or SIGTERM. The admin API runs on `strata_admin::serve`, within the
//! `[admin]` limits, so its clients cannot take the descriptors the Redis port needs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use strata::config::Config;
use strata::store::Store;
use strata_admin::Admin;
use strata_redis::Tier;
use strata_server::server::Server;
use tokio::sync::watch;

/// How often expired entries are reclaimed without a read touching them.
const MAINTENANCE: Duration = Duration::from_secs(1);
/// The least a server waits at start for the shared tier to follow the invalidation log.
const TIER_READY: Duration = Duration::from_secs(2);

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (TOML); without one, the embedded in-memory default with
    /// `STRATA_*` environment overrides.
    #[arg(long, env = "STRATA_CONFIG")]
    config: Option<PathBuf>,
    /// Where to serve the Redis protocol [default: the config's server.resp_addr,
    /// 127.0.0.1:6380].
    #[arg(long)]
    resp_addr: Option<String>,
    /// Where to serve the admin API [default: the config's server.http_addr, 127.0.0.1:8080].
    #[arg(long)]
    http_addr: Option<String>,
}

/// Runs the server; returns when it has shut down.
pub fn run(args: &Args) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("strata: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = &args.resp_addr {
        config.server.resp_addr = addr.clone();
    }
    if let Some(addr) = &args.http_addr {
        config.server.http_addr = addr.clone();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("strata: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    // Expired keys nobody reads leave within a second (DBSIZE and INFO count entries, as
    // Redis does, so they should not linger); the sweep is a walk of each shard's slab.
    let builder = Store::builder(config.clone()).maintenance_interval(MAINTENANCE);
    let resp_addr = config.server.resp_addr.as_str();
    // With a [redis] section, every shared namespace is written through to Redis, and every
    // `strata serve` over it serves one keyspace.
    let (store, tier, server) = if config.redis.is_some() {
        let (store, tier) = Tier::start(builder).map_err(|e| e.to_string())?;
        let limit = config
            .redis
            .as_ref()
            .map_or(TIER_READY, |r| r.connect_timeout);
        if !tier.ready(limit.max(TIER_READY)).await {
            tracing::warn!(
                error = tier.link_error().unwrap_or_default(),
                "Redis is not answering: serving what this instance holds, writes are \
                 queued until it does"
            );
        }
        let tier = Arc::new(tier);
        let server = Server::bind_shared(resp_addr, store.clone(), Arc::clone(&tier)).await;
        (store, Some(tier), server)
    } else {
        let store = builder.build().map_err(|e| e.to_string())?;
        let server = Server::bind(resp_addr, store.clone()).await;
        (store, None, server)
    };
    let server = server.map_err(|e| e.to_string())?;
    let http = tokio::net::TcpListener::bind(&config.server.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.server.http_addr))?;
    // The admin API reports the Redis port's clients, commands and client buffers.
    let server_stats = server.stats_handle();
    let mut admin = Admin::new(store).with_server_stats(move || server_stats.stats());
    if let Some(tier) = tier {
        admin = admin.with_tier(tier);
    }
    let admin_limits = config.admin.clone();
    let alerts = admin.spawn_alerts();
    let resp_addr = server.local_addr().map_err(|e| e.to_string())?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        resp = %resp_addr,
        admin = %format!("http://{http_addr}"),
        "strata serve is up (redis-cli -p {})",
        resp_addr.port()
    );

    let (stop, stopped) = watch::channel(false);
    let signalled = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin_router = admin.router();
    let admin_stopped = signalled(stopped.clone());
    let admin_task = tokio::spawn(async move {
        strata_admin::serve(http, admin_router, &admin_limits, admin_stopped).await;
    });
    let resp_task = tokio::spawn(server.run(signalled(stopped)));
    shutdown_signal().await;
    tracing::info!("signal received: shutting down");
    let _ = stop.send(true);
    let (resp, http) = tokio::join!(resp_task, admin_task);
    alerts.abort();
    resp.map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    http.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
