//! Bearer tokens: the admin token opens every route, the read-only token the read routes.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata::config::Secret;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::Admin;

#[derive(Clone)]
pub(crate) struct Tokens {
    pub(crate) admin: Option<Secret>,
    pub(crate) read: Option<Secret>,
}

/// Who made a request, as far as the API knows: which token it presented. Handlers of
/// changes log it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who(pub(crate) &'static str);

/// What a request's token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    Read,
    Admin,
}

impl Tokens {
    fn open(&self) -> bool {
        self.admin.is_none() && self.read.is_none()
    }

    /// The grant of `presented`, comparing against every configured token in constant time
    /// (for equal lengths; a token's length is not a secret worth hiding).
    fn grant(&self, presented: &[u8]) -> Option<Grant> {
        let matches = |token: &Option<Secret>| {
            token
                .as_ref()
                .is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(presented)))
        };
        // Both are compared whatever the first gave, so timing does not say which matched.
        let (admin, read) = (matches(&self.admin), matches(&self.read));
        if admin {
            Some(Grant::Admin)
        } else if read {
            Some(Grant::Read)
        } else {
            None
        }
    }
}

/// The middleware: `/health` and `/metrics` are open; GET routes need a read or admin
/// token, the others the admin token.
pub(crate) async fn require(
    State(admin): State<Admin>,
    mut request: Request,
    next: Next,
) -> Response {
    let tokens = &admin.inner.tokens;
    if tokens.open() {
        request
            .extensions_mut()
            .insert(Who("anyone (no token is configured)"));
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path.ends_with("/health") || path.ends_with("/metrics") {
        return next.run(request).await;
    }
    let needed = if request.method() == Method::GET || request.method() == Method::HEAD {
        Grant::Read
    } else {
        Grant::Admin
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let Some(presented) = presented else {
        return unauthorized("missing `Authorization: Bearer <token>`");
    };
    match tokens.grant(presented) {
        None => unauthorized("the token is not valid"),
        Some(grant) if grant < needed => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the read-only token cannot change anything; use the admin token",
        )
        .into_response(),
        Some(grant) => {
            let who = match grant {
                Grant::Admin => "the admin token",
                Grant::Read => "the read-only token",
            };
            request.extensions_mut().insert(Who(who));
            next.run(request).await
        }
    }
}

fn unauthorized(detail: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}
