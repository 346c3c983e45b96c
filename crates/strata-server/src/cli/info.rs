//! `strata info`: `GET /info`, the version, the auth mode and the configuration in effect.
//!
//! Exit codes: 0, 3, 4.

use serde_json::Value;

use super::table::{bytes, cell, Table};
use super::Context;
use crate::client::Failure;
use crate::exit;

pub fn run(context: &Context) -> Result<u8, Failure> {
    context.show(&context.client.get("/info")?, render);
    Ok(exit::OK)
}

fn list(v: &Value) -> String {
    let names: Vec<String> = match v {
        Value::Array(items) => items.iter().map(cell).collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

/// The `[redis]` section in a line (its URL's password is shown as `***` by the server).
fn redis_summary(redis: &Value) -> String {
    if redis.is_null() {
        return "none (this instance is on its own)".into();
    }
    format!(
        "{}, prefix {}, {} log partitions, required {}",
        cell(&redis["url"]),
        cell(&redis["prefix"]),
        cell(&redis["partitions"]),
        cell(&redis["required"]),
    )
}

/// Whether a namespace (configured as `ns`) is on the shared tier: its own `shared`, else
/// the defaults', else yes when there is a `[redis]` section.
fn shared(config: &Value, ns: &Value) -> String {
    if config["redis"].is_null() {
        return "-".into();
    }
    let on = ns["shared"]
        .as_bool()
        .or(config["defaults"]["shared"].as_bool())
        .unwrap_or(true);
    if on { "yes" } else { "no" }.into()
}

fn render(v: &Value) -> String {
    let config = &v["config"];
    let alerts = &config["alerts"];
    let thresholds: Vec<String> = [
        "hit_ratio_below",
        "memory_above",
        "load_p99_above",
        "load_error_rate_above",
    ]
    .iter()
    .filter(|name| !alerts[**name].is_null())
    .map(|name| format!("{name} {}", cell(&alerts[*name])))
    .collect();
    let alerts_line = if thresholds.is_empty() {
        "none set".to_string()
    } else {
        format!(
            "{}, every {}",
            thresholds.join(", "),
            cell(&alerts["every"])
        )
    };
    let mut summary = Table::new(&["", ""]).left(1);
    for (name, value) in [
        ("version", cell(&v["version"])),
        ("auth", cell(&v["auth"])),
        (
            "budget",
            config["max_bytes"].as_u64().map_or("-".into(), bytes),
        ),
        ("namespaces", list(&v["namespaces"])),
        ("events", list(&config["events"])),
        ("alerts", alerts_line),
        ("redis", redis_summary(&config["redis"])),
    ] {
        summary.row(vec![name.into(), value]);
    }
    let summary = summary.render();
    // Without its empty header line.
    let summary = summary.split_once('\n').map_or("", |(_, rest)| rest);

    let mut namespaces = Table::new(&[
        "namespace",
        "ttl",
        "idle",
        "max entries",
        "max bytes",
        "max stale",
        "refresh ahead",
        "negative ttl",
        "shared",
    ]);
    for name in v["namespaces"].as_array().into_iter().flatten() {
        let name = cell(name);
        let ns = config["namespaces"]
            .get(&name)
            .unwrap_or(&config["defaults"]);
        namespaces.row(vec![
            name,
            cell(&ns["ttl"]),
            cell(&ns["time_to_idle"]),
            cell(&ns["max_entries"]),
            ns["max_bytes"].as_u64().map_or("-".into(), bytes),
            cell(&ns["max_stale"]),
            ns["refresh_ahead"]
                .as_u64()
                .map_or("-".into(), |p| format!("{p}%")),
            cell(&ns["negative_ttl"]),
            shared(config, ns),
        ]);
    }
    format!("{summary}\n{}", namespaces.render())
}
