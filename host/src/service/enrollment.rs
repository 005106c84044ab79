//! The enrollment protocols' HTTP endpoints, beside the REST API (they speak
//! their own protocols, so they are not in the OpenAPI document):
//!
//! - `POST /.well-known/cmp/p/{procedure}`: CMP over HTTP (RFC 6712/9811),
//!   `application/pkixcmp` both ways;
//! - `GET|POST /scep/{procedure}?operation=…`: SCEP (RFC 8894): GetCACaps,
//!   GetCACert, PKIOperation (GET with a base64 `message`, or POST);
//! - `GET /ca/crl`: the CA's CRL (RFC 5280, DER, `application/pkix-crl`),
//!   the URL issued certificates name in their CRL Distribution Points
//!   (open to anyone, as relying parties must fetch it);
//! - `GET /ca/cert`: the CA certificate (DER, `application/pkix-cert`).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::AppState;
use super::problem::ApiError;
use super::routes::blocking;
use crate::enroll::cmp::message::MAX_REQUEST_BYTES;
use crate::enroll::scep;
use crate::registry::unix_now;

/// CMP's media type.
const PKIXCMP: &str = "application/pkixcmp";

/// The enrollment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/cmp/p/{procedure}", axum::routing::post(cmp))
        .route("/scep/{procedure}", axum::routing::get(scep_get).post(scep_post))
        .route("/ca/crl", axum::routing::get(crl))
        .route("/ca/cert", axum::routing::get(ca_cert))
}

/// The path of the CRL below a service's base URL.
pub const CRL_PATH: &str = "/ca/crl";

async fn crl(State(state): State<AppState>) -> Result<Response, ApiError> {
    let enrollment = state.enrollment()?;
    let registry = state.registry().clone();
    let der = blocking(move || {
        registry.crl(&enrollment.ca, unix_now()).map_err(|e| ApiError::unavailable(format!("the CRL: {e}")))
    })
    .await?;
    let mut response = content("application/pkix-crl", der);
    // Relying parties may cache it for a while, never past a refresh.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    Ok(response)
}

async fn ca_cert(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(content("application/pkix-cert", state.enrollment()?.ca.certificate().der.clone()))
}

fn content(media: &'static str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(media))], body).into_response()
}

async fn cmp(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(procedure): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.failures().check(peer.ip()).map_err(ApiError::too_many_failures)?;
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
    let server = state.enrollment()?.cmp;
    let answer = blocking(move || Ok(server.handle(&procedure, &body, unix_now()))).await?;
    if crate::enroll::cmp::message::is_refusal(&answer) {
        state.failures().failed(peer.ip());
    }
    Ok(content(PKIXCMP, answer))
}

async fn scep_get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(procedure): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let operation = query.get("operation").map(String::as_str).unwrap_or("");
    match operation {
        "GetCACaps" => Ok(content("text/plain", scep::CAPABILITIES.as_bytes().to_vec())),
        "GetCACert" => Ok(content("application/x-x509-ca-ra-cert", state.enrollment()?.scep.ca_certs())),
        "PKIOperation" => {
            let message = query.get("message").ok_or_else(|| ApiError::malformed("PKIOperation without a message"))?;
            // Line breaks and padding are optional in what clients send.
            let cleaned: String = message.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(cleaned.trim_end_matches('='))
                .map_err(|e| ApiError::malformed(format!("the message is not base64: {e}")))?;
            pki_operation(state, peer, procedure, bytes.into()).await
        }
        other => Err(ApiError::malformed(format!(
            "SCEP operation {other:?} is not served (GetCACaps, GetCACert, PKIOperation are)"
        ))),
    }
}

async fn scep_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(procedure): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    match query.get("operation").map(String::as_str) {
        Some("PKIOperation") => pki_operation(state, peer, procedure, body).await,
        other => Err(ApiError::malformed(format!("POST is for PKIOperation, not {other:?}"))),
    }
}

async fn pki_operation(
    state: AppState,
    peer: SocketAddr,
    procedure: String,
    message: Bytes,
) -> Result<Response, ApiError> {
    if message.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::malformed(format!("a SCEP message of at most {MAX_REQUEST_BYTES} bytes")));
    }
    state.failures().check(peer.ip()).map_err(ApiError::too_many_failures)?;
    let server = state.enrollment()?.scep;
    let (answer, refused) = blocking(move || {
        server.operation_outcome(&procedure, &message, unix_now()).map_err(|e| ApiError::malformed(e.to_string()))
    })
    .await?;
    if refused {
        state.failures().failed(peer.ip());
    }
    Ok(content("application/x-pki-message", answer))
}
