//! The Redis protocol (RESP2 and RESP3): requests in, replies out.
//!
//! **Requests** ([`decode`]): a [`Decoder`] per connection turns the bytes a client
//! sends into commands, each a `Vec<Bytes>` of arguments split off the read buffer
//! without copying. It accepts both forms Redis accepts — RESP multibulk arrays of
//! bulk strings (what client libraries send) and inline lines split like Redis's
//! `sdssplitargs` (what people type into `telnet`), chosen by the first byte — with
//! Redis 7's semantics and error wording. It is resumable: a command may arrive in
//! any number of reads, and the decoder keeps the arguments parsed so far and how
//! far it searched for a line end, so no byte is examined twice and a big command
//! in many small reads costs linear time. Untrusted lengths are checked against
//! [`Limits`] (bulk size, array length, line length) before anything is read or
//! allocated for them. On a [`ProtocolError`] the server replies `-ERR <error>` and
//! closes the connection, as Redis does.
//!
//! **Replies** ([`frame`]): a [`Frame`] is encoded for the connection's
//! [`Protocol`]. RESP3 has a type for each variant; for RESP2 the RESP3-only types
//! are downgraded exactly as Redis downgrades them (null → `$-1`/`*-1`, map → flat
//! array, set → array, double → bulk string, boolean → integer, verbatim → bulk).
//! The `write_*` functions write the common replies straight into the output
//! buffer on the hot path, with no `Frame` built. Error and simple-string text has
//! `\r`/`\n` replaced by spaces, so no reply can break the stream's framing.

pub mod decode;
pub mod frame;

pub use decode::{parse_integer, Decoder, Limits, ProtocolError, MAX_PREALLOC_ARGS};
pub use frame::{
    format_double, write_array_header, write_bulk, write_double, write_error, write_integer,
    write_map_header, write_null, write_null_array, write_simple, Frame, Protocol,
};
