//! Trace readers and writers.
//!
//! * **text**: one decimal `u64` key per line. Blank lines and lines starting
//!   with `#` are ignored; only the first whitespace-separated token is read.
//! * **oracleGeneral** (libCacheSim): a headerless sequence of 24-byte
//!   little-endian records `<u32 time, u64 id, u32 size, i64 next_access>`,
//!   where `next_access` is the logical time of the next request to the same
//!   id, or `-1` if there is none.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// Size in bytes of one oracleGeneral record.
pub const ORACLE_RECORD_SIZE: usize = 24;

/// On-disk trace formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// One decimal u64 key per line.
    Text,
    /// libCacheSim oracleGeneral binary records.
    #[value(alias = "oracleGeneral", alias = "oraclegeneral", alias = "bin")]
    Oracle,
}

impl TraceFormat {
    /// Guesses the format from the file name (after a `.xz` suffix): `.oracleGeneral` /
    /// `.bin` → oracle, else text.
    pub fn guess(path: &Path) -> anyhow::Result<Self> {
        let lower = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = lower.strip_suffix(".xz").unwrap_or(&lower);
        for ext in [".zst", ".gz", ".bz2", ".lz4"] {
            if name.ends_with(ext) {
                bail!(
                    "{}: compressed traces are not supported; decompress it first",
                    path.display()
                );
            }
        }
        if name.ends_with(".oraclegeneral") || name.ends_with(".bin") {
            Ok(Self::Oracle)
        } else {
            Ok(Self::Text)
        }
    }
}

/// One oracleGeneral record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleRecord {
    pub time: u32,
    pub id: u64,
    pub size: u32,
    pub next_access: i64,
}

impl OracleRecord {
    /// Little-endian encoding.
    pub fn to_bytes(self) -> [u8; ORACLE_RECORD_SIZE] {
        let mut b = [0u8; ORACLE_RECORD_SIZE];
        b[0..4].copy_from_slice(&self.time.to_le_bytes());
        b[4..12].copy_from_slice(&self.id.to_le_bytes());
        b[12..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_access.to_le_bytes());
        b
    }

    /// Little-endian decoding.
    pub fn from_bytes(b: &[u8; ORACLE_RECORD_SIZE]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        Self {
            time: u32_at(0),
            id: u64_at(4),
            size: u32_at(12),
            next_access: u64_at(16) as i64,
        }
    }
}

/// Streaming oracleGeneral reader.
pub struct OracleReader<R> {
    inner: R,
    records: u64,
}

impl<R: Read> OracleReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, records: 0 }
    }
}

impl<R: Read> Iterator for OracleReader<R> {
    type Item = io::Result<OracleRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = [0u8; ORACLE_RECORD_SIZE];
        let mut filled = 0;
        while filled < ORACLE_RECORD_SIZE {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
        if filled == 0 {
            return None;
        }
        if filled < ORACLE_RECORD_SIZE {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "truncated oracleGeneral record #{} ({filled} of {ORACLE_RECORD_SIZE} bytes); \
                     is this really an oracleGeneral file?",
                    self.records + 1
                ),
            )));
        }
        self.records += 1;
        Some(Ok(OracleRecord::from_bytes(&buf)))
    }
}

/// Streaming text reader yielding keys.
pub struct TextReader<R> {
    inner: R,
    line: String,
    lineno: u64,
}

impl<R: BufRead> TextReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            line: String::new(),
            lineno: 0,
        }
    }
}

impl<R: BufRead> Iterator for TextReader<R> {
    type Item = io::Result<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.inner.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("line {}: {e}", self.lineno + 1);
                    return Some(Err(io::Error::new(e.kind(), msg)));
                }
            }
            self.lineno += 1;
            let t = self.line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let tok = t.split_whitespace().next().unwrap_or(t);
            return Some(tok.parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {}: invalid key {:?} (expected a decimal u64)",
                        self.lineno,
                        truncate(tok, 40)
                    ),
                )
            }));
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Opens a trace as a stream of keys.
pub fn open_keys(
    path: &Path,
    format: TraceFormat,
) -> anyhow::Result<Box<dyn Iterator<Item = io::Result<u64>>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        bail!("{} is a directory, not a trace file", path.display());
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let reader: Box<dyn BufRead> = if is_xz(path) {
        let mut plain = Vec::new();
        lzma_rs::xz_decompress(&mut reader, &mut plain)
            .with_context(|| format!("{}: not a valid xz stream", path.display()))?;
        Box::new(io::Cursor::new(plain))
    } else {
        Box::new(reader)
    };
    Ok(match format {
        TraceFormat::Text => Box::new(TextReader::new(reader)),
        TraceFormat::Oracle => Box::new(OracleReader::new(reader).map(|r| r.map(|rec| rec.id))),
    })
}

fn is_xz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("xz"))
}

/// Reads all keys of a trace into memory.
pub fn read_keys(path: &Path, format: TraceFormat) -> anyhow::Result<Vec<u64>> {
    let mut keys = Vec::new();
    for k in open_keys(path, format)? {
        keys.push(k.with_context(|| format!("{}", path.display()))?);
    }
    Ok(keys)
}

/// For each request `i`, the logical time (`index + 1`, i.e. the `time`
/// field written by [`write_oracle`]) of the next request to the same key,
/// or `-1` if the key is never requested again.
pub fn compute_next_access(keys: &[u64]) -> Vec<i64> {
    let mut next = vec![-1i64; keys.len()];
    let mut seen: HashMap<u64, i64> = HashMap::with_capacity(keys.len().min(1 << 20));
    for (i, &k) in keys.iter().enumerate().rev() {
        let time = i as i64 + 1;
        if let Some(t) = seen.insert(k, time) {
            next[i] = t;
        }
    }
    next
}

