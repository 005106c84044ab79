//! The enrollment protocols' HTTP endpoints, beside the REST API (they speak
//! their own protocols, so they are not in the OpenAPI document):
//!
//! - `POST /.well-known/cmp/p/{procedure}`: CMP over HTTP (RFC 6712/9811),
//!   `application/pkixcmp` both ways;
//! - `GET|POST /scep/{procedure}?operation=…`: SCEP (RFC 8894): GetCACaps,
//!   GetCACert, PKIOperation (GET with a base64 `message`, or POST);
//! - `/.well-known/est/{procedure}/…`: EST (RFC 7030, RFC 8951), over TLS
//!   only: `GET cacerts`, `GET csrattrs`, `POST simpleenroll` (HTTP Basic
//!   or the CSR's challengePassword), `POST simplereenroll` (the device's
//!   TLS client certificate); base64 bodies both ways;
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
        .route("/.well-known/est/{procedure}/cacerts", axum::routing::get(est_cacerts))
        .route("/.well-known/est/{procedure}/csrattrs", axum::routing::get(est_csrattrs))
        .route("/.well-known/est/{procedure}/simpleenroll", axum::routing::post(est_simpleenroll))
        .route("/.well-known/est/{procedure}/simplereenroll", axum::routing::post(est_simplereenroll))
        // Without a label: the procedure `prereg ca set --est-procedure` names.
        .route("/.well-known/est/cacerts", axum::routing::get(est_cacerts))
        .route("/.well-known/est/csrattrs", axum::routing::get(est_csrattrs))
        .route("/.well-known/est/simpleenroll", axum::routing::post(est_simpleenroll))
        .route("/.well-known/est/simplereenroll", axum::routing::post(est_simplereenroll))
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

/// An enrollment protocol's request body must be of `media` (`what` names
/// it in the refusal) and at most [`MAX_REQUEST_BYTES`].
fn request_body(headers: &HeaderMap, body: &[u8], media: &str, what: &str) -> Result<(), ApiError> {
    let sent = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !sent.trim().to_ascii_lowercase().starts_with(media) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("{what} is {media}, not {sent:?}"),
        ));
    }
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::malformed(format!("{what} of at most {MAX_REQUEST_BYTES} bytes")));
    }
    Ok(())
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
    request_body(&headers, &body, PKIXCMP, "a CMP message")?;
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

/// Where EST's paths begin.
pub const EST_PREFIX: &str = "/.well-known/est/";

/// The realm of EST's Basic challenge.
const EST_REALM: &str = "Basic realm=\"prereg EST\", charset=\"UTF-8\"";

/// An EST body: base64 (RFC 8951), on one line (strongSwan's decoder takes
/// no line breaks).
fn est_body(media: &'static str, der: &[u8]) -> Response {
    let wrapped = base64::engine::general_purpose::STANDARD.encode(der);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media)),
            (header::HeaderName::from_static("content-transfer-encoding"), HeaderValue::from_static("base64")),
        ],
        wrapped,
    )
        .into_response()
}

/// The procedure of an EST request: its label, or the one `ca.toml` names.
fn est_procedure(state: &AppState, label: Option<Path<String>>) -> Result<String, ApiError> {
    match label {
        Some(Path(procedure)) => Ok(procedure),
        None => state.enrollment()?.ca.est_procedure().map(str::to_owned).ok_or_else(|| {
            ApiError::not_found("no EST procedure is served without a label: `prereg ca set --est-procedure NAME`")
        }),
    }
}

/// EST is served over TLS only: HTTP Basic passwords and client
/// certificates need it (RFC 7030 §3.2.2).
fn est_over_tls(tls: Option<&super::listener::OverTls>) -> Result<(), ApiError> {
    match tls {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tls-required",
            "TLS required",
            "EST is served over TLS only (serve --tls-cert/--tls-key or --tls-self)",
        )),
    }
}

async fn est_cacerts(
    State(state): State<AppState>,
    tls: Option<axum::Extension<super::listener::OverTls>>,
) -> Result<Response, ApiError> {
    est_over_tls(tls.as_deref())?;
    Ok(est_body("application/pkcs7-mime", &state.enrollment()?.est.cacerts()))
}

async fn est_csrattrs(
    State(state): State<AppState>,
    tls: Option<axum::Extension<super::listener::OverTls>>,
) -> Result<Response, ApiError> {
    est_over_tls(tls.as_deref())?;
    Ok(est_body("application/csrattrs", &state.enrollment()?.est.csrattrs()))
}

