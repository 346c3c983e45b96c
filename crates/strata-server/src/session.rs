//! A client's session apart from its socket: what it has authenticated as, its decoder and
//! the arguments it holds, its replies not yet written, and its entry in the bound on all
//! clients' buffers. [`Session::run_next`] decodes and runs the next complete command of a
//! read buffer; the connection (`connection.rs`) drives it from a socket, and the fuzz
//! harness ([`crate::fuzzing`]) from bytes. Over a shared tier, a command whose keys must
//! first be brought in from Redis is held ([`Step::Pull`]) until the connection has pulled
//! them, then run with [`Session::run_held`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::claim::Claim;
use crate::client_memory::{ClientAccount, Evicted};
use crate::cmd::{self, Ctx};
use crate::keyspace::Pull;
use crate::output::{Abandoned, Output};
use crate::resp::{self, Decoder, Protocol, ProtocolError};
use crate::server::Shared;

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

/// Why a connection ends.
pub(crate) enum End {
    /// The client closed, its socket failed, or the server is shutting down.
    Gone,
    /// `QUIT`: its reply and those before it are written.
    Quit,
    /// Idle for `idle_timeout`.
    Idle,
    /// A malformed frame or a command past a size limit: answer this error, then close
    /// lingering.
    Refused(String),
    /// An HTTP request: close at once.
    CrossProtocol,
    /// A reply passed `output_buffer`.
    OutputLimit(usize),
    /// Chosen to be closed to keep all clients' buffers within `max_client_memory`.
    Evicted,
}

impl From<Evicted> for End {
    fn from(_: Evicted) -> Self {
        End::Evicted
    }
}

/// What [`Session::run_next`] did.
pub(crate) enum Step {
    /// A command ran.
    Ran,
    /// The read buffer holds no complete command.
    Incomplete,
    /// A command is held until these keys are brought in from Redis
    /// ([`Keyspace::pull`](crate::keyspace::Keyspace::pull)); then
    /// [`run_held`](Session::run_held) runs it.
    Pull(Vec<Pull>),
    /// An insert-if-absent the fleet decides: [`Claim::decide`] answers it.
    Claim(Claim),
}

/// A client's state, decoder, replies and account.
pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: ClientState,
    pub(crate) decoder: Decoder,
    /// Whether the decoder has the limits for clients not yet authenticated.
    restricted: bool,
    /// The decoder's limits once authenticated.
    full: resp::Limits,
    /// Replies not yet written.
    pub(crate) out: Output,
    /// This client's entry in the bound on all clients' buffers.
    pub(crate) account: ClientAccount,
    /// A command waiting for its keys to be pulled from Redis.
    waiting: Option<Vec<Bytes>>,
    /// Whether a command since the last [`take_wrote_shared`](Self::take_wrote_shared) wrote
    /// with a shared tier: its reply waits until the write reached Redis.
    wrote_shared: bool,
}

impl Session {
    /// A new client `id` of the server `shared` describes, registered in its bound on
    /// clients' buffers.
    pub(crate) fn new(shared: Arc<Shared>, id: u64) -> Self {
        let account = shared.client_memory.register(id);
        let authenticated = shared.password.is_none();
        let limits = shared.limits;
        let full = resp::Limits {
            max_bulk_len: limits.max_bulk_len,
            max_array_len: limits.max_array_len,
            max_inline_len: limits.max_inline_len,
        };
        Session {
            client: ClientState {
                id,
                proto: Protocol::Resp2,
                authenticated,
                name: None,
                lib_name: None,
                lib_ver: None,
                closing: false,
                commands: 0,
            },
            // Until a client has authenticated it may send only small commands (Redis's
            // limits for unauthenticated clients): a stranger cannot make the server hold
            // 64 MiB arguments.
            decoder: Decoder::new(if authenticated { full } else { BEFORE_AUTH }),
            restricted: !authenticated,
            full,
            out: Output::default(),
            shared,
            account,
            waiting: None,
            wrote_shared: false,
        }
    }

