//! Who may do what: token procedures (and the domains they scope), officers and their keys, CA
//! callers and their credentials.

use prereg_core::Protocol;
use serde::Serialize;

use super::{StoreError, de_protocol, ser_display};

/// A token procedure as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcedureRecord {
    /// Unique name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Protocol.
    #[serde(serialize_with = "ser_display", deserialize_with = "de_protocol")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::protocol))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A CA caller: a system that asks for enrollment decisions (the CA front
/// of SCEP/CMP/EST, another CA's webhook, a script), for the token
/// procedures it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Its webhook secret (step-ca's HMAC key), sealed to the instance's
    /// key; never sent out.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub webhook_secret_sealed: Option<String>,
}

/// Who may do what: token procedures (and the domains they scope), officers and their keys, CA
/// callers and their credentials.
pub trait Directory {
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
}
