//! Certificates the enrollment fronts issued, their states and revocations, and the CRLs.

use super::StoreError;

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

/// Certificates the enrollment fronts issued, their states and revocations, and the CRLs.
pub trait Certificates {
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
}
