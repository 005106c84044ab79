//! The instance (its id is the audience of signed requests) and the active
//! policy.

use axum::Json;
use axum::extract::State;

use super::{ReadRefusals, blocking};
use crate::policy::PolicyInfo;
use crate::service::AppState;
use crate::service::auth::{Officer, Principal};
use crate::service::problem::{ApiError, Problem};

pub use crate::api::InstanceInfo;

/// The instance id (the audience of signed requests and access tokens), the
/// version and the public key passwords are sealed to: open to anyone, as a
/// client needs them before it can sign. The storage is named to officers
/// only.
#[utoipa::path(get, path = "/v1/instance", operation_id = "getInstance", tag = "instance",
    responses(
        (status = 200, description = "The instance", body = InstanceInfo),
        (status = 503, description = "Not initialised or storage down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn instance(
    State(state): State<AppState>,
    principal: Option<axum::Extension<Principal>>,
) -> Result<Json<InstanceInfo>, ApiError> {
    let registry = state.registry().clone();
    let instance_id = blocking(move || registry.instance_id().map_err(ApiError::from)).await?;
    Ok(Json(InstanceInfo {
        instance_id,
        version: env!("CARGO_PKG_VERSION").into(),
        storage: match principal.as_deref() {
            Some(Principal::Officer(_)) => Some(state.registry().storage().describe()),
            _ => None,
        },
        sealing_key: state.registry().sealing_key().map(|k| k.public_text()),
    }))
}

/// The active policy: name, version, WIT version, SHA-256 and source.
#[utoipa::path(get, path = "/v1/policy", operation_id = "getActivePolicy", tag = "instance",
    security(("officer" = [])),
    responses((status = 200, description = "The active policy", body = PolicyInfo), ReadRefusals))]
pub async fn policy(State(state): State<AppState>, _officer: Officer) -> Json<PolicyInfo> {
    Json(state.registry().policy().info().clone())
}
