//! Enrollment decisions: `check` (dry run) and `enroll` (the real decision).

use std::time::Instant;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use zeroize::Zeroizing;

use super::blocking;
use crate::registry::{DecisionMode, DecisionReport, EnrollmentInput, unix_now};
use crate::service::AppState;
use crate::service::auth::{Caller, Principal, Reader};
use crate::service::problem::{ApiError, Problem};

pub use crate::api::DecisionRequest;

async fn decide(
    state: AppState,
    request: DecisionRequest,
    mode: DecisionMode,
    caller: Option<String>,
    idempotency_key: Option<String>,
) -> Result<DecisionReport, ApiError> {
    let registry = state.registry().clone();
    let input = EnrollmentInput {
        procedure: request.procedure,
        fqdn: request.fqdn,
        ip: request.ip,
        serial: request.serial,
        password: request.password.map(Zeroizing::new),
        caller,
        idempotency_key,
        ..Default::default()
    };
    let started = Instant::now();
    let report = match mode {
        DecisionMode::DryRun => blocking(move || Ok(registry.check(input, unix_now())?)).await?,
        // Queued for the group commit: no thread is held while its batch is
        // written, and the answer comes once it is durable.
        DecisionMode::Enroll => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            registry.enroll_then(input, unix_now(), move |answer| {
                let _ = tx.send(answer);
            });
            rx.await.map_err(|_| ApiError::internal("the enrollment writer stopped without an answer"))??
        }
    };
    state.metrics().decision(&report, started.elapsed().as_secs_f64());
    Ok(report)
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(ApiError::invalid("idempotency-key", "must be 1 to 255 visible ASCII characters")),
    }
}

fn body(
    request: Result<Json<DecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<DecisionRequest, ApiError> {
    request.map(|Json(r)| r).map_err(|e| ApiError::malformed(e.body_text()))
}

/// Dry run of an enrollment decision: explains it, changes nothing, audits
/// nothing, and never checks a password (a registration with one answers
/// `password-required`, the same for a right and a wrong password). For a
/// CA caller of the request's token procedure, or an officer of its domain.
#[utoipa::path(post, path = "/v1/decisions/check", operation_id = "checkEnrollment", tag = "decisions", request_body = DecisionRequest,
    security(("caller" = []), ("officer" = [])),
    responses(
        (status = 200, description = "The decision (allowed or denied)", body = DecisionReport),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No credential, or a refused one", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "The caller may not ask for that token procedure, or the officer is not of \
            its domain", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn check(
    State(state): State<AppState>,
    Reader(principal): Reader,
    request: Result<Json<DecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DecisionReport>, ApiError> {
    let request = body(request)?;
    match &principal {
        Principal::Caller(caller) => Caller(caller.clone()).may_ask_for(&request.procedure)?,
        Principal::Officer(officer) => {
            let registry = state.registry().clone();
            let name = request.procedure.clone();
            let domain = blocking(move || Ok(registry.procedure(&name)?.map(|p| p.domain))).await?;
            if !domain.is_some_and(|d| officer.may_act_in(&d)) {
                return Err(ApiError::forbidden(format!(
                    "officer {:?} is not of the domain of token procedure {:?}",
                    officer.name, request.procedure
                )));
            }
        }
    }
    Ok(Json(decide(state, request, DecisionMode::DryRun, None, None).await?))
}

/// The real enrollment decision: counts against max-enrollments, applies the
/// lockout rule, and is audited under the CA caller's name. For an enabled
/// CA caller of the request's token procedure only. With an
/// `Idempotency-Key`, a retry of the same request (the same key, within a
/// day) gets the first answer and counts nothing again: a caller that timed
/// out may retry a one-time registration safely.
#[utoipa::path(post, path = "/v1/decisions/enroll", operation_id = "decideEnrollment", tag = "decisions", request_body = DecisionRequest,
    security(("caller" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters, unique per request of this caller")),
    responses(
        (status = 200, description = "The decision (allowed or denied)", body = DecisionReport),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No caller secret, or a refused or disabled one", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "The caller may not ask for that token procedure", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (a name longer than DNS allows; an Idempotency-Key \
            malformed or used for another request); nothing is audited",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (a name longer than DNS allows); nothing is audited",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed enrollments from this address (Retry-After); nothing was \
            decided", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks at once (nothing was decided), or the store is \
            unavailable: try again", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    request: Result<Json<DecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DecisionReport>, ApiError> {
    let key = idempotency_key(&headers)?;
    let request = body(request)?;
    caller.may_ask_for(&request.procedure)?;
    state.failures().check(peer.ip()).map_err(ApiError::too_many_failures)?;
    let report = decide(state.clone(), request, DecisionMode::Enroll, Some(caller.0.name.clone()), key).await?;
    if !report.allowed {
        state.failures().failed(peer.ip());
    }
    Ok(Json(report))
}
