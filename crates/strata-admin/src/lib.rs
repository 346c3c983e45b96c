//! The strata admin API: an axum [`Router`] that any Rust service mounts next to its own
//! routes, and that `strata serve` runs on its HTTP address. JSON in and out.
//!
//! | route | what | token |
//! |---|---|---|
//! | `GET /health` | `ok`, `degraded` or `down`, with reasons (503 when down) | none |
//! | `GET /metrics` | Prometheus text exposition, labelled by namespace | none |
//! | `GET /stats` | total and per namespace: hits, misses, ratio, entries, bytes, limits, evictions, expirations, loads, load errors, stale served, uptime | read |
//! | `GET /info` | the configuration in effect (secrets hidden) and versions | read |
//! | `GET /alerts` | active alerts | read |
//! | `GET /namespaces/{ns}/top?n=10` | the hottest keys | read |
//! | `GET /warm` | every warming job's status | read |
//! | `GET /openapi.json` | an OpenAPI 3.1 description of all of it | read |
//! | `POST /clear` | empty every namespace, or the one `{"namespace": ...}` names | admin |
//! | `POST /namespaces/{ns}/clear` | empty one | admin |
//! | `POST /invalidate` | exactly one of `key`, `prefix`, `pattern`, `tag`, `event` (+ `params`), optionally `namespace` | admin |
//! | `POST /warm` | start the warming jobs of `{"scope": ...}` | admin |
//!
//! **Auth.** The admin token (`admin_token` in the configuration, or `STRATA_ADMIN_TOKEN`)
//! opens every route; a read-only token (`admin_read_token`) opens the read routes, and gets
//! 403 on the others. Tokens go in `Authorization: Bearer <token>` and are compared in
//! constant time. A missing or wrong token gets 401. With no token configured at all the
//! API is open, and says so in a warning when built: bind it to a private address then.
//! Whatever the tokens, a request a browser makes for another site's page (an `Origin` that
//! is not the API's own, `Sec-Fetch-Site: cross-site` or `same-site`) gets 403 on every route
//! that changes something, so a web page cannot clear a cache through a developer's browser.
//!
//! **Errors** are JSON, `{"error": "...", "detail": "..."}`: 400 for a malformed or
//! ambiguous body, 401 and 403 for tokens, 404 for an unknown namespace, event or scope,
//! 408 for a body slower than `body_timeout`, 413 for one larger than `max_body`.
//!
//! **Limits.** The router reads every request body whole before a handler runs, at most
//! `max_body` bytes within `body_timeout` (`[admin]` in the configuration, see
//! [`AdminConfig`](strata::config::AdminConfig)), wherever it is mounted. [`serve`] runs it on
//! a listener with the rest of `[admin]`: a connection limit, and idle and header timeouts,
//! so that clients of the admin port cannot take the descriptors and memory the rest of the
//! process needs. `axum::serve` has neither; a service that mounts the router on its own
//! server should bound its connections itself.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use strata::Store;
//! use strata_admin::Admin;
//!
//! let store = Store::new();
//! let app = Admin::new(store.clone()).router(); // or merge it into your own Router
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = &store.config().admin;
//! strata_admin::serve(listener, app, limits, std::future::pending()).await;
//! # Ok(()) }
//! ```

pub mod accept;
pub mod alerts;
mod auth;
mod body;
mod connection;
mod error;
mod listener;
pub mod metrics;
mod openapi;
mod origin;
pub mod process;
mod routes;
mod server_stats;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use strata::config::Secret;
use strata::warm::Warmer;
use strata::Store;

pub use alerts::{Alert, AlertKind, Alerts};
pub use error::ApiError;
pub use listener::serve;
pub use server_stats::{ServerStats, ServerStatsSource};
use strata_redis::{LinkHealth, Tier};

/// What the admin API serves: a store, its warming jobs, its alerts and its tokens.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<AdminInner>,
}

#[derive(Clone)]
struct AdminInner {
    store: Store,
    warmer: Warmer,
    alerts: Alerts,
    tokens: auth::Tokens,
    started: Instant,
    /// The figures of the server beside the API, if one said how to take them.
    server: Option<Arc<ServerStatsSource>>,
    /// The store's shared tier, if it has one.
    tier: Option<Arc<Tier>>,
    /// How much of a request body is read, and how long for.
    body: body::BodyLimits,
}

