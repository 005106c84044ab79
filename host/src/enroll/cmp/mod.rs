//! The CMP server (RFC 4210/9480, lightweight profile RFC 9483, HTTP transfer
//! RFC 6712): `ir`, `cr` and `p10cr` with MAC protection keyed by the
//! registration's password, `certConf`/`pkiConf` and implicit confirmation.
//!
//! How a request is decided:
//!
//! 1. The message must be MAC-protected (PBM or PBMAC1, 100 to 100,000
//!    iterations) and its senderKID must name the device (the FQDN).
//! 2. A dry run of the decision finds the registration that decides. Any
//!    denial before the password step (no registration, IP mismatch, another
//!    domain, …) is decided for real, audited and answered at once.
//! 3. When the deciding registration has a password, its sealed secret
//!    ([`crate::sealing`]) is opened and the MAC checked; the outcome goes into
//!    the decision as a [`MacProof`] (a wrong MAC is a `bad-password` and counts
//!    towards the lockout).
//! 4. The enrollment is decided, counted and audited, and its certificate
//!    issued and recorded, in one transaction
//!    ([`Registry::enroll_issuing`]): a certificate that leaves the server in
//!    an `ip`/`cp` has been counted, whether the client confirms it or not.
//!    Without implicit confirmation the certificate is held (schema
//!    migrations 8 and 10) until the client's `certConf`, which any process
//!    of the instance may receive: an acceptance issues it for good; a
//!    rejection, or no `certConf` within the confirmation window (5 minutes),
//!    revokes it (it goes on the CRL) and gives its count back, once.
//!
//! Certificates carry the canonical FQDN the decision matched, and an IP
//! address or serial number only when the registration pins it; a request
//! naming other DNS names or other kinds of subjectAltName is refused
//! (`badCertTemplate`).
//!
//! Answers to a request whose MAC verified are protected with the same secret;
//! others cannot be (the server does not know a secret the client has), so
//! they go unprotected: `openssl cmp` needs `-unprotected_errors` to read them.

pub use prereg_pki::cmp::{message, protection};

use std::sync::Arc;

use prereg_core::{Fqdn, Protocol, Reason};

use self::message::{Body, CertRequest, FailInfo, Header, Request, body_tag};
use self::protection::MacAlgorithm;
use super::{IssueRequest, issue_granted, names_beyond_the_device};
use crate::evaluation::MacProof;
use crate::pki::{Ca, x509};
use crate::registry::{DecisionMode, DecisionReport, EnrollmentInput, Grant, Registry, RegistryError, Revocation};
use crate::store::{CertificateRecord, CertificateState};

/// How long an issued certificate waits for its `certConf` by default.
pub const CONFIRM_WAIT_SECONDS: u64 = 300;

/// What a held certificate's confirmation needs again (never the password;
/// the MAC is checked anew with the registration's secret).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct HeldRequest {
    procedure: String,
    fqdn: String,
    cert_req_id: i64,
}

/// The CMP endpoint of one instance.
pub struct CmpServer {
    registry: Registry,
    ca: Arc<Ca>,
    confirm_wait: u64,
}

/// What the protocol front refuses before any decision.
struct Refusal {
    fail: FailInfo,
    text: String,
}

fn refuse(fail: FailInfo, text: impl Into<String>) -> Refusal {
    Refusal { fail, text: text.into() }
}

/// What a client is told of a denial that depends on what is registered (no
/// registration, a wrong secret, an IP or serial that does not match, a
/// locked registration): one answer for all, so that a refusal never tells
/// whether a name is registered. The audit log keeps the real reason.
pub const NOT_AUTHORIZED: &str = "not-authorized";

/// The statusString and failInfo that tell a client its enrollment was denied.
pub fn denial_for(reason: Reason) -> (&'static str, FailInfo) {
    match reason {
        Reason::InvalidFqdn | Reason::UnknownProcedure => (reason.code(), FailInfo::BadRequest),
        Reason::DomainNotAllowed => (reason.code(), FailInfo::NotAuthorized),
        Reason::PolicyError => (reason.code(), FailInfo::SystemFailure),
        // Named one by one: a new reason must be placed here on purpose.
        Reason::NoRegistration
        | Reason::IpMismatch
        | Reason::SerialMismatch
        | Reason::PasswordRequired
        | Reason::BadPassword
        | Reason::Locked
        | Reason::NotRequired
        | Reason::Matched => (NOT_AUTHORIZED, FailInfo::NotAuthorized),
    }
}

