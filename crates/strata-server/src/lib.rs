//! `strata serve`: the strata engine behind the Redis protocol, so services in any language
//! use it through the Redis client they already have.
//!
//! The data flow, one module each, as in tokio's mini-redis: [`resp`] turns bytes into
//! commands and replies into bytes; `connection` runs one client's loop (pipelining,
//! limits); `cmd` holds the commands, one module per family; [`keyspace`] routes each key to
//! its namespace by prefix; [`server`] accepts clients and shuts down gracefully.
//! `client_memory` bounds all clients' buffers together, and `allocator` has the allocator
//! give freed memory back to the system after a burst. Warnings a client can provoke are
//! kept to one a second by the admin crate's `LogThrottle`, which both listeners share.

mod allocator;
mod claim;
mod client_memory;
mod cmd;
mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyspace;
mod output;
pub mod resp;
pub mod server;
mod session;

/// The Redis version the protocol and replies follow, as `HELLO` and `INFO` report it
/// (clients use it to decide which commands they may send).
pub const REDIS_VERSION: &str = "7.2.0";
