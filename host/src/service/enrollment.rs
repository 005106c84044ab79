//! The enrollment protocols' HTTP endpoints, beside the REST API (they speak
//! their own protocols, so they are not in the OpenAPI document):
//!
//! - `POST /.well-known/cmp/p/{procedure}`: CMP over HTTP (RFC 6712/9811),
//!   `application/pkixcmp` both ways.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::ApiError;
use super::routes::blocking;
use crate::enroll::cmp::message::MAX_REQUEST_BYTES;
use crate::registry::unix_now;

/// CMP's media type.
const PKIXCMP: &str = "application/pkixcmp";

/// The enrollment routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/cmp/p/{procedure}", axum::routing::post(cmp))
}

async fn cmp(
    State(state): State<AppState>,
    Path(procedure): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !media.starts_with(PKIXCMP) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("CMP messages are {PKIXCMP}, not {media:?}"),
        ));
    }
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::malformed(format!("a CMP message of at most {MAX_REQUEST_BYTES} bytes")));
    }
    let server = state.cmp()?;
    let answer = blocking(move || Ok(server.handle(&procedure, &body, unix_now()))).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(PKIXCMP))], answer).into_response())
}
