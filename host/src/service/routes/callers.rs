//! CA callers: the systems that ask for enrollment decisions.

use axum::Json;
use axum::extract::State;

use crate::service::extract::Path;
use axum::http::StatusCode;

use super::{ReadRefusals, WriteRefusals, blocking, expect_name, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::{ApiError, Problem};
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;
use crate::store::CallerRecord;

/// The CA callers of the officer's domains: those whose token procedures
/// are all in them (an officer of every domain sees all). Secrets are never
/// shown: only their SHA-256 is kept.
#[utoipa::path(get, path = "/v1/callers", operation_id = "listCallers", tag = "callers",
    security(("officer" = [])),
    responses((status = 200, description = "CA callers, by name", body = [CallerRecord]), ReadRefusals))]
pub async fn list(State(state): State<AppState>, officer: Officer) -> Result<Json<Vec<CallerRecord>>, ApiError> {
    let registry = state.registry().clone();
    let callers = blocking(move || {
        let mut callers = registry.callers()?;
        if officer.domains().is_some() {
            let procedures = registry.procedures()?;
            let reads = |name: &String| procedures.iter().any(|p| &p.name == name && officer.reads(&p.domain));
            callers.retain(|c| c.procedures.iter().all(reads));
        }
        Ok(callers)
    })
    .await?;
    Ok(Json(callers))
}

/// Adds a CA caller (signed `caller.create`, by an officer of every domain
/// its token procedures are in). The request carries the SHA-256 of the
/// caller's secret, made by the signer; the secret itself never travels.
#[utoipa::path(post, path = "/v1/callers", operation_id = "createCaller", tag = "callers", request_body = FlattenedJws,
    responses(
        (status = 201, description = "Created", body = WriteOutcome),
        WriteRefusals,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Signed(jws): Signed,
) -> Result<(StatusCode, Json<WriteOutcome>), ApiError> {
    let outcome = submit(&state, jws, |r| match r {
        WriteRequest::AddCaller { .. } => Ok(()),
        other => Err(wrong_action("POST /v1/callers", other)),
    })
    .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// Disables a CA caller (signed `caller.disable` for this name): its
/// credentials are refused from then on.
#[utoipa::path(post, path = "/v1/callers/{name}/disable", operation_id = "disableCaller", tag = "callers", request_body = FlattenedJws,
    params(("name" = String, Path, description = "Caller name")),
    responses(
        (status = 200, description = "Disabled", body = WriteOutcome),
        WriteRefusals,
        (status = 404, description = "No such caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Signed(jws): Signed,
) -> Result<Json<WriteOutcome>, ApiError> {
    let expected = expect_name("POST /v1/callers/{name}/disable", name, |r| match r {
        WriteRequest::DisableCaller { name } => Some(name),
        _ => None,
    });
    Ok(Json(submit(&state, jws, expected).await?))
}
