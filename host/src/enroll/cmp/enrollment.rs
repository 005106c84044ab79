//! `ir`, `cr` and `p10cr`: authenticate by the MAC before anything in the
//! body is acted on, then decide, count, audit and issue in one transaction.

use prereg_core::{Fqdn, Protocol, Reason};
use zeroize::Zeroizing;

use super::checks::Checked;
use super::message::{Body, CertRequest, ContentFault, FailInfo, body_tag};
use super::reply::{Protect, Reply};
use super::{CmpServer, NOT_AUTHENTICATED, Refusal, denial_for, refuse, system};
use crate::audit::hex;
use crate::enroll::{IssueRequest, issue_granted, names_beyond_the_device, transaction_text};
use crate::evaluation::MacProof;
use crate::pki::x509;
use crate::registry::{DecisionMode, DecisionReport, EnrollmentInput, FrontRefusal, Grant};
use crate::store::{CertificateRecord, CertificateState, ProcedureRecord};

/// What a transaction's certificate keeps for its `certConf` and for a
/// resent request (never the password: the MAC is checked anew with the
/// registration's secret).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct HeldRequest {
    pub procedure: String,
    pub fqdn: String,
    pub cert_req_id: i64,
    /// The server's senderNonce in the `ip`/`cp` (hex): the `certConf`'s recipNonce.
    #[serde(default)]
    pub server_nonce: String,
    /// The request's senderNonce (hex): a resent request has the same.
    #[serde(default)]
    pub client_nonce: String,
    /// For a `kur`: the serial of the certificate whose key signed it (the
    /// `certConf` must be signed by the same); empty for a MAC request.
    #[serde(default)]
    pub signer_serial: String,
}

/// The request of an `ir`/`cr`/`p10cr` body as far as it could be read: the
/// body to answer in, the certReqId to answer, and the request or what is
/// wrong with it.
pub(super) struct Requested<'a> {
    pub answer_tag: u8,
    pub cert_req_id: i64,
    pub request: Result<&'a CertRequest, ContentFault>,
}

pub(super) fn requested(body: &Body) -> Option<Requested<'_>> {
    let (answer_tag, list) = match body {
        Body::Ir(list) => (body_tag::IP, list),
        Body::Cr(list) => (body_tag::CP, list),
        Body::Kur(list) => (body_tag::KUP, list),
        Body::P10cr(one) => {
            return Some(Requested {
                answer_tag: body_tag::CP,
                cert_req_id: -1,
                request: one.as_ref().map_err(Clone::clone),
            });
        }
        _ => return None,
    };
    let requested = match list {
        Err(fault) => Requested { answer_tag, cert_req_id: 0, request: Err(fault.clone()) },
        Ok(list) => {
            let first = &list[0];
            let request = if list.len() > 1 {
                Err(ContentFault {
                    fail: FailInfo::BadRequest,
                    text: format!("{} certificate requests in one message; one is served per message", list.len()),
                })
            } else if first.id != 0 {
                Err(ContentFault {
                    fail: FailInfo::BadRequest,
                    text: format!("certReqId {}: it must be 0 (RFC 9483 §4.1.1)", first.id),
                })
            } else {
                Ok(first)
            };
            Requested { answer_tag, cert_req_id: first.id, request }
        }
    };
    Some(requested)
}

