//! Opening an instance: one place that turns a data folder into a running
//! registry, with its store (SQLite in the folder, or the PostgreSQL its
//! settings name), its sealing key (checked against the one the store
//! records), the precompiled-policy cache and the active policy.

use std::path::Path;
use std::sync::Arc;

use crate::data_dir::DataDir;
use crate::engine::{self, EngineError, Limits, PolicyEngine, WasmPolicy};
use crate::registry::{self, Registry};
use crate::{builtin, policy, sealing, store};

/// An open instance: its data folder, its store, its sealing key and its
/// registry (which holds the policy).
pub struct Instance {
    data: DataDir,
    storage: Arc<dyn store::Storage>,
    sealing: Arc<sealing::SealingKey>,
    registry: Registry,
}

impl Instance {
    /// Opens the instance of a data folder, creating the folder and the
    /// database if needed, with the policy at `policy` or the active one.
    ///
    /// Without `policy`, the active version recorded in the store (`prereg
    /// policy activate`) is loaded, or the built-in default if none is.
    pub fn open(data: &DataDir, policy: Option<&Path>) -> Result<Self, OpenError> {
        Self::open_with(data, policy, Limits::default(), engine::Allocation::OnDemand)
    }

    /// [`Instance::open`] with the policy sandbox's limits and its instance
    /// allocation (pooling for a service, on demand for one-shot commands).
    pub fn open_with(
        data: &DataDir,
        policy: Option<&Path>,
        limits: Limits,
        allocation: engine::Allocation,
    ) -> Result<Self, OpenError> {
        let folder_error = |source| OpenError::DataDir { path: data.root().display().to_string(), source };
        data.ensure().map_err(folder_error)?;
        let storage = data.store_location().map_err(folder_error)?.open()?;
        let engine = PolicyEngine::with_allocation(limits, allocation)?;
        let cache =
            Arc::new(engine::cache::PrecompiledCache::new(data.cache(), Box::new(StoreLedger(storage.clone()))));
        let active: Arc<dyn policy::Policy> = match policy {
            Some(path) => {
                let shown = path.display().to_string();
                let bytes = std::fs::read(path).map_err(|source| EngineError::Read { path: shown.clone(), source })?;
                Arc::new(cache.load(&engine, &bytes, &shown)?.0)
            }
            None => {
                let mut tx = storage.begin(store::TxKind::Read)?;
                let stored = match tx.active_policy()? {
                    Some(sha) => match tx.policy_component(&sha)? {
                        Some(bytes) => Some((tx.policy_versions()?.into_iter().find(|p| p.sha256 == sha), sha, bytes)),
                        None => None,
                    },
                    None => None,
                };
                drop(tx);
                match stored {
                    Some((record, sha, bytes)) => {
                        let policy: Arc<dyn policy::Policy> =
                            Arc::new(cache.load(&engine, &bytes, &format!("sha256:{}", &sha[..12.min(sha.len())]))?.0);
                        match record {
                            Some(r) => registry::labelled(policy, &r.name, &r.version),
                            None => policy,
                        }
                    }
                    None => Arc::new(cache.load(&engine, builtin::DEFAULT_POLICY_COMPONENT, builtin::SOURCE)?.0),
                }
            }
        };
        let loader: Arc<registry::PolicyLoader> = Arc::new(move |bytes: &[u8], source: &str| {
            cache
                .load(&engine, bytes, source)
                .map(|(p, _)| Arc::new(p) as Arc<dyn policy::Policy>)
                .map_err(|e| e.to_string())
        });
        let sealing = Arc::new(instance_sealing_key(data, storage.as_ref())?);
        let registry = Registry::new(storage.clone(), active).with_loader(loader).with_sealing_key(sealing.clone());
        // The shadow policy, if one is set, decides beside the active one.
        if let Err(e) = registry.follow_store(false) {
            tracing::warn!(error = %e, "the shadow policy recorded in the store cannot be loaded; shadow mode is off");
        }
        Ok(Instance { data: data.clone(), storage, sealing, registry })
    }

