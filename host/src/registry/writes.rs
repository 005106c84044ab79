//! Signed writes: verify, authorize, validate, apply, audit, in one transaction.

use prereg_core::{Fqdn, Pattern, Protocol, RegistrationRequest, RegistrationState};
use serde::Serialize;

use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::evaluation::StoreHost;
use crate::password;
use crate::policy::{PolicyFailure, PolicyInfo, Validation};
use crate::signing::{self, PublicKey, Verified, WriteRequest};
use crate::store::{
    CertificateRecord, CertificateState, NewRegistration, OfficerRecord, ProcedureRecord, StoreError, Tx, TxKind,
};

/// Seconds in a day.
const DAY: u64 = 86_400;
/// Longest validity accepted, in days (100 years).
const MAX_VALID_DAYS: u32 = 36_500;

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Records a signed request's single-use id (`jti`, signed by `kid`, expiring
/// at `expires_at`); a replay is refused. Ids are kept for the signing rules'
/// margin past their expiry ([`signing::REPLAY_MARGIN_SECS`]).
pub(crate) fn consume_request_id(
    tx: &mut dyn Tx,
    jti: &str,
    kid: &str,
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    tx.consume_request_id(jti, kid, expires_at, now, signing::REPLAY_MARGIN_SECS)
}

/// Verifies a signed request against the officers of the instance; returns
/// it with its officer. The request id is not consumed here.
pub(crate) fn verify_signed(tx: &mut dyn Tx, jws: &str, now: u64) -> Result<(Verified, OfficerRecord), RegistryError> {
    let instance = tx.instance_id()?.ok_or(RegistryError::NotInitialised)?;
    let (verified, officer) = with_officer_keys(tx, |key| signing::verify(jws, &instance, now, key))?;
    let verified = verified?;
    match officer {
        Some(officer) if let Some(at) = officer.disabled_at => {
            Err(RegistryError::Signature(signing::SigningError::KeyDisabled { kid: officer.kid, at }))
        }
        Some(officer) => Ok((verified, officer)),
        None => Err(RegistryError::Signature(signing::SigningError::UnknownKey(verified.kid))),
    }
}

/// Runs `verify` with a lookup of officers' keys by key id in `tx`; returns
/// what it returned and the officer whose key it looked up. A storage
/// failure during the lookup is the system's fault, not an unknown key: it
/// is returned as such, never as a refused signature.
pub(crate) fn with_officer_keys<T>(
    tx: &mut dyn Tx,
    verify: impl FnOnce(&mut dyn FnMut(&str) -> Option<PublicKey>) -> T,
) -> Result<(T, Option<OfficerRecord>), StoreError> {
    let mut officer = None;
    let mut lookup_failed = None;
    let result = verify(&mut |kid: &str| {
        let found = match tx.officer(kid) {
            Ok(found) => found?,
            Err(e) => {
                lookup_failed = Some(e);
                return None;
            }
        };
        let key = PublicKey::from_pem(&found.public_key_pem, &found.name).ok();
        officer = Some(found);
        key
    });
    match lookup_failed {
        Some(e) => Err(e),
        None => Ok((result, officer)),
    }
}

/// The fields of a new registration as an officer gives them (the password
/// only as "there is one": it is hashed apart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegistrationFields<'a> {
    pub fqdn: &'a str,
    pub ip: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub has_password: bool,
    pub valid_days: Option<u32>,
    pub max_enrollments: Option<u32>,
}

/// A registration that passed every check: canonical, indexable, in the
/// procedure's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedRegistration {
    pub pattern: String,
    pub index_key: String,
    pub ip: Option<String>,
    pub serial: Option<String>,
    pub expires_at: Option<u64>,
    pub max_enrollments: Option<u32>,
    /// SHA-256 of the policy that validated it.
    pub policy_sha256: String,
}

