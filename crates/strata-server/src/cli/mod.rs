//! The subcommands that talk to a running instance, one module each, and what they share:
//! the global options, the [`Context`] they run in, and printing.

pub mod alerts;
pub mod clear;
pub mod health;
pub mod info;
pub mod invalidate;
pub mod stats;
pub mod table;
pub mod top;
pub mod warm;

use std::io::{self, Write};

use serde_json::Value;

use crate::client::Client;

/// Where the instance is and how to talk to it; global, so they may follow the subcommand.
#[derive(clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Remote {
    /// The instance's admin API.
    #[arg(
        long,
        global = true,
        env = "STRATA_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = url
    )]
    pub url: String,
    /// The admin or read-only token. Prefer the STRATA_ADMIN_TOKEN environment variable: a
    /// flag's value shows in `ps` and in shell history.
    #[arg(
        long,
        global = true,
        env = "STRATA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the instance's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

fn url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("give the scheme: http://host:port")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL names no host".into());
    }
    if text.starts_with("https://") && !cfg!(feature = "tls") {
        return Err("https needs strata built with `--features tls`".into());
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// What every subcommand runs with.
pub struct Context {
    pub client: Client,
    pub json: bool,
}

impl Context {
    pub fn new(remote: &Remote) -> Self {
        Self {
            client: Client::new(&remote.url, remote.token.clone()),
            json: remote.json,
        }
    }

    /// `value` as JSON with `--json`, else `table(value)`.
    pub fn show(&self, value: &Value, table: impl FnOnce(&Value) -> String) {
        if self.json {
            out(&format!("{value:#}\n"));
        } else {
            out(&table(value));
        }
    }
}

/// Writes to stdout; a closed pipe (`strata stats | head -1`) is not worth a panic.
pub fn out(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `count` and the noun that goes with it: "1 entry", "3 entries".
pub fn count(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert_eq!(
            super::url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            super::url("http://h/admin").unwrap(),
            "http://h/admin",
            "a nested API keeps its prefix"
        );
        assert!(super::url("127.0.0.1:8080").is_err());
        assert!(super::url("http://").is_err());
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(super::count(1, "entry", "entries"), "1 entry");
        assert_eq!(super::count(0, "entry", "entries"), "0 entries");
    }
}
