//! The SCEP server (RFC 8894): GetCACaps, GetCACert (the CA and the RA
//! certificate), PKIOperation with PKCSReq, CertPoll and GetCert.
//!
//! A PKCSReq is a SignedData by the requester's (usually self-signed)
//! certificate around an EnvelopedData for the RA certificate, around the
//! CSR. The CSR's challengePassword is the registration's password. The
//! enrollment is decided, counted and audited, and its certificate issued
//! and recorded, in one transaction; only an allowed decision sends it
//! (SUCCESS, encrypted to the requester). A denial is FAILURE with failInfo
//! badRequest. A request sent again with the same transaction id and key gets
//! the same certificate back, without counting twice (RFC 8894 §3.3.1: the
//! client may resend). The certificate carries the canonical FQDN, and an IP
//! address or serial number only when the registration pins it; a CSR naming
//! other DNS names or other kinds of subjectAltName is refused (badRequest).

pub use prereg_pki::scep::{attr, cms};

use std::sync::Arc;

use prereg_core::Protocol;

use self::cms::{Cipher, Signed};
use crate::enroll::csr;
use crate::enroll::{IssueRequest, issue_granted, names_beyond_the_device};
use crate::pki::Ca;
use crate::pki::asn1;
use crate::pki::errors::Context;
use crate::pki::errors::PkiError;
use crate::pki::keys::DigestAlg;
use crate::pki::x509::Certificate;
use crate::registry::{EnrollmentInput, FrontRefusal, Grant, Registry, RegistryError};
use crate::store::CertificateState;

/// What this server can do (GetCACaps).
pub const CAPABILITIES: &str = "AES\nDES3\nPOSTPKIOperation\nSHA-1\nSHA-256\nSHA-384\nSHA-512\nSCEPStandard";

/// SCEP failInfo values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// badAlg
    BadAlg = 0,
    /// badMessageCheck
    BadMessageCheck = 1,
    /// badRequest
    BadRequest = 2,
    /// badCertId
    BadCertId = 4,
}

/// A request that cannot be answered in SCEP at all (no transaction id, no
/// signer to answer to): the HTTP layer answers 400.
#[derive(Debug, thiserror::Error)]
#[error("not a SCEP request: {0}")]
pub struct Unreadable(pub String);

/// The SCEP endpoint of one instance.
pub struct ScepServer {
    registry: Registry,
    ca: Arc<Ca>,
}

/// The outcome of a PKIOperation, before it is signed.
enum Outcome {
    Success { cert: Vec<u8> },
    Failure(FailInfo, String),
}

impl ScepServer {
    /// A SCEP server deciding with `registry` and issuing from `ca`.
    pub fn new(registry: Registry, ca: Arc<Ca>) -> Self {
        ScepServer { registry, ca }
    }

    /// GetCACert: the RA certificate (which clients encrypt to and which signs
    /// the responses) and the CA, as a certs-only PKCS#7.
    pub fn ca_certs(&self) -> Vec<u8> {
        cms::certs_only(&[&self.ca.ra_certificate().der, &self.ca.certificate().der])
    }

    /// PKIOperation: the CertRep for a DER (or BER) pkiMessage.
    pub fn operation(&self, procedure: &str, message: &[u8], now: u64) -> Result<Vec<u8>, Unreadable> {
        self.operation_outcome(procedure, message, now).map(|(answer, _)| answer)
    }

