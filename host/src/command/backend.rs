//! Where a command's work goes: the local data folder (the library's
//! [`Registry`]) or a running service (the REST [`Client`]). Commands are
//! written once against this.

use prereg::Registry;
use prereg::client::Client;
use prereg::policy::PolicyInfo;
use prereg::registry::{
    DecisionMode, DecisionReport, EnrollmentInput, PolicyChange, ShadowChange, ShadowReport, WriteOutcome, unix_now,
};
use prereg::signing::{self, MAX_LIFETIME_SECS, SigningKey, WriteRequest};
use prereg::store::{
    AuditRecord, CallerRecord, OfficerRecord, PolicyVersionRecord, ProcedureRecord, RegistrationFilter,
    RegistrationRecord,
};

/// The local data folder, or a service.
pub enum Backend {
    /// The local data folder.
    Local(Registry),
    /// A running `prereg serve`.
    Remote(Client),
}

/// The result of checking the audit chain.
pub struct ChainCheck {
    /// Records checked (up to the first bad one).
    pub checked: u64,
    /// Officers' signed requests re-verified (when known).
    pub signatures: Option<u64>,
    /// The size of the checkpoint checked against, if any.
    pub checkpoint: Option<u64>,
    /// The first bad record and what is wrong with it.
    pub fault: Option<(u64, String)>,
}

impl Backend {
    /// The instance id: the audience of signed requests.
    pub fn instance_id(&self) -> anyhow::Result<String> {
        Ok(match self {
            Backend::Local(r) => r.instance_id()?,
            Backend::Remote(c) => c.instance()?.instance_id,
        })
    }

    /// The instance's public sealing key ([`prereg::sealing`]), if it has one.
    pub fn sealing_key(&self) -> anyhow::Result<Option<String>> {
        Ok(match self {
            Backend::Local(r) => r.sealing_key().map(|k| k.public_text()),
            Backend::Remote(c) => c.instance()?.sealing_key,
        })
    }

    /// Signs `request` with `key` (here, locally) and submits it.
    pub fn submit(&self, key: &SigningKey, request: WriteRequest) -> anyhow::Result<WriteOutcome> {
        let now = unix_now();
        let jws = signing::sign(key, &self.instance_id()?, request.clone(), now, MAX_LIFETIME_SECS)?;
        Ok(match self {
            Backend::Local(r) => r.submit(&jws, now)?,
            Backend::Remote(c) => c.submit(&jws, &request)?,
        })
    }

    /// Every token procedure.
    pub fn procedures(&self) -> anyhow::Result<Vec<ProcedureRecord>> {
        Ok(match self {
            Backend::Local(r) => r.procedures()?,
            Backend::Remote(c) => c.procedures()?,
        })
    }

    /// Every CA caller (through a service: those the officer may see).
    pub fn callers(&self) -> anyhow::Result<Vec<CallerRecord>> {
        Ok(match self {
            Backend::Local(r) => r.callers()?,
            Backend::Remote(c) => c.callers()?,
        })
    }

    /// Every ACME binding key (through a service: those the officer may see).
    pub fn eab_keys(&self) -> anyhow::Result<Vec<prereg::registry::acme::EabKeyView>> {
        Ok(match self {
            Backend::Local(r) => r.acme_eab_keys(|_| true)?,
            Backend::Remote(c) => c.eab_keys()?,
        })
    }

    /// Every officer.
    pub fn officers(&self) -> anyhow::Result<Vec<OfficerRecord>> {
        Ok(match self {
            Backend::Local(r) => r.officers()?,
            Backend::Remote(c) => c.officers()?,
        })
    }

    /// Registrations by filter.
    pub fn registrations(&self, filter: &RegistrationFilter) -> anyhow::Result<Vec<RegistrationRecord>> {
        Ok(match self {
            Backend::Local(r) => r.registrations(filter)?,
            Backend::Remote(c) => c.registrations(filter)?,
        })
    }

    /// One registration.
    pub fn registration(&self, id: u64) -> anyhow::Result<RegistrationRecord> {
        Ok(match self {
            Backend::Local(r) => r.registration(id)?,
            Backend::Remote(c) => c.registration(id)?,
        })
    }

    /// An enrollment decision.
    pub fn decide(&self, input: EnrollmentInput, mode: DecisionMode) -> anyhow::Result<DecisionReport> {
        Ok(match self {
            Backend::Local(r) => match mode {
                DecisionMode::DryRun => r.check(input, unix_now())?,
                DecisionMode::Enroll => r.decide(input, mode, unix_now())?,
            },
            Backend::Remote(c) => c.decide(&input, mode)?,
        })
    }

