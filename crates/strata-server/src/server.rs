//! The accept loop: limits on clients, one task per connection, graceful shutdown.
//!
//! The listening socket has a backlog of 511, as Redis's `tcp-backlog` (the kernel caps it at
//! `net.core.somaxconn`): a burst of thousands of connects waits in the kernel's queue rather
//! than being dropped and retried by the clients' TCP stacks a second later. When `accept`
//! fails (descriptors exhausted, say), the loop backs off from 10 ms to 1 s, doubling, and
//! logs at most once a second; a success resets the delay.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use strata::store::Store;
//! use strata_server::server::Server;
//!
//! let server = Server::bind("127.0.0.1:6380", Store::new()).await?;
//! server
//!     .run(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata::config::{MaxClientMemory, Secret, ServerConfig};
use strata::store::{Store, StoreError};
use strata_admin::ServerStats;
use strata_redis::Tier;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::allocator;
use crate::client_memory::ClientMemory;
use crate::connection;
use crate::keyspace::Keyspace;
use crate::session::ClientState;
use strata_admin::accept::{is_connection_error, AcceptBackoff, LogThrottle};

/// How long shutdown waits for connections to finish what they are doing.
const DRAIN: Duration = Duration::from_secs(5);
/// The listen backlog, as Redis's default `tcp-backlog`.
const BACKLOG: u32 = 511;

/// The limits of `[server]`, in the units the connection uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_clients: u64,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_bulk_len: usize,
    pub(crate) max_array_len: usize,
    pub(crate) max_inline_len: usize,
    /// The most unparsed bytes of one command: twice the longest bulk string.
    pub(crate) max_query_len: usize,
    pub(crate) output_buffer: usize,
    /// The most one client may legitimately hold: a whole command or a whole reply. A
    /// `max_client_memory` given as a share of the budget is never below it.
    pub(crate) client_memory_floor: u64,
}

impl Limits {
    fn new(config: &ServerConfig) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            max_clients: config.max_clients,
            idle_timeout: config.idle_timeout,
            max_bulk_len: size(config.max_bulk_len),
            max_array_len: size(config.max_array_len),
            max_inline_len: size(config.max_inline_len),
            max_query_len: size(config.max_bulk_len)
                .saturating_mul(2)
                .max(size(config.max_inline_len)),
            output_buffer: size(config.output_buffer),
            client_memory_floor: config
                .max_bulk_len
                .saturating_mul(2)
                .max(config.max_inline_len)
                .max(config.output_buffer),
        }
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) keyspace: Keyspace,
    pub(crate) limits: Limits,
    pub(crate) password: Option<Secret>,
    pub(crate) started: Instant,
    pub(crate) port: u16,
    /// The bound on all clients' buffers together, and what they hold.
    pub(crate) client_memory: Arc<ClientMemory>,
    /// `max_client_memory` as last set: the bound follows the budget when it is a share.
    client_memory_setting: Mutex<MaxClientMemory>,
    /// For the warning about HTTP requests (cross-protocol attacks).
    pub(crate) cross_protocol_log: LogThrottle,
    /// For the warning about replies past `output_buffer`.
    pub(crate) output_limit_log: LogThrottle,
    /// For the warning about connections refused at `max_clients`.
    max_clients_log: LogThrottle,
    /// For the warning about `accept` failing.
    accept_log: LogThrottle,
    clients: AtomicU64,
    connections: AtomicU64,
    rejected: AtomicU64,
    commands: AtomicU64,
}

impl Shared {
    /// What the connections of a server over `store` (and its shared `tier`, if any),
    /// listening on `port`, share: the keyspace, the `[server]` limits, the bound on clients'
    /// buffers, the counters.
    pub(crate) fn new(
        store: Store,
        tier: Option<Arc<Tier>>,
        port: u16,
    ) -> Result<Self, ServeError> {
        let config = store.config().server.clone();
        let limits = Limits::new(&config);
        let setting = config.max_client_memory;
        let bound = setting.bytes(store.max_bytes(), limits.client_memory_floor);
        Ok(Shared {
            keyspace: Keyspace::new(store, tier)?,
            limits,
            password: config.password.clone(),
            started: Instant::now(),
            port,
            client_memory: Arc::new(ClientMemory::new(bound)),
            client_memory_setting: Mutex::new(setting),
            cross_protocol_log: LogThrottle::new(),
            output_limit_log: LogThrottle::new(),
            max_clients_log: LogThrottle::new(),
            accept_log: LogThrottle::new(),
            clients: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            commands: AtomicU64::new(0),
        })
    }

