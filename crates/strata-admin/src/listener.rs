//! [`serve`]: the admin router on a TCP listener, within the `[admin]` limits, so that no
//! client of the admin port can take what the rest of the process needs.
//!
//! `axum::serve` has no connection limit and no timeouts, and retries a failed accept every
//! second with an error logged each time: 20,000 idle connections to the admin port once took
//! every file descriptor of a `strata serve`, shutting Redis clients out, and a request
//! sending its headers a byte a second stayed open indefinitely. This accept loop:
//!
//! - **limits connections** to `max_connections`. One more is accepted and closed at once
//!   (a warning a second at most says so), rather than left unaccepted: a connection left in
//!   the kernel's queue waits there until the client gives up, while a closed one fails fast
//!   and frees its descriptor. It gets no 503, since answering means reading its request
//!   first, which is what the limit is there to avoid paying for.
//! - **times each connection** out when it waits for a request longer than `idle_timeout`,
//!   or takes longer than `header_timeout` over a request's head (see `connection.rs`);
//!   the router bounds the body (`max_body`, `body_timeout`).
//! - **backs off** when accepting fails (out of descriptors, say): 10 ms, doubling to 1 s,
//!   with one log line a second at most ([`AcceptBackoff`](crate::accept::AcceptBackoff)).
//! - **stops gracefully**: when `shutdown` completes it closes the listening socket, lets
//!   every request in hand finish (idle connections close at once), and returns; connections
//!   still open after 5 seconds are closed.
//!
//! HTTP/1.1 only, by hyper: the API's clients (the CLI, curl, scrapers, probes) speak it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use strata::config::AdminConfig;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::accept::{is_connection_error, AcceptBackoff, LogThrottle};
use crate::connection::{self, Timeouts};

/// How long shutdown waits for open connections to finish, as the Redis port does.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, with `limits`' connection limit
/// and idle and header timeouts (its `max_body` and `body_timeout` are the router's, set by
/// [`Admin::new`](crate::Admin::new) from the same section). See the module docs.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use strata::Store;
/// use strata_admin::Admin;
///
/// let store = Store::new();
/// let admin = Admin::new(store.clone());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let shutdown = async {
///     let _ = tokio::signal::ctrl_c().await;
/// };
/// strata_admin::serve(listener, admin.router(), &store.config().admin, shutdown).await;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &AdminConfig,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = usize::try_from(limits.max_connections)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let timeouts = Timeouts {
        idle: limits.idle_timeout,
        header: limits.header_timeout,
    };
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::new();
    let failures = LogThrottle::new();
    let refusals = LogThrottle::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff.succeeded();
                stream
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let wait = backoff.failed();
                if let Some(failed) = failures.event(Instant::now()) {
                    tracing::warn!(
                        error = %e, failed, next_attempt_in = ?wait,
                        "admin API: accept failed"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Some(refused) = refusals.event(Instant::now()) {
                tracing::warn!(
                    max_connections,
                    refused,
                    "admin API: connection limit reached; closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let router = router.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            connection::serve(stream, router, timeouts, stopping).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "admin API: connections still open after {DRAIN:?}; closing them"
        );
        connections.abort_all();
    }
}
