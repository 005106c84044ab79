//! The registry service: the one place where prereg applies its rules. Every
//! edge (the CLI today, the REST API later) calls it and decides nothing itself.
//!
//! - [`Registry::submit`]: a signed write (procedures, officers, registrations).
//! - [`Registry::decide`]: an enrollment decision, as a dry run or for real.
//! - reads, and [`Registry::verify_audit`].

pub mod acme;
mod certificates;
mod decisions;
mod errors;
mod group_commit;
pub mod import_lease;
mod imports;
mod policies;
mod read_cache;
mod shadow;
mod writes;

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::{SystemTime, UNIX_EPOCH};

pub use certificates::{CRL_VALIDITY_SECONDS, CrlReason, Renewal, Revocation, TRANSACTION_SECONDS};
pub use decisions::{
    DecisionMode, DecisionReport, EnrollmentInput, FrontRefusal, Grant, IDEMPOTENCY_SECONDS, PolicyRef,
};
pub use errors::RegistryError;
pub use group_commit::{GroupCommitStats, Issuer, MAX_BATCH};
pub use imports::{BATCH_ROWS, ImportError, ImportFile, ImportRequestInfo, MAX_BAD_ROWS_SHOWN, PreparedImport};
pub use policies::{BUILT_IN, PolicyChange, PolicyLoader, labelled};
pub use read_cache::{OwnBatches, TokenMemo};
pub use shadow::{ShadowChange, ShadowReport};
#[cfg(feature = "service")]
pub(crate) use writes::with_officer_keys;
pub use writes::{CERTIFICATE_DAYS, DEFAULT_CERTIFICATE_DAYS, WriteOutcome};

pub use crate::audit::verify::AuditVerification;
use crate::audit::{self, AuditEntry, AuditKeys};
use crate::index::MemoryIndex;
use crate::policy::Policy;
use crate::sealing::SealingKey;
use crate::signing::{PublicKey, SigningKey};
use crate::store::{
    AuditRecord, ImportRecord, OfficerRecord, ProcedureRecord, RegistrationFilter, RegistrationRecord, Storage, Tx,
    TxKind,
};

/// The current time in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Initialises a new instance: its id and the first officer, allowed in
/// every domain, with the `instance.init` audit record that starts the chain.
/// Needs no policy. Returns the instance id.
pub fn initialise(
    storage: &dyn Storage,
    officer_name: &str,
    key: &SigningKey,
    now: u64,
) -> Result<String, RegistryError> {
    writes::check_name("officer name", officer_name)?;
    let mut tx = storage.begin(TxKind::Write)?;
    if tx.instance_id()?.is_some() {
        return Err(RegistryError::Invalid {
            field: "data".into(),
            message: "this data folder is already initialised".into(),
        });
    }
    let mut id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let instance_id = audit::hex(&id);
    tx.set_instance_id(&instance_id, now)?;
    let public = key.public_key();
    let officer = OfficerRecord {
        kid: public.kid(),
        name: officer_name.into(),
        algorithm: public.algorithm().jws_name().into(),
        public_key_pem: public.to_pem()?,
        domains: vec!["*".into()],
        created_by: "init".into(),
        created_at: now,
        disabled_at: None,
    };
    tx.insert_officer(&officer)?;
    audit::append(
        tx.as_mut(),
        AuditEntry {
            time: now,
            actor: "init".into(),
            action: "instance.init".into(),
            object: format!("officer:{}", officer.name),
            outcome: "ok".into(),
            reason: None,
            policy_sha256: None,
            request: serde_json::json!({ "instance": instance_id, "officer": officer.name, "kid": officer.kid })
                .to_string(),
            detail: "instance initialised with its first officer (all domains)".into(),
            domain: None,
        },
        None,
    )?;
    tx.commit()?;
    Ok(instance_id)
}