    /// Audit records after `after`, at most `limit`.
    pub fn audit_records(&self, after: u64, limit: u32) -> anyhow::Result<Vec<AuditRecord>> {
        match self {
            Backend::Local(r) => Ok(r.audit_records(after, limit)?),
            Backend::Remote(c) => {
                let mut all = Vec::new();
                let mut after = after;
                while all.len() < limit as usize {
                    let page = c.audit(after, (limit as usize - all.len()).min(1000) as u32)?;
                    all.extend(page.items);
                    match page.next_after {
                        Some(next) => after = next,
                        None => break,
                    }
                }
                Ok(all)
            }
        }
    }

    /// Checks the audit chain.
    pub fn verify_audit(&self) -> anyhow::Result<ChainCheck> {
        Ok(match self {
            Backend::Local(r) => {
                let v = r.verify_audit()?;
                ChainCheck {
                    checked: v.checked,
                    signatures: Some(v.signatures),
                    checkpoint: None,
                    fault: v.fault.map(|f| (f.seq(), f.to_string())),
                }
            }
            Backend::Remote(c) => {
                let v = c.verify_audit()?;
                let fault = match (v.first_bad_seq, v.fault) {
                    (Some(seq), Some(why)) => Some((seq, why)),
                    _ => None,
                };
                ChainCheck { checked: v.checked, signatures: v.signatures, checkpoint: None, fault }
            }
        })
    }

    /// Loads a policy component, signed with `key`.
    pub fn load_policy(
        &self,
        key: &SigningKey,
        path: &std::path::Path,
        activate: bool,
        name: Option<String>,
        version: Option<String>,
    ) -> anyhow::Result<PolicyChange> {
        let bytes = std::fs::read(path).map_err(|e| super::InputError(format!("{}: {e}", path.display())))?;
        let sha256 = prereg::audit::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let now = unix_now();
        let request = WriteRequest::LoadPolicy { sha256, activate, name, version };
        let jws = signing::sign(key, &self.instance_id()?, request, now, MAX_LIFETIME_SECS)?;
        Ok(match self {
            Backend::Local(r) => r.load_policy(&jws, &bytes, now)?,
            Backend::Remote(c) => c.load_policy(&jws, path)?,
        })
    }

    /// Activates a loaded policy version, signed with `key`.
    pub fn activate_policy(&self, key: &SigningKey, policy: &str) -> anyhow::Result<PolicyChange> {
        let now = unix_now();
        let request = WriteRequest::ActivatePolicy { policy: policy.into() };
        let jws = signing::sign(key, &self.instance_id()?, request.clone(), now, MAX_LIFETIME_SECS)?;
        Ok(match self {
            Backend::Local(r) => r.activate_policy(&jws, now)?,
            Backend::Remote(c) => {
                let body = prereg::service::signed::FlattenedJws::from_compact(&jws)
                    .ok_or_else(|| anyhow::anyhow!("signing produced no JWS"))?;
                c.activate_policy(&body)?
            }
        })
    }

    /// Starts (a loaded version) or stops (`None`) shadow mode, signed with `key`.
    pub fn shadow_policy(&self, key: &SigningKey, policy: Option<String>) -> anyhow::Result<ShadowChange> {
        let now = unix_now();
        let request = WriteRequest::ShadowPolicy { policy };
        let jws = signing::sign(key, &self.instance_id()?, request, now, MAX_LIFETIME_SECS)?;
        Ok(match self {
            Backend::Local(r) => r.set_shadow(&jws, now)?,
            Backend::Remote(c) => {
                let body = prereg::service::signed::FlattenedJws::from_compact(&jws)
                    .ok_or_else(|| anyhow::anyhow!("signing produced no JWS"))?;
                c.shadow_policy(&body)?
            }
        })
    }

    /// The shadow policy and its disagreements.
    pub fn shadow_report(&self, after: u64, limit: u32) -> anyhow::Result<ShadowReport> {
        Ok(match self {
            Backend::Local(r) => r.shadow_report(after, limit)?,
            Backend::Remote(c) => c.shadow_report(after, limit)?,
        })
    }

    /// Every loaded policy version.
    pub fn policy_versions(&self) -> anyhow::Result<Vec<PolicyVersionRecord>> {
        Ok(match self {
            Backend::Local(r) => r.policy_versions()?,
            Backend::Remote(c) => c.policy_versions()?,
        })
    }

    /// The active policy.
    pub fn policy(&self) -> anyhow::Result<PolicyInfo> {
        Ok(match self {
            Backend::Local(r) => r.policy().info().clone(),
            Backend::Remote(c) => c.policy()?,
        })
    }
}
