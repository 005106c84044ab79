//! Dry-run decisions in a loop, for a profiler: `N=1000000 K=200000
//! P=native|wasm|instantiate target/release/examples/decision_profile` builds a dataset
//! of N registrations (as `benches/decision.rs` does), warms up, then makes
//! K decisions in `run`, which `valgrind --tool=callgrind
//! --toggle-collect=*decision_profile::run*` or `perf record` can single out.
//! `P=instantiate` makes K fresh instances of the policy instead, in
//! `instantiate` (no dataset). `POLICY=FILE.wasm` runs that component instead
//! of the built-in policy (`P=wasm` and `P=instantiate`), to compare two
//! builds of a policy with the same host.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use prereg::dataset;
use prereg::policy::{NativeDefaultPolicy, Policy};
use prereg::registry::{DecisionMode, EnrollmentInput};
use prereg::store::SqliteStorage;
use prereg::{Allocation, Limits, PolicyEngine, Registry};

const NOW: u64 = 1_767_225_600;

#[inline(never)]
fn run(registry: &Registry, inputs: &[EnrollmentInput], k: usize) {
    for i in 0..k {
        let input = inputs[i % inputs.len()].clone();
        black_box(registry.decide(input, DecisionMode::DryRun, NOW).unwrap());
    }
}

#[inline(never)]
fn instantiate(policy: &prereg::WasmPolicy, k: usize) {
    for _ in 0..k {
        policy.instantiate_only().unwrap();
    }
}

fn main() {
    let var = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let n = var("N", 10_000) as u64;
    let k = var("K", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite3")).unwrap();
    dataset::initialise_populated(&storage, n, NOW).unwrap();
    let policy: Arc<dyn Policy> = if std::env::var("P").as_deref() == Ok("wasm") {
        let pooling = PolicyEngine::with_allocation(Limits::default(), Allocation::Pooling { concurrent: 64 }).unwrap();
        let file = std::env::var_os("POLICY").map(std::path::PathBuf::from);
        Arc::new(prereg::load_policy(&pooling, file.as_deref()).unwrap())
    } else {
        Arc::new(NativeDefaultPolicy::default())
    };
    if std::env::var("P").as_deref() == Ok("instantiate") {
        let pooling = PolicyEngine::with_allocation(Limits::default(), Allocation::Pooling { concurrent: 64 }).unwrap();
        let file = std::env::var_os("POLICY").map(std::path::PathBuf::from);
        let policy = prereg::load_policy(&pooling, file.as_deref()).unwrap();
        instantiate(&policy, 4096);
        let started = std::time::Instant::now();
        instantiate(&policy, k);
        eprintln!("{:.2} µs per instantiation", started.elapsed().as_secs_f64() * 1e6 / k as f64);
        return;
    }
    let inputs = dataset::enrollment_inputs(n, 4096);
    let registry = Registry::new(Arc::new(storage), policy).with_memory_index().unwrap();
    run(&registry, &inputs, 4096);
    let started = std::time::Instant::now();
    run(&registry, &inputs, k);
    eprintln!("{:.2} µs per decision", started.elapsed().as_secs_f64() * 1e6 / k as f64);
}
