//! Policy versions: load a component (checked, compiled, stored), list them,
//! activate one. Every change is a signed request of an officer of every
//! domain, and is audited; activation swaps the registry's policy atomically.
//! The active version is kept in the store and comes back at start
//! ([`crate::open_registry`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::writes::consume_request_id;
use super::writes::verify_signed;
use super::{Registry, RegistryError, WriteOutcome};
use prereg_core::{Decision, EnrollmentRequest, RegistrationRequest};

use crate::audit::{self, AuditEntry, hex};
use crate::cases::{self, CaseFile, Facts};
use crate::evaluation::Evaluation;
use crate::policy::{Policy, PolicyFailure, PolicyInfo, Validation};
use crate::signing::WriteRequest;
use crate::store::{OfficerRecord, PolicyVersionRecord, TxKind};

/// Compiles a component into a policy (`bytes`, a name for messages).
pub type PolicyLoader = dyn Fn(&[u8], &str) -> Result<Arc<dyn Policy>, String> + Send + Sync;

/// What a policy change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyChange {
    /// The write.
    pub outcome: WriteOutcome,
    /// The version concerned (absent for the built-in policy).
    pub policy: Option<PolicyVersionRecord>,
    /// Whether it is now the active policy.
    pub active: bool,
    /// How many of the policy's own test cases ran at load (all passed, or
    /// the load was refused); absent when it ships none.
    #[serde(default)]
    pub self_test_cases: Option<usize>,
}

/// The selector of the built-in default policy.
pub const BUILT_IN: &str = "built-in";

impl Registry {
    /// The compiler of policy components ([`crate::open_registry`] sets one);
    /// without one, policies cannot be loaded or activated.
    pub fn with_loader(mut self, loader: Arc<PolicyLoader>) -> Self {
        // A registry set up otherwise batches its enrollments apart.
        self.group = Arc::default();
        self.loader = Some(loader);
        self
    }

    pub(super) fn loader(&self) -> Result<&Arc<PolicyLoader>, RegistryError> {
        self.loader.as_ref().ok_or_else(|| RegistryError::Invalid {
            field: "policy".into(),
            message: "this registry was opened without a policy engine".into(),
        })
    }

