//! Policy versions: load a component (checked, compiled, stored), list them,
//! activate one. Every change is a signed request of an officer of every
//! domain, and is audited; activation swaps the registry's policy atomically.
//! The active version is kept in the store and comes back at start
//! ([`crate::open_registry`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::writes::verify_signed;
use super::{Registry, RegistryError, WriteOutcome};
use crate::audit::{self, AuditEntry, hex};
use crate::policy::Policy;
use crate::signing::WriteRequest;
use crate::store::{OfficerRecord, PolicyVersionRecord, TxKind};

/// Compiles a component into a policy (`bytes`, a name for messages).
pub type PolicyLoader = dyn Fn(&[u8], &str) -> Result<Arc<dyn Policy>, String> + Send + Sync;

/// What a policy change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyChange {
    /// The write.
    pub outcome: WriteOutcome,
    /// The version concerned (absent for the built-in policy).
    pub policy: Option<PolicyVersionRecord>,
    /// Whether it is now the active policy.
    pub active: bool,
}

/// The selector of the built-in default policy.
pub const BUILT_IN: &str = "built-in";

impl Registry {
    /// The compiler of policy components ([`crate::open_registry`] sets one);
    /// without one, policies cannot be loaded or activated.
    pub fn with_loader(mut self, loader: Arc<PolicyLoader>) -> Self {
        self.loader = Some(loader);
        self
    }

    fn loader(&self) -> Result<&Arc<PolicyLoader>, RegistryError> {
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

    fn verify_policy_request(
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
        let WriteRequest::LoadPolicy { sha256, activate } = &verified.claims.request else {
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
        let policy =
            (self.loader()?)(component, &format!("sha256:{}", &found[..12])).map_err(RegistryError::PolicyRefused)?;
        let info = policy.info().clone();
        let record = PolicyVersionRecord {
            sha256: found.clone(),
            name: info.name.clone(),
            version: info.version.clone(),
            wit_version: info.wit_version.clone(),
            size: component.len() as u64,
            loaded_by: officer.kid.clone(),
            loaded_at: now,
            active: *activate,
        };
        let mut tx = self.storage.begin(TxKind::Write)?;
        tx.consume_request_id(&verified.claims.jti, &officer.kid, verified.claims.exp, now)?;
        let new = tx.insert_policy(&record, component)?;
        if *activate {
            tx.set_active_policy(Some(&found), &officer.kid, now)?;
        }
        let detail = format!(
            "{} {} (WIT {}, {} bytes){}{}",
            info.name,
            info.version,
            info.wit_version,
            component.len(),
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
            },
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
            Some(record) => {
                let bytes = {
                    let mut tx = self.storage.begin(TxKind::Read)?;
                    tx.policy_component(&record.sha256)?
                }
                .ok_or_else(|| RegistryError::NotFound(format!("policy {}", record.sha256)))?;
                let compiled = (self.loader()?)(&bytes, &format!("sha256:{}", &record.sha256[..12]))
                    .map_err(RegistryError::PolicyRefused)?;
                (compiled, format!("{} {}", record.name, record.version))
            }
        };
        let sha = policy.info().sha256.clone();
        let mut tx = self.storage.begin(TxKind::Write)?;
        tx.consume_request_id(&verified.claims.jti, &officer.kid, verified.claims.exp, now)?;
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
            },
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
        })
    }

    /// `built-in` (None), a SHA-256 or unique prefix of 8+ hex digits, or
    /// `name@version`.
    fn resolve_policy(&self, selector: &str) -> Result<Option<PolicyVersionRecord>, RegistryError> {
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
