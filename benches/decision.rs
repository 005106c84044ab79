//! The cost of a decision and of its parts, side by side on the same data in
//! one run.
//!
//! - `decision/native/*`: the default policy's rules (`prereg-rules`) linked
//!   into the host: the denominator.
//! - `decision/wasm/*`: the built-in component, a fresh store per decision.
//! - `decision/wasm-pooling/*`: the same with wasmtime's pooling allocator.
//! - `instantiate/{on-demand,pooling}`: a fresh store and instance, no call.
//! - `swap/prepare/{compile,deserialize}`: preparing a policy version from
//!   its `.wasm`, and from the precompiled cache.
//!
//! Every decision goes through `Registry::decide` (a dry run: one SQLite read
//! transaction and the indexed candidate lookup) on a dataset from
//! `prereg::dataset` (exact names, `*.zone` patterns, in-label wildcards, IP
//! and serial numbers) with its query mix (exact hits, pattern hits, misses)
//! spread over the whole dataset.
//!
//! `cargo bench -p prereg --bench decision` measures at 10k and 1M
//! registrations; `cargo test --benches` runs each benchmark once on small
//! datasets (1k and 5k, under the same names) so that they cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prereg::dataset::{self, SplitMix64};
use prereg::engine::cache::{Ledger, PrecompiledCache, Prepared};
use prereg::policy::{NativeDefaultPolicy, Policy};
use prereg::registry::{DecisionMode, EnrollmentInput, initialise};
use prereg::signing::{Algorithm, SigningKey};
use prereg::store::{NewRegistration, ProcedureRecord, SqliteStorage, Storage, TxKind};
use prereg::{Allocation, Limits, PolicyEngine, Registry, WasmPolicy};
use prereg_core::{Pattern, Protocol};

const NOW: u64 = 1_767_225_600;

/// `cargo bench` passes `--bench`; `cargo test --benches` does not.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The dataset sizes: (label, registrations).
fn sizes() -> [(&'static str, u64); 2] {
    if measuring() { [("10k", 10_000), ("1M", 1_000_000)] } else { [("10k", 1_000), ("1M", 5_000)] }
}

/// `n` registrations of `prereg::dataset`, written in one transaction.
fn store(n: u64) -> (tempfile::TempDir, Arc<SqliteStorage>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite3")).unwrap();
    let key = SigningKey::generate(Algorithm::EdDsa);
    initialise(&storage, "bench", &key, NOW).unwrap();
    let kid = key.public_key().kid();
    let mut tx = storage.begin(TxKind::Write).unwrap();
    tx.insert_procedure(&ProcedureRecord {
        name: "bench".into(),
        domain: "bench".into(),
        protocol: Protocol::Est,
        require_preregistration: true,
        allowed_domains: vec![],
        created_by: kid.clone(),
        created_at: NOW,
    })
    .unwrap();
    for i in 0..n {
        let (text, ip, serial) = dataset::registration(i, n);
        let pattern = Pattern::parse(&text).unwrap();
        tx.insert_registration(&NewRegistration {
            domain: "bench".into(),
            procedure: "bench".into(),
            index_key: pattern.index_key().encode(),
            pattern: pattern.into_string(),
            ip,
            serial,
            password_hash: None,
            expires_at: None,
            max_enrollments: None,
            created_by: kid.clone(),
            created_at: NOW,
            import: None,
        })
        .unwrap();
    }
    tx.commit().unwrap();
    (dir, Arc::new(storage))
}

/// The query mix, spread over the dataset.
fn queries(n: u64) -> Vec<EnrollmentInput> {
    let mut rng = SplitMix64::new(0x0062_656e_6368);
    (0..4096)
        .map(|_| {
            let (fqdn, ip, serial, _) = dataset::request(&mut rng, n);
            EnrollmentInput { procedure: "bench".into(), fqdn, ip, serial, password: None }
        })
        .collect()
}

fn decisions(c: &mut Criterion) {
    let limits = Limits::default();
    let on_demand = PolicyEngine::new(limits).unwrap();
    let pooling = PolicyEngine::with_allocation(limits, Allocation::Pooling { concurrent: 64 }).unwrap();
    let policies: [(&str, Arc<dyn Policy>); 3] = [
        ("native", Arc::new(NativeDefaultPolicy::default())),
        ("wasm", Arc::new(prereg::load_policy(&on_demand, None).unwrap())),
        ("wasm-pooling", Arc::new(prereg::load_policy(&pooling, None).unwrap())),
    ];
    let mut group = c.benchmark_group("decision");
    for (label, n) in sizes() {
        let (_dir, storage) = store(n);
        let inputs = queries(n);
        for (path, policy) in &policies {
            let registry = Registry::new(storage.clone(), policy.clone());
            // Sanity: the mix really has hits and misses, and no failures.
            let reports: Vec<_> =
                inputs.iter().map(|i| registry.decide(i.clone(), DecisionMode::DryRun, NOW).unwrap()).collect();
            let allowed = reports.iter().filter(|r| r.allowed).count();
            assert!(
                allowed > inputs.len() / 4 && allowed < inputs.len(),
                "{path}: {allowed} of {} allowed",
                inputs.len()
            );
            assert!(reports.iter().all(|r| r.reason != "policy-error"), "{path}: policy errors");
            let mut next = inputs.iter().cycle();
            group.bench_function(BenchmarkId::new(*path, label), |b| {
                b.iter(|| {
                    let input = next.next().unwrap().clone();
                    black_box(registry.decide(input, DecisionMode::DryRun, NOW).unwrap())
                })
            });
        }
    }
    group.finish();
}

fn instantiation(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("instantiate");
    for (label, allocation) in
        [("on-demand", Allocation::OnDemand), ("pooling", Allocation::Pooling { concurrent: 64 })]
    {
        let engine = PolicyEngine::with_allocation(limits, allocation).unwrap();
        let policy = prereg::load_policy(&engine, None).unwrap();
        group.bench_function(label, |b| b.iter(|| policy.instantiate_only().unwrap()));
    }
    group.finish();
}

/// The store's record of precompiled artifacts, in memory.
#[derive(Default)]
struct MemoryLedger(Mutex<HashMap<String, String>>);

impl Ledger for MemoryLedger {
    fn recorded(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap().get(key).cloned()
    }

    fn record(&self, key: &str, sha256: &str) {
        self.0.lock().unwrap().insert(key.into(), sha256.into());
    }
}

fn swap_prepare(c: &mut Criterion) {
    let engine = PolicyEngine::new(Limits::default()).unwrap();
    let bytes = prereg::builtin::DEFAULT_POLICY_COMPONENT;
    let dir = tempfile::tempdir().unwrap();
    let cache = PrecompiledCache::new(dir.path(), Box::new(MemoryLedger::default()));
    assert!(matches!(cache.load(&engine, bytes, "built-in").unwrap().1, Prepared::Compiled));
    let mut group = c.benchmark_group("swap/prepare");
    group.sample_size(10);
    group.bench_function("compile", |b| b.iter(|| black_box(WasmPolicy::new(&engine, bytes, "built-in").unwrap())));
    group.bench_function("deserialize", |b| {
        b.iter(|| {
            let (policy, how) = cache.load(&engine, bytes, "built-in").unwrap();
            assert!(matches!(how, Prepared::FromCache));
            black_box(policy)
        })
    });
    group.finish();
}

criterion_group!(benches, decisions, instantiation, swap_prepare);
criterion_main!(benches);