    /// Every loaded policy version, oldest first.
    pub fn policy_versions(&self) -> Result<Vec<PolicyVersionRecord>, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        Ok(tx.policy_versions()?)
    }

    pub(super) fn verify_policy_request(
        &self,
        jws: &str,
        now: u64,
    ) -> Result<(crate::signing::Verified, OfficerRecord), RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        let (verified, officer) = verify_signed(tx.as_mut(), jws, now)?;
        if !officer.has_all_domains() {
            return Err(RegistryError::Forbidden { officer: officer.name, domain: "*".into() });
        }
        Ok((verified, officer))
    }

    /// Loads a policy component under a signed `policy.load` request: the file
    /// must be the signed one; it is checked and compiled (a component of the
    /// `prereg:policy` world at a compatible WIT version, importing nothing
    /// else) before anything is stored; then it is stored, audited and, if
    /// asked, activated. A refused file changes nothing.
    pub fn load_policy(&self, jws: &str, component: &[u8], now: u64) -> Result<PolicyChange, RegistryError> {
        let (verified, officer) = self.verify_policy_request(jws, now)?;
        let WriteRequest::LoadPolicy { sha256, activate, name, version } = &verified.claims.request else {
            return Err(RegistryError::Mismatch(format!(
                "expected policy.load, not {}",
                verified.claims.request.action()
            )));
        };
        let found = hex(&Sha256::digest(component));
        if !found.eq_ignore_ascii_case(sha256) {
            return Err(RegistryError::Invalid {
                field: "sha256".into(),
                message: format!("the component's SHA-256 is {found}, but the signed request is for {sha256}"),
            });
        }
        for (field, label) in [("name", name), ("version", version)] {
            if let Some(label) = label {
                check_label(field, label)?;
            }
        }
        let source = format!("sha256:{}", &found[..12]);
        let policy = (self.loader()?)(component, &source).map_err(RegistryError::PolicyRefused)?;
        let self_test = self_test(&policy, &source)?;
        let info = policy.info().clone();
        let (name, version) = (
            name.clone().unwrap_or_else(|| info.name.clone()),
            version.clone().unwrap_or_else(|| info.version.clone()),
        );
        if let Some(other) =
            self.policy_versions()?.into_iter().find(|p| p.name == name && p.version == version && p.sha256 != found)
        {
            return Err(RegistryError::Invalid {
                field: "version".into(),
                message: format!(
                    "{name}@{version} already names another component (sha256 {}); give this one another --version",
                    &other.sha256[..12]
                ),
            });
        }
        let policy = labelled(policy, &name, &version);
        let record = PolicyVersionRecord {
            sha256: found.clone(),
            name: name.clone(),
            version: version.clone(),
            wit_version: info.wit_version.clone(),
            size: component.len() as u64,
            loaded_by: officer.kid.clone(),
            loaded_at: now,
            active: *activate,
        };
        let mut tx = self.storage.begin(TxKind::Write)?;
        consume_request_id(tx.as_mut(), &verified.claims.jti, &officer.kid, verified.claims.exp, now)?;
        let new = tx.insert_policy(&record, component)?;
        if *activate {
            tx.set_active_policy(Some(&found), &officer.kid, now)?;
        }
        let detail = format!(
            "{name} {version} (WIT {}, {} bytes){}{}{}",
            info.wit_version,
            component.len(),
            match self_test {
                Some(n) => format!(", its {n} test cases pass"),
                None => String::new(),
            },
            if new { "" } else { ", loaded before" },
            if *activate { ", activated" } else { "" }
        );
        let audit_record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: officer.kid.clone(),
                action: "policy.load".into(),
                object: format!("policy:{found}"),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: Some(found.clone()),
                request: verified.jws.clone(),
                detail,
                domain: None,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        if *activate {
            self.swap_policy(policy);
        }
        let record = self.policy_versions()?.into_iter().find(|p| p.sha256 == found);
        Ok(PolicyChange {
            outcome: WriteOutcome {
                action: "policy.load".into(),
                object: format!("policy:{found}"),
                id: None,
                audit_seq: audit_record.seq,
            },
            active: *activate,
            policy: record,
            self_test_cases: self_test,
        })
    }

    /// Activates a loaded version (or the built-in policy) under a signed
    /// `policy.activate` request: roll back or forward. Decisions in flight
    /// finish on the old policy.
    pub fn activate_policy(&self, jws: &str, now: u64) -> Result<PolicyChange, RegistryError> {
        let (verified, officer) = self.verify_policy_request(jws, now)?;
        let WriteRequest::ActivatePolicy { policy: selector } = &verified.claims.request else {
            return Err(RegistryError::Mismatch(format!(
                "expected policy.activate, not {}",
                verified.claims.request.action()
            )));
        };
        let chosen = self.resolve_policy(selector)?;
        let (policy, detail) = match &chosen {
            None => {
                let compiled = (self.loader()?)(crate::builtin::DEFAULT_POLICY_COMPONENT, BUILT_IN)
                    .map_err(RegistryError::PolicyRefused)?;
                (compiled, "the built-in default policy".to_owned())
            }
            Some(record) => (self.compile_stored(record)?, format!("{} {}", record.name, record.version)),
        };
        let sha = policy.info().sha256.clone();
        let mut tx = self.storage.begin(TxKind::Write)?;
        consume_request_id(tx.as_mut(), &verified.claims.jti, &officer.kid, verified.claims.exp, now)?;
        let previous = tx.active_policy()?;
        tx.set_active_policy(chosen.as_ref().map(|r| r.sha256.as_str()), &officer.kid, now)?;
        let audit_record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: officer.kid.clone(),
                action: "policy.activate".into(),
                object: format!("policy:{sha}"),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: Some(sha.clone()),
                request: verified.jws.clone(),
                detail: format!("{detail} is active (was {})", previous.as_deref().unwrap_or(BUILT_IN)),
                domain: None,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        self.swap_policy(policy);
        let record = match chosen {
            None => None,
            Some(r) => self.policy_versions()?.into_iter().find(|p| p.sha256 == r.sha256),
        };
        Ok(PolicyChange {
            outcome: WriteOutcome {
                action: "policy.activate".into(),
                object: format!("policy:{sha}"),
                id: None,
                audit_seq: audit_record.seq,
            },
            policy: record,
            active: true,
            self_test_cases: None,
        })
    }

    /// `built-in` (None), a SHA-256 or unique prefix of 8+ hex digits, or
    /// `name@version`.
    pub(super) fn resolve_policy(&self, selector: &str) -> Result<Option<PolicyVersionRecord>, RegistryError> {
        let selector = selector.trim();
        if selector == BUILT_IN {
            return Ok(None);
        }
        let versions = self.policy_versions()?;
        let matches: Vec<&PolicyVersionRecord> = if let Some((name, version)) = selector.split_once('@') {
            versions.iter().filter(|p| p.name == name && p.version == version).collect()
        } else if selector.len() >= 8 && selector.bytes().all(|b| b.is_ascii_hexdigit()) {
            let prefix = selector.to_ascii_lowercase();
            versions.iter().filter(|p| p.sha256.starts_with(&prefix)).collect()
        } else {
            return Err(RegistryError::Invalid {
                field: "policy".into(),
                message: format!("{selector:?}: say `built-in`, a SHA-256 (8 hex digits or more) or NAME@VERSION"),
            });
        };
        match matches.as_slice() {
            [one] => Ok(Some((*one).clone())),
            [] => Err(RegistryError::NotFound(format!("loaded policy {selector:?}"))),
            _ => Err(RegistryError::Invalid {
                field: "policy".into(),
                message: format!("{selector:?} names {} loaded versions; give more of the SHA-256", matches.len()),
            }),
        }
    }
}

