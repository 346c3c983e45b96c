//! What the store benchmark prints: markdown tables (on stdout, or on stderr when stdout
//! carries the JSON report), the statistics in them, and the figures' units.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::Report;

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// A markdown table, printed when complete.
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|s| (*s).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n{}\n", self.title)?;
        writeln!(f, "| {} |", self.header.join(" | "))?;
        writeln!(
            f,
            "|{}",
            self.header.iter().map(|_| "---|").collect::<String>()
        )?;
        for row in &self.rows {
            writeln!(f, "| {} |", row.join(" | "))?;
        }
        Ok(())
    }
}

/// Where the tables go: stdout, or stderr when stdout carries JSON.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn table(&self, t: &Table) {
        if self.json {
            eprint!("{t}");
        } else {
            print!("{t}");
        }
    }

    /// Prints `report` as one line of JSON on stdout, with `--json`.
    pub fn finish(self, report: &Report) -> anyhow::Result<()> {
        if self.json {
            let text = serde_json::to_string(report).context("cannot write the JSON report")?;
            println!("{text}");
        }
        Ok(())
    }
}

pub fn fmt_ns(d: f64) -> String {
    if d >= 1e9 {
        format!("{:.2} s", d / 1e9)
    } else if d >= 1e6 {
        format!("{:.2} ms", d / 1e6)
    } else if d >= 1e3 {
        format!("{:.1} µs", d / 1e3)
    } else {
        format!("{d:.0} ns")
    }
}

pub fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

pub fn dist_name(s: f64) -> String {
    if s == 0.0 {
        "uniform".into()
    } else {
        format!("Zipf {s}")
    }
}

/// One distribution and thread count of a part's hit timings, as the report has it.
#[derive(Debug, Serialize)]
pub struct Run<V> {
    pub zipf: f64,
    pub threads: usize,
    pub variants: Vec<V>,
}
