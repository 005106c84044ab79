//! Enrollment decisions: run the policy, check its answer against what the
//! host handed out, apply the effects (use counting, lockout) and the audit
//! record in the same transaction.

use prereg_core::{Decision, EnrollmentRequest, Fqdn, PasswordCheck, Reason, RegistrationState};
use serde::Serialize;
use zeroize::Zeroizing;

use prereg_engine::{Decided, HostError, decide};

use super::group_commit::{Answer, Done, Issuer, Job, Work};
use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::evaluation::{MacProof, StoreHost, Trace};
use crate::host_calls::{HostCall, HostCalls};
use crate::store::{StoreError, Tx, TxKind};

/// Lockout threshold: this many password failures in a row lock a registration.
pub const LOCKOUT_FAILURES: u32 = 5;

/// An enrollment request as a CA host receives it.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentInput {
    /// Token procedure name.
    pub procedure: String,
    /// Device name (CN, or first DNS SAN).
    pub fqdn: String,
    /// IP address, if the request has one.
    pub ip: Option<String>,
    /// Subject serialNumber, if any.
    pub serial: Option<String>,
    /// SCEP challengePassword, if any.
    pub password: Option<Zeroizing<String>>,
    /// CMP: the MAC keyed by a registration's password, as the CMP front
    /// checked it (the secret itself never travels).
    pub mac: Option<MacProof>,
    /// The enrollment protocol's transaction id (`cmp:…`, `scep:…`), kept in
    /// the audit record.
    pub transaction: Option<String>,
    /// The CA caller that asked (`POST /v1/decisions/enroll`): the audit
    /// record names it as the actor (`caller:NAME`); `None`: the device
    /// itself, through the enrollment front (SCEP, CMP).
    pub caller: Option<String>,
    /// The caller's Idempotency-Key for this enrollment: a retry with the
    /// same key (and the same request) gets the first answer, and nothing
    /// is decided, counted or audited again. Only with a caller.
    pub idempotency_key: Option<String>,
    /// The ACME account that asked (its order is the transaction): the
    /// audit record names it as the actor (`acme:ID`).
    pub account: Option<String>,
}

impl EnrollmentInput {
    /// What the audit record (and a shadow disagreement) keeps of the
    /// request: everything but the password.
    fn audit_request(&self) -> serde_json::Value {
        serde_json::json!({
            "procedure": self.procedure,
            "fqdn": self.fqdn,
            "ip": self.ip,
            "serial": self.serial,
            "has_password": self.password.is_some() || self.mac.is_some(),
            "transaction": self.transaction,
        })
    }
}

/// Who asked, as an enrollment's audit record names it: the device itself,
/// or the CA caller that asked for it.
fn audit_actor(input: &EnrollmentInput) -> String {
    match (&input.account, &input.caller) {
        (Some(account), _) => format!("acme:{account}"),
        (None, Some(caller)) => format!("caller:{caller}"),
        (None, None) => "device".to_owned(),
    }
}

/// What an enrollment's audit record is about: the deciding registration,
/// else the name asked for.
fn audit_object(fqdn: &str, registration: Option<u64>) -> String {
    match registration {
        Some(id) => format!("registration:{id}"),
        None => format!("fqdn:{}", fqdn.chars().take(300).collect::<String>()),
    }
}

/// How long the answer to an Idempotency-Key is kept, in seconds.
pub const IDEMPOTENCY_SECONDS: u64 = 86_400;

/// What an allowed enrollment grants, as the issuing front needs it inside
/// the decision's transaction: the canonical name the decision matched, and
/// what the deciding registration pins.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// The canonical FQDN (lowercase, A-labels, no trailing dot).
    pub fqdn: &'a str,
    /// The deciding registration, if one decided (`not-required` has none).
    pub registration: Option<&'a prereg_core::Registration>,
}

impl Grant<'_> {
    /// The IP address the registration pins, if any: the only one an issued
    /// certificate may carry.
    pub fn pinned_ip(&self) -> Option<std::net::IpAddr> {
        self.registration.and_then(|r| r.ip.as_deref()).and_then(|ip| ip.parse().ok())
    }

    /// The serial number the registration pins, if any, as registered.
    pub fn pinned_serial(&self) -> Option<&str> {
        self.registration.and_then(|r| r.serial.as_deref())
    }
}

