//! Storage: the [`Storage`] trait and its records. [`sqlite`] is the
//! embedded default; [`postgres`] serves a cluster of nodes sharing one
//! database. Both run the same migrations ([`schema`]), and the same test
//! suite runs against both.
//!
//! Every operation runs in a transaction ([`Tx`]), so that a change, the
//! single-use request id that authorized it and its audit record are written
//! together or not at all.

pub mod copy;
mod errors;
pub mod postgres;
pub mod postgres_tls;
pub mod schema;
pub mod sqlite;

use prereg_core::{Protocol, RegistrationState};
use serde::Serialize;

pub use errors::StoreError;
pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

/// Opens the store at `location`: a `postgres://` URL, or the path of a
/// SQLite database file.
pub fn open(location: &str) -> Result<std::sync::Arc<dyn Storage>, StoreError> {
    if postgres::is_postgres_url(location) {
        Ok(std::sync::Arc::new(PostgresStorage::open(location)?))
    } else {
        Ok(std::sync::Arc::new(SqliteStorage::open(std::path::Path::new(location))?))
    }
}

/// Something that changed in the store, as a listener hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// Registrations changed (the change log grew).
    Registrations,
    /// The policy versions, the active or the shadow policy changed.
    Policy,
    /// The listener (re)connected: anything may have changed unheard.
    Reconnected,
}

/// Waits for changes made by any process or node ([`Storage::listen`]).
pub trait StoreListener: Send {
    /// The changes heard within `timeout` (empty if none).
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Vec<StoreEvent>, StoreError>;
}

/// A node serving the store (`prereg serve`), as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NodeRecord {
    /// Its name (`--node`, or host:port).
    pub node_id: String,
    /// The address it listens on.
    pub address: String,
    /// prereg version.
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
    /// When it last reported, Unix seconds.
    pub seen_at: u64,
    /// SHA-256 of its active policy.
    pub policy_sha256: String,
    /// Name and version of its active policy.
    pub policy_name: String,
    /// The registration change its in-memory index had applied.
    pub index_seq: u64,
    /// It stopped cleanly.
    pub stopped: bool,
}

/// A registration with everything the store keeps of it (for `prereg migrate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    /// The record.
    pub record: RegistrationRecord,
    /// Its encoded index key.
    pub index_key: String,
    /// PHC password hash.
    pub password_hash: Option<String>,
    /// Sealed password.
    pub password_sealed: Option<String>,
    /// The row of its import.
    pub import_row: Option<u64>,
}

/// A token procedure as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProcedureRecord {
    /// Unique name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Protocol.
    #[serde(serialize_with = "ser_display", deserialize_with = "de_protocol")]
    #[schema(value_type = String, example = "scep")]
    pub protocol: Protocol,
    /// Whether preregistration is required.
    pub require_preregistration: bool,
    /// Canonical allowed domains; empty: any.
    pub allowed_domains: Vec<String>,
    /// Validity of the certificates issued through it, in days.
    pub certificate_days: u32,
    /// Officer key id that created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// An RA officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OfficerRecord {
    /// Key id (RFC 7638 JWK thumbprint of its public key).
    pub kid: String,
    /// Unique name.
    pub name: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// SPKI PEM of the public key.
    pub public_key_pem: String,
    /// Domains it may act in; `["*"]`: all.
    pub domains: Vec<String>,
    /// Officer key id that added it (`init` for the first).
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// When its key was disabled (`prereg officer disable`), Unix seconds:
    /// requests it signs are refused from then on.
    #[serde(default)]
    pub disabled_at: Option<u64>,
}

impl OfficerRecord {
    /// Whether the officer may act in `domain`.
    pub fn may_act_in(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d == "*" || d == domain)
    }

    /// Whether it may act in every domain.
    pub fn has_all_domains(&self) -> bool {
        self.domains.iter().any(|d| d == "*")
    }

    /// The domains whose data it may read: `None` for every domain.
    pub fn readable_domains(&self) -> Option<Vec<String>> {
        (!self.has_all_domains()).then(|| self.domains.clone())
    }
}