/// Verifies the whole audit log of `storage` (the chain and every officer's
/// signed request; the records' MACs when the instance's `keys` are given;
/// and that the log still holds what the signed checkpoint `note` counts,
/// which needs the keys) and reports the first bad record.
pub fn verify_audit_chain(
    storage: &dyn Storage,
    keys: Option<&AuditKeys>,
    note: Option<&str>,
) -> Result<AuditVerification, RegistryError> {
    let mut tx = storage.begin(TxKind::Read)?;
    let instance = tx.instance_id()?.ok_or(RegistryError::NotInitialised)?;
    let checkpoint = match note {
        None => None,
        Some(note) => {
            let keys = keys.ok_or_else(|| RegistryError::Invalid {
                field: "sealing-key".into(),
                message: "a checkpoint is checked with the instance key (the data folder's sealing.key)".into(),
            })?;
            let origin = audit::checkpoint::origin(&instance);
            let opened = audit::checkpoint::Checkpoint::open(note, &origin, keys)
                .map_err(|e| RegistryError::Invalid { field: "checkpoint".into(), message: e.to_string() })?;
            Some(opened)
        }
    };
    Ok(audit::verify::verify_log(tx.as_mut(), &instance, checkpoint.as_ref(), keys)?)
}

/// The registry over a storage backend and an active policy. The policy can
/// be swapped while the registry serves ([`Registry::swap_policy`]): each
/// decision, validation and import row takes the active policy once, so work
/// in flight finishes on the policy it started with, and none mixes two.
#[derive(Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    policy: Arc<ArcSwap<Arc<dyn Policy>>>,
    shadow: Arc<ArcSwap<Option<Arc<dyn Policy>>>>,
    loader: Option<Arc<PolicyLoader>>,
    index: Option<Arc<MemoryIndex>>,
    /// What dry runs may answer from memory ([`read_cache`]).
    reads: Arc<read_cache::ReadCache>,
    /// Enrollment decisions waiting for their batch ([`group_commit`]).
    group: Arc<group_commit::GroupCommit>,
    sealing: Option<Arc<SealingKey>>,
    /// Derived from the sealing key: they key the audit chain and sign checkpoints.
    audit_keys: Option<Arc<AuditKeys>>,
    /// Stored policy versions compiled ahead of an activation.
    prepared: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Why the store cannot be written now, as the last probe found
    /// (`None`: it can); the service's readiness.
    write_fault: Arc<std::sync::Mutex<Option<String>>>,
}

impl Registry {
    /// A registry over `storage`, deciding with `policy`.
    pub fn new(storage: Arc<dyn Storage>, policy: Arc<dyn Policy>) -> Self {
        Registry {
            storage,
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            shadow: Arc::new(ArcSwap::from_pointee(None)),
            loader: None,
            index: None,
            reads: Arc::default(),
            group: Arc::default(),
            sealing: None,
            audit_keys: None,
            prepared: Arc::default(),
            write_fault: Arc::default(),
        }
    }

    /// Opens sealed passwords with the instance's key ([`crate::sealing`]):
    /// registrations may then carry one, and CMP can check its MAC. Without
    /// it, a registration request with a sealed password is refused.
    pub fn with_sealing_key(mut self, key: Arc<SealingKey>) -> Self {
        // A registry set up otherwise batches its enrollments apart.
        self.group = Arc::default();
        self.audit_keys = Some(Arc::new(AuditKeys::from_sealing(&key)));
        self.sealing = Some(key);
        self
    }

    /// The instance's sealing key, if this registry has it.
    pub fn sealing_key(&self) -> Option<&Arc<SealingKey>> {
        self.sealing.as_ref()
    }

    /// The password of registration `id` in clear, opened from its sealed
    /// form; `None` when it has none (or this registry has no sealing key).
    pub fn password_secret(&self, id: u64) -> Result<Option<zeroize::Zeroizing<String>>, RegistryError> {
        let Some(key) = &self.sealing else { return Ok(None) };
        let sealed = self.storage.begin(TxKind::Read)?.password_sealed(id)?;
        match sealed {
            None => Ok(None),
            Some(sealed) => key.open(&sealed).map(Some).map_err(|e| {
                RegistryError::Store(crate::store::StoreError::Corrupt(format!("registration {id}: {e}")))
            }),
        }
    }

