//! Requests in: a resumable decoder for what Redis clients send.
//!
//! A client sends each command either as a RESP multibulk — an array of bulk
//! strings, `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, which is what every client library
//! sends — or as an inline command, one line split on blanks the way Redis's
//! `sdssplitargs` splits it (`GET k\r\n`, what people type into `telnet`). As in
//! Redis's `processInputBuffer`, the first byte decides: `*` starts a multibulk,
//! anything else an inline line.
//!
//! The decoder is a small state machine, resumable at any byte. A command can
//! arrive in any number of reads, so [`Decoder::decode`] consumes what it has
//! parsed from the front of the buffer — each finished argument is split off as
//! a [`Bytes`] sharing the read buffer's memory, and kept in the decoder until
//! the command is complete — and remembers how far it already searched for a
//! line terminator. No byte is looked at twice however the input is chunked,
//! so a large command arriving in many small reads costs linear time, and a
//! bulk payload is never scanned at all: the decoder only waits for its length.
//!
//! Nothing is allocated from an untrusted length beyond [`Limits`]: an array
//! header reserves at most [`MAX_PREALLOC_ARGS`] slots, a bulk header larger than
//! `max_bulk_len` is refused before its payload is read, and a line (an inline
//! command, or a `*`/`$` header) longer than `max_inline_len` is refused as soon
//! as that is certain. The decoder never panics on any input.
//!
//! Semantics and error wording follow Redis 7 (`networking.c`,
//! `processMultibulkBuffer` / `processInlineBuffer`, and `sdssplitargs`), with
//! two deliberate differences, both about being deterministic and strict:
//!
//! * Line limits are checked on the line itself, not on how much happens to be
//!   buffered, so the outcome never depends on how the input was chunked.
//! * A `*`/`$` header must end in `\r\n` and a bulk payload must be followed by
//!   `\r\n` (Redis skips those two bytes unchecked); otherwise
//!   [`ProtocolError::InvalidMultibulkLength`], [`ProtocolError::InvalidBulkLength`]
//!   or [`ProtocolError::MissingBulkTerminator`].
//!
//! Like Redis, a multibulk count of zero or less (`*0`, `*-1`) and an inline line
//! with no arguments are skipped, an inline line may end in a bare `\n`, and in
//! an inline line a NUL byte ends the line (`sdssplitargs` works on C strings).
//!
//! After an error the connection is beyond repair: the server replies
//! `-ERR <error>` and closes it. The decoder resets itself, but the buffer is
//! left wherever the error was found.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

/// At most this many argument slots are reserved up front for a multibulk,
/// whatever its header claims; the vector grows as arguments actually arrive.
pub const MAX_PREALLOC_ARGS: usize = 1024;

/// Size limits on what a client may send. Exceeding one is a protocol error.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest bulk string (one argument of a multibulk), in bytes.
    pub max_bulk_len: usize,
    /// The most elements a multibulk may announce.
    pub max_array_len: usize,
    /// The longest inline command line, and the longest `*`/`$` header line,
    /// in bytes (Redis's `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
}

impl Default for Limits {
    /// 64 MiB per bulk string, 1 048 576 elements per array, 64 KiB per line.
    fn default() -> Self {
        Limits {
            max_bulk_len: 64 * 1024 * 1024,
            max_array_len: 1_048_576,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Why a request could not be decoded. `Display` is worded as Redis words it;
/// the server sends `-ERR <display>` and closes the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ProtocolError {
    /// A `*` header that is not a number, is not ended by `\r\n`, or announces
    /// more than `max_array_len` elements.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$` header that is not a number, is negative, is not ended by `\r\n`,
    /// or announces more than `max_bulk_len` bytes.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a multibulk that is not a bulk string; holds its first byte.
    #[error("Protocol error: expected '$', got '{}'", show_byte(*.0))]
    ExpectedDollar(u8),
    /// An inline line longer than `max_inline_len`.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline line with an unclosed quote, or a closing quote followed by
    /// something other than a blank.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` header line longer than `max_inline_len`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    /// A `$` header line longer than `max_inline_len`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// A bulk payload not followed by `\r\n` (Redis does not check this).
    #[error("Protocol error: expected CRLF after bulk string")]
    MissingBulkTerminator,
}

/// The byte as Redis's `%c` would print it, escaped when not printable ASCII so
/// the text stays valid and line-safe.
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        char::from(b).to_string()
    } else {
        format!("\\x{b:02x}")
    }
}