/// A registration as stored (the password hash is read separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RegistrationRecord {
    /// Identifier.
    pub id: u64,
    /// Domain (of the creating procedure).
    pub domain: String,
    /// Creating procedure.
    pub procedure: String,
    /// Canonical pattern.
    pub pattern: String,
    /// Canonical IP, if set.
    pub ip: Option<String>,
    /// Serial, if set.
    pub serial: Option<String>,
    /// Whether a password is set.
    pub has_password: bool,
    /// End of validity, Unix seconds.
    pub expires_at: Option<u64>,
    /// Enrollment limit.
    pub max_enrollments: Option<u32>,
    /// Enrollments so far.
    pub enrollments: u32,
    /// Password failures in a row.
    pub failed_attempts: u32,
    /// State.
    #[serde(serialize_with = "ser_display", deserialize_with = "de_state")]
    #[schema(value_type = String, example = "open")]
    pub state: RegistrationState,
    /// Officer key id.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The bulk import it came from, if any.
    pub import_id: Option<u64>,
}

impl RegistrationRecord {
    /// The registration as a policy sees it.
    pub fn to_policy_view(&self) -> prereg_core::Registration {
        prereg_core::Registration {
            id: self.id,
            pattern: self.pattern.clone(),
            ip: self.ip.clone(),
            serial: self.serial.clone(),
            has_password: self.has_password,
            state: self.state,
            expires_at: self.expires_at,
            max_enrollments: self.max_enrollments,
            enrollments: self.enrollments,
        }
    }
}

/// A registration to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// Domain.
    pub domain: String,
    /// Creating procedure.
    pub procedure: String,
    /// Canonical pattern.
    pub pattern: String,
    /// Encoded index key (see [`prereg_core::IndexKey::encode`]).
    pub index_key: String,
    /// Canonical IP.
    pub ip: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// PHC string of the password hash.
    pub password_hash: Option<String>,
    /// The password sealed to the instance key (see [`crate::sealing`]).
    pub password_sealed: Option<String>,
    /// End of validity.
    pub expires_at: Option<u64>,
    /// Enrollment limit.
    pub max_enrollments: Option<u32>,
    /// Officer key id.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The bulk import and its row number, when it came from one.
    pub import: Option<(u64, u64)>,
    /// Staged by that import: seen by nobody until the import is
    /// `completed` (schema migration 13).
    pub staged: bool,
}

/// Who runs an import, and when it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLease {
    /// The import.
    pub id: u64,
    /// The process running it (`host:pid:start`), `None` for imports
    /// started by a prereg older than leases.
    pub owner: Option<String>,
    /// Unix seconds of its owner's last renewal.
    pub heartbeat_at: Option<u64>,
}

/// An entry of the registration change log: the registrations `first_id` to
/// `last_id` (inclusive) were inserted, updated or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationChange {
    /// Its place in the log.
    pub seq: u64,
    /// First registration id changed.
    pub first_id: u64,
    /// Last registration id changed.
    pub last_id: u64,
}

/// Filters for listing registrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationFilter {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this token procedure.
    pub procedure: Option<String>,
    /// Only this state.
    pub state: Option<RegistrationState>,
    /// Only patterns containing this text (case-insensitive).
    pub search: Option<String>,
    /// Only ids greater than this (pagination).
    pub after_id: Option<u64>,
    /// At most this many.
    pub limit: Option<u32>,
    /// Only these domains (what the reading officer may see); `None`: every
    /// domain.
    pub domains: Option<Vec<String>>,
}

/// The status of a bulk import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImportStatus {
    /// Being processed.
    Running,
    /// Done: every good row is written (all rows, unless partial).
    Completed,
    /// Refused: bad rows and not partial, so nothing was written.
    Rejected,
    /// Stopped before the end (shutdown or crash); a partial import left its
    /// committed batches, and running it again completes it.
    Interrupted,
    /// Failed for a reason of the system (storage, policy).
    Failed,
}

impl ImportStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Running => "running",
            ImportStatus::Completed => "completed",
            ImportStatus::Rejected => "rejected",
            ImportStatus::Interrupted => "interrupted",
            ImportStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => ImportStatus::Running,
            "completed" => ImportStatus::Completed,
            "rejected" => ImportStatus::Rejected,
            "interrupted" => ImportStatus::Interrupted,
            "failed" => ImportStatus::Failed,
            _ => return None,
        })
    }
}

