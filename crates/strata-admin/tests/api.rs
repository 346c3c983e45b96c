//! The admin API over real HTTP: `strata_admin::serve` on an ephemeral port, reqwest as the
//! client.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use strata::config::Config;
use strata::store::Put;
use strata::warm::{WarmEvent, WarmJob, Warmer};
use strata::{Key, Store};
use strata_admin::{Admin, ServerStats};

const ADMIN: &str = "admin-s3cret";
const READ: &str = "read-only";

const CONFIG: &str = r#"
admin_token = "admin-s3cret"
admin_read_token = "read-only"

[namespaces.user]
ttl = "10m"

[namespaces.session]
ttl = "1m"

[events."user.changed"]
params = ["id"]
keys = ["user::{id}"]
"#;

fn store() -> Store {
    Store::from_config(&Config::from_sources(Some(CONFIG), []).unwrap()).unwrap()
}

/// Serves `admin` on an ephemeral port; answers its base URL.
async fn serve(admin: &Admin) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = admin.router();
    let limits = admin.store().config().admin.clone();
    tokio::spawn(async move {
        strata_admin::serve(listener, app, &limits, std::future::pending()).await;
    });
    format!("http://{addr}")
}

struct Api {
    base: String,
    http: Client,
}

impl Api {
    async fn new(admin: &Admin) -> Self {
        Self {
            base: serve(admin).await,
            http: Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(ADMIN), None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(ADMIN), Some(body)).await
    }

    /// The text of `GET /metrics`, which needs no token.
    async fn metrics(&self) -> String {
        let response = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap();
        response.text().await.unwrap()
    }
}

