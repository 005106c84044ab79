//! The audit log: pages of records, and the verification of the hash chain.

use axum::Json;
use axum::extract::State;

use crate::service::extract::Query;
use serde::{Deserialize, Serialize};

use super::{ParameterRefusals, ReadRefusals, blocking, next_page, page};
use crate::service::AppState;
use crate::service::auth::Officer;
use crate::service::problem::{ApiError, Problem};

pub use crate::api::{AuditPage, AuditVerificationView};

/// Page of the audit log.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records after this sequence number (the `next_after` of the previous page).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Audit records, oldest first: every record for an officer of every
/// domain, the records of the officer's domains otherwise (instance-wide
/// records, such as policy changes, are read by officers of every domain).
#[utoipa::path(get, path = "/v1/audit", operation_id = "listAuditRecords", tag = "audit", params(AuditQuery),
    security(("officer" = [])),
    responses(
        (status = 200, description = "A page of audit records", body = AuditPage),
        ReadRefusals,
        ParameterRefusals,
    ))]
pub async fn list(
    State(state): State<AppState>,
    officer: Officer,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let (after, limit) = page(query.after, query.limit)?;
    let registry = state.registry().clone();
    let mut items =
        blocking(move || Ok(registry.audit_records_of(officer.domains().as_deref(), after, limit + 1)?)).await?;
    let next_after = next_page(&mut items, limit as usize, |r| r.seq);
    Ok(Json(AuditPage { items, next_after }))
}

/// A checkpoint of the log as it is now (C2SP tlog-checkpoint, a signed
/// note): origin, record count and root hash, signed by the instance key.
/// Keep it outside the database; `prereg audit verify --checkpoint FILE`
/// then shows whether the log was cut short or rewritten since.
#[utoipa::path(get, path = "/v1/audit/checkpoint", operation_id = "getAuditCheckpoint", tag = "audit",
    security(("officer" = [])),
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain"),
        ReadRefusals,
        (status = 422, description = "No instance key in the data folder", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn checkpoint(State(state): State<AppState>, officer: Officer) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    officer.of_every_domain("a checkpoint of the whole log")?;
    let registry = state.registry().clone();
    let (_, note) = blocking(move || Ok(registry.audit_checkpoint()?)).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// Walks the whole hash chain and names the first bad record.
#[utoipa::path(get, path = "/v1/audit/verify", operation_id = "verifyAuditLog", tag = "audit",
    security(("officer" = [])),
    responses((status = 200, description = "The verification (intact or not)", body = AuditVerificationView),
        ReadRefusals))]
pub async fn verify(State(state): State<AppState>, officer: Officer) -> Result<Json<AuditVerificationView>, ApiError> {
    officer.of_every_domain("verifying the whole chain")?;
    let registry = state.registry().clone();
    let v = blocking(move || Ok(registry.verify_audit()?)).await?;
    Ok(Json(AuditVerificationView {
        intact: v.fault.is_none(),
        checked: v.checked,
        signatures: Some(v.signatures),
        first_bad_seq: v.fault.as_ref().map(|f| f.seq()),
        fault: v.fault.map(|f| f.to_string()),
    }))
}
