//! `strata alerts`: `GET /alerts`, the active alerts.
//!
//! Exit codes: 0 whether or not alerts are active (a script that wants to branch on them
//! reads `--json`, or uses `strata health`, which exits 5), 3, 4.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::table::{cell, duration, Table};
use super::Context;
use crate::client::Failure;
use crate::exit;

pub fn run(context: &Context) -> Result<u8, Failure> {
    context.show(&context.client.get("/alerts")?, render);
    Ok(exit::OK)
}

fn render(v: &Value) -> String {
    let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        return "no active alerts\n".into();
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut table = Table::new(&["namespace", "alert", "for", "message"])
        .left(1)
        .left(3);
    for alert in &alerts {
        let since = alert["since_unix_ms"].as_u64().map_or("-".into(), |since| {
            duration(Duration::from_millis(now_ms.saturating_sub(since)))
        });
        table.row(vec![
            cell(&alert["namespace"]),
            cell(&alert["kind"]),
            since,
            cell(&alert["message"]),
        ]);
    }
    table.render()
}
