//! Token procedures.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ReadRefusals, WriteRefusals, blocking, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::ApiError;
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;
use crate::store::ProcedureRecord;

/// The token procedures of the officer's domains.
#[utoipa::path(get, path = "/v1/procedures", operation_id = "listProcedures", tag = "procedures",
    security(("officer" = [])),
    responses((status = 200, description = "Token procedures, by name", body = [ProcedureRecord]), ReadRefusals))]
pub async fn list(State(state): State<AppState>, officer: Officer) -> Result<Json<Vec<ProcedureRecord>>, ApiError> {
    let registry = state.registry().clone();
    let mut procedures = blocking(move || Ok(registry.procedures()?)).await?;
    procedures.retain(|p| officer.reads(&p.domain));
    Ok(Json(procedures))
}

/// Creates a token procedure (signed `procedure.create`).
#[utoipa::path(post, path = "/v1/procedures", operation_id = "createProcedure", tag = "procedures", request_body = FlattenedJws,
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
