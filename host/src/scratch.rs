//! A throwaway instance: a fresh SQLite store in memory, a temporary folder
//! for files, an instance id and an officer key that live as long as it does. `prereg
//! policy test` and `prereg policy bench` set up their data here, through
//! signed requests like any other, so the policy under test validates every
//! registration.

use std::sync::Arc;

use tempfile::TempDir;

use crate::policy::Policy;
use crate::registry::{self, Registry, RegistryError, WriteOutcome};
use crate::signing::{Algorithm, SigningKey, WriteRequest};
use crate::store::{SqliteStorage, Storage, StoreError};

/// Why a throwaway instance could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// The temporary folder.
    #[error("throwaway folder: {0}")]
    Folder(#[from] std::io::Error),
    /// The store.
    #[error("throwaway store: {0}")]
    Store(#[from] StoreError),
    /// The instance.
    #[error("throwaway instance: {0}")]
    Registry(#[from] RegistryError),
}

/// A throwaway instance deciding with one policy; removed when dropped.
pub struct Scratch {
    folder: TempDir,
    registry: Registry,
    key: SigningKey,
    instance: String,
    now: u64,
}

impl Scratch {
    /// A new instance at time `now`, deciding with `policy`, its store in memory.
    pub fn new(policy: Arc<dyn Policy>, now: u64) -> Result<Self, ScratchError> {
        let folder = tempfile::Builder::new().prefix("prereg-scratch-").tempdir()?;
        let storage = Arc::new(SqliteStorage::in_memory()?);
        Self::with_storage(folder, storage, policy, now)
    }

    /// The same with its store in a file of the temporary folder, as a data
    /// folder has it (write-ahead log, synchronous writes): for measurements.
    pub fn on_disk(policy: Arc<dyn Policy>, now: u64) -> Result<Self, ScratchError> {
        let folder = tempfile::Builder::new().prefix("prereg-scratch-").tempdir()?;
        let storage = Arc::new(SqliteStorage::open(&folder.path().join("scratch.sqlite3"))?);
        Self::with_storage(folder, storage, policy, now)
    }

    fn with_storage(
        folder: TempDir,
        storage: Arc<dyn Storage>,
        policy: Arc<dyn Policy>,
        now: u64,
    ) -> Result<Self, ScratchError> {
        let key = SigningKey::generate(Algorithm::EdDsa);
        let instance = registry::initialise(storage.as_ref(), "scratch", &key, now)?;
        let sealing = crate::sealing::SealingKey::load_or_create(&crate::DataDir::new(folder.path()))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let registry = Registry::new(storage, policy).with_sealing_key(Arc::new(sealing));
        Ok(Scratch { folder, registry, key, instance, now })
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The folder (for files to import).
    pub fn folder(&self) -> &std::path::Path {
        self.folder.path()
    }

    /// Signs `request` with the throwaway officer.
    pub fn sign(&self, request: WriteRequest) -> Result<String, RegistryError> {
        Ok(crate::signing::sign(&self.key, &self.instance, request, self.now, 60)?)
    }

    /// `password` sealed to this instance's key, as a signed request carries it.
    pub fn seal(&self, password: &str) -> Result<String, RegistryError> {
        let key = self.registry.sealing_key().ok_or(RegistryError::NotInitialised)?;
        crate::sealing::seal(&key.public_text(), password)
            .map_err(|e| RegistryError::Invalid { field: "password".into(), message: e.to_string() })
    }

    /// Signs an `import.csv` request for the file at `path`, its digest keyed
    /// with this instance's key as an officer's client keys it.
    pub fn sign_import(
        &self,
        path: &std::path::Path,
        procedure: &str,
        partial: bool,
        dry_run: bool,
    ) -> Result<String, RegistryError> {
        let key = self.registry.sealing_key().ok_or(RegistryError::NotInitialised)?;
        let (sha256, digest_key) = crate::import::signed_digest(path, &key.public_text())
            .map_err(|e| RegistryError::Invalid { field: "file".into(), message: e.to_string() })?;
        self.sign(WriteRequest::ImportCsv {
            procedure: procedure.into(),
            sha256,
            digest_key: Some(digest_key),
            partial,
            dry_run,
        })
    }

    /// Signs and submits a write.
    pub fn submit(&self, request: WriteRequest) -> Result<WriteOutcome, RegistryError> {
        let jws = self.sign(request)?;
        self.registry.submit(&jws, self.now)
    }
}
