//! Certificates of the enrollment front, in the store (schema migrations 8
//! and 10): every certificate issued, counted in the transaction of its
//! decision ([`Registry::enroll_issuing`]); CMP certificates held for their
//! confirmation, which the client accepts ([`Registry::confirm_certificate`])
//! or rejects, or never confirms in time ([`Registry::revoke_unconfirmed`],
//! [`Registry::sweep_unconfirmed`]): then they are revoked and their count is
//! given back, exactly once whichever process or node gets there first; and
//! the CA's CRL ([`Registry::crl`]), which lists every revoked certificate.

use serde::Serialize;

use super::decisions::DecisionReport;
use super::decisions::give_back;
use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::evaluation::StoreHost;
use crate::host_calls::{HostCall, HostCalls};
#[cfg(feature = "enroll")]
use crate::pki::Ca;
#[cfg(feature = "enroll")]
use crate::store::CrlRecord;
use crate::store::{CertificateRecord, CertificateState, TxKind};
use prereg_core::{Reason, RenewalRequest};
use prereg_engine::{Decided, HostError};

/// How long a CRL is valid (its nextUpdate after thisUpdate): one day.
pub const CRL_VALIDITY_SECONDS: u64 = 86_400;
/// A CRL is issued anew after this long even without a new revocation, so
/// that relying parties never hold one close to its nextUpdate.
#[cfg(feature = "enroll")]
const CRL_REFRESH_SECONDS: u64 = 3_600;
/// Unconfirmed certificates revoked per sweep.
const SWEEP_BATCH: u32 = 100;

/// The reasons an officer may give for revoking (RFC 5280 §5.3.1 CRLReason;
/// `certificateHold` is not offered: a revocation here is final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CrlReason {
    /// unspecified (0): left out of the CRL entry, as RFC 5280 asks.
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// cACompromise (2)
    CaCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4)
    Superseded,
    /// cessationOfOperation (5)
    CessationOfOperation,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
}

impl CrlReason {
    /// Every reason, in code order.
    pub const ALL: [CrlReason; 7] = [
        CrlReason::Unspecified,
        CrlReason::KeyCompromise,
        CrlReason::CaCompromise,
        CrlReason::AffiliationChanged,
        CrlReason::Superseded,
        CrlReason::CessationOfOperation,
        CrlReason::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name (`keyCompromise`).
    pub fn name(self) -> &'static str {
        match self {
            CrlReason::Unspecified => "unspecified",
            CrlReason::KeyCompromise => "keyCompromise",
            CrlReason::CaCompromise => "cACompromise",
            CrlReason::AffiliationChanged => "affiliationChanged",
            CrlReason::Superseded => "superseded",
            CrlReason::CessationOfOperation => "cessationOfOperation",
            CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// The reason of a CRL reason code (RFC 5280 §5.3.1), if prereg keeps it.
    pub fn from_code(code: u8) -> Option<Self> {
        CrlReason::ALL.into_iter().find(|r| r.code().unwrap_or(0) == code)
    }

    /// The code a CRL entry carries; `None` for unspecified.
    pub fn code(self) -> Option<u8> {
        match self {
            CrlReason::Unspecified => None,
            CrlReason::KeyCompromise => Some(1),
            CrlReason::CaCompromise => Some(2),
            CrlReason::AffiliationChanged => Some(3),
            CrlReason::Superseded => Some(4),
            CrlReason::CessationOfOperation => Some(5),
            CrlReason::PrivilegeWithdrawn => Some(9),
        }
    }

    /// From its RFC 5280 name or the same in kebab case (`key-compromise`),
    /// any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        let folded: String = text.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
        CrlReason::ALL.into_iter().find(|r| r.name().to_lowercase() == folded)
    }
}

/// Why a held certificate is revoked by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The client rejected it in its certConf.
    RejectedByClient,
    /// No certConf came within the confirmation window.
    NotConfirmed,
}