/// Where the decoder is within the current command.
#[derive(Debug, Default)]
enum State {
    /// Between commands.
    #[default]
    Idle,
    /// Inside a multibulk: its arguments so far, and how many are still to come.
    Multibulk {
        /// Arguments still to read.
        remaining: usize,
        /// Arguments read so far, split off the buffer.
        args: Vec<Bytes>,
        /// How many of `args` (from the front) are copies of their own rather than slices of
        /// the read buffer (see [`Decoder::decode`]).
        owned: usize,
        /// The memory they hold: their lengths plus a `Bytes` handle each.
        held: usize,
        /// The length from the current argument's `$` header, once read.
        bulk_len: Option<usize>,
    },
}

/// Arguments shorter than this are copied out of the read buffer when a command spans
/// reads (see [`Decoder::decode`]); longer ones fill at least half of a 16 KiB read chunk, or
/// have a buffer of their own.
pub const COPY_BELOW: usize = 8 << 10;

/// A spare argument vector with room for more than this many is not kept while idle.
const SHORT_COMMAND: usize = 8;

/// What an argument held between reads costs beyond its bytes: its `Bytes` handle.
const ARG_OVERHEAD: usize = std::mem::size_of::<Bytes>();

/// A resumable decoder for client requests; one per connection.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// A vector handed back by [`recycle`](Self::recycle), for the next command's arguments.
    spare: Option<Vec<Bytes>>,
    state: State,
    /// How many bytes at the front of the buffer were already searched for the
    /// current line's terminator without finding it.
    scanned: usize,
}

