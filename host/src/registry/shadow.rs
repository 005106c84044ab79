//! Shadow mode: a loaded policy version decides every enrollment beside the
//! active policy, in the same transaction and on the same facts, without
//! effect on the outcome. The decisions where the two disagree are kept (the
//! request, both decisions, both reasons) for `prereg policy shadow report`,
//! so an operator sees what a candidate would change before activating it.
//!
//! Also here: [`Registry::follow_store`], which brings a running service up to
//! the active and shadow versions another process recorded in the store.

use std::sync::Arc;

use prereg_core::{Decision, EnrollmentRequest};
use serde::{Deserialize, Serialize};

use super::policies::{BUILT_IN, labelled};
use super::writes::consume_request_id;
use super::{Registry, RegistryError, WriteOutcome};
use crate::audit::{self, AuditEntry};
use crate::evaluation::StoreHost;
use crate::host_calls::HostCalls;
use crate::policy::Policy;
use crate::signing::WriteRequest;
use crate::store::{ShadowDisagreement, ShadowRecord, ShadowSide, Tx, TxKind};

/// What a `policy.shadow` request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShadowChange {
    /// The write.
    pub outcome: WriteOutcome,
    /// The version now in shadow mode (absent: shadowing stopped).
    pub shadow: Option<crate::store::PolicyVersionRecord>,
}

/// The shadow policy and the enrollments where it disagreed with the active one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShadowReport {
    /// The shadow version and its counts (absent: no shadow set).
    pub shadow: Option<ShadowRecord>,
    /// Its name, as loaded.
    pub name: Option<String>,
    /// Its version, as loaded.
    pub version: Option<String>,
    /// Disagreements, oldest first.
    pub disagreements: Vec<ShadowDisagreement>,
}

/// A shadow decision waiting for its enrollment's audit record.
pub(super) struct ShadowOutcome {
    pub(super) side: ShadowSide,
}

impl Registry {
    /// The policy in shadow mode, if any.
    pub fn shadow(&self) -> Option<Arc<dyn Policy>> {
        self.shadow.load().as_ref().clone()
    }

    fn swap_shadow(&self, policy: Option<Arc<dyn Policy>>) {
        match &policy {
            Some(p) => tracing::info!(name = %p.info().name, sha256 = %p.info().sha256, "shadow policy set"),
            None => tracing::info!("shadow policy stopped"),
        }
        self.shadow.store(Arc::new(policy));
    }

    /// Starts shadow mode with a loaded version, or stops it, under a signed
    /// `policy.shadow` request of an officer of every domain. Audited.
    pub fn set_shadow(&self, jws: &str, now: u64) -> Result<ShadowChange, RegistryError> {
        let (verified, officer) = self.verify_policy_request(jws, now)?;
        let WriteRequest::ShadowPolicy { policy: selector } = &verified.claims.request else {
            return Err(RegistryError::Mismatch(format!(
                "expected policy.shadow, not {}",
                verified.claims.request.action()
            )));
        };
        let chosen = match selector.as_deref() {
            None => None,
            Some(s) if s.trim() == BUILT_IN => {
                return Err(RegistryError::Invalid {
                    field: "policy".into(),
                    message: "shadow a loaded version (`prereg policy load` first), not the built-in policy".into(),
                });
            }
            Some(s) => self.resolve_policy(s)?,
        };
        let policy = match &chosen {
            None => None,
            Some(record) => Some(self.compile_stored(record)?),
        };
        let mut tx = self.storage.begin(TxKind::Write)?;
        consume_request_id(tx.as_mut(), &verified.claims.jti, &officer.kid, verified.claims.exp, now)?;
        tx.set_shadow_policy(chosen.as_ref().map(|r| r.sha256.as_str()), &officer.kid, now)?;
        let (object, detail) = match &chosen {
            Some(r) => (
                format!("policy:{}", r.sha256),
                format!("{} {} runs in shadow mode beside the active policy", r.name, r.version),
            ),
            None => ("policy:shadow".to_owned(), "shadow mode stopped".to_owned()),
        };
        let record = audit::append(
            tx.as_mut(),
            AuditEntry {
                time: now,
                actor: officer.kid.clone(),
                action: "policy.shadow".into(),
                object: object.clone(),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: chosen.as_ref().map(|r| r.sha256.clone()),
                request: verified.jws.clone(),
                detail,
                domain: None,
            },
            self.audit_mac_keys(),
        )?;
        tx.commit()?;
        self.swap_shadow(policy);
        Ok(ShadowChange {
            outcome: WriteOutcome { action: "policy.shadow".into(), object, id: None, audit_seq: record.seq },
            shadow: chosen,
        })
    }

