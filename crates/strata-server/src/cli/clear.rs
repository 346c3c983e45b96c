//! `strata clear [--namespace NS]`: `POST /clear` or `POST /namespaces/{ns}/clear`.
//!
//! Exit codes: 0, 1 (an unknown namespace), 3, 4 (the read-only token gets 403).

use serde_json::json;

use super::table::n;
use super::{count, Context};
use crate::client::{segment, Failure};
use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// Only this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
}

pub fn run(context: &Context, args: &Args) -> Result<u8, Failure> {
    let path = match &args.namespace {
        Some(ns) => format!("/namespaces/{}/clear", segment(ns)),
        None => "/clear".into(),
    };
    let answer = context.client.post(&path, &json!({}))?;
    context.show(&answer, |v| {
        let cleared = count(n(&v["cleared"]), "entry", "entries");
        match &args.namespace {
            Some(ns) => format!("cleared {cleared} from {ns}\n"),
            None => format!("cleared {cleared}\n"),
        }
    });
    Ok(exit::OK)
}
