//! Policy versions: stored components, the active and the shadow policy, the shadow's
//! disagreements, and the ledger of precompiled artifacts.

use serde::Serialize;

use super::StoreError;

/// A loaded policy version (the component is read separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShadowSide {
    /// SHA-256 of the policy.
    pub sha256: String,
    /// Whether it allowed.
    pub allowed: bool,
    /// Its reason code.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::reason))]
    pub reason: String,
    /// The registration that decided.
    pub registration: Option<u64>,
    /// Its explanation.
    pub explanation: String,
}

/// An enrollment where the shadow policy and the active one disagreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Policy versions: stored components, the active and the shadow policy, the shadow's
/// disagreements, and the ledger of precompiled artifacts.
pub trait PolicyVersions {
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
}