#[tokio::test]
async fn stats_info_health_top_and_openapi_answer() {
    let store = store();
    let users = store.namespace::<String>("user").unwrap();
    users.insert("user::1", "Ada".into()).unwrap();
    for _ in 0..3 {
        users.get("user::1");
    }
    users.get("user::2");
    let admin = Admin::new(store);
    let api = Api::new(&admin).await;

    let (status, stats) = api.get("/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let user = &stats["namespaces"]["user"];
    assert_eq!(user["stats"]["hits"], 3);
    assert_eq!(user["stats"]["misses"], 1);
    assert_eq!(user["stats"]["hit_ratio"], 0.75);
    assert_eq!(user["stats"]["entries"], 1);
    assert_eq!(user["loads"]["loads"], 0);
    assert!(user["limits"]["max_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["total"]["hits"], 3);
    assert!(stats["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(stats["loads"]["errors"], 0);

    let (status, info) = api.get("/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["auth"], "admin and read tokens");
    assert_eq!(info["namespaces"], json!(["default", "session", "user"]));
    assert!(
        !info.to_string().contains(ADMIN),
        "the token must never show: {info}"
    );

    let (status, health) = api.call("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({ "status": "ok", "reasons": [] }));

    let (status, top) = api.get("/namespaces/user/top?n=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(top["namespace"], "user");
    assert!(top["keys"].is_array());

    let (status, alerts) = api.get("/alerts").await;
    assert_eq!((status, alerts), (StatusCode::OK, json!({ "alerts": [] })));
}

#[tokio::test]
async fn every_route_the_openapi_document_describes_is_served() {
    let admin = Admin::new(store()).with_warmer(warmer_of(&store(), "noop"));
    let api = Api::new(&admin).await;
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 11, "{:?}", paths.keys());
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let path = path.replace("{ns}", "user");
            let body = (method == "post").then(|| json!({}));
            let (_, answer) = api
                .call(&method.to_uppercase(), &path, Some(ADMIN), body)
                .await;
            assert_ne!(
                answer["detail"], "no such route (GET /openapi.json lists them)",
                "{method} {path} is described but not served"
            );
        }
    }
}

#[tokio::test]
async fn tokens_guard_every_route_but_health_and_metrics() {
    let admin = Admin::new(store());
    let api = Api::new(&admin).await;
    for path in ["/stats", "/info", "/alerts", "/warm", "/openapi.json"] {
        let (status, body) = api.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "unauthorized", "{path}");
        let (status, _) = api.call("GET", path, Some("wrong"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = api.call("GET", path, Some(READ), None).await;
        assert_eq!(status, StatusCode::OK, "{path} with the read-only token");
    }
    // A near miss of the right length is refused too.
    let near = format!("{}X", &ADMIN[..ADMIN.len() - 1]);
    let (status, _) = api.call("GET", "/stats", Some(&near), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (path, body) in [
        ("/clear", json!({})),
        ("/namespaces/user/clear", json!({})),
        ("/invalidate", json!({ "key": "k" })),
        ("/warm", json!({ "scope": "all" })),
    ] {
        let (status, answer) = api.call("POST", path, None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, answer2) = api.call("POST", path, Some(READ), Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer} {answer2}");
        assert_eq!(answer2["error"], "forbidden");
    }
    let response = reqwest::get(format!("{}/stats", api.base)).await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer",
        "401 says which scheme"
    );
    // A header that is not a bearer token is refused like a missing one.
    let response = api
        .http
        .get(format!("{}/stats", api.base))
        .basic_auth("admin", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for path in ["/health", "/metrics"] {
        let (status, _) = api.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path} needs no token");
    }
}

#[tokio::test]
async fn without_a_configured_token_the_api_is_open() {
    let store = Store::new();
    let admin = Admin::new(store);
    let api = Api::new(&admin).await;
    let (status, info) = api.call("GET", "/info", None, None).await;
    assert_eq!((status, &info["auth"]), (StatusCode::OK, &json!("open")));
    let (status, _) = api.call("POST", "/clear", None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_browser_page_from_another_site_cannot_change_anything() {
    // An open API (no token), as a developer's laptop runs it: any page the developer opens
    // can make the browser POST to localhost. The page's requests carry its origin.
    let (store, left) = two_namespaces();
    let api = Api::new(&Admin::new(store).with_tokens(None, None)).await;
    let host = api.base.trim_start_matches("http://").to_string();
    let forged: [(&str, String); 4] = [
        ("origin", "http://evil.example".to_string()),
        ("origin", "null".to_string()),
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-site", "same-site".to_string()),
    ];
    for (name, value) in forged {
        for path in ["/clear", "/namespaces/user/clear", "/invalidate", "/warm"] {
            let response = api
                .http
                .post(format!("{}{path}", api.base))
                .header(name, value.as_str())
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{name}: {value} {path}"
            );
            let answer: Value = response.json().await.unwrap();
            assert!(
                answer["detail"].as_str().unwrap().contains("another site"),
                "{answer}"
            );
        }
        assert_eq!(left(), (true, true), "{name}: {value} cleared something");
    }
    // Reading stays open to pages (they cannot read the answer across origins anyway).
    let response = api
        .http
        .get(format!("{}/stats", api.base))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The API's own origin, and clients that are not browsers, may change things.
    let own = api
        .http
        .post(format!("{}/namespaces/user/clear", api.base))
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(left(), (false, true));
    let (status, _) = api.call("POST", "/clear", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(left(), (false, false));
}

#[tokio::test]
async fn invalidate_by_key_prefix_pattern_tag_and_event() {
    let store = store();
    let users = store.namespace::<String>("user").unwrap();
    let sessions = store.namespace::<String>("session").unwrap();
    for i in 0..10 {
        let put = Put::new().tag(format!("team:{}", i % 2));
        users
            .insert_with(format!("user::{i}"), "u".into(), put)
            .unwrap();
        sessions.insert(format!("user::{i}"), "s".into()).unwrap();
    }
    let admin = Admin::new(store.clone());
    let api = Api::new(&admin).await;

    let (status, answer) = api
        .post(
            "/invalidate",
            json!({ "key": "user::0", "namespace": "user" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["dropped"].clone(), answer["exact"].clone()),
        (json!(1), json!(true))
    );
    assert!(
        sessions.contains_key("user::0"),
        "another namespace kept it"
    );

    // Without a namespace: every namespace.
    let (_, answer) = api.post("/invalidate", json!({ "key": "user::1" })).await;
    assert_eq!(answer["dropped"], 2);

    let (_, answer) = api
        .post(
            "/invalidate",
            json!({ "prefix": "user::2", "namespace": "session" }),
        )
        .await;
    assert_eq!(answer["dropped"], 1);
    assert!(users.contains_key("user::2"));

    let (_, answer) = api
        .post(
            "/invalidate",
            json!({ "pattern": "user::[34]", "namespace": "user" }),
        )
        .await;
    assert_eq!(answer["dropped"], 2);

    // Tags: user::5, 7, 9 are left in team 1.
    let (_, answer) = api.post("/invalidate", json!({ "tag": "team:1" })).await;
    assert_eq!(answer["exact"], false);
    assert!(!users.contains_key("user::5") && !users.contains_key("user::9"));
    assert!(users.contains_key("user::6"));

    let (status, answer) = api
        .post(
            "/invalidate",
            json!({ "event": "user.changed", "params": { "id": "6" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!users.contains_key("user::6"));
    assert!(users.contains_key("user::8"));

    // The event's rule names no namespace, so it dropped session's user::6 too: 10 less
    // user::1, user::2 and user::6.
    assert!(!sessions.contains_key("user::6"));
    let (status, answer) = api.post("/namespaces/session/clear", json!({})).await;
    assert_eq!(
        (status, answer["cleared"].clone()),
        (StatusCode::OK, json!(7))
    );
    assert!(sessions.is_empty());
    // user::2 and user::8 are left in user (plus, until the janitor purges them, the entries
    // of the invalidated tag, which a clear counts as held).
    let (_, answer) = api.post("/clear", json!({})).await;
    assert!(answer["cleared"].as_u64().unwrap() >= 2, "{answer}");
    assert!(!users.contains_key("user::2") && !users.contains_key("user::8"));
}

/// A store with one entry in each of `user` and `session`; says which are left.
fn two_namespaces() -> (Store, impl Fn() -> (bool, bool)) {
    let store = store();
    let users = store.namespace::<String>("user").unwrap();
    let sessions = store.namespace::<String>("session").unwrap();
    users.insert("u", "1".into()).unwrap();
    sessions.insert("s", "1".into()).unwrap();
    let left = move || (users.contains_key("u"), sessions.contains_key("s"));
    (store, left)
}

#[tokio::test]
async fn clear_reads_its_body_and_refuses_what_it_does_not_understand() {
    let (store, left) = two_namespaces();
    let api = Api::new(&Admin::new(store)).await;
    // Once, any body cleared everything: `{"namespace": "nope"}` included.
    let refused = [
        (json!({ "namespace": "nope" }), 404, "nope"),
        (json!({ "namespaces": "session" }), 400, "namespaces"),
        (json!({ "namespace": 7 }), 400, "namespace"),
        (json!(["session"]), 400, "expected a JSON object"),
    ];
    for (body, status, mentions) in refused {
        let (got, answer) = api.post("/clear", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(mentions),
            "{answer}"
        );
        assert_eq!(left(), (true, true), "{body} cleared something");
    }
    let send = |body: &'static str, content_type: &'static str| {
        let mut request = api
            .http
            .post(format!("{}/clear", api.base))
            .bearer_auth(ADMIN)
            .body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let malformed = send("{\"namespace\": ", "application/json").await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(left(), (true, true));

    // curl -d sends a form type; the body is JSON all the same.
    let one = send(
        r#"{"namespace": "session"}"#,
        "application/x-www-form-urlencoded",
    )
    .await
    .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let answer: Value = one.json().await.unwrap();
    assert_eq!(answer, json!({ "namespace": "session", "cleared": 1 }));
    assert_eq!(left(), (true, false));

    // No body at all, or {}: every namespace, as documented.
    let (store, left) = two_namespaces();
    let api = Api::new(&Admin::new(store)).await;
    let (status, answer) = api.call("POST", "/clear", Some(ADMIN), None).await;
    assert_eq!((status, &answer["cleared"]), (StatusCode::OK, &json!(2)));
    assert_eq!(left(), (false, false));
    let (store, left) = two_namespaces();
    let api = Api::new(&Admin::new(store)).await;
    let (status, _) = api.post("/clear", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(left(), (false, false));
}

#[tokio::test]
async fn a_server_beside_the_api_shows_in_stats_and_metrics() {
    let bare = Api::new(&Admin::new(store())).await;
    let (_, stats) = bare.get("/stats").await;
    assert!(
        stats.get("server").is_none(),
        "no server, no object: {stats}"
    );

    let figures = ServerStats {
        connected_clients: 2,
        connections_received: 9,
        rejected_connections: 1,
        commands_processed: 77,
        client_buffer_bytes: 512,
        client_buffer_limit: 1 << 20,
        evicted_clients: 0,
    };
    let admin = Admin::new(store()).with_server_stats(move || figures);
    let api = Api::new(&admin).await;
    let (status, stats) = api.get("/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats["server"],
        json!({
            "connected_clients": 2,
            "connections_received": 9,
            "rejected_connections": 1,
            "commands_processed": 77,
            "client_buffer_bytes": 512,
            "client_buffer_limit": 1 << 20,
            "evicted_clients": 0,
        })
    );
    let text = api.metrics().await;
    for line in [
        "strata_server_connected_clients 2",
        "strata_server_commands_processed_total 77",
        "strata_server_client_buffer_limit_bytes 1048576",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn bad_bodies_and_unknown_names_get_json_errors() {
    let admin = Admin::new(store());
    let api = Api::new(&admin).await;
    let cases = [
        (json!({}), 400, "none"),
        (json!({ "key": "a", "tag": "b" }), 400, "key, tag"),
        (json!({ "key": "a", "colour": "red" }), 400, "colour"),
        (json!({ "key": 7 }), 400, "key"),
        (json!({ "tag": "t", "params": { "a": "b" } }), 400, "params"),
        (
            json!({ "tag": "t", "namespace": "user" }),
            400,
            "store-wide",
        ),
        (json!({ "key": "k", "namespace": "nope" }), 404, "nope"),
        (json!({ "event": "nope" }), 404, "nope"),
        (json!({ "event": "user.changed" }), 400, "id"),
        // serde reads a struct from an array of its fields in order; no client means that.
        (json!(["user::1"]), 400, "expected a JSON object"),
    ];
    for (body, status, mentions) in cases {
        let (got, answer) = api.post("/invalidate", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(mentions), "{body}: {answer}");
        assert!(answer["error"].is_string());
    }
    // Not JSON at all.
    let response = api
        .http
        .post(format!("{}/invalidate", api.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "bad_request");

    for (method, path, body) in [
        ("POST", "/namespaces/nope/clear", Some(json!({}))),
        ("GET", "/namespaces/nope/top", None),
        ("POST", "/warm", Some(json!({ "scope": "nope" }))),
        ("GET", "/nowhere", None),
    ] {
        let (status, answer) = api.call(method, path, Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "not_found");
    }
    let (status, _) = api.get("/namespaces/user/top?n=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn warmer_of(store: &Store, job: &str) -> Warmer {
    let users = store.namespace::<String>("user").unwrap();
    let warmer = Warmer::new();
    warmer
        .add(
            WarmJob::new(job, users)
                .scope("reference")
                .batch_size(2)
                .keys(|| async { Ok::<_, std::io::Error>(["user::1", "user::2", "user::3"]) })
                .load(|batch: Vec<Key>| async move {
                    Ok::<_, std::io::Error>(batch.into_iter().map(|k| (k, "warm".to_string())))
                }),
        )
        .unwrap();
    warmer
}

#[tokio::test]
async fn warm_starts_a_scope_and_reports_its_jobs() {
    let store = store();
    let warmer = warmer_of(&store, "users");
    let mut events = warmer.subscribe();
    let admin = Admin::new(store.clone()).with_warmer(warmer);
    let api = Api::new(&admin).await;
    let (status, answer) = api.post("/warm", json!({ "scope": "reference" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["jobs"], json!(["users"]));
    // Wait for the run to finish (its event), not for time to pass.
    let finished = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(WarmEvent::Finished { loaded, .. }) = events.recv().await {
                return loaded;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(finished, 3);
    let (status, answer) = api.get("/warm").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["scopes"], json!(["all", "reference"]));
    let job = &answer["jobs"][0];
    assert_eq!(
        (job["name"].clone(), job["runs"].clone()),
        (json!("users"), json!(1))
    );
    assert_eq!(job["last_loaded"], 3);
    let users = store.namespace::<String>("user").unwrap();
    assert_eq!(users.get("user::3").as_deref(), Some("warm"));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let store = store();
    store.namespace::<String>("user").unwrap().get("missing");
    let admin = Admin::new(store);
    let api = Api::new(&admin).await;
    let response = reqwest::get(format!("{}/metrics", api.base)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("strata_misses_total{")
            && l.contains("namespace=\"user\"")
            && l.ends_with(" 1")),
        "{text}"
    );
}

#[tokio::test]
async fn alerts_fire_and_clear_and_show_in_health_and_metrics() {
    let toml = format!(
        "{CONFIG}\n[alerts]\nhit_ratio_below = 0.5\nmin_samples = 10\nfire_after = 2\nclear_after = 2\n"
    );
    let store = Store::from_config(&Config::from_sources(Some(&toml), []).unwrap()).unwrap();
    let users = store.namespace::<u64>("user").unwrap();
    users.insert("hot", 1).unwrap();
    let admin = Admin::new(store.clone());
    let api = Api::new(&admin).await;
    // Each evaluation is one interval; reads in between drive the hit ratio.
    let interval = |hits: usize, misses: usize| {
        for _ in 0..hits {
            users.get("hot");
        }
        for _ in 0..misses {
            users.get("cold");
        }
        admin.alerts().evaluate(&store)
    };
    interval(0, 0);
    assert!(interval(1, 9).is_empty(), "one bad interval is not enough");
    assert_eq!(interval(1, 9).len(), 1, "the second fires it");

    let (_, alerts) = api.get("/alerts").await;
    assert_eq!(alerts["alerts"][0]["kind"], "hit_ratio_low");
    assert_eq!(alerts["alerts"][0]["namespace"], "user");
    let (status, health) = api.call("GET", "/health", None, None).await;
    assert_eq!(
        (status, &health["status"]),
        (StatusCode::OK, &json!("degraded"))
    );
    assert!(health["reasons"][0].as_str().unwrap().contains("hit ratio"));
    let text = api.metrics().await;
    assert!(
        text.contains("strata_alert_active{alert=\"hit_ratio_low\",namespace=\"user\"} 1"),
        "{text}"
    );

    assert!(
        interval(10, 0).is_empty(),
        "one good interval does not clear it"
    );
    assert_eq!(interval(10, 0).len(), 1, "the second clears it");
    let (_, alerts) = api.get("/alerts").await;
    assert_eq!(alerts["alerts"], json!([]));
    let (_, health) = api.call("GET", "/health", None, None).await;
    assert_eq!(health["status"], "ok");
}

#[test]
fn the_exposition_parses_as_prometheus_text_with_exact_values() {
    let store = store();
    let users = store.namespace::<u64>("user").unwrap();
    users.insert("a", 1).unwrap();
    users.get("a");
    users.get("a");
    users.get("b");
    users
        .get_or_load_blocking("c", |_| Ok::<_, std::io::Error>(3))
        .unwrap();
    let _ = users.get_or_load_blocking("d", |_| Err::<u64, _>(std::io::Error::other("down")));
    let admin = Admin::new(store);
    let text = strata_admin::metrics::render(
        admin.store(),
        &[],
        Duration::from_secs(5),
        &strata_admin::metrics::Beside::default(),
    )
    .expect("complete");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |name: &str, ns: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("namespace") == Some(ns))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {name}{{namespace={ns}}} in\n{text}"))
    };
    use prometheus_parse::Value::{Counter, Gauge, Histogram, Untyped};
    let number = |v: prometheus_parse::Value| match v {
        Counter(x) | Gauge(x) | Untyped(x) => x,
        other => panic!("not a number: {other:?}"),
    };
    // The misses of the two loads' own lookups count too.
    assert_eq!(number(value("strata_hits_total", "user")), 2.0);
    assert_eq!(number(value("strata_misses_total", "user")), 3.0);
    assert_eq!(number(value("strata_entries", "user")), 2.0);
    assert_eq!(number(value("strata_loads_total", "user")), 2.0);
    assert_eq!(number(value("strata_load_errors_total", "user")), 1.0);
    assert_eq!(number(value("strata_hits_total", "session")), 0.0);
    match value("strata_load_duration_seconds", "user") {
        Histogram(buckets) => {
            let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
            assert_eq!(inf.count, 2.0, "cumulative: every load is under +Inf");
            let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
            assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(text.contains("strata_uptime_seconds 5"), "{text}");
}

/// An instance whose Redis is away: `degraded` while the tier is optional, `down` (503) when
/// `redis.required` is set; the tier's figures in `/stats` and `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_link_shows_in_health_stats_and_metrics() {
    // A port nobody listens on: Redis is away.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (required, code, status) in [
        (false, StatusCode::OK, "degraded"),
        (true, StatusCode::SERVICE_UNAVAILABLE, "down"),
    ] {
        let toml = format!(
            "[redis]\nurl = \"redis://127.0.0.1:{port}\"\nrequired = {required}\n[namespaces.user]\nttl = \"1m\"\n"
        );
        let config = Config::from_sources(Some(&toml), []).unwrap();
        let (store, tier) = strata_redis::Tier::start(Store::builder(config)).unwrap();
        let admin = Admin::new(store).with_tier(std::sync::Arc::new(tier));
        let api = Api::new(&admin).await;
        let (got, health) = api.call("GET", "/health", None, None).await;
        assert_eq!((got, health["status"].as_str()), (code, Some(status)));
        assert!(health["reasons"][0]
            .as_str()
            .unwrap()
            .contains("Redis link is down"));
        let (_, stats) = api.call("GET", "/stats", None, None).await;
        assert_eq!(stats["redis"]["link_up"], json!(false));
        let (_, metrics) = api.call("GET", "/metrics", None, None).await;
        let metrics = metrics.as_str().unwrap().to_owned();
        assert!(metrics.contains("\nstrata_redis_link_up 0\n"), "{metrics}");
        assert!(metrics.contains("strata_redis_queue_depth"));

        // Down for `fire_after` evaluations (3 by default): the instance-wide alert fires.
        let transitions: Vec<_> = (0..3)
            .flat_map(|_| admin.alerts().evaluate(admin.store()))
            .collect();
        assert_eq!(transitions.len(), 1, "{transitions:?}");
        let (_, alerts) = api.call("GET", "/alerts", None, None).await;
        assert_eq!(alerts["alerts"][0]["kind"], "redis_link_down", "{alerts}");
        assert_eq!(alerts["alerts"][0]["namespace"], "*");
        assert!(alerts["alerts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("link to Redis"));
    }
}
