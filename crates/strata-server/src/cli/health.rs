//! `strata health`: `GET /health` (no token needed).
//!
//! Exit codes: 0 ok, 5 degraded or down (the reasons are printed, `--json` too), 3.

use serde_json::Value;

use super::Context;
use crate::client::Failure;
use crate::exit;

pub fn run(context: &Context) -> Result<u8, Failure> {
    let health = context.client.get("/health")?;
    context.show(&health, render);
    Ok(if health["status"] == "ok" {
        exit::OK
    } else {
        exit::UNHEALTHY
    })
}

fn render(v: &Value) -> String {
    let mut out = format!("{}\n", v["status"].as_str().unwrap_or("unknown"));
    for reason in v["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {}\n", reason.as_str().unwrap_or_default()));
    }
    out
}
