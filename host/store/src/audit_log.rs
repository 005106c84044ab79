//! The audit log: the hash chain's records, appended and read, and where keyed MACs begin.

use serde::Serialize;

use super::StoreError;

/// One record of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// Hash of the previous record (hex; 64 zeros for the first).
    pub prev_hash: String,
    /// Hash of this record (hex), see `prereg::audit`.
    pub hash: String,
    /// Unix seconds.
    pub time: u64,
    /// Officer key id, or `device` for enrollment decisions, `init` for set-up.
    pub actor: String,
    /// What was done (`registration.create`, `enroll`, ...).
    pub action: String,
    /// What it was done to (`registration:42`, `procedure:scep-routers`, ...).
    pub object: String,
    /// `ok`, `allowed` or `denied`.
    pub outcome: String,
    /// SPEC reason code, for decisions.
    pub reason: Option<String>,
    /// SHA-256 of the policy that decided or validated, hex.
    pub policy_sha256: Option<String>,
    /// The signed request (JWS), or the decision request as JSON.
    pub request: String,
    /// Further detail (the explanation of a decision).
    pub detail: String,
    /// HMAC-SHA256 of its sequence number and hash under the instance's
    /// audit key (hex), for records written with it; see `prereg::audit`.
    #[serde(default)]
    pub mac: Option<String>,
    /// The domain the record belongs to (what officers of that domain may
    /// read); `None`: instance-wide, or written before records had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// The audit log: the hash chain's records, appended and read, and where keyed MACs begin.
pub trait AuditLog {
    /// The last audit record's sequence number and hash.
    fn audit_head(&mut self) -> Result<Option<(u64, String)>, StoreError>;

    /// Appends an audit record.
    fn append_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError>;

    /// Audit records with `seq > after`, ascending, at most `limit`.
    fn audit_records(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// Audit records of `domains` with `seq > after`, ascending, at most `limit`.
    fn audit_records_in(&mut self, domains: &[String], after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// The newest audit records of `domains` with `seq < before`, newest
    /// first, at most `limit` (`None`: every domain).
    fn latest_audit_records(
        &mut self,
        domains: Option<&[String]>,
        before: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The first audit record written with the instance's audit key, and the
    /// MAC of that marker; `None` before any.
    fn audit_keyed_from(&mut self) -> Result<Option<(u64, String)>, StoreError>;

    /// Records the first keyed audit record, unless one is recorded already.
    fn set_audit_keyed_from(&mut self, seq: u64, mac: &str) -> Result<(), StoreError>;
}
