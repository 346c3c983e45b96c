//! The `strata` binary against a live admin API: a real server on an ephemeral port, in a
//! runtime of its own, and the binary run as a process, as a script would.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};

use serde_json::{json, Value};
use strata::config::Config;
use strata::store::Put;
use strata::warm::{Retry, WarmEvent, WarmJob, Warmer};
use strata::{Key, Store};
use strata_admin::Admin;
use tokio::sync::Semaphore;

const ADMIN: &str = "admin-s3cret";
const READ: &str = "read-only";

const CONFIG: &str = r#"
admin_token = "admin-s3cret"
admin_read_token = "read-only"

[namespaces.user]
ttl = "10m"
max_bytes = "1MiB"

[namespaces.session]

[events."user.changed"]
params = ["id"]
namespaces = ["user"]
keys = ["user::{id}"]

[alerts]
memory_above = 0.00001
fire_after = 1
"#;

/// A live instance: the store it serves, its admin API (for its alerts), and the gate the
/// `slow` warming job waits at.
struct Instance {
    store: Store,
    admin: Admin,
    warmer: Warmer,
    url: String,
    /// `slow` lists its keys once given a permit.
    gate: Arc<Semaphore>,
    /// Says when `slow` has started (is waiting at the gate).
    slow_entered: mpsc::Receiver<()>,
}

/// Three warming jobs: `users` (scope `reference`: three keys in batches of two), `slow`
/// (scope `slow`, waits at the gate) and `broken` (scope `broken`, its lister fails).
fn warmer(store: &Store) -> (Warmer, Arc<Semaphore>, mpsc::Receiver<()>) {
    let warmer = Warmer::new();
    warmer
        .add(
            WarmJob::new("users", store.namespace::<String>("user").unwrap())
                .scope("reference")
                .batch_size(2)
                .keys(|| async { Ok::<_, std::io::Error>(["user::w1", "user::w2", "user::w3"]) })
                .load(|batch: Vec<Key>| async move {
                    Ok::<_, std::io::Error>(batch.into_iter().map(|k| (k, "warm".to_string())))
                }),
        )
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (entered, slow_entered) = mpsc::channel();
    let entered = Arc::new(Mutex::new(entered));
    let waiting = Arc::clone(&gate);
    warmer
        .add(
            WarmJob::new("slow", store.namespace::<String>("session").unwrap())
                .scope("slow")
                .keys(move || {
                    let (gate, entered) = (Arc::clone(&waiting), Arc::clone(&entered));
                    async move {
                        let _ = entered.lock().unwrap().send(());
                        gate.acquire().await.unwrap().forget();
                        Ok::<_, std::io::Error>(["s::slow"])
                    }
                })
                .load(|batch: Vec<Key>| async move {
                    Ok::<_, std::io::Error>(batch.into_iter().map(|k| (k, "slow".to_string())))
                }),
        )
        .unwrap();
    warmer
        .add(
            WarmJob::new("broken", store.namespace::<String>("session").unwrap())
                .scope("broken")
                .retry(Retry::none())
                .keys(|| async { Err::<[&str; 0], _>(std::io::Error::other("the origin is down")) })
                .load(|batch: Vec<Key>| async move {
                    Ok::<_, std::io::Error>(batch.into_iter().map(|k| (k, String::new())))
                }),
        )
        .unwrap();
    (warmer, gate, slow_entered)
}

fn serve() -> Instance {
    let store = Store::from_config(&Config::from_sources(Some(CONFIG), []).unwrap()).unwrap();
    let (warmer, gate, slow_entered) = warmer(&store);
    let admin = Admin::new(store.clone()).with_warmer(warmer.clone());
    let app = admin.router();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr: SocketAddr = rx.recv().unwrap();
    Instance {
        store,
        admin,
        warmer,
        url: format!("http://{addr}"),
        gate,
        slow_entered,
    }
}