/// The issuing front's part of a renewal: called once, inside the
/// decision's transaction and only if it allows, it returns the certificate
/// to record. An error rolls the whole decision back. (An enrollment's is
/// owned: [`super::group_commit::Issuer`].)
pub type RenewalIssuer<'a> = &'a mut dyn FnMut(&Grant<'_>) -> Result<crate::store::CertificateRecord, String>;

/// Dry run or the real thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionMode {
    /// `check`: explain, change nothing, audit nothing.
    DryRun,
    /// `enroll`: count the enrollment, apply the lockout rule, audit.
    Enroll,
}

/// The policy that made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRef {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// SHA-256 of its component.
    pub sha256: String,
}

/// A decision with everything an operator needs to understand it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionReport {
    /// Whether the device may enroll.
    pub allowed: bool,
    /// SPEC.md reason code (`matched`, `no-registration`...).
    #[serde(serialize_with = "reason_code::serialize", deserialize_with = "reason_code::deserialize")]
    #[cfg_attr(feature = "openapi", schema(schema_with = prereg_store::openapi::reason))]
    pub reason: Reason,
    /// The registration that decided, if any.
    pub registration: Option<u64>,
    /// Its pattern.
    pub pattern: Option<String>,
    /// Why, in words.
    pub explanation: String,
    /// The deciding policy.
    pub policy: PolicyRef,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The audit record of the decision (enrollments only).
    pub audit_seq: Option<u64>,
}

/// A [`Reason`] on the wire and in stored answers: its SPEC.md code.
mod reason_code {
    use prereg_core::Reason;

    pub fn serialize<S: serde::Serializer>(reason: &Reason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(reason.code())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let code = <String as serde::Deserialize>::deserialize(d)?;
        Reason::parse(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown reason code {code:?}")))
    }
}

impl DecisionReport {
    /// The report of `decision` by the policy `info` over `trace`: the
    /// pattern is that of the deciding registration as the policy was
    /// offered it. Not yet audited.
    pub(crate) fn of_trace(
        decision: &Decision,
        trace: &Trace,
        info: &prereg_engine::PolicyInfo,
        dry_run: bool,
    ) -> Self {
        DecisionReport::of_decision(decision.clone(), trace, info, dry_run)
    }

    /// [`DecisionReport::of_trace`], taking the decision's explanation
    /// rather than copying it.
    pub(crate) fn of_decision(
        mut decision: Decision,
        trace: &Trace,
        info: &prereg_engine::PolicyInfo,
        dry_run: bool,
    ) -> Self {
        let pattern = offered(&decision, trace).map(|r| r.pattern.clone());
        let explanation = std::mem::take(&mut decision.explanation);
        DecisionReport::with_explanation(&decision, explanation, pattern, info, dry_run)
    }

    /// The report of `decision` by the policy `info`, not yet audited.
    pub fn of(decision: &Decision, pattern: Option<String>, info: &prereg_engine::PolicyInfo, dry_run: bool) -> Self {
        DecisionReport::with_explanation(decision, decision.explanation.clone(), pattern, info, dry_run)
    }

    fn with_explanation(
        decision: &Decision,
        explanation: String,
        pattern: Option<String>,
        info: &prereg_engine::PolicyInfo,
        dry_run: bool,
    ) -> Self {
        DecisionReport {
            allowed: decision.allowed,
            reason: decision.reason,
            registration: decision.registration,
            pattern,
            explanation,
            policy: PolicyRef { name: info.name.clone(), version: info.version.clone(), sha256: info.sha256.clone() },
            dry_run,
            audit_seq: None,
        }
    }
}

impl Registry {
    /// The in-memory index if it is (quickly made) current for `tx`;
    /// otherwise none, and the store answers the evaluation.
    pub(super) fn current_index(
        &self,
        tx: &mut dyn Tx,
    ) -> Result<Option<std::sync::Arc<crate::index::MemoryIndex>>, RegistryError> {
        Ok(match &self.index {
            Some(index) if index.catch_up_quickly(tx)? => Some(index.clone()),
            _ => None,
        })
    }