impl CmpServer {
    pub(super) fn enroll(&self, procedure: &str, checked: &Checked<'_>, now: u64) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        let (alg, kid) = checked.mac()?;
        let record = self.cmp_procedure(procedure)?;
        let requested =
            requested(&request.body).ok_or_else(|| refuse(FailInfo::BadRequest, "not a certificate request"))?;
        // The senderKID names the device; its IP address and serial number
        // come from the request, as far as it could be read.
        let facts = requested.request.as_ref().ok().map(|r| &r.facts);
        let kid = String::from_utf8_lossy(kid).into_owned();
        let input = EnrollmentInput {
            procedure: procedure.to_owned(),
            fqdn: kid.clone(),
            ip: facts.and_then(|f| f.ip).map(|ip| ip.to_string()),
            serial: facts.and_then(|f| f.serial.clone()),
            transaction: Some(transaction_text("cmp", checked.transaction_id)),
            ..Default::default()
        };
        let transaction = input.transaction.clone().unwrap_or_default();
        // A transaction that has a certificate already: the same request
        // resent (the client lost the answer) gets that certificate, counted
        // once; anything else is refused (RFC 4210 §5.1.1).
        if let Some(earlier) = self.registry.certificate_by_transaction(&transaction).map_err(system)? {
            return self.resent(checked, &requested, &earlier, now);
        }

        let (registration, secret) = self.authenticate(&input, checked, now)?;
        // From here on, every answer is protected with the registration's secret.
        let nonce = super::message::fresh_nonce();
        let reply = Reply { request, protect: Protect::Mac(alg, secret.as_str()), now, nonce: &nonce };
        if !self.registry.claim_transaction(&transaction, now).map_err(system)? {
            return Ok(self.error(
                &reply,
                FailInfo::TransactionIdInUse,
                "this transactionID was used before: start a new transaction with a fresh one",
            ));
        }
        let cert_request = match requested.request.clone().and_then(|r| self.template_fits(r, &kid).map(|()| r)) {
            Ok(r) => r,
            Err(fault) => return self.content_refusal(&reply, &requested, &fault, &input, Some(registration)),
        };

        let days = record.map(|p| p.certificate_days).unwrap_or(crate::registry::DEFAULT_CERTIFICATE_DAYS);
        let implicit = request.implicit_confirm;
        let kept = HeldRequest {
            procedure: input.procedure.clone(),
            fqdn: kid.clone(),
            cert_req_id: requested.cert_req_id,
            server_nonce: hex(&nonce),
            client_nonce: request.sender_nonce.as_deref().map(hex).unwrap_or_default(),
            signer_serial: String::new(),
        };
        let issue_request = IssueRequest {
            ca: self.ca.clone(),
            spki: cert_request.spki.clone(),
            days,
            now,
            transaction,
            // Without implicit confirmation: held (and counted) until the certConf.
            state: if implicit { CertificateState::Issued } else { CertificateState::Held },
            expires_at: (!implicit).then_some(now + self.limits.confirm_wait_seconds),
            request: serde_json::to_value(kept).unwrap_or_default(),
        };
        let issue = move |grant: &Grant<'_>| issue_granted(grant, &issue_request);
        let input = EnrollmentInput { mac: Some(MacProof { registration, valid: true }), ..input };
        let (report, certificate) = self.registry.enroll_issuing(input, now, issue).map_err(system)?;
        match certificate {
            Some(certificate) if report.allowed => {
                tracing::info!(
                    registration,
                    serial = %certificate.serial,
                    audit = ?report.audit_seq,
                    implicit,
                    "CMP: certificate issued and counted"
                );
                Ok(self.issued(&reply, requested.answer_tag, requested.cert_req_id, &certificate.der, implicit))
            }
            _ => {
                tracing::info!(reason = %report.reason, audit = ?report.audit_seq, "CMP: enrollment denied");
                let (text, fail) = denial_for(report.reason);
                Ok(self.rejection(&reply, requested.answer_tag, requested.cert_req_id, fail, text))
            }
        }
    }

    /// Refuses an authenticated request for what is wrong with its content:
    /// audited as a refusal (nothing decided or counted), answered with a
    /// rejection in the protected `ip`/`cp`/`kup`.
    pub(super) fn content_refusal(
        &self,
        reply: &Reply<'_>,
        requested: &Requested<'_>,
        fault: &ContentFault,
        input: &EnrollmentInput,
        registration: Option<u64>,
    ) -> Result<Vec<u8>, Refusal> {
        let detail = format!("CMP {}: {}: {}", reply.request.body.name(), fault.fail.name(), fault.text);
        tracing::info!("{detail}");
        let refusal = FrontRefusal { input, registration, reason: None, detail };
        self.registry.audit_refusal(&refusal, reply.now).map_err(system)?;
        Ok(self.rejection(reply, requested.answer_tag, requested.cert_req_id, fault.fail, &fault.text))
    }

