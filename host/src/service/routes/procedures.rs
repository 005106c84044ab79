//! Token procedures.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{WriteRefusals, blocking, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::service::AppState;
use crate::service::problem::ApiError;
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;
use crate::store::ProcedureRecord;

/// Every token procedure.
#[utoipa::path(get, path = "/v1/procedures", tag = "procedures",
    responses((status = 200, description = "Token procedures, by name", body = [ProcedureRecord])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ProcedureRecord>>, ApiError> {
    let registry = state.registry().clone();
    Ok(Json(blocking(move || Ok(registry.procedures()?)).await?))
}

/// Creates a token procedure (signed `procedure.create`).
#[utoipa::path(post, path = "/v1/procedures", tag = "procedures", request_body = FlattenedJws,
    responses(
        (status = 201, description = "Created", body = WriteOutcome),
        WriteRefusals,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Signed(jws): Signed,
) -> Result<(StatusCode, Json<WriteOutcome>), ApiError> {
    let outcome = submit(&state, jws, |r| match r {
        WriteRequest::CreateProcedure { .. } => Ok(()),
        other => Err(wrong_action("POST /v1/procedures", other)),
    })
    .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}
