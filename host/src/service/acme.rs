//! ACME's HTTP endpoints (RFC 8555), one directory per ACME token procedure:
//!
//! - `GET /acme/{procedure}/directory`;
//! - `HEAD|GET /acme/{procedure}/new-nonce`;
//! - `GET /acme/{procedure}/renewal-info/{certID}` (RFC 9773, ACME Renewal
//!   Information);
//! - `POST /acme/{procedure}/{resource…}`: every other resource, a JWS
//!   (`application/jose+json`) that [`crate::enroll::acme::AcmeServer`]
//!   checks and answers.
//!
//! Every answer carries a fresh `Replay-Nonce`, `Cache-Control: no-store`
//! and the directory's `Link: rel="index"`. ACME is served over TLS only
//! (RFC 8555 §6.1), as EST is.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

use super::AppState;
use super::listener::OverTls;
use super::problem::ApiError;
use super::routes::blocking;
use crate::enroll::acme::{AcmeProblem, AcmeReply, AcmeRequest, JOSE_JSON, ReplyBody};
use crate::registry::unix_now;

/// The ACME routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/acme/{procedure}/directory", axum::routing::get(directory))
        .route("/acme/{procedure}/new-nonce", axum::routing::get(new_nonce).head(new_nonce))
        .route("/acme/{procedure}/renewal-info/{cert_id}", axum::routing::get(renewal_info))
        .route("/acme/{procedure}/{*resource}", axum::routing::post(post))
}

/// The base URL the client reached: the scheme this service faces its
/// clients with, and the authority it named.
/// (HTTP/2 names it in `:authority`, HTTP/1.1 in `Host`.)
fn base_url(state: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<String, AcmeProblem> {
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains('/'))
        .ok_or_else(|| AcmeProblem::malformed("the request names no Host"))?;
    let scheme = if state.front().tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}"))
}

/// ACME is served over TLS only.
fn over_tls(state: &AppState, tls: Option<&OverTls>) -> Result<(), AcmeProblem> {
    if tls.is_some() || state.front().tls {
        Ok(())
    } else {
        Err(AcmeProblem::unauthorized("ACME is served over TLS only (serve --tls-cert/--tls-key or --tls-self)"))
    }
}

/// The HTTP answer to `reply`, with a fresh nonce from `nonce`.
fn answer(reply: AcmeReply, nonce: Option<String>, directory: Option<&str>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        ReplyBody::Json(value) => {
            (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
        }
        ReplyBody::Problem(problem) => {
            (status, [(header::CONTENT_TYPE, "application/problem+json")], problem.document().to_string())
                .into_response()
        }
        ReplyBody::Pem(chain) => {
            (status, [(header::CONTENT_TYPE, "application/pem-certificate-chain")], chain).into_response()
        }
        ReplyBody::Empty => status.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        headers.insert(HeaderName::from_static("replay-nonce"), value);
    }
    if let Some(value) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, value);
    }
    let links = reply.links.into_iter().chain(directory.map(|d| format!("<{d}>;rel=\"index\"")));
    for link in links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.append(header::LINK, value);
        }
    }
    response
}

fn problem(problem: AcmeProblem) -> Response {
    answer(AcmeReply::problem(problem), None, None)
}

/// The ACME server, or why there is none.
fn server(state: &AppState) -> Result<std::sync::Arc<crate::enroll::acme::AcmeServer>, AcmeProblem> {
    state
        .enrollment()
        .map(|e| e.acme)
        .map_err(|e: ApiError| AcmeProblem::server_internal(e.to_string()).with_status(503))
}

/// Runs `work` off the async workers.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AcmeProblem> {
    blocking(move || Ok(work())).await.map_err(|e| AcmeProblem::server_internal(e.to_string()))
}

