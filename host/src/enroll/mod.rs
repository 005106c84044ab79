//! The enrollment front: CMP ([`cmp`]) and SCEP ([`scep`]) endpoints that stock
//! clients use, in front of the registry's decision. Every enrollment goes
//! through the active policy exactly as `prereg enroll` does, is audited with
//! the protocol's transaction id, and is counted in the same transaction in
//! which its certificate is issued and recorded
//! ([`crate::Registry::enroll_issuing`]): a certificate that leaves the server
//! has been counted. Certificates come from the data folder's CA
//! ([`crate::pki::Ca`]) and carry the identity the registration grants
//! ([`issue_granted`]), not what the request asked for.

pub mod acme;
pub mod cmp;
pub mod est;
pub mod scep;

pub use prereg_pki::{DeviceFacts, csr};

use prereg_core::Fqdn;

use crate::pki::{Ca, Issue};
use crate::registry::Grant;
use crate::store::{CertificateRecord, CertificateState};

/// What an enrollment front tells a client of a denial. Every reason that
/// depends on what is registered (no registration, a wrong password, an IP
/// or serial that does not match, a registration locked or used up) is told
/// alike, [`Told::NotAuthorized`], so that no answer says whether a name is
/// registered; the audit log keeps the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// The request itself is at fault (`invalid-fqdn`).
    BadRequest,
    /// No such token procedure.
    UnknownProcedure,
    /// The name is outside the procedure's domains.
    DomainNotAllowed,
    /// The policy failed.
    PolicyError,
    /// Anything that depends on what is registered.
    NotAuthorized,
}

impl Told {
    /// How a denial for `reason` is told.
    pub fn of(reason: prereg_core::Reason) -> Told {
        use prereg_core::Reason;
        match reason {
            Reason::InvalidFqdn => Told::BadRequest,
            Reason::UnknownProcedure => Told::UnknownProcedure,
            Reason::DomainNotAllowed => Told::DomainNotAllowed,
            Reason::PolicyError => Told::PolicyError,
            // Named one by one: a new reason must be placed here on purpose.
            Reason::NoRegistration
            | Reason::IpMismatch
            | Reason::SerialMismatch
            | Reason::PasswordRequired
            | Reason::BadPassword
            | Reason::Locked
            | Reason::NotRequired
            | Reason::Matched => Told::NotAuthorized,
        }
    }
}

/// Lower-case hex of a protocol's transaction id, as the audit log keeps it.
pub fn transaction_text(protocol: &str, id: &[u8]) -> String {
    format!("{protocol}:{}", crate::audit::hex(id))
}

/// Why a request names more than the one device it may: every DNS name of
/// its subjectAltName must be the device's FQDN (in any spelling of the same
/// canonical name), and it may name no other kind (e-mail, URI, ...). IP
/// addresses are allowed (the first is checked by the decision); the
/// certificate carries one only if the registration pins it.
pub fn names_beyond_the_device(facts: &DeviceFacts) -> Option<String> {
    if let Some(kind) = facts.other_names.first() {
        return Some(format!("the request names a {kind} in its subjectAltName; only the device's FQDN is issued"));
    }
    let fqdn = facts.fqdn.as_deref().map(Fqdn::parse)?.ok()?;
    let extra: Vec<&str> = facts
        .dns_names
        .iter()
        .filter(|name| Fqdn::parse(name).map_or(true, |n| n != fqdn))
        .map(String::as_str)
        .collect();
    if extra.is_empty() {
        None
    } else {
        Some(format!(
            "the request names {} beside the device {}: one certificate covers one registered name",
            extra
                .iter()
                .map(|n| format!("{:?}", n.chars().take(80).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", "),
            fqdn.as_str()
        ))
    }
}

/// What the front needs to issue the certificate of an allowed enrollment.
/// Owned: the decision, and so the issuing, may run in another thread's
/// batch ([`crate::registry::Issuer`]).
pub struct IssueRequest {
    /// The CA.
    pub ca: std::sync::Arc<Ca>,
    /// The requester's SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    /// Days of validity (the token procedure's).
    pub days: u32,
    /// Now, Unix seconds.
    pub now: u64,
    /// The protocol transaction (`cmp:…`, `scep:…`).
    pub transaction: String,
    /// Where the certificate stands once recorded.
    pub state: CertificateState,
    /// Held: the confirmation deadline; otherwise the certificate's notAfter.
    pub expires_at: Option<u64>,
    /// What the front keeps with it (JSON; never a password).
    pub request: serde_json::Value,
}

/// Issues the certificate an allowed decision grants: CN and DNS SAN are the
/// canonical FQDN the decision matched; an IP SAN and a subject
/// serialNumber appear only when the deciding registration pins them (the
/// request's own are dropped). Returns the record to keep with the decision.
pub fn issue_granted(grant: &Grant<'_>, request: &IssueRequest) -> Result<CertificateRecord, String> {
    let cert = request
        .ca
        .issue(&Issue {
            fqdn: grant.fqdn,
            ip: grant.pinned_ip(),
            serial: grant.pinned_serial(),
            spki: &request.spki,
            days: request.days,
            now: request.now,
        })
        .map_err(|e| e.to_string())?;
    Ok(CertificateRecord {
        serial: cert.serial_hex(),
        transaction: request.transaction.clone(),
        registration: grant.registration.map(|r| r.id),
        state: request.state,
        expires_at: request.expires_at.unwrap_or(cert.not_after),
        der: cert.der,
        request: request.request.to_string(),
        issued_at: request.now,
        revoked_at: None,
        revocation_reason: None,
    })
}
