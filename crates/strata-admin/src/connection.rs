//! One connection of the admin listener: HTTP/1.1 by hyper, with the two waits a client can
//! stretch bounded apart, the wait for a request (`idle_timeout`) and the reading of its head
//! (`header_timeout`).
//!
//! hyper's own `header_read_timeout` cannot tell them apart: it starts as soon as the
//! connection is ready for a request (accepted, or its last response handed over), not at the
//! request's first byte, so it bounds the wait and the head together (hyperium/hyper#3828;
//! an idle timeout of hyper's own has not landed). One value cannot be both long enough for
//! a scraper that keeps its connection between scrapes and short enough for a client sending
//! its headers a byte a second. So each connection tracks its [`Phase`]: bytes arriving on an
//! idle connection start a head, the router being called ends it, and the router's answer
//! makes the connection idle again. A watchdog closes the connection when a phase outlasts
//! its timeout. A request's body is bounded by the router (`body_timeout`, see `body.rs`),
//! and its handling is not bounded at all.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

/// The most bytes of a request head hyper buffers (its `max_buf_size`; hyper's least is
/// 8 KiB). A bearer token and a few headers take a few hundred bytes; a longer head gets
/// 431. Part of the admin port's memory bound, `max_connections` × (this + `max_body`).
pub(crate) const MAX_HEAD: usize = 16 << 10;

/// The two timeouts of a connection, from `[admin]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) idle: Duration,
    pub(crate) header: Duration,
}

/// Where a connection is between two requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request: just accepted, or the last response handed to hyper to write.
    /// Bounded by the idle timeout (a client that does not read its response stays here).
    Idle,
    /// A request's first bytes arrived; hyper is reading its head. Bounded by the header
    /// timeout.
    Head,
    /// The router has the request: it reads the body (bounded by `body_timeout`) and
    /// answers. Not bounded here.
    Busy,
}

/// A connection's phase and when it began, shared by the socket, the service and the
/// watchdog.
struct Activity {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new((Phase::Idle, Instant::now())),
            changed: Notify::new(),
        }
    }

    fn enter(&self, phase: Phase) {
        *self.phase.lock() = (phase, Instant::now());
        self.changed.notify_waiters();
    }

    /// Bytes came in: on an idle connection, a request's head has begun.
    fn bytes_arrived(&self) {
        let mut current = self.phase.lock();
        if current.0 == Phase::Idle {
            *current = (Phase::Head, Instant::now());
            drop(current);
            self.changed.notify_waiters();
        }
    }

    /// The router has a request until the guard drops (its answer is ready, or the request
    /// was abandoned); then the connection is idle again.
    fn busy(self: &Arc<Self>) -> BusyGuard {
        self.enter(Phase::Busy);
        BusyGuard(Arc::clone(self))
    }

    /// Completes with the phase that outlasted its timeout.
    async fn overdue(&self, timeouts: Timeouts) -> Phase {
        loop {
            // Registered before the phase is read, so a change in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (phase, since) = *self.phase.lock();
            let limit = match phase {
                Phase::Idle => timeouts.idle,
                Phase::Head => timeouts.header,
                Phase::Busy => {
                    changed.await;
                    continue;
                }
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(since + limit) => return phase,
            }
        }
    }
}

struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.enter(Phase::Idle);
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `stream` until the client closes, a phase outlasts its timeout, or
/// `stopping` turns true; then it finishes the request in hand (if any) and closes.
pub(crate) async fn serve(
    stream: TcpStream,
    router: Router,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = activity.busy();
            let answer = router.clone().oneshot(request);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        })
    };
    let connection = http1::Builder::new()
        // The watchdog times the head (see the module docs); hyper would need a timer anyway.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let overdue = activity.overdue(timeouts);
    tokio::pin!(overdue);
    let mut stopped = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
                return;
            }
            phase = &mut overdue => {
                // Dropping the connection closes the socket.
                tracing::debug!(?phase, "admin connection closed: it outlasted its timeout");
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !stopped => {
                // An idle connection closes at once; one with a request finishes it first.
                stopped = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
