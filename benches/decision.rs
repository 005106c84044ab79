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

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prereg::dataset;
use prereg::engine::cache::{MemoryLedger, PrecompiledCache, Prepared};
use prereg::policy::{NativeDefaultPolicy, Policy};
use prereg::registry::{DecisionMode, EnrollmentInput};
use prereg::store::{SqliteStorage, Storage, TxKind};
use prereg::{Allocation, Limits, PolicyEngine, Registry, WasmPolicy};

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
    dataset::initialise_populated(&storage, n, NOW).unwrap();
    (dir, Arc::new(storage))
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
        let inputs = dataset::enrollment_inputs(n, 4096);
        for (path, policy) in &policies {
            // As `prereg serve` decides: candidates from the in-memory index.
            let registry = Registry::new(storage.clone(), policy.clone()).with_memory_index().unwrap();
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

/// Where the time of the WebAssembly boundary goes, with the probe policy
/// (`tests/guests/probe`) on the pooling allocator, as `prereg serve` runs:
/// each benchmark is a whole dry-run decision through `Registry::decide`, so
/// compare them with `boundary/call-empty` (instance, request in, decision
/// out, and the host's fixed work) and `boundary/instantiate` (no call).
fn boundary(c: &mut Criterion) {
    let engine = PolicyEngine::with_allocation(Limits::default(), Allocation::Pooling { concurrent: 8 }).unwrap();
    let probe: Arc<dyn Policy> = Arc::new(
        prereg::load_policy(&engine, Some(std::path::Path::new(prereg_test_artifacts::PROBE_POLICY))).unwrap(),
    );
    // One key holding K in-label patterns, for each K: a lookup returns K candidates.
    let (_dir, storage) = store(0);
    let candidate_counts = [1u64, 64, 1024];
    {
        let mut tx = storage.begin(TxKind::Write).unwrap();
        let kid = tx.officers().unwrap()[0].kid.clone();
        for k in candidate_counts {
            for j in 0..k {
                let pattern = prereg_core::Pattern::parse(&format!("c{j}-*.k{k}.probe.example")).unwrap();
                tx.insert_registration(&prereg::store::NewRegistration {
                    password_sealed: None,
                    domain: dataset::PROCEDURE.into(),
                    procedure: dataset::PROCEDURE.into(),
                    index_key: pattern.index_key().encode(),
                    pattern: pattern.into_string(),
                    ip: None,
                    serial: None,
                    password_hash: None,
                    expires_at: None,
                    max_enrollments: None,
                    created_by: kid.clone(),
                    created_at: NOW,
                    import: None,
                    staged: false,
                })
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let registry = Registry::new(storage, probe.clone()).with_memory_index().unwrap();
    let decide = |fqdn: String, serial: Option<String>, expect: &str| {
        let input =
            EnrollmentInput { procedure: dataset::PROCEDURE.into(), fqdn, ip: None, serial, ..Default::default() };
        let report = registry.decide(input, DecisionMode::DryRun, NOW).unwrap();
        assert!(report.explanation.starts_with(expect), "{expect}: {report:?}");
        report
    };
    let mut group = c.benchmark_group("boundary");
    let wasm = prereg::load_policy(&engine, Some(std::path::Path::new(prereg_test_artifacts::PROBE_POLICY))).unwrap();
    group.bench_function("instantiate", |b| b.iter(|| wasm.instantiate_only().unwrap()));
    group.bench_function("call-empty", |b| b.iter(|| black_box(decide("empty.probe.example".into(), None, ""))));
    // The request grows (its serial number: 64 B to 4000 B; the limit is 4096).
    for size in [64usize, 1024, 4000] {
        group.bench_function(BenchmarkId::new("request-bytes", size), |b| {
            b.iter(|| black_box(decide("empty.probe.example".into(), Some("s".repeat(size)), "")))
        });
    }
    // Guest→host: N calls of the cheapest import (`now`).
    for n in [100u32, 1000] {
        group.bench_function(BenchmarkId::new("imports", n), |b| {
            b.iter(|| black_box(decide("imports.probe.example".into(), Some(n.to_string()), &format!("{n} imports"))))
        });
    }
    // Host→guest lists: one lookup answering K candidates.
    for k in candidate_counts {
        group.bench_function(BenchmarkId::new("candidates", k), |b| {
            b.iter(|| black_box(decide(format!("candidates-x.k{k}.probe.example"), None, &format!("{k} candidates"))))
        });
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

criterion_group!(benches, decisions, boundary, instantiation, swap_prepare);
criterion_main!(benches);
