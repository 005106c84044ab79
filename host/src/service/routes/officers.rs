//! RA officers.

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
use crate::store::OfficerRecord;

/// The RA officers who may act in one of the reading officer's domains
/// (public keys only); an officer of every domain sees all.
#[utoipa::path(get, path = "/v1/officers", operation_id = "listOfficers", tag = "officers",
    security(("officer" = [])),
    responses((status = 200, description = "Officers, by name", body = [OfficerRecord]), ReadRefusals))]
pub async fn list(State(state): State<AppState>, officer: Officer) -> Result<Json<Vec<OfficerRecord>>, ApiError> {
    let registry = state.registry().clone();
    let mut officers = blocking(move || Ok(registry.officers()?)).await?;
    if let Some(domains) = officer.domains() {
        officers.retain(|o| domains.iter().any(|d| o.may_act_in(d)));
    }
    Ok(Json(officers))
}

/// Adds an officer (signed `officer.create`).
#[utoipa::path(post, path = "/v1/officers", operation_id = "createOfficer", tag = "officers", request_body = FlattenedJws,
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
#[utoipa::path(post, path = "/v1/officers/{name}/disable", operation_id = "disableOfficer", tag = "officers", request_body = FlattenedJws,
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
    let expected = expect_name("POST /v1/officers/{name}/disable", name, |r| match r {
        WriteRequest::DisableOfficer { name } => Some(name),
        _ => None,
    });
    Ok(Json(submit(&state, jws, expected).await?))
}
