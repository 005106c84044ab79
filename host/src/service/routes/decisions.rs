//! Enrollment decisions: `check` (dry run) and `enroll` (the real decision).

use std::time::Instant;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::blocking;
use crate::registry::{DecisionMode, DecisionReport, EnrollmentInput, unix_now};
use crate::service::AppState;
use crate::service::problem::{ApiError, Problem};

/// An enrollment request as the CA front received it.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Token procedure the request came through.
    pub procedure: String,
    /// Device FQDN (the request's CN or first DNS SAN).
    pub fqdn: String,
    /// IP address in the request.
    #[serde(default)]
    pub ip: Option<String>,
    /// Subject serialNumber in the request.
    #[serde(default)]
    pub serial: Option<String>,
    /// The request's password (SCEP challengePassword, CMP secret).
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for DecisionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionRequest")
            .field("procedure", &self.procedure)
            .field("fqdn", &self.fqdn)
            .field("ip", &self.ip)
            .field("serial", &self.serial)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

async fn decide(state: AppState, request: DecisionRequest, mode: DecisionMode) -> Result<DecisionReport, ApiError> {
    let registry = state.registry().clone();
    let input = EnrollmentInput {
        procedure: request.procedure,
        fqdn: request.fqdn,
        ip: request.ip,
        serial: request.serial,
        password: request.password.map(Zeroizing::new),
        ..Default::default()
    };
    let started = Instant::now();
    let report = blocking(move || {
        Ok(match mode {
            DecisionMode::DryRun => registry.check(input, unix_now())?,
            DecisionMode::Enroll => registry.decide(input, mode, unix_now())?,
        })
    })
    .await?;
    state.metrics().decision(&report, started.elapsed().as_secs_f64());
    Ok(report)
}

fn body(
    request: Result<Json<DecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<DecisionRequest, ApiError> {
    request.map(|Json(r)| r).map_err(|e| ApiError::malformed(e.body_text()))
}

/// Dry run of an enrollment decision: explains it, changes nothing, audits
/// nothing, and never checks a password (a registration with one answers
/// `password-required`, the same for a right and a wrong password).
#[utoipa::path(post, path = "/v1/decisions/check", tag = "decisions", request_body = DecisionRequest,
    responses(
        (status = 200, description = "The decision (allowed or denied)", body = DecisionReport),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn check(
    State(state): State<AppState>,
    request: Result<Json<DecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DecisionReport>, ApiError> {
    Ok(Json(decide(state, body(request)?, DecisionMode::DryRun).await?))
}

/// The real enrollment decision: counts against max-enrollments, applies the
/// lockout rule, and is audited.
#[utoipa::path(post, path = "/v1/decisions/enroll", tag = "decisions", request_body = DecisionRequest,
    responses(
        (status = 200, description = "The decision (allowed or denied)", body = DecisionReport),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (a name longer than DNS allows); nothing is audited",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed enrollments from this address (Retry-After); nothing was \
            decided", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks at once (nothing was decided), or the store is \
            unavailable: try again", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Result<Json<DecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DecisionReport>, ApiError> {
    state.failures().check(peer.ip()).map_err(ApiError::too_many_failures)?;
    let report = decide(state.clone(), body(request)?, DecisionMode::Enroll).await?;
    if !report.allowed {
        state.failures().failed(peer.ip());
    }
    Ok(Json(report))
}
