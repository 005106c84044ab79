//! `prereg serve`: the REST API, the RA web page, health and metrics, over
//! the same [`Registry`](crate::Registry) the CLI uses.
//!
//! - [`routes`]: the REST API under `/v1` (with `/healthz`, `/readyz`,
//!   `/metrics`), documented by `utoipa`; the document is served at
//!   `/v1/openapi.json`.
//! - [`signed`]: writes are JWS in flattened JSON serialization.
//! - [`problem`]: errors are `application/problem+json`.
//! - [`web`]: the RA page at `/`.
//! - [`metrics`]: Prometheus metrics.
//!
//! Registry calls block (SQLite, wasmtime), so handlers run them on tokio's
//! blocking pool; imports run on their own threads.

pub mod checkpoints;
pub mod enrollment;
pub mod failures;
mod metrics;
pub mod problem;
pub mod routes;
pub mod signed;
pub mod state;
pub mod web;

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
        (name = "audit", description = "The hash-chained audit log"),
        (name = "instance", description = "This instance and its policy"),
        (name = "health", description = "Health and metrics"),
    )
)]
struct ApiDoc;

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
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(state.limits().max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
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

/// Logs each request, counts it, and turns any error response that is not
/// already a problem document (a rejected path or query, a wrong method, a
/// body over the limit) into one.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let response = problem_for_plain_errors(response).await;
    let status = response.status();
    state.metrics().http(method.as_str(), &route, status.as_u16());
    tracing::info!(
        method = %method,
        path = %path,
        route = %route,
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
    let app = app(state.clone());
    // The client's address is known to every handler (failures are limited per address).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
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
