//! Rows to records: the column lists, the functions that read a row, and
//! the integer conversions PostgreSQL's signed types need.

use postgres::Row;
use prereg_core::{Protocol, RegistrationState};

use crate::{
    AuditRecord, CallerRecord, CertificateRecord, CertificateState, ImportRecord, ImportStatus, NodeRecord,
    OfficerRecord, ProcedureRecord, RegistrationRecord, ShadowSide, StoreError,
};

pub(super) fn int(value: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is out of range")))
}

pub(super) fn col<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

pub(super) fn u64_at(row: &Row, idx: usize) -> Result<u64, StoreError> {
    Ok(col::<i64>(row, idx)? as u64)
}

pub(super) fn opt_u64_at(row: &Row, idx: usize) -> Result<Option<u64>, StoreError> {
    Ok(col::<Option<i64>>(row, idx)?.map(|v| v as u64))
}

pub(super) fn u32_at(row: &Row, idx: usize) -> Result<u32, StoreError> {
    let v: i32 = col(row, idx)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {idx}: negative count {v}")))
}

pub(super) fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("not a JSON list: {e}")))
}

pub(super) const PROCEDURE_COLUMNS: &str =
    "name, domain, protocol, require_preregistration, allowed_domains, certificate_days, created_by, created_at";

pub(super) fn procedure_from(row: &Row) -> Result<ProcedureRecord, StoreError> {
    let protocol: String = col(row, 2)?;
    Ok(ProcedureRecord {
        name: col(row, 0)?,
        domain: col(row, 1)?,
        protocol: Protocol::parse(&protocol)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown protocol {protocol:?}")))?,
        require_preregistration: col(row, 3)?,
        allowed_domains: json_list(&col::<String>(row, 4)?)?,
        certificate_days: u32_at(row, 5)?,
        created_by: col(row, 6)?,
        created_at: u64_at(row, 7)?,
    })
}

pub(super) const OFFICER_COLUMNS: &str =
    "kid, name, algorithm, public_key_pem, domains, created_by, created_at, disabled_at";

pub(super) fn officer_from(row: &Row) -> Result<OfficerRecord, StoreError> {
    Ok(OfficerRecord {
        kid: col(row, 0)?,
        name: col(row, 1)?,
        algorithm: col(row, 2)?,
        public_key_pem: col(row, 3)?,
        domains: json_list(&col::<String>(row, 4)?)?,
        created_by: col(row, 5)?,
        created_at: u64_at(row, 6)?,
        disabled_at: opt_u64_at(row, 7)?,
    })
}

pub(super) const CALLER_COLUMNS: &str =
    "name, procedures, secret_sha256, certificate_sha256, created_by, created_at, disabled_at, webhook_secret_sealed";

pub(super) fn caller_from(row: &Row) -> Result<CallerRecord, StoreError> {
    Ok(CallerRecord {
        name: col(row, 0)?,
        procedures: json_list(&col::<String>(row, 1)?)?,
        secret_sha256: col(row, 2)?,
        certificate_sha256: col(row, 3)?,
        created_by: col(row, 4)?,
        created_at: u64_at(row, 5)?,
        disabled_at: opt_u64_at(row, 6)?,
        webhook_secret_sealed: col(row, 7)?,
    })
}

pub(super) const REGISTRATION_COLUMNS: &str = "id, domain, procedure, pattern, ip, serial, password_hash IS NOT NULL, \
     expires_at, max_enrollments, enrollments, failed_attempts, state, created_by, created_at, import_id";