/// A renewal ([`Registry::renew_issuing`]): CMP `kur`, EST `simplereenroll`.
#[derive(Debug, Clone)]
pub struct Renewal<'a> {
    /// The registration of the certificate being replaced.
    pub registration: u64,
    /// The device's canonical FQDN (the old certificate's).
    pub fqdn: &'a str,
    /// The IP address the new request asks for.
    pub ip: Option<String>,
    /// The subject serialNumber the new request carries.
    pub serial: Option<&'a str>,
    /// The token procedure the request came through.
    pub procedure: &'a str,
    /// The protocol transaction (`cmp:…`, `est:…`).
    pub transaction: &'a str,
    /// The serial of the certificate being replaced.
    pub replaces: &'a str,
    /// The end of its validity (Unix seconds).
    pub replaces_expires_at: u64,
    /// Who asks, as the audit record names it: `None` the device (CMP,
    /// EST), `Some("acme:ID")` an ACME account.
    pub actor: Option<&'a str>,
}

impl Renewal<'_> {
    /// The request the policy's `decide-renewal` is asked.
    pub fn request(&self) -> RenewalRequest {
        RenewalRequest {
            procedure: self.procedure.to_owned(),
            fqdn: self.fqdn.to_owned(),
            ip: self.ip.clone(),
            serial: self.serial.map(str::to_owned),
            registration: self.registration,
            certificate_serial: self.replaces.to_owned(),
            certificate_expires_at: self.replaces_expires_at,
        }
    }
}

impl Revocation {
    /// The reason code kept in the audit record.
    pub fn code(self) -> &'static str {
        match self {
            Revocation::RejectedByClient => "rejected-by-client",
            Revocation::NotConfirmed => "not-confirmed",
        }
    }
}

/// How long a CMP transactionID stays claimed: a request reusing it within
/// this time is refused (`transactionIdInUse`).
pub const TRANSACTION_SECONDS: u64 = 86_400;

impl Registry {
    /// Renews the certificate of an enrolled device under a new key (CMP
    /// `kur`, EST `simplereenroll`), as the policy decides
    /// ([`prereg_engine::decide_renewal`], WIT `decide-renewal`): by default
    /// the registration the certificate was issued under must still cover
    /// the device and be neither disabled, locked nor expired. Nothing is
    /// counted: a renewal keeps the device's one enrollment. If allowed,
    /// `issue` makes the new certificate inside the transaction that
    /// records it and audits the decision (action `renew`, with its reason
    /// and policy); a denial is audited too.
    pub fn renew_issuing(
        &self,
        renewal: &Renewal<'_>,
        now: u64,
        issue: super::decisions::RenewalIssuer<'_>,
    ) -> Result<(DecisionReport, Option<CertificateRecord>), RegistryError> {
        self.renew_inner(renewal, now, HostCalls::Live, Some(issue))
            .map(|(report, certificate, _)| (report, certificate))
    }

    /// The dry run of a renewal (`prereg policy test`'s renewal cases): the
    /// policy's decision and the host calls it made (with
    /// [`HostCalls::Record`]), nothing issued, written or audited.
    pub fn check_renewal(
        &self,
        renewal: &Renewal<'_>,
        now: u64,
        calls: HostCalls,
    ) -> Result<(DecisionReport, Vec<HostCall>), RegistryError> {
        self.renew_inner(renewal, now, calls, None).map(|(report, _, calls)| (report, calls))
    }

