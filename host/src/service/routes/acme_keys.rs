//! ACME's external account binding keys (made with `prereg acme eab add`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ReadRefusals, WriteRefusals, blocking, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::registry::acme::EabKeyView;
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::ApiError;
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;

/// The binding keys of the ACME procedures in the officer's domains (an
/// officer of every domain sees all), without their HMAC keys.
#[utoipa::path(get, path = "/v1/acme/eab-keys", operation_id = "listEabKeys", tag = "acme",
    security(("officer" = [])),
    responses((status = 200, description = "Binding keys, by procedure then age", body = [EabKeyView]), ReadRefusals))]
pub async fn list(State(state): State<AppState>, officer: Officer) -> Result<Json<Vec<EabKeyView>>, ApiError> {
    let registry = state.registry().clone();
    let keys = blocking(move || Ok(registry.acme_eab_keys(|domain| officer.reads(domain))?)).await?;
    Ok(Json(keys))
}

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