    /// A dry run answered from the memory index and the procedures
    /// remembered at the store's change `token`; `None` when they are not
    /// current, or the policy asked for something not remembered: then the
    /// decision takes a transaction.
    fn decide_from_memory(&self, request: &EnrollmentRequest, token: u64, now: u64) -> Option<DecisionReport> {
        let index = self.index.as_ref()?;
        let procedures = self.reads.at(token)?;
        // Only a request without a password or MAC proof gets here.
        let policy = self.policy();
        let host = super::read_cache::CachedHost::new(procedures, index.clone(), now);
        let Decided { decision, trace, host } = decide(policy.as_ref(), Box::new(host), request, HostCalls::Live);
        if prereg_engine::downcast_host::<super::read_cache::CachedHost>(host).is_none_or(|host| host.missed) {
            return None;
        }
        if decision.reason == Reason::PolicyError {
            tracing::warn!(policy = %policy.info().name, sha256 = %policy.info().sha256, "{}", decision.explanation);
        }
        self.reads.answered();
        Some(DecisionReport::of_decision(decision, &trace, policy.info(), true))
    }

    /// How many dry runs were answered from memory, without a storage
    /// transaction ([`super::read_cache`]).
    pub fn dry_runs_from_memory(&self) -> u64 {
        self.reads.answered_count()
    }

    /// Decides an enrollment request. In [`DecisionMode::Enroll`] the decision,
    /// its effects and its audit record are committed together, in the write
    /// transaction of the group commit's next batch ([`super::group_commit`]),
    /// after the decisions queued before it and seeing their effects, so two
    /// concurrent enrollments of a one-time registration cannot both be
    /// allowed; it returns once that batch is durable.
    pub fn decide(
        &self,
        input: EnrollmentInput,
        mode: DecisionMode,
        now: u64,
    ) -> Result<DecisionReport, RegistryError> {
        self.decide_recording(input, mode, now, HostCalls::Live).map(|(report, _)| report)
    }

    /// The dry run an API offers (`prereg check`, `POST /v1/decisions/check`):
    /// [`Registry::decide`] in [`DecisionMode::DryRun`] without checking a
    /// password. Only a real decision checks one (and counts a failure toward
    /// the lockout), so a dry run answers the same for a right and a wrong
    /// password, and cannot be used to guess one: where the registration
    /// has a password it answers `password-required`, saying that an
    /// enrollment would check the one given.
    pub fn check(&self, mut input: EnrollmentInput, now: u64) -> Result<DecisionReport, RegistryError> {
        let had_password = input.password.take().is_some() | input.mac.take().is_some();
        let mut report = self.decide(input, DecisionMode::DryRun, now)?;
        if had_password && report.reason == Reason::PasswordRequired {
            report.explanation = format!(
                "{} The request carries a password: an enrollment would check it here. A dry run never checks \
                 a password, so this answer is the same for a right and a wrong one.",
                report.explanation
            );
        }
        Ok(report)
    }

    /// [`Registry::decide`], recording the host calls the policy made when
    /// `calls` is [`HostCalls::Record`] (`prereg policy test --record`).
    pub fn decide_recording(
        &self,
        input: EnrollmentInput,
        mode: DecisionMode,
        now: u64,
        calls: HostCalls,
    ) -> Result<(DecisionReport, Vec<HostCall>), RegistryError> {
        let (report, _, calls) = match mode {
            DecisionMode::DryRun => self.dry_run(input, now, calls)?,
            DecisionMode::Enroll => self.enroll(input, now, calls, None)?,
        };
        Ok((report, calls))
    }