    #[allow(clippy::type_complexity)]
    fn renew_inner(
        &self,
        renewal: &Renewal<'_>,
        now: u64,
        calls: HostCalls,
        issue: Option<super::decisions::RenewalIssuer<'_>>,
    ) -> Result<(DecisionReport, Option<CertificateRecord>, Vec<HostCall>), RegistryError> {
        let mut tx = self.storage.begin(if issue.is_some() { TxKind::Write } else { TxKind::Read })?;
        let index = self.current_index(tx.as_mut())?;
        let request = renewal.request();
        let policy = self.policy();
        let info = policy.info().clone();
        let host = StoreHost::new(tx, now).with_index(index);
        let Decided { decision, mut trace, host } =
            prereg_engine::decide_renewal(policy.as_ref(), Box::new(host), &request, calls);
        let (mut tx, _) = StoreHost::back(host).into_parts();
        if trace.host_error == Some(HostError::Busy) {
            return Err(RegistryError::Busy);
        }
        if decision.reason == Reason::PolicyError {
            tracing::warn!(policy = %info.name, sha256 = %info.sha256, "renewal: {}", decision.explanation);
        }
        let recorded = std::mem::take(&mut trace.recorded);
        let offered = super::decisions::offered(&decision, &trace);
        let mut report = DecisionReport::of_trace(&decision, &trace, &info, issue.is_none());
        let Some(issue) = issue else { return Ok((report, None, recorded)) };
        let mut certificate = None;
        if decision.allowed {
            let grant = super::Grant { fqdn: renewal.fqdn, registration: offered };
            let record = issue(&grant).map_err(RegistryError::Issuance)?;
            tx.insert_certificate(&record)?;
            certificate = Some(record);
        }
        let audit_request = serde_json::json!({
            "procedure": renewal.procedure,
            "fqdn": renewal.fqdn,
            "ip": renewal.ip,
            "serial": renewal.serial,
            "transaction": renewal.transaction,
            "replaces": renewal.replaces,
            "certificate": certificate.as_ref().map(|c| c.serial.clone()),
        });
        let domain = tx.procedure(renewal.procedure)?.map(|p| p.domain);
        let record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: renewal.actor.unwrap_or("device").into(),
                action: "renew".into(),
                object: format!("registration:{}", renewal.registration),
                outcome: if decision.allowed { "allowed" } else { "denied" }.into(),
                reason: Some(decision.reason.code().into()),
                policy_sha256: Some(report.policy.sha256.clone()),
                request: audit_request.to_string(),
                detail: match &certificate {
                    Some(c) => format!("{}; certificate {} issued", decision.explanation, c.serial),
                    None => decision.explanation.clone(),
                },
                domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        report.audit_seq = Some(record.seq);
        Ok((report, certificate, recorded))
    }

    /// Revokes a certificate at its device's request (CMP `rr`, authenticated
    /// by the device) or on its renewal (EST re-enrollment, where the
    /// procedure says so), with `reason`, and audits it with `why`. False if
    /// it was revoked already. A certificate still held for its certConf is
    /// settled (nothing is given back: the device asked).
    pub fn revoke_for_device(
        &self,
        serial: &str,
        reason: CrlReason,
        why: &str,
        now: u64,
    ) -> Result<bool, RegistryError> {
        self.revoke_as("device", serial, reason, why, now)
    }

