//! The precompiled-policy cache: a restart deserializes instead of compiling,
//! and only artifacts whose hash this program recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prereg::engine::cache::{Ledger, PrecompiledCache, Prepared};
use prereg::policy::Policy as _;

use crate::common::{Fixture, engine, req};

#[derive(Default, Clone)]
struct MemoryLedger(Arc<Mutex<HashMap<String, String>>>);

impl Ledger for MemoryLedger {
    fn recorded(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn record(&self, key: &str, sha256: &str) {
        self.0.lock().unwrap().insert(key.into(), sha256.into());
    }
}

#[test]
fn a_second_load_deserializes_and_a_tampered_or_foreign_file_is_compiled_anew() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = MemoryLedger::default();
    let cache = PrecompiledCache::new(dir.path(), Box::new(ledger.clone()));
    let bytes = prereg::builtin::DEFAULT_POLICY_COMPONENT;
    let (first, how) = cache.load(engine(), bytes, "built-in").unwrap();
    assert_eq!(how, Prepared::Compiled);
    let (second, how) = cache.load(engine(), bytes, "built-in").unwrap();
    assert_eq!(how, Prepared::FromCache);
    assert_eq!(first.info(), second.info());
    // The policy from the cache decides like the compiled one.
    let f = Fixture::with_policy(Arc::new(second));
    f.procedure("p", "D", "scep", &[]);
    f.register("p", "dev.example.com").unwrap();
    assert!(f.check(req("p", "dev.example.com")).allowed);

    // A changed artifact is not deserialized: it is compiled again and replaced.
    let key = PrecompiledCache::key(engine(), &first.info().sha256);
    let file = dir.path().join(format!("{key}.cwasm"));
    let mut artifact = std::fs::read(&file).unwrap();
    let middle = artifact.len() / 2;
    artifact[middle] ^= 0xff;
    std::fs::write(&file, &artifact).unwrap();
    assert_eq!(cache.load(engine(), bytes, "built-in").unwrap().1, Prepared::Compiled);
    assert_eq!(cache.load(engine(), bytes, "built-in").unwrap().1, Prepared::FromCache);
    // A file nobody recorded (another cache, or put there by hand) is not trusted.
    let other = PrecompiledCache::new(dir.path(), Box::new(MemoryLedger::default()));
    assert_eq!(other.load(engine(), bytes, "built-in").unwrap().1, Prepared::Compiled);
    // The checks made before compiling still run for cached components.
    assert!(cache.load(engine(), b"\0asm\x01\0\0\0", "core.wasm").is_err());
}

#[test]
fn opening_a_data_folder_caches_the_active_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = prereg::DataDir::new(dir.path().join("data"));
    let registry = prereg::open_registry(&data, None).unwrap();
    let sha = registry.policy().info().sha256.clone();
    let key = PrecompiledCache::key(engine(), &sha);
    assert!(data.cache().join(format!("{key}.cwasm")).exists());
    let mut tx = registry.storage().begin(prereg::store::TxKind::Read).unwrap();
    assert!(tx.precompiled(&key).unwrap().is_some(), "the artifact's hash is recorded in the store");
    drop(tx);
    drop(registry);
    let again = prereg::open_registry(&data, None).unwrap();
    assert_eq!(again.policy().info().sha256, sha);
}
