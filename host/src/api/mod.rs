//! The REST API's wire types: the bodies that the service
//! ([`crate::service`]) answers with and the client ([`crate::client`])
//! reads, and the problem document of every failure (RFC 9457). Plain data
//! with serde (and its OpenAPI schema), no HTTP: the client takes them from
//! here, not from the service's routes.

use serde::{Deserialize, Serialize};

use crate::import::{ProgressSnapshot, RowError};
use crate::registry::WriteOutcome;
use crate::store::{AuditRecord, ImportRecord, RegistrationRecord};

/// A page of audit records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Records by ascending sequence number.
    pub items: Vec<AuditRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerificationView {
    /// Whether the whole chain is intact.
    pub intact: bool,
    /// Records checked (up to the first bad one).
    pub checked: u64,
    /// Officers' signed requests among them re-verified against the
    /// officers' keys.
    #[serde(default)]
    pub signatures: Option<u64>,
    /// The first bad record, if any.
    pub first_bad_seq: Option<u64>,
    /// What is wrong with it.
    pub fault: Option<String>,
}

/// An enrollment request as the CA front received it.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// An import: as recorded, with live progress while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportView {
    /// The import as recorded.
    pub import: ImportRecord,
    /// Live progress, while it runs in this server.
    pub progress: Option<ProgressSnapshot>,
    /// Where its per-row report is.
    pub report: String,
}

/// Bad rows of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportPage {
    /// Bad rows, by row number.
    pub items: Vec<RowError>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// This prereg instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceInfo {
    /// Instance id: the `aud` of every signed request.
    pub instance_id: String,
    /// prereg version.
    pub version: String,
    /// Storage backend (to officers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Public X25519 key (base64url) that registration passwords are sealed
    /// to for CMP ([`crate::sealing`]); absent when the instance has none.
    #[serde(default)]
    pub sealing_key: Option<String>,
}

/// A page of registrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationPage {
    /// The registrations, by ascending id.
    pub items: Vec<RegistrationRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// The result of creating a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Created {
    /// What the write did.
    pub outcome: WriteOutcome,
    /// The new registration.
    pub registration: RegistrationRecord,
}

/// A problem document (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Stable identifier of the kind of failure, `urn:prereg:problem:<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A JWS in flattened JSON serialization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlattenedJws {
    /// The protected header, base64url (`alg`, `kid`, `typ`).
    pub protected: String,
    /// The claims, base64url: `aud` (the instance id), `iat`, `exp`, `jti` and
    /// `request` (the write, tagged by `action`).
    pub payload: String,
    /// The signature, base64url.
    pub signature: String,
}

impl FlattenedJws {
    /// From a compact JWS (`protected.payload.signature`).
    pub fn from_compact(compact: &str) -> Option<Self> {
        let mut parts = compact.trim().split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(protected), Some(payload), Some(signature), None) => {
                Some(FlattenedJws { protected: protected.into(), payload: payload.into(), signature: signature.into() })
            }
            _ => None,
        }
    }

    /// The compact form.
    pub fn to_compact(&self) -> String {
        format!("{}.{}.{}", self.protected, self.payload, self.signature)
    }
}