    /// The shadow version and its disagreements after id `after` (at most `limit`).
    pub fn shadow_report(&self, after: u64, limit: u32) -> Result<ShadowReport, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        let Some(shadow) = tx.shadow_policy()? else {
            return Ok(ShadowReport { shadow: None, name: None, version: None, disagreements: Vec::new() });
        };
        let disagreements = tx.shadow_disagreements(&shadow.sha256, after, limit.clamp(1, 1000))?;
        let record = tx.policy_versions()?.into_iter().find(|p| p.sha256 == shadow.sha256);
        Ok(ShadowReport {
            name: record.as_ref().map(|r| r.name.clone()),
            version: record.map(|r| r.version),
            shadow: Some(shadow),
            disagreements,
        })
    }

    /// [`Registry::shadow_report`] as a reader of `domains` sees it (`None`:
    /// every domain): the disagreements of those domains' token procedures,
    /// `limit` of them (1 to 1000) after `after` as for any reader: the
    /// filter runs before the page is cut, so a page is never short while
    /// more of the reader's disagreements follow.
    pub fn shadow_report_for(
        &self,
        domains: Option<&[String]>,
        after: u64,
        limit: u32,
    ) -> Result<ShadowReport, RegistryError> {
        let mut report = self.shadow_report(after, limit)?;
        let Some(domains) = domains else { return Ok(report) };
        let procedures: Vec<String> =
            self.procedures()?.into_iter().filter(|p| domains.contains(&p.domain)).map(|p| p.name).collect();
        let readable = |d: &crate::store::ShadowDisagreement| {
            d.request.get("procedure").and_then(|p| p.as_str()).is_some_and(|p| procedures.iter().any(|n| n == p))
        };
        let wanted = limit.clamp(1, 1000) as usize;
        let mut kept = Vec::new();
        let mut batch = std::mem::take(&mut report.disagreements);
        loop {
            let exhausted = batch.len() < wanted;
            let cursor = batch.last().map(|d| d.id);
            kept.extend(batch.into_iter().filter(|d| readable(d)));
            if kept.len() >= wanted || exhausted {
                break;
            }
            let Some(cursor) = cursor else { break };
            batch = self.shadow_report(cursor, limit)?.disagreements;
        }
        kept.truncate(wanted);
        report.disagreements = kept;
        Ok(report)
    }

    /// Decides `request` with the shadow policy (if one is set) over the
    /// enrollment's transaction, before the active decision's effects.
    /// Failures of the shadow are its outcome (`policy-error`), never the
    /// enrollment's.
    pub(super) fn shadow_decide(
        &self,
        tx: Box<dyn Tx>,
        request: &EnrollmentRequest,
        facts: impl FnOnce(Box<dyn Tx>) -> StoreHost,
    ) -> (Box<dyn Tx>, Option<ShadowOutcome>) {
        let Some(shadow) = self.shadow() else {
            return (tx, None);
        };
        let info = shadow.info().clone();
        let host = facts(tx);
        let decided = prereg_engine::decide(shadow.as_ref(), Box::new(host), request, HostCalls::Live);
        let (tx, _) = StoreHost::back(decided.host).into_parts();
        (tx, Some(ShadowOutcome { side: side(&info.sha256, &decided.decision) }))
    }

    /// Brings this registry up to the active and shadow versions recorded in
    /// the store (another process may have changed them: `prereg policy
    /// activate` without `--server`). With `follow_active` false (a policy
    /// file given on the command line), only the shadow is followed. Returns
    /// what changed, for the log.
    pub fn follow_store(&self, follow_active: bool) -> Result<Vec<String>, RegistryError> {
        let (active_sha, shadow_sha, versions) = {
            let mut tx = self.storage.begin(TxKind::Read)?;
            (tx.active_policy()?, tx.shadow_policy()?.map(|s| s.sha256), tx.policy_versions()?)
        };
        let mut changes = Vec::new();
        if follow_active {
            let want = active_sha.clone().unwrap_or_else(|| crate::builtin::DEFAULT_POLICY_SHA256.clone());
            if self.policy().info().sha256 != want {
                let policy = match versions.iter().find(|v| Some(&v.sha256) == active_sha.as_ref()) {
                    Some(record) => self.compile_stored(record)?,
                    None => (self.loader()?)(crate::builtin::DEFAULT_POLICY_COMPONENT, BUILT_IN)
                        .map_err(RegistryError::PolicyRefused)?,
                };
                changes.push(format!("active policy is now {} {}", policy.info().name, policy.info().version));
                self.swap_policy(policy);
            }
        }
        let current = self.shadow().map(|p| p.info().sha256.clone());
        if current != shadow_sha {
            let policy = match versions.iter().find(|v| Some(&v.sha256) == shadow_sha.as_ref()) {
                Some(record) => Some(self.compile_stored(record)?),
                None => None,
            };
            changes.push(match &policy {
                Some(p) => format!("shadow policy is now {} {}", p.info().name, p.info().version),
                None => "shadow mode stopped".into(),
            });
            self.swap_shadow(policy);
        }
        Ok(changes)
    }

    /// Compiles every stored policy version not compiled by this process
    /// yet, into the precompiled cache, so that activating one (here, or on
    /// another node) only has to load it. Failures are logged: the version
    /// will be compiled again when it is activated.
    pub fn prepare_stored_policies(&self) {
        let versions = match self.storage.begin(TxKind::Read).and_then(|mut tx| tx.policy_versions()) {
            Ok(versions) => versions,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the stored policy versions");
                return;
            }
        };
        for record in versions {
            let new = self.prepared.lock().map(|mut p| p.insert(record.sha256.clone())).unwrap_or(false);
            if !new {
                continue;
            }
            let started = std::time::Instant::now();
            match self.compile_stored(&record) {
                Ok(_) => tracing::info!(
                    name = %record.name,
                    sha256 = %record.sha256,
                    ms = started.elapsed().as_millis() as u64,
                    "policy version prepared"
                ),
                Err(e) => tracing::warn!(sha256 = %record.sha256, error = %e, "cannot prepare a stored policy version"),
            }
        }
    }

    /// Compiles a stored version (from the precompiled cache when valid), under its label.
    pub(super) fn compile_stored(
        &self,
        record: &crate::store::PolicyVersionRecord,
    ) -> Result<Arc<dyn Policy>, RegistryError> {
        let bytes = {
            let mut tx = self.storage.begin(TxKind::Read)?;
            tx.policy_component(&record.sha256)?
        }
        .ok_or_else(|| RegistryError::NotFound(format!("policy {}", record.sha256)))?;
        let compiled = (self.loader()?)(&bytes, &format!("sha256:{}", &record.sha256[..12.min(record.sha256.len())]))
            .map_err(RegistryError::PolicyRefused)?;
        Ok(labelled(compiled, &record.name, &record.version))
    }
}

/// One side of a shadowed decision.
pub(super) fn side(sha256: &str, d: &Decision) -> ShadowSide {
    ShadowSide {
        sha256: sha256.into(),
        allowed: d.allowed,
        reason: d.reason.code().into(),
        registration: d.registration,
        explanation: d.explanation.clone(),
    }
}

/// Whether two decisions differ in what counts: the outcome, the reason, the
/// deciding registration.
pub(super) fn disagree(a: &ShadowSide, b: &ShadowSide) -> bool {
    a.allowed != b.allowed || a.reason != b.reason || a.registration != b.registration
}
