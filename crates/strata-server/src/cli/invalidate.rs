//! `strata invalidate (--key K | --prefix P | --pattern G | --tag T | --event E
//! [--param k=v]...) [--namespace NS]`: `POST /invalidate`.
//!
//! Exit codes: 0, 1 (an unknown namespace or event, a missing event parameter), 2 (not
//! exactly one target; `--namespace` with a tag or an event, which apply store-wide),
//! 3, 4 (the read-only token gets 403).

use clap::ArgGroup;
use serde_json::{json, Map, Value};

use super::table::n;
use super::{count, Context};
use crate::client::Failure;
use crate::exit;

#[derive(clap::Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["key", "prefix", "pattern", "tag", "event"])
))]
pub struct Args {
    /// One key.
    #[arg(long)]
    pub key: Option<String>,
    /// Every key starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Every key matching this glob (Redis MATCH syntax: *, ?, [abc], \ escapes).
    #[arg(long)]
    pub pattern: Option<String>,
    /// Every entry inserted with this tag (store-wide).
    #[arg(long)]
    pub tag: Option<String>,
    /// What this event's configured rules name (store-wide).
    #[arg(long)]
    pub event: Option<String>,
    /// An event parameter, name=value (repeat it for each).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = param, conflicts_with_all = ["key", "prefix", "pattern", "tag"])]
    pub params: Vec<(String, String)>,
    /// For --key, --prefix and --pattern: only this namespace (else every namespace).
    #[arg(long, conflicts_with_all = ["tag", "event"])]
    pub namespace: Option<String>,
}

fn param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}

impl Args {
    /// The request body: exactly the target given, and what goes with it.
    fn body(&self) -> Value {
        let mut body = Map::new();
        for (name, value) in [
            ("key", &self.key),
            ("prefix", &self.prefix),
            ("pattern", &self.pattern),
            ("tag", &self.tag),
            ("event", &self.event),
            ("namespace", &self.namespace),
        ] {
            if let Some(value) = value {
                body.insert(name.into(), json!(value));
            }
        }
        if self.event.is_some() {
            let params: Map<String, Value> = self
                .params
                .iter()
                .map(|(name, value)| (name.clone(), json!(value)))
                .collect();
            body.insert("params".into(), Value::Object(params));
        }
        Value::Object(body)
    }
}

pub fn run(context: &Context, args: &Args) -> Result<u8, Failure> {
    let answer = context.client.post("/invalidate", &args.body())?;
    context.show(&answer, |v| {
        let dropped = count(n(&v["dropped"]), "entry", "entries");
        if v["exact"] == false {
            // A tag's count is an upper bound; an event's sums its parts.
            format!("dropped at most {dropped}\n")
        } else {
            format!("dropped {dropped}\n")
        }
    });
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn params_are_name_equals_value() {
        assert_eq!(super::param("id=4=2").unwrap(), ("id".into(), "4=2".into()));
        assert!(super::param("id").is_err());
        assert!(super::param("=4").is_err());
    }
}
