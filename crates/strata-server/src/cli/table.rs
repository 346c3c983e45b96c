//! Tables and numbers as people read them.

use std::time::Duration;

use bytesize::ByteSize;
use serde_json::Value;

/// Columns aligned on their widest cell: the first to the left, the others (figures) to the
/// right unless [`Table::left`] says otherwise; two spaces between columns.
pub struct Table {
    rows: Vec<Vec<String>>,
    left: Vec<bool>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
            left: (0..header.len()).map(|i| i == 0).collect(),
        }
    }

    /// Aligns column `column` to the left (text rather than figures).
    pub fn left(mut self, column: usize) -> Self {
        self.left[column] = true;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.left.len();
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if self.left[i] {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A JSON number as u64 (0 if absent).
pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// A JSON value as a cell: strings bare, `null` (unset) as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Bytes in binary units, as `bytesize` writes them: `512 B`, `1.5 KiB`, `256.0 MiB`.
pub fn bytes(b: u64) -> String {
    ByteSize(b).to_string()
}

/// The hit ratio as a percentage, `-` before the first lookup.
pub fn ratio(hits: u64, misses: u64) -> String {
    if hits + misses == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * hits as f64 / (hits + misses) as f64)
    }
}

/// A duration as people say it, in `humantime`'s notation, to the precision that matters at
/// its size (the rest is cut off): `250ms`, `1s 500ms`, `42s`, `5m 3s`, `2h 10m`, `3days 4h`.
pub fn duration(d: Duration) -> String {
    const MILLI: u32 = 1_000_000;
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    let kept = match secs {
        0 => Duration::new(0, nanos / MILLI * MILLI),
        1..10 => Duration::new(secs, nanos / (100 * MILLI) * (100 * MILLI)),
        10..3600 => Duration::from_secs(secs),
        3600..86400 => Duration::from_secs(secs / 60 * 60),
        _ => Duration::from_secs(secs / 3600 * 3600),
    };
    humantime::format_duration(kept).to_string()
}

/// [`duration`] of a number of seconds that an answer carries; one that is not a duration
/// (negative, not finite) reads as none.
pub fn seconds(s: f64) -> String {
    duration(Duration::try_from_secs_f64(s).unwrap_or_default())
}

/// A key as JSON carries it: a string, or (not UTF-8) an array of bytes.
pub fn key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(bytes) => {
            let raw: Vec<u8> = bytes
                .iter()
                .map(|b| b.as_u64().unwrap_or(0) as u8)
                .collect();
            raw.escape_ascii().to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(256 << 20), "256.0 MiB");
    }

    #[test]
    fn ratios_and_durations() {
        assert_eq!(ratio(0, 0), "-");
        assert_eq!(ratio(2, 1), "66.7%");
        assert_eq!(seconds(0.3), "300ms");
        assert_eq!(seconds(42.0), "42s");
        assert_eq!(seconds(303.0), "5m 3s");
        assert_eq!(seconds(7800.0), "2h 10m");
        assert_eq!(seconds(-1.0), "0s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1_549)), "1s 500ms");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3_600 + 59)),
            "3days 4h"
        );
    }

    #[test]
    fn keys_that_are_not_text_are_escaped() {
        assert_eq!(key(&serde_json::json!([0x61, 0xff])), "a\\xff");
    }

    #[test]
    fn columns_align() {
        let mut table = Table::new(&["name", "n"]).left(0);
        table.row(vec!["a".into(), "100".into()]);
        table.row(vec!["long".into(), "1".into()]);
        assert_eq!(table.render(), "name    n\na     100\nlong    1\n");
    }
}
