//! `rr` (RFC 9483 §4.2): a device revokes its own certificate, asking
//! either signed with that certificate's key, or MAC-protected with its
//! registration's password (the senderKID naming the device). The
//! certificate goes on the CRL with the reason asked for; the answer is an
//! `rp`, protected in kind. A MAC that does not verify counts toward the
//! registration's lockout, as a wrong enrollment password does.

use super::checks::Checked;
use super::message::{self, ContentFault, FailInfo, RevDetails};
use super::protection::Protection;
use super::reply::{Protect, Reply};
use super::{CmpServer, NOT_AUTHENTICATED, Refusal, refuse, system};
use crate::audit::hex;
use crate::pki::x509::Certificate;
use crate::registry::CrlReason;
use prereg_core::Fqdn;

impl CmpServer {
    pub(super) fn revoke(
        &self,
        checked: &Checked<'_>,
        details: &Result<Vec<RevDetails>, ContentFault>,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        // The one certificate named (read before the protection is checked:
        // with a MAC, it says whose secret keys it).
        let named = match details {
            Ok(list) if list.len() == 1 => Ok(&list[0]),
            Ok(list) => Err(refuse(
                FailInfo::BadRequest,
                format!("{} RevDetails; one certificate is revoked per rr", list.len()),
            )),
            Err(fault) => Err(refuse(fault.fail, fault.text.clone())),
        };
        let nonce = message::fresh_nonce();
        let (reply_protect, secret, named) = match &checked.protection {
            Protection::Signature(_) => {
                let signer = self.signed_by(checked, now)?;
                let named = named?;
                // A device revokes its own certificate.
                if named.serial.as_deref().map(hex) != Some(signer.record.serial.clone()) {
                    let reply = Reply { request, protect: Protect::Signed, now, nonce: &nonce };
                    return Ok(self.error(
                        &reply,
                        FailInfo::NotAuthorized,
                        "a signed rr revokes the signer's own certificate",
                    ));
                }
                (Protect::Signed, None, named)
            }
            Protection::Mac(_) => {
                let (_, kid) = checked.mac()?;
                let named = named?;
                let serial = named.serial.as_deref().map(hex).unwrap_or_default();
                let not_authenticated = || refuse(FailInfo::BadMessageCheck, NOT_AUTHENTICATED);
                let certificate = self.registry.certificate_by_serial(&serial).map_err(system)?;
                let owner = certificate.as_ref().and_then(|c| {
                    let name = Certificate::from_der(&c.der).ok()?.subject_info().ok()?.common_name?;
                    let same = Fqdn::parse(&name).ok()? == Fqdn::parse(&String::from_utf8_lossy(kid)).ok()?;
                    same.then_some(c.registration?)
                });
                let (registration, secret) = self.secret_for(owner, checked)?;
                if !checked.mac_verifies(secret.as_bytes()) {
                    let object = format!("certificate:{serial}");
                    let detail = "CMP rr: the MAC does not verify with the registration's password";
                    self.registry
                        .count_password_failure(registration, "certificate.revoke", &object, detail, now)
                        .map_err(system)?;
                    return Err(not_authenticated());
                }
                (Protect::Unprotected, Some(secret), named)
            }
        };
        let protect = match (&checked.protection, &secret) {
            (Protection::Mac(alg), Some(secret)) => Protect::Mac(alg, secret.as_str()),
            _ => reply_protect,
        };
        let reply = Reply { request, protect, now, nonce: &nonce };
        let transaction = crate::enroll::transaction_text("cmp", checked.transaction_id);
        if !self.registry.claim_transaction(&transaction, now).map_err(system)? {
            return Ok(self.error(
                &reply,
                FailInfo::TransactionIdInUse,
                "this transactionID was used before: start a new transaction with a fresh one",
            ));
        }
        if let Some(issuer) = &named.issuer
            && *issuer != self.ca.certificate().subject
        {
            return Ok(self.error(&reply, FailInfo::BadCertId, "the rr names another issuer than this CA"));
        }
        let reason = match named.reason {
            None => CrlReason::Unspecified,
            Some(code) => match CrlReason::from_code(code).filter(|r| *r != CrlReason::CaCompromise) {
                Some(reason) => reason,
                None => {
                    return Ok(self.error(
                        &reply,
                        FailInfo::BadRequest,
                        &format!("CRL reason code {code} is not one a device may give"),
                    ));
                }
            },
        };
        let serial = named.serial.as_deref().map(hex).unwrap_or_default();
        if !self.registry.revoke_for_device(&serial, reason, "at the device's request (CMP rr)", now).map_err(system)? {
            return Ok(self.error(&reply, FailInfo::CertRevoked, "the certificate is revoked already"));
        }
        let status = message::status_info(0, None, None);
        Ok(self.respond(&reply, &message::rev_rep(&status), false))
    }
}