    pub(crate) fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }
    pub(crate) fn connections_received(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    pub(crate) fn commands_processed(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }
    /// `max_client_memory` as last set.
    pub(crate) fn client_memory_setting(&self) -> MaxClientMemory {
        *self.client_memory_setting.lock()
    }

    /// Sets `max_client_memory` (`CONFIG SET maxmemory-clients`) and applies it.
    pub(crate) fn set_client_memory_setting(&self, setting: MaxClientMemory) {
        *self.client_memory_setting.lock() = setting;
        self.apply_client_memory_setting();
    }

    /// Recomputes the bound on all clients' buffers from the setting and the store's budget
    /// now (after `CONFIG SET maxmemory`, say), closing clients if the sum is past it.
    pub(crate) fn apply_client_memory_setting(&self) {
        let setting = *self.client_memory_setting.lock();
        let bound = setting.bytes(
            self.keyspace.store().max_bytes(),
            self.limits.client_memory_floor,
        );
        self.client_memory.set_bound(bound);
    }

    /// The figures the admin API shows about this server.
    pub(crate) fn stats(&self) -> ServerStats {
        ServerStats {
            connected_clients: self.clients(),
            connections_received: self.connections_received(),
            rejected_connections: self.rejected(),
            commands_processed: self.commands_processed(),
            client_buffer_bytes: self.client_memory.total(),
            client_buffer_limit: self.client_memory.bound(),
            evicted_clients: self.client_memory.evicted(),
        }
    }

    /// Adds a connection's commands to the total (once per batch, not per command, to keep
    /// connections off one shared cache line).
    pub(crate) fn count_commands(&self, client: &mut ClientState) {
        if client.commands > 0 {
            self.commands.fetch_add(client.commands, Ordering::Relaxed);
            client.commands = 0;
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The store's namespaces could not be opened for byte values.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bound RESP server over a store.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// A handle on a [`Server`]'s figures that outlives the move into [`Server::run`]: hand
/// [`stats`](Self::stats) to the admin API (`Admin::with_server_stats`).
///
/// ```no_run
/// # async fn run(store: strata::store::Store) -> Result<(), Box<dyn std::error::Error>> {
/// use strata_admin::Admin;
/// use strata_server::server::Server;
///
/// let server = Server::bind("127.0.0.1:6380", store.clone()).await?;
/// let stats = server.stats_handle();
/// let admin = Admin::new(store).with_server_stats(move || stats.stats());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The server's figures now: clients, connections, commands, client buffers.
    pub fn stats(&self) -> ServerStats {
        self.0.stats()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.stats()).finish()
    }
}

impl Server {
    /// Binds `addr` (with a listen backlog of 511) and prepares to serve `store` with its
    /// configuration's `[server]` limits.
    pub async fn bind(
        addr: impl ToSocketAddrs + std::fmt::Display,
        store: Store,
    ) -> Result<Self, ServeError> {
        Self::bind_on(addr, store, None).await
    }

    /// [`bind`](Self::bind) for a store started on a shared tier ([`Tier::start`]): its
    /// shared namespaces are written through to Redis, so every server over that Redis
    /// serves one keyspace.
    pub async fn bind_shared(
        addr: impl ToSocketAddrs + std::fmt::Display,
        store: Store,
        tier: Arc<Tier>,
    ) -> Result<Self, ServeError> {
        Self::bind_on(addr, store, Some(tier)).await
    }

    async fn bind_on(
        addr: impl ToSocketAddrs + std::fmt::Display,
        store: Store,
        tier: Option<Arc<Tier>>,
    ) -> Result<Self, ServeError> {
        let listener = listen(&addr).await.map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let port = listener.local_addr().map_or(0, |a| a.port());
        Ok(Self {
            listener,
            shared: Arc::new(Shared::new(store, tier, port)?),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's figures now: clients, connections, commands, client buffers.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// A handle on the server's figures, to read them while it runs.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }

    /// Serves clients until `shutdown` completes; then stops accepting, lets each
    /// connection finish the commands it has read and write their replies (for up to 5
    /// seconds), and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut next_id = 0u64;
        let mut backoff = AcceptBackoff::new();
        let housekeeping = tokio::spawn(allocator::return_freed_memory_periodically());
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
                // Reap finished connections so the set does not grow.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            let (mut stream, peer) = match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                // A connection reset before it was accepted: only that one is lost.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    let wait = backoff.failed();
                    // Out of file descriptors, say: back off rather than spin, and say so
                    // once a second rather than at every try.
                    if let Some(since_last) = self.shared.accept_log.event_now() {
                        tracing::warn!(
                            error = %e,
                            retry_in = ?wait,
                            events_since_last_warning = since_last,
                            "accept failed"
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut shutdown => break,
                    }
                    continue;
                }
            };
            let shared = Arc::clone(&self.shared);
            shared.connections.fetch_add(1, Ordering::Relaxed);
            if shared.clients.load(Ordering::Relaxed) >= shared.limits.max_clients {
                shared.rejected.fetch_add(1, Ordering::Relaxed);
                if let Some(since_last) = shared.max_clients_log.event_now() {
                    tracing::warn!(
                        %peer,
                        max_clients = shared.limits.max_clients,
                        events_since_last_warning = since_last,
                        "max_clients reached: connection refused"
                    );
                }
                tasks.spawn(async move {
                    let _ = stream
                        .write_all(b"-ERR max number of clients reached\r\n")
                        .await;
                });
                continue;
            }
            next_id += 1;
            let id = next_id;
            shared.clients.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(client = id, %peer, "connected");
            let stopped = stopped.clone();
            tasks.spawn(async move {
                connection::serve(Arc::clone(&shared), stream, id, stopped).await;
                shared.clients.fetch_sub(1, Ordering::Relaxed);
            });
        }
        housekeeping.abort();
        tracing::info!(
            clients = self.shared.clients(),
            "shutting down: no new connections"
        );
        let _ = stop.send(true);
        let drained =
            tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("connections still open after {DRAIN:?}; closing them");
            tasks.abort_all();
        }
        Ok(())
    }
}

