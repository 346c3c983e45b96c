//! `strata warm [SCOPE] [--no-wait]`: `POST /warm`, then `GET /warm` every 200 ms for a
//! progress bar until every job of the scope has finished, then a summary.
//!
//! The API runs a scope's jobs one after another and skips a job that is running already
//! (its `runs` then does not grow). So a job counts as finished when it is idle and either
//! its `runs` grew since just before the request, or it was running then (the request
//! skipped it, and the run that was going on has ended). The second case is confirmed on
//! two polls in a row, so the instant between two jobs of the sequence, when all may look
//! idle, is not taken for the end.
//!
//! Exit codes: 0, 1 (an unknown scope; or a job's run failed, or some of its keys did: the
//! summary is printed all the same), 3, 4 (the read-only token gets 403).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::{json, Value};

use super::table::{duration, Table};
use super::{count, Context};
use crate::client::Failure;
use crate::exit;

/// How often `GET /warm` is polled while jobs run.
const POLL: Duration = Duration::from_millis(200);

#[derive(clap::Args)]
pub struct Args {
    /// The scope whose jobs to run; `all` runs every job.
    #[arg(default_value = "all")]
    pub scope: String,
    /// Start the jobs and return at once, without following them.
    #[arg(long)]
    pub no_wait: bool,
}

/// What the CLI reads of a job's status (`GET /warm`'s `jobs`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct Job {
    name: String,
    namespace: String,
    state: String,
    runs: u64,
    progress: Option<Progress>,
    last_duration_ms: Option<u64>,
    last_loaded: u64,
    last_failed: u64,
    last_missing: u64,
    last_error: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
struct Progress {
    done: u64,
    total: u64,
}

impl Job {
    fn idle(&self) -> bool {
        self.state != "running"
    }
}

fn jobs_of(status: &Value) -> Vec<Job> {
    status["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|job| Job::deserialize(job).ok())
        .collect()
}

/// Follows the jobs of one request from the statuses polled (see the module docs).
struct Follow {
    names: Vec<String>,
    /// Each job's runs, and whether it was running, just before the request.
    before: HashMap<String, (u64, bool)>,
    /// Whether the previous poll looked finished already.
    settled: bool,
}

impl Follow {
    fn new(names: Vec<String>, before: &[Job]) -> Self {
        let before = before
            .iter()
            .map(|job| (job.name.clone(), (job.runs, !job.idle())))
            .collect();
        Self {
            names,
            before,
            settled: false,
        }
    }

    fn ran(&self, job: &Job) -> bool {
        job.runs > self.before.get(&job.name).map_or(0, |b| b.0)
    }

    fn was_running(&self, job: &Job) -> bool {
        self.before.get(&job.name).is_some_and(|b| b.1)
    }

    /// The jobs of the request, in the status's order.
    fn mine<'a>(&self, now: &'a [Job]) -> Vec<&'a Job> {
        now.iter()
            .filter(|job| self.names.contains(&job.name))
            .collect()
    }

    /// Whether every job has finished, given the latest status (a job that vanished from
    /// the status is not waited for).
    fn finished(&mut self, now: &[Job]) -> bool {
        let mut skipped = false;
        let mut all_done = true;
        for job in self.mine(now) {
            all_done &= job.idle() && (self.ran(job) || self.was_running(job));
            skipped |= !self.ran(job);
        }
        if !all_done {
            self.settled = false;
            return false;
        }
        let confirmed = !skipped || self.settled;
        self.settled = true;
        confirmed
    }

    /// Keys done and known so far, and the job running now.
    fn progress<'a>(&self, now: &'a [Job]) -> (u64, u64, Option<&'a Job>) {
        let (mut done, mut total, mut current) = (0, 0, None);
        for job in self.mine(now) {
            if !job.idle() {
                let progress = job.progress.unwrap_or_default();
                done += progress.done;
                total += progress.total;
                current = Some(job);
            } else if self.ran(job) {
                let keys = job.last_loaded + job.last_failed + job.last_missing;
                done += keys;
                total += keys;
            }
        }
        (done, total.max(done), current)
    }
}

