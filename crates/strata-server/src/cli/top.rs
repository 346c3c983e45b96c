//! `strata top NS [-n N]`: `GET /namespaces/{ns}/top?n=N`, the hottest keys.
//!
//! Exit codes: 0, 1 (an unknown namespace), 3, 4.

use serde_json::Value;

use super::table::{key, n, Table};
use super::Context;
use crate::client::{segment, Failure};
use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// The namespace.
    pub namespace: String,
    /// How many keys.
    #[arg(short = 'n', long = "count", default_value_t = 10)]
    pub count: usize,
}

pub fn run(context: &Context, args: &Args) -> Result<u8, Failure> {
    let path = format!(
        "/namespaces/{}/top?n={}",
        segment(&args.namespace),
        args.count
    );
    context.show(&context.client.get(&path)?, render);
    Ok(exit::OK)
}

fn render(v: &Value) -> String {
    let keys = v["keys"].as_array().cloned().unwrap_or_default();
    if keys.is_empty() {
        return format!(
            "no hot keys sampled yet in {}\n",
            v["namespace"].as_str().unwrap_or("the namespace")
        );
    }
    let mut table = Table::new(&["key", "hits (est.)", "± error"]);
    for hot in &keys {
        table.row(vec![
            key(&hot["key"]),
            n(&hot["hits"]).to_string(),
            n(&hot["error"]).to_string(),
        ]);
    }
    table.render()
}
