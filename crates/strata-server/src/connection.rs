//! One client's connection: bytes in, commands out, replies back, in a loop.
//!
//! Every complete command in the read buffer is run before anything is written, and their
//! replies go out in one write: a pipelining client gets its answers batched, and a client
//! sending one command at a time waits for no one. Replies are flushed every 64 KiB, so a
//! client that sends without reading is stopped by TCP's backpressure rather than by our
//! memory; a single reply larger than `output_buffer` (`KEYS *` on a big keyspace, say)
//! closes the connection, as Redis's hard output limit does.
//!
//! **Memory.** A connection holds buffers only while it has something in them. Reads go into
//! a buffer the worker thread lends to whichever of its clients reads next; a client keeps it
//! only while it holds an unfinished command, and gives it back once its commands have run.
//! Its reply buffer is given back when it goes quiet, so an idle client costs its socket and
//! its task, not two 16 KiB buffers. An argument of 32 KiB or more is read into a buffer made
//! for its exact length (known from its `$` header) rather than into one grown by doubling.
//! What the client holds is reported to the server's bound on all clients' buffers
//! ([`ClientMemory`](crate::client_memory::ClientMemory)) before every read and write, after
//! every command and while a large reply is built; when it is chosen to be closed, the
//! connection ends wherever it is waiting.
//!
//! **Closing.** A malformed frame or a command past a size limit gets its error, then a
//! *lingering close*: the server stops writing, reads and discards what the client is still
//! sending (for up to 5 seconds and one command's worth of bytes), and closes once it stops.
//! Closing with unread data would make the kernel send a reset, which can destroy the error
//! before the client reads it. An HTTP request (`POST`, or a `Host:` header line) is a
//! cross-protocol attack: the connection is closed at once, before anything else it sent in
//! the same read is run.

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::client_memory::Evicted;
use crate::keyspace::Keyspace;
use crate::resp;
use crate::server::Shared;
use crate::session::{End, Session, Step};

/// Replies are written out once this many bytes are pending.
const FLUSH_AT: usize = 64 << 10;
/// The size of the read buffer a worker thread lends, and of each step it grows by.
const READ_CHUNK: usize = 16 << 10;
/// An argument at least this long gets a buffer of its exact size (Redis's
/// `PROTO_MBULK_BIG_ARG`).
const BIG_ARG: usize = 32 << 10;
/// A reply buffer that grew past this is dropped once written, even for a busy client.
const KEEP_AT_MOST: usize = 256 << 10;
/// A reply buffer larger than this is dropped when its client goes quiet.
const KEEP_WHEN_IDLE: usize = 4 << 10;
/// The longest a lingering close waits for the client to stop sending.
const LINGER: Duration = Duration::from_secs(5);
/// A lingering close ends when the client sends nothing for this long.
const LINGER_QUIET: Duration = Duration::from_secs(1);

thread_local! {
    /// The read buffer this worker thread lends to the next client that reads with nothing
    /// pending (Redis 7.4's reusable query buffer): idle clients hold none, and a client
    /// sending one command at a time allocates none.
    static SPARE_READ_BUFFER: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// Borrows this thread's spare read buffer, or makes one.
fn borrow_read_buffer() -> BytesMut {
    SPARE_READ_BUFFER
        .with(Cell::take)
        .unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK))
}

/// Gives an empty read buffer borrowed with [`borrow_read_buffer`] back to this thread,
/// unless the thread has one spare already.
fn return_read_buffer(buffer: BytesMut) {
    debug_assert!(buffer.is_empty());
    SPARE_READ_BUFFER.with(|spare| {
        if let Some(kept) = spare.replace(Some(buffer)) {
            spare.set(Some(kept));
        }
    });
}

/// Serves one client until it leaves, breaks the protocol, idles out, is closed to keep
/// within the bound on client memory, or the server shuts down. I/O errors end the
/// connection quietly: the client went away.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    id: u64,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut connection = Connection {
        session: Session::new(shared, id),
        input: BytesMut::new(),
        input_lent: false,
        stream,
        shutdown,
    };
    let end = connection.run().await;
    connection.end(end).await;
}

