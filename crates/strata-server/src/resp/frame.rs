//! Replies out: the [`Frame`] value and the functions that put it on the wire.
//!
//! A reply is built as a [`Frame`] tree (or, on the hot path, written straight
//! into the connection's output buffer with the `write_*` functions) and encoded
//! for the protocol the connection negotiated with `HELLO`. RESP3 has a type for
//! every variant; RESP2 does not, so [`Frame::encode`] downgrades the RESP3-only
//! types exactly as Redis does:
//!
//! | variant        | RESP3                 | RESP2                          |
//! |----------------|-----------------------|--------------------------------|
//! | `Null`         | `_\r\n`               | `$-1\r\n`                      |
//! | `NullArray`    | `_\r\n`               | `*-1\r\n`                      |
//! | `Map`          | `%n\r\n` k v …        | `*2n\r\n` k v … (flat array)   |
//! | `Set`          | `~n\r\n` …            | `*n\r\n` …                     |
//! | `Double`       | `,1.5\r\n`            | `$3\r\n1.5\r\n`                |
//! | `Boolean`      | `#t\r\n` / `#f\r\n`   | `:1\r\n` / `:0\r\n`            |
//! | `Verbatim`     | `=len\r\ntxt:…\r\n`   | `$len\r\n…\r\n` (text only)    |
//!
//! Simple strings and errors are line-framed, so any `\r` or `\n` in their text
//! is replaced by a space on the way out: no reply text, whatever its origin
//! (a key name echoed in an error, say), can break the framing of the stream.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default for a new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// One reply, possibly nested.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A simple string (`+OK`). `\r`/`\n` in the text are sent as spaces.
    Simple(Cow<'static, str>),
    /// An error, full text including its code: `"ERR unknown command"`,
    /// `"WRONGTYPE Operation against a key …"`. Sent as `-` + text; `\r`/`\n`
    /// are sent as spaces. An empty text is sent as `-ERR`.
    Error(Cow<'static, str>),
    /// An integer (`:42`).
    Integer(i64),
    /// A bulk string (`$3\r\nfoo`).
    Bulk(Bytes),
    /// The null bulk string (RESP2 `$-1`, RESP3 `_`).
    Null,
    /// An array.
    Array(Vec<Frame>),
    /// The null array (RESP2 `*-1`, RESP3 `_`).
    NullArray,
    /// A map (RESP3 `%`; RESP2 a flat array of key, value, key, value …).
    Map(Vec<(Frame, Frame)>),
    /// A set (RESP3 `~`; RESP2 an array).
    Set(Vec<Frame>),
    /// A double (RESP3 `,`; RESP2 a bulk string), formatted like Redis.
    Double(f64),
    /// A boolean (RESP3 `#t`/`#f`; RESP2 the integer 1/0).
    Boolean(bool),
    /// A verbatim string (RESP3 `=`; RESP2 a bulk string of `text` only).
    Verbatim {
        /// The three-byte format, `*b"txt"` or `*b"mkd"`.
        format: [u8; 3],
        /// The text itself.
        text: Bytes,
    },
}

impl Frame {
    /// `+OK`.
    pub const fn ok() -> Frame {
        Frame::Simple(Cow::Borrowed("OK"))
    }

    /// A simple string.
    pub fn simple(s: impl Into<Cow<'static, str>>) -> Frame {
        Frame::Simple(s.into())
    }

    /// An error with its full text, code included: `Frame::error("WRONGTYPE …")`.
    pub fn error(text: impl Into<Cow<'static, str>>) -> Frame {
        Frame::Error(text.into())
    }

    /// A generic error: `Frame::err("syntax error")` is `-ERR syntax error`.
    pub fn err(msg: impl AsRef<str>) -> Frame {
        Frame::Error(Cow::Owned(format!("ERR {}", msg.as_ref())))
    }

    /// A bulk string.
    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// A plain-text verbatim string (`txt` format).
    pub fn verbatim_txt(text: impl Into<Bytes>) -> Frame {
        Frame::Verbatim {
            format: *b"txt",
            text: text.into(),
        }
    }

    /// Appends the encoding of this frame for `proto` to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => write_simple(out, s),
            Frame::Error(s) => write_error(out, s),
            Frame::Integer(n) => write_integer(out, *n),
            Frame::Bulk(b) => write_bulk(out, b),
            Frame::Null => write_null(out, proto),
            Frame::NullArray => write_null_array(out, proto),
            Frame::Array(items) => {
                write_array_header(out, items.len());
                for f in items {
                    f.encode(proto, out);
                }
            }
            Frame::Map(pairs) => {
                write_map_header(out, proto, pairs.len());
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Set(items) => {
                let tag = match proto {
                    Protocol::Resp3 => b'~',
                    Protocol::Resp2 => b'*',
                };
                write_header(out, tag, items.len());
                for f in items {
                    f.encode(proto, out);
                }
            }
            Frame::Double(d) => write_double(out, proto, *d),
            Frame::Boolean(b) => match proto {
                Protocol::Resp3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                Protocol::Resp2 => write_integer(out, i64::from(*b)),
            },
            Frame::Verbatim { format, text } => match proto {
                Protocol::Resp3 => {
                    write_header(out, b'=', text.len().saturating_add(4));
                    out.extend_from_slice(format);
                    out.put_u8(b':');
                    out.extend_from_slice(text);
                    out.extend_from_slice(b"\r\n");
                }
                Protocol::Resp2 => write_bulk(out, text),
            },
        }
    }

    /// The encoding of this frame as a fresh buffer (convenient in tests).
    pub fn to_bytes(&self, proto: Protocol) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(proto, &mut out);
        out
    }
}