/// Writes keys as oracleGeneral records with `time = index + 1`, the given
/// `size`, and a correctly computed `next_access`.
pub fn write_oracle<W: Write>(w: W, keys: &[u64], size: u32) -> io::Result<()> {
    if keys.len() as u64 >= u64::from(u32::MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many requests for the u32 time field of oracleGeneral",
        ));
    }
    let next = compute_next_access(keys);
    let mut w = BufWriter::with_capacity(1 << 20, w);
    for (i, (&id, &next_access)) in keys.iter().zip(&next).enumerate() {
        let rec = OracleRecord {
            time: i as u32 + 1,
            id,
            size,
            next_access,
        };
        w.write_all(&rec.to_bytes())?;
    }
    w.flush()
}

/// Writes keys one per line.
pub fn write_text<W: Write>(w: W, keys: &[u64]) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, w);
    for k in keys {
        writeln!(w, "{k}")?;
    }
    w.flush()
}

/// Writes a trace file in the given format (size field 1 for oracle).
pub fn write_file(path: &Path, keys: &[u64], format: TraceFormat) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    match format {
        TraceFormat::Text => write_text(file, keys),
        TraceFormat::Oracle => write_oracle(file, keys, 1),
    }
    .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [u64; 9] = [5, 7, 5, u64::MAX, 0, 7, 5, 42, 0];

    #[test]
    fn next_access_is_logical_time_of_next_request() {
        let next = compute_next_access(&KEYS);
        // times are 1-based: request i has time i + 1.
        assert_eq!(next, vec![3, 6, 7, -1, 9, -1, -1, -1, -1]);
        assert!(compute_next_access(&[]).is_empty());
    }

    #[test]
    fn oracle_round_trip() {
        let mut buf = Vec::new();
        write_oracle(&mut buf, &KEYS, 1).unwrap();
        assert_eq!(buf.len(), KEYS.len() * ORACLE_RECORD_SIZE);
        let recs: Vec<OracleRecord> = OracleReader::new(&buf[..]).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), KEYS.len());
        let next = compute_next_access(&KEYS);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.time, i as u32 + 1);
            assert_eq!(r.id, KEYS[i]);
            assert_eq!(r.size, 1);
            assert_eq!(r.next_access, next[i]);
            // next_access points at a record with the same id.
            if r.next_access >= 0 {
                assert_eq!(recs[r.next_access as usize - 1].id, r.id);
            }
        }
    }

    #[test]
    fn oracle_layout_is_little_endian() {
        let rec = OracleRecord {
            time: 0x0102_0304,
            id: 0x1112_1314_1516_1718,
            size: 0x2122_2324,
            next_access: -1,
        };
        let b = rec.to_bytes();
        assert_eq!(&b[0..4], &[4, 3, 2, 1]);
        assert_eq!(&b[4..12], &[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        assert_eq!(&b[12..16], &[0x24, 0x23, 0x22, 0x21]);
        assert_eq!(&b[16..24], &[0xff; 8]);
        assert_eq!(OracleRecord::from_bytes(&b), rec);
    }

    #[test]
    fn oracle_truncated_record_is_an_error() {
        let mut buf = Vec::new();
        write_oracle(&mut buf, &[1, 2], 1).unwrap();
        buf.pop();
        let res: Vec<_> = OracleReader::new(&buf[..]).collect();
        assert_eq!(res.len(), 2);
        assert!(res[0].is_ok());
        assert!(res[1].is_err());
    }

    #[test]
    fn text_round_trip() {
        let mut buf = Vec::new();
        write_text(&mut buf, &KEYS).unwrap();
        let keys: Vec<u64> = TextReader::new(&buf[..]).map(|r| r.unwrap()).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn text_skips_blank_and_comments_and_reports_bad_lines() {
        let input = "# header\n1\n\n  2  \n3 extra\r\nabc\n";
        let res: Vec<_> = TextReader::new(input.as_bytes()).collect();
        assert_eq!(res.len(), 4);
        assert_eq!(res[0].as_ref().unwrap(), &1);
        assert_eq!(res[1].as_ref().unwrap(), &2);
        assert_eq!(res[2].as_ref().unwrap(), &3);
        let err = res[3].as_ref().unwrap_err().to_string();
        assert!(err.contains("line 6"), "{err}");
    }

    #[test]
    fn file_round_trip_and_format_guess() {
        let dir = std::env::temp_dir().join(format!("strata-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, fmt) in [
            ("t.oracleGeneral", TraceFormat::Oracle),
            ("t.bin", TraceFormat::Oracle),
            ("t.txt", TraceFormat::Text),
            ("t", TraceFormat::Text),
        ] {
            let p = dir.join(name);
            assert_eq!(TraceFormat::guess(&p).unwrap(), fmt);
            write_file(&p, &KEYS, fmt).unwrap();
            assert_eq!(read_keys(&p, fmt).unwrap(), KEYS);
        }
        assert!(TraceFormat::guess(Path::new("x.oracleGeneral.zst")).is_err());
        // An xz-compressed text trace, as the shared real traces come.
        let mut text = Vec::new();
        write_text(&mut text, &KEYS).unwrap();
        let mut packed = Vec::new();
        lzma_rs::xz_compress(&mut &text[..], &mut packed).unwrap();
        let p = dir.join("t.txt.xz");
        std::fs::write(&p, &packed).unwrap();
        assert_eq!(TraceFormat::guess(&p).unwrap(), TraceFormat::Text);
        assert_eq!(read_keys(&p, TraceFormat::Text).unwrap(), KEYS);
        std::fs::write(&p, b"not xz").unwrap();
        assert!(read_keys(&p, TraceFormat::Text).is_err());
        assert!(read_keys(&dir.join("missing"), TraceFormat::Text).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