/// The PKCS#10 of an EST request: base64 (RFC 8951), whitespace allowed;
/// DER as sent by a few clients is taken too.
fn est_csr(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    request_body(headers, body, "application/pkcs10", "an EST request")?;
    let cleaned: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(&cleaned) {
        Ok(der) => Ok(der),
        Err(_) if body.first() == Some(&0x30) => Ok(body.to_vec()),
        Err(e) => Err(ApiError::malformed(format!("the request is not base64 (RFC 8951): {e}"))),
    }
}

/// HTTP Basic credentials, if the request has some.
fn basic(headers: &HeaderMap) -> Result<Option<crate::enroll::est::Basic>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::malformed("the Authorization header is not text"))?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Err(ApiError::malformed("the Authorization header must be `Basic <base64>`"));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::malformed("EST takes HTTP Basic credentials"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::malformed("the Basic credentials are not base64"))?;
    let text = zeroize::Zeroizing::new(
        String::from_utf8(decoded).map_err(|_| ApiError::malformed("the Basic credentials are not UTF-8"))?,
    );
    let (user, password) =
        text.split_once(':').ok_or_else(|| ApiError::malformed("the Basic credentials have no `:`"))?;
    Ok(Some(crate::enroll::est::Basic {
        user: user.to_owned(),
        password: zeroize::Zeroizing::new(password.to_owned()),
    }))
}

/// The HTTP answer to an EST enrollment; a refusal counts against the
/// client's address. Refusals are problem documents with the status RFC 7030
/// names (401 with a Basic challenge when credentials are missing or refused).
fn est_answer(state: &AppState, peer: SocketAddr, answer: crate::enroll::est::EstAnswer) -> Response {
    use crate::enroll::est::EstAnswer;
    match answer {
        EstAnswer::Issued(pkcs7) => est_body("application/pkcs7-mime; smime-type=certs-only", &pkcs7),
        EstAnswer::Refused { status, text } => {
            if matches!(status, 400 | 401 | 403) {
                state.failures().failed(peer.ip());
            }
            let error = match status {
                401 => ApiError::unauthenticated(text),
                403 => ApiError::forbidden(text),
                404 => ApiError::not_found(text),
                503 => ApiError::unavailable(text),
                _ => ApiError::malformed(text),
            };
            let mut response = error.into_response();
            if status == 401 {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(EST_REALM));
            }
            response
        }
    }
}

/// What both EST enrollments read first.
struct EstRequest {
    procedure: String,
    /// The CSR (DER).
    csr: Vec<u8>,
    /// The client's TLS certificate chain, its own first, if it presented one.
    chain: Option<std::sync::Arc<[Vec<u8>]>>,
}

/// Reads an [`EstRequest`], once the request is over TLS and its address is
/// not refused too often.
fn est_request(
    state: &AppState,
    peer: SocketAddr,
    tls: Option<axum::Extension<super::listener::OverTls>>,
    certificate: Option<axum::Extension<super::listener::ClientCertificate>>,
    label: Option<Path<String>>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<EstRequest, ApiError> {
    est_over_tls(tls.as_deref())?;
    state.failures().check(peer.ip()).map_err(ApiError::too_many_failures)?;
    let procedure = est_procedure(state, label)?;
    let csr = est_csr(headers, body)?;
    Ok(EstRequest { procedure, csr, chain: certificate.map(|axum::Extension(c)| c.1) })
}

async fn est_simpleenroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<axum::Extension<super::listener::OverTls>>,
    certificate: Option<axum::Extension<super::listener::ClientCertificate>>,
    label: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let EstRequest { procedure, csr, chain } = est_request(&state, peer, tls, certificate, label, &headers, &body)?;
    let credentials = basic(&headers)?;
    let server = state.enrollment()?.est;
    let answer =
        blocking(move || Ok(server.enroll(&procedure, credentials, chain.as_deref(), &csr, unix_now()))).await?;
    Ok(est_answer(&state, peer, answer))
}

async fn est_simplereenroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<axum::Extension<super::listener::OverTls>>,
    certificate: Option<axum::Extension<super::listener::ClientCertificate>>,
    label: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let EstRequest { procedure, csr, chain } = est_request(&state, peer, tls, certificate, label, &headers, &body)?;
    let server = state.enrollment()?.est;
    let answer = blocking(move || {
        let leaf = chain.as_deref().and_then(<[Vec<u8>]>::first).map(Vec::as_slice);
        Ok(server.reenroll(&procedure, leaf, &csr, unix_now()))
    })
    .await?;
    Ok(est_answer(&state, peer, answer))
}
