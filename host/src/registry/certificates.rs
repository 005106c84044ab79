//! Certificates of the enrollment front, in the store (schema migrations 8
//! and 10): every certificate issued, counted in the transaction of its
//! decision ([`Registry::enroll_issuing`]); CMP certificates held for their
//! confirmation, which the client accepts ([`Registry::confirm_certificate`])
//! or rejects, or never confirms in time ([`Registry::revoke_unconfirmed`],
//! [`Registry::sweep_unconfirmed`]): then they are revoked and their count is
//! given back, exactly once whichever process or node gets there first; and
//! the CA's CRL ([`Registry::crl`]), which lists every revoked certificate.

use serde::Serialize;

use super::decisions::give_back;
use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
#[cfg(feature = "enroll")]
use crate::pki::Ca;
#[cfg(feature = "enroll")]
use crate::store::CrlRecord;
use crate::store::{CertificateRecord, CertificateState, TxKind};
use prereg_core::RegistrationState;

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

/// A key update ([`Registry::renew_issuing`]).
#[derive(Debug, Clone)]
pub struct Renewal<'a> {
    /// The registration of the certificate being replaced.
    pub registration: u64,
    /// The device's canonical FQDN (the old certificate's).
    pub fqdn: &'a str,
    /// The token procedure the request came through.
    pub procedure: &'a str,
    /// The protocol transaction (`cmp:…`).
    pub transaction: &'a str,
    /// The serial of the certificate being replaced.
    pub replaces: &'a str,
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
    /// Claims a protocol transaction id (`cmp:…`) for a transaction that
    /// starts now. False if it was claimed before, within
    /// [`TRANSACTION_SECONDS`]: the id is in use.
    pub fn claim_transaction(&self, transaction: &str, now: u64) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        match tx.consume_request_id(transaction, "transaction", now + TRANSACTION_SECONDS, now, 0) {
            Ok(()) => {
                tx.commit()?;
                Ok(true)
            }
            Err(crate::store::StoreError::Replayed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Renews the certificate of an enrolled device under a new key (CMP
    /// `kur`): registration `renewal.registration` must still exist and be
    /// open or used (not disabled or locked). Nothing is counted: a key
    /// update keeps the device's one enrollment. `issue` makes the new
    /// certificate inside the transaction that records and audits it
    /// (action `renew`). Returns the new certificate, or why it was
    /// refused (audited too).
    pub fn renew_issuing(
        &self,
        renewal: &Renewal<'_>,
        now: u64,
        issue: super::decisions::Issuer<'_>,
    ) -> Result<Result<CertificateRecord, String>, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let current = tx.registration(renewal.registration)?;
        let refused = match &current {
            None => Some(format!("registration {} no longer exists", renewal.registration)),
            Some(r) if matches!(r.state, RegistrationState::Disabled | RegistrationState::Locked) => {
                Some(format!("registration {} is {}", r.id, r.state))
            }
            Some(_) => None,
        };
        let mut outcome = Err(refused.clone().unwrap_or_default());
        if let (None, Some(record)) = (&refused, &current) {
            let view = record.to_policy_view();
            let grant = super::Grant { fqdn: renewal.fqdn, registration: Some(&view) };
            let certificate = issue(&grant).map_err(RegistryError::Issuance)?;
            tx.insert_certificate(&certificate)?;
            outcome = Ok(certificate);
        }
        let request = serde_json::json!({
            "procedure": renewal.procedure,
            "fqdn": renewal.fqdn,
            "transaction": renewal.transaction,
            "replaces": renewal.replaces,
            "certificate": outcome.as_ref().ok().map(|c| c.serial.clone()),
        });
        let domain = current.as_ref().map(|r| r.domain.clone());
        audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: "device".into(),
                action: "renew".into(),
                object: format!("registration:{}", renewal.registration),
                outcome: if outcome.is_ok() { "allowed" } else { "denied" }.into(),
                reason: None,
                policy_sha256: None,
                request: request.to_string(),
                detail: match &outcome {
                    Ok(c) => format!("key update of certificate {}: certificate {} issued", renewal.replaces, c.serial),
                    Err(why) => format!("key update of certificate {} refused: {why}", renewal.replaces),
                },
                domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        Ok(outcome)
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
                actor: "device".into(),
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
