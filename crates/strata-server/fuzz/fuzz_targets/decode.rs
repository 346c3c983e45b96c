//! Fuzzes the request decoder: any bytes, fed in any chunking, must decode
//! without a panic to exactly what they decode to when fed all at once, and every
//! command decoded must survive a multibulk round trip.
//!
//! Input layout: byte 0 picks the limits (bit 0: tiny limits, so the limit
//! checks are reached) and how many chunk sizes follow (bits 1-3, plus one); each
//! of those bytes is a chunk size (1 to 64, cycled); the rest is the stream.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/resp/mod.rs"]
mod resp;

use resp::{Decoder, Limits, ProtocolError};

/// The commands decoded, then the error, or the bytes left pending.
type Decoded = (Vec<Vec<Bytes>>, Result<usize, ProtocolError>);

fn one_shot(limits: Limits, input: &[u8]) -> Decoded {
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

fn chunked(limits: Limits, input: &[u8], sizes: &[u8]) -> Decoded {
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
        let size = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0);
        let n = (usize::from(size) % 64 + 1).min(rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

fn multibulk(cmd: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for a in cmd {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n_sizes = usize::from((control >> 1) & 7) + 1;
    let (sizes, input) = rest.split_at(n_sizes.min(rest.len()));
    let limits = if control & 1 == 1 {
        Limits {
            max_bulk_len: 16,
            max_array_len: 4,
            max_inline_len: 24,
        }
    } else {
        Limits::default()
    };

    let whole = one_shot(limits, input);
    assert_eq!(chunked(limits, input, sizes), whole, "chunked != one-shot");
    assert_eq!(
        chunked(limits, input, &[0]),
        whole,
        "byte-at-a-time != one-shot"
    );

    for cmd in &whole.0 {
        assert!(!cmd.is_empty(), "an empty command was returned");
        let (again, pending) = one_shot(Limits::default(), &multibulk(cmd));
        assert_eq!(pending, Ok(0));
        assert_eq!(again.as_slice(), std::slice::from_ref(cmd));
    }
});
