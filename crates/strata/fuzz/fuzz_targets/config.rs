//! Fuzzes the configuration: any TOML text with any `STRATA_*` environment must load or be
//! refused with an error, never panic; a configuration that loads must build a store or be
//! refused by it with an error, every namespace it names must open, and the budget's shares
//! must add up to at most the budget.
//!
//! Input layout: the text up to the first NUL byte is the TOML file; after it, lines of
//! `NAME=value` are environment variables (the `STRATA_` prefix is added when missing, so
//! the fuzzer reaches the overrides without having to find the prefix first).

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::config::Config;
use strata::Store;

fuzz_target!(|input: &[u8]| {
    let (file, env) = match input.iter().position(|&b| b == 0) {
        Some(nul) => (&input[..nul], &input[nul + 1..]),
        None => (input, &[][..]),
    };
    let Ok(file) = std::str::from_utf8(file) else {
        return;
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let name = match name.strip_prefix("STRATA_") {
                Some(_) => name.to_string(),
                None => format!("STRATA_{name}"),
            };
            Some((name, value.to_string()))
        })
        .collect();
    let Ok(config) = Config::from_sources(Some(file), env) else {
        return;
    };
    if let Ok(shares) = config.budget_shares() {
        let total = shares.values().fold(0u64, |sum, s| sum.saturating_add(*s));
        assert!(total <= config.max_bytes, "shares {total} over the budget {}", config.max_bytes);
    }
    // Store::from_config starts a janitor thread per store: build it with a long interval
    // and drop it at once, so runs do not pile threads up.
    let Ok(store) = Store::builder(config.clone())
        .maintenance_interval(std::time::Duration::from_secs(3600))
        .build()
    else {
        return;
    };
    for name in config.namespace_names() {
        let namespace = store.namespace::<Vec<u8>>(&name);
        assert!(namespace.is_ok(), "namespace {name} was configured but does not open");
    }
});