    /// Decodes and runs the next complete command in `input`, writing its reply to
    /// [`out`](Self::out), or holds it until its keys are pulled from Redis; `Err` when the
    /// connection is to end (a protocol error, an HTTP request, `QUIT`, a reply past a limit,
    /// or this client closed for the bound on clients' buffers).
    pub(crate) fn run_next(&mut self, input: &mut BytesMut) -> Result<Step, End> {
        let args = match self.decoder.decode(input) {
            Ok(Some(args)) => args,
            Ok(None) => return Ok(Step::Incomplete),
            Err(e) => return Err(refused(e)),
        };
        if args
            .first()
            .is_some_and(|name| cmd::is_cross_protocol(name))
        {
            return Err(End::CrossProtocol);
        }
        if self.shared.keyspace.tier().is_some() {
            if let Some(spec) = args.first().and_then(|name| cmd::lookup(name)) {
                let keyspace = &self.shared.keyspace;
                // Before authentication, the command's own error answers.
                if let Some(claim) =
                    Claim::of(keyspace, spec, &args).filter(|_| self.client.authenticated)
                {
                    self.client.commands += 1;
                    self.decoder.recycle(args);
                    return Ok(Step::Claim(claim));
                }
                // It runs before the replies are next written (now, or once pulled).
                self.wrote_shared |= spec.kind == cmd::Kind::Write;
                let missing = keyspace.missing_shared(spec, &args);
                if !missing.is_empty() {
                    self.waiting = Some(args);
                    return Ok(Step::Pull(missing));
                }
            }
        }
        self.run(input, args).map(|()| Step::Ran)
    }

    /// Runs the command [`run_next`](Self::run_next) held, once its keys are pulled.
    pub(crate) fn run_held(&mut self, input: &BytesMut) -> Result<(), End> {
        match self.waiting.take() {
            Some(args) => self.run(input, args),
            None => Ok(()),
        }
    }

    /// Whether a command since the last call wrote with a shared tier (and clears it).
    pub(crate) fn take_wrote_shared(&mut self) -> bool {
        std::mem::take(&mut self.wrote_shared)
    }

    /// Runs the command `args` (with `input` the rest of the read buffer).
    fn run(&mut self, input: &BytesMut, args: Vec<Bytes>) -> Result<(), End> {
        let held = self.held(input);
        cmd::execute(
            &mut Ctx {
                shared: &self.shared,
                client: &mut self.client,
                out: &mut self.out,
                account: &self.account,
                held,
            },
            &args,
        );
        self.decoder.recycle(args);
        if self.restricted == self.client.authenticated {
            // AUTH or HELLO AUTH passed (or RESET logged the client out).
            self.restricted = !self.client.authenticated;
            self.decoder.set_limits(if self.restricted {
                BEFORE_AUTH
            } else {
                self.full
            });
        }
        if self.client.closing {
            return Err(End::Quit);
        }
        match self.out.abandoned() {
            Some(Abandoned::Evicted) => return Err(End::Evicted),
            Some(Abandoned::OutputLimit) => return Err(End::OutputLimit(self.out.len())),
            None => {}
        }
        if self.out.len() > self.shared.limits.output_buffer {
            // Many small elements (a long `COMMAND` reply) are not asked for one by one.
            return Err(End::OutputLimit(self.out.len()));
        }
        Ok(())
    }

    /// What this client holds besides its replies: an unfinished command in the read buffer
    /// `input` and the arguments the decoder keeps. An empty read buffer is the thread's,
    /// about to be filled by one read of at most a read chunk (or one the client reports after
    /// growing it): the excess any running client can add between two reports.
    pub(crate) fn held(&self, input: &BytesMut) -> usize {
        let input = if input.is_empty() {
            0
        } else {
            input.capacity()
        };
        input + self.decoder.memory()
    }

    /// Reports what this client holds (with `input` its read buffer) to the bound on all
    /// clients' buffers.
    pub(crate) fn report(&self, input: &BytesMut) -> Result<(), Evicted> {
        self.account.report(self.held(input) + self.out.memory())
    }
}

/// The error a protocol error is answered with.
fn refused(error: ProtocolError) -> End {
    End::Refused(format!("ERR {error}"))
}