pub fn run(context: &Context, args: &Args) -> Result<u8, Failure> {
    let client = &context.client;
    let before = jobs_of(&client.get("/warm")?);
    let started = client.post("/warm", &json!({ "scope": args.scope }))?;
    let names: Vec<String> = started["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    if args.no_wait {
        context.show(&started, |_| {
            format!(
                "started {} of scope {:?}: {}\n",
                count(names.len() as u64, "job", "jobs"),
                args.scope,
                names.join(", ")
            )
        });
        return Ok(exit::OK);
    }

    let clock = Instant::now();
    let bar = progress_bar(context.json);
    let mut follow = Follow::new(names.clone(), &before);
    let (status, now) = loop {
        let status = client.get("/warm")?;
        let now = jobs_of(&status);
        let (done, total, current) = follow.progress(&now);
        bar.set_length(total);
        bar.set_position(done);
        let finished = now
            .iter()
            .filter(|job| names.contains(&job.name) && job.idle() && follow.ran(job))
            .count();
        bar.set_message(match current {
            Some(job) => format!("{} ({}/{} jobs done)", job.name, finished, names.len()),
            None => format!("{}/{} jobs done", finished, names.len()),
        });
        if follow.finished(&now) {
            break (status, now);
        }
        std::thread::sleep(POLL);
    };
    bar.finish_and_clear();

    let mine = follow.mine(&now);
    let raw: Vec<&Value> = status["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|job| names.iter().any(|name| job["name"] == name.as_str()))
        .collect();
    let report = json!({ "scope": args.scope, "jobs": raw });
    context.show(&report, |_| summary(&args.scope, &mine, &follow, clock));

    let mut failed = false;
    for job in &mine {
        if let Some(error) = &job.last_error {
            eprintln!("strata: warming job {} failed: {error}", job.name);
            failed = true;
        } else if job.last_failed > 0 {
            eprintln!(
                "strata: warming job {}: {} failed to load",
                job.name,
                count(job.last_failed, "key", "keys")
            );
            failed = true;
        }
    }
    Ok(if failed { exit::ANSWERED } else { exit::OK })
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    // Draws on stderr, and only when it is a terminal.
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} warming {msg} [{bar:30}] {pos}/{len} keys, {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn summary(scope: &str, jobs: &[&Job], follow: &Follow, clock: Instant) -> String {
    let mut table = Table::new(&[
        "job",
        "namespace",
        "loaded",
        "failed",
        "missing",
        "took",
        "note",
    ])
    .left(1)
    .left(6);
    for job in jobs {
        let took = job
            .last_duration_ms
            .map_or("-".into(), |ms| duration(Duration::from_millis(ms)));
        let note = if job.last_error.is_some() {
            "failed"
        } else if !follow.ran(job) {
            "was running already: that run's figures"
        } else {
            ""
        };
        table.row(vec![
            job.name.clone(),
            job.namespace.clone(),
            job.last_loaded.to_string(),
            job.last_failed.to_string(),
            job.last_missing.to_string(),
            took,
            note.into(),
        ]);
    }
    format!(
        "warmed scope {scope:?} ({}) in {}\n{}",
        count(jobs.len() as u64, "job", "jobs"),
        duration(clock.elapsed()),
        table.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, running: bool, runs: u64) -> Job {
        Job {
            name: name.into(),
            state: if running { "running" } else { "idle" }.into(),
            runs,
            ..Job::default()
        }
    }

    #[test]
    fn a_job_is_finished_once_it_ran_again_and_is_idle() {
        let mut follow = Follow::new(vec!["a".into(), "b".into()], &[job("a", false, 1)]);
        // Not started yet: all idle, runs unchanged.
        assert!(!follow.finished(&[job("a", false, 1), job("b", false, 0)]));
        assert!(!follow.finished(&[job("a", true, 2), job("b", false, 0)]));
        assert!(!follow.finished(&[job("a", false, 2), job("b", true, 1)]));
        assert!(follow.finished(&[job("a", false, 2), job("b", false, 1)]));
    }

    #[test]
    fn a_job_skipped_because_it_was_running_is_confirmed_on_two_polls() {
        let before = [job("a", false, 1), job("b", true, 4)];
        let mut follow = Follow::new(vec!["a".into(), "b".into()], &before);
        assert!(!follow.finished(&[job("a", true, 2), job("b", true, 4)]));
        // The instant between a and b: both idle, b not rerun yet.
        assert!(!follow.finished(&[job("a", false, 2), job("b", false, 4)]));
        // b did run again after all.
        assert!(!follow.finished(&[job("a", false, 2), job("b", true, 5)]));
        assert!(follow.finished(&[job("a", false, 2), job("b", false, 5)]));

        let mut follow = Follow::new(vec!["b".into()], &before);
        assert!(!follow.finished(&[job("b", false, 4)]));
        assert!(follow.finished(&[job("b", false, 4)]), "skipped, and over");
    }

    #[test]
    fn progress_sums_running_and_finished_jobs() {
        let follow = Follow::new(vec!["a".into(), "b".into()], &[]);
        let mut a = job("a", false, 1);
        a.last_loaded = 3;
        let mut b = job("b", true, 1);
        b.progress = Some(Progress { done: 2, total: 10 });
        let now = [a, b];
        let (done, total, current) = follow.progress(&now);
        assert_eq!((done, total), (5, 13));
        assert_eq!(current.map(|j| j.name.as_str()), Some("b"));
    }
}
