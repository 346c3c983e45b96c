//! Configuration through the public API: a TOML file, environment overrides, human units,
//! and errors that name the field and the value.

use std::time::Duration;

mod common;
use common::invalid_config;

use strata::config::{
    AdminConfig, Config, ConfigError, MaxmemoryPolicy, NamespaceConfig, DEFAULT_MAX_BYTES,
    MAX_BUDGET, MIN_SHARE,
};
use strata::store::Put;
use strata::Store;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FILE: &str = r#"
max_bytes = "1GiB"

[defaults]
ttl = "10m"
max_entries = 100000

[namespaces.wallet]
ttl = "2m"
max_bytes = "64MiB"

[namespaces.user]
time_to_idle = "5m"
max_entries = "50000"

[namespaces.catalogue]
ttl = "12h"
"#;

#[test]
fn a_file_with_defaults_applied_to_every_namespace() {
    let config = Config::from_sources(Some(FILE), []).unwrap();
    assert_eq!(config.max_bytes, 1 << 30);
    assert_eq!(
        config.defaults,
        NamespaceConfig {
            ttl: Some(Duration::from_secs(600)),
            max_entries: Some(100_000),
            ..NamespaceConfig::default()
        }
    );
    assert_eq!(
        config.namespaces["wallet"],
        NamespaceConfig {
            ttl: Some(Duration::from_secs(120)),
            time_to_idle: None,
            max_entries: Some(100_000),
            max_bytes: Some(64 << 20),
            ..NamespaceConfig::default()
        }
    );
    assert_eq!(
        config.namespaces["user"],
        NamespaceConfig {
            ttl: Some(Duration::from_secs(600)),
            time_to_idle: Some(Duration::from_secs(300)),
            max_entries: Some(50_000),
            max_bytes: None,
            ..NamespaceConfig::default()
        }
    );
    assert_eq!(
        config.namespaces["catalogue"].ttl,
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(config.namespaces.len(), 3);
}

#[test]
fn the_environment_overrides_the_file_and_can_add_namespaces() {
    let config = Config::from_sources(
        Some(FILE),
        env(&[
            ("STRATA_MAX_BYTES", "2GiB"),
            ("STRATA_DEFAULTS__TTL", "90s"),
            ("STRATA_NAMESPACES__WALLET__TTL", "30s"),
            ("STRATA_NAMESPACES__SESSION__TIME_TO_IDLE", "15m"),
            // Not ours: ignored.
            ("PATH", "/usr/bin"),
            ("STRATAFOO", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(config.max_bytes, 2 << 30);
    assert_eq!(
        config.namespaces["wallet"].ttl,
        Some(Duration::from_secs(30))
    );
    // The new default TTL reaches namespaces that don't set their own.
    assert_eq!(config.namespaces["user"].ttl, Some(Duration::from_secs(90)));
    assert_eq!(
        config.namespaces["session"],
        NamespaceConfig {
            ttl: Some(Duration::from_secs(90)),
            time_to_idle: Some(Duration::from_secs(900)),
            max_entries: Some(100_000),
            max_bytes: None,
            ..NamespaceConfig::default()
        }
    );
}

#[test]
fn nothing_configured_gives_the_defaults() {
    assert_eq!(Config::from_sources(None, []).unwrap(), Config::default());
    assert_eq!(Config::default().max_bytes, DEFAULT_MAX_BYTES);
    assert!(Config::default().namespaces.is_empty());
}

#[test]
fn human_units() {
    let config = Config::from_sources(
        Some(
            r#"
            [namespaces.a]
            ttl = "500ms"
            max_bytes = 4096
            [namespaces.b]
            ttl = "1d"
            max_bytes = "1MB"
            [namespaces.c]
            ttl = "1h 30m"
            max_bytes = "64 KiB"
            "#,
        ),
        [],
    )
    .unwrap();
    let ns = &config.namespaces;
    assert_eq!(ns["a"].ttl, Some(Duration::from_millis(500)));
    assert_eq!(ns["a"].max_bytes, Some(4096));
    assert_eq!(ns["b"].ttl, Some(Duration::from_secs(86_400)));
    assert_eq!(ns["b"].max_bytes, Some(1_000_000));
    assert_eq!(ns["c"].ttl, Some(Duration::from_secs(5_400)));
    assert_eq!(ns["c"].max_bytes, Some(64 * 1024));
}

#[test]
fn bad_values_name_their_field_and_value() {
    invalid_config(
        "[namespaces.wallet]\nttl = \"2x\"",
        "namespaces.wallet.ttl",
        "2x",
    );
    let zero = invalid_config(
        "[namespaces.wallet]\nttl = \"0s\"",
        "namespaces.wallet.ttl",
        "0s",
    );
    assert!(zero.contains("longer than zero"), "{zero}");
    invalid_config(
        "[defaults]\ntime_to_idle = \"soon\"",
        "defaults.time_to_idle",
        "soon",
    );
    invalid_config("max_bytes = \"lots\"", "max_bytes", "lots");
    invalid_config("max_bytes = 0", "max_bytes", "0");
    invalid_config(
        "[namespaces.user]\nmax_entries = \"ten\"",
        "namespaces.user.max_entries",
        "ten",
    );
    invalid_config(
        "[namespaces.user]\nmax_entries = 0",
        "namespaces.user.max_entries",
        "0",
    );
    invalid_config("[namespaces.User]\nttl = \"1m\"", "namespaces.User", "User");
    let over = invalid_config(
        "max_bytes = \"1MiB\"\n[namespaces.big]\nmax_bytes = \"2MiB\"",
        "namespaces.big.max_bytes",
        "2097152",
    );
    assert!(over.contains("whole budget"), "{over}");
}

#[test]
fn bad_values_from_the_environment_name_their_field_too() {
    let err = Config::from_sources(
        None,
        env(&[("STRATA_NAMESPACES__WALLET__TTL", "2 fortnights")]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Invalid {
            field: "namespaces.wallet.ttl".into(),
            value: "2 fortnights".into(),
            reason: "not a duration (write it like 500ms, 90s, 2m, 12h or 1d)".into(),
        }
    );
}

#[test]
fn unknown_keys_and_broken_toml_are_refused() {
    let typo = Config::from_sources(Some("[namespaces.wallet]\ntll = \"2m\""), []).unwrap_err();
    assert!(typo.to_string().contains("tll"), "{typo}");
    let typo = Config::from_sources(None, env(&[("STRATA_DEFAULTS__TLL", "2m")])).unwrap_err();
    assert!(typo.to_string().contains("tll"), "{typo}");
    let broken = Config::from_sources(Some("[namespaces.wallet\nttl = "), []).unwrap_err();
    assert!(matches!(broken, ConfigError::Source(_)), "{broken:?}");
}

#[test]
fn load_reads_a_file_and_reports_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("strata-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("strata.toml");
    std::fs::write(&path, FILE).unwrap();
    let config = Config::load(Some(&path)).unwrap();
    assert_eq!(config.namespaces.len(), 3);
    let missing = Config::load(Some(&dir.join("absent.toml"))).unwrap_err();
    assert!(missing.to_string().contains("absent.toml"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_value_from_the_environment_wins_over_a_good_one_in_the_file() {
    let err = Config::from_sources(
        Some("[namespaces.wallet]\nttl = \"2m\"\n"),
        env(&[("STRATA_NAMESPACES__WALLET__TTL", "2x")]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "namespaces.wallet.ttl = \"2x\": not a duration (write it like 500ms, 90s, 2m, 12h or 1d)"
    );
}

/// The budget error for a configuration: always on `max_bytes`, naming the budget; its reason.
fn over_budget(toml: &str, pairs: &[(&str, &str)], budget: u64) -> String {
    match Config::from_sources(Some(toml), env(pairs)) {
        Err(ConfigError::Invalid {
            field,
            value,
            reason,
        }) => {
            assert_eq!(field, "max_bytes", "{reason}");
            assert_eq!(value, budget.to_string(), "{reason}");
            reason
        }
        other => panic!("expected a budget error, got {other:?}"),
    }
}

#[test]
fn namespaces_whose_own_budgets_add_up_to_more_than_the_whole_are_refused() {
    // Each fits alone; together they do not.
    let toml = "max_bytes = \"4MiB\"\n[namespaces.a]\nmax_bytes = \"3MiB\"\n\
                [namespaces.b]\nmax_bytes = \"2MiB\"\n";
    let reason = over_budget(toml, &[], 4 << 20);
    assert!(reason.contains(&(5u64 << 20).to_string()), "{reason}");
    // The environment can break a file that was fine, and mend one that was not.
    let fits = "max_bytes = \"8MiB\"\n[namespaces.a]\nmax_bytes = \"3MiB\"\n\
                [namespaces.b]\nmax_bytes = \"2MiB\"\n";
    Config::from_sources(Some(fits), []).unwrap();
    over_budget(fits, &[("STRATA_MAX_BYTES", "4MiB")], 4 << 20);
    Config::from_sources(Some(toml), env(&[("STRATA_MAX_BYTES", "6MiB")])).unwrap();
    // 3 + 1 MiB fit, but leave nothing for `default`.
    let reason = over_budget(
        toml,
        &[("STRATA_NAMESPACES__B__MAX_BYTES", "1MiB")],
        4 << 20,
    );
    assert!(reason.contains("default"), "{reason}");
    // A default max_bytes gives every namespace, `default` included, a share of its own.
    let reason = over_budget(
        "max_bytes = \"3MiB\"\n[defaults]\nmax_bytes = \"1MiB\"\n\
         [namespaces.a]\n[namespaces.b]\n[namespaces.c]\n",
        &[],
        3 << 20,
    );
    assert!(reason.contains(&(4u64 << 20).to_string()), "{reason}");
}

#[test]
fn namespaces_without_a_budget_need_at_least_the_minimum_share() {
    // 3 MiB fixed; `b` and `default` split the rest.
    let fixed = 3u64 << 20;
    let toml = |budget: u64| {
        format!("max_bytes = {budget}\n[namespaces.a]\nmax_bytes = \"3MiB\"\n[namespaces.b]\n")
    };
    let config = Config::from_sources(Some(&toml(fixed + 2 * MIN_SHARE)), []).unwrap();
    let shares = config.budget_shares().unwrap();
    assert_eq!(shares["a"], fixed);
    assert_eq!(shares["b"], MIN_SHARE);
    assert_eq!(shares["default"], MIN_SHARE);
    let budget = fixed + 2 * MIN_SHARE - 1;
    let reason = over_budget(&toml(budget), &[], budget);
    assert!(reason.contains("b, default"), "{reason}");
    assert!(reason.contains(&MIN_SHARE.to_string()), "{reason}");
    // No elastic namespace at all: the fixed shares may take the whole budget.
    let config = Config::from_sources(
        Some("max_bytes = \"4MiB\"\n[defaults]\nmax_bytes = \"2MiB\"\n[namespaces.a]\n"),
        [],
    )
    .unwrap();
    let shares = config.budget_shares().unwrap();
    assert_eq!(shares.values().sum::<u64>(), 4 << 20);
}

#[test]
fn admin_tokens_and_alert_thresholds() {
    let toml = r#"
admin_read_token = "reader"

[alerts]
every = "30s"
hit_ratio_below = 0.5
memory_above = "90%"
load_p99_above = "500ms"
fire_after = 2
"#;
    let env = [("STRATA_ADMIN_TOKEN".to_string(), "s3cret".to_string())];
    let config = Config::from_sources(Some(toml), env).unwrap();
    assert_eq!(
        config.admin_token.as_ref().map(|t| t.expose()),
        Some("s3cret")
    );
    assert_eq!(
        config.admin_read_token.as_ref().map(|t| t.expose()),
        Some("reader")
    );
    // A token never shows: not in Debug, not serialised.
    assert!(!format!("{config:?}").contains("s3cret"));
    assert!(!serde_json::to_string(&config).unwrap().contains("s3cret"));
    let alerts = &config.alerts;
    assert_eq!(alerts.every, Duration::from_secs(30));
    assert_eq!(alerts.hit_ratio_below, Some(0.5));
    assert_eq!(alerts.memory_above, Some(0.9));
    assert_eq!(alerts.load_p99_above, Some(Duration::from_millis(500)));
    assert_eq!(alerts.load_error_rate_above, None);
    assert_eq!(
        (alerts.fire_after, alerts.clear_after, alerts.min_samples),
        (2, 3, 100)
    );
    for (toml, field) in [
        ("admin_token = \"  \"", "admin_token"),
        ("[alerts]\nhit_ratio_below = 1.5", "alerts.hit_ratio_below"),
        (
            "[alerts]\nload_p99_above = \"soon\"",
            "alerts.load_p99_above",
        ),
        ("[alerts]\nfire_after = 0", "alerts.fire_after"),
    ] {
        let err = Config::from_sources(Some(toml), [])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(field), "{toml:?}: {err}");
    }
    let err = Config::from_sources(Some("[alerts]\nhit_ratio = 0.5"), []).unwrap_err();
    assert!(err.to_string().contains("hit_ratio"), "{err}");
}

#[test]
fn a_budget_above_the_largest_is_refused_by_the_file_the_environment_and_set_max_bytes() {
    // 2^64 - 1 and 8 EiB once passed, and every scrape of /metrics broke on them.
    let reason = over_budget("max_bytes = \"18446744073709551615\"", &[], u64::MAX);
    assert!(reason.contains("largest budget"), "{reason}");
    over_budget("", &[("STRATA_MAX_BYTES", "8EiB")], 1 << 63);
    over_budget(
        "",
        &[("STRATA_MAX_BYTES", &(MAX_BUDGET + 1).to_string())],
        MAX_BUDGET + 1,
    );
    let largest = Config::from_sources(None, env(&[("STRATA_MAX_BYTES", "4EiB")])).unwrap();
    assert_eq!(
        largest.max_bytes, MAX_BUDGET,
        "the bound itself is a budget"
    );

    // CONFIG SET maxmemory goes through Store::set_max_bytes: refused, nothing changed.
    let store = Store::new();
    let err = store.set_max_bytes(u64::MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "max_bytes = \"18446744073709551615\": more than the largest budget, \
         4611686018427387904 bytes (4 EiB)"
    );
    assert_eq!(store.stats().max_bytes, DEFAULT_MAX_BYTES);
    store.set_max_bytes(MAX_BUDGET).expect("the largest budget");
    assert_eq!(store.stats().max_bytes, MAX_BUDGET);
}

#[test]
fn admin_listener_limits_with_their_defaults() {
    let defaults = Config::default().admin;
    assert_eq!(
        defaults,
        AdminConfig {
            max_connections: 128,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body: 64 << 10,
        }
    );
    let config = Config::from_sources(
        Some("[admin]\nmax_connections = 16\nheader_timeout = \"2s\"\nmax_body = \"1KiB\"\n"),
        env(&[
            ("STRATA_ADMIN__IDLE_TIMEOUT", "5m"),
            ("STRATA_ADMIN_TOKEN", "not the [admin] section"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.admin,
        AdminConfig {
            max_connections: 16,
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(2),
            max_body: 1024,
            ..defaults
        }
    );
    assert!(config.admin_token.is_some());
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["admin"]["idle_timeout"], "5m");
    assert_eq!(json["admin"]["max_body"], 1024);

    invalid_config("[admin]\nmax_connections = 0", "admin.max_connections", "0");
    invalid_config("[admin]\nidle_timeout = \"0s\"", "admin.idle_timeout", "0s");
    invalid_config(
        "[admin]\nheader_timeout = \"soon\"",
        "admin.header_timeout",
        "soon",
    );
    invalid_config("[admin]\nbody_timeout = 10", "admin.body_timeout", "10");
    invalid_config("[admin]\nmax_body = \"big\"", "admin.max_body", "big");
    let typo = Config::from_sources(Some("[admin]\nmax_conections = 4"), []).unwrap_err();
    assert!(typo.to_string().contains("max_conections"), "{typo}");
}

#[test]
fn the_configuration_serialises_with_durations_as_people_write_them() {
    let toml = "[namespaces.user]\nttl = \"10m\"\nmax_stale = \"1h 30m\"\n";
    let config = Config::from_sources(Some(toml), []).unwrap();
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["namespaces"]["user"]["ttl"], "10m");
    assert_eq!(json["namespaces"]["user"]["max_stale"], "1h 30m");
    assert_eq!(
        json["namespaces"]["user"]["soft_timeout"],
        serde_json::Value::Null
    );
    assert_eq!(json["alerts"]["every"], "10s");
    assert_eq!(json["max_bytes"], 256 << 20);
    // The policy serialises as its name, as the file writes it.
    assert_eq!(json["server"]["maxmemory_policy"], "allkeys-lfu");
}

#[test]
fn server_settings_with_their_defaults_and_prefix_routes() {
    let config = Config::from_sources(Some("[namespaces.wallet]\n[namespaces.session]\n"), [])
        .expect("valid");
    let server = &config.server;
    assert_eq!(server.resp_addr, "127.0.0.1:6380");
    assert_eq!(server.http_addr, "127.0.0.1:8080");
    assert_eq!(server.maxmemory_policy, MaxmemoryPolicy::AllKeysLfu);
    assert_eq!(server.max_bulk_len, 64 << 20);
    assert_eq!(server.idle_timeout, None);
    // Without [server.prefixes], each configured namespace takes "NAME:".
    let routes: Vec<(&str, &str)> = server
        .prefixes
        .iter()
        .map(|(p, n)| (p.as_str(), n.as_str()))
        .collect();
    assert_eq!(routes, [("session:", "session"), ("wallet:", "wallet")]);

    let config = Config::from_sources(
        Some(
            "[namespaces.wallet]\n[server]\npassword = \"pw\"\nidle_timeout = \"5m\"\n\
             max_bulk_len = \"1MiB\"\nmaxmemory_policy = \"noeviction\"\n\
             [server.prefixes]\n\"w:*\" = \"wallet\"\n\"tmp:*\" = \"default\"\n",
        ),
        env(&[("STRATA_SERVER__MAX_CLIENTS", "7")]),
    )
    .expect("valid");
    let server = &config.server;
    assert_eq!(server.password.as_ref().map(|p| p.expose()), Some("pw"));
    assert_eq!(server.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(server.max_bulk_len, 1 << 20);
    assert_eq!(server.max_clients, 7);
    assert_eq!(server.maxmemory_policy, MaxmemoryPolicy::NoEviction);
    let routes: Vec<(&str, &str)> = server
        .prefixes
        .iter()
        .map(|(p, n)| (p.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        routes,
        [("tmp:", "default"), ("w:", "wallet")],
        "explicit routes only"
    );
    assert!(
        !format!("{config:?}").contains("\"pw\""),
        "the password is a Secret"
    );
}

#[test]
fn bad_server_settings_are_refused_with_the_field_named() {
    invalid_config(
        "[server.prefixes]\n\"w:*\" = \"wallet\"\n",
        "server.prefixes.\"w:*\"",
        "wallet",
    );
    invalid_config(
        "[namespaces.wallet]\n[server.prefixes]\n\"w:\" = \"wallet\"\n",
        "server.prefixes.\"w:\"",
        "wallet",
    );
    invalid_config(
        "[namespaces.wallet]\n[server.prefixes]\n\"w*:*\" = \"wallet\"\n",
        "server.prefixes.\"w*:*\"",
        "wallet",
    );
    let reason = invalid_config(
        "[server]\nmaxmemory_policy = \"lru\"\n",
        "server.maxmemory_policy",
        "lru",
    );
    assert_eq!(
        reason,
        "one of noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, \
         volatile-lfu, volatile-random, volatile-ttl"
    );
    invalid_config("[server]\npassword = \"\"\n", "server.password", "");
    invalid_config(
        "[server]\nmax_bulk_len = \"lots\"\n",
        "server.max_bulk_len",
        "lots",
    );
}

#[test]
fn the_command_lines_own_variables_are_not_configuration() {
    let config = Config::from_sources(
        None,
        env(&[
            ("STRATA_URL", "http://10.0.0.5:8080"),
            ("STRATA_CONFIG", "/etc/strata.toml"),
            ("STRATA_TEST_SERVER", "redis"),
        ]),
    )
    .expect("not read as configuration");
    assert_eq!(config, Config::default());
    // Any other unknown variable is still an error.
    assert!(Config::from_sources(None, env(&[("STRATA_URLS", "x")])).is_err());
}

/// The README's example configuration loads, and a store built from it runs its event.
#[test]
fn the_readme_configuration_is_valid() {
    let readme = include_str!("../../../README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("```").expect("the block ends")])
        .collect();
    assert!(blocks.len() >= 2, "README's toml blocks went missing");
    for block in &blocks[1..] {
        Config::from_sources(Some(block), []).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
    let config = Config::from_sources(Some(blocks[0]), []).unwrap();
    assert_eq!(config.max_bytes, 1 << 30);
    assert_eq!(
        config.namespaces["wallet"].ttl,
        Some(Duration::from_secs(120))
    );
    let store = Store::from_config(&config).unwrap();
    let wallet = store.namespace::<i64>("wallet").unwrap();
    wallet
        .insert_with("wallet::42::balance", 1_250, Put::new().tag("dashboard:42"))
        .unwrap();
    wallet.insert("wallet::43::balance", 7).unwrap();
    let dropped = store
        .emit("payment.succeeded", [("user_id", "42"), ("bill_id", "7")])
        .unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(wallet.get("wallet::42::balance"), None);
    assert_eq!(wallet.get("wallet::43::balance"), Some(7));
}

#[test]
fn the_redis_section_is_optional_checked_and_shared_per_namespace() {
    let none = Config::from_sources(Some(""), []).unwrap();
    assert_eq!(none.redis, None);
    assert!(!none.is_shared("default"), "no [redis]: nothing is shared");

    let config = Config::from_sources(
        Some(
            "[redis]\nurl = \"redis://app:pw@cache:6379/2\"\nrequired = true\npartitions = 4\n\
             [namespaces.session]\nshared = false\n[namespaces.user]\nttl = \"1m\"\n",
        ),
        [("STRATA_REDIS__TIMEOUT".to_string(), "20ms".to_string())],
    )
    .unwrap();
    let redis = config.redis.as_ref().unwrap();
    assert_eq!((redis.partitions, redis.required), (4, true));
    assert_eq!(redis.timeout, Duration::from_millis(20));
    assert!(config.is_shared("user") && config.is_shared("default"));
    assert!(!config.is_shared("session"));
    let shown = serde_json::to_string(&config).unwrap();
    assert!(
        shown.contains("redis://app:***@cache:6379/2") && !shown.contains("pw@"),
        "{shown}"
    );

    // The environment alone can turn the tier on.
    let from_env = Config::from_sources(
        None,
        [(
            "STRATA_REDIS__URL".to_string(),
            "redis://127.0.0.1:6390".to_string(),
        )],
    )
    .unwrap();
    assert_eq!(from_env.redis.unwrap().url, "redis://127.0.0.1:6390");

    for (toml, message) in [
        (
            "[redis]\nurl = \"http://x\"",
            "redis.url = \"http://x\": write it like redis://host:6379/0",
        ),
        (
            "[redis]\npartitions = 5000",
            "redis.partitions = \"5000\": at most 1024",
        ),
        (
            "[redis]\nprefix = \"a{b}\"",
            "redis.prefix = \"a{b}\": braces are Redis Cluster's hash tags",
        ),
        (
            "[redis]\nrequired = \"maybe\"",
            "redis.required = \"maybe\": true or false",
        ),
        (
            "[namespaces.x]\nshared = 3",
            "namespaces.x.shared = \"3\": true or false",
        ),
        ("[redis]\nurll = \"x\"", "unknown field `urll`"),
    ] {
        let err = Config::from_sources(Some(toml), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{toml}: {err}");
    }
}
