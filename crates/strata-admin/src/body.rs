//! Request bodies, read whole before any handler runs: at most `max_body` bytes (413 past
//! it), arriving within `body_timeout` (408 past it), both from `[admin]`.
//!
//! One middleware for every route, so no route can forget the bound and every refusal is an
//! [`ApiError`] in the API's JSON shape. A declared `Content-Length` over the limit is refused
//! before a byte of the body is read (a 100 MB upload costs nothing); a body sent without one
//! is counted as it comes (by `http_body_util::Limited`). Handlers then extract from the bytes
//! held, so axum's own body limit (2 MB by default) is turned off in the router: there is one
//! limit, the configured one.
//!
//! Memory: each connection holds at most one body of `max_body` bytes, so the admin port's
//! bodies take at most `max_connections` × `max_body`.
//!
//! Bodies are JSON objects, read through [`Object`]: serde also reads a struct from an array
//! of its fields in order (`["k"]` as `{"key": "k"}`), which no client means.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::error::ApiError;

/// The bounds on a request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// The most bytes a body may have.
    pub(crate) max: usize,
    /// How long the body may take to arrive, from the end of the head.
    pub(crate) timeout: Duration,
}

/// The middleware: reads the body within `limits`, then runs the route with it.
pub(crate) async fn read_whole(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max as u64) {
        return too_large(limits).into_response();
    }
    let read = tokio::time::timeout(limits.timeout, Limited::new(body, limits.max).collect());
    let bytes = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(limits).into_response();
        }
        Ok(Err(e)) => {
            return ApiError::bad_request(format!("the body could not be read: {e}"))
                .into_response();
        }
        Err(_) => {
            return ApiError::request_timeout(format!(
                "the body did not arrive within {:?} (admin.body_timeout)",
                limits.timeout
            ))
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(limits: BodyLimits) -> ApiError {
    ApiError::payload_too_large(format!(
        "the body is larger than {} bytes (admin.max_body)",
        limits.max
    ))
}

/// A `T` read from a JSON object only: anything else, an array included, is "invalid type:
/// ..., expected a JSON object". Field errors keep their path (`key: invalid type ...`).
#[derive(Debug)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(Fields(PhantomData))
            .map(Object)
    }
}