impl CheckedRegistration {
    /// The row to insert.
    pub fn into_new(
        self,
        procedure: &ProcedureRecord,
        password_hash: Option<String>,
        officer_kid: &str,
        now: u64,
        import: Option<(u64, u64)>,
    ) -> NewRegistration {
        NewRegistration {
            domain: procedure.domain.clone(),
            procedure: procedure.name.clone(),
            pattern: self.pattern,
            index_key: self.index_key,
            ip: self.ip,
            serial: self.serial,
            password_hash,
            password_sealed: None,
            expires_at: self.expires_at,
            max_enrollments: self.max_enrollments,
            created_by: officer_kid.into(),
            created_at: now,
            import,
            staged: false,
        }
    }
}

/// Validity of issued certificates when a token procedure does not set it.
pub const DEFAULT_CERTIFICATE_DAYS: u32 = 365;
/// Accepted validity of issued certificates, in days.
pub const CERTIFICATE_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;

impl Registry {
    /// The hash to store for a sealed password: this instance opens it and
    /// hashes it (argon2id). A signed request carries only the sealed form,
    /// so the audit log, which keeps the request, holds nothing a password
    /// guess can be tested against offline.
    /// The HMAC key of a sealed webhook secret: the bytes its base64 text
    /// stands for (as step-ca decodes its `ca.json` secret), at least 32.
    pub(crate) fn webhook_key(&self, sealed: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        use base64::Engine;
        let Some(key) = &self.sealing else {
            return Err("this instance has no sealing key to open a sealed webhook secret".into());
        };
        let text = key.open(sealed).map_err(|e| e.to_string())?;
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| "the webhook secret is not base64 (step-ca's form)".to_owned())?,
        );
        if bytes.len() < 32 {
            return Err(format!("the webhook secret is {} bytes; at least 32 are needed", bytes.len()));
        }
        Ok(bytes)
    }

    fn hash_sealed(&self, sealed: &str) -> Result<String, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid { field: "password".into(), message };
        let Some(key) = &self.sealing else {
            return Err(invalid("this instance has no sealing key to open a sealed password".into()));
        };
        let secret = key.open(sealed).map_err(|e| invalid(e.to_string()))?;
        password::hash(&secret).map_err(invalid)
    }

    /// Checks a new registration: the numbers here, the name, pattern, IP and
    /// serial through the policy, then the host's own checks of the policy's
    /// answer. Hands the transaction back whatever happens.
    pub(crate) fn check_registration(
        &self,
        tx: Box<dyn Tx>,
        procedure: &ProcedureRecord,
        fields: &RegistrationFields<'_>,
        now: u64,
    ) -> (Box<dyn Tx>, Result<CheckedRegistration, RegistryError>) {
        let (tx, mut checked) = self.check_registrations(tx, procedure, std::slice::from_ref(fields), now);
        let one = checked.pop().unwrap_or_else(|| Err(RegistryError::Policy("no answer to the validation".into())));
        (tx, one)
    }

    /// [`Registry::check_registration`] for several at once, one answer per
    /// request in order: the policy validates them in one evaluation
    /// ([`Policy::validate_registrations`]), as a bulk import needs.
    pub(crate) fn check_registrations(
        &self,
        tx: Box<dyn Tx>,
        procedure: &ProcedureRecord,
        fields: &[RegistrationFields<'_>],
        now: u64,
    ) -> (Box<dyn Tx>, Vec<Result<CheckedRegistration, RegistryError>>) {
        let mut answers: Vec<Option<Result<CheckedRegistration, RegistryError>>> =
            fields.iter().map(|f| check_numbers(f).err().map(Err)).collect();
        let requests: Vec<RegistrationRequest> = fields
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| answer.is_none())
            .map(|(f, _)| RegistrationRequest {
                procedure: procedure.name.clone(),
                fqdn: f.fqdn.into(),
                ip: f.ip.map(String::from),
                serial: f.serial.map(String::from),
                has_password: f.has_password,
            })
            .collect();
        let policy = self.policy();
        let evaluation = StoreHost::new(tx, now).evaluation(&policy.info().name);
        let (validations, evaluation) = policy.validate_registrations(evaluation, &requests);
        let (host, _) = evaluation.finish();
        let (tx, storage_error) = StoreHost::back(host).into_parts();
        let mut validations = validations.into_iter();
        for (f, answer) in fields.iter().zip(answers.iter_mut()) {
            if answer.is_some() {
                continue;
            }
            let validation = validations.next().unwrap_or_else(|| {
                Err(PolicyFailure { kind: "invalid-output", message: "too few answers to the validations".into() })
            });
            *answer = Some(match &storage_error {
                Some(e) => Err(RegistryError::Store(failed_during_validation(e))),
                None => checked(procedure, f, validation, policy.info(), now),
            });
        }
        let answers = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(RegistryError::Policy("no answer to the validation".into()))))
            .collect();
        (tx, answers)
    }

    /// Verifies and applies a signed write (a compact JWS from
    /// [`crate::signing::sign`]). The request id is consumed, the change made
    /// and the audit record appended in one transaction.
    pub fn submit(&self, jws: &str, now: u64) -> Result<WriteOutcome, RegistryError> {
        self.submit_for(jws, now, &|_| Ok(()))
    }

    /// [`Registry::submit`] for an edge that serves one kind of write (a REST
    /// route): `expected` refuses, with a reason, a request signed for
    /// something else, before anything is consumed.
    pub fn submit_for(
        &self,
        jws: &str,
        now: u64,
        expected: &dyn Fn(&WriteRequest) -> Result<(), String>,
    ) -> Result<WriteOutcome, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let (verified, officer) = verify_signed(tx.as_mut(), jws, now)?;
        expected(&verified.claims.request).map_err(RegistryError::Mismatch)?;
        consume_request_id(tx.as_mut(), &verified.claims.jti, &verified.kid, verified.claims.exp, now)?;
        let (mut tx, applied) = self.apply(tx, &officer, &verified, now)?;
        let record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: officer.kid.clone(),
                action: verified.claims.request.action().into(),
                object: applied.object.clone(),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: applied.policy_sha256,
                request: verified.jws.clone(),
                detail: applied.detail,
                domain: applied.domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        Ok(WriteOutcome {
            action: verified.claims.request.action().into(),
            object: applied.object,
            id: applied.id,
            audit_seq: record.seq,
        })
    }

    fn apply(
        &self,
        mut tx: Box<dyn Tx>,
        officer: &OfficerRecord,
        verified: &Verified,
        now: u64,
    ) -> Result<(Box<dyn Tx>, Applied), RegistryError> {
        let authorize = |domain: &str| {
            if officer.may_act_in(domain) {
                Ok(())
            } else {
                Err(RegistryError::Forbidden { officer: officer.name.clone(), domain: domain.into() })
            }
        };
        match &verified.claims.request {
            WriteRequest::ImportCsv { .. } => Err(RegistryError::Invalid {
                field: "action".into(),
                message: "an import is submitted with its file (`prereg import`, POST /v1/imports)".into(),
            }),
            WriteRequest::LoadPolicy { .. }
            | WriteRequest::ActivatePolicy { .. }
            | WriteRequest::ShadowPolicy { .. } => Err(RegistryError::Invalid {
                field: "action".into(),
                message: "policy changes go through `prereg policy load|activate|shadow` (/v1/policies)".into(),
            }),
            WriteRequest::CreateProcedure {
                name,
                domain,
                protocol,
                allowed_domains,
                require_preregistration,
                certificate_days,
            } => {
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
                let certificate_days = certificate_days.unwrap_or(DEFAULT_CERTIFICATE_DAYS);
                if !CERTIFICATE_DAYS.contains(&certificate_days) {
                    return Err(RegistryError::Invalid {
                        field: "certificate-days".into(),
                        message: format!(
                            "{certificate_days} is outside {} to {} days",
                            CERTIFICATE_DAYS.start(),
                            CERTIFICATE_DAYS.end()
                        ),
                    });
                }
                tx.insert_procedure(&ProcedureRecord {
                    name: name.clone(),
                    domain: domain.clone(),
                    protocol,
                    require_preregistration: require,
                    allowed_domains: allowed,
                    certificate_days,
                    created_by: officer.kid.clone(),
                    created_at: now,
                })?;
                let detail = format!("domain {domain}, protocol {protocol}");
                Ok((tx, Applied::new(format!("procedure:{name}"), detail, Some(domain.clone()))))
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
                    disabled_at: None,
                };
                tx.insert_officer(&record)?;
                let detail = format!("kid {}, domains {}", record.kid, domains.join(","));
                Ok((tx, Applied::new(format!("officer:{name}"), detail, only_domain(domains))))
            }
            WriteRequest::CreateRegistration {
                procedure,
                fqdn,
                ip,
                serial,
                password_hash,
                password_sealed,
                valid_days,
                max_enrollments,
            } => {
                let proc_record = tx.procedure(procedure)?.ok_or_else(|| RegistryError::Invalid {
                    field: "procedure".into(),
                    message: format!("unknown token procedure {procedure:?}"),
                })?;
                authorize(&proc_record.domain)?;
                if password_hash.is_some() {
                    return Err(RegistryError::Invalid {
                        field: "password".into(),
                        message: "a signed request carries the password sealed to the instance key \
                                  (password_sealed, the public key in GET /v1/instance), never its hash: the \
                                  audit log keeps the request, and a hash there could be cracked offline"
                            .into(),
                    });
                }
                let password_hash = password_sealed.as_deref().map(|sealed| self.hash_sealed(sealed)).transpose()?;
                let fields = RegistrationFields {
                    fqdn,
                    ip: ip.as_deref(),
                    serial: serial.as_deref(),
                    has_password: password_hash.is_some(),
                    valid_days: *valid_days,
                    max_enrollments: *max_enrollments,
                };
                let (tx_back, checked) = self.check_registration(tx, &proc_record, &fields, now);
                tx = tx_back;
                let checked = checked?;
                let detail = format!("pattern {} in domain {}", checked.pattern, proc_record.domain);
                let sha = Some(checked.policy_sha256.clone());
                let mut row = checked.into_new(&proc_record, password_hash, &officer.kid, now, None);
                row.password_sealed = password_sealed.clone();
                let id = tx.insert_registration(&row)?;
                let applied = Applied::new(format!("registration:{id}"), detail, Some(proc_record.domain.clone()));
                Ok((tx, Applied { id: Some(id), policy_sha256: sha, ..applied }))
            }
            WriteRequest::DisableOfficer { name } => {
                let officers = tx.officers()?;
                let target = officers
                    .iter()
                    .find(|o| &o.name == name)
                    .ok_or_else(|| RegistryError::NotFound(format!("officer {name:?}")))?;
                // Only an officer who has every domain the target has.
                for domain in &target.domains {
                    if domain == "*" && !officer.has_all_domains() {
                        return Err(RegistryError::Forbidden { officer: officer.name.clone(), domain: "*".into() });
                    }
                    if domain != "*" {
                        authorize(domain)?;
                    }
                }
                if target.disabled_at.is_some() {
                    return Err(RegistryError::Invalid {
                        field: "name".into(),
                        message: format!("officer {name:?} is disabled already"),
                    });
                }
                let others_with_all =
                    officers.iter().filter(|o| o.kid != target.kid && o.has_all_domains() && o.disabled_at.is_none());
                if target.has_all_domains() && others_with_all.count() == 0 {
                    return Err(RegistryError::Invalid {
                        field: "name".into(),
                        message: format!(
                            "officer {name:?} is the last one of every domain: add another before disabling it"
                        ),
                    });
                }
                tx.disable_officer(&target.kid, now)?;
                let detail = format!("key {} disabled", target.kid);
                Ok((tx, Applied::new(format!("officer:{name}"), detail, only_domain(&target.domains))))
            }
            WriteRequest::RevokeCertificate { serial, reason } => {
                let serial: String = serial.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
                let reason = match reason.as_deref() {
                    None => super::CrlReason::Unspecified,
                    Some(text) => super::CrlReason::parse(text).ok_or_else(|| RegistryError::Invalid {
                        field: "reason".into(),
                        message: format!(
                            "{text:?} is not one of {}",
                            super::CrlReason::ALL.map(super::CrlReason::name).join(", ")
                        ),
                    })?,
                };
                let certificate = tx
                    .certificate_by_serial(&serial)?
                    .ok_or_else(|| RegistryError::NotFound(format!("certificate {serial}")))?;
                let domain = certificate_domain(tx.as_mut(), &certificate)?;
                authorize(domain.as_deref().unwrap_or("*"))?;
                if certificate.revoked_at.is_some() {
                    return Err(RegistryError::Invalid {
                        field: "serial".into(),
                        message: format!("certificate {serial} is revoked already"),
                    });
                }
                // A certificate still held for its certConf was counted: an
                // officer's revocation settles it (nothing is given back).
                tx.set_certificate_state(&serial, CertificateState::Held, CertificateState::Issued)?;
                tx.revoke_certificate(&serial, reason.code(), now)?;
                let detail = format!("revoked ({}), registration {:?}", reason.name(), certificate.registration);
                Ok((tx, Applied::new(format!("certificate:{serial}"), detail, domain)))
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
                let applied = Applied::new(format!("registration:{id}"), detail, Some(current.domain.clone()));
                Ok((tx, Applied { id: Some(*id), ..applied }))
            }
            WriteRequest::AddEabKey { key_id, procedure, domains, hmac_key_sealed } => {
                let (detail, domain) =
                    self.add_eab_key(tx.as_mut(), officer, (key_id, procedure, domains, hmac_key_sealed), now)?;
                Ok((tx, Applied::new(format!("acme-eab:{key_id}"), detail, Some(domain))))
            }
            WriteRequest::AddCaller { name, procedures, secret_sha256, certificate_sha256, webhook_secret_sealed } => {
                check_name("caller name", name)?;
                if procedures.is_empty() {
                    return Err(RegistryError::Invalid {
                        field: "procedures".into(),
                        message: "a caller needs at least one token procedure".into(),
                    });
                }
                let mut domains = Vec::new();
                for procedure in procedures {
                    let record = tx.procedure(procedure)?.ok_or_else(|| RegistryError::Invalid {
                        field: "procedures".into(),
                        message: format!("unknown token procedure {procedure:?}"),
                    })?;
                    authorize(&record.domain)?;
                    domains.push(record.domain);
                }
                for (field, digest) in [("secret", secret_sha256), ("certificate", certificate_sha256)] {
                    if let Some(digest) = digest
                        && !(digest.len() == 64
                            && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                    {
                        return Err(RegistryError::Invalid {
                            field: field.into(),
                            message: "must be a SHA-256 in lowercase hex (64 digits)".into(),
                        });
                    }
                }
                if secret_sha256.is_none() && certificate_sha256.is_none() && webhook_secret_sealed.is_none() {
                    return Err(RegistryError::Invalid {
                        field: "secret".into(),
                        message: "a caller needs a bearer secret, a TLS client certificate or a webhook secret".into(),
                    });
                }
                if let Some(sealed) = webhook_secret_sealed {
                    self.webhook_key(sealed)
                        .map_err(|message| RegistryError::Invalid { field: "webhook_secret_sealed".into(), message })?;
                }
                let mut procedures = procedures.clone();
                procedures.sort();
                procedures.dedup();
                tx.insert_caller(&crate::store::CallerRecord {
                    name: name.clone(),
                    procedures: procedures.clone(),
                    secret_sha256: secret_sha256.clone(),
                    certificate_sha256: certificate_sha256.clone(),
                    created_by: officer.kid.clone(),
                    created_at: now,
                    disabled_at: None,
                    webhook_secret_sealed: webhook_secret_sealed.clone(),
                })?;
                let detail = format!("procedures {}", procedures.join(","));
                Ok((tx, Applied::new(format!("caller:{name}"), detail, only_domain(&domains))))
            }
            WriteRequest::DisableCaller { name } => {
                let caller = tx.caller(name)?.ok_or_else(|| RegistryError::NotFound(format!("caller {name:?}")))?;
                let mut domains = Vec::new();
                for procedure in &caller.procedures {
                    // A procedure is never deleted; one missing leaves the
                    // caller to officers of every domain.
                    let domain = tx.procedure(procedure)?.map_or_else(|| "*".to_owned(), |p| p.domain);
                    authorize(&domain)?;
                    domains.push(domain);
                }
                if !tx.disable_caller(name, now)? {
                    return Err(RegistryError::Invalid {
                        field: "name".into(),
                        message: format!("caller {name:?} is disabled already"),
                    });
                }
                Ok((tx, Applied::new(format!("caller:{name}"), "disabled".into(), only_domain(&domains))))
            }
        }
    }
}

