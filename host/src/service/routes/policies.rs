//! Policy versions: load (multipart: the signed request, then the
//! component), list, activate; shadow mode and its report.

use axum::Json;
use axum::extract::{Multipart, State};

use crate::service::extract::Query;
use axum::http::StatusCode;

use super::{ReadRefusals, WriteRefusals, blocking};
use crate::registry::{PolicyChange, ShadowChange, ShadowReport, unix_now};
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::ApiError;
use crate::service::signed::{FlattenedJws, Signed, file_part, multipart_error, signed_part};
use crate::store::PolicyVersionRecord;

/// Largest component accepted, as the engine's default limit.
const MAX_COMPONENT_BYTES: usize = 16 << 20;

/// The multipart form of a policy load: `request` first, then `file`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "a description of the form, never built")]
pub struct PolicyUpload {
    /// The signed `policy.load` request (JWS, flattened JSON): `{"action":
    /// "policy.load", "sha256" (of the component), "activate", and optional
    /// "name" and "version" labels}`.
    request: FlattenedJws,
    /// The component (`.wasm`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Every loaded policy version, oldest first, and which is active (none: the
/// built-in default).
#[utoipa::path(get, path = "/v1/policies", operation_id = "listPolicyVersions", tag = "instance",
    security(("officer" = [])),
    responses((status = 200, description = "Loaded policy versions", body = [PolicyVersionRecord]), ReadRefusals))]
pub async fn list(
    State(state): State<AppState>,
    _officer: Officer,
) -> Result<Json<Vec<PolicyVersionRecord>>, ApiError> {
    let registry = state.registry().clone();
    Ok(Json(blocking(move || Ok(registry.policy_versions()?)).await?))
}

/// Loads a policy component (signed `policy.load`, by an officer of every
/// domain): it is checked, compiled and its own test cases run before it is
/// stored, and it is activated atomically if asked. A refused component
/// changes nothing.
#[utoipa::path(post, path = "/v1/policies", operation_id = "loadPolicy", tag = "instance",
    request_body(content = PolicyUpload, content_type = "multipart/form-data",
        description = "Two parts, in this order: `request` (the signed request), then `file`. The server reads `request` first and checks its signature before it keeps a byte of the file: a form whose first part is not `request` is refused (400)."),
    responses(
        (status = 201, description = "Loaded (and activated if asked)", body = PolicyChange),
        WriteRefusals,
        (status = 413, description = "Component, or its `request` part (over 64 KiB), too large", body = crate::service::Problem, content_type = "application/problem+json"),
    ))]
pub async fn load(
    State(state): State<AppState>,
    mut form: Multipart,
) -> Result<(StatusCode, Json<PolicyChange>), ApiError> {
    let jws = signed_part(&mut form, "the signed policy.load request").await?;
    let mut field = file_part(&mut form, "the component").await?;
    let mut component = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if component.len() + chunk.len() > MAX_COMPONENT_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The request is too large",
                format!("a policy component may be at most {MAX_COMPONENT_BYTES} bytes"),
            ));
        }
        component.extend_from_slice(&chunk);
    }
    let registry = state.registry().clone();
    let change = blocking(move || Ok(registry.load_policy(&jws, &component, unix_now())?)).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

/// Activates a loaded version, or `built-in` (signed `policy.activate`, by an
/// officer of every domain). Decisions in flight finish on the old policy.
#[utoipa::path(post, path = "/v1/policies/activate", operation_id = "activatePolicy", tag = "instance", request_body = FlattenedJws,
    responses(
        (status = 200, description = "Activated", body = PolicyChange),
        WriteRefusals,
        (status = 404, description = "No such loaded version", body = crate::service::Problem, content_type = "application/problem+json"),
    ))]
pub async fn activate(State(state): State<AppState>, Signed(jws): Signed) -> Result<Json<PolicyChange>, ApiError> {
    let registry = state.registry().clone();
    Ok(Json(blocking(move || Ok(registry.activate_policy(&jws, unix_now())?)).await?))
}

/// Starts shadow mode with a loaded version (signed `policy.shadow` with
/// `policy`: a SHA-256, a prefix of 8+ hex digits, or NAME@VERSION), or stops
/// it (without `policy`). The shadow decides every enrollment beside the
/// active policy, without effect.
#[utoipa::path(post, path = "/v1/policies/shadow", operation_id = "setShadowPolicy", tag = "instance", request_body = FlattenedJws,
    responses(
        (status = 200, description = "Shadow mode started or stopped", body = ShadowChange),
        WriteRefusals,
        (status = 404, description = "No such loaded version", body = crate::service::Problem, content_type = "application/problem+json"),
    ))]
pub async fn shadow(State(state): State<AppState>, Signed(jws): Signed) -> Result<Json<ShadowChange>, ApiError> {
    let registry = state.registry().clone();
    Ok(Json(blocking(move || Ok(registry.set_shadow(&jws, unix_now())?)).await?))
}

/// Which disagreements to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShadowQuery {
    /// Only disagreements after this id (the last one of the previous page).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The shadow policy, how many enrollments it was compared on, and the
/// decisions where it disagreed with the active policy (request, both
/// decisions, both reasons); an officer who is not of every domain sees the
/// disagreements of its domains' token procedures only.
#[utoipa::path(get, path = "/v1/policies/shadow", operation_id = "getShadowReport", tag = "instance", params(ShadowQuery),
    security(("officer" = [])),
    responses((status = 200, description = "The shadow report", body = ShadowReport), ReadRefusals, super::ParameterRefusals))]
pub async fn shadow_report(
    State(state): State<AppState>,
    officer: Officer,
    Query(query): Query<ShadowQuery>,
) -> Result<Json<ShadowReport>, ApiError> {
    let registry = state.registry().clone();
    let (after, limit) = super::page(query.after, query.limit)?;
    Ok(Json(blocking(move || Ok(registry.shadow_report_for(officer.domains().as_deref(), after, limit)?)).await?))
}
