//! `certConf` (RFC 9483 §4.1.1): the client accepts or rejects the
//! certificate held for its transaction. Checked with the registration's
//! secret, as the request was; once that verifies, every answer is
//! protected: a recipNonce that is not the server's senderNonce, more or
//! fewer than one CertStatus, another certReqId or certHash, an acceptance
//! carrying a failInfo, are each an `error` with its failInfo, never a
//! `pkiConf`.

use super::checks::Checked;
use super::confirmation_text as text;
use super::enrollment::HeldRequest;
use super::message::{CertStatus, ContentFault, FailInfo};
use super::protection::Protection;
use super::reply::{Protect, Reply};
use super::{CmpServer, NOT_AUTHENTICATED, Refusal, refuse, system};
use crate::audit::hex;
use crate::enroll::transaction_text;
use crate::pki::keys::DigestAlg;
use crate::registry::Revocation;
use crate::store::CertificateState;

impl CmpServer {
    /// A `certConf`: an acceptance issues the held certificate for good (it
    /// was counted when issued); a rejection revokes it and gives its count
    /// back.
    pub(super) fn confirm(
        &self,
        checked: &Checked<'_>,
        statuses: &Result<Vec<CertStatus>, ContentFault>,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        let transaction = transaction_text("cmp", checked.transaction_id);
        let certificate = self
            .registry
            .certificate_by_transaction(&transaction)
            .map_err(system)?
            .ok_or_else(|| refuse(FailInfo::BadRequest, text::NOTHING_WAITS))?;
        let registration = certificate.registration.ok_or_else(|| refuse(FailInfo::BadRequest, text::NOTHING_WAITS))?;
        let kept: HeldRequest = serde_json::from_str(&certificate.request).unwrap_or_default();
        let nonce = crate::pki::unhex(&kept.server_nonce).unwrap_or_else(super::message::fresh_nonce);
        // The certConf is protected as the request was: a MAC request's with
        // the registration's secret, a kur's signed by the same certificate.
        let secret;
        let protect = if kept.signer_serial.is_empty() {
            let (alg, _) = checked.mac()?;
            secret = self.registry.password_secret(registration).map_err(system)?;
            let Some(secret) = secret.as_ref().filter(|s| checked.mac_verifies(s.as_bytes())) else {
                return Err(refuse(FailInfo::BadMessageCheck, NOT_AUTHENTICATED));
            };
            Protect::Mac(alg, secret.as_str())
        } else {
            let Protection::Signature(_) = checked.protection else {
                return Err(refuse(FailInfo::WrongIntegrity, "a kur's certConf must be signed, as the kur was"));
            };
            let signer = self.signed_by(checked, now)?;
            if signer.record.serial != kept.signer_serial {
                return Err(refuse(FailInfo::BadMessageCheck, "the certConf is not signed by the kur's signer"));
            }
            Protect::Signed
        };
        let reply = Reply { request, protect, now, nonce: &nonce };
        let error = |fail: FailInfo, text: &str| Ok(self.error(&reply, fail, text));

        // (A certificate held by a version that kept no nonce is not checked.)
        let answered = request.recip_nonce.as_deref().map(hex);
        if !kept.server_nonce.is_empty() && answered.as_deref() != Some(kept.server_nonce.as_str()) {
            return error(FailInfo::BadRecipientNonce, text::WRONG_NONCE);
        }
        match (certificate.state, certificate.revoked_at) {
            (CertificateState::Held, None) => {}
            (CertificateState::Issued, None) => return error(FailInfo::CertConfirmed, text::CONFIRMED),
            _ => return error(FailInfo::CertRevoked, text::REVOKED),
        }
        let statuses = match statuses {
            Ok(list) => list,
            Err(fault) => return error(fault.fail, &fault.text),
        };
        let [status] = statuses.as_slice() else {
            return error(
                FailInfo::BadRequest,
                &format!("the certConf holds {} CertStatus; it must hold exactly one", statuses.len()),
            );
        };
        if status.cert_req_id != kept.cert_req_id {
            return error(
                FailInfo::BadCertId,
                &format!(
                    "certReqId {} does not name the certificate issued ({})",
                    status.cert_req_id, kept.cert_req_id
                ),
            );
        }
        // The hash: hashAlg if named (CMP v3), otherwise the one of the
        // certificate's signature algorithm (RFC 9480 §2.10): the CA signs
        // with SHA-256.
        let hash = match status.hash_alg.as_deref().map(DigestAlg::from_oid) {
            Some(Some(DigestAlg::Sha1)) | Some(None) => {
                return error(
                    FailInfo::BadAlg,
                    "the certConf's hashAlg is not supported (SHA-256, SHA-384, SHA-512 are)",
                );
            }
            Some(Some(alg)) => alg,
            None => DigestAlg::Sha256,
        };
        if hash.digest(&certificate.der) != status.cert_hash {
            return error(FailInfo::BadCertId, text::WRONG_HASH);
        }
        if status.accepted() && status.has_fail_info {
            return error(FailInfo::BadRequest, "an accepting CertStatus carries a failInfo");
        }
        if certificate.expires_at < now {
            // Too late: revoked now if the sweeper has not got to it yet.
            self.registry.revoke_unconfirmed(&certificate.serial, Revocation::NotConfirmed, now).map_err(system)?;
            return error(FailInfo::CertRevoked, "the certificate was not confirmed in time and is revoked");
        }
        // One certConf alone settles a held certificate, whichever process gets it.
        if !status.accepted() {
            if !self
                .registry
                .revoke_unconfirmed(&certificate.serial, Revocation::RejectedByClient, now)
                .map_err(system)?
            {
                return error(FailInfo::CertConfirmed, text::SETTLED);
            }
            tracing::info!(fqdn = %kept.fqdn, serial = %certificate.serial, "CMP: the client rejected its certificate; revoked, count given back");
            return Ok(self.pki_conf(&reply));
        }
        if !self.registry.confirm_certificate(&certificate.serial).map_err(system)? {
            return error(FailInfo::CertConfirmed, text::SETTLED);
        }
        tracing::info!(fqdn = %kept.fqdn, registration, serial = %certificate.serial, "CMP: certificate confirmed");
        Ok(self.pki_conf(&reply))
    }
}