/// The answer to a GET of `resource` (no JWS), which `work` makes off the
/// async workers.
async fn get(
    state: &AppState,
    tls: Option<&OverTls>,
    uri: &Uri,
    headers: &HeaderMap,
    procedure: String,
    resource: &'static str,
    work: impl FnOnce(&crate::enroll::acme::AcmeServer, &AcmeRequest<'_>) -> AcmeReply + Send + 'static,
) -> Response {
    let reply = async {
        over_tls(state, tls)?;
        let server = server(state)?;
        let base = base_url(state, uri, headers)?;
        off_thread(move || {
            let request = AcmeRequest { procedure: &procedure, resource, base: &base, body: &[], now: unix_now() };
            work(&server, &request)
        })
        .await
    };
    answer(reply.await.unwrap_or_else(AcmeReply::problem), None, None)
}

async fn directory(
    State(state): State<AppState>,
    tls: Option<axum::Extension<OverTls>>,
    Path(procedure): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    get(&state, tls.as_deref(), &uri, &headers, procedure, "directory", |server, request| server.directory(request))
        .await
}

/// `GET renewal-info/<certID>` (RFC 9773), open to anyone: certificates
/// are public, and their serials are random.
async fn renewal_info(
    State(state): State<AppState>,
    tls: Option<axum::Extension<OverTls>>,
    Path((procedure, cert_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let work = move |server: &crate::enroll::acme::AcmeServer, request: &AcmeRequest<'_>| {
        server.renewal_info(request, &cert_id)
    };
    let mut response = get(&state, tls.as_deref(), &uri, &headers, procedure, "renewal-info", work).await;
    // RFC 9773 §4.2: when to ask again.
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("21600"));
    response
}

async fn new_nonce(
    State(state): State<AppState>,
    tls: Option<axum::Extension<OverTls>>,
    method: axum::http::Method,
    Path(procedure): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let served = async {
        over_tls(&state, tls.as_deref())?;
        let server = server(&state)?;
        let checked = server.clone();
        let name = procedure.clone();
        off_thread(move || checked.serves(&name)).await??;
        Ok::<_, AcmeProblem>(server)
    };
    let server = match served.await {
        Ok(server) => server,
        Err(p) => return problem(p),
    };
    let directory = base_url(&state, &uri, &headers).ok().map(|b| format!("{b}/acme/{procedure}/directory"));
    let status = if method == axum::http::Method::HEAD { 200 } else { 204 };
    let reply = AcmeReply { status, body: ReplyBody::Empty, location: None, links: Vec::new(), validate: None };
    answer(reply, Some(server.nonce()), directory.as_deref())
}

async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<axum::Extension<OverTls>>,
    Path((procedure, resource)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = state.failures().check(peer.ip()) {
        return ApiError::too_many_failures(e).into_response();
    }
    let checked = (|| {
        over_tls(&state, tls.as_deref())?;
        let server = server(&state)?;
        let base = base_url(&state, &uri, &headers)?;
        Ok::<_, AcmeProblem>((server, base))
    })();
    let (server, base) = match checked {
        Ok(checked) => checked,
        Err(p) => return problem(p),
    };
    let sent = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = sent.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(JOSE_JSON) {
        let p = AcmeProblem::malformed(format!("ACME requests are {JOSE_JSON}, not {sent:?}")).with_status(415);
        return answer(AcmeReply::problem(p), Some(server.nonce()), None);
    }
    let directory = format!("{base}/acme/{procedure}/directory");
    let worker = server.clone();
    let reply = off_thread(move || {
        let request =
            AcmeRequest { procedure: &procedure, resource: &resource, base: &base, body: &body, now: unix_now() };
        worker.post(&request)
    })
    .await;
    let mut reply = reply.unwrap_or_else(AcmeReply::problem);
    if matches!(&reply.body, ReplyBody::Problem(p) if matches!(p.kind, "unauthorized" | "rejectedIdentifier" | "badCSR"))
    {
        state.failures().failed(peer.ip());
    }
    if let Some((authz, kind)) = reply.validate.take() {
        let validator = server.clone();
        tokio::task::spawn_blocking(move || validator.validate(&authz, &kind, unix_now()));
    }
    answer(reply, Some(server.nonce()), Some(&directory))
}
