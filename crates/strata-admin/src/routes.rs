//! The routes, one handler each. Every handler answers JSON (but `/metrics`), and every
//! error is an [`ApiError`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata::store::{Invalidation, StoreStats};
use strata::Key;
use strata_redis::{LinkHealth, Tier, TierStats};

use crate::auth::{self, Who};
use crate::body::{self, Object};
use crate::error::ApiError;
use crate::server_stats::ServerStats;
use crate::{metrics, openapi, origin, Admin};

/// The routes, behind the token check and then the body bounds (so a request without a
/// valid token is refused before its body is read).
pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .route("/stats", get(stats))
        .route("/info", get(info))
        .route("/alerts", get(alerts))
        .route("/namespaces/{ns}/top", get(top))
        .route("/namespaces/{ns}/clear", post(clear_namespace))
        .route("/clear", post(clear))
        .route("/invalidate", post(invalidate))
        .route("/warm", get(warm_status).post(warm))
        .route("/openapi.json", get(openapi_json))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(
            admin.inner.body,
            body::read_whole,
        ))
        // The body is read whole within max_body already: no second, different limit.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(admin.clone(), auth::require))
        // Outermost: a forged browser request is refused before anything else looks at it.
        .layer(middleware::from_fn(origin::refuse_cross_site_changes))
        .with_state(admin)
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route (GET /openapi.json lists them)")
}

/// `GET /health`.
async fn health(State(admin): State<Admin>) -> Response {
    let mut reasons: Vec<String> = admin
        .alerts()
        .active()
        .into_iter()
        .map(|a| a.message)
        .collect();
    // `down` is for an instance that must not take traffic: one whose Redis link is down
    // while the configuration says the shared tier is required.
    let link = admin.tier().map(Tier::health);
    let why = admin
        .tier()
        .and_then(Tier::link_error)
        .map_or_else(String::new, |e| format!(" ({e})"));
    match link {
        Some(LinkHealth::Down) => reasons.push(format!(
            "the Redis link is down and redis.required is set{why}"
        )),
        Some(LinkHealth::Degraded) => reasons.push(format!(
            "the Redis link is down: serving from this instance{why}"
        )),
        _ => {}
    }
    let (code, status) = match (link, reasons.is_empty()) {
        (Some(LinkHealth::Down), _) => (StatusCode::SERVICE_UNAVAILABLE, "down"),
        (_, true) => (StatusCode::OK, "ok"),
        (_, false) => (StatusCode::OK, "degraded"),
    };
    let body = json!({ "status": status, "reasons": reasons });
    (code, Json(body)).into_response()
}

/// `GET /metrics`: the whole exposition, or a 500 without any of it.
async fn prometheus(State(admin): State<Admin>) -> Response {
    let rendered = metrics::render(
        admin.store(),
        &admin.alerts().active(),
        admin.inner.started.elapsed(),
        &admin.beside(),
    );
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the metrics could not be encoded");
            ApiError::internal("the metrics could not be encoded").into_response()
        }
    }
}

#[derive(Serialize)]
struct StatsBody {
    uptime_seconds: f64,
    #[serde(flatten)]
    store: StoreStats,
    /// The server's figures, when the API runs beside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerStats>,
    /// The shared tier's figures, when the store has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<TierStats>,
}

/// `GET /stats`.
async fn stats(State(admin): State<Admin>) -> Json<StatsBody> {
    Json(StatsBody {
        uptime_seconds: admin.inner.started.elapsed().as_secs_f64(),
        store: admin.store().stats(),
        server: admin.server_stats(),
        redis: admin.tier().map(Tier::stats),
    })
}

/// `GET /info`.
async fn info(State(admin): State<Admin>) -> Json<Value> {
    let store = admin.store();
    let tokens = &admin.inner.tokens;
    let auth = match (&tokens.admin, &tokens.read) {
        (None, None) => "open",
        (Some(_), None) => "admin token",
        (None, Some(_)) => "read token",
        (Some(_), Some(_)) => "admin and read tokens",
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "namespaces": store.namespace_names().collect::<Vec<_>>(),
        "auth": auth,
        "config": store.config(),
    }))
}

/// `GET /alerts`.
async fn alerts(State(admin): State<Admin>) -> Json<Value> {
    Json(json!({ "alerts": admin.alerts().active() }))
}

#[derive(Deserialize)]
struct TopQuery {
    n: Option<usize>,
}

/// `GET /namespaces/{ns}/top?n=10`.
async fn top(
    State(admin): State<Admin>,
    Path(ns): Path<String>,
    query: Result<Query<TopQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let n = query.n.unwrap_or(10);
    let keys = admin.store().hot_keys(&ns, n)?;
    Ok(Json(json!({ "namespace": ns, "keys": keys })))
}

/// The body of `POST /clear`: absent, `{}`, or the one namespace to clear.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    namespace: Option<String>,
}

/// `POST /clear`: every namespace without a body (or with `{}`), the one a body names
/// otherwise. The body is read as JSON whatever its `Content-Type` says (`curl -d` says a
/// form), since reading it is what keeps a named namespace from clearing them all.
async fn clear(
    State(admin): State<Admin>,
    Extension(who): Extension<Who>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ClearBody { namespace } = if body.is_empty() {
        ClearBody::default()
    } else {
        let Json(Object(body)) = Json::from_bytes(&body)
            .map_err(|e: JsonRejection| ApiError::bad_request(e.body_text()))?;
        body
    };
    if let Some(ns) = namespace {
        return clear_one(&admin, who, ns);
    }
    let cleared = admin.store().clear();
    tracing::info!(who = who.0, cleared, "admin: cleared every namespace");
    Ok(Json(json!({ "cleared": cleared })))
}

