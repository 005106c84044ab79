//! ACME's external account binding keys (made with `prereg acme eab add`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{WriteRefusals, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::service::AppState;
use crate::service::problem::ApiError;
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;

/// Adds an external account binding key to an ACME token procedure (signed
/// `acme.eab.create`, by an officer of its domain). The request carries the
/// HMAC key sealed to the instance's key by the signer.
#[utoipa::path(post, path = "/v1/acme/eab-keys", operation_id = "createEabKey", tag = "acme", request_body = FlattenedJws,
    responses(
        (status = 201, description = "Created", body = WriteOutcome),
        WriteRefusals,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Signed(jws): Signed,
) -> Result<(StatusCode, Json<WriteOutcome>), ApiError> {
    let outcome = submit(&state, jws, |r| match r {
        WriteRequest::AddEabKey { .. } => Ok(()),
        other => Err(wrong_action("POST /v1/acme/eab-keys", other)),
    })
    .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}
