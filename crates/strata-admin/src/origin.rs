//! Requests a browser makes for another site's page may not change anything.
//!
//! Any web page can make a browser send a `POST` to `http://localhost:8080/clear`: the page
//! cannot read the answer, but the cache is cleared all the same (cross-site request
//! forgery). With a token configured the request lacks it and is refused; an API left open
//! (no token) would obey. So every request that can change something (any method but `GET`,
//! `HEAD` and `OPTIONS`) is refused with 403 when the browser says it comes from elsewhere:
//! an `Origin` header naming another origin than the request's own `Host`, or
//! `Sec-Fetch-Site: cross-site` or `same-site` (another port of `localhost`, say, where a
//! development server runs a page nobody vetted). Clients that are not browsers (the CLI,
//! curl, a service, Prometheus) send neither header and are not affected; a page served by
//! the API's own origin is.
//!
//! What this does not stop is DNS rebinding, where the page's own name is made to resolve to
//! 127.0.0.1 so that its requests are same-origin to the browser: only a token does (see
//! docs/design.md, "Threat model").

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The middleware.
pub(crate) async fn refuse_cross_site_changes(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    match cross_site(&request) {
        Some(why) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a browser request from another site cannot change anything here ({why}); \
                 call the API from a client that is not a browser page"
            ),
        )
        .into_response(),
        None => next.run(request).await,
    }
}

/// Why `request` comes from another site, if a browser said it does.
fn cross_site(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        if site == "cross-site" || site == "same-site" {
            return Some(format!(
                "Sec-Fetch-Site: {}",
                String::from_utf8_lossy(site.as_bytes())
            ));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("(not text)");
    // `Origin: null` (a sandboxed frame, a file) is another origin too.
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if host.is_some_and(|host| host.eq_ignore_ascii_case(authority)) {
        return None;
    }
    Some(format!("Origin: {origin}"))
}