/// `POST /namespaces/{ns}/clear`.
async fn clear_namespace(
    State(admin): State<Admin>,
    Extension(who): Extension<Who>,
    Path(ns): Path<String>,
) -> Result<Json<Value>, ApiError> {
    clear_one(&admin, who, ns)
}

/// Clears namespace `ns`; 404 when there is none.
fn clear_one(admin: &Admin, who: Who, ns: String) -> Result<Json<Value>, ApiError> {
    let cleared = admin.store().clear_namespace(&ns)?;
    tracing::info!(who = who.0, namespace = %ns, cleared, "admin: cleared a namespace");
    Ok(Json(json!({ "namespace": ns, "cleared": cleared })))
}

/// The body of `POST /invalidate`: exactly one of the five targets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateBody {
    key: Option<String>,
    prefix: Option<String>,
    pattern: Option<String>,
    tag: Option<String>,
    event: Option<String>,
    params: Option<BTreeMap<String, String>>,
    namespace: Option<String>,
}

impl InvalidateBody {
    fn into_invalidation(self) -> Result<Invalidation, ApiError> {
        let given = [
            ("key", self.key.is_some()),
            ("prefix", self.prefix.is_some()),
            ("pattern", self.pattern.is_some()),
            ("tag", self.tag.is_some()),
            ("event", self.event.is_some()),
        ];
        let named: Vec<&str> = given.iter().filter(|g| g.1).map(|g| g.0).collect();
        if named.len() != 1 {
            return Err(ApiError::bad_request(format!(
                "name exactly one of key, prefix, pattern, tag, event (got {})",
                if named.is_empty() {
                    "none".to_string()
                } else {
                    named.join(", ")
                }
            )));
        }
        if self.params.is_some() && self.event.is_none() {
            return Err(ApiError::bad_request("params go with an event"));
        }
        let namespace = self.namespace;
        let store_wide = |what: &str| {
            ApiError::bad_request(format!(
                "a {what} applies store-wide (its rules name namespaces): drop \"namespace\""
            ))
        };
        Ok(
            match (self.key, self.prefix, self.pattern, self.tag, self.event) {
                (Some(key), ..) => Invalidation::Key {
                    namespace,
                    key: Key::from(key),
                },
                (_, Some(prefix), ..) => Invalidation::Prefix {
                    namespace,
                    prefix: Key::from(prefix),
                },
                (_, _, Some(pattern), ..) => Invalidation::Pattern {
                    namespace,
                    pattern: Key::from(pattern),
                },
                (_, _, _, Some(_), _) if namespace.is_some() => return Err(store_wide("tag")),
                (_, _, _, Some(tag), _) => Invalidation::Tag { tag },
                (.., Some(_)) if namespace.is_some() => return Err(store_wide("event")),
                (.., Some(event)) => Invalidation::Event {
                    event,
                    params: self.params.unwrap_or_default(),
                },
                // Exactly one was checked to be given.
                (None, None, None, None, None) => unreachable!("one target was given"),
            },
        )
    }
}

/// `POST /invalidate`.
async fn invalidate(
    State(admin): State<Admin>,
    Extension(who): Extension<Who>,
    body: Result<Json<Object<InvalidateBody>>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(Object(body)) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let invalidation = body.into_invalidation()?;
    let dropped = admin.store().invalidate(&invalidation)?;
    // Keys, prefixes and patterns count exactly; a tag's count is an upper bound, and an
    // event's sums its parts.
    let exact = matches!(
        invalidation,
        Invalidation::Key { .. } | Invalidation::Prefix { .. } | Invalidation::Pattern { .. }
    );
    tracing::info!(who = who.0, ?invalidation, dropped, "admin: invalidated");
    Ok(Json(json!({
        "dropped": dropped,
        "exact": exact,
        "invalidation": invalidation,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmBody {
    scope: String,
}

/// `POST /warm`: starts the scope's jobs in the background and answers at once (202);
/// `GET /warm` follows them.
async fn warm(
    State(admin): State<Admin>,
    Extension(who): Extension<Who>,
    body: Result<Json<Object<WarmBody>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(Object(WarmBody { scope })) =
        body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let warmer = admin.inner.warmer.clone();
    if !warmer.scopes().contains(&scope) {
        return Err(ApiError::not_found(format!(
            "no warming job has scope {scope:?}"
        )));
    }
    let jobs: Vec<String> = warmer
        .status()
        .into_iter()
        .filter(|job| scope == strata::warm::ALL || job.scopes.contains(&scope))
        .map(|job| job.name)
        .collect();
    tracing::info!(who = who.0, %scope, "admin: warming started");
    let run = warmer.run(&scope);
    tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::warn!(error = %e, "warming failed");
        }
    });
    let body = json!({ "scope": scope, "jobs": jobs });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /warm`.
async fn warm_status(State(admin): State<Admin>) -> Json<Value> {
    let warmer = &admin.inner.warmer;
    Json(json!({ "scopes": warmer.scopes(), "jobs": warmer.status() }))
}

/// `GET /openapi.json`.
async fn openapi_json() -> Json<Value> {
    Json(openapi::document())
}