/// A line found at the front of the buffer.
enum Line {
    /// Not complete yet.
    Partial,
    /// The terminator is at this index.
    At(usize),
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            spare: None,
            state: State::Idle,
            scanned: 0,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes one complete command off the front of `buf`, consuming its bytes,
    /// and returns its arguments (split off `buf`, no copy, except for inline
    /// arguments that had quotes or escapes). `Ok(None)` means more bytes are
    /// needed: call again after the next read, with the same buffer, unchanged
    /// apart from bytes appended at the end. Empty commands (`*0`, `*-1`, blank
    /// inline lines) are skipped. After an error the connection must be closed.
    ///
    /// When a command spans reads, the short arguments it has so far (under
    /// [`COPY_BELOW`] bytes) are copied out of the read buffer, together into one allocation,
    /// before `Ok(None)` is returned: a slice would keep the buffer's whole chunk alive, and a
    /// client dripping one-byte arguments would make each pin a chunk, while an allocation of
    /// each one would cost more than the byte. Longer arguments stay slices: they fill most
    /// of what they pin, and copying a big one would hold it twice. A command that arrives
    /// whole is never copied.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let result = self.decode_inner(buf);
        match &result {
            Err(_) => {
                self.state = State::Idle;
                self.scanned = 0;
            }
            Ok(None) => {
                if let State::Multibulk { args, owned, .. } = &mut self.state {
                    own_short(&mut args[*owned..]);
                    *owned = args.len();
                }
            }
            Ok(Some(_)) => {}
        }
        result
    }

    /// Hands back a command's argument vector once it has run: emptied, it holds the next
    /// command's arguments, which spares an allocation per command. Vectors larger than a
    /// preallocation are dropped instead.
    pub fn recycle(&mut self, mut args: Vec<Bytes>) {
        if args.capacity() <= MAX_PREALLOC_ARGS {
            args.clear();
            self.spare = Some(args);
        }
    }

    /// Drops the spare argument vector if it has room for more than a short command's
    /// arguments: for a client going idle, which should hold as little as it can.
    pub fn shed_spare(&mut self) {
        if self
            .spare
            .as_ref()
            .is_some_and(|v| v.capacity() > SHORT_COMMAND)
        {
            self.spare = None;
        }
    }

    /// Enforces `limits` from the next command on (for example, larger ones once a client
    /// has authenticated).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Bytes of the command being decoded that were already taken out of the
    /// buffer (its finished arguments). Together with the buffer's length this
    /// is the whole of the pending command, for a per-command size limit.
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Idle => 0,
            State::Multibulk { held, .. } => *held,
        }
    }

    /// The memory the decoder holds now, in bytes: the arguments it keeps between reads and
    /// their handles, the free slots of their vector, and the spare vector kept for the next
    /// command (each slot a `Bytes` handle). What a server counts as this client's, beside its
    /// buffers, for a bound on all clients' memory.
    pub fn memory(&self) -> usize {
        let slots = |args: &Vec<Bytes>| (args.capacity() - args.len()) * ARG_OVERHEAD;
        let spare = self.spare.as_ref().map_or(0, slots);
        match &self.state {
            State::Idle => spare,
            State::Multibulk { args, held, .. } => spare + held + slots(args),
        }
    }

    /// How many more bytes the argument being read needs to be complete (its payload and
    /// its `\r\n`) beyond the `buffered` bytes after it, when its `$` header has been read;
    /// `None` otherwise. A server reading a large argument can make room for exactly that
    /// much, rather than grow its buffer by doubling (the length was checked against
    /// `max_bulk_len` when the header was read).
    pub fn bulk_remaining(&self, buffered: usize) -> Option<usize> {
        match &self.state {
            State::Multibulk {
                bulk_len: Some(len),
                ..
            } => Some((len + 2).saturating_sub(buffered)),
            _ => None,
        }
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match &mut self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        let Line::At(cr) = self.find_cr(buf, ProtocolError::TooBigMbulkCount)?
                        else {
                            return Ok(None);
                        };
                        let n =
                            parse_header(buf, cr).ok_or(ProtocolError::InvalidMultibulkLength)?;
                        if n > 0 && n.unsigned_abs() > self.limits.max_array_len as u64 {
                            return Err(ProtocolError::InvalidMultibulkLength);
                        }
                        buf.advance(cr + 2);
                        self.scanned = 0;
                        if n <= 0 {
                            continue;
                        }
                        let n = usize::try_from(n)
                            .map_err(|_| ProtocolError::InvalidMultibulkLength)?;
                        self.state = State::Multibulk {
                            remaining: n,
                            args: match self.spare.take() {
                                Some(spare) => spare,
                                None => Vec::with_capacity(n.min(MAX_PREALLOC_ARGS)),
                            },
                            owned: 0,
                            held: 0,
                            bulk_len: None,
                        };
                    } else if let Some(args) = self.inline(buf)? {
                        if !args.is_empty() {
                            return Ok(Some(args));
                        }
                    } else {
                        return Ok(None);
                    }
                }
                State::Multibulk {
                    remaining,
                    args,
                    held,
                    bulk_len,
                    ..
                } => {
                    let len = match *bulk_len {
                        Some(len) => len,
                        None => {
                            let line = find_line(
                                buf,
                                &mut self.scanned,
                                b'\r',
                                self.limits.max_inline_len,
                                ProtocolError::TooBigBulkCount,
                            )?;
                            let Line::At(cr) = line else {
                                return Ok(None);
                            };
                            if buf[0] != b'$' {
                                return Err(ProtocolError::ExpectedDollar(buf[0]));
                            }
                            let n =
                                parse_header(buf, cr).ok_or(ProtocolError::InvalidBulkLength)?;
                            let len =
                                usize::try_from(n).map_err(|_| ProtocolError::InvalidBulkLength)?;
                            if len > self.limits.max_bulk_len {
                                return Err(ProtocolError::InvalidBulkLength);
                            }
                            buf.advance(cr + 2);
                            self.scanned = 0;
                            *bulk_len = Some(len);
                            len
                        }
                    };
                    if buf.len() < len.saturating_add(2) {
                        return Ok(None);
                    }
                    if buf.get(len..len + 2) != Some(b"\r\n".as_slice()) {
                        return Err(ProtocolError::MissingBulkTerminator);
                    }
                    let arg = buf.split_to(len).freeze();
                    buf.advance(2);
                    *bulk_len = None;
                    *held += len + ARG_OVERHEAD;
                    args.push(arg);
                    *remaining -= 1;
                    if *remaining == 0 {
                        let args = std::mem::take(args);
                        self.state = State::Idle;
                        return Ok(Some(args));
                    }
                }
            }
        }
    }

    /// Finds the `\r` ending a `*` header line and makes sure the byte after it
    /// has arrived.
    fn find_cr(&mut self, buf: &BytesMut, too_big: ProtocolError) -> Result<Line, ProtocolError> {
        find_line(
            buf,
            &mut self.scanned,
            b'\r',
            self.limits.max_inline_len,
            too_big,
        )
    }

    /// Takes one inline line off `buf` and splits it; `None` if the line is not
    /// complete yet.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let from = self.scanned.min(buf.len());
        let Some(nl) = memchr(b'\n', &buf[from..]).map(|i| i + from) else {
            // The line's content is at least what is buffered, less a final
            // `\r` that may turn out to be part of its `\r\n`.
            let at_least = buf.len() - usize::from(buf.last() == Some(&b'\r'));
            if at_least > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            self.scanned = buf.len();
            return Ok(None);
        };
        let end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if end > self.limits.max_inline_len {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        let line = buf.split_to(nl + 1).freeze();
        self.scanned = 0;
        split_args(&line.slice(..end)).map(Some)
    }
}

