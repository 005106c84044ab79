//! RA officers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{WriteRefusals, blocking, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::service::AppState;
use crate::service::problem::{ApiError, Problem};
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;
use crate::store::OfficerRecord;

/// Every RA officer (public keys only).
#[utoipa::path(get, path = "/v1/officers", tag = "officers",
    responses((status = 200, description = "Officers, by name", body = [OfficerRecord])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<OfficerRecord>>, ApiError> {
    let registry = state.registry().clone();
    Ok(Json(blocking(move || Ok(registry.officers()?)).await?))
}

/// Adds an officer (signed `officer.create`).
#[utoipa::path(post, path = "/v1/officers", tag = "officers", request_body = FlattenedJws,
    responses(
        (status = 201, description = "Created", body = WriteOutcome),
        WriteRefusals,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Signed(jws): Signed,
) -> Result<(StatusCode, Json<WriteOutcome>), ApiError> {
    let outcome = submit(&state, jws, |r| match r {
        WriteRequest::AddOfficer { .. } => Ok(()),
        other => Err(wrong_action("POST /v1/officers", other)),
    })
    .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// Disables an officer's key (signed `officer.disable` for this name): its
/// requests are refused from then on.
#[utoipa::path(post, path = "/v1/officers/{name}/disable", tag = "officers", request_body = FlattenedJws,
    params(("name" = String, Path, description = "Officer name")),
    responses(
        (status = 200, description = "Disabled", body = WriteOutcome),
        WriteRefusals,
        (status = 404, description = "No such officer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Signed(jws): Signed,
) -> Result<Json<WriteOutcome>, ApiError> {
    let outcome = submit(&state, jws, move |r| match r {
        WriteRequest::DisableOfficer { name: signed } if *signed == name => Ok(()),
        WriteRequest::DisableOfficer { name: signed } => {
            Err(format!("the request disables officer {signed:?}, not {name:?}"))
        }
        other => Err(wrong_action("POST /v1/officers/{name}/disable", other)),
    })
    .await?;
    Ok(Json(outcome))
}
