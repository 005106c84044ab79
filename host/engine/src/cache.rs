//! Precompiled policies, so that a restart does not recompile. An entry is
//! keyed by the component's SHA-256, the engine's compatibility hash (wasmtime
//! version, target, configuration) and the prereg version. Deserializing
//! native code is only sound for artifacts this program produced, so the
//! SHA-256 of every artifact is recorded in a [`Ledger`] (the store) when it
//! is written, and a file is deserialized only when its hash is the recorded
//! one: a file that was changed, or put there by anyone else, is compiled
//! anew and replaced.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::{EngineError, PolicyEngine, WasmPolicy, sha256_hex};

/// Where the hashes of the artifacts written are recorded.
pub trait Ledger: Send + Sync {
    /// The SHA-256 recorded for `key`.
    fn recorded(&self, key: &str) -> Option<String>;
    /// Records `sha256` for `key`.
    fn record(&self, key: &str, sha256: &str);
}

/// How a policy was prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Compiled from the component (and written to the cache).
    Compiled,
    /// Deserialized from a verified cache entry.
    FromCache,
}

/// A folder of precompiled policies.
pub struct PrecompiledCache {
    dir: PathBuf,
    ledger: Box<dyn Ledger>,
}

impl PrecompiledCache {
    /// A cache in `dir`, trusting only what `ledger` recorded.
    pub fn new(dir: impl Into<PathBuf>, ledger: Box<dyn Ledger>) -> Self {
        PrecompiledCache { dir: dir.into(), ledger }
    }

    /// The key of a component for this engine and this prereg.
    pub fn key(engine: &PolicyEngine, component_sha256: &str) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.engine().precompile_compatibility_hash().hash(&mut hasher);
        format!("{component_sha256}-{:016x}-{}", hasher.finish(), env!("CARGO_PKG_VERSION"))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The policy in `bytes`: from a verified cache entry, or compiled (and
    /// cached). The checks of [`WasmPolicy::new`] run either way.
    pub fn load(
        &self,
        engine: &PolicyEngine,
        bytes: &[u8],
        source: &str,
    ) -> Result<(WasmPolicy, Prepared), EngineError> {
        let facts = WasmPolicy::check(engine, bytes, source)?;
        let sha256 = sha256_hex(bytes);
        let key = Self::key(engine, &sha256);
        let path = self.path(&key);
        if let Some(component) = self.verified(engine, &key, &path) {
            return Ok((WasmPolicy::link(engine, component, facts, sha256, source)?, Prepared::FromCache));
        }
        let invalid = |e: wasmtime::Error| EngineError::Invalid { path: source.into(), message: format!("{e:#}") };
        let artifact = engine.engine().precompile_component(bytes).map_err(invalid)?;
        let component = deserialize(engine, &artifact).map_err(invalid)?;
        let policy = WasmPolicy::link(engine, component, facts, sha256, source)?;
        if let Err(e) = self.write(&key, &path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache the precompiled policy");
        }
        Ok((policy, Prepared::Compiled))
    }

    fn verified(&self, engine: &PolicyEngine, key: &str, path: &Path) -> Option<Component> {
        let recorded = self.ledger.recorded(key)?;
        let artifact = std::fs::read(path).ok()?;
        if sha256_hex(&artifact) != recorded {
            tracing::warn!(path = %path.display(), "a cached policy does not match its recorded hash: compiling anew");
            return None;
        }
        deserialize(engine, &artifact).ok()
    }

    fn write(&self, key: &str, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        write_private(&partial, artifact)?;
        std::fs::rename(&partial, path)?;
        self.ledger.record(key, &sha256_hex(artifact));
        Ok(())
    }
}

/// Writes a new file readable by its owner only, and syncs it.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Deserializes an artifact this program produced.
#[allow(unsafe_code)]
fn deserialize(engine: &PolicyEngine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `artifact` is either what `precompile_component` just returned,
    // or a cache file whose SHA-256 equals the one recorded when this program
    // wrote it (see the module documentation); wasmtime also checks that it
    // was compiled for this engine's configuration.
    unsafe { Component::deserialize(engine.engine(), artifact) }
}

/// A ledger in memory, for scratch runs and benchmarks whose cache folder
/// lives no longer than the process (a data folder records in its store).
#[derive(Default)]
pub struct MemoryLedger(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl Ledger for MemoryLedger {
    fn recorded(&self, key: &str) -> Option<String> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn record(&self, key: &str, sha256: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key.into(), sha256.into());
        }
    }
}