    /// What the request asks for must be the device the senderKID names,
    /// and nothing beside it.
    pub(super) fn template_fits(&self, request: &CertRequest, kid: &str) -> Result<(), ContentFault> {
        if let Some(fault) = &request.fault {
            return Err(fault.clone());
        }
        let template = |text: String| ContentFault { fail: FailInfo::BadCertTemplate, text };
        if let Some(name) = &request.facts.fqdn {
            let same = match (Fqdn::parse(kid), Fqdn::parse(name)) {
                (Ok(a), Ok(b)) => a == b,
                _ => kid == name,
            };
            if !same {
                return Err(template(format!("the senderKID {kid:?} does not name the requested device {name:?}")));
            }
        }
        names_beyond_the_device(&request.facts).map_or(Ok(()), |why| Err(template(why)))
    }

    /// Finds the registration the request's MAC must be keyed by and checks
    /// the MAC with its secret. Every way this fails is answered alike
    /// (`badMessageCheck`, unprotected), after the same work, and decided
    /// and audited for real: a client cannot tell an unregistered name from
    /// a wrong secret.
    pub(super) fn authenticate(
        &self,
        input: &EnrollmentInput,
        checked: &Checked<'_>,
        now: u64,
    ) -> Result<(u64, Zeroizing<String>), Refusal> {
        let not_authenticated = || refuse(FailInfo::BadMessageCheck, NOT_AUTHENTICATED);
        let dry = self.decide(input, None, DecisionMode::DryRun, now)?;
        let registration = match (dry.reason, dry.registration) {
            (Reason::PasswordRequired, Some(id)) => id,
            _ => {
                // Denied before the password step, or no password to key the
                // MAC. The MAC is computed all the same (with no secret).
                let _ = checked.mac_verifies(&[]);
                if dry.allowed {
                    // Not decided (it would be allowed and counted, and CMP
                    // could not answer it), but audited as refused.
                    let detail = "CMP: the deciding registration has no password to key CMP's MAC; register the \
                                  device with a password";
                    tracing::warn!(registration = ?dry.registration, "{detail}");
                    let refusal = FrontRefusal {
                        input,
                        registration: dry.registration,
                        reason: Some(Reason::PasswordRequired),
                        detail: detail.into(),
                    };
                    self.registry.audit_refusal(&refusal, now).map_err(system)?;
                    return Err(not_authenticated());
                }
                let report = self.decide(input, None, DecisionMode::Enroll, now)?;
                return Err(self.unauthenticated(&report));
            }
        };
        let Some(secret) = self.registry.password_secret(registration).map_err(system)? else {
            let _ = checked.mac_verifies(&[]);
            let report = self.decide(input, None, DecisionMode::Enroll, now)?;
            tracing::warn!(registration, "CMP: the registration's password is not sealed for CMP; register it again");
            return Err(self.unauthenticated(&report));
        };
        if !checked.mac_verifies(secret.as_bytes()) {
            let proof = Some(MacProof { registration, valid: false });
            let report = self.decide(input, proof, DecisionMode::Enroll, now)?;
            return Err(self.unauthenticated(&report));
        }
        Ok((registration, secret))
    }

    /// The unprotected answer to a request that could not be authenticated,
    /// decided as `report`.
    fn unauthenticated(&self, report: &DecisionReport) -> Refusal {
        tracing::info!(reason = %report.reason, audit = ?report.audit_seq, "CMP: enrollment denied before the MAC verified");
        match report.reason {
            Reason::PolicyError => refuse(FailInfo::SystemFailure, Reason::PolicyError.code()),
            _ => refuse(FailInfo::BadMessageCheck, NOT_AUTHENTICATED),
        }
    }