    /// [`ScepServer::operation`], and whether it refused (FAILURE): a failed
    /// attempt, which the service counts against the client's address.
    pub fn operation_outcome(&self, procedure: &str, message: &[u8], now: u64) -> Result<(Vec<u8>, bool), Unreadable> {
        let signed = cms::read_signed(message).map_err(|e| Unreadable(e.to_string()))?;
        let text = |oid| signed.attribute_text(oid).map_err(|e| Unreadable(e.to_string()));
        let tid = text(attr::TRANSACTION_ID)?.ok_or_else(|| Unreadable("no transactionID".into()))?;
        let message_type = text(attr::MESSAGE_TYPE)?.ok_or_else(|| Unreadable("no messageType".into()))?;
        let nonce = signed.attribute_octets(attr::SENDER_NONCE).map_err(|e| Unreadable(e.to_string()))?;
        // The answer is signed with the request's SHA-2 digest (SHA-256 for a
        // SHA-1 request: never weaker than that).
        let digest = match signed.digest() {
            Some(d @ (DigestAlg::Sha384 | DigestAlg::Sha512)) => d,
            _ => DigestAlg::Sha256,
        };
        let reply_to = ReplyTo { tid: &tid, recipient_nonce: nonce.as_deref(), digest };
        let requester = match signed.verify() {
            Ok(cert) => cert.clone(),
            Err(e) => {
                tracing::info!(error = %e, "SCEP: the request's signature does not verify");
                // Answered to the claimed signer, if there is one.
                let Some(cert) = signed.certificates.first() else {
                    return Err(Unreadable(format!("the request's signature does not verify: {e}")));
                };
                let failure = Outcome::Failure(FailInfo::BadMessageCheck, e.to_string());
                return Ok((self.cert_rep(failure, &reply_to, cert, Cipher::Aes128, now)?, true));
            }
        };
        // The certificate goes back encrypted to the signer's key: without RSA
        // it could not be delivered, so the request is refused before any
        // decision counts it.
        let deliverable = requester.public_key().is_ok_and(|k| k.rsa().is_some());
        let (outcome, cipher) = if !deliverable {
            (Outcome::Failure(FailInfo::BadAlg, "the signer's key is not RSA (SCEP needs RSA)".into()), Cipher::Aes128)
        } else {
            match self.decide(procedure, &signed, &message_type, &tid, now) {
                Ok(answer) => answer,
                Err(e) => (Outcome::Failure(FailInfo::BadRequest, e.to_string()), Cipher::Aes128),
            }
        };
        // A refusal is a failed attempt; a poll for a certificate not issued is not.
        let refused = matches!(&outcome, Outcome::Failure(fail, _) if *fail != FailInfo::BadCertId);
        if let Outcome::Failure(fail, why) = &outcome {
            tracing::info!(procedure, transaction = %tid, ?fail, "SCEP: {message_type} refused: {why}");
        }
        Ok((self.cert_rep(outcome, &reply_to, &requester, cipher, now)?, refused))
    }

    fn decide(
        &self,
        procedure: &str,
        signed: &Signed,
        message_type: &str,
        tid: &str,
        now: u64,
    ) -> Result<(Outcome, Cipher), PkiError> {
        let content =
            signed.content.as_deref().ok_or_else(|| PkiError::Invalid("the request has no content".into()))?;
        let (plain, cipher) = cms::decrypt_enveloped(content, self.ca.ra_key())?;
        let outcome = match message_type {
            // PKCSReq, RenewalReq
            "19" | "17" => self.enroll(procedure, &plain, tid, now)?,
            // CertPoll (GetCertInitial): the certificate of this transaction.
            "20" => match self.issued(tid)? {
                Some(cert) => Outcome::Success { cert: cert.der },
                None => Outcome::Failure(FailInfo::BadCertId, "no certificate issued in this transaction".into()),
            },
            // GetCert: by issuer and serial number.
            "21" => self.by_serial(&plain)?,
            other => Outcome::Failure(FailInfo::BadRequest, format!("messageType {other} is not served")),
        };
        Ok((outcome, cipher))
    }

    fn enroll(&self, procedure: &str, csr_der: &[u8], tid: &str, now: u64) -> Result<Outcome, PkiError> {
        let csr = csr::read(csr_der)?;
        // A resent request: the same certificate, counted once.
        if let Some(cert) = self.issued(tid)?
            && cert.spki == csr.spki
        {
            return Ok(Outcome::Success { cert: cert.der });
        }
        let record = self.registry.procedure(procedure).map_err(unavailable)?;
        if let Some(p) = &record
            && p.protocol != Protocol::Scep
        {
            return Ok(Outcome::Failure(
                FailInfo::BadRequest,
                format!("token procedure {procedure} is for {}, not SCEP", p.protocol),
            ));
        }
        let fqdn = csr.facts.fqdn.clone().unwrap_or_default();
        let input = EnrollmentInput {
            procedure: procedure.to_owned(),
            fqdn: fqdn.clone(),
            ip: csr.facts.ip.map(|ip| ip.to_string()),
            serial: csr.facts.serial.clone(),
            password: csr.challenge_password.clone(),
            transaction: Some(format!("scep:{tid}")),
            ..Default::default()
        };
        if let Some(why) = names_beyond_the_device(&csr.facts) {
            // Refused before the policy decides: audited all the same.
            let refusal = FrontRefusal {
                input: &input,
                registration: None,
                reason: None,
                detail: format!("SCEP PKCSReq: badRequest: {why}"),
            };
            self.registry.audit_refusal(&refusal, now).map_err(unavailable)?;
            return Ok(Outcome::Failure(FailInfo::BadRequest, why));
        }
        let issue_request = IssueRequest {
            ca: self.ca.clone(),
            spki: csr.spki.clone(),
            days: record.map(|p| p.certificate_days).unwrap_or(crate::registry::DEFAULT_CERTIFICATE_DAYS),
            now,
            transaction: format!("scep:{tid}"),
            state: CertificateState::Issued,
            expires_at: None,
            request: serde_json::json!({ "procedure": procedure, "fqdn": fqdn }),
        };
        let issue = move |grant: &Grant<'_>| issue_granted(grant, &issue_request);
        let (report, certificate) = self.registry.enroll_issuing(input, now, issue).map_err(unavailable)?;
        match certificate {
            Some(certificate) if report.allowed => {
                tracing::info!(fqdn = %fqdn, registration = ?report.registration, serial = %certificate.serial, audit = ?report.audit_seq, "SCEP: certificate issued and counted");
                Ok(Outcome::Success { cert: certificate.der })
            }
            _ => Ok(Outcome::Failure(FailInfo::BadRequest, report.reason.code().into())),
        }
    }