impl Admin {
    /// The admin API over `store`, with the tokens, body limits (`[admin]`) and alert
    /// thresholds of its configuration, and no warming jobs.
    pub fn new(store: Store) -> Self {
        let config = store.config();
        let tokens = auth::Tokens {
            admin: config.admin_token.clone(),
            read: config.admin_read_token.clone(),
        };
        let body = body::BodyLimits {
            max: usize::try_from(config.admin.max_body).unwrap_or(usize::MAX),
            timeout: config.admin.body_timeout,
        };
        let alerts = Alerts::new(config.alerts.clone());
        // Tokens are `Secret`s, which print as ***.
        tracing::info!(?config, "admin API configured");
        Self {
            inner: Arc::new(AdminInner {
                store,
                warmer: Warmer::new(),
                alerts,
                tokens,
                started: Instant::now(),
                server: None,
                tier: None,
                body,
            }),
        }
    }

    /// This admin with one setting changed.
    fn with(self, change: impl FnOnce(&mut AdminInner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Serves `warmer`'s jobs at `/warm`.
    pub fn with_warmer(self, warmer: Warmer) -> Self {
        self.with(|inner| inner.warmer = warmer)
    }

    /// Uses `tokens` instead of the configuration's: the admin token, and a read-only one.
    pub fn with_tokens(self, admin: Option<Secret>, read: Option<Secret>) -> Self {
        self.with(|inner| inner.tokens = auth::Tokens { admin, read })
    }

    /// Reports the figures `source` takes of the server beside the API (its clients,
    /// commands and client buffers) in `/metrics` and `/stats`.
    pub fn with_server_stats(
        self,
        source: impl Fn() -> ServerStats + Send + Sync + 'static,
    ) -> Self {
        self.with(|inner| inner.server = Some(Arc::new(source)))
    }

    /// The server's figures now, if a source was given (see
    /// [`with_server_stats`](Self::with_server_stats)).
    pub fn server_stats(&self) -> Option<ServerStats> {
        self.inner.server.as_ref().map(|source| source())
    }

    /// Reports the store's shared tier: its link in `/health` (`down` when Redis is away and
    /// `redis.required` is set, `degraded` otherwise) and in the `redis_link_down` alert, its
    /// figures in `/stats` and `/metrics`.
    pub fn with_tier(self, tier: Arc<Tier>) -> Self {
        let watched = Arc::clone(&tier);
        self.inner.alerts.watch_link(move || {
            (watched.health() != LinkHealth::Up)
                .then(|| watched.link_error().unwrap_or_else(|| "no answer".into()))
        });
        self.with(|inner| inner.tier = Some(tier))
    }

    /// The shared tier, if one was given.
    pub fn tier(&self) -> Option<&Tier> {
        self.inner.tier.as_deref()
    }

    /// What runs beside the store, with its figures now.
    pub(crate) fn beside(&self) -> metrics::Beside {
        metrics::Beside {
            server: self.server_stats(),
            tier: self.tier().map(Tier::stats),
        }
    }

    /// The store served.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The alerts evaluated for `/alerts`, `/health` and `/metrics`. Nothing evaluates them
    /// until [`Alerts::spawn`] (or [`Admin::spawn_alerts`]) runs.
    pub fn alerts(&self) -> &Alerts {
        &self.inner.alerts
    }

    /// Starts evaluating the alerts every `alerts.every` on the current tokio runtime.
    pub fn spawn_alerts(&self) -> tokio::task::JoinHandle<()> {
        self.inner.alerts.spawn(self.inner.store.clone())
    }

    /// The router: mount it at the root, or nest it (`Router::nest("/admin", ...)`).
    pub fn router(&self) -> Router {
        let tokens = &self.inner.tokens;
        if tokens.admin.is_none() && tokens.read.is_none() {
            tracing::warn!(
                "the admin API has no token (set admin_token or STRATA_ADMIN_TOKEN): \
                 anyone who can reach it can clear the cache"
            );
        }
        routes::router(self.clone())
    }
}
