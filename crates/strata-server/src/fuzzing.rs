//! The command layer without a socket, for the `commands` fuzz target
//! (`crates/strata-server/fuzz`): a [`Harness`] is one client of a server over a store, fed
//! bytes as reads, answering what the connection would write. It runs the same session code
//! as a connection (`Session::run_next` in `session.rs`); only the socket, the
//! flushing every 64 KiB and the lingering close are left out. Not part of the supported
//! API: it may change with the server.

use std::sync::Arc;

use bytes::BytesMut;
use strata::store::Store;

use crate::keyspace::Keyspace;
use crate::resp;
use crate::server::{ServeError, Shared};
use crate::session::{End, Session, Step};

/// One client of a server over a store, driven by hand.
pub struct Harness {
    session: Session,
    input: BytesMut,
    /// Why the connection ended, once it has.
    ended: Option<&'static str>,
    /// Writes replies out, as the connection's writes would.
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// A client of a new server over `store`, with its configuration's `[server]` limits.
    pub fn new(store: Store) -> Result<Self, ServeError> {
        let shared = Arc::new(Shared::new(store, None, 0)?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|source| ServeError::Bind {
                addr: "(no socket: the fuzz harness)".into(),
                source,
            })?;
        Ok(Self {
            session: Session::new(shared, 1),
            input: BytesMut::new(),
            ended: None,
            runtime,
        })
    }

    /// Feeds `bytes` as one read and runs every complete command in what has been read:
    /// answers the replies written (with the error a refused command gets, as the connection
    /// writes it before closing). Once the connection has ended, nothing more is read.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.ended.is_some() {
            return Vec::new();
        }
        self.input.extend_from_slice(bytes);
        let end = loop {
            let ran = match self.session.run_next(&mut self.input) {
                Ok(Step::Ran) => Ok(()),
                Ok(Step::Pull(keys)) => {
                    self.runtime.block_on(Keyspace::pull(keys));
                    self.session.run_held(&self.input)
                }
                Ok(Step::Claim(claim)) => {
                    let proto = self.session.client.proto;
                    self.runtime
                        .block_on(claim.decide(&mut self.session.out, proto));
                    Ok(())
                }
                Ok(Step::Incomplete) => break None,
                Err(end) => Err(end),
            };
            if let Err(end) = ran {
                break Some(end);
            }
            if self.session.report(&self.input).is_err() {
                break Some(End::Evicted);
            }
        };
        if let Some(end) = end {
            self.ended = Some(match end {
                End::Refused(error) => {
                    resp::write_error(&mut self.session.out.buf, &error);
                    "refused"
                }
                End::Quit => "quit",
                End::CrossProtocol => "cross-protocol request",
                End::OutputLimit(_) => "output limit",
                End::Evicted => "closed for the bound on clients' buffers",
                End::Gone | End::Idle => "gone",
            });
        }
        let mut written = Vec::new();
        let out = &mut self.session.out;
        // Writing to a Vec cannot fail.
        let _ = self.runtime.block_on(out.write_to(&mut written));
        written
    }

    /// Why the connection ended, if it has.
    pub fn ended(&self) -> Option<&'static str> {
        self.ended
    }

    /// The store the server serves.
    pub fn store(&self) -> &Store {
        self.session.shared.keyspace.store()
    }

    /// What all clients' buffers hold now, and their bound.
    pub fn client_memory(&self) -> (u64, u64) {
        let stats = self.session.shared.stats();
        (stats.client_buffer_bytes, stats.client_buffer_limit)
    }
}