    /// Decides an enrollment for real and, if it is allowed, issues its
    /// certificate with `issue` and records it, in the same transaction as
    /// the decision, its count and its audit record: a certificate that
    /// leaves the server has been counted, and a counted one is recorded.
    pub fn enroll_issuing(
        &self,
        input: EnrollmentInput,
        now: u64,
        issue: impl FnMut(&Grant<'_>) -> Result<crate::store::CertificateRecord, String> + Send + 'static,
    ) -> Result<(DecisionReport, Option<crate::store::CertificateRecord>), RegistryError> {
        self.enroll(input, now, HostCalls::Live, Some(Box::new(issue)))
            .map(|(report, certificate, _)| (report, certificate))
    }

    /// A real decision: queued for the next batch of the group commit
    /// ([`super::group_commit`]), answered once that batch is durable.
    fn enroll(&self, input: EnrollmentInput, now: u64, calls: HostCalls, issuer: Option<Issuer>) -> Answer {
        Done::decided(self.group.submit(self, Work::enroll(input, now, calls, issuer)?))
    }

    /// A dry run: from memory when nothing was committed since the memory
    /// was found current, else in a read transaction.
    fn dry_run(&self, mut input: EnrollmentInput, now: u64, calls: HostCalls) -> Answer {
        // A dry run with nothing to check but names and states may be
        // answered from memory, if nothing was committed since the memory
        // was found current ([`super::read_cache`]).
        let cacheable =
            matches!(calls, HostCalls::Live) && input.password.is_none() && input.mac.is_none() && self.index.is_some();
        let token = if cacheable { self.storage.change_token()? } else { None };
        let request = take_policy_request(&mut input);
        if let Some(token) = token
            && let Some(report) = self.decide_from_memory(&request, token, now)
        {
            return Ok((report, None, Vec::new()));
        }
        let mut tx = self.storage.begin(TxKind::Read)?;
        let index = self.current_index(tx.as_mut())?;
        let index_current = index.is_some();
        // The policy is taken once: a swap meanwhile does not touch this decision.
        let policy = self.policy();
        let host = StoreHost::new(tx, now).with_password(input.password).with_mac_proof(input.mac).with_index(index);
        let Decided { decision, mut trace, host } = decide(policy.as_ref(), Box::new(host), &request, calls);
        let mut host = StoreHost::back(host);
        if let Some(token) = token
            && index_current
            && trace.host_error.is_none()
        {
            self.reads.remember(token, host.take_procedures());
        }
        if trace.host_error == Some(HostError::Busy) {
            return Err(RegistryError::Busy);
        }
        let recorded = std::mem::take(&mut trace.recorded);
        if decision.reason == Reason::PolicyError {
            tracing::warn!(policy = %policy.info().name, sha256 = %policy.info().sha256, "{}", decision.explanation);
        }
        Ok((DecisionReport::of_decision(decision, &trace, policy.info(), true), None, recorded))
    }

    /// One real decision of a batch, in the batch's transaction `tx`, which
    /// it hands back whatever happens (the caller rolls back to the
    /// savepoint taken before it if it failed). `index` was caught up when
    /// the batch began; the registrations in `changed` were changed by
    /// decisions before this one in the batch and are read again from `tx`.
    pub(super) fn enroll_in(
        &self,
        mut tx: Box<dyn Tx>,
        index: Option<std::sync::Arc<crate::index::MemoryIndex>>,
        changed: &std::collections::HashSet<u64>,
        procedures: &mut ProceduresRead,
        job: Job,
    ) -> (Box<dyn Tx>, Answer) {
        let Job { input, now, calls, issuer } = job;
        // A retried enrollment: the first answer, from the same transaction's
        // view (a retry in the same batch reads the answer of the first).
        let idempotency = match (&input.caller, &input.idempotency_key) {
            (Some(caller), Some(key)) => Some((caller.clone(), key.clone(), idempotency_digest(&input))),
            _ => None,
        };
        if let Some((caller, key, digest)) = &idempotency {
            match idempotent_answer(tx.as_mut(), caller, key, digest) {
                Ok(None) => {}
                Ok(Some(report)) => return (tx, Ok((report, None, Vec::new()))),
                Err(e) => return (tx, Err(e)),
            }
        }
        let request = policy_request(&input);
        // The policy is taken once: a swap meanwhile does not touch this decision.
        let policy = self.policy();
        let info = policy.info().clone();
        let shadow_password = input.password.clone();
        // What the audit record keeps of the request, taken before the
        // password goes to the host.
        let audit_request = input.audit_request();
        // The facts both the active and the shadow policy decide on.
        let facts = |tx: Box<dyn Tx>, password: Option<Zeroizing<String>>| {
            StoreHost::new(tx, now)
                .with_password(password)
                .with_mac_proof(input.mac)
                .with_index(index.clone())
                .with_rereads(changed.clone())
        };
        let host = facts(tx, input.password.clone()).with_procedures(std::mem::take(procedures));
        let Decided { decision, mut trace, host } = decide(policy.as_ref(), Box::new(host), &request, calls);
        let mut host = StoreHost::back(host);
        *procedures = host.take_procedures();
        let (tx, _) = host.into_parts();
        if trace.host_error == Some(HostError::Busy) {
            // Too many password checks at once: nothing is decided or counted.
            return (tx, Err(RegistryError::Busy));
        }
        let recorded = std::mem::take(&mut trace.recorded);
        if decision.reason == Reason::PolicyError {
            tracing::warn!(policy = %info.name, sha256 = %info.sha256, "{}", decision.explanation);
        }
        let offered = offered(&decision, &trace);
        let mut report = DecisionReport::of_trace(&decision, &trace, &info, false);
        // The shadow decides on the same facts, before this decision's effects.
        let (mut tx, shadow) = self.shadow_decide(tx, &request, |tx| facts(tx, shadow_password));
        let write = || -> Result<Option<crate::store::CertificateRecord>, RegistryError> {
            apply_effects(tx.as_mut(), &decision, &trace)?;
            let mut certificate = None;
            if let Some(mut issue) = issuer
                && decision.allowed
            {
                let fqdn = Fqdn::parse(&request.fqdn).map_err(|e| RegistryError::Issuance(e.to_string()))?;
                let grant = Grant { fqdn: fqdn.as_str(), registration: offered };
                let record = issue(&grant).map_err(RegistryError::Issuance)?;
                tx.insert_certificate(&record)?;
                certificate = Some(record);
            }
            let mut request_json = audit_request;
            if let Some(c) = &certificate {
                request_json["certificate"] = serde_json::Value::from(c.serial.clone());
            }
            // The record belongs to the procedure's domain (none: an unknown
            // procedure, instance-wide).
            let domain = tx.procedure(&request.procedure)?.map(|p| p.domain);
            let record = audit::append(
                tx.as_mut(),
                AuditEntry {
                    time: now,
                    actor: audit_actor(&input),
                    action: "enroll".into(),
                    object: audit_object(&request.fqdn, decision.registration),
                    outcome: if decision.allowed { "allowed" } else { "denied" }.into(),
                    reason: Some(report.reason.code().into()),
                    policy_sha256: Some(report.policy.sha256.clone()),
                    request: request_json.to_string(),
                    detail: decision.explanation.clone(),
                    domain,
                },
                self.audit_mac_keys(),
            )?;
            if let Some(shadow) = shadow {
                let active = super::shadow::side(&report.policy.sha256, &decision);
                let differs = super::shadow::disagree(&active, &shadow.side);
                let disagreement = differs.then_some(crate::store::ShadowDisagreement {
                    id: 0,
                    time: now,
                    audit_seq: record.seq,
                    request: request_json,
                    active,
                    shadow: shadow.side,
                });
                tx.record_shadow(disagreement.as_ref())?;
            }
            report.audit_seq = Some(record.seq);
            if let Some((caller, key, digest)) = &idempotency {
                let answer = serde_json::to_string(&report).map_err(|e| RegistryError::Policy(e.to_string()))?;
                let forget_before = now.saturating_sub(IDEMPOTENCY_SECONDS);
                let kept =
                    crate::store::IdempotentAnswer { caller, key, request_sha256: digest, answer: &answer, at: now };
                tx.record_idempotent_answer(&kept, forget_before)?;
            }
            Ok(certificate)
        };
        let written = write();
        (tx, written.map(|certificate| (report, certificate, recorded)))
    }
}

/// The deciding registration, as the policy was offered it.
pub(super) fn offered<'t>(decision: &Decision, trace: &'t Trace) -> Option<&'t prereg_core::Registration> {
    decision.registration.and_then(|id| trace.offered.get(&id)).map(|offer| &offer.registration)
}