/// One client's session, read buffer and socket.
struct Connection {
    /// What the client sent and is owed: its state, decoder, replies and account.
    session: Session,
    stream: TcpStream,
    /// Bytes read and not yet decoded: a buffer borrowed from the worker thread while
    /// commands run, kept only while it holds an unfinished one.
    input: BytesMut,
    /// Whether `input` is the thread's buffer, unchanged in size, to be given back when
    /// empty. A buffer that had to grow may have been reallocated, and is dropped instead.
    input_lent: bool,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Reads, runs and answers commands until the connection should end, and says why.
    async fn run(&mut self) -> End {
        loop {
            if let Err(end) = self.run_commands().await {
                return end;
            }
            self.session.shared.count_commands(&mut self.session.client);
            if let Err(end) = self.flush().await {
                return end;
            }
            // A big reply grew the buffer; give the memory back rather than keep it for the
            // connection's life.
            self.session.out.shrink_to(KEEP_AT_MOST);
            if self.input.len() + self.session.decoder.held_bytes()
                > self.session.shared.limits.max_query_len
            {
                // The decoder bounds each argument; this bounds a whole command.
                return End::Refused(
                    "ERR Protocol error: the command is longer than the query buffer limit".into(),
                );
            }
            if let Err(end) = self.read().await {
                return end;
            }
        }
    }

    /// Runs every complete command in the read buffer, writing replies out every
    /// [`FLUSH_AT`] bytes. Gives the read buffer back to the thread once it is empty.
    async fn run_commands(&mut self) -> Result<(), End> {
        loop {
            match self.session.run_next(&mut self.input)? {
                Step::Ran => {}
                Step::Incomplete => break,
                Step::Pull(keys) => {
                    Keyspace::pull(keys).await;
                    self.session.run_held(&self.input)?;
                }
                Step::Claim(claim) => {
                    let proto = self.session.client.proto;
                    claim.decide(&mut self.session.out, proto).await;
                }
            }
            self.report()?;
            if self.session.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
        self.give_back_input();
        Ok(())
    }

    /// Gives the read buffer back to the thread (or drops it) once it is empty.
    fn give_back_input(&mut self) {
        if self.input.is_empty() {
            let input = std::mem::take(&mut self.input);
            if std::mem::take(&mut self.input_lent) {
                return_read_buffer(input);
            }
        }
    }

    /// Reports what this client holds to the bound on all clients' buffers.
    fn report(&self) -> Result<(), Evicted> {
        self.session.report(&self.input)
    }

    /// Writes the pending replies, once the writes they acknowledge reached the shared tier.
    async fn flush(&mut self) -> Result<(), End> {
        if self.session.take_wrote_shared() {
            self.session.shared.keyspace.settled().await;
        }
        if self.session.out.is_empty() {
            return Ok(());
        }
        self.report()?;
        tokio::select! {
            written = self.session.out.write_to(&mut self.stream) => written.map_err(|_| End::Gone),
            () = self.session.account.evicted() => Err(End::Evicted),
        }
    }

    /// Reads more of what the client sends, waiting for it if need be (and giving back, while
    /// it waits, the buffers an idle client need not hold).
    async fn read(&mut self) -> Result<(), End> {
        loop {
            self.make_room()?;
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => return Err(End::Gone),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(End::Gone),
            }
            self.go_quiet()?;
            self.wait_readable().await?;
        }
    }

    /// Makes room in the read buffer for the next read: a buffer of the argument's exact
    /// size for a big argument, otherwise at least [`READ_CHUNK`] free. The room is reported
    /// before it is filled.
    fn make_room(&mut self) -> Result<(), Evicted> {
        if self.input.is_empty() && !self.input_lent {
            self.input = borrow_read_buffer();
            self.input_lent = true;
        }
        let free = self.input.capacity() - self.input.len();
        match self.session.decoder.bulk_remaining(self.input.len()) {
            // (A big argument with room enough has at least READ_CHUNK free.)
            Some(wanted) if wanted >= BIG_ARG && free < wanted => {
                self.input = exact_buffer(&self.input, wanted);
                self.input_lent = false;
            }
            _ if free < READ_CHUNK => {
                self.input.reserve(READ_CHUNK);
                self.input_lent = false;
            }
            _ => {}
        }
        if self.input.capacity() > READ_CHUNK {
            // Grown beyond one read: counted before it is filled.
            self.session.account.report(
                self.input.capacity() + self.session.decoder.memory() + self.session.out.memory(),
            )
        } else {
            self.report()
        }
    }