    /// Answers candidate lookups from an in-memory index built now from the
    /// store ([`crate::index`]): constant time per decision whatever the
    /// number of registrations, for a process that decides many times
    /// (`prereg serve`). Without it, lookups go to the storage index, which
    /// costs nothing to open (one-shot commands).
    pub fn with_memory_index(mut self) -> Result<Self, RegistryError> {
        // A registry set up otherwise batches its enrollments apart.
        self.group = Arc::default();
        let mut tx = self.storage.begin(TxKind::Read)?;
        self.index = Some(Arc::new(MemoryIndex::build(tx.as_mut())?));
        Ok(self)
    }

    /// The in-memory index, if this registry has one.
    pub fn memory_index(&self) -> Option<&Arc<MemoryIndex>> {
        self.index.as_ref()
    }

    /// Brings the in-memory index (if any) up to the store, and trims the
    /// store's change log; a long-running process calls it in the background
    /// so that decisions rarely have changes left to apply.
    pub fn refresh_index(&self) -> Result<(), RegistryError> {
        let Some(index) = &self.index else { return Ok(()) };
        let ends = {
            let mut tx = self.storage.begin(TxKind::Read)?;
            index.catch_up(tx.as_mut())?
        };
        let pruned = MemoryIndex::prune_if_long(self.storage.as_ref(), ends)?;
        if pruned > 0 {
            tracing::debug!(pruned, "registration change log trimmed");
        }
        Ok(())
    }

    /// The active policy, as it is now.
    pub fn policy(&self) -> Arc<dyn Policy> {
        self.policy.load().as_ref().clone()
    }

    /// Makes `policy` the active one, atomically, for every clone of this
    /// registry; returns the one it replaces. Decisions already running finish
    /// on the old one.
    pub fn swap_policy(&self, policy: Arc<dyn Policy>) -> Arc<dyn Policy> {
        let info = policy.info().clone();
        let old = self.policy.swap(Arc::new(policy));
        tracing::info!(name = %info.name, sha256 = %info.sha256, "policy swapped");
        old.as_ref().clone()
    }

