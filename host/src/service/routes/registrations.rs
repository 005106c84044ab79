//! Registrations: create, get, list, disable, reopen, delete.

use axum::Json;
use axum::extract::State;

use crate::service::extract::{Path, Query};
use axum::http::StatusCode;
use prereg_core::RegistrationState;
use serde::{Deserialize, Serialize};

use super::{ParameterRefusals, ReadRefusals, WriteRefusals, blocking, next_page, page, submit, wrong_action};
use crate::registry::WriteOutcome;
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::{ApiError, Problem};
use crate::service::signed::{FlattenedJws, Signed};
use crate::signing::WriteRequest;
use crate::store::{RegistrationFilter, RegistrationRecord};

pub use crate::api::{Created, RegistrationPage};

/// Filters and page of a registration list.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this token procedure.
    pub procedure: Option<String>,
    /// Only this state.
    #[param(schema_with = crate::store::openapi::registration_state)]
    pub state: Option<String>,
    /// Only patterns containing this text.
    pub q: Option<String>,
    /// Only ids greater than this (the `next_after` of the previous page).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Lists the registrations of the officer's domains, with filters and
/// pagination.
#[utoipa::path(get, path = "/v1/registrations", operation_id = "listRegistrations", tag = "registrations", params(ListQuery),
    security(("officer" = [])),
    responses(
        (status = 200, description = "A page of registrations", body = RegistrationPage),
        ReadRefusals,
        ParameterRefusals,
    ))]
pub async fn list(
    State(state): State<AppState>,
    officer: Officer,
    Query(query): Query<ListQuery>,
) -> Result<Json<RegistrationPage>, ApiError> {
    let (after, limit) = page(query.after, query.limit)?;
    let state_filter =
        match query.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(RegistrationState::parse(s).ok_or_else(|| {
                ApiError::invalid("state", format!("{s:?} is not one of open, used, disabled, locked"))
            })?),
        };
    let filter = RegistrationFilter {
        domain: query.domain.filter(|s| !s.is_empty()),
        procedure: query.procedure.filter(|s| !s.is_empty()),
        state: state_filter,
        search: query.q.filter(|s| !s.is_empty()),
        after_id: Some(after),
        limit: Some(limit + 1),
        domains: officer.domains(),
    };
    let registry = state.registry().clone();
    let mut items = blocking(move || Ok(registry.registrations(&filter)?)).await?;
    let next_after = next_page(&mut items, limit as usize, |r| r.id);
    Ok(Json(RegistrationPage { items, next_after }))
}

/// Creates a registration (signed `registration.create`).
#[utoipa::path(post, path = "/v1/registrations", operation_id = "createRegistration", tag = "registrations", request_body = FlattenedJws,
    responses(
        (status = 201, description = "Created", body = Created),
        WriteRefusals,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Signed(jws): Signed,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let outcome = submit(&state, jws, |r| match r {
        WriteRequest::CreateRegistration { .. } => Ok(()),
        other => Err(wrong_action("POST /v1/registrations", other)),
    })
    .await?;
    let id = outcome.id.ok_or_else(|| ApiError::internal("the registry created no registration id"))?;
    let registry = state.registry().clone();
    let registration = blocking(move || Ok(registry.registration(id)?)).await?;
    Ok((StatusCode::CREATED, Json(Created { outcome, registration })))
}

/// One registration of the officer's domains (another domain's is not
/// found, as if it did not exist).
#[utoipa::path(get, path = "/v1/registrations/{id}", operation_id = "getRegistration", tag = "registrations",
    params(("id" = u64, Path, description = "Registration id", maximum = 9223372036854775807_u64)),
    security(("officer" = [])),
    responses(
        (status = 200, description = "The registration", body = RegistrationRecord),
        ReadRefusals,
        (status = 400, description = "An id that is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such registration", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    officer: Officer,
    Path(id): Path<u64>,
) -> Result<Json<RegistrationRecord>, ApiError> {
    let registry = state.registry().clone();
    let registration = blocking(move || Ok(registry.registration(id)?)).await?;
    if !officer.reads(&registration.domain) {
        return Err(crate::RegistryError::NotFound(format!("registration {id}")).into());
    }
    Ok(Json(registration))
}

fn expect_id(route: &'static str, id: u64) -> impl Fn(&WriteRequest) -> Result<(), String> + Send + 'static {
    move |r| {
        let (matches, signed_id) = match (route, r) {
            ("POST /v1/registrations/{id}/disable", WriteRequest::DisableRegistration { id }) => (true, *id),
            ("POST /v1/registrations/{id}/reopen", WriteRequest::ReopenRegistration { id }) => (true, *id),
            ("DELETE /v1/registrations/{id}", WriteRequest::DeleteRegistration { id }) => (true, *id),
            _ => (false, 0),
        };
        if !matches {
            Err(wrong_action(route, r))
        } else if signed_id != id {
            Err(format!("the request is signed for registration {signed_id}, not {id}"))
        } else {
            Ok(())
        }
    }
}

/// Disables a registration (signed `registration.disable` for this id).
#[utoipa::path(post, path = "/v1/registrations/{id}/disable", operation_id = "disableRegistration", tag = "registrations", request_body = FlattenedJws,
    params(("id" = u64, Path, description = "Registration id", maximum = 9223372036854775807_u64)),
    responses(
        (status = 200, description = "Disabled", body = WriteOutcome),
        WriteRefusals,
        (status = 404, description = "No such registration", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Signed(jws): Signed,
) -> Result<Json<WriteOutcome>, ApiError> {
    Ok(Json(submit(&state, jws, expect_id("POST /v1/registrations/{id}/disable", id)).await?))
}

/// Reopens a disabled, locked or used registration (signed `registration.reopen`).
#[utoipa::path(post, path = "/v1/registrations/{id}/reopen", operation_id = "reopenRegistration", tag = "registrations", request_body = FlattenedJws,
    params(("id" = u64, Path, description = "Registration id", maximum = 9223372036854775807_u64)),
    responses(
        (status = 200, description = "Reopened", body = WriteOutcome),
        WriteRefusals,
        (status = 404, description = "No such registration", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reopen(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Signed(jws): Signed,
) -> Result<Json<WriteOutcome>, ApiError> {
    Ok(Json(submit(&state, jws, expect_id("POST /v1/registrations/{id}/reopen", id)).await?))
}

/// Deletes a registration (signed `registration.delete`, in the body).
#[utoipa::path(delete, path = "/v1/registrations/{id}", operation_id = "deleteRegistration", tag = "registrations", request_body = FlattenedJws,
    params(("id" = u64, Path, description = "Registration id", maximum = 9223372036854775807_u64)),
    responses(
        (status = 200, description = "Deleted", body = WriteOutcome),
        WriteRefusals,
        (status = 404, description = "No such registration", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Signed(jws): Signed,
) -> Result<Json<WriteOutcome>, ApiError> {
    Ok(Json(submit(&state, jws, expect_id("DELETE /v1/registrations/{id}", id)).await?))
}
