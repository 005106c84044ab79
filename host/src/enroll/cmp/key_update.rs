//! `kur` (RFC 9483 §4.1.3): an enrolled device replaces its key. The request
//! is signed with the key of its current certificate from this CA
//! ([`super::signature`]); the new certificate names the same device (the
//! old certificate's canonical FQDN, and what its registration pins), is
//! answered in a signed `kup`, and confirmed like an `ir`'s. The policy
//! decides it (WIT `decide-renewal`, [`crate::registry::Registry::renew_issuing`]):
//! by default it is refused if the registration was disabled, locked,
//! expired or deleted. A key update is not counted (the device keeps its
//! one enrollment), and is audited either way (action `renew`).

use super::checks::Checked;
use super::enrollment::{HeldRequest, requested};
use super::message::{ContentFault, FailInfo};
use super::reply::{Protect, Reply};
use super::{CmpServer, Refusal, refuse, system};
use crate::audit::hex;
use crate::enroll::{IssueRequest, issue_granted, transaction_text};
use crate::registry::{EnrollmentInput, Grant, Renewal};
use crate::store::CertificateState;

impl CmpServer {
    pub(super) fn key_update(&self, procedure: &str, checked: &Checked<'_>, now: u64) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        let record = self.cmp_procedure(procedure)?;
        let signer = self.signed_by(checked, now)?;
        // From here on, every answer is signed.
        let nonce = super::message::fresh_nonce();
        let reply = Reply { request, protect: Protect::Signed, now, nonce: &nonce };
        let transaction = transaction_text("cmp", checked.transaction_id);
        if !self.registry.claim_transaction(&transaction, now).map_err(system)? {
            return Ok(self.error(
                &reply,
                FailInfo::TransactionIdInUse,
                "this transactionID was used before: start a new transaction with a fresh one",
            ));
        }
        let requested =
            requested(&request.body).ok_or_else(|| refuse(FailInfo::BadRequest, "not a certificate request"))?;
        let fqdn = signer.certificate.subject_info().ok().and_then(|n| n.common_name).unwrap_or_default();
        let fits = requested.request.clone().and_then(|r| {
            self.template_fits(r, &fqdn)?;
            if r.spki == signer.certificate.spki {
                return Err(ContentFault {
                    fail: FailInfo::BadCertTemplate,
                    text: "the new key is the old one: a key update needs a new key".into(),
                });
            }
            Ok(r)
        });
        let Some(registration) = signer.record.registration else {
            return Ok(self.rejection(
                &reply,
                requested.answer_tag,
                requested.cert_req_id,
                FailInfo::NotAuthorized,
                "the signer's certificate belongs to no registration",
            ));
        };
        let cert_request = match fits {
            Ok(r) => r,
            Err(fault) => {
                let input = EnrollmentInput {
                    procedure: procedure.to_owned(),
                    fqdn: fqdn.clone(),
                    transaction: Some(transaction.clone()),
                    ..Default::default()
                };
                return self.content_refusal(&reply, &requested, &fault, &input, Some(registration));
            }
        };
        let implicit = request.implicit_confirm;
        let kept = HeldRequest {
            procedure: procedure.to_owned(),
            fqdn: fqdn.clone(),
            cert_req_id: requested.cert_req_id,
            server_nonce: hex(&nonce),
            client_nonce: request.sender_nonce.as_deref().map(hex).unwrap_or_default(),
            signer_serial: signer.record.serial.clone(),
        };
        let issue_request = IssueRequest {
            ca: self.ca.clone(),
            spki: cert_request.spki.clone(),
            days: record.map(|p| p.certificate_days).unwrap_or(crate::registry::DEFAULT_CERTIFICATE_DAYS),
            now,
            transaction: transaction.clone(),
            state: if implicit { CertificateState::Issued } else { CertificateState::Held },
            expires_at: (!implicit).then_some(now + self.limits.confirm_wait_seconds),
            request: serde_json::to_value(kept).unwrap_or_default(),
        };
        let mut issue = |grant: &Grant<'_>| issue_granted(grant, &issue_request);
        let renewal = Renewal {
            registration,
            fqdn: &fqdn,
            ip: cert_request.facts.ip.map(|ip| ip.to_string()),
            serial: cert_request.facts.serial.as_deref(),
            procedure,
            transaction: &transaction,
            replaces: &signer.record.serial,
            replaces_expires_at: signer.certificate.not_after,
            actor: None,
        };
        match self.registry.renew_issuing(&renewal, now, &mut issue).map_err(system)? {
            (_, Some(certificate)) => {
                tracing::info!(registration, serial = %certificate.serial, replaces = %signer.record.serial, "CMP: key updated");
                Ok(self.issued(&reply, requested.answer_tag, requested.cert_req_id, &certificate.der, implicit))
            }
            (report, None) => {
                tracing::info!(registration, reason = %report.reason, audit = ?report.audit_seq, "CMP: key update denied: {}", report.explanation);
                Ok(self.rejection(
                    &reply,
                    requested.answer_tag,
                    requested.cert_req_id,
                    FailInfo::NotAuthorized,
                    super::NOT_AUTHORIZED,
                ))
            }
        }
    }
}