/// A bulk import as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportRecord {
    /// Identifier.
    pub id: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Token procedure.
    pub procedure: String,
    /// The file's name, as given.
    pub file_name: String,
    /// Good rows are written even if some are bad.
    pub partial: bool,
    /// Validation only.
    pub dry_run: bool,
    /// Officer key id.
    pub officer: String,
    /// Status.
    pub status: ImportStatus,
    /// Data rows in the file.
    pub rows_total: u64,
    /// Rows processed so far.
    pub rows_done: u64,
    /// Registrations created.
    pub created: u64,
    /// Rows already imported from this same file earlier.
    pub unchanged: u64,
    /// Bad rows.
    pub errors: u64,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds.
    pub finished_at: Option<u64>,
    /// Summary in words.
    pub message: String,
}

/// A loaded policy version (the component is read separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PolicyVersionRecord {
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Name, from its metadata.
    pub name: String,
    /// Version, from its metadata.
    pub version: String,
    /// WIT version it was built against.
    pub wit_version: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Officer key id that loaded it.
    pub loaded_by: String,
    /// Unix seconds.
    pub loaded_at: u64,
    /// Whether it is the active policy.
    pub active: bool,
}

/// The shadow policy and how its decisions compared so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ShadowRecord {
    /// SHA-256 of the shadow component.
    pub sha256: String,
    /// Officer key id that set it.
    pub set_by: String,
    /// Unix seconds.
    pub set_at: u64,
    /// Enrollments decided by both policies since it was set.
    pub compared: u64,
    /// Of which the two disagreed.
    pub disagreed: u64,
}

/// One side of a shadowed decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ShadowSide {
    /// SHA-256 of the policy.
    pub sha256: String,
    /// Whether it allowed.
    pub allowed: bool,
    /// Its reason code.
    pub reason: String,
    /// The registration that decided.
    pub registration: Option<u64>,
    /// Its explanation.
    pub explanation: String,
}

/// Where a certificate of the enrollment front stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateState {
    /// CMP: sent and counted, waiting for the client's certConf; revoked
    /// (and the count given back) if it is rejected or never comes.
    Held,
    /// CMP, before schema migration 10: a certConf was being decided. No
    /// longer entered.
    Confirming,
    /// Issued, counted and (CMP) confirmed.
    Issued,
    /// The client rejected it or never confirmed it: revoked, not counted.
    Rejected,
}

impl CertificateState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateState::Held => "held",
            CertificateState::Confirming => "confirming",
            CertificateState::Issued => "issued",
            CertificateState::Rejected => "rejected",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(CertificateState::Held),
            "confirming" => Some(CertificateState::Confirming),
            "issued" => Some(CertificateState::Issued),
            "rejected" => Some(CertificateState::Rejected),
            _ => None,
        }
    }
}

/// A certificate the enrollment front issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Serial number: lower-case hex of the INTEGER's content octets.
    pub serial: String,
    /// The protocol's transaction (`cmp:<hex>`, `scep:<id>`).
    pub transaction: String,
    /// The registration it was issued under.
    pub registration: Option<u64>,
    /// Where it stands.
    pub state: CertificateState,
    /// The certificate (DER).
    pub der: Vec<u8>,
    /// What a confirmation needs again (JSON; never a password).
    pub request: String,
    /// Unix seconds.
    pub issued_at: u64,
    /// Held: the confirmation deadline; otherwise the certificate's notAfter.
    pub expires_at: u64,
    /// When it was revoked, Unix seconds; `None`: it is not.
    pub revoked_at: Option<u64>,
    /// The RFC 5280 CRLReason code of its revocation (`None`: unspecified).
    pub revocation_reason: Option<u8>,
}

/// A CRL the CA issued (schema migration 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// Its cRLNumber.
    pub number: u64,
    /// thisUpdate, Unix seconds.
    pub this_update: u64,
    /// nextUpdate, Unix seconds.
    pub next_update: u64,
    /// How many revoked certificates it lists.
    pub revoked: u64,
    /// The CRL (DER).
    pub der: Vec<u8>,
}

