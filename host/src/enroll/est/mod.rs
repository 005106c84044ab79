//! The EST server (RFC 7030, with RFC 8951's clarifications): `cacerts`,
//! `csrattrs`, `simpleenroll` and `simplereenroll` for procedures of
//! protocol `est`, over TLS only.
//!
//! - **Initial enrollment** (`simpleenroll`) authenticates the device
//!   against its registration: HTTP Basic, the user name the device's FQDN
//!   and the password the registration's (RFC 7030 §3.2.3), or else the
//!   CSR's challengePassword, or else the device's manufacturer certificate
//!   (IDevID) in the TLS handshake, chaining to a trust anchor of the
//!   procedure (`prereg ca set --est-trust-anchor`): its subject
//!   serialNumber is the serial the registration must pin. Which of the
//!   three a procedure takes is the operator's (`prereg ca set --est-auth`). The password is checked by the decision, so a
//!   wrong one counts toward the lockout as on every other channel. Every
//!   denial that depends on what is registered (no registration, a wrong
//!   password, a registration used up, expired or locked, an IP or serial
//!   that does not match) is answered alike, 401 with a Basic challenge, so
//!   an answer never tells whether a name is registered; the audit log keeps
//!   the reason. An EST procedure enrolls registered devices only: a
//!   decision of `not-required` is refused too.
//! - **Re-enrollment** (`simplereenroll`) needs the TLS client certificate
//!   this CA issued to the device: valid, not revoked, confirmed, for the
//!   same name and key type as the CSR. The policy then decides the renewal
//!   (WIT `decide-renewal`, [`Registry::renew_issuing`]); a denial is 403.
//!   The new certificate carries the same identity; it is not counted (the
//!   device keeps its one enrollment), and is audited as `renew`; the
//!   certificate it replaces stays valid unless the procedure says
//!   otherwise (`prereg ca set --est-reenroll-revokes`).
//! - The CSR must be signed by its key and name only the device (the same
//!   rules as SCEP and CMP); what it asks for is replaced by the registered
//!   identity (canonical FQDN, pinned IP and serial only).

use std::sync::Arc;

use prereg_core::{Fqdn, Protocol, Reason};
use zeroize::Zeroizing;

use crate::enroll::scep::cms;
use crate::enroll::{IssueRequest, Told, csr, issue_granted, names_beyond_the_device};
use crate::pki::Ca;
use crate::pki::ca::EstAuth;
use crate::pki::x509::Certificate;
use crate::registry::{
    CrlReason, DecisionMode, EnrollmentInput, FrontRefusal, Grant, Registry, RegistryError, Renewal,
};
use crate::store::CertificateState;

/// What an EST request is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EstAnswer {
    /// 200: a certs-only PKCS#7 (DER) with the issued certificate.
    Issued(Vec<u8>),
    /// A refusal: the HTTP status, and what the client is told.
    Refused {
        /// 400, 401, 403, 404 or 503.
        status: u16,
        /// The reason, for the body.
        text: String,
    },
}

/// What a client is told of every denial that depends on what is
/// registered (one answer for all: no registration, a wrong password, ...).
pub const NOT_AUTHORIZED: &str = "not authorized: no registration of this device can enroll with these credentials";

fn refused(status: u16, text: impl Into<String>) -> EstAnswer {
    EstAnswer::Refused { status, text: text.into() }
}

/// HTTP Basic credentials, as the HTTP layer read them.
#[derive(Debug, Clone)]
pub struct Basic {
    /// The user name: the device's FQDN.
    pub user: String,
    /// The password: the registration's.
    pub password: Zeroizing<String>,
}

/// The EST endpoint of one instance.
pub struct EstServer {
    registry: Registry,
    ca: Arc<Ca>,
}

impl EstServer {
    /// An EST server deciding with `registry` and issuing from `ca`.
    pub fn new(registry: Registry, ca: Arc<Ca>) -> Self {
        EstServer { registry, ca }
    }

    /// `cacerts`: the CA certificate, as a certs-only PKCS#7 (DER).
    pub fn cacerts(&self) -> Vec<u8> {
        cms::certs_only(&[&self.ca.certificate().der])
    }

    /// `csrattrs` (DER CsrAttrs): the challengePassword attribute, which a
    /// device may carry its registration's password in.
    pub fn csrattrs(&self) -> Vec<u8> {
        use crate::pki::{asn1, oid};
        asn1::seq(&[&asn1::oid(oid::CHALLENGE_PASSWORD)])
    }

