//! Signature-based protection (RFC 9483 §3.2): a request signed with the
//! key of a certificate this instance issued (`kur`, `rr`, `genm`, and the
//! `certConf` of a `kur`). The signer's certificate comes first in
//! extraCerts; it must be issued by this CA, recorded here, confirmed, not
//! revoked, valid now, and name the message's sender.

use super::checks::Checked;
use super::message::{self, FailInfo};
use super::protection::Protection;
use super::{CmpServer, Refusal, refuse, system};
use crate::pki::x509::Certificate;
use crate::store::{CertificateRecord, CertificateState};

/// Who signed a request: a certificate this instance issued.
pub(super) struct Signer {
    pub certificate: Certificate,
    pub record: CertificateRecord,
}

impl CmpServer {
    /// Verifies the signature of a signed request and who made it. Every
    /// failure is an unprotected `error` (the request is not authenticated).
    pub(super) fn signed_by(&self, checked: &Checked<'_>, now: u64) -> Result<Signer, Refusal> {
        let request = checked.request;
        let Protection::Signature(algorithm) = &checked.protection else {
            return Err(refuse(
                FailInfo::WrongIntegrity,
                format!("{} must be signed with the device's certificate", request.body.name()),
            ));
        };
        let der = request.extra_certs.first().ok_or_else(|| {
            refuse(FailInfo::BadMessageCheck, "a signed request carries its signer's certificate first in extraCerts")
        })?;
        let certificate = Certificate::from_der(der)
            .map_err(|e| refuse(FailInfo::BadDataFormat, format!("the signer's certificate: {e}")))?;
        let untrusted = |why: &str| refuse(FailInfo::SignerNotTrusted, format!("the signer's certificate {why}"));
        let ca_key = self.ca.certificate().public_key().map_err(|e| {
            tracing::error!(error = %e, "CMP: the CA's own key cannot be read");
            refuse(FailInfo::SystemFailure, "the server cannot verify signatures now")
        })?;
        if certificate.verify_signed_by(&ca_key).is_err() {
            return Err(untrusted("was not issued by this CA"));
        }
        if now < certificate.not_before || now > certificate.not_after {
            return Err(untrusted("is not valid now"));
        }
        let record = self
            .registry
            .certificate_by_serial(&certificate.serial_hex())
            .map_err(system)?
            .filter(|r| r.der == certificate.der)
            .ok_or_else(|| untrusted("is not one this instance issued"))?;
        if record.revoked_at.is_some() {
            return Err(refuse(FailInfo::CertRevoked, "the signer's certificate is revoked"));
        }
        if record.state != CertificateState::Issued {
            return Err(untrusted("awaits its confirmation"));
        }
        if request.sender != message::directory_name(&certificate.subject) {
            return Err(refuse(FailInfo::BadMessageCheck, "the sender is not the subject of the signer's certificate"));
        }
        let key = certificate.public_key().map_err(|e| refuse(FailInfo::BadAlg, format!("the signer's key: {e}")))?;
        key.verify(algorithm, &request.protected_part, checked.bits, "the message's signature").map_err(|e| {
            let fail = match e {
                crate::pki::PkiError::Unsupported(_) => FailInfo::BadAlg,
                _ => FailInfo::BadMessageCheck,
            };
            refuse(fail, e.to_string())
        })?;
        Ok(Signer { certificate, record })
    }
}