    /// The data folder.
    pub fn data_dir(&self) -> &DataDir {
        &self.data
    }

    /// The store.
    pub fn storage(&self) -> &Arc<dyn store::Storage> {
        &self.storage
    }

    /// The sealing key of the passwords CMP needs.
    pub fn sealing_key(&self) -> &Arc<sealing::SealingKey> {
        &self.sealing
    }

    /// The registry (cheap to clone: it shares the store and the policy).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry alone.
    pub fn into_registry(self) -> Registry {
        self.registry
    }
}

/// [`Instance::open`], for the registry alone.
pub fn open_registry(data: &DataDir, policy: Option<&Path>) -> Result<Registry, OpenError> {
    Instance::open(data, policy).map(Instance::into_registry)
}

/// [`Instance::open_with`], for the registry alone.
pub fn open_registry_with(
    data: &DataDir,
    policy: Option<&Path>,
    limits: Limits,
    allocation: engine::Allocation,
) -> Result<Registry, OpenError> {
    Instance::open_with(data, policy, limits, allocation).map(Instance::into_registry)
}

/// Why an instance could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The policy.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The instance's sealing key.
    #[error(transparent)]
    Sealing(#[from] sealing::SealError),
    /// The data folder.
    #[error("data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Loads the policy component at `path`, or the built-in default policy.
pub fn load_policy(engine: &PolicyEngine, path: Option<&Path>) -> Result<WasmPolicy, EngineError> {
    match path {
        None => WasmPolicy::builtin(engine),
        Some(path) => WasmPolicy::from_file(engine, path),
    }
}

/// The data folder's sealing key, checked against the one the store
/// records: every node of a cluster must open the same sealed passwords, so
/// a folder without the instance's key, or with another, is refused rather
/// than given a new one. The first open records it.
fn instance_sealing_key(data: &DataDir, storage: &dyn store::Storage) -> Result<sealing::SealingKey, OpenError> {
    let recorded = storage.begin(store::TxKind::Read)?.sealing_key()?;
    let file = data.sealing_key();
    let mismatch =
        |message: String| OpenError::Sealing(sealing::SealError::KeyFile { path: file.display().to_string(), message });
    match recorded {
        Some(public) => {
            if !file.exists() {
                return Err(mismatch(format!(
                    "missing; this instance's sealing key is {public}: copy sealing.key from the data folder of \
                     another node (or the first one)"
                )));
            }
            let key = sealing::SealingKey::load_or_create(data)?;
            if key.public_text() != public {
                return Err(mismatch(format!(
                    "holds the key {}, but this instance's is {public}: copy sealing.key from another node",
                    key.public_text()
                )));
            }
            Ok(key)
        }
        None => {
            let key = sealing::SealingKey::load_or_create(data)?;
            let mut tx = storage.begin(store::TxKind::Write)?;
            // Another node may have recorded its key meanwhile.
            match tx.sealing_key()? {
                Some(public) if public != key.public_text() => {
                    return Err(mismatch(format!("holds another key than this instance's ({public})")));
                }
                Some(_) => {}
                None => {
                    if tx.instance_id()?.is_some() {
                        tx.set_sealing_key(&key.public_text())?;
                        tx.commit()?;
                    }
                }
            }
            Ok(key)
        }
    }
}

/// The store as the ledger of precompiled artifacts.
struct StoreLedger(Arc<dyn store::Storage>);

impl engine::cache::Ledger for StoreLedger {
    fn recorded(&self, key: &str) -> Option<String> {
        let mut tx = self.0.begin(store::TxKind::Read).ok()?;
        tx.precompiled(key).ok().flatten()
    }

    fn record(&self, key: &str, sha256: &str) {
        let result = self.0.begin(store::TxKind::Write).and_then(|mut tx| {
            tx.record_precompiled(key, sha256)?;
            tx.commit()
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record a precompiled policy");
        }
    }
}