/// A revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Serial number: lower-case hex of the INTEGER's content octets.
    pub serial: String,
    /// When it was revoked, Unix seconds.
    pub revoked_at: u64,
    /// Its CRLReason code (`None`: unspecified).
    pub reason: Option<u8>,
}

/// An enrollment where the shadow policy and the active one disagreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ShadowDisagreement {
    /// Id (order of recording).
    pub id: u64,
    /// Unix seconds.
    pub time: u64,
    /// The enrollment's audit record.
    pub audit_seq: u64,
    /// The request (JSON, without the password).
    pub request: serde_json::Value,
    /// What the active policy decided (and what counted).
    pub active: ShadowSide,
    /// What the shadow policy would have decided.
    pub shadow: ShadowSide,
}

/// A CA caller: a system that asks for enrollment decisions (the CA front
/// of SCEP/CMP/EST, another CA's webhook, a script), for the token
/// procedures it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CallerRecord {
    /// Unique name (it names the caller in the audit records of its decisions).
    pub name: String,
    /// The token procedures it may ask decisions for.
    pub procedures: Vec<String>,
    /// SHA-256 (hex) of its bearer secret; the secret itself is kept nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// SHA-256 fingerprint (hex) of its TLS client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    /// Officer key id that added it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// When it was disabled, Unix seconds: its credentials are refused from then on.
    #[serde(default)]
    pub disabled_at: Option<u64>,
}

/// The answer to a CA caller's Idempotency-Key, as kept.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentAnswer<'a> {
    /// The caller.
    pub caller: &'a str,
    /// Its key.
    pub key: &'a str,
    /// SHA-256 (hex) of the request it answered.
    pub request_sha256: &'a str,
    /// The answer (JSON).
    pub answer: &'a str,
    /// When, Unix seconds.
    pub at: u64,
}

/// One record of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// Hash of the previous record (hex; 64 zeros for the first).
    pub prev_hash: String,
    /// Hash of this record (hex), see [`crate::audit`].
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
    /// audit key (hex), for records written with it; see [`crate::audit`].
    #[serde(default)]
    pub mac: Option<String>,
    /// The domain the record belongs to (what officers of that domain may
    /// read); `None`: instance-wide, or written before records had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// The kind of transaction to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// Reads only; rolled back at the end.
    Read,
    /// Reads and writes; takes the write lock at once, so that decisions and
    /// writes are serialized.
    Write,
}

/// A storage backend.
pub trait Storage: Send + Sync {
    /// Opens a transaction.
    fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx>, StoreError>;

    /// A short description for logs (`sqlite:/path/prereg.sqlite3`), never
    /// with a password.
    fn describe(&self) -> String;

    /// A listener for changes made by other processes, if the backend can
    /// notify (PostgreSQL); `None`: poll (SQLite).
    fn listen(&self) -> Result<Option<Box<dyn StoreListener>>, StoreError> {
        Ok(None)
    }

    /// Checks the database's integrity before a service starts on it
    /// (SQLite: `PRAGMA quick_check`); a damaged one is
    /// [`StoreError::Damaged`], naming the file.
    fn check_integrity(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Records a node's heartbeat. It is not a rule-bearing write, so a
    /// backend may record it without taking the write lock (PostgreSQL does).
    fn report_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let mut tx = self.begin(TxKind::Write)?;
        tx.record_node(node)?;
        tx.commit()
    }
}

/// One transaction. Dropping it without [`Tx::commit`] rolls it back.
pub trait Tx: Send {
    /// The instance id (the `aud` of signed requests), if initialised.
    fn instance_id(&mut self) -> Result<Option<String>, StoreError>;
    /// Records the instance id (once).
    fn set_instance_id(&mut self, id: &str, now: u64) -> Result<(), StoreError>;
    /// The public half of the instance's sealing key, once recorded.
    fn sealing_key(&mut self) -> Result<Option<String>, StoreError>;
    /// Records the public half of the instance's sealing key.
    fn set_sealing_key(&mut self, public: &str) -> Result<(), StoreError>;