pub(super) fn registration_from(row: &Row) -> Result<RegistrationRecord, StoreError> {
    let state: &str = col(row, 11)?;
    Ok(RegistrationRecord {
        id: u64_at(row, 0)?,
        domain: col(row, 1)?,
        procedure: col(row, 2)?,
        pattern: col(row, 3)?,
        ip: col(row, 4)?,
        serial: col(row, 5)?,
        has_password: col(row, 6)?,
        expires_at: opt_u64_at(row, 7)?,
        max_enrollments: col::<Option<i32>>(row, 8)?.map(|v| v.max(0) as u32),
        enrollments: u32_at(row, 9)?,
        failed_attempts: u32_at(row, 10)?,
        state: RegistrationState::parse(state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        created_by: col(row, 12)?,
        created_at: u64_at(row, 13)?,
        import_id: opt_u64_at(row, 14)?,
    })
}

pub(super) const IMPORT_COLUMNS: &str = "id, sha256, procedure, file_name, partial, dry_run, officer, status, rows_total, \
     rows_done, created, unchanged, errors, started_at, finished_at, message";

pub(super) fn import_from(row: &Row) -> Result<ImportRecord, StoreError> {
    let status: String = col(row, 7)?;
    Ok(ImportRecord {
        id: u64_at(row, 0)?,
        sha256: col(row, 1)?,
        procedure: col(row, 2)?,
        file_name: col(row, 3)?,
        partial: col(row, 4)?,
        dry_run: col(row, 5)?,
        officer: col(row, 6)?,
        status: ImportStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown import status {status:?}")))?,
        rows_total: u64_at(row, 8)?,
        rows_done: u64_at(row, 9)?,
        created: u64_at(row, 10)?,
        unchanged: u64_at(row, 11)?,
        errors: u64_at(row, 12)?,
        started_at: u64_at(row, 13)?,
        finished_at: opt_u64_at(row, 14)?,
        message: col(row, 15)?,
    })
}

pub(super) const AUDIT_COLUMNS: &str =
    "seq, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, request, detail, mac, domain";

pub(super) fn audit_from(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: u64_at(row, 0)?,
        prev_hash: col(row, 1)?,
        hash: col(row, 2)?,
        time: u64_at(row, 3)?,
        actor: col(row, 4)?,
        action: col(row, 5)?,
        object: col(row, 6)?,
        outcome: col(row, 7)?,
        reason: col(row, 8)?,
        policy_sha256: col(row, 9)?,
        request: col(row, 10)?,
        detail: col(row, 11)?,
        mac: col(row, 12)?,
        domain: col(row, 13)?,
    })
}

pub(super) const CERTIFICATE_COLUMNS: &str =
    "serial, transaction_id, registration, state, der, request, issued_at, expires_at, revoked_at, revocation_reason";

pub(super) fn certificate_from(row: &Row) -> Result<CertificateRecord, StoreError> {
    let state: String = col(row, 3)?;
    Ok(CertificateRecord {
        serial: col(row, 0)?,
        transaction: col(row, 1)?,
        registration: opt_u64_at(row, 2)?,
        state: CertificateState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        der: col(row, 4)?,
        request: col(row, 5)?,
        issued_at: u64_at(row, 6)?,
        expires_at: u64_at(row, 7)?,
        revoked_at: opt_u64_at(row, 8)?,
        revocation_reason: col::<Option<i32>>(row, 9)?.and_then(|r| u8::try_from(r).ok()),
    })
}

pub(super) const NODE_COLUMNS: &str =
    "node_id, address, version, started_at, seen_at, policy_sha256, policy_name, index_seq, stopped";

pub(super) fn node_from(row: &Row) -> Result<NodeRecord, StoreError> {
    Ok(NodeRecord {
        node_id: col(row, 0)?,
        address: col(row, 1)?,
        version: col(row, 2)?,
        started_at: u64_at(row, 3)?,
        seen_at: u64_at(row, 4)?,
        policy_sha256: col(row, 5)?,
        policy_name: col(row, 6)?,
        index_seq: u64_at(row, 7)?,
        stopped: col(row, 8)?,
    })
}

pub(super) fn shadow_side(row: &Row, at: usize) -> Result<ShadowSide, StoreError> {
    Ok(ShadowSide {
        sha256: col(row, at)?,
        allowed: col(row, at + 1)?,
        reason: col(row, at + 2)?,
        registration: opt_u64_at(row, at + 3)?,
        explanation: col(row, at + 4)?,
    })
}