/// Replaces the arguments shorter than [`COPY_BELOW`] bytes by copies sharing one new
/// allocation (or an allocation of its own when there is just one).
fn own_short(args: &mut [Bytes]) {
    let short = |arg: &Bytes| arg.len() < COPY_BELOW;
    let (count, total) = args
        .iter()
        .filter(|arg| short(arg))
        .fold((0, 0), |(n, bytes), arg| (n + 1, bytes + arg.len()));
    if count == 1 {
        if let Some(arg) = args.iter_mut().find(|arg| short(arg)) {
            *arg = Bytes::copy_from_slice(arg);
        }
        return;
    }
    let mut block = BytesMut::with_capacity(total);
    for arg in args.iter().filter(|arg| short(arg)) {
        block.extend_from_slice(arg);
    }
    let block = block.freeze();
    let mut at = 0;
    for arg in args.iter_mut().filter(|arg| short(arg)) {
        let len = arg.len();
        // An empty range is `Bytes::new()`, which holds nothing.
        *arg = block.slice(at..at + len);
        at += len;
    }
}

/// Searches `buf` from `*scanned` for `term`, the end of a line whose content
/// may be at most `max` bytes, and checks the byte after `term` has arrived.
fn find_line(
    buf: &BytesMut,
    scanned: &mut usize,
    term: u8,
    max: usize,
    too_big: ProtocolError,
) -> Result<Line, ProtocolError> {
    let from = (*scanned).min(buf.len());
    match memchr(term, &buf[from..]).map(|i| i + from) {
        None => {
            if buf.len() > max {
                return Err(too_big);
            }
            *scanned = buf.len();
            Ok(Line::Partial)
        }
        Some(at) => {
            if at > max {
                return Err(too_big);
            }
            *scanned = at;
            if at + 1 < buf.len() {
                Ok(Line::At(at))
            } else {
                Ok(Line::Partial)
            }
        }
    }
}

/// The number in a header line `buf[..cr]` (its first byte is the type), if
/// it is a valid number and the line ends in `\r\n`.
fn parse_header(buf: &[u8], cr: usize) -> Option<i64> {
    if buf.get(cr + 1) != Some(&b'\n') {
        return None;
    }
    parse_integer(buf.get(1..cr)?)
}