impl From<i64> for Frame {
    fn from(n: i64) -> Frame {
        Frame::Integer(n)
    }
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Frame {
        Frame::Bulk(b)
    }
}

/// Writes `<tag><n>\r\n`.
fn write_header(out: &mut BytesMut, tag: u8, n: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(n);
    out.reserve(s.len() + 3);
    out.put_u8(tag);
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes `s` with every `\r` and `\n` replaced by a space, then `\r\n`.
fn write_line_sanitised(out: &mut BytesMut, s: &[u8]) {
    out.reserve(s.len() + 2);
    let mut rest = s;
    while let Some(i) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(&rest[..i]);
        out.put_u8(b' ');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(b"\r\n");
}

/// Writes a bulk string: `$<len>\r\n<bytes>\r\n`.
pub fn write_bulk(out: &mut BytesMut, bytes: &[u8]) {
    write_header(out, b'$', bytes.len());
    out.reserve(bytes.len() + 2);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Writes the null bulk string: `$-1\r\n` (RESP2) or `_\r\n` (RESP3).
pub fn write_null(out: &mut BytesMut, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"$-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// Writes the null array: `*-1\r\n` (RESP2) or `_\r\n` (RESP3).
pub fn write_null_array(out: &mut BytesMut, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"*-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// Writes an integer: `:<n>\r\n`.
pub fn write_integer(out: &mut BytesMut, n: i64) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(n);
    out.reserve(s.len() + 3);
    out.put_u8(b':');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes a simple string: `+<s>\r\n`, with `\r`/`\n` in `s` sent as spaces.
pub fn write_simple(out: &mut BytesMut, s: &str) {
    out.put_u8(b'+');
    write_line_sanitised(out, s.as_bytes());
}

/// Writes an error: `-<s>\r\n`, where `s` is the full text with its code
/// (`"ERR no such key"`); `\r`/`\n` in `s` are sent as spaces, and an empty
/// `s` is sent as `-ERR\r\n`.
pub fn write_error(out: &mut BytesMut, s: &str) {
    out.put_u8(b'-');
    if s.is_empty() {
        out.extend_from_slice(b"ERR\r\n");
    } else {
        write_line_sanitised(out, s.as_bytes());
    }
}

/// Writes an array header: `*<len>\r\n`. The caller then writes `len` replies.
pub fn write_array_header(out: &mut BytesMut, len: usize) {
    write_header(out, b'*', len);
}

/// Writes a map header: `%<len>\r\n` (RESP3) or `*<2 len>\r\n` (RESP2). The
/// caller then writes `len` key/value pairs.
pub fn write_map_header(out: &mut BytesMut, proto: Protocol, len: usize) {
    match proto {
        Protocol::Resp3 => write_header(out, b'%', len),
        Protocol::Resp2 => write_header(out, b'*', len.saturating_mul(2)),
    }
}

/// Writes a double: `,<d>\r\n` (RESP3) or a bulk string (RESP2), formatted as
/// by [`format_double`].
pub fn write_double(out: &mut BytesMut, proto: Protocol, d: f64) {
    let s = format_double(d);
    match proto {
        Protocol::Resp3 => {
            out.reserve(s.len() + 3);
            out.put_u8(b',');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Protocol::Resp2 => write_bulk(out, s.as_bytes()),
    }
}

/// Formats a double as Redis 7.2+ does (`fpconv_dtoa`): the shortest digits
/// that read back as the same value, laid out like C's `%.17g` — plain notation
/// for decimal exponents -5 < e < 17, otherwise `d.ddde+XX`. Infinities are
/// `inf` / `-inf`, NaN is `nan`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "5e20".
    let sci = format!("{d:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut s = String::with_capacity(digits.len() + 8);
    if neg {
        s.push('-');
    }
    if (-4..17).contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        } else {
            let int_len = (exp + 1) as usize;
            if digits.len() <= int_len {
                s.push_str(&digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            s.push('0');
        }
        s.push_str(itoa::Buffer::new().format(e));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: Protocol) -> Vec<u8> {
        f.to_bytes(p).to_vec()
    }

    fn both(f: Frame, resp2: &[u8], resp3: &[u8]) {
        assert_eq!(enc(&f, Protocol::Resp2), resp2, "RESP2 {f:?}");
        assert_eq!(enc(&f, Protocol::Resp3), resp3, "RESP3 {f:?}");
    }

    #[test]
    fn scalars() {
        both(Frame::ok(), b"+OK\r\n", b"+OK\r\n");
        both(Frame::simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
        both(Frame::err("bad"), b"-ERR bad\r\n", b"-ERR bad\r\n");
        both(
            Frame::error("WRONGTYPE x"),
            b"-WRONGTYPE x\r\n",
            b"-WRONGTYPE x\r\n",
        );
        both(Frame::error(""), b"-ERR\r\n", b"-ERR\r\n");
        both(Frame::Integer(0), b":0\r\n", b":0\r\n");
        both(
            Frame::Integer(i64::MIN),
            b":-9223372036854775808\r\n",
            b":-9223372036854775808\r\n",
        );
        both(Frame::bulk("foo"), b"$3\r\nfoo\r\n", b"$3\r\nfoo\r\n");
        both(Frame::bulk(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
        both(
            Frame::bulk(&b"a\r\nb"[..]),
            b"$4\r\na\r\nb\r\n",
            b"$4\r\na\r\nb\r\n",
        );
        both(Frame::Null, b"$-1\r\n", b"_\r\n");
        both(Frame::NullArray, b"*-1\r\n", b"_\r\n");
        both(Frame::Boolean(true), b":1\r\n", b"#t\r\n");
        both(Frame::Boolean(false), b":0\r\n", b"#f\r\n");
    }

    #[test]
    fn sanitises_line_framed_text() {
        both(
            Frame::error("ERR a\r\nb\nc\r"),
            b"-ERR a  b c \r\n",
            b"-ERR a  b c \r\n",
        );
        both(Frame::simple("x\ny"), b"+x y\r\n", b"+x y\r\n");
    }

    #[test]
    fn aggregates() {
        both(Frame::Array(vec![]), b"*0\r\n", b"*0\r\n");
        both(
            Frame::Array(vec![Frame::Integer(1), Frame::bulk("a"), Frame::Null]),
            b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n",
            b"*3\r\n:1\r\n$1\r\na\r\n_\r\n",
        );
        both(
            Frame::Map(vec![
                (Frame::bulk("k"), Frame::Integer(1)),
                (Frame::simple("s"), Frame::Boolean(true)),
            ]),
            b"*4\r\n$1\r\nk\r\n:1\r\n+s\r\n:1\r\n",
            b"%2\r\n$1\r\nk\r\n:1\r\n+s\r\n#t\r\n",
        );
        both(
            Frame::Set(vec![Frame::bulk("a"), Frame::bulk("b")]),
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
            b"~2\r\n$1\r\na\r\n$1\r\nb\r\n",
        );
        both(
            Frame::Array(vec![Frame::Set(vec![]), Frame::NullArray]),
            b"*2\r\n*0\r\n*-1\r\n",
            b"*2\r\n~0\r\n_\r\n",
        );
    }

    #[test]
    fn doubles() {
        both(Frame::Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n");
        both(Frame::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
        both(
            Frame::Double(f64::NEG_INFINITY),
            b"$4\r\n-inf\r\n",
            b",-inf\r\n",
        );
        both(Frame::Double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
        both(Frame::Double(3.0), b"$1\r\n3\r\n", b",3\r\n");
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (123.0625, "123.0625"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "10000000000000000"),
            (1.2345e16, "12345000000000000"),
            (1e17, "1e+17"),
            (1.25e300, "1.25e+300"),
            (-1e-300, "-1e-300"),
            (123456.789, "123456.789"),
        ];
        for &(d, want) in cases {
            assert_eq!(format_double(d), want, "{d}");
        }
    }

    #[test]
    fn verbatim() {
        both(
            Frame::verbatim_txt("hi"),
            b"$2\r\nhi\r\n",
            b"=6\r\ntxt:hi\r\n",
        );
        both(
            Frame::Verbatim {
                format: *b"mkd",
                text: Bytes::from_static(b""),
            },
            b"$0\r\n\r\n",
            b"=4\r\nmkd:\r\n",
        );
    }

    #[test]
    fn fast_paths_match_frames() {
        let mut out = BytesMut::new();
        write_array_header(&mut out, 2);
        write_bulk(&mut out, b"x");
        write_null(&mut out, Protocol::Resp3);
        write_integer(&mut out, -7);
        write_simple(&mut out, "OK");
        write_error(&mut out, "ERR e");
        write_map_header(&mut out, Protocol::Resp2, 1);
        write_null_array(&mut out, Protocol::Resp2);
        write_double(&mut out, Protocol::Resp3, 2.0);
        assert_eq!(
            &out[..],
            b"*2\r\n$1\r\nx\r\n_\r\n:-7\r\n+OK\r\n-ERR e\r\n*2\r\n*-1\r\n,2\r\n"
        );
    }
}