    /// A token procedure by name.
    fn procedure(&mut self, name: &str) -> Result<Option<ProcedureRecord>, StoreError>;
    /// Every token procedure.
    fn procedures(&mut self) -> Result<Vec<ProcedureRecord>, StoreError>;
    /// Inserts a token procedure (its domain is created if new).
    fn insert_procedure(&mut self, procedure: &ProcedureRecord) -> Result<(), StoreError>;

    /// An officer by key id.
    fn officer(&mut self, kid: &str) -> Result<Option<OfficerRecord>, StoreError>;
    /// Every officer.
    fn officers(&mut self) -> Result<Vec<OfficerRecord>, StoreError>;
    /// Inserts an officer.
    fn insert_officer(&mut self, officer: &OfficerRecord) -> Result<(), StoreError>;
    /// Disables an officer's key at `at`; false if it was disabled already.
    fn disable_officer(&mut self, kid: &str, at: u64) -> Result<bool, StoreError>;

    /// A CA caller by name.
    fn caller(&mut self, name: &str) -> Result<Option<CallerRecord>, StoreError>;
    /// The CA caller whose bearer secret has this SHA-256 (hex).
    fn caller_by_secret(&mut self, secret_sha256: &str) -> Result<Option<CallerRecord>, StoreError>;
    /// The CA caller whose TLS client certificate has this SHA-256 (hex).
    fn caller_by_certificate(&mut self, certificate_sha256: &str) -> Result<Option<CallerRecord>, StoreError>;
    /// Every CA caller, by name.
    fn callers(&mut self) -> Result<Vec<CallerRecord>, StoreError>;
    /// Inserts a CA caller; [`StoreError::Duplicate`] if the name or a
    /// credential exists.
    fn insert_caller(&mut self, caller: &CallerRecord) -> Result<(), StoreError>;
    /// Disables a CA caller at `at`; false if it was disabled already.
    fn disable_caller(&mut self, name: &str, at: u64) -> Result<bool, StoreError>;

