//! `strata stats [--namespace NS]`: `GET /stats` as a table, a row per namespace.
//!
//! Exit codes: 0, 1 (an unknown namespace), 3, 4.

use serde_json::{json, Value};

use super::table::{bytes, n, ratio, seconds, Table};
use super::Context;
use crate::client::Failure;
use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// Only this namespace (`--json` keeps the answer's shape, with only it under
    /// `namespaces`).
    #[arg(long)]
    pub namespace: Option<String>,
}

pub fn run(context: &Context, args: &Args) -> Result<u8, Failure> {
    let mut stats = context.client.get("/stats")?;
    if let Some(name) = &args.namespace {
        let Some(one) = stats["namespaces"].get(name).cloned() else {
            let known: Vec<&str> = stats["namespaces"]
                .as_object()
                .map(|all| all.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(Failure::Answered(format!(
                "no namespace {name:?} (the instance has: {})",
                known.join(", ")
            )));
        };
        stats["namespaces"] = json!({ name: one });
    }
    context.show(&stats, |v| render(v, args.namespace.is_none()));
    Ok(exit::OK)
}

const HEADER: [&str; 11] = [
    "namespace",
    "hits",
    "misses",
    "hit ratio",
    "entries",
    "bytes",
    "max bytes",
    "evictions",
    "expirations",
    "loads",
    "load errors",
];

fn render(v: &Value, with_total: bool) -> String {
    let mut table = Table::new(&HEADER);
    let row = |name: &str, s: &Value, max_bytes: &Value, loads: &Value| {
        let (hits, misses) = (n(&s["hits"]), n(&s["misses"]));
        vec![
            name.to_string(),
            hits.to_string(),
            misses.to_string(),
            ratio(hits, misses),
            n(&s["entries"]).to_string(),
            bytes(n(&s["bytes"])),
            max_bytes.as_u64().map_or("-".into(), bytes),
            n(&s["evictions"]).to_string(),
            n(&s["expirations"]).to_string(),
            n(&loads["loads"]).to_string(),
            n(&loads["errors"]).to_string(),
        ]
    };
    for (name, ns) in v["namespaces"].as_object().into_iter().flatten() {
        table.row(row(
            name,
            &ns["stats"],
            &ns["limits"]["max_bytes"],
            &ns["loads"],
        ));
    }
    if with_total {
        table.row(row("total", &v["total"], &v["max_bytes"], &v["loads"]));
    }
    // The footer's figures are the total's, or the one namespace's.
    let loads = match v["namespaces"].as_object() {
        Some(one) if !with_total && one.len() == 1 => one.values().next().map(|ns| &ns["loads"]),
        _ => None,
    }
    .unwrap_or(&v["loads"]);
    format!(
        "{}\nuptime {}; load timeouts {}, served stale {}, refreshed ahead {}\n{}",
        table.render(),
        seconds(v["uptime_seconds"].as_f64().unwrap_or(0.0)),
        n(&loads["timeouts"]),
        n(&loads["stale_served"]),
        n(&loads["refreshes"]),
        redis_line(&v["redis"]),
    )
}

/// The shared tier's link and figures, when the instance has one (`redis` in `/stats`).
fn redis_line(redis: &Value) -> String {
    if redis.is_null() {
        return String::new();
    }
    let link = match (redis["link_up"].as_bool(), redis["log_following"].as_bool()) {
        (Some(true), Some(true)) => "up, following the log",
        (Some(true), _) => "up, not following the log yet",
        _ => "DOWN",
    };
    let lookups = n(&redis["l2_lookups"]);
    let mean = if lookups == 0 {
        "-".to_string()
    } else {
        format!(
            "{:.2} ms",
            n(&redis["l2_lookup_micros"]) as f64 / lookups as f64 / 1000.0
        )
    };
    format!(
        "redis: link {link}; L2 hits {}, misses {}, errors {}, mean lookup {mean}; \
         sent {} writes, {} invalidations; received {} (replayed {}); queue {}; gaps {}\n",
        n(&redis["l2_hits"]),
        n(&redis["l2_misses"]),
        n(&redis["l2_errors"]),
        n(&redis["writes_sent"]),
        n(&redis["invalidations_sent"]),
        n(&redis["invalidations_received"]),
        n(&redis["invalidations_replayed"]),
        n(&redis["queue_depth"]),
        n(&redis["gaps"]),
    )
}