/// A label given at load: 1 to 64 printable characters, no `@` or spaces.
fn check_label(field: &str, label: &str) -> Result<(), RegistryError> {
    let ok = !label.is_empty()
        && label.chars().count() <= 64
        && label.chars().all(|c| (c.is_ascii_graphic() && c != '@') || c.is_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid {
            field: field.into(),
            message: format!("{label:?}: 1 to 64 printable characters, without spaces or '@'"),
        })
    }
}

/// Runs the test cases a policy ships; refuses the policy if one fails.
/// Returns how many ran.
fn self_test(policy: &Arc<dyn Policy>, source: &str) -> Result<Option<usize>, RegistryError> {
    let Some(bytes) = policy.test_cases() else {
        return Ok(None);
    };
    let refuse = |why: String| RegistryError::PolicyRefused(format!("{source}: {why}"));
    let file = CaseFile::parse_embedded(bytes, source).map_err(|e| refuse(format!("its test cases: {e}")))?;
    let (report, _) = cases::run(policy.clone(), &file, "embedded test cases", Facts::Live)
        .map_err(|e| refuse(format!("its own test cases could not run: {e}")))?;
    if !report.all_passed() {
        return Err(refuse(format!(
            "{} of its own {} test cases fail: {}",
            report.failed,
            report.passed + report.failed,
            report.failure_summary()
        )));
    }
    tracing::info!(policy = %report.policy.name, cases = report.passed, "the policy's own test cases pass");
    Ok(Some(report.passed))
}

/// `policy` under the name and version it was loaded as (when they differ
/// from its metadata), so decisions name it as `prereg policy list` does.
pub fn labelled(policy: Arc<dyn Policy>, name: &str, version: &str) -> Arc<dyn Policy> {
    let info = policy.info();
    if info.name == name && info.version == version {
        return policy;
    }
    let mut info = info.clone();
    info.name = name.into();
    info.version = version.into();
    Arc::new(Labelled { inner: policy, info })
}

/// A policy listed under another name or version.
struct Labelled {
    inner: Arc<dyn Policy>,
    info: PolicyInfo,
}

impl Policy for Labelled {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn decide(
        &self,
        evaluation: Evaluation,
        request: &EnrollmentRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation) {
        self.inner.decide(evaluation, request)
    }

    fn decide_renewal(
        &self,
        evaluation: Evaluation,
        request: &prereg_core::RenewalRequest,
    ) -> (Result<Decision, PolicyFailure>, Evaluation) {
        self.inner.decide_renewal(evaluation, request)
    }

    fn validate_registration(&self, evaluation: Evaluation, request: &RegistrationRequest) -> (Validation, Evaluation) {
        self.inner.validate_registration(evaluation, request)
    }

    fn validate_registrations(
        &self,
        evaluation: Evaluation,
        requests: &[RegistrationRequest],
    ) -> (Vec<Validation>, Evaluation) {
        self.inner.validate_registrations(evaluation, requests)
    }

    fn test_cases(&self) -> Option<&[u8]> {
        self.inner.test_cases()
    }
}