    /// A registration by id.
    fn registration(&mut self, id: u64) -> Result<Option<RegistrationRecord>, StoreError>;
    /// Registrations by filter, by ascending id.
    fn registrations(&mut self, filter: &RegistrationFilter) -> Result<Vec<RegistrationRecord>, StoreError>;
    /// Registrations of `domain` filed under any of `keys` (encoded index keys),
    /// through the storage index; at most `limit` + 1 rows, so the caller can
    /// tell "too many".
    fn candidates(
        &mut self,
        domain: &str,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<RegistrationRecord>, StoreError>;
    /// The PHC password hash of a registration.
    fn password_hash(&mut self, id: u64) -> Result<Option<String>, StoreError>;
    /// Records a certificate of the enrollment front (kept: revoked ones
    /// stay listed on the CRL).
    fn insert_certificate(&mut self, certificate: &CertificateRecord) -> Result<(), StoreError>;
    /// Revokes a certificate that is not revoked yet; false if it was
    /// revoked already or is unknown.
    fn revoke_certificate(&mut self, serial: &str, reason: Option<u8>, at: u64) -> Result<bool, StoreError>;
    /// Every revoked certificate, by revocation time.
    fn revoked_certificates(&mut self) -> Result<Vec<RevokedCertificate>, StoreError>;
    /// How many certificates are revoked.
    fn count_revoked_certificates(&mut self) -> Result<u64, StoreError>;
    /// Held certificates whose confirmation deadline passed before `now`,
    /// at most `limit`.
    fn unconfirmed_certificates(&mut self, now: u64, limit: u32) -> Result<Vec<CertificateRecord>, StoreError>;
    /// The newest CRL.
    fn latest_crl(&mut self) -> Result<Option<CrlRecord>, StoreError>;
    /// Records a CRL (its number must be new).
    fn insert_crl(&mut self, crl: &CrlRecord) -> Result<(), StoreError>;
    /// The newest certificate of a protocol transaction.
    fn certificate_by_transaction(&mut self, transaction: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// A certificate by serial (lower-case hex).
    fn certificate_by_serial(&mut self, serial: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// Certificates in the order they were recorded, after position `after`,
    /// at most `limit`, each with its position.
    fn certificates(&mut self, after: u64, limit: u32) -> Result<Vec<(u64, CertificateRecord)>, StoreError>;
    /// Moves a certificate from state `from` to `to`; false if it was not in
    /// `from` (another process got there first).
    fn set_certificate_state(
        &mut self,
        serial: &str,
        from: CertificateState,
        to: CertificateState,
    ) -> Result<bool, StoreError>;
    /// The sealed password of a registration (for CMP's MAC), if it has one.
    fn password_sealed(&mut self, id: u64) -> Result<Option<String>, StoreError>;
    /// Inserts a registration; [`StoreError::Duplicate`] if its pattern exists
    /// in its domain.
    fn insert_registration(&mut self, registration: &NewRegistration) -> Result<u64, StoreError>;
    /// Registrations with all they keep, by id after `after`, at most `limit`.
    fn stored_registrations(&mut self, after: u64, limit: u32) -> Result<Vec<StoredRegistration>, StoreError>;
    /// Writes a registration as it was stored elsewhere, with its id.
    fn restore_registration(&mut self, registration: &StoredRegistration) -> Result<(), StoreError>;
    /// Writes an import record as it was stored elsewhere, with its id.
    fn restore_import(&mut self, import: &ImportRecord) -> Result<(), StoreError>;
    /// After restoring: new ids continue after the restored ones.
    fn restore_finish(&mut self) -> Result<(), StoreError>;
    /// The registration of `pattern` in `domain`, if any.
    fn registration_by_pattern(
        &mut self,
        domain: &str,
        pattern: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError>;
    /// Registrations by state (for metrics).
    fn count_registrations_by_state(&mut self) -> Result<Vec<(RegistrationState, u64)>, StoreError>;
    /// Updates state and counters.
    fn update_registration(
        &mut self,
        id: u64,
        state: RegistrationState,
        enrollments: u32,
        failed_attempts: u32,
    ) -> Result<(), StoreError>;
    /// Deletes a registration; false if there was none.
    fn delete_registration(&mut self, id: u64) -> Result<bool, StoreError>;

    /// Changes to registrations (inserts, updates, deletes) after sequence
    /// number `after`, oldest first, at most `limit`. Every committed change
    /// has one: an implementation logs the ids it inserts, updates and
    /// deletes in the same transaction.
    fn registration_changes(&mut self, after: u64, limit: u32) -> Result<Vec<RegistrationChange>, StoreError>;
    /// The oldest and the newest change sequence numbers still kept; `(0, 0)`
    /// when no change was ever made.
    fn registration_change_range(&mut self) -> Result<(u64, u64), StoreError>;
    /// Forgets all but the newest `keep` changes (at least one is always
    /// kept); returns how many were forgotten.
    fn prune_registration_changes(&mut self, keep: u64) -> Result<u64, StoreError>;

    /// Records a single-use request id; [`StoreError::Replayed`] if seen before.
    /// Ids more than [`crate::signing::REPLAY_MARGIN_SECS`] past their expiry
    /// are forgotten (by `now` on SQLite, one machine; on PostgreSQL by the
    /// earlier of `now` and the database's clock, so a node whose clock runs
    /// ahead forgets nothing early).
    fn consume_request_id(&mut self, jti: &str, kid: &str, expires_at: u64, now: u64) -> Result<(), StoreError>;
    /// The single-use request ids remembered: (id, key id, expiry).
    fn request_ids(&mut self) -> Result<Vec<(String, String, u64)>, StoreError>;

    /// Records a new import; returns its id.
    fn insert_import(&mut self, import: &ImportRecord) -> Result<u64, StoreError>;
    /// Updates an import's status, counts and message.
    fn update_import(&mut self, import: &ImportRecord) -> Result<(), StoreError>;
    /// An import by id.
    fn import(&mut self, id: u64) -> Result<Option<ImportRecord>, StoreError>;
    /// The latest imports, newest first.
    fn imports(&mut self, limit: u32) -> Result<Vec<ImportRecord>, StoreError>;
    /// The leases of the imports that are `running`.
    fn running_imports(&mut self) -> Result<Vec<ImportLease>, StoreError>;
    /// Takes or renews the lease of a running import for `owner`.
    fn renew_import_lease(&mut self, id: u64, owner: &str, now: u64) -> Result<(), StoreError>;
    /// Marks an import `interrupted` (its owner is gone) if it is still
    /// running under the lease `seen`; returns whether it did.
    fn interrupt_import(&mut self, seen: &ImportLease, now: u64) -> Result<bool, StoreError>;
    /// Makes the rows staged by `import` visible: logs them as changed, for
    /// every process's candidate index. Call it in the transaction that marks
    /// the import `completed` (which is what makes them visible).
    fn publish_staged(&mut self, import: u64) -> Result<(), StoreError>;
    /// Deletes up to `limit` rows staged by `import`; returns how many.
    fn purge_staged(&mut self, import: u64, limit: u32) -> Result<u64, StoreError>;
    /// Imports that left staged rows and will never complete (neither
    /// running nor completed).
    fn abandoned_staging(&mut self) -> Result<Vec<u64>, StoreError>;

    /// Stores a policy version; false if that component was stored before.
    fn insert_policy(&mut self, record: &PolicyVersionRecord, component: &[u8]) -> Result<bool, StoreError>;
    /// Every stored policy version, oldest first.
    fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRecord>, StoreError>;
    /// A stored component.
    fn policy_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The active policy's SHA-256; `None`: the built-in default.
    fn active_policy(&mut self) -> Result<Option<String>, StoreError>;
    /// Sets the active policy (`None`: the built-in default).
    fn set_active_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError>;

    /// The shadow policy, if one is set.
    fn shadow_policy(&mut self) -> Result<Option<ShadowRecord>, StoreError>;
    /// Sets the shadow policy (`None`: none); resets its counts.
    fn set_shadow_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError>;
    /// Counts one compared enrollment, and records it if the two disagreed.
    fn record_shadow(&mut self, disagreement: Option<&ShadowDisagreement>) -> Result<(), StoreError>;
    /// Disagreements of the shadow `sha256` since it was set, after id
    /// `after`, at most `limit`.
    fn shadow_disagreements(
        &mut self,
        sha256: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ShadowDisagreement>, StoreError>;

    /// The recorded SHA-256 of a precompiled artifact.
    fn precompiled(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    /// Records the SHA-256 of a precompiled artifact.
    fn record_precompiled(&mut self, key: &str, sha256: &str) -> Result<(), StoreError>;

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

    /// The answer kept for a CA caller's Idempotency-Key: the SHA-256 of the
    /// request it answered and the answer (JSON).
    fn idempotent_answer(&mut self, caller: &str, key: &str) -> Result<Option<(String, String)>, StoreError>;
    /// Keeps the answer to a CA caller's Idempotency-Key, and forgets those
    /// recorded before `forget_before`.
    fn record_idempotent_answer(&mut self, kept: &IdempotentAnswer<'_>, forget_before: u64) -> Result<(), StoreError>;

    /// Records how a serving node stands (its heartbeat).
    fn record_node(&mut self, node: &NodeRecord) -> Result<(), StoreError>;
    /// Every node that ever served the store.
    fn nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Commits.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// `%text%` for a LIKE (SQLite, with `ESCAPE '\'`) or ILIKE (PostgreSQL)
/// pattern, with `%`, `_` and `\` escaped.
/// What an import left `running` by a process that is gone says.
const INTERRUPTED_MESSAGE: &str =
    "interrupted: the process running it stopped before the end; run the same import again to complete it";

/// An insert that collided with a row a running import staged.
fn staged_collision(r: &NewRegistration, import: u64) -> StoreError {
    StoreError::Duplicate {
        what: format!(
            "pattern {:?} in domain {:?} (staged by import {import}, which is still running; it is visible only \
             if that import completes)",
            r.pattern, r.domain
        ),
    }
}

fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A list of names as the JSON text both backends store.
fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn de_protocol<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    Protocol::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {text:?}")))
}

fn de_state<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RegistrationState, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    RegistrationState::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown state {text:?}")))
}
