//! `prereg serve`: the REST API, the RA web page, health and metrics, over
//! the same [`Registry`](crate::Registry) the CLI uses.
//!
//! - [`routes`]: the REST API under `/v1` (with `/healthz`, `/readyz`,
//!   `/metrics`), documented by `utoipa`; the document is served at
//!   `/v1/openapi.json`.
//! - [`signed`]: writes are JWS in flattened JSON serialization.
//! - [`problem`]: errors are `application/problem+json`.
//! - [`web`]: the RA page at `/`.
//! - `metrics`: Prometheus metrics.
//!
//! Registry calls block (SQLite, wasmtime), so handlers run them on tokio's
//! blocking pool; imports run on their own threads.

pub mod acme;
pub mod auth;
pub mod checkpoints;
pub mod enrollment;
pub mod extract;
pub mod failures;
pub mod front;
pub mod listener;
mod metrics;
pub mod problem;
pub mod routes;
pub mod signed;
pub mod state;
pub mod tls;
pub mod web;
pub mod webhooks;

use std::future::Future;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use problem::{ApiError, Problem};
pub use state::{AppState, ServiceLimits};

/// The OpenAPI document's fixed parts; the paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "prereg",
        description = "Device preregistration for SCEP/CMP enrollment. Writes are signed by an RA officer: the body is a JWS in flattened JSON serialization whose payload carries `aud` (the instance id from GET /v1/instance), `iat`, `exp` (at most 300 s later), a single-use `jti`, and `request` (the write, tagged by `action`). Errors are application/problem+json with a stable `type`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "registrations", description = "Preregistered devices"),
        (name = "imports", description = "Bulk CSV import"),
        (name = "decisions", description = "Enrollment decisions"),
        (name = "procedures", description = "Token procedures"),
        (name = "officers", description = "RA officers"),
        (name = "callers", description = "CA callers: the systems that ask for enrollment decisions"),
        (name = "acme", description = "ACME: external account binding keys of ACME token procedures"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "instance", description = "This instance and its policy"),
        (name = "health", description = "Health and metrics"),
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// The two credentials of the API ([`auth`]).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "officer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWS")
                    .description(Some(
                        "An officer's access token: a compact JWS (EdDSA or ES256, `kid` = the officer key's \
                         RFC 7638 thumbprint, `typ` = `prereg-access+jws`) over `{aud, iat, exp}`, `aud` the \
                         instance id from GET /v1/instance, `exp` at most 300 s after `iat`. Reads show the \
                         officer's domains only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "caller",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A CA caller's secret (`prc_…`, shown once by `prereg caller add`): it may ask for \
                         enrollment decisions of the token procedures it lists.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole application: the API, its OpenAPI document, the RA page.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api_router(state.limits()).split_for_parts();
    let document = openapi.to_pretty_json().unwrap_or_default();
    Router::new()
        .merge(api)
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document.clone())
            }),
        )
        .merge(web::router())
        .merge(enrollment::router())
        .merge(acme::router())
        .route("/webhooks/step-ca/{procedure}", axum::routing::post(webhooks::step_ca))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(state.limits().max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), front::front_door))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// `/metrics` alone, without a credential: what `prereg serve
/// --metrics-listen` serves on its own address.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(|State(state): State<AppState>| routes::render_metrics(state)))
        .with_state(state)
}

/// The API routes with their OpenAPI document.
pub fn api_router(limits: ServiceLimits) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::api(limits))
}

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router(ServiceLimits::default()).split_for_parts().1
}

/// Logs each request (and names its client and principal on every line
/// logged while serving it), counts it, and turns any error response that is not
/// already a problem document (a rejected path or query, a wrong method, a
/// body over the limit) into one.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let client = auth::client_ip(request.extensions());
    // Every line logged while the request is served (in handlers, on the
    // blocking pool, in an import it starts) carries its client and, once
    // known, its principal.
    let span = tracing::info_span!("request", client = %client, principal = tracing::field::Empty);
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    let principal = response.extensions().get::<auth::Authenticated>().map_or("-", |a| a.0.as_str()).to_owned();
    let response = problem_for_plain_errors(response).await;
    let status = response.status();
    state.metrics().http(method.as_str(), &route, status.as_u16());
    tracing::info!(
        method = %method,
        path = %path,
        route = %route,
        client = %client,
        principal = %principal,
        status = status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn problem_for_plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(problem::PROBLEM_JSON));
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 << 10).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_owned();
    let detail = if detail.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { detail };
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::not_found(detail),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(status, "method-not-allowed", "The method is not allowed on this resource", detail)
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "too-large", "The request is too large", detail),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(status, "malformed-request", "The request could not be read", detail)
        }
        s if s.is_client_error() => ApiError::malformed(detail),
        _ => ApiError::internal(detail),
    };
    error.into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves; then requests in
/// flight finish, running imports stop at their next row and record how far
/// they got, and this returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, listener::ListenOptions::default(), shutdown).await
}

/// [`serve`] with TLS, connection limits and trusted proxies
/// ([`listener`]).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    options: listener::ListenOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve(listener, app(state.clone()), options, shutdown).await?;
    let stopping = state.clone();
    tokio::task::spawn_blocking(move || stopping.shut_down()).await.map_err(std::io::Error::other)?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
