//! `/healthz` (the process answers), `/readyz` (it can serve: storage
//! reachable, policy loaded, not shutting down) and `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ReadRefusals, blocking};
use crate::service::AppState;
use crate::service::auth::Reader;
use crate::service::problem::{ApiError, Problem};

/// Health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// Readiness: the storage answers and can be written now (the last write
/// probe, each second, succeeded), a policy is loaded, and the service is
/// not shutting down.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    if state.shutting_down() {
        return Err(ApiError::unavailable("shutting down"));
    }
    if let Some(why) = state.registry().write_fault() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-writable",
            "The store cannot be written",
            format!("not ready: {why}"),
        ));
    }
    let registry = state.registry().clone();
    blocking(move || registry.instance_id().map_err(ApiError::from)).await?;
    Ok(axum::Json(Health { status: "ok".into() }))
}

/// Prometheus metrics (text exposition format), for an officer or a CA
/// caller (`prereg serve --metrics-listen` serves them apart, with no
/// credential, on an address of the operator's choosing).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    security(("officer" = []), ("caller" = [])),
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4"),
        ReadRefusals))]
pub async fn metrics(State(state): State<AppState>, _reader: Reader) -> Result<Response, ApiError> {
    render_metrics(state).await
}

/// The metrics text, as `/metrics` answers it.
pub async fn render_metrics(state: AppState) -> Result<Response, ApiError> {
    let registry = state.registry().clone();
    let counts = blocking(move || {
        let mut tx = registry.storage().begin(crate::store::TxKind::Read).map_err(ApiError::from)?;
        tx.count_registrations_by_state().map_err(ApiError::from)
    })
    .await?;
    let text = state
        .metrics()
        .render(
            &counts,
            &state.running_imports(),
            state.registry().memory_index().map(|i| i.stats()),
            state.registry().dry_runs_from_memory(),
            state.registry().group_commit_stats(),
        )
        .map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}
