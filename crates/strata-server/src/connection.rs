//! One client's connection: bytes in, commands out, replies back, in a loop.
//!
//! Every complete command in the read buffer is run before anything is written, and their
//! replies go out in one write: a pipelining client gets its answers batched, and a client
//! sending one command at a time waits for no one. Replies are flushed every 64 KiB, so a
//! client that sends without reading is stopped by TCP's backpressure rather than by our
//! memory; a single reply larger than `output_buffer` (`KEYS *` on a big keyspace, say)
//! closes the connection, as Redis's hard output limit does. A malformed frame gets its
//! protocol error and the connection is closed; nothing else is affected.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::cmd::{self, Ctx};
use crate::resp::{self, Decoder, Protocol};
use crate::server::Shared;

/// Replies are written out once this many bytes are pending.
const FLUSH_AT: usize = 64 << 10;
/// How much the read buffer grows by at a time.
const READ_CHUNK: usize = 16 << 10;
/// A buffer that grew past this is replaced by a small one once empty.
const KEEP_AT_MOST: usize = 256 << 10;
/// The decoder's limits before `AUTH` (when a password is configured), as Redis's.
const BEFORE_AUTH: resp::Limits = resp::Limits {
    max_bulk_len: 16 << 10,
    max_array_len: 10,
    max_inline_len: 16 << 10,
};

/// What a connection remembers between commands.
pub(crate) struct ClientState {
    pub(crate) id: u64,
    pub(crate) proto: Protocol,
    pub(crate) authenticated: bool,
    pub(crate) name: Option<Bytes>,
    pub(crate) lib_name: Option<Bytes>,
    pub(crate) lib_ver: Option<Bytes>,
    /// Set by `QUIT`: close once the replies so far are written.
    pub(crate) closing: bool,
    /// Commands run since the server's counter was last updated.
    pub(crate) commands: u64,
}

/// Serves one client until it leaves, breaks the protocol, idles out, or the server shuts
/// down. I/O errors end the connection quietly: the client went away.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut client = ClientState {
        id,
        proto: Protocol::Resp2,
        authenticated: shared.password.is_none(),
        name: None,
        lib_name: None,
        lib_ver: None,
        closing: false,
        commands: 0,
    };
    let limits = shared.limits;
    let full = resp::Limits {
        max_bulk_len: limits.max_bulk_len,
        max_array_len: limits.max_array_len,
        max_inline_len: limits.max_inline_len,
    };
    // Until a client has authenticated it may send only small commands (Redis's limits for
    // unauthenticated clients): a stranger cannot make the server hold 64 MiB arguments.
    let mut decoder = Decoder::new(if client.authenticated {
        full
    } else {
        BEFORE_AUTH
    });
    let mut restricted = !client.authenticated;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    loop {
        // Run every complete command in the buffer.
        loop {
            let args = match decoder.decode(&mut input) {
                Ok(Some(args)) => args,
                Ok(None) => break,
                Err(e) => {
                    resp::write_error(&mut out, &format!("ERR {e}"));
                    let _ = stream.write_all(&out).await;
                    tracing::debug!(client = id, error = %e, "protocol error; connection closed");
                    return shared.count_commands(&mut client);
                }
            };
            cmd::execute(
                &mut Ctx {
                    shared: &shared,
                    client: &mut client,
                    out: &mut out,
                },
                &args,
            );
            decoder.recycle(args);
            if restricted == client.authenticated {
                // AUTH or HELLO AUTH passed (or RESET logged the client out).
                restricted = !client.authenticated;
                decoder.set_limits(if restricted { BEFORE_AUTH } else { full });
            }
            if client.closing {
                let _ = stream.write_all(&out).await;
                return shared.count_commands(&mut client);
            }
            if out.len() > limits.output_buffer {
                tracing::warn!(
                    client = id,
                    bytes = out.len(),
                    limit = limits.output_buffer,
                    "a reply passed the output buffer limit; connection closed"
                );
                return shared.count_commands(&mut client);
            }
            if out.len() >= FLUSH_AT {
                if stream.write_all(&out).await.is_err() {
                    return shared.count_commands(&mut client);
                }
                out.clear();
            }
        }
        shared.count_commands(&mut client);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        // A big reply or command grew a buffer; give the memory back rather than keep it
        // for the connection's life (Redis shrinks idle buffers the same way).
        if out.capacity() > KEEP_AT_MOST {
            out = BytesMut::with_capacity(READ_CHUNK);
        }
        if input.is_empty() && input.capacity() > KEEP_AT_MOST {
            input = BytesMut::with_capacity(READ_CHUNK);
        }
        if input.len() + decoder.held_bytes() > limits.max_query_len {
            // The decoder bounds each argument; this bounds a whole command.
            let text = "ERR Protocol error: the command is longer than the query buffer limit";
            resp::write_error(&mut out, text);
            let _ = stream.write_all(&out).await;
            return;
        }
        input.reserve(READ_CHUNK);
        let read = async {
            match limits.idle_timeout {
                Some(idle) => tokio::time::timeout(idle, stream.read_buf(&mut input))
                    .await
                    .unwrap_or(Ok(0)),
                None => stream.read_buf(&mut input).await,
            }
        };
        tokio::select! {
            read = read => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = shutdown.changed() => return,
        }
    }
}