/// Redis's `string2ll`: an optional `-`, then digits with no leading zero
/// (except `0` itself), fitting an `i64`. No `+`, no blanks, no `-0`. Lengths in
/// the protocol and integers in commands (`INCRBY`, `SCAN ... COUNT`) are read
/// the same way.
pub fn parse_integer(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !neg => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    // Accumulate negatively so i64::MIN parses.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// C's `isspace`.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline line (without its line terminator) into arguments exactly
/// as Redis's `sdssplitargs`: blanks separate; `"…"` takes the escapes
/// `\n \r \t \b \a \\ \"` and `\xHH` (any other `\c` is `c`); `'…'` takes only
/// `\'`; quotes may start mid-argument (`a"b c"` is `ab c`), but a closing
/// quote must be followed by a blank or the end; a NUL byte ends the line.
/// Arguments without quotes are slices of `line`.
fn split_args(line: &Bytes) -> Result<Vec<Bytes>, ProtocolError> {
    // Byte `i`, with NUL past the end: the C string `sdssplitargs` walks.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(args);
        }
        let start = p;
        let mut end = p;
        // Set once the argument has quotes: it is then built, not sliced.
        let mut owned: Option<Vec<u8>> = None;
        let (mut in_dq, mut in_sq, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if in_dq {
                let v = owned.get_or_insert_with(Vec::new);
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        v.push(hi * 16 + lo);
                        p += 3;
                    } else {
                        // `\x` without two hex digits is a plain `x`.
                        p += 1;
                        v.push(b'x');
                    }
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    v.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    v.push(c);
                }
            } else if in_sq {
                let v = owned.get_or_insert_with(Vec::new);
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    v.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    v.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        end = p;
                        done = true;
                    }
                    b'"' | b'\'' => {
                        if c == b'"' {
                            in_dq = true;
                        } else {
                            in_sq = true;
                        }
                        if owned.is_none() {
                            owned = Some(line[start..p].to_vec());
                        }
                    }
                    _ => {
                        if let Some(v) = owned.as_mut() {
                            v.push(c);
                        }
                    }
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(match owned {
            Some(v) => Bytes::from(v),
            None => line.slice(start..end),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes everything in `input` at once: the commands, then the error or
    /// the number of bytes left over.
    fn all(limits: Limits, input: &[u8]) -> (Vec<Vec<Bytes>>, Result<usize, ProtocolError>) {
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::from(input);
        let mut cmds = Vec::new();
        loop {
            match d.decode(&mut buf) {
                Ok(Some(c)) => cmds.push(c),
                Ok(None) => return (cmds, Ok(buf.len() + d.held_bytes())),
                Err(e) => return (cmds, Err(e)),
            }
        }
    }

    /// Decodes `input` fed in chunks of the given sizes (cycled), calling
    /// `decode` until it wants more after each chunk.
    fn chunked(
        limits: Limits,
        input: &[u8],
        sizes: &[usize],
    ) -> (Vec<Vec<Bytes>>, Result<usize, ProtocolError>) {
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut cmds = Vec::new();
        let mut rest = input;
        let mut i = 0;
        loop {
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(c)) => cmds.push(c),
                    Ok(None) => break,
                    Err(e) => return (cmds, Err(e)),
                }
            }
            if rest.is_empty() {
                return (cmds, Ok(buf.len() + d.held_bytes()));
            }
            let n = sizes
                .get(i % sizes.len().max(1))
                .copied()
                .unwrap_or(1)
                .clamp(1, rest.len());
            i += 1;
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
    }

    fn args(v: &[&[u8]]) -> Vec<Bytes> {
        v.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    }

    fn one(input: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
        let (cmds, rest) = all(Limits::default(), input);
        rest?;
        assert_eq!(cmds.len(), 1, "{cmds:?}");
        Ok(cmds.into_iter().next().unwrap_or_default())
    }

    fn err(input: &[u8]) -> ProtocolError {
        err_with(Limits::default(), input)
    }

    fn err_with(limits: Limits, input: &[u8]) -> ProtocolError {
        match all(limits, input).1 {
            Err(e) => e,
            Ok(rest) => panic!("no error for {input:?} ({rest} bytes left)"),
        }
    }

    const SMALL: Limits = Limits {
        max_bulk_len: 10,
        max_array_len: 3,
        max_inline_len: 16,
    };

    #[test]
    fn multibulk() {
        assert_eq!(
            one(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            Ok(args(&[b"GET", b"k"]))
        );
        assert_eq!(one(b"*1\r\n$0\r\n\r\n"), Ok(args(&[b""])));
        assert_eq!(one(b"*1\r\n$4\r\na\r\nb\r\n"), Ok(args(&[b"a\r\nb"])));
    }

    #[test]
    fn pipelined_and_partial() {
        let (cmds, rest) = all(
            Limits::default(),
            b"*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\n",
        );
        assert_eq!(cmds, vec![args(&[b"PING"]), args(&[b"PING"])]);
        // `GET` is held by the decoder (3 bytes and its handle), `$1\r\n` consumed, nothing
        // left in the buffer.
        assert_eq!(rest, Ok(3 + ARG_OVERHEAD));
    }

    #[test]
    fn empty_commands_are_skipped() {
        let (cmds, rest) = all(
            Limits::default(),
            b"*0\r\n*-1\r\n*-5\r\n\r\n   \t \r\n\n*1\r\n$1\r\nx\r\n",
        );
        assert_eq!(cmds, vec![args(&[b"x"])]);
        assert_eq!(rest, Ok(0));
        assert_eq!(all(Limits::default(), b"*0\r\n").0.len(), 0);
    }

    #[test]
    fn multibulk_length_errors() {
        use ProtocolError::*;
        for bad in [
            &b"*x\r\n"[..],
            b"*\r\n",
            b"*+1\r\n",
            b"*01\r\n",
            b"*-0\r\n",
            b"*1 \r\n",
            b"*99999999999999999999\r\n",
            b"*1\rx",
        ] {
            assert_eq!(err(bad), InvalidMultibulkLength, "{bad:?}");
        }
        assert_eq!(err_with(SMALL, b"*4\r\n"), InvalidMultibulkLength);
        assert_eq!(all(SMALL, b"*3\r\n").1, Ok(0));
    }

    #[test]
    fn bulk_length_errors() {
        use ProtocolError::*;
        for bad in [
            &b"*1\r\n$x\r\n"[..],
            b"*1\r\n$-1\r\n",
            b"*1\r\n$-2\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$03\r\n",
            b"*1\r\n$3\rx",
        ] {
            assert_eq!(err(bad), InvalidBulkLength, "{bad:?}");
        }
        // Refused before the payload arrives.
        assert_eq!(err_with(SMALL, b"*1\r\n$11\r\n"), InvalidBulkLength);
        assert_eq!(all(SMALL, b"*1\r\n$10\r\n").1, Ok(0));
        assert_eq!(
            err(b"*1\r\n$999999999999\r\n"),
            InvalidBulkLength,
            "over the default 64 MiB"
        );
    }

    #[test]
    fn expected_dollar() {
        let e = err(b"*1\r\n:1\r\n");
        assert_eq!(e, ProtocolError::ExpectedDollar(b':'));
        assert_eq!(e.to_string(), "Protocol error: expected '$', got ':'");
        assert_eq!(
            err(b"*1\r\n\x01\r\n").to_string(),
            "Protocol error: expected '$', got '\\x01'"
        );
    }

    #[test]
    fn missing_bulk_terminator() {
        assert_eq!(
            err(b"*1\r\n$3\r\nabcde"),
            ProtocolError::MissingBulkTerminator
        );
        assert_eq!(
            err(b"*1\r\n$3\r\nabc\n\r"),
            ProtocolError::MissingBulkTerminator
        );
        // Waits for both bytes before judging.
        assert_eq!(all(Limits::default(), b"*1\r\n$3\r\nabc\r").1, Ok(4));
    }

    #[test]
    fn header_lines_too_big() {
        use ProtocolError::*;
        let long = [b'1'; 20];
        let mut m = b"*".to_vec();
        m.extend_from_slice(&long);
        assert_eq!(err_with(SMALL, &m), TooBigMbulkCount);
        m.extend_from_slice(b"\r\n");
        assert_eq!(err_with(SMALL, &m), TooBigMbulkCount);
        let mut b = b"*1\r\n$".to_vec();
        b.extend_from_slice(&long);
        assert_eq!(err_with(SMALL, &b), TooBigBulkCount);
        // Up to the limit it just waits.
        assert_eq!(all(SMALL, &m[..16]).1, Ok(16));
    }

    #[test]
    fn inline() {
        assert_eq!(one(b"GET k\r\n"), Ok(args(&[b"GET", b"k"])));
        assert_eq!(one(b"GET k\n"), Ok(args(&[b"GET", b"k"])));
        assert_eq!(
            one(b"  SET\t k  \x0bv\r\n"),
            Ok(args(&[b"SET", b"k", b"v"]))
        );
        assert_eq!(one(b"a\rb\r\n"), Ok(args(&[b"a", b"b"])));
        assert_eq!(
            one(b"SET \"a b\" 'c d'\r\n"),
            Ok(args(&[b"SET", b"a b", b"c d"]))
        );
        assert_eq!(
            one(b"X \"\\n\\r\\t\\b\\a\\\\\\\"\\x41\\xzz\\q\"\r\n"),
            Ok(args(&[b"X", b"\n\r\t\x08\x07\\\"Axzzq"]))
        );
        assert_eq!(one(b"X 'it\\'s \\n'\r\n"), Ok(args(&[b"X", b"it's \\n"])));
        assert_eq!(one(b"ab\"c d\"\r\n"), Ok(args(&[b"abc d"])));
        assert_eq!(one(b"\"\" ''\r\n"), Ok(args(&[b"", b""])));
        assert_eq!(one(b"a b\0c d\r\n"), Ok(args(&[b"a", b"b"])));
        // Unquoted arguments are slices of the read buffer.
        let mut buf = BytesMut::from(&b"GET k\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let got = Decoder::new(Limits::default())
            .decode(&mut buf)
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(got.first().map(|a| a.as_ptr() as usize), Some(base));
    }

    #[test]
    fn inline_quote_errors() {
        for bad in [
            &b"SET \"a\r\n"[..],
            b"SET 'a\r\n",
            b"SET \"a\"b\r\n",
            b"SET 'a'b\r\n",
            b"SET \"a\0\"\r\n",
            b"SET \"a\\\r\n",
        ] {
            assert_eq!(err(bad), ProtocolError::UnbalancedQuotes, "{bad:?}");
        }
        assert_eq!(one(b"SET \"a\"\tb\r\n"), Ok(args(&[b"SET", b"a", b"b"])));
    }

    #[test]
    fn inline_too_big() {
        let line = [b'a'; 16];
        let mut ok = line.to_vec();
        ok.extend_from_slice(b"\r\n");
        assert_eq!(all(SMALL, &ok).0, vec![args(&[&line])]);
        // Exactly the limit plus a `\r` still waits for the `\n`.
        assert_eq!(all(SMALL, &ok[..17]).1, Ok(17));
        let long = [b'a'; 17];
        assert_eq!(err_with(SMALL, &long), ProtocolError::TooBigInlineRequest);
        let mut long_nl = long.to_vec();
        long_nl.push(b'\n');
        assert_eq!(
            err_with(SMALL, &long_nl),
            ProtocolError::TooBigInlineRequest
        );
    }

    #[test]
    fn error_strings() {
        use ProtocolError::*;
        let cases = [
            (
                InvalidMultibulkLength,
                "Protocol error: invalid multibulk length",
            ),
            (InvalidBulkLength, "Protocol error: invalid bulk length"),
            (
                ExpectedDollar(b'x'),
                "Protocol error: expected '$', got 'x'",
            ),
            (
                TooBigInlineRequest,
                "Protocol error: too big inline request",
            ),
            (
                UnbalancedQuotes,
                "Protocol error: unbalanced quotes in request",
            ),
            (
                TooBigMbulkCount,
                "Protocol error: too big mbulk count string",
            ),
            (TooBigBulkCount, "Protocol error: too big bulk count string"),
            (
                MissingBulkTerminator,
                "Protocol error: expected CRLF after bulk string",
            ),
        ];
        for (e, s) in cases {
            assert_eq!(e.to_string(), s);
        }
    }

    #[test]
    fn capacity_is_capped() {
        let mut d = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"*1000000\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        match &d.state {
            State::Multibulk { args, .. } => assert!(args.capacity() <= MAX_PREALLOC_ARGS),
            State::Idle => panic!("expected a multibulk in progress"),
        }
    }

    #[test]
    fn integers_parse_as_redis_parses_them() {
        assert_eq!(parse_integer(b"42"), Some(42));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b" 1",
            b"1 ",
            b"-0",
            b"-",
            b"1.5",
            b"9223372036854775808",
        ] {
            assert_eq!(
                parse_integer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_recycled_vector_carries_the_next_command() {
        let mut d = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n"[..]);
        let first = d.decode(&mut buf).expect("valid").expect("complete");
        assert_eq!(first, args(&[b"GET", b"a"]));
        let spare = first.as_ptr();
        d.recycle(first);
        let second = d.decode(&mut buf).expect("valid").expect("complete");
        assert_eq!(second, args(&[b"PING"]));
        assert_eq!(second.as_ptr(), spare, "the same allocation");
        // Too large to keep: dropped, not stored.
        d.recycle(Vec::with_capacity(MAX_PREALLOC_ARGS + 1));
        assert!(d.spare.is_none());
    }

    #[test]
    fn held_arguments_are_counted() {
        let mut d = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$1\r\na\r\n$100\r\nxy"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(d.held_bytes(), 1 + ARG_OVERHEAD);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn short_held_arguments_share_one_copy_and_long_ones_stay_slices() {
        let mut d = Decoder::new(Limits::default());
        let long = vec![b'L'; COPY_BELOW];
        let mut input = b"*5\r\n$1\r\na\r\n$0\r\n\r\n$2\r\nbc\r\n".to_vec();
        input.extend_from_slice(format!("${}\r\n", long.len()).as_bytes());
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&input[..]);
        let base = buf.as_ptr() as usize;
        let in_buffer = |arg: &Bytes| (base..base + input.len()).contains(&(arg.as_ptr() as usize));
        assert_eq!(d.decode(&mut buf), Ok(None));
        let State::Multibulk { args, .. } = &d.state else {
            panic!("expected a multibulk in progress")
        };
        assert_eq!(args.len(), 4);
        let (a, bc) = (&args[0], &args[2]);
        assert!(!in_buffer(a) && !in_buffer(bc), "short ones copied out");
        assert_eq!(
            bc.as_ptr() as usize,
            a.as_ptr() as usize + 1,
            "into one allocation"
        );
        assert!(args[1].is_empty());
        assert!(in_buffer(&args[3]), "the long one is still a slice");
        buf.extend_from_slice(b"$1\r\nz\r\n");
        let got = d.decode(&mut buf).expect("valid").expect("complete");
        let want: Vec<&[u8]> = vec![b"a", b"", b"bc", &long, b"z"];
        assert_eq!(got, want);
    }

    #[test]
    fn memory_counts_held_arguments_their_slots_and_the_spare_vector() {
        let mut d = Decoder::new(Limits::default());
        assert_eq!(d.memory(), 0);
        let mut buf = BytesMut::from(&b"*3\r\n$1\r\na\r\n$5\r\nxy"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        // One argument held (1 byte and its handle), two more slots reserved.
        assert_eq!(d.memory(), 1 + 3 * ARG_OVERHEAD);
        assert_eq!(d.bulk_remaining(buf.len()), Some(5));
        assert_eq!(d.bulk_remaining(7), Some(0));
        buf.extend_from_slice(b"zzz\r\n$1\r\nb\r\n");
        let args = d.decode(&mut buf).expect("valid").expect("complete");
        assert_eq!(d.bulk_remaining(0), None);
        d.recycle(args);
        // Only the spare vector is left: three empty slots.
        assert_eq!(d.memory(), 3 * ARG_OVERHEAD);
    }

    #[test]
    fn big_command_in_small_reads_is_linear() {
        // 100k arguments fed 7 bytes at a time; quadratic rescanning would take minutes.
        let mut input = b"*100000\r\n".to_vec();
        for _ in 0..100_000 {
            input.extend_from_slice(b"$3\r\nabc\r\n");
        }
        let (cmds, rest) = chunked(Limits::default(), &input, &[7]);
        assert_eq!(rest, Ok(0));
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].len(), 100_000);
        // And a long inline line byte by byte.
        let mut line = vec![b'a'; 60_000];
        line.extend_from_slice(b"\r\n");
        let (cmds, _) = chunked(Limits::default(), &line, &[1]);
        assert_eq!(cmds.len(), 1);
    }

    /// A valid encoding of `cmd`: a multibulk, or an inline line quoting
    /// whatever needs it (not possible for an empty command).
    fn encode(cmd: &[Vec<u8>], inline: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if inline && !cmd.is_empty() {
            for (i, a) in cmd.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                // A line starting with `*` is a multibulk header, not an inline command
                // (as in Redis), so a first argument starting with it is quoted.
                let header = i == 0 && a.first() == Some(&b'*');
                let plain = !a.is_empty()
                    && !header
                    && a.iter()
                        .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\'');
                if plain {
                    out.extend_from_slice(a);
                } else {
                    out.push(b'"');
                    for &c in a {
                        if c.is_ascii_alphanumeric() {
                            out.push(c);
                        } else {
                            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
                        }
                    }
                    out.push(b'"');
                }
            }
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
            for a in cmd {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    fn limits_strategy() -> impl Strategy<Value = Limits> {
        prop_oneof![
            Just(Limits::default()),
            Just(SMALL),
            (0usize..40, 0usize..6, 0usize..40).prop_map(|(b, a, i)| Limits {
                max_bulk_len: b,
                max_array_len: a,
                max_inline_len: i,
            }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_chunking_does_not_matter(
            input in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..20, 1..8),
            limits in limits_strategy(),
        ) {
            let whole = all(limits, &input);
            prop_assert_eq!(&chunked(limits, &input, &sizes), &whole);
            prop_assert_eq!(&chunked(limits, &input, &[1]), &whole);
        }

        #[test]
        fn resp_like_bytes_chunking_does_not_matter(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..]),
                    Just(&b"\n"[..]), Just(&b"1"[..]), Just(&b"2"[..]), Just(&b"-1"[..]),
                    Just(&b"0"[..]), Just(&b"a"[..]), Just(&b" "[..]), Just(&b"\""[..]),
                    Just(&b"'"[..]), Just(&b"\\"[..]), Just(&b"x4"[..]),
                ],
                0..80,
            ),
            sizes in proptest::collection::vec(1usize..10, 1..8),
            limits in limits_strategy(),
        ) {
            let input = parts.concat();
            let whole = all(limits, &input);
            prop_assert_eq!(&chunked(limits, &input, &sizes), &whole);
            prop_assert_eq!(&chunked(limits, &input, &[1]), &whole);
        }

        #[test]
        fn valid_encodings_round_trip(
            cmds in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6),
                    any::<bool>(),
                ),
                0..6,
            ),
            sizes in proptest::collection::vec(1usize..30, 1..8),
        ) {
            let mut input = Vec::new();
            for (cmd, inline) in &cmds {
                input.extend_from_slice(&encode(cmd, *inline));
            }
            let want: Vec<Vec<Bytes>> = cmds
                .iter()
                .map(|(cmd, _)| cmd.iter().map(|a| Bytes::copy_from_slice(a)).collect())
                .collect();
            let whole = all(Limits::default(), &input);
            prop_assert_eq!(&whole, &(want, Ok(0)));
            prop_assert_eq!(&chunked(Limits::default(), &input, &sizes), &whole);
        }
    }
}