/// The error of each validation when the store failed during them: an
/// unavailable store (a lost PostgreSQL connection) stays unavailable, so
/// the client is told to retry (503); any other failure is the store's data.
fn failed_during_validation(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable { database, message } => {
            StoreError::Unavailable { database: database.clone(), message: message.clone() }
        }
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// What a signed write did, for its audit record.
struct Applied {
    object: String,
    id: Option<u64>,
    detail: String,
    policy_sha256: Option<String>,
    /// The domain the record belongs to.
    domain: Option<String>,
}

impl Applied {
    fn new(object: String, detail: String, domain: Option<String>) -> Self {
        Applied { object, id: None, detail, policy_sha256: None, domain }
    }
}

/// The one domain a write touched, if it touched only one (and not `*`):
/// its audit record then belongs to that domain; otherwise it is
/// instance-wide, read by officers of every domain only.
fn only_domain(domains: &[String]) -> Option<String> {
    let first = domains.first()?;
    (first != "*" && domains.iter().all(|d| d == first)).then(|| first.clone())
}

/// The domain a certificate belongs to: its registration's, or (the
/// registration deleted since) its token procedure's; `None` if neither is
/// known, and then only an officer of every domain may act on it.
pub(super) fn certificate_domain(
    tx: &mut dyn Tx,
    certificate: &CertificateRecord,
) -> Result<Option<String>, RegistryError> {
    if let Some(id) = certificate.registration
        && let Some(registration) = tx.registration(id)?
    {
        return Ok(Some(registration.domain));
    }
    let procedure = serde_json::from_str::<serde_json::Value>(&certificate.request)
        .ok()
        .and_then(|v| v.get("procedure").and_then(|p| p.as_str()).map(str::to_owned));
    match procedure {
        Some(name) => Ok(tx.procedure(&name)?.map(|p| p.domain)),
        None => Ok(None),
    }
}

/// The numbers of a registration request, checked by the host.
fn check_numbers(fields: &RegistrationFields<'_>) -> Result<(), RegistryError> {
    if fields.valid_days.is_some_and(|d| d == 0 || d > MAX_VALID_DAYS) {
        return Err(RegistryError::Invalid {
            field: "valid-days".into(),
            message: format!("must be 1 to {MAX_VALID_DAYS}"),
        });
    }
    if fields.max_enrollments == Some(0) {
        return Err(RegistryError::Invalid { field: "max-enrollments".into(), message: "must be at least 1".into() });
    }
    Ok(())
}

/// The host's own checks on the policy's answer (the domain is the
/// procedure's, the pattern canonical and indexable), and the registration
/// as it will be stored.
fn checked(
    procedure: &ProcedureRecord,
    fields: &RegistrationFields<'_>,
    validation: Validation,
    policy: &PolicyInfo,
    now: u64,
) -> Result<CheckedRegistration, RegistryError> {
    let valid = match validation {
        Err(failure) => return Err(RegistryError::Policy(failure.to_string())),
        Ok(Err(invalid)) => return Err(invalid.into()),
        Ok(Ok(valid)) => valid,
    };
    let pattern = Pattern::parse(&valid.pattern).map_err(|e| {
        RegistryError::Policy(format!("the policy returned an invalid pattern {:?}: {e}", valid.pattern))
    })?;
    if valid.domain != procedure.domain || pattern.as_str() != valid.pattern {
        return Err(RegistryError::Policy("the policy changed the domain or returned a non-canonical pattern".into()));
    }
    let max_enrollments = match fields.max_enrollments {
        Some(n) => Some(n),
        None if pattern.is_exact() => Some(1),
        None => None,
    };
    Ok(CheckedRegistration {
        index_key: pattern.index_key().encode(),
        pattern: valid.pattern,
        ip: valid.ip,
        serial: valid.serial,
        expires_at: fields.valid_days.map(|d| now + u64::from(d) * DAY),
        max_enrollments,
        policy_sha256: policy.sha256.clone(),
    })
}