impl CmpServer {
    /// A CMP server deciding with `registry` and issuing from `ca`.
    pub fn new(registry: Registry, ca: Arc<Ca>) -> Self {
        CmpServer { registry, ca, confirm_wait: CONFIRM_WAIT_SECONDS }
    }

    /// The same, holding unconfirmed certificates for `seconds` instead of
    /// [`CONFIRM_WAIT_SECONDS`].
    pub fn with_confirm_wait(mut self, seconds: u64) -> Self {
        self.confirm_wait = seconds;
        self
    }

    /// Answers one DER PKIMessage posted for token procedure `procedure`.
    /// Never fails: every problem is a CMP error or rejection.
    pub fn handle(&self, procedure: &str, der: &[u8], now: u64) -> Vec<u8> {
        let request = match message::read(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "CMP: unreadable request");
                return self.unprotected_error(None, now, FailInfo::BadDataFormat, &e.to_string());
            }
        };
        match self.answer(procedure, &request, now) {
            Ok(response) => response,
            Err(refusal) => {
                tracing::info!(procedure, body = %request.body.name(), "CMP: refused: {}", refusal.text);
                self.unprotected_error(Some(&request), now, refusal.fail, &refusal.text)
            }
        }
    }

    fn answer(&self, procedure: &str, request: &Request, now: u64) -> Result<Vec<u8>, Refusal> {
        let alg_der = request.protection_alg.as_deref().ok_or_else(|| {
            refuse(
                FailInfo::BadMessageCheck,
                "the request is not protected: protect it with the registration's password (MAC)",
            )
        })?;
        let alg = crate::pki::asn1::parse(alg_der)
            .map_err(|e| refuse(FailInfo::BadMessageCheck, e.to_string()))
            .and_then(|v| MacAlgorithm::read(&v).map_err(|e| refuse(FailInfo::BadMessageCheck, e.0)))?;
        let mac = request
            .protection
            .as_deref()
            .ok_or_else(|| refuse(FailInfo::BadMessageCheck, "the request has a protectionAlg but no protection"))?;
        let kid = request.sender_kid.as_deref().ok_or_else(|| {
            refuse(FailInfo::BadMessageCheck, "no senderKID: the reference must be the device's FQDN")
        })?;
        if request.transaction_id.as_ref().is_none_or(|t| t.len() < 16) {
            return Err(refuse(FailInfo::BadRequest, "a transactionID of at least 16 bytes is required"));
        }
        let checked = Checked { request, alg, mac, kid };
        match &request.body {
            Body::Ir(list) | Body::Cr(list) => match list.as_slice() {
                [one] => self.enroll(procedure, &checked, one, now),
                _ => Err(refuse(FailInfo::BadRequest, "one certificate request per message")),
            },
            Body::P10cr(one) => self.enroll(procedure, &checked, one, now),
            Body::CertConf(statuses) => self.confirm(&checked, statuses, now),
            Body::Other(_) => Err(refuse(
                FailInfo::BadRequest,
                format!("{} is not served here (ir, cr, p10cr, certConf are)", request.body.name()),
            )),
        }
    }

    fn enroll(
        &self,
        procedure: &str,
        checked: &Checked<'_>,
        cert_request: &CertRequest,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        let record = self.registry.procedure(procedure).map_err(system)?;
        if let Some(p) = &record
            && p.protocol != Protocol::Cmp
        {
            return Err(refuse(
                FailInfo::BadRequest,
                format!("token procedure {procedure} is for {}, not CMP", p.protocol),
            ));
        }
        let facts = &cert_request.facts;
        let fqdn = facts.fqdn.clone().unwrap_or_default();
        let kid = String::from_utf8_lossy(checked.kid).into_owned();
        let same = match (Fqdn::parse(&kid), Fqdn::parse(&fqdn)) {
            (Ok(a), Ok(b)) => a == b,
            _ => kid == fqdn,
        };
        if !same {
            return Err(refuse(
                FailInfo::BadRequest,
                format!("the senderKID {kid:?} does not name the requested device {fqdn:?}"),
            ));
        }
        if let Some(why) = names_beyond_the_device(facts) {
            return Err(refuse(FailInfo::BadCertTemplate, why));
        }
        let input = EnrollmentInput {
            procedure: procedure.to_owned(),
            fqdn,
            ip: facts.ip.map(|ip| ip.to_string()),
            serial: facts.serial.clone(),
            transaction: request.transaction_id.as_deref().map(|t| super::transaction_text("cmp", t)),
            ..Default::default()
        };
        let body_tag = match request.body {
            Body::Ir(_) => body_tag::IP,
            _ => body_tag::CP,
        };
        let reply = Reply { request, protect: None, now, body_tag, cert_req_id: cert_request.id };
        // A transaction that has a certificate already: the same request
        // resent (the client lost the answer) gets that certificate, counted
        // once; anything else is refused (RFC 4210 §5.1.1).
        if let Some(transaction) = &input.transaction
            && let Some(earlier) = self.registry.certificate_by_transaction(transaction).map_err(system)?
        {
            return self.resent(&reply, checked, cert_request, &earlier);
        }
        let dry = self.decide(&input, None, DecisionMode::DryRun, now)?;
        let registration = match (dry.reason, dry.registration) {
            (Reason::PasswordRequired, Some(id)) => id,
            _ => {
                // Denied before the password step, or no password to key the
                // MAC. The MAC is computed all the same (with no secret), so
                // that the answer takes as long as a wrong password's and says
                // the same.
                let _ = checked.alg.verify(&[], &request.protected_part, checked.mac);
                if dry.allowed {
                    // Not decided: it would be allowed and counted, and CMP
                    // could not answer it.
                    tracing::warn!(registration = ?dry.registration, "CMP: the deciding registration has no password to key CMP's MAC");
                    return Ok(self.denial(&reply, Reason::PasswordRequired));
                }
                // Decided for real and audited.
                let report = self.decide(&input, None, DecisionMode::Enroll, now)?;
                return Ok(self.rejection(&reply, &report));
            }
        };
        let Some(secret) = self.registry.password_secret(registration).map_err(system)? else {
            let report = self.decide(&input, None, DecisionMode::Enroll, now)?;
            tracing::warn!(registration, "CMP: the registration's password is not sealed for CMP; register it again");
            return Ok(self.rejection(&reply, &report));
        };
        let valid = checked.alg.verify(secret.as_bytes(), &request.protected_part, checked.mac);
        let proof = Some(MacProof { registration, valid });
        if !valid {
            let report = self.decide(&input, proof, DecisionMode::Enroll, now)?;
            return Ok(self.rejection(&reply, &report));
        }
        let protected = Reply { protect: Some((&checked.alg, secret.as_str())), ..reply };
        let days = record.map(|p| p.certificate_days).unwrap_or(crate::registry::DEFAULT_CERTIFICATE_DAYS);
        let implicit = request.implicit_confirm;
        let issue_request = IssueRequest {
            ca: &self.ca,
            spki: &cert_request.spki,
            days,
            now,
            transaction: input.transaction.clone().unwrap_or_default(),
            // Without implicit confirmation: held (and counted) until the certConf.
            state: if implicit { CertificateState::Issued } else { CertificateState::Held },
            expires_at: (!implicit).then_some(now + self.confirm_wait),
            request: serde_json::to_value(HeldRequest {
                procedure: input.procedure.clone(),
                fqdn: input.fqdn.clone(),
                cert_req_id: cert_request.id,
            })
            .unwrap_or_default(),
        };
        let mut issue = |grant: &Grant<'_>| issue_granted(grant, &issue_request);
        let input = EnrollmentInput { mac: proof, ..input };
        let (report, certificate) = self.registry.enroll_issuing(input, now, &mut issue).map_err(system)?;
        match certificate {
            Some(certificate) if report.allowed => {
                tracing::info!(
                    registration,
                    serial = %certificate.serial,
                    audit = ?report.audit_seq,
                    implicit,
                    "CMP: certificate issued and counted"
                );
                Ok(self.issued(&protected, &certificate.der, implicit))
            }
            _ => Ok(self.rejection(&protected, &report)),
        }
    }

    /// A `certConf`: an acceptance issues the held certificate for good (it
    /// was counted when issued); a rejection revokes it and gives its count
    /// back.
    fn confirm(&self, checked: &Checked<'_>, statuses: &[message::CertStatus], now: u64) -> Result<Vec<u8>, Refusal> {
        let request = checked.request;
        let transaction = super::transaction_text("cmp", request.transaction_id.as_deref().unwrap_or_default());
        let waiting = || refuse(FailInfo::BadRequest, "no certificate of this transaction awaits confirmation");
        let held = self
            .registry
            .certificate_by_transaction(&transaction)
            .map_err(system)?
            .filter(|c| c.state == CertificateState::Held && c.revoked_at.is_none())
            .ok_or_else(waiting)?;
        let registration = held.registration.ok_or_else(waiting)?;
        let facts: HeldRequest = serde_json::from_str(&held.request).map_err(|_| waiting())?;
        // The certConf is checked with the registration's secret, as the request was.
        let secret = self.registry.password_secret(registration).map_err(system)?.ok_or_else(waiting)?;
        if !checked.alg.verify(secret.as_bytes(), &request.protected_part, checked.mac) {
            return Err(refuse(FailInfo::BadMessageCheck, "the certConf's MAC does not verify"));
        }
        if held.expires_at < now {
            // Too late: revoked now if the sweeper has not got to it yet.
            self.registry.revoke_unconfirmed(&held.serial, Revocation::NotConfirmed, now).map_err(system)?;
            return Err(refuse(FailInfo::BadRequest, "the certificate was not confirmed in time and is revoked"));
        }
        let protect = Some((&checked.alg, secret.as_str()));
        let status = statuses.iter().find(|s| s.cert_req_id == facts.cert_req_id || statuses.len() == 1);
        let Some(status) = status else {
            return Err(refuse(FailInfo::BadRequest, "the certConf does not name the certificate issued"));
        };
        let hash = match status.hash_alg.as_deref().map(crate::pki::keys::DigestAlg::from_oid) {
            Some(Some(alg)) => alg.digest(&held.der),
            Some(None) => return Err(refuse(FailInfo::BadRequest, "unsupported certConf hashAlg")),
            // The CA signs with SHA-256, so the certHash is SHA-256 (RFC 4210 §5.3.18).
            None => crate::pki::keys::DigestAlg::Sha256.digest(&held.der),
        };
        if hash != status.cert_hash {
            return Err(refuse(FailInfo::BadRequest, "the certHash is not the hash of the certificate issued"));
        }
        // One certConf alone settles a held certificate, whichever process gets it.
        if !status.accepted {
            if !self.registry.revoke_unconfirmed(&held.serial, Revocation::RejectedByClient, now).map_err(system)? {
                return Err(refuse(FailInfo::BadRequest, "the certificate was settled already"));
            }
            tracing::info!(fqdn = %facts.fqdn, serial = %held.serial, "CMP: the client rejected its certificate; revoked, count given back");
            return Ok(self.pki_conf(request, protect, now));
        }
        if !self.registry.confirm_certificate(&held.serial).map_err(system)? {
            return Err(refuse(FailInfo::BadRequest, "the certificate was settled already"));
        }
        tracing::info!(fqdn = %facts.fqdn, registration, serial = %held.serial, "CMP: certificate confirmed");
        Ok(self.pki_conf(request, protect, now))
    }

    fn decide(
        &self,
        input: &EnrollmentInput,
        mac: Option<MacProof>,
        mode: DecisionMode,
        now: u64,
    ) -> Result<DecisionReport, Refusal> {
        let input = EnrollmentInput { mac, ..input.clone() };
        self.registry.decide(input, mode, now).map_err(system)
    }

    fn header(&self, request: Option<&Request>, protect: Option<&MacAlgorithm>, now: u64, implicit: bool) -> Header {
        Header {
            pvno: request.map_or(2, |r| r.pvno.clamp(2, 3)),
            sender: message::directory_name(&self.ca.certificate().subject),
            recipient: request.map_or_else(|| message::directory_name(&x509::write_name(&[])), |r| r.sender.clone()),
            protection_alg: protect.map(MacAlgorithm::encode),
            sender_kid: request.and_then(|r| r.sender_kid.clone()),
            transaction_id: request.and_then(|r| r.transaction_id.clone()),
            recip_nonce: request.and_then(|r| r.sender_nonce.clone()),
            implicit_confirm: implicit,
            now,
        }
    }

    fn respond(
        &self,
        request: &Request,
        protect: Option<(&MacAlgorithm, &str)>,
        now: u64,
        body: &[u8],
        implicit: bool,
    ) -> Vec<u8> {
        let fresh = protect.map(|(alg, secret)| (alg.fresh(), secret));
        let header = self.header(Some(request), fresh.as_ref().map(|(a, _)| a), now, implicit).encode();
        match &fresh {
            Some((alg, secret)) => {
                let mac = |part: &[u8]| alg.mac(secret.as_bytes(), part);
                message::encode(&header, body, Some(&mac))
            }
            None => message::encode(&header, body, None),
        }
    }

    fn issued(&self, reply: &Reply<'_>, cert: &[u8], implicit: bool) -> Vec<u8> {
        let status = message::status_info(0, None, None);
        let body =
            message::cert_rep(reply.body_tag, reply.cert_req_id, &status, Some((cert, &self.ca.certificate().der)));
        self.respond(reply.request, reply.protect, reply.now, &body, implicit)
    }

    /// A request in a transaction that has the certificate `earlier`. The
    /// same request resent (protected with the registration's secret, for
    /// the same public key, the certificate neither revoked nor rejected) is
    /// answered with that certificate again, and nothing is decided or
    /// counted again; any other is refused as transactionIdInUse.
    fn resent(
        &self,
        reply: &Reply<'_>,
        checked: &Checked<'_>,
        cert_request: &CertRequest,
        earlier: &CertificateRecord,
    ) -> Result<Vec<u8>, Refusal> {
        let in_use = || {
            refuse(
                FailInfo::TransactionIdInUse,
                "this transactionID belongs to another request: start a new transaction",
            )
        };
        let answerable = matches!(earlier.state, CertificateState::Issued | CertificateState::Held)
            && earlier.revoked_at.is_none()
            && x509::Certificate::from_der(&earlier.der).is_ok_and(|c| c.spki == cert_request.spki);
        let Some(registration) = earlier.registration.filter(|_| answerable) else { return Err(in_use()) };
        let Some(secret) = self.registry.password_secret(registration).map_err(system)? else {
            return Err(in_use());
        };
        if !checked.alg.verify(secret.as_bytes(), &reply.request.protected_part, checked.mac) {
            return Err(in_use());
        }
        let protected = Reply {
            request: reply.request,
            protect: Some((&checked.alg, secret.as_str())),
            now: reply.now,
            body_tag: reply.body_tag,
            cert_req_id: reply.cert_req_id,
        };
        let implicit = earlier.state == CertificateState::Issued;
        tracing::info!(registration, serial = %earlier.serial, "CMP: a resent request gets its transaction's certificate again, counted once");
        Ok(self.issued(&protected, &earlier.der, implicit))
    }

    fn rejection(&self, reply: &Reply<'_>, report: &DecisionReport) -> Vec<u8> {
        tracing::info!(reason = %report.reason, audit = ?report.audit_seq, "CMP: enrollment denied");
        self.denial(reply, report.reason)
    }

    /// The rejection a client is told of a denial for `reason` ([`denial_for`]).
    fn denial(&self, reply: &Reply<'_>, reason: Reason) -> Vec<u8> {
        let (text, fail) = denial_for(reason);
        let status = message::status_info(2, Some(text), Some(fail));
        let body = message::cert_rep(reply.body_tag, reply.cert_req_id, &status, None);
        self.respond(reply.request, reply.protect, reply.now, &body, false)
    }

    fn pki_conf(&self, request: &Request, protect: Option<(&MacAlgorithm, &str)>, now: u64) -> Vec<u8> {
        self.respond(request, protect, now, &message::pki_conf_body(), false)
    }

    fn unprotected_error(&self, request: Option<&Request>, now: u64, fail: FailInfo, text: &str) -> Vec<u8> {
        let status = message::status_info(2, Some(text), Some(fail));
        let header = self.header(request, None, now, false).encode();
        message::encode(&header, &message::error_body(&status), None)
    }
}

/// How to answer a certificate request: to which message, protected with
/// which secret (once the request's MAC verified), in which body.
#[derive(Clone, Copy)]
struct Reply<'a> {
    request: &'a Request,
    protect: Option<(&'a MacAlgorithm, &'a str)>,
    now: u64,
    body_tag: u8,
    cert_req_id: i64,
}

/// A request whose protection has been read (not yet verified).
struct Checked<'a> {
    request: &'a Request,
    alg: MacAlgorithm,
    mac: &'a [u8],
    kid: &'a [u8],
}

fn system(e: RegistryError) -> Refusal {
    if e.is_input_error() {
        return refuse(FailInfo::BadRequest, e.to_string());
    }
    tracing::error!(error = %e, "CMP: the registry failed");
    refuse(FailInfo::SystemFailure, "the server cannot decide now")
}