    /// Why the store cannot be written now, as the last write probe found
    /// (`prereg serve`'s heartbeat, each second); `None`: it can.
    pub fn write_fault(&self) -> Option<String> {
        self.write_fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Records what the last write probe found.
    pub fn set_write_fault(&self, fault: Option<String>) {
        let mut slot = self.write_fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *slot != fault {
            match &fault {
                Some(why) => tracing::error!("the store cannot be written: {why}"),
                None => tracing::info!("the store can be written again"),
            }
            *slot = fault;
        }
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The instance id (the audience of signed requests).
    pub fn instance_id(&self) -> Result<String, RegistryError> {
        self.read(|tx| tx.instance_id())?.ok_or(RegistryError::NotInitialised)
    }

    /// A registration by id.
    pub fn registration(&self, id: u64) -> Result<RegistrationRecord, RegistryError> {
        self.read(|tx| tx.registration(id))?.ok_or_else(|| RegistryError::NotFound(format!("registration {id}")))
    }

    /// Registrations by filter.
    pub fn registrations(&self, filter: &RegistrationFilter) -> Result<Vec<RegistrationRecord>, RegistryError> {
        self.read(|tx| tx.registrations(filter))
    }

    /// A token procedure by name.
    pub fn procedure(&self, name: &str) -> Result<Option<ProcedureRecord>, RegistryError> {
        Ok(self.storage.begin(TxKind::Read)?.procedure(name)?)
    }

    /// Every token procedure.
    pub fn procedures(&self) -> Result<Vec<ProcedureRecord>, RegistryError> {
        self.read(|tx| tx.procedures())
    }

    /// Every officer.
    pub fn officers(&self) -> Result<Vec<OfficerRecord>, RegistryError> {
        self.read(|tx| tx.officers())
    }

    /// An officer's public key by key id.
    pub fn officer_key(&self, kid: &str) -> Result<Option<PublicKey>, RegistryError> {
        let officer = self.read(|tx| tx.officer(kid))?;
        Ok(officer.and_then(|o| PublicKey::from_pem(&o.public_key_pem, &o.name).ok()))
    }

    /// Audit records after `after`, at most `limit`.
    pub fn audit_records(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, RegistryError> {
        self.read(|tx| tx.audit_records(after, limit))
    }

    /// Audit records after `after`, at most `limit`, of `domains` (`None`:
    /// every record).
    pub fn audit_records_of(
        &self,
        domains: Option<&[String]>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, RegistryError> {
        match domains {
            None => self.audit_records(after, limit),
            Some(domains) => self.read(|tx| tx.audit_records_in(domains, after, limit)),
        }
    }

    /// The newest audit records before `before` (`u64::MAX`: the newest of
    /// all), newest first, at most `limit`, of `domains` (`None`: every record).
    pub fn latest_audit_records(
        &self,
        domains: Option<&[String]>,
        before: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, RegistryError> {
        self.read(|tx| tx.latest_audit_records(domains, before, limit))
    }

    /// Every CA caller.
    pub fn callers(&self) -> Result<Vec<crate::store::CallerRecord>, RegistryError> {
        self.read(|tx| tx.callers())
    }

    /// A bulk import by id.
    pub fn import_record(&self, id: u64) -> Result<ImportRecord, RegistryError> {
        self.read(|tx| tx.import(id))?.ok_or_else(|| RegistryError::NotFound(format!("import {id}")))
    }

    /// The latest bulk imports, newest first.
    pub fn imports(&self, limit: u32) -> Result<Vec<ImportRecord>, RegistryError> {
        self.read(|tx| tx.imports(limit))
    }

    /// Verifies the whole audit log (the chain and every officer's signed
    /// request) and reports the first bad record.
    pub fn verify_audit(&self) -> Result<AuditVerification, RegistryError> {
        verify_audit_chain(self.storage.as_ref(), self.audit_keys.as_deref(), None)
    }

    /// [`Registry::verify_audit`], and that the log still holds what the
    /// signed checkpoint `note` counts (it needs the instance key: the
    /// data folder's `sealing.key`).
    pub fn verify_audit_against(&self, note: &str) -> Result<AuditVerification, RegistryError> {
        verify_audit_chain(self.storage.as_ref(), self.audit_keys.as_deref(), Some(note))
    }

    /// The instance's audit keys (from its sealing key).
    pub fn audit_keys(&self) -> Result<Arc<AuditKeys>, RegistryError> {
        self.audit_keys.clone().ok_or_else(|| RegistryError::Invalid {
            field: "sealing-key".into(),
            message: "checkpoints need the instance key (the data folder's sealing.key)".into(),
        })
    }

    /// The audit keys for a record this process appends, if it has them.
    pub(crate) fn audit_mac_keys(&self) -> Option<&AuditKeys> {
        self.audit_keys.as_deref()
    }

    /// A checkpoint of the audit log as it is now, signed by the instance key:
    /// (its size, the signed note).
    pub fn audit_checkpoint(&self) -> Result<(u64, String), RegistryError> {
        let keys = self.audit_keys()?;
        let mut tx = self.storage.begin(TxKind::Read)?;
        let instance = tx.instance_id()?.ok_or(RegistryError::NotInitialised)?;
        let (size, root) = match tx.audit_head()? {
            Some((seq, hash)) => (
                seq,
                audit::verify::hash_root(&hash).ok_or_else(|| {
                    crate::store::StoreError::Corrupt(format!("audit record {seq}'s hash is not SHA-256 hex"))
                })?,
            ),
            None => (0, [0; 32]),
        };
        let checkpoint = audit::checkpoint::Checkpoint { origin: audit::checkpoint::origin(&instance), size, root };
        Ok((size, checkpoint.sign(&keys)))
    }

    fn read<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T, crate::store::StoreError>) -> Result<T, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        Ok(f(tx.as_mut())?)
    }
}