/// The binary, with only the environment the test gives it.
fn command(url: &str, token: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.args(args).env("STRATA_URL", url);
    for var in [
        "STRATA_ADMIN_TOKEN",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        command.env_remove(var);
    }
    if let Some(token) = token {
        command.env("STRATA_ADMIN_TOKEN", token);
    }
    command
}

fn strata(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    command(url, token, args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Stdout of a run that must have exited 0.
fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

/// Asserts the exit code and a single `strata: ...` line on stderr containing each of
/// `words`; answers that line.
fn fails(output: &Output, code: i32, words: &[&str]) -> String {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {message}");
    assert!(message.starts_with("strata: "), "{message}");
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    for word in words {
        assert!(message.contains(word), "{word:?} in {message}");
    }
    message
}

/// The cells of the table row whose first cell is `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
}

#[test]
fn stats_as_a_table_and_as_json_match_the_store() {
    let instance = serve();
    let url = &instance.url;
    let users = instance.store.namespace::<String>("user").unwrap();
    users.insert("user::1", "Ada".into()).unwrap();
    users.get("user::1");
    users.get("user::1");
    users.get("user::2");
    let figures = instance.store.stats();
    let user = &figures.namespaces["user"];

    let table = ok(&strata(url, Some(READ), &["stats"]));
    assert!(table.starts_with("namespace "), "a header first:\n{table}");
    let cells = row(&table, "user");
    assert_eq!(&cells[..5], ["user", "2", "1", "66.7%", "1"], "{table}");
    assert_eq!(
        cells[5..7].join(" "),
        format!("{} B", user.stats.weighted_size)
    );
    assert_eq!(cells[7..].join(" "), "1.0 MiB 0 0 0 0", "{table}");
    assert_eq!(row(&table, "session")[3], "-", "no lookups, no ratio");
    assert_eq!(
        &row(&table, "total")[..5],
        ["total", "2", "1", "66.7%", "1"]
    );
    assert!(table.contains("uptime "), "{table}");

    let all = json(&strata(url, Some(READ), &["stats", "--json"]));
    assert_eq!(all["namespaces"]["user"]["stats"]["hits"], user.stats.hits);
    assert_eq!(all["namespaces"]["user"]["stats"]["misses"], 1);
    assert_eq!(all["total"]["entries"], figures.total.entries);
    assert_eq!(all["max_bytes"], figures.max_bytes);

    // --json may come before the subcommand too; the token may be a flag.
    let one = strata(
        url,
        None,
        &["--json", "--token", READ, "stats", "--namespace", "user"],
    );
    let one = json(&one);
    assert_eq!(one["namespaces"]["user"]["stats"]["hits"], 2);
    assert_eq!(one["namespaces"].as_object().unwrap().len(), 1);
    let table = ok(&strata(url, Some(READ), &["stats", "--namespace", "user"]));
    assert!(!table.contains("total"), "{table}");
    row(&table, "user");

    let unknown = strata(url, Some(READ), &["stats", "--namespace", "nope"]);
    fails(
        &unknown,
        1,
        &["no namespace \"nope\"", "default, session, user"],
    );
}

#[test]
fn info_shows_the_configuration_in_effect() {
    let instance = serve();
    let table = ok(&strata(&instance.url, Some(READ), &["info"]));
    assert_eq!(
        row(&table, "version"),
        ["version", env!("CARGO_PKG_VERSION")]
    );
    assert_eq!(
        row(&table, "namespaces").join(" "),
        "namespaces default, session, user"
    );
    assert_eq!(row(&table, "events"), ["events", "user.changed"]);
    assert!(row(&table, "auth")
        .join(" ")
        .contains("admin and read tokens"));
    assert_eq!(row(&table, "user")[1], "10m", "its ttl:\n{table}");
    assert!(!table.contains(ADMIN) && !table.contains(READ));

    let info = json(&strata(&instance.url, Some(READ), &["info", "--json"]));
    assert_eq!(info["namespaces"], json!(["default", "session", "user"]));
    assert_eq!(info["config"]["namespaces"]["user"]["ttl"], "10m");
}

#[test]
fn alerts_and_health_follow_the_evaluations() {
    let instance = serve();
    let url = &instance.url;
    let users = instance.store.namespace::<String>("user").unwrap();
    users.insert("user::1", "Ada".into()).unwrap();

    assert_eq!(
        ok(&strata(url, Some(READ), &["alerts"])),
        "no active alerts\n"
    );
    // /health needs no token.
    assert_eq!(ok(&strata(url, None, &["health"])), "ok\n");

    // One evaluation fires: `user` holds more than 10 bytes of its MiB.
    instance.admin.alerts().evaluate(&instance.store);
    let alerts = strata(url, Some(READ), &["alerts"]);
    let table = ok(&alerts);
    assert_eq!(
        &row(&table, "user")[..2],
        ["user", "memory_high"],
        "{table}"
    );
    let listed = json(&strata(url, Some(READ), &["alerts", "--json"]));
    assert_eq!(listed["alerts"][0]["kind"], "memory_high");

    let health = strata(url, None, &["health"]);
    assert_eq!(health.status.code(), Some(5), "degraded exits 5");
    let text = stdout(&health);
    assert!(text.starts_with("degraded\n  "), "{text}");
    let health = strata(url, None, &["health", "--json"]);
    assert_eq!(health.status.code(), Some(5));
    let body: Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(body["status"], "degraded");
}

#[test]
fn top_lists_the_hottest_keys() {
    let instance = serve();
    let users = instance.store.namespace::<String>("user").unwrap();
    users.insert("user::hot", "Ada".into()).unwrap();
    // One hit in 64 is sampled, per thread: 640 reads give ten samples.
    for _ in 0..640 {
        users.get("user::hot");
    }
    let table = ok(&strata(
        &instance.url,
        Some(READ),
        &["top", "user", "-n", "5"],
    ));
    let cells = row(&table, "user::hot");
    assert!(cells[1].parse::<u64>().unwrap() > 0, "{table}");
    let top = json(&strata(
        &instance.url,
        Some(READ),
        &["top", "user", "--count", "1", "--json"],
    ));
    assert_eq!(top["keys"][0]["key"], "user::hot");
    assert_eq!(
        ok(&strata(&instance.url, Some(READ), &["top", "session"])),
        "no hot keys sampled yet in session\n"
    );
    let unknown = strata(&instance.url, Some(READ), &["top", "no/such ns"]);
    fails(&unknown, 1, &["no/such ns"]);
}

#[test]
fn every_form_of_invalidate_changes_the_store() {
    let instance = serve();
    let users = instance.store.namespace::<String>("user").unwrap();
    let sessions = instance.store.namespace::<String>("session").unwrap();
    for i in 0..6 {
        let put = Put::new().tag(format!("team:{i}"));
        users
            .insert_with(format!("user::{i}"), "u".into(), put)
            .unwrap();
        sessions.insert(format!("user::{i}"), "s".into()).unwrap();
    }
    let run = |args: &[&str]| ok(&strata(&instance.url, Some(ADMIN), args));

    let key = run(&["invalidate", "--key", "user::0", "--namespace", "user"]);
    assert_eq!(key, "dropped 1 entry\n");
    assert!(!users.contains_key("user::0"));
    assert!(sessions.contains_key("user::0"), "only the namespace named");

    // Without --namespace a prefix applies to every namespace.
    assert_eq!(
        run(&["invalidate", "--prefix", "user::1"]),
        "dropped 2 entries\n"
    );
    assert!(!users.contains_key("user::1") && !sessions.contains_key("user::1"));

    let pattern = [
        "invalidate",
        "--pattern",
        "user::[2]",
        "--namespace",
        "user",
    ];
    assert_eq!(run(&pattern), "dropped 1 entry\n");
    assert!(!users.contains_key("user::2") && sessions.contains_key("user::2"));

    // A tag's count is an upper bound.
    let tag = run(&["invalidate", "--tag", "team:3"]);
    assert!(tag.starts_with("dropped at most "), "{tag}");
    assert!(!users.contains_key("user::3"));

    let event = ["invalidate", "--event", "user.changed", "--param", "id=4"];
    let answer = json(&strata(
        &instance.url,
        Some(ADMIN),
        &[&event[..], &["--json"]].concat(),
    ));
    assert_eq!(answer["dropped"], 1);
    assert!(!users.contains_key("user::4"));
    assert!(users.contains_key("user::5") && sessions.contains_key("user::4"));

    // An event without its parameter, or an unknown one: the instance's detail, exit 1.
    let missing = strata(
        &instance.url,
        Some(ADMIN),
        &["invalidate", "--event", "user.changed"],
    );
    fails(&missing, 1, &["needs parameter \"id\""]);
    let unknown = strata(
        &instance.url,
        Some(ADMIN),
        &["invalidate", "--event", "nope"],
    );
    fails(&unknown, 1, &["no rule for event \"nope\""]);
}

#[test]
fn clear_empties_one_namespace_or_all() {
    let instance = serve();
    let users = instance.store.namespace::<String>("user").unwrap();
    let sessions = instance.store.namespace::<String>("session").unwrap();
    for i in 0..3 {
        users.insert(format!("user::{i}"), "u".into()).unwrap();
        sessions.insert(format!("s::{i}"), "s".into()).unwrap();
    }
    let run = |args: &[&str]| ok(&strata(&instance.url, Some(ADMIN), args));
    assert_eq!(
        run(&["clear", "--namespace", "session"]),
        "cleared 3 entries from session\n"
    );
    assert!(sessions.is_empty());
    assert_eq!(users.len(), 3, "the others untouched");
    let answer = json(&strata(&instance.url, Some(ADMIN), &["clear", "--json"]));
    assert_eq!(answer["cleared"], 3);
    assert!(users.is_empty() && sessions.is_empty());
    let stats = json(&strata(&instance.url, Some(READ), &["stats", "--json"]));
    assert_eq!(stats["namespaces"]["user"]["stats"]["entries"], 0);
}

#[test]
fn warm_runs_a_scope_to_the_end() {
    let instance = serve();
    let users = instance.store.namespace::<String>("user").unwrap();
    // Not a terminal: no progress bar, only the summary.
    let output = strata(&instance.url, Some(ADMIN), &["warm", "reference"]);
    let report = ok(&output);
    assert!(
        report.starts_with("warmed scope \"reference\" (1 job) in "),
        "{report}"
    );
    assert_eq!(
        &row(&report, "users")[..5],
        ["users", "user", "3", "0", "0"],
        "{report}"
    );
    assert_eq!(stderr(&output), "", "nothing on stderr when not a terminal");
    for key in ["user::w1", "user::w2", "user::w3"] {
        assert_eq!(users.get(key).as_deref(), Some("warm"), "{key}");
    }

    let again = json(&strata(
        &instance.url,
        Some(ADMIN),
        &["warm", "reference", "--json"],
    ));
    assert_eq!(again["scope"], "reference");
    assert_eq!(again["jobs"][0]["name"], "users");
    assert_eq!(again["jobs"][0]["runs"], 2, "it ran again");
    assert_eq!(again["jobs"][0]["last_loaded"], 3);

    let unknown = strata(&instance.url, Some(ADMIN), &["warm", "nope"]);
    fails(&unknown, 1, &["no warming job has scope \"nope\""]);
}

#[test]
fn warm_reports_a_failed_job_and_exits_1() {
    let instance = serve();
    let output = strata(&instance.url, Some(ADMIN), &["warm", "broken"]);
    fails(&output, 1, &["broken failed", "the origin is down"]);
    assert_eq!(row(&stdout(&output), "broken").last().unwrap(), "failed");

    // `all` runs every job; `slow` may pass its gate.
    instance.gate.add_permits(10);
    let output = strata(&instance.url, Some(ADMIN), &["warm", "--json"]);
    assert_eq!(output.status.code(), Some(1), "broken is in all");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(instance
        .store
        .namespace::<String>("session")
        .unwrap()
        .contains_key("s::slow"));
}

#[test]
fn warm_follows_a_job_that_was_running_already() {
    let instance = serve();
    let url = &instance.url;
    // Start `slow` and leave it waiting at its gate.
    let started = ok(&strata(url, Some(ADMIN), &["warm", "slow", "--no-wait"]));
    assert_eq!(started, "started 1 job of scope \"slow\": slow\n");
    instance.slow_entered.recv().unwrap();

    // Asked again while it runs, the instance skips it: the CLI waits for the run going on.
    let mut events = instance.warmer.subscribe();
    let child = command(url, Some(ADMIN), &["warm", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        match events.blocking_recv() {
            Ok(WarmEvent::Skipped { job, .. }) if job == "slow" => break,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    instance.gate.add_permits(1);
    let output = child.wait_with_output().unwrap();
    let report = ok(&output);
    let cells = row(&report, "slow");
    assert_eq!(&cells[..5], ["slow", "session", "1", "0", "0"], "{report}");
    assert!(report.contains("was running already"), "{report}");
    let sessions = instance.store.namespace::<String>("session").unwrap();
    assert_eq!(sessions.get("s::slow").as_deref(), Some("slow"));
}

#[test]
fn exit_codes_scripts_can_trust() {
    let instance = serve();
    let url = &instance.url;

    // 1: the instance answered an error; its detail is printed.
    let output = strata(url, Some(ADMIN), &["clear", "--namespace", "nope"]);
    fails(&output, 1, &["no namespace \"nope\""]);
    // A URL beside the API's root says so.
    let output = strata(&format!("{url}/admin"), Some(READ), &["stats"]);
    fails(&output, 1, &["no such route", "--url"]);

    // 2: bad usage, clap's code.
    for args in [
        &["invalidate", "--key", "a", "--tag", "b"][..],
        &["invalidate"],
        &["invalidate", "--key", "a", "--param", "id=1"],
        &["invalidate", "--tag", "a", "--namespace", "user"],
        &["invalidate", "--event", "e", "--param", "novalue"],
        &["--url", "127.0.0.1:8080", "stats"],
        &["stats", "extra"],
        &[],
    ] {
        let output = strata(url, Some(ADMIN), args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    // 3: nothing listening.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let output = strata(&dead, Some(ADMIN), &["stats"]);
    let message = fails(&output, 3, &[]);
    assert_eq!(
        message,
        format!("strata: cannot reach {dead}: connection refused\n")
    );
    let output = strata(&dead, None, &["warm"]);
    fails(&output, 3, &["cannot reach"]);

    // 4: no token, a wrong one, or the read-only one on a change.
    let output = strata(url, None, &["stats"]);
    fails(&output, 4, &["401", "STRATA_ADMIN_TOKEN"]);
    let output = strata(url, Some("wrong"), &["info"]);
    fails(&output, 4, &["401", "not valid", "STRATA_ADMIN_TOKEN"]);
    for args in [
        &["clear"][..],
        &["clear", "--namespace", "user"],
        &["invalidate", "--key", "k"],
        &["warm", "reference"],
    ] {
        let output = strata(url, Some(READ), args);
        fails(
            &output,
            4,
            &["403", "read-only", "admin token", "STRATA_ADMIN_TOKEN"],
        );
    }

    // --help documents them.
    let help = ok(&strata(url, None, &["--help"]));
    for line in [
        "0  done",
        "3  cannot reach",
        "4  token refused",
        "5  health",
    ] {
        assert!(help.contains(line), "{line:?} in\n{help}");
    }
}
