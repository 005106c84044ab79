//! Signed writes: verify, authorize, validate, apply, audit, in one transaction.

use prereg_core::{Fqdn, Pattern, Protocol, RegistrationRequest, RegistrationState};
use serde::Serialize;

use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::evaluation::Evaluation;
use crate::password;
use crate::signing::{self, PublicKey, Verified, WriteRequest};
use crate::store::{NewRegistration, OfficerRecord, ProcedureRecord, StoreError, Tx, TxKind};

/// Seconds in a day.
const DAY: u64 = 86_400;
/// Longest validity accepted, in days (100 years).
const MAX_VALID_DAYS: u32 = 36_500;

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteOutcome {
    /// The action.
    pub action: String,
    /// The object (`registration:42`, `procedure:routers`, `officer:alice`).
    pub object: String,
    /// The new registration's id, for `registration.create`.
    pub id: Option<u64>,
    /// The audit record.
    pub audit_seq: u64,
}

/// Names of procedures, domains and officers: 1 to 64 of `[A-Za-z0-9._-]`.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid {
            field: what.into(),
            message: format!("{name:?} must be 1 to 64 letters, digits, '.', '_' or '-'"),
        })
    }
}

impl Registry {
    /// Verifies and applies a signed write (a compact JWS from
    /// [`crate::signing::sign`]). The request id is consumed, the change made
    /// and the audit record appended in one transaction.
    pub fn submit(&self, jws: &str, now: u64) -> Result<WriteOutcome, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let instance = tx.instance_id()?.ok_or(RegistryError::NotInitialised)?;
        let mut officer = None;
        let verified = signing::verify(jws, &instance, now, |kid| {
            let found = tx.officer(kid).ok().flatten()?;
            let key = PublicKey::from_pem(&found.public_key_pem, &found.name).ok();
            officer = Some(found);
            key
        })?;
        let Some(officer) = officer else {
            return Err(RegistryError::Signature(signing::SigningError::UnknownKey(verified.kid)));
        };
        tx.consume_request_id(&verified.claims.jti, &verified.kid, verified.claims.exp, now)?;
        let (tx, object, id, detail, policy_sha256) = self.apply(tx, &officer, &verified, now)?;
        let mut tx = tx;
        let record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: officer.kid.clone(),
                action: verified.claims.request.action().into(),
                object: object.clone(),
                outcome: "ok".into(),
                reason: None,
                policy_sha256,
                request: verified.jws.clone(),
                detail,
            },
        )?;
        tx.commit()?;
        Ok(WriteOutcome { action: verified.claims.request.action().into(), object, id, audit_seq: record.seq })
    }

    #[allow(clippy::type_complexity)]
    fn apply(
        &self,
        mut tx: Box<dyn Tx>,
        officer: &OfficerRecord,
        verified: &Verified,
        now: u64,
    ) -> Result<(Box<dyn Tx>, String, Option<u64>, String, Option<String>), RegistryError> {
        let authorize = |domain: &str| {
            if officer.may_act_in(domain) {
                Ok(())
            } else {
                Err(RegistryError::Forbidden { officer: officer.name.clone(), domain: domain.into() })
            }
        };
        match &verified.claims.request {
            WriteRequest::CreateProcedure { name, domain, protocol, allowed_domains, require_preregistration } => {
                check_name("procedure name", name)?;
                check_name("domain", domain)?;
                authorize(domain)?;
                let protocol = Protocol::parse(protocol).ok_or_else(|| RegistryError::Invalid {
                    field: "protocol".into(),
                    message: format!("{protocol:?} is not one of scep, cmp, est, acme, other"),
                })?;
                let require = match (protocol.always_requires_preregistration(), require_preregistration) {
                    (true, Some(false)) => {
                        return Err(RegistryError::Invalid {
                            field: "require-preregistration".into(),
                            message: format!("{protocol} token procedures always require preregistration"),
                        });
                    }
                    (true, _) => true,
                    (false, setting) => setting.unwrap_or(false),
                };
                let allowed = allowed_domains
                    .iter()
                    .map(|d| {
                        Fqdn::parse(d).map(Fqdn::into_string).map_err(|e| RegistryError::Invalid {
                            field: "allowed-domains".into(),
                            message: format!("{d:?}: {e}"),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tx.insert_procedure(&ProcedureRecord {
                    name: name.clone(),
                    domain: domain.clone(),
                    protocol,
                    require_preregistration: require,
                    allowed_domains: allowed,
                    created_by: officer.kid.clone(),
                    created_at: now,
                })?;
                Ok((tx, format!("procedure:{name}"), None, format!("domain {domain}, protocol {protocol}"), None))
            }
            WriteRequest::AddOfficer { name, public_key_pem, domains } => {
                check_name("officer name", name)?;
                if domains.is_empty() {
                    return Err(RegistryError::Invalid {
                        field: "domains".into(),
                        message: "an officer needs at least one domain (or \"*\" for all)".into(),
                    });
                }
                for d in domains {
                    if d == "*" {
                        if !officer.has_all_domains() {
                            return Err(RegistryError::Forbidden { officer: officer.name.clone(), domain: "*".into() });
                        }
                    } else {
                        check_name("domain", d)?;
                        authorize(d)?;
                    }
                }
                let key = PublicKey::from_pem(public_key_pem, "public-key")?;
                let record = OfficerRecord {
                    kid: key.kid(),
                    name: name.clone(),
                    algorithm: key.algorithm().jws_name().into(),
                    public_key_pem: key.to_pem()?,
                    domains: domains.clone(),
                    created_by: officer.kid.clone(),
                    created_at: now,
                };
                tx.insert_officer(&record)?;
                Ok((
                    tx,
                    format!("officer:{name}"),
                    None,
                    format!("kid {}, domains {}", record.kid, domains.join(",")),
                    None,
                ))
            }
            WriteRequest::CreateRegistration {
                procedure,
                fqdn,
                ip,
                serial,
                password_hash,
                valid_days,
                max_enrollments,
            } => {
                let proc_record = tx.procedure(procedure)?.ok_or_else(|| RegistryError::Invalid {
                    field: "procedure".into(),
                    message: format!("unknown token procedure {procedure:?}"),
                })?;
                authorize(&proc_record.domain)?;
                if let Some(hash) = password_hash {
                    password::check_hash(hash)
                        .map_err(|message| RegistryError::Invalid { field: "password".into(), message })?;
                }
                if valid_days.is_some_and(|d| d == 0 || d > MAX_VALID_DAYS) {
                    return Err(RegistryError::Invalid {
                        field: "valid-days".into(),
                        message: format!("must be 1 to {MAX_VALID_DAYS}"),
                    });
                }
                if *max_enrollments == Some(0) {
                    return Err(RegistryError::Invalid {
                        field: "max-enrollments".into(),
                        message: "must be at least 1".into(),
                    });
                }
                let request = RegistrationRequest {
                    procedure: procedure.clone(),
                    fqdn: fqdn.clone(),
                    ip: ip.clone(),
                    serial: serial.clone(),
                    has_password: password_hash.is_some(),
                };
                let evaluation = Evaluation::new(tx, now, None, &self.policy.info().name);
                let (result, evaluation) = self.policy.validate_registration(evaluation, &request);
                let (tx_back, trace) = evaluation.finish();
                tx = tx_back;
                if let Some(e) = trace.storage_error {
                    return Err(RegistryError::Store(StoreError::Corrupt(e)));
                }
                let valid = result.map_err(|f| RegistryError::Policy(f.to_string()))??;
                // The host's own checks on the policy's answer: the domain is the
                // procedure's, and the pattern is canonical and indexable.
                let pattern = Pattern::parse(&valid.pattern).map_err(|e| {
                    RegistryError::Policy(format!("the policy returned an invalid pattern {:?}: {e}", valid.pattern))
                })?;
                if valid.domain != proc_record.domain || pattern.as_str() != valid.pattern {
                    return Err(RegistryError::Policy(
                        "the policy changed the domain or returned a non-canonical pattern".into(),
                    ));
                }
                let max_enrollments = match max_enrollments {
                    Some(n) => Some(*n),
                    None if pattern.is_exact() => Some(1),
                    None => None,
                };
                let id = tx.insert_registration(&NewRegistration {
                    domain: proc_record.domain.clone(),
                    procedure: procedure.clone(),
                    pattern: valid.pattern.clone(),
                    index_key: pattern.index_key().encode(),
                    ip: valid.ip,
                    serial: valid.serial,
                    password_hash: password_hash.clone(),
                    expires_at: valid_days.map(|d| now + u64::from(d) * DAY),
                    max_enrollments,
                    created_by: officer.kid.clone(),
                    created_at: now,
                })?;
                let sha = Some(self.policy.info().sha256.clone());
                Ok((
                    tx,
                    format!("registration:{id}"),
                    Some(id),
                    format!("pattern {} in domain {}", valid.pattern, proc_record.domain),
                    sha,
                ))
            }
            WriteRequest::DisableRegistration { id }
            | WriteRequest::ReopenRegistration { id }
            | WriteRequest::DeleteRegistration { id } => {
                let current =
                    tx.registration(*id)?.ok_or_else(|| RegistryError::NotFound(format!("registration {id}")))?;
                authorize(&current.domain)?;
                let detail = match &verified.claims.request {
                    WriteRequest::DisableRegistration { .. } => {
                        tx.update_registration(
                            *id,
                            RegistrationState::Disabled,
                            current.enrollments,
                            current.failed_attempts,
                        )?;
                        format!("{} -> disabled", current.state)
                    }
                    WriteRequest::ReopenRegistration { .. } => {
                        // Reopening a used-up registration gives it a fresh count.
                        let enrollments =
                            if current.state == RegistrationState::Used { 0 } else { current.enrollments };
                        tx.update_registration(*id, RegistrationState::Open, enrollments, 0)?;
                        format!("{} -> open", current.state)
                    }
                    _ => {
                        tx.delete_registration(*id)?;
                        format!("deleted pattern {} in domain {}", current.pattern, current.domain)
                    }
                };
                Ok((tx, format!("registration:{id}"), Some(*id), detail, None))
            }
        }
    }
}
