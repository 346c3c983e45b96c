//! The `strata` binary against a live admin API (a real server on an ephemeral port).

use std::net::SocketAddr;
use std::process::{Command, Output};

use serde_json::Value;
use strata::config::Config;
use strata::store::warm::{WarmJob, Warmer};
use strata::store::Put;
use strata::{Key, Store};
use strata_admin::Admin;

const ADMIN: &str = "admin-s3cret";
const READ: &str = "read-only";

const CONFIG: &str = r#"
admin_token = "admin-s3cret"
admin_read_token = "read-only"

[namespaces.user]
ttl = "10m"

[namespaces.session]

[events."user.changed"]
params = ["id"]
namespaces = ["user"]
keys = ["user::{id}"]
"#;

/// A store with a warming job, served on an ephemeral port from a runtime of its own.
fn serve() -> (Store, String) {
    let store = Store::from_config(&Config::from_sources(Some(CONFIG), []).unwrap()).unwrap();
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
    let admin = Admin::new(store.clone()).with_warmer(warmer);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, admin.router()).await.unwrap();
        });
    });
    let addr: SocketAddr = rx.recv().unwrap();
    (store, format!("http://{addr}"))
}

fn strata(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .args(args)
        .env("STRATA_URL", url)
        .env_remove("STRATA_ADMIN_TOKEN");
    if let Some(token) = token {
        command.env("STRATA_ADMIN_TOKEN", token);
    }
    command.output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

#[test]
fn stats_as_a_table_and_as_json() {
    let (store, url) = serve();
    let users = store.namespace::<String>("user").unwrap();
    users.insert("user::1", "Ada".into()).unwrap();
    users.get("user::1");
    users.get("user::1");
    users.get("user::2");
    let table = ok(&strata(&url, Some(READ), &["stats"]));
    let row = table.lines().find(|l| l.starts_with("user ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["user", "2", "1", "66.7%", "1"], "{table}");
    let stats = json(&strata(
        &url,
        Some(READ),
        &["stats", "--json", "--namespace", "user"],
    ));
    assert_eq!(stats["namespaces"]["user"]["stats"]["hits"], 2);
    assert!(stats["namespaces"].get("session").is_none());
    let info = json(&strata(&url, Some(READ), &["info"]));
    assert_eq!(info["namespaces"][2], "user");
    let health = ok(&strata(&url, None, &["health"]));
    assert_eq!(health.trim(), "ok");
    let alerts = ok(&strata(&url, Some(READ), &["alerts"]));
    assert_eq!(alerts.trim(), "no active alerts");
}

#[test]
fn clear_and_every_form_of_invalidate_change_the_store() {
    let (store, url) = serve();
    let users = store.namespace::<String>("user").unwrap();
    let sessions = store.namespace::<String>("session").unwrap();
    for i in 0..6 {
        let put = Put::new().tag(format!("team:{i}"));
        users
            .insert_with(format!("user::{i}"), "u".into(), put)
            .unwrap();
        sessions.insert(format!("s::{i}"), "s".into()).unwrap();
    }
    let run = |args: &[&str]| ok(&strata(&url, Some(ADMIN), args));
    assert_eq!(
        run(&["invalidate", "--key", "user::0", "--namespace", "user"]),
        "dropped 1 entries\n"
    );
    assert!(!users.contains_key("user::0"));
    run(&["invalidate", "--prefix", "user::1"]);
    assert!(!users.contains_key("user::1"));
    run(&[
        "invalidate",
        "--pattern",
        "user::[2]",
        "--namespace",
        "user",
    ]);
    assert!(!users.contains_key("user::2"));
    assert!(run(&["invalidate", "--tag", "team:3"]).starts_with("dropped at most"));
    assert!(!users.contains_key("user::3"));
    run(&["invalidate", "--event", "user.changed", "--param", "id=4"]);
    assert!(!users.contains_key("user::4"));
    assert!(users.contains_key("user::5"));
    assert_eq!(
        run(&["clear", "--namespace", "session"]),
        "cleared 6 entries\n"
    );
    assert!(sessions.is_empty());
    run(&["clear"]);
    assert!(!users.contains_key("user::5"));
}

#[test]
fn warm_runs_a_scope_to_the_end() {
    let (store, url) = serve();
    let report = ok(&strata(&url, Some(ADMIN), &["warm", "reference"]));
    assert_eq!(report, "users: 3 loaded, 0 failed, 0 missing\n");
    let users = store.namespace::<String>("user").unwrap();
    assert_eq!(users.get("user::w3").as_deref(), Some("warm"));
    let again = json(&strata(&url, Some(ADMIN), &["warm", "--json"]));
    assert_eq!(again["jobs"][0]["runs"], 2, "scope all ran it again");
}

#[test]
fn exit_codes_scripts_can_trust() {
    let (_store, url) = serve();
    // 1: the instance answered an error; its detail is printed.
    let output = strata(&url, Some(ADMIN), &["clear", "--namespace", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope"));
    // 2: bad usage.
    let output = strata(
        &url,
        Some(ADMIN),
        &["invalidate", "--key", "a", "--tag", "b"],
    );
    assert_eq!(output.status.code(), Some(2));
    let output = strata(&url, Some(ADMIN), &["invalidate"]);
    assert_eq!(output.status.code(), Some(2));
    // 3: nothing listening.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let output = strata(&dead, Some(ADMIN), &["stats"]);
    assert_eq!(output.status.code(), Some(3));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.starts_with(&format!("strata: cannot reach {dead}")),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    // 4: no token, a wrong one, or the read-only one on a change.
    for (token, args) in [
        (None, &["stats"][..]),
        (Some("wrong"), &["stats"][..]),
        (Some(READ), &["clear"][..]),
    ] {
        let output = strata(&url, token, args);
        assert_eq!(output.status.code(), Some(4), "{token:?} {args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("STRATA_ADMIN_TOKEN"));
    }
}
