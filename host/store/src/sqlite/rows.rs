//! Rows to records: the column lists and the functions that read a row.

use prereg_core::{Protocol, RegistrationState};
use rusqlite::{ErrorCode, Row};

use crate::{
    AuditRecord, CallerRecord, CertificateRecord, CertificateState, ImportRecord, ImportStatus, OfficerRecord,
    ProcedureRecord, RegistrationRecord, ShadowSide,
};

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation
        && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
}

pub(super) fn json_list(text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

pub(super) fn bad_value(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {value:?}").into(),
    )
}

pub(super) fn u64_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(idx)? as u64)
}

pub(super) fn certificate_from(row: &Row<'_>) -> rusqlite::Result<CertificateRecord> {
    let state: String = row.get(3)?;
    Ok(CertificateRecord {
        serial: row.get(0)?,
        transaction: row.get(1)?,
        registration: row.get::<_, Option<i64>>(2)?.map(|r| r as u64),
        state: CertificateState::parse(&state).ok_or_else(|| bad_value("state", &state))?,
        der: row.get(4)?,
        request: row.get(5)?,
        issued_at: row.get::<_, i64>(6)? as u64,
        expires_at: row.get::<_, i64>(7)? as u64,
        revoked_at: row.get::<_, Option<i64>>(8)?.map(|t| t as u64),
        revocation_reason: row.get::<_, Option<i64>>(9)?.and_then(|r| u8::try_from(r).ok()),
    })
}

/// The columns [`certificate_from`] reads, in its order.
pub(super) const CERTIFICATE_COLUMNS: &str =
    "serial, transaction_id, registration, state, der, request, issued_at, expires_at, revoked_at, revocation_reason";

pub(super) fn procedure_from(row: &Row<'_>) -> rusqlite::Result<ProcedureRecord> {
    let protocol: String = row.get("protocol")?;
    Ok(ProcedureRecord {
        name: row.get("name")?,
        domain: row.get("domain")?,
        protocol: Protocol::parse(&protocol).ok_or_else(|| bad_value("protocol", &protocol))?,
        require_preregistration: row.get("require_preregistration")?,
        allowed_domains: json_list(&row.get::<_, String>("allowed_domains")?)?,
        certificate_days: row.get("certificate_days")?,
        created_by: row.get("created_by")?,
        created_at: u64_col(row, "created_at")?,
    })
}

pub(super) fn officer_from(row: &Row<'_>) -> rusqlite::Result<OfficerRecord> {
    Ok(OfficerRecord {
        kid: row.get("kid")?,
        name: row.get("name")?,
        algorithm: row.get("algorithm")?,
        public_key_pem: row.get("public_key_pem")?,
        domains: json_list(&row.get::<_, String>("domains")?)?,
        created_by: row.get("created_by")?,
        created_at: u64_col(row, "created_at")?,
        disabled_at: row.get::<_, Option<i64>>("disabled_at")?.map(|t| t as u64),
    })
}

pub(super) fn caller_from(row: &Row<'_>) -> rusqlite::Result<CallerRecord> {
    Ok(CallerRecord {
        name: row.get("name")?,
        procedures: json_list(&row.get::<_, String>("procedures")?)?,
        secret_sha256: row.get("secret_sha256")?,
        certificate_sha256: row.get("certificate_sha256")?,
        created_by: row.get("created_by")?,
        created_at: u64_col(row, "created_at")?,
        disabled_at: row.get::<_, Option<i64>>("disabled_at")?.map(|t| t as u64),
        webhook_secret_sealed: row.get("webhook_secret_sealed")?,
    })
}

pub(super) const REGISTRATION_COLUMNS: &str = "id, domain, procedure, pattern, ip, serial, password_hash IS NOT NULL AS has_password, \
     expires_at, max_enrollments, enrollments, failed_attempts, state, created_by, created_at, import_id";

/// By position, in the order of [`REGISTRATION_COLUMNS`]: looking columns up
/// by name costs more than the rest of the row (index builds read millions).
pub(super) fn registration_from(row: &Row<'_>) -> rusqlite::Result<RegistrationRecord> {
    let state = row
        .get_ref(11)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(RegistrationRecord {
        id: row.get::<_, i64>(0)? as u64,
        domain: row.get(1)?,
        procedure: row.get(2)?,
        pattern: row.get(3)?,
        ip: row.get(4)?,
        serial: row.get(5)?,
        has_password: row.get(6)?,
        expires_at: row.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        max_enrollments: row.get(8)?,
        enrollments: row.get(9)?,
        failed_attempts: row.get(10)?,
        state: RegistrationState::parse(state).ok_or_else(|| bad_value("state", state))?,
        created_by: row.get(12)?,
        created_at: row.get::<_, i64>(13)? as u64,
        import_id: row.get::<_, Option<i64>>(14)?.map(|v| v as u64),
    })
}

pub(super) fn import_from(row: &Row<'_>) -> rusqlite::Result<ImportRecord> {
    let status: String = row.get("status")?;
    Ok(ImportRecord {
        id: u64_col(row, "id")?,
        sha256: row.get("sha256")?,
        procedure: row.get("procedure")?,
        file_name: row.get("file_name")?,
        partial: row.get("partial")?,
        dry_run: row.get("dry_run")?,
        officer: row.get("officer")?,
        status: ImportStatus::parse(&status).ok_or_else(|| bad_value("import status", &status))?,
        rows_total: u64_col(row, "rows_total")?,
        rows_done: u64_col(row, "rows_done")?,
        created: u64_col(row, "created")?,
        unchanged: u64_col(row, "unchanged")?,
        errors: u64_col(row, "errors")?,
        started_at: u64_col(row, "started_at")?,
        finished_at: row.get::<_, Option<i64>>("finished_at")?.map(|v| v as u64),
        message: row.get("message")?,
    })
}

pub(super) fn audit_from(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: u64_col(row, "seq")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
        time: u64_col(row, "time")?,
        actor: row.get("actor")?,
        action: row.get("action")?,
        object: row.get("object")?,
        outcome: row.get("outcome")?,
        reason: row.get("reason")?,
        policy_sha256: row.get("policy_sha256")?,
        request: row.get("request")?,
        detail: row.get("detail")?,
        mac: row.get("mac")?,
        domain: row.get("domain")?,
    })
}

/// One side of a shadow disagreement, from five columns starting at `at`.
pub(super) fn shadow_side(r: &Row<'_>, at: usize) -> rusqlite::Result<ShadowSide> {
    Ok(ShadowSide {
        sha256: r.get(at)?,
        allowed: r.get(at + 1)?,
        reason: r.get(at + 2)?,
        registration: r.get::<_, Option<i64>>(at + 3)?.map(|id| id as u64),
        explanation: r.get(at + 4)?,
    })
}