    /// [`Registry::revoke_for_device`], audited with `actor` (an ACME
    /// account, `acme:ID`, that ordered the certificate).
    pub fn revoke_as(
        &self,
        actor: &str,
        serial: &str,
        reason: CrlReason,
        why: &str,
        now: u64,
    ) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let Some(certificate) = tx.certificate_by_serial(serial)? else { return Ok(false) };
        if certificate.revoked_at.is_some() {
            return Ok(false);
        }
        tx.set_certificate_state(serial, CertificateState::Held, CertificateState::Issued)?;
        tx.revoke_certificate(serial, reason.code(), now)?;
        let domain = super::writes::certificate_domain(tx.as_mut(), &certificate)?;
        let request = serde_json::json!({
            "serial": serial,
            "transaction": certificate.transaction,
            "registration": certificate.registration,
        });
        audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: actor.into(),
                action: "certificate.revoke".into(),
                object: format!("certificate:{serial}"),
                outcome: "ok".into(),
                reason: Some(reason.name().into()),
                policy_sha256: None,
                request: request.to_string(),
                detail: format!("revoked {why}, {}", reason.name()),
                domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        tracing::info!(serial, reason = reason.name(), "certificate revoked at its device's request");
        Ok(true)
    }

    /// The newest certificate of a protocol transaction.
    pub fn certificate_by_transaction(&self, transaction: &str) -> Result<Option<CertificateRecord>, RegistryError> {
        Ok(self.storage.begin(TxKind::Read)?.certificate_by_transaction(transaction)?)
    }

    /// A certificate by serial (lower-case hex).
    pub fn certificate_by_serial(&self, serial: &str) -> Result<Option<CertificateRecord>, RegistryError> {
        Ok(self.storage.begin(TxKind::Read)?.certificate_by_serial(serial)?)
    }

    /// The client accepted a held certificate: it is issued for good (it was
    /// counted when it was issued). False if it is no longer held (revoked,
    /// or confirmed already).
    pub fn confirm_certificate(&self, serial: &str) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let held = tx.certificate_by_serial(serial)?.is_some_and(|c| c.revoked_at.is_none());
        let moved = held && tx.set_certificate_state(serial, CertificateState::Held, CertificateState::Issued)?;
        tx.commit()?;
        Ok(moved)
    }

    /// Revokes a held certificate that the client rejected or never
    /// confirmed, gives its enrollment back to its registration and audits
    /// both, in one transaction. False if it was no longer held: another
    /// process (or node) settled it first, so this happens exactly once.
    pub fn revoke_unconfirmed(&self, serial: &str, why: Revocation, now: u64) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let Some(held) = tx.certificate_by_serial(serial)? else { return Ok(false) };
        if !tx.set_certificate_state(serial, CertificateState::Held, CertificateState::Rejected)? {
            return Ok(false);
        }
        tx.revoke_certificate(serial, None, now)?;
        let given_back = match held.registration {
            Some(id) => give_back(tx.as_mut(), id)?,
            None => false,
        };
        let request = serde_json::json!({
            "serial": serial,
            "transaction": held.transaction,
            "registration": held.registration,
        });
        let domain = super::writes::certificate_domain(tx.as_mut(), &held)?;
        audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: match why {
                    Revocation::RejectedByClient => "device".into(),
                    Revocation::NotConfirmed => "prereg".into(),
                },
                action: "certificate.revoke".into(),
                object: format!("certificate:{serial}"),
                outcome: "ok".into(),
                reason: Some(why.code().into()),
                policy_sha256: None,
                request: request.to_string(),
                detail: match (held.registration, given_back) {
                    (Some(id), true) => format!("revoked; its enrollment was given back to registration {id}"),
                    (Some(id), false) => format!("revoked; registration {id} had nothing to give back"),
                    (None, _) => "revoked".into(),
                },
                domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        tracing::info!(serial, reason = why.code(), registration = ?held.registration, "certificate revoked");
        Ok(true)
    }

    /// Revokes every held certificate whose confirmation window closed
    /// before `now` ([`Registry::revoke_unconfirmed`]); returns how many this
    /// call revoked. Every serving node runs it; each certificate is revoked
    /// once.
    pub fn sweep_unconfirmed(&self, now: u64) -> Result<u64, RegistryError> {
        let due = self.storage.begin(TxKind::Read)?.unconfirmed_certificates(now, SWEEP_BATCH)?;
        let mut revoked = 0;
        for certificate in due {
            if self.revoke_unconfirmed(&certificate.serial, Revocation::NotConfirmed, now)? {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    #[cfg(feature = "enroll")]
    /// The CA's current CRL (DER): the stored one while it lists every
    /// revoked certificate and is younger than an hour, otherwise a new one
    /// with the next cRLNumber, signed by `ca` and stored (so every node
    /// serves the same CRL, and its number only grows).
    pub fn crl(&self, ca: &Ca, now: u64) -> Result<Vec<u8>, RegistryError> {
        let fresh = |tx: &mut dyn crate::store::Tx| -> Result<Option<Vec<u8>>, RegistryError> {
            let revoked = tx.count_revoked_certificates()?;
            Ok(tx.latest_crl()?.filter(|crl| crl.revoked == revoked && is_fresh(crl, ca, now)).map(|crl| crl.der))
        };
        if let Some(der) = fresh(self.storage.begin(TxKind::Read)?.as_mut())? {
            return Ok(der);
        }
        let mut tx = self.storage.begin(TxKind::Write)?;
        // Another process may have issued it meanwhile.
        if let Some(der) = fresh(tx.as_mut())? {
            return Ok(der);
        }
        let revoked = tx.revoked_certificates()?;
        let number = tx.latest_crl()?.map_or(1, |crl| crl.number + 1);
        let next_update = now + CRL_VALIDITY_SECONDS;
        let der = ca
            .sign_crl(&revoked, number, now, next_update)
            .map_err(|e| RegistryError::Issuance(format!("signing the CRL: {e}")))?;
        tx.insert_crl(&CrlRecord {
            number,
            this_update: now,
            next_update,
            revoked: revoked.len() as u64,
            der: der.clone(),
        })?;
        tx.commit()?;
        tracing::info!(number, revoked = revoked.len(), "issued a CRL");
        Ok(der)
    }
}

/// Whether a stored CRL may still be served: signed by `ca` (not a CA
/// replaced since) and younger than the refresh period.
#[cfg(feature = "enroll")]
fn is_fresh(crl: &CrlRecord, ca: &Ca, now: u64) -> bool {
    now < crl.this_update.saturating_add(CRL_REFRESH_SECONDS) && ca.signed_crl(&crl.der)
}