/// [`policy_request`], its names moved out of `input` (a dry run needs
/// only its password and MAC proof after this).
fn take_policy_request(input: &mut EnrollmentInput) -> EnrollmentRequest {
    EnrollmentRequest {
        procedure: std::mem::take(&mut input.procedure),
        fqdn: std::mem::take(&mut input.fqdn),
        ip: input.ip.take(),
        serial: input.serial.take(),
        has_password: input.password.is_some() || input.mac.is_some(),
    }
}

/// Procedures read in a batch's transaction, by name: the decisions of one
/// batch read them once.
pub(super) type ProceduresRead = std::collections::HashMap<String, Option<prereg_core::Procedure>>;

/// What the policy is asked: the request without its password.
fn policy_request(input: &EnrollmentInput) -> EnrollmentRequest {
    EnrollmentRequest {
        procedure: input.procedure.clone(),
        fqdn: input.fqdn.clone(),
        ip: input.ip.clone(),
        serial: input.serial.clone(),
        has_password: input.password.is_some() || input.mac.is_some(),
    }
}

/// The answer kept for a caller's Idempotency-Key, if any; a key that
/// answered another request is refused.
fn idempotent_answer(
    tx: &mut dyn Tx,
    caller: &str,
    key: &str,
    digest: &str,
) -> Result<Option<DecisionReport>, RegistryError> {
    let Some((answered, answer)) = tx.idempotent_answer(caller, key)? else { return Ok(None) };
    if answered != digest {
        return Err(RegistryError::Invalid {
            field: "idempotency-key".into(),
            message: "this Idempotency-Key answered another request: use a new key for a new request".into(),
        });
    }
    let report = serde_json::from_str(&answer)
        .map_err(|e| StoreError::Corrupt(format!("the answer kept for an Idempotency-Key: {e}")))?;
    Ok(Some(report))
}