/// Binds a listener on the first address `addr` resolves to that can be bound, with a
/// backlog of [`BACKLOG`] (`TcpListener::bind` takes the standard library's 128).
async fn listen(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let bound = (|| {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // As `TcpListener::bind` does on Unix: a restart need not wait out TIME_WAIT.
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(BACKLOG)
        })();
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata::config::Config;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_stats_handle_reads_the_running_servers_figures() {
        let toml = "max_bytes = \"1GiB\"\n[server]\nmax_client_memory = \"20%\"\n";
        let config = Config::from_sources(Some(toml), []).expect("valid");
        let store = Store::builder(config).build().expect("store");
        let server = Server::bind("127.0.0.1:0", store).await.expect("bind");
        let addr = server.local_addr().expect("address");
        let stats = server.stats_handle();
        assert_eq!(stats.stats(), server.stats());
        assert_eq!(stats.stats().client_buffer_limit, (1 << 30) / 5);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        client.write_all(b"PING\r\nPING\r\n").await.expect("write");
        let mut reply = [0u8; 14];
        client.read_exact(&mut reply).await.expect("read");
        assert_eq!(&reply, b"+PONG\r\n+PONG\r\n");
        let now = stats.stats();
        assert_eq!(now.connected_clients, 1);
        assert_eq!(now.connections_received, 1);
        assert_eq!(now.commands_processed, 2);
        assert_eq!(now.evicted_clients, 0);
        let _ = stop.send(());
        running.await.expect("no panic").expect("clean stop");
    }
}
