//! `strata serve`: the strata engine behind the Redis protocol, so services in any language
//! use it through the Redis client they already have.
//!
//! The data flow, one module each, as in tokio's mini-redis: [`resp`] turns bytes into
//! commands and replies into bytes; `connection` runs one client's loop (pipelining,
//! limits); `cmd` holds the commands, one module per family; [`keyspace`] routes each key to
//! its namespace by prefix; [`server`] accepts clients and shuts down gracefully.
//! `client_memory` bounds all clients' buffers together, `allocator` has the allocator give
//! freed memory back to the system after a burst, and `throttle` keeps warnings a client can
//! provoke to one a second.

mod allocator;
mod client_memory;
mod cmd;
mod connection;
pub mod keyspace;
mod output;
pub mod resp;
pub mod server;
mod throttle;

/// The Redis version the protocol and replies follow, as `HELLO` and `INFO` report it
/// (clients use it to decide which commands they may send).
pub const REDIS_VERSION: &str = "7.2.0";