/// A request an enrollment front refused before the policy decided it (a
/// registration without a password that CMP cannot key its MAC with, a bad
/// proof of possession once the request is authenticated, ...).
#[derive(Debug, Clone)]
pub struct FrontRefusal<'a> {
    /// The request as the front read it.
    pub input: &'a EnrollmentInput,
    /// The registration the request was authenticated by, if any.
    pub registration: Option<u64>,
    /// The reason code, where one of SPEC.md's says why.
    pub reason: Option<Reason>,
    /// Why, in words (the protocol's failInfo and text).
    pub detail: String,
}

impl Registry {
    /// Audits a [`FrontRefusal`] like a decision: an `enroll` record with
    /// outcome `refused`, in the procedure's domain. Nothing is counted.
    /// Returns the record's sequence number.
    pub fn audit_refusal(&self, refusal: &FrontRefusal<'_>, now: u64) -> Result<u64, RegistryError> {
        let input = refusal.input;
        let mut tx = self.storage.begin(TxKind::Write)?;
        let domain = tx.procedure(&input.procedure)?.map(|p| p.domain);
        let request = input.audit_request();
        let record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: audit_actor(input),
                action: "enroll".into(),
                object: audit_object(&input.fqdn, refusal.registration),
                outcome: "refused".into(),
                reason: refusal.reason.map(|r| r.code().into()),
                policy_sha256: None,
                request: request.to_string(),
                detail: refusal.detail.chars().take(1000).collect(),
                domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        Ok(record.seq)
    }
}