    /// The procedure, if it is an EST one.
    fn procedure(&self, procedure: &str) -> Result<crate::store::ProcedureRecord, EstAnswer> {
        match self.registry.procedure(procedure) {
            Ok(Some(p)) if p.protocol == Protocol::Est => Ok(p),
            Ok(Some(p)) => Err(refused(404, format!("token procedure {procedure} is for {}, not EST", p.protocol))),
            Ok(None) => Err(refused(404, format!("no token procedure {procedure}"))),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// `simpleenroll`: `csr_der` authenticated by `basic`, by its
    /// challengePassword, or by the device's manufacturer certificate
    /// (IDevID) that `client` (the TLS client chain, the device's first)
    /// carries, if it chains to one of the procedure's trust anchors.
    pub fn enroll(
        &self,
        procedure: &str,
        basic: Option<Basic>,
        client: Option<&[Vec<u8>]>,
        csr_der: &[u8],
        now: u64,
    ) -> EstAnswer {
        let record = match self.procedure(procedure) {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        let csr = match csr::read(csr_der) {
            Ok(csr) => csr,
            Err(e) => return refused(400, format!("the certification request: {e}")),
        };
        let fqdn = csr.facts.fqdn.clone().unwrap_or_default();
        let transaction = transaction(csr_der);
        let allows = |way| self.ca.est_allows(procedure, way);
        if basic.is_some() && !allows(EstAuth::Basic) {
            return refused(401, self.ways_text(procedure));
        }
        let challenge = csr.challenge_password.as_ref().filter(|_| allows(EstAuth::Challenge));
        let password = match (&basic, challenge) {
            (Some(basic), _) => {
                let same = match (Fqdn::parse(&basic.user), Fqdn::parse(&fqdn)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                };
                if !same {
                    return refused(
                        400,
                        format!("the user name {:?} is not the device the CSR names ({fqdn:?})", basic.user),
                    );
                }
                Some(basic.password.clone())
            }
            (None, Some(challenge)) => Some(challenge.clone()),
            (None, None) => None,
        };
        // Without a password: the manufacturer certificate, if one chains to
        // the procedure's anchors; its serialNumber is the device's serial.
        let idevid = match (&password, client.filter(|_| allows(EstAuth::Idevid))) {
            (None, Some(chain)) => match self.manufacturer_serial(procedure, chain, now) {
                Ok(serial) => Some(serial),
                Err(answer) => return answer,
            },
            _ => None,
        };
        let input = EnrollmentInput {
            procedure: procedure.to_owned(),
            fqdn: fqdn.clone(),
            ip: csr.facts.ip.map(|ip| ip.to_string()),
            serial: idevid.clone().or_else(|| csr.facts.serial.clone()),
            password,
            transaction: Some(transaction.clone()),
            ..Default::default()
        };
        if let Some(why) = names_beyond_the_device(&csr.facts) {
            let refusal =
                FrontRefusal { input: &input, registration: None, reason: None, detail: format!("EST: {why}") };
            if let Err(e) = self.registry.audit_refusal(&refusal, now) {
                return unavailable(e);
            }
            return refused(400, why);
        }
        if input.password.is_none() && idevid.is_none() {
            return refused(401, self.ways_text(procedure));
        }
        // An EST procedure enrolls registered devices only.
        match self.registry.decide(EnrollmentInput { password: None, ..input.clone() }, DecisionMode::DryRun, now) {
            // A manufacturer certificate proves a serial number: the
            // registration must pin one (the decision checks it is this one).
            Ok(dry) if idevid.is_some() && !self.pins_a_serial(dry.registration) => {
                tracing::info!(registration = ?dry.registration, reason = %dry.reason, "EST: an IDevID for a registration that pins no serial");
                let refusal = FrontRefusal {
                    input: &input,
                    registration: dry.registration,
                    reason: None,
                    detail: "EST: a manufacturer certificate authenticates a registration that pins a serial \
                             number only"
                        .into(),
                };
                if let Err(e) = self.registry.audit_refusal(&refusal, now) {
                    return unavailable(e);
                }
                return refused(401, NOT_AUTHORIZED);
            }
            Ok(dry) if dry.reason == Reason::NotRequired => {
                let detail = format!(
                    "EST enrolls registered devices only, and token procedure {procedure} does not require \
                     preregistration (set require_preregistration)"
                );
                tracing::warn!("{detail}");
                let refusal = FrontRefusal {
                    input: &input,
                    registration: None,
                    reason: Some(Reason::NotRequired),
                    detail: format!("EST: {detail}"),
                };
                if let Err(e) = self.registry.audit_refusal(&refusal, now) {
                    return unavailable(e);
                }
                return refused(403, detail);
            }
            Ok(_) => {}
            Err(e) => return registry_refusal(e),
        }
        let kept = serde_json::json!({ "procedure": procedure, "fqdn": fqdn });
        let issue_request = self.issue_request(&csr.spki, &record, now, &transaction, kept);
        let issue = move |grant: &Grant<'_>| issue_granted(grant, &issue_request);
        match self.registry.enroll_issuing(input, now, issue) {
            Ok((report, Some(certificate))) if report.allowed => {
                tracing::info!(fqdn = %fqdn, registration = ?report.registration, serial = %certificate.serial, audit = ?report.audit_seq, "EST: certificate issued and counted");
                EstAnswer::Issued(cms::certs_only(&[&certificate.der]))
            }
            Ok((report, _)) => {
                tracing::info!(reason = %report.reason, audit = ?report.audit_seq, "EST: enrollment denied");
                denial(report.reason)
            }
            Err(e) => registry_refusal(e),
        }
    }

    /// `simplereenroll`: `csr_der` authenticated by the TLS client
    /// certificate `client` (DER), which this CA issued to the device.
    pub fn reenroll(&self, procedure: &str, client: Option<&[u8]>, csr_der: &[u8], now: u64) -> EstAnswer {
        let record = match self.procedure(procedure) {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        let Some(client) = client else {
            return refused(401, "re-enrollment needs the TLS client certificate this CA issued to the device");
        };
        let current = match self.current_certificate(client, now) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        let csr = match csr::read(csr_der) {
            Ok(csr) => csr,
            Err(e) => return refused(400, format!("the certification request: {e}")),
        };
        let (certificate, stored) = current;
        let fqdn = certificate.subject_info().ok().and_then(|n| n.common_name).unwrap_or_default();
        let asked = csr.facts.fqdn.as_deref().map(Fqdn::parse);
        if !matches!(asked, Some(Ok(ref name)) if Fqdn::parse(&fqdn).is_ok_and(|f| f == *name)) {
            return refused(400, format!("the CSR must name the device of the client certificate ({fqdn})"));
        }
        if let Some(why) = names_beyond_the_device(&csr.facts) {
            return refused(400, why);
        }
        let same_kind =
            |spki: &[u8]| crate::pki::keys::PublicKey::from_spki(spki).map(|k| std::mem::discriminant(&k)).ok();
        if same_kind(&csr.spki) != same_kind(&certificate.spki) {
            return refused(400, "the new key must be of the same type as the current one");
        }
        let Some(registration) = stored.registration else {
            return refused(403, "the client certificate belongs to no registration");
        };
        let transaction = transaction(csr_der);
        let kept = serde_json::json!({ "procedure": procedure, "fqdn": fqdn, "replaces": stored.serial });
        let issue_request = self.issue_request(&csr.spki, &record, now, &transaction, kept);
        let mut issue = |grant: &Grant<'_>| issue_granted(grant, &issue_request);
        let renewal = Renewal {
            registration,
            fqdn: &fqdn,
            ip: csr.facts.ip.map(|ip| ip.to_string()),
            serial: csr.facts.serial.as_deref(),
            procedure,
            transaction: &transaction,
            replaces: &stored.serial,
            replaces_expires_at: certificate.not_after,
            actor: None,
        };
        match self.registry.renew_issuing(&renewal, now, &mut issue) {
            Ok((_, Some(certificate))) => {
                tracing::info!(registration, serial = %certificate.serial, replaces = %stored.serial, "EST: re-enrolled");
                if self.ca.est_reenroll_revokes(procedure) {
                    // The new certificate is out: a failure here leaves the
                    // old one valid, and is logged, not answered.
                    match self.registry.revoke_for_device(
                        &stored.serial,
                        CrlReason::Superseded,
                        "on its EST re-enrollment",
                        now,
                    ) {
                        Ok(_) => {
                            tracing::info!(serial = %stored.serial, "EST: the replaced certificate is revoked (superseded)")
                        }
                        Err(e) => {
                            tracing::error!(serial = %stored.serial, error = %e, "EST: the replaced certificate could not be revoked")
                        }
                    }
                }
                EstAnswer::Issued(cms::certs_only(&[&certificate.der]))
            }
            Ok((report, None)) => {
                tracing::info!(registration, reason = %report.reason, audit = ?report.audit_seq, "EST: re-enrollment denied");
                match Told::of(report.reason) {
                    // The device proved who it is; the policy says no: 403,
                    // not a challenge that no credential would answer.
                    Told::NotAuthorized => refused(403, "re-enrollment refused: see the audit log"),
                    _ => denial(report.reason),
                }
            }
            Err(e) => registry_refusal(e),
        }
    }

    /// What issuing a certificate for `spki` through `record` needs (EST has
    /// no confirmation: issued at once).
    fn issue_request(
        &self,
        spki: &[u8],
        record: &crate::store::ProcedureRecord,
        now: u64,
        transaction: &str,
        kept: serde_json::Value,
    ) -> IssueRequest {
        IssueRequest {
            ca: self.ca.clone(),
            spki: spki.to_vec(),
            days: record.certificate_days,
            now,
            transaction: transaction.to_owned(),
            state: CertificateState::Issued,
            expires_at: None,
            request: kept,
        }
    }

    /// What a device of `procedure` is told to authenticate with.
    fn ways_text(&self, procedure: &str) -> String {
        let ways: Vec<&str> = self
            .ca
            .est_ways(procedure)
            .into_iter()
            .map(|w| match w {
                EstAuth::Basic => "HTTP Basic (the device's FQDN and its registration's password)",
                EstAuth::Challenge => "the CSR's challengePassword",
                EstAuth::Idevid => "the device's manufacturer certificate in the TLS handshake",
            })
            .collect();
        format!("authenticate with {}", ways.join(", or "))
    }

    /// Whether registration `id` pins a serial number.
    fn pins_a_serial(&self, id: Option<u64>) -> bool {
        id.and_then(|id| self.registry.registration(id).ok()).is_some_and(|r| r.serial.is_some())
    }

    /// The serial number of a manufacturer certificate (IDevID) that chains,
    /// as presented, to a trust anchor of `procedure` and is valid now.
    fn manufacturer_serial(&self, procedure: &str, chain: &[Vec<u8>], now: u64) -> Result<String, EstAnswer> {
        let untrusted = || refused(401, "the client certificate is no manufacturer certificate this procedure trusts");
        let anchors = self.ca.est_anchors(procedure);
        if anchors.is_empty() {
            return Err(refused(
                401,
                "authenticate with HTTP Basic (the device's FQDN and its registration's password): this procedure \
                 trusts no manufacturer certificates",
            ));
        }
        let certificates = chain
            .iter()
            .map(|der| Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| untrusted())?;
        let leaf = certificates.first().ok_or_else(untrusted)?;
        if now < leaf.not_before || now > leaf.not_after {
            return Err(untrusted());
        }
        for pair in certificates.windows(2) {
            let issuer = pair[1].public_key().map_err(|_| untrusted())?;
            pair[0].verify_signed_by(&issuer).map_err(|_| untrusted())?;
        }
        let last = certificates.last().ok_or_else(untrusted)?;
        let anchored = anchors.iter().any(|anchor| {
            anchor.der == last.der || anchor.public_key().is_ok_and(|key| last.verify_signed_by(&key).is_ok())
        });
        if !anchored {
            return Err(untrusted());
        }
        leaf.subject_info()
            .ok()
            .and_then(|n| n.serial_number)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| refused(401, "the manufacturer certificate names no serialNumber"))
    }

    /// The client certificate of a re-enrollment, checked: issued by this
    /// CA, recorded here, confirmed, not revoked, valid now.
    fn current_certificate(
        &self,
        der: &[u8],
        now: u64,
    ) -> Result<(Certificate, crate::store::CertificateRecord), EstAnswer> {
        let certificate =
            Certificate::from_der(der).map_err(|e| refused(400, format!("the client certificate: {e}")))?;
        let untrusted = || refused(403, "the client certificate is not a valid certificate this CA issued");
        let ca_key = self.ca.certificate().public_key().map_err(|_| untrusted())?;
        if certificate.verify_signed_by(&ca_key).is_err() || now < certificate.not_before || now > certificate.not_after
        {
            return Err(untrusted());
        }
        let stored = self
            .registry
            .certificate_by_serial(&certificate.serial_hex())
            .map_err(unavailable)?
            .filter(|r| r.der == certificate.der && r.state == CertificateState::Issued)
            .ok_or_else(untrusted)?;
        if stored.revoked_at.is_some() {
            return Err(refused(403, "the client certificate is revoked"));
        }
        Ok((certificate, stored))
    }
}

/// The audit log's transaction id of an EST request: EST has none, so the
/// first 16 bytes of the CSR's SHA-256.
fn transaction(csr_der: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(csr_der);
    super::transaction_text("est", &digest[..16])
}

/// How a denial is answered.
fn denial(reason: Reason) -> EstAnswer {
    match crate::enroll::Told::of(reason) {
        Told::BadRequest => refused(400, reason.code()),
        Told::UnknownProcedure => refused(404, reason.code()),
        Told::DomainNotAllowed => refused(403, reason.code()),
        Told::PolicyError => refused(503, reason.code()),
        Told::NotAuthorized => refused(401, NOT_AUTHORIZED),
    }
}

fn registry_refusal(e: RegistryError) -> EstAnswer {
    if e.is_input_error() {
        return refused(400, e.to_string());
    }
    unavailable(e)
}

fn unavailable(e: RegistryError) -> EstAnswer {
    tracing::error!(error = %e, "EST: the registry failed");
    refused(503, "the server cannot decide now")
}