    /// The client has nothing more for now: give back the buffers it need not hold while
    /// it waits.
    fn go_quiet(&mut self) -> Result<(), Evicted> {
        self.give_back_input();
        self.session.out.shrink_to(KEEP_WHEN_IDLE);
        self.session.decoder.shed_spare();
        self.report()
    }

    /// Waits until the socket has something to read (or is closed), within `idle_timeout`,
    /// ending the connection at shutdown or when it is chosen to be closed.
    async fn wait_readable(&mut self) -> Result<(), End> {
        let idle = self.session.shared.limits.idle_timeout;
        let (stream, shutdown, account) = (&self.stream, &mut self.shutdown, &self.session.account);
        let readable = async {
            match idle {
                Some(idle) => tokio::time::timeout(idle, stream.readable())
                    .await
                    .map_err(|_| End::Idle)?,
                None => stream.readable().await,
            }
            .map_err(|_| End::Gone)
        };
        tokio::select! {
            ready = readable => ready,
            _ = shutdown.changed() => Err(End::Gone),
            () = account.evicted() => Err(End::Evicted),
        }
    }

    /// Ends the connection as `end` says: quietly, with an error and a lingering close, or
    /// at once.
    async fn end(&mut self, end: End) {
        self.session.shared.count_commands(&mut self.session.client);
        let id = self.session.client.id;
        match end {
            End::Gone | End::Idle | End::Evicted => {}
            End::Quit => {
                let _ = self.session.out.write_to(&mut self.stream).await;
            }
            End::Refused(error) => {
                tracing::debug!(client = id, %error, "refused; connection closed");
                resp::write_error(&mut self.session.out.buf, &error);
                if self.session.out.write_to(&mut self.stream).await.is_ok() {
                    // Boxed: its timers would otherwise make every connection's task larger.
                    Box::pin(self.linger()).await;
                }
            }
            End::CrossProtocol => {
                if let Some(since_last) = self.session.shared.cross_protocol_log.event_now() {
                    tracing::warn!(
                        client = id,
                        events_since_last_warning = since_last,
                        "Possible SECURITY ATTACK detected. It looks like somebody is sending \
                         POST or Host: commands to strata. This is likely due to an attacker \
                         attempting to use Cross Protocol Scripting to compromise your strata \
                         instance. Connection aborted."
                    );
                }
            }
            End::OutputLimit(bytes) => {
                if let Some(since_last) = self.session.shared.output_limit_log.event_now() {
                    tracing::warn!(
                        client = id,
                        bytes,
                        limit = self.session.shared.limits.output_buffer,
                        events_since_last_warning = since_last,
                        "a reply passed the output buffer limit; connection closed"
                    );
                }
            }
        }
    }

    /// A lingering close: stops writing (the client reads the end of the stream after the
    /// error), then reads and discards whatever the client is still sending, until it stops
    /// for [`LINGER_QUIET`], closes, has sent one command's worth (`max_query_len`), or
    /// [`LINGER`] passes. Closing with unread data would reset the connection, and a reset
    /// can destroy the error before the client reads it.
    async fn linger(&mut self) {
        drop(std::mem::take(&mut self.session.out));
        drop(std::mem::take(&mut self.input));
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let most = self.session.shared.limits.max_query_len;
        let (stream, shutdown) = (&mut self.stream, &mut self.shutdown);
        let drain = async {
            let mut discard = vec![0u8; READ_CHUNK];
            let mut discarded = 0usize;
            while discarded < most {
                match tokio::time::timeout(LINGER_QUIET, stream.read(&mut discard)).await {
                    Ok(Ok(n)) if n > 0 => discarded += n,
                    _ => return,
                }
            }
        };
        tokio::select! {
            () = drain => {}
            () = tokio::time::sleep(LINGER) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A buffer holding `partial`, with room for exactly `wanted` more bytes.
fn exact_buffer(partial: &[u8], wanted: usize) -> BytesMut {
    let mut exact = BytesMut::with_capacity(partial.len() + wanted);
    exact.extend_from_slice(partial);
    exact
}