impl Registry {
    /// Records what another CA's NOTIFYING webhook reported (step-ca: a SCEP
    /// transaction issued or failed), as its caller's, in the procedure's
    /// domain.
    pub fn audit_webhook_notice(
        &self,
        caller: &str,
        procedure: &str,
        provisioner: &str,
        detail: &str,
        now: u64,
    ) -> Result<u64, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let domain = tx.procedure(procedure)?.map(|p| p.domain);
        let record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: format!("caller:{caller}"),
                action: "webhook.notify".into(),
                object: format!("procedure:{procedure}"),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: None,
                request: serde_json::json!({ "provisioner": provisioner }).to_string(),
                detail: detail.chars().take(1000).collect(),
                domain,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        Ok(record.seq)
    }

    /// A MAC keyed by registration `id`'s password did not verify on a
    /// request that is no enrollment (a CMP `rr`): one failure is counted
    /// toward the lockout, as a `bad-password` decision's is, and audited
    /// (`action` on `object`, outcome `denied`).
    pub fn count_password_failure(
        &self,
        id: u64,
        action: &str,
        object: &str,
        detail: &str,
        now: u64,
    ) -> Result<(), RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let Some(current) = tx.registration(id)? else { return Ok(()) };
        let failures = current.failed_attempts.saturating_add(1);
        let state = if failures >= LOCKOUT_FAILURES { RegistrationState::Locked } else { current.state };
        tx.update_registration(id, state, current.enrollments, failures)?;
        audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: "device".into(),
                action: action.into(),
                object: object.into(),
                outcome: "denied".into(),
                reason: Some(Reason::BadPassword.code().into()),
                policy_sha256: None,
                request: serde_json::json!({ "registration": id }).to_string(),
                detail: format!("{detail} ({failures} failure(s) in a row)"),
                domain: Some(current.domain.clone()),
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// What an Idempotency-Key's answer is kept against: the SHA-256 of the
/// request's procedure, name, address and serial, and whether it carries a
/// password (never the password: the store must not hold what a guess of it
/// could be checked against).
fn idempotency_digest(input: &EnrollmentInput) -> String {
    use sha2::Digest as _;
    let canonical = serde_json::json!([
        input.procedure,
        input.fqdn,
        input.ip,
        input.serial,
        input.password.is_some() || input.mac.is_some()
    ]);
    prereg_pki::hex(&sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

/// A name longer than DNS allows (253 octets, labels of 63) is refused
/// before an enrollment is decided or audited: it could be no device's, and
/// an anonymous client must not grow the audit log with it (a dry run, which
/// audits nothing, decides it `invalid-fqdn`). Other invalid names are
/// decided (`invalid-fqdn`) and audited as usual.
pub(super) fn check_name_length(fqdn: &str) -> Result<(), RegistryError> {
    use prereg_core::NameError;
    let refuse = |message: String| Err(RegistryError::Invalid { field: "fqdn".into(), message });
    // IDNA turns no label into one more than four times shorter: anything
    // this long is refused without being parsed.
    if fqdn.len() > 4 * prereg_core::name::MAX_NAME_LEN {
        return refuse(format!("the name is {} octets long; at most 253 are allowed", fqdn.len()));
    }
    match Fqdn::parse(fqdn) {
        Err(e @ (NameError::TooLong { .. } | NameError::LabelTooLong { .. })) => refuse(e.to_string()),
        _ => Ok(()),
    }
}

/// Gives an enrollment back to registration `id` (its certificate was
/// revoked before the client accepted it): one less counted, and a
/// registration used up by it is open again.
pub(super) fn give_back(tx: &mut dyn Tx, id: u64) -> Result<bool, RegistryError> {
    let Some(current) = tx.registration(id)? else {
        return Ok(false);
    };
    if current.enrollments == 0 {
        return Ok(false);
    }
    let enrollments = current.enrollments - 1;
    let state = match current.state {
        RegistrationState::Used if current.max_enrollments.is_none_or(|max| enrollments < max) => {
            RegistrationState::Open
        }
        other => other,
    };
    tx.update_registration(id, state, enrollments, current.failed_attempts)?;
    Ok(true)
}

/// SPEC step 9 and the lockout rule, in the decision's transaction.
fn apply_effects(tx: &mut dyn Tx, decision: &Decision, trace: &Trace) -> Result<(), RegistryError> {
    let Some(id) = decision.registration else {
        return Ok(());
    };
    // Re-read under the write lock: the offered copy came from this same
    // transaction, but re-reading keeps the update independent of the policy.
    let Some(current) = tx.registration(id)? else {
        return Ok(());
    };
    match decision.reason {
        Reason::Matched => {
            let enrollments = current.enrollments.saturating_add(1);
            let state = if current.max_enrollments.is_some_and(|max| enrollments >= max) {
                RegistrationState::Used
            } else {
                RegistrationState::Open
            };
            tx.update_registration(id, state, enrollments, 0)?;
        }
        Reason::BadPassword if trace.password_checks.get(&id) == Some(&PasswordCheck::Mismatch) => {
            let failures = current.failed_attempts.saturating_add(1);
            let state = if failures >= LOCKOUT_FAILURES { RegistrationState::Locked } else { current.state };
            tx.update_registration(id, state, current.enrollments, failures)?;
        }
        _ => {}
    }
    Ok(())
}