    /// The certificate issued in SCEP transaction `tid`, if any.
    fn issued(&self, tid: &str) -> Result<Option<Certificate>, PkiError> {
        let record = self.registry.certificate_by_transaction(&format!("scep:{tid}")).map_err(unavailable)?;
        match record.filter(|r| r.state == CertificateState::Issued && r.revoked_at.is_none()) {
            Some(r) => Certificate::from_der(&r.der).map(Some),
            None => Ok(None),
        }
    }

    /// GetCert: a certificate this CA issued, by issuer and serial number.
    fn by_serial(&self, issuer_and_serial: &[u8]) -> Result<Outcome, PkiError> {
        let value = asn1::parse(issuer_and_serial).reading("IssuerAndSerialNumber")?;
        let mut parts = value.children().reading("IssuerAndSerialNumber")?;
        let issuer = parts.required("issuer").reading("IssuerAndSerialNumber")?;
        let serial = parts.required("serialNumber").reading("IssuerAndSerialNumber")?;
        let not_found = || Outcome::Failure(FailInfo::BadCertId, "no such certificate issued here".into());
        if issuer.raw != self.ca.certificate().subject.as_slice() {
            return Ok(not_found());
        }
        let record = self.registry.certificate_by_serial(&crate::pki::hex(serial.content)).map_err(unavailable)?;
        Ok(match record.filter(|r| r.state == CertificateState::Issued) {
            Some(r) => Outcome::Success { cert: r.der },
            None => not_found(),
        })
    }

    fn cert_rep(
        &self,
        outcome: Outcome,
        reply_to: &ReplyTo<'_>,
        requester: &crate::pki::x509::Certificate,
        cipher: Cipher,
        now: u64,
    ) -> Result<Vec<u8>, Unreadable> {
        let ReplyTo { tid, recipient_nonce, digest } = *reply_to;
        use rand_core::RngCore;
        let mut nonce = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let mut attributes = vec![
            cms::attribute(attr::MESSAGE_TYPE, &asn1::printable("3")),
            cms::attribute(attr::TRANSACTION_ID, &asn1::printable(tid)),
            cms::attribute(attr::SENDER_NONCE, &asn1::octet_string(&nonce)),
        ];
        if let Some(n) = recipient_nonce {
            attributes.push(cms::attribute(attr::RECIPIENT_NONCE, &asn1::octet_string(n)));
        }
        let content = match outcome {
            Outcome::Success { cert } => {
                attributes.push(cms::attribute(attr::PKI_STATUS, &asn1::printable("0")));
                let degenerate = cms::certs_only(&[&cert]);
                Some(cms::envelope(&degenerate, requester, cipher).map_err(|e| Unreadable(e.to_string()))?)
            }
            Outcome::Failure(fail, _) => {
                attributes.push(cms::attribute(attr::PKI_STATUS, &asn1::printable("2")));
                attributes.push(cms::attribute(attr::FAIL_INFO, &asn1::printable(&(fail as u8).to_string())));
                // An empty content, signed (RFC 8894 §3.3.2): OpenSSL's
                // PKCS7_verify and CMS_verify refuse a SignedData without one,
                // and a client would take the CA for unreachable and retry.
                Some(Vec::new())
            }
        };
        let ra = self.ca.ra_certificate();
        cms::sign_with(
            digest,
            content.as_deref(),
            &attributes,
            ra,
            self.ca.ra_key(),
            &[&ra.der, &self.ca.certificate().der],
            now,
        )
        .map_err(|e| Unreadable(e.to_string()))
    }
}

/// What a CertRep takes from the request it answers: its transaction, its
/// nonce (echoed as the recipientNonce) and the digest to sign with.
#[derive(Clone, Copy)]
struct ReplyTo<'a> {
    tid: &'a str,
    recipient_nonce: Option<&'a [u8]>,
    digest: DigestAlg,
}

fn unavailable(e: RegistryError) -> PkiError {
    PkiError::Invalid(format!("the server cannot answer now: {e}"))
}
