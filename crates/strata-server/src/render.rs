//! Tables for people; `--json` prints the instance's JSON instead.

use std::fmt::Write;

use serde_json::Value;

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Bytes as people read them.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn stats(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>10} {:>10} {:>7} {:>9} {:>11} {:>11} {:>9} {:>7}",
        "namespace", "hits", "misses", "ratio", "entries", "bytes", "max bytes", "evicted", "loads"
    );
    let empty = serde_json::Map::new();
    for (name, ns) in v["namespaces"].as_object().unwrap_or(&empty) {
        let s = &ns["stats"];
        let (hits, misses) = (n(&s["hits"]), n(&s["misses"]));
        let ratio = if hits + misses == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * hits as f64 / (hits + misses) as f64)
        };
        let max = ns["limits"]["max_bytes"]
            .as_u64()
            .map_or("-".to_string(), bytes);
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>10} {:>7} {:>9} {:>11} {:>11} {:>9} {:>7}",
            name,
            hits,
            misses,
            ratio,
            n(&s["entries"]),
            bytes(n(&s["bytes"])),
            max,
            n(&s["evictions"]),
            n(&ns["loads"]["loads"]),
        );
    }
    let _ = writeln!(
        out,
        "uptime {:.0} s, load errors {}, stale served {}",
        v["uptime_seconds"].as_f64().unwrap_or(0.0),
        n(&v["loads"]["errors"]),
        n(&v["loads"]["stale_served"]),
    );
    out
}

pub fn health(v: &Value) -> String {
    let mut out = format!("{}\n", v["status"].as_str().unwrap_or("unknown"));
    for reason in v["reasons"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", reason.as_str().unwrap_or_default());
    }
    out
}

pub fn alerts(v: &Value) -> String {
    let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        return "no active alerts\n".into();
    }
    let mut out = String::new();
    for alert in alerts {
        let _ = writeln!(
            out,
            "{:<20} {}",
            alert["kind"].as_str().unwrap_or_default(),
            alert["message"].as_str().unwrap_or_default()
        );
    }
    out
}

pub fn top(v: &Value) -> String {
    let mut out = format!("{:<40} {:>10}\n", "key", "hits (est.)");
    for key in v["keys"].as_array().into_iter().flatten() {
        let name = match &key["key"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{name:<40} {:>10}", n(&key["hits"]));
    }
    out
}

pub fn warm(jobs: &[&Value]) -> String {
    let mut out = String::new();
    for job in jobs {
        let _ = write!(
            out,
            "{}: {} loaded, {} failed, {} missing",
            job["name"].as_str().unwrap_or_default(),
            n(&job["last_loaded"]),
            n(&job["last_failed"]),
            n(&job["last_missing"]),
        );
        if let Some(error) = job["last_error"].as_str() {
            let _ = write!(out, " (error: {error})");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(256 << 20), "256.0 MiB");
    }
}
