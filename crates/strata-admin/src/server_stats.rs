//! Figures of the server the admin API runs beside (a `strata serve`, say): its clients,
//! commands and client buffers. The admin API does not know the server; the server hands it
//! a function that takes a snapshot ([`Admin::with_server_stats`](crate::Admin::with_server_stats)).

/// A snapshot of a server's figures. `Default` is all zeros, for a service that serves only
/// the library.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerStats {
    /// Clients connected now.
    pub connected_clients: u64,
    /// Connections accepted since start, refused ones included.
    pub connections_received: u64,
    /// Connections refused because `max_clients` were connected.
    pub rejected_connections: u64,
    /// Commands run since start.
    pub commands_processed: u64,
    /// Bytes held by all clients' buffers now (what they sent and not yet run, replies not
    /// yet written).
    pub client_buffer_bytes: u64,
    /// The bound on `client_buffer_bytes` (0 for none).
    pub client_buffer_limit: u64,
    /// Clients closed because the buffers of all clients passed their bound.
    pub evicted_clients: u64,
}

/// Takes a [`ServerStats`] snapshot.
pub type ServerStatsSource = dyn Fn() -> ServerStats + Send + Sync + 'static;
