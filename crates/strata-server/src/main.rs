//! `strata`: the command line of a running strata instance, through its admin API.
//!
//! Exit codes, for scripts:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the instance answered with an error (its `detail` is printed) |
//! | 2 | bad usage |
//! | 3 | the instance cannot be reached |
//! | 4 | the token was refused (set `STRATA_ADMIN_TOKEN`) |
//! | 5 | `strata health`: the instance is degraded or down |

mod client;
mod render;

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand};
use serde_json::{json, Value};

use client::{Client, Failure};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Operate a running strata instance through its admin API",
    after_help = "Exit codes: 0 done, 1 the instance answered an error, 2 bad usage, \
                  3 cannot reach the instance, 4 token refused, 5 health degraded or down."
)]
struct Cli {
    /// The instance's admin API.
    #[arg(
        long,
        global = true,
        env = "STRATA_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The admin (or read-only) token. Prefer the environment variable: a flag shows in `ps`.
    #[arg(
        long,
        global = true,
        env = "STRATA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print the instance's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hits, misses, entries, bytes and loads, per namespace.
    Stats {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// The configuration in effect and the version.
    Info,
    /// ok, degraded or down, with reasons.
    Health,
    /// Active alerts.
    Alerts,
    /// The hottest keys of a namespace.
    Top {
        namespace: String,
        #[arg(short, default_value_t = 10)]
        n: usize,
    },
    /// Empty every namespace, or one.
    Clear {
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Drop entries by key, prefix, glob pattern, tag or event.
    #[command(group(ArgGroup::new("target").required(true).args(["key", "prefix", "pattern", "tag", "event"])))]
    Invalidate {
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        pattern: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        event: Option<String>,
        /// An event parameter, `name=value` (repeat it).
        #[arg(long = "param", value_parser = param, requires = "event")]
        params: Vec<(String, String)>,
        /// For key, prefix and pattern: only this namespace.
        #[arg(long, conflicts_with_all = ["tag", "event"])]
        namespace: Option<String>,
    },
    /// Run the warming jobs of a scope, with a progress bar.
    Warm {
        #[arg(default_value = "all")]
        scope: String,
    },
}

fn param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not name=value"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = Client::new(&cli.url, cli.token.clone());
    match run(&cli, &client) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("strata: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: &Cli, client: &Client) -> Result<ExitCode, Failure> {
    let print = |value: &Value, table: &dyn Fn(&Value) -> String| {
        if cli.json {
            println!("{value:#}");
        } else {
            print!("{}", table(value));
        }
    };
    match &cli.command {
        Command::Stats { namespace } => {
            let mut stats = client.get("/stats")?;
            if let Some(ns) = namespace {
                let one = stats["namespaces"]
                    .get(ns)
                    .cloned()
                    .ok_or_else(|| Failure::Answered(format!("no namespace {ns:?}")))?;
                stats["namespaces"] = json!({ ns: one });
            }
            print(&stats, &render::stats);
        }
        Command::Info => print(&client.get("/info")?, &|v| format!("{v:#}\n")),
        Command::Health => {
            let health = client.get("/health")?;
            print(&health, &render::health);
            if health["status"] != "ok" {
                return Ok(ExitCode::from(5));
            }
        }
        Command::Alerts => print(&client.get("/alerts")?, &render::alerts),
        Command::Top { namespace, n } => {
            let top = client.get(&format!("/namespaces/{namespace}/top?n={n}"))?;
            print(&top, &render::top);
        }
        Command::Clear { namespace } => {
            let path = match namespace {
                Some(ns) => format!("/namespaces/{ns}/clear"),
                None => "/clear".to_string(),
            };
            let answer = client.post(&path, &json!({}))?;
            print(&answer, &|v| format!("cleared {} entries\n", v["cleared"]));
        }
        Command::Invalidate {
            key,
            prefix,
            pattern,
            tag,
            event,
            params,
            namespace,
        } => {
            let mut body = serde_json::Map::new();
            for (name, value) in [
                ("key", key),
                ("prefix", prefix),
                ("pattern", pattern),
                ("tag", tag),
                ("event", event),
                ("namespace", namespace),
            ] {
                if let Some(value) = value {
                    body.insert(name.into(), json!(value));
                }
            }
            if event.is_some() {
                let params: serde_json::Map<String, Value> =
                    params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                body.insert("params".into(), Value::Object(params));
            }
            let answer = client.post("/invalidate", &Value::Object(body))?;
            print(&answer, &|v| {
                let bound = if v["exact"] == true { "" } else { "at most " };
                format!("dropped {bound}{} entries\n", v["dropped"])
            });
        }
        Command::Warm { scope } => warm(cli, client, scope)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the scope's jobs, then follows `GET /warm` until each has finished a new run.
fn warm(cli: &Cli, client: &Client, scope: &str) -> Result<(), Failure> {
    let runs_of = |status: &Value, job: &str| -> u64 {
        status["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == job))
            .and_then(|j| j["runs"].as_u64())
            .unwrap_or(0)
    };
    let before = client.get("/warm")?;
    let started = client.post("/warm", &json!({ "scope": scope }))?;
    let jobs: Vec<String> = started["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .filter_map(|j| j.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let bar = if cli.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:20} [{bar:30}] {pos}/{len} keys")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let status = client.get("/warm")?;
        let mut done = 0;
        let (mut loaded, mut total) = (0, 0);
        for job in &jobs {
            let Some(state) = status["jobs"]
                .as_array()
                .and_then(|all| all.iter().find(|j| &j["name"] == job))
            else {
                continue;
            };
            if runs_of(&status, job) > runs_of(&before, job) && state["state"] == "idle" {
                done += 1;
            }
            loaded += state["progress"]["done"].as_u64().unwrap_or(0);
            total += state["progress"]["total"].as_u64().unwrap_or(0);
        }
        if total > 0 {
            bar.set_length(total);
            bar.set_position(loaded);
        }
        bar.set_message(format!("{done}/{} jobs", jobs.len()));
        if done == jobs.len() {
            bar.finish_and_clear();
            let report: Vec<&Value> = status["jobs"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .filter(|j| jobs.iter().any(|name| j["name"] == name.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            if cli.json {
                println!("{:#}", json!({ "scope": scope, "jobs": report }));
            } else {
                print!("{}", render::warm(&report));
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