    /// A request in a transaction that has the certificate `earlier`. The
    /// same request resent (the same senderNonce, protected with the
    /// registration's secret, for the same public key, the certificate
    /// neither revoked nor rejected) is answered with that certificate
    /// again, and nothing is decided or counted again; any other
    /// authenticated request is refused as transactionIdInUse.
    fn resent(
        &self,
        checked: &Checked<'_>,
        requested: &Requested<'_>,
        earlier: &CertificateRecord,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        let (registration, secret) = self.secret_for(earlier.registration, checked)?;
        if !checked.mac_verifies(secret.as_bytes()) {
            return Err(refuse(FailInfo::BadMessageCheck, NOT_AUTHENTICATED));
        }
        let kept: HeldRequest = serde_json::from_str(&earlier.request).unwrap_or_default();
        let same_nonce = !kept.client_nonce.is_empty()
            && request.sender_nonce.as_deref().map(hex) == Some(kept.client_nonce.clone());
        let same_key = requested
            .request
            .as_ref()
            .is_ok_and(|r| x509::Certificate::from_der(&earlier.der).is_ok_and(|c| c.spki == r.spki));
        let answerable = matches!(earlier.state, CertificateState::Issued | CertificateState::Held)
            && earlier.revoked_at.is_none()
            && same_nonce
            && same_key;
        // The same senderNonce as the first answer's, so that the certConf's
        // recipNonce answers either.
        let nonce = crate::pki::unhex(&kept.server_nonce).unwrap_or_else(super::message::fresh_nonce);
        let (alg, _) = checked.mac()?;
        let reply = Reply { request, protect: Protect::Mac(alg, secret.as_str()), now, nonce: &nonce };
        if !answerable {
            return Ok(self.error(
                &reply,
                FailInfo::TransactionIdInUse,
                "this transactionID belongs to another request: start a new transaction",
            ));
        }
        let implicit = earlier.state == CertificateState::Issued;
        tracing::info!(registration, serial = %earlier.serial, "CMP: a resent request gets its transaction's certificate again, counted once");
        Ok(self.issued(&reply, requested.answer_tag, requested.cert_req_id, &earlier.der, implicit))
    }

    /// The sealed password of `registration`, to check a MAC with. Without
    /// one (no registration, or its password not sealed for CMP) the MAC is
    /// computed all the same, with no secret, and the request is refused as
    /// not authenticated: the answer and its time do not tell which.
    pub(super) fn secret_for(
        &self,
        registration: Option<u64>,
        checked: &Checked<'_>,
    ) -> Result<(u64, Zeroizing<String>), Refusal> {
        let secret = match registration {
            Some(id) => self.registry.password_secret(id).map_err(system)?.map(|s| (id, s)),
            None => None,
        };
        secret.ok_or_else(|| {
            let _ = checked.mac_verifies(&[]);
            refuse(FailInfo::BadMessageCheck, NOT_AUTHENTICATED)
        })
    }

    /// The token procedure `procedure`, if it exists; one of another
    /// protocol is refused.
    pub(super) fn cmp_procedure(&self, procedure: &str) -> Result<Option<ProcedureRecord>, Refusal> {
        let record = self.registry.procedure(procedure).map_err(system)?;
        match record {
            Some(p) if p.protocol != Protocol::Cmp => {
                Err(refuse(FailInfo::BadRequest, format!("token procedure {procedure} is for {}, not CMP", p.protocol)))
            }
            other => Ok(other),
        }
    }

    pub(super) fn decide(
        &self,
        input: &EnrollmentInput,
        mac: Option<MacProof>,
        mode: DecisionMode,
        now: u64,
    ) -> Result<DecisionReport, Refusal> {
        let input = EnrollmentInput { mac, ..input.clone() };
        self.registry.decide(input, mode, now).map_err(system)
    }
}
