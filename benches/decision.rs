//! Enrollment decisions, native against WebAssembly, side by side on the same
//! data in one run: `decision/native/*` links the default policy's code into
//! the host; `decision/wasm/*` runs the built-in component, a fresh store per
//! decision. Both go through `Registry::decide` (a dry run: one SQLite read
//! transaction and the indexed candidate lookup), so the ratio is the cost of
//! the WebAssembly boundary and instantiation.
//!
//! `cargo bench -p prereg --bench decision` measures; `cargo test --release`
//! runs each benchmark once so that it cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prereg::policy::{NativeDefaultPolicy, Policy};
use prereg::registry::{DecisionMode, EnrollmentInput, initialise};
use prereg::signing::{Algorithm, SigningKey};
use prereg::store::{NewRegistration, ProcedureRecord, SqliteStorage, Storage, TxKind};
use prereg::{Limits, PolicyEngine, Registry};
use prereg_core::{Pattern, Protocol};

const NOW: u64 = 1_767_225_600;

/// `n` registrations in domain D: 70% exact names, 20% `*.zone` patterns,
/// 10% `serial-*.zone`, over `n / 100` zones.
fn dataset(n: usize) -> (tempfile::TempDir, Arc<SqliteStorage>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite3")).unwrap();
    let key = SigningKey::generate(Algorithm::EdDsa);
    initialise(&storage, "bench", &key, NOW).unwrap();
    let kid = key.public_key().kid();
    let mut tx = storage.begin(TxKind::Write).unwrap();
    tx.insert_procedure(&ProcedureRecord {
        name: "p".into(),
        domain: "D".into(),
        protocol: Protocol::Scep,
        require_preregistration: true,
        allowed_domains: vec![],
        created_by: kid.clone(),
        created_at: NOW,
    })
    .unwrap();
    let zones = (n / 100).max(1);
    for i in 0..n {
        let zone = format!("zone{}.example.com", i % zones);
        let text = match i % 10 {
            0..=6 => format!("dev{i}.{zone}"),
            7 | 8 => format!("*.sub{i}.{zone}"),
            _ => format!("serial-*.s{i}.{zone}"),
        };
        let pattern = Pattern::parse(&text).unwrap();
        tx.insert_registration(&NewRegistration {
            domain: "D".into(),
            procedure: "p".into(),
            pattern: pattern.as_str().into(),
            index_key: pattern.index_key().encode(),
            ip: None,
            serial: None,
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

/// Exact hits, wildcard hits and misses, spread over the dataset.
fn queries(n: usize) -> Vec<String> {
    let zones = (n / 100).max(1);
    (0..64)
        .map(|q| {
            let i = (q * 7919) % n;
            let zone = format!("zone{}.example.com", i % zones);
            match q % 4 {
                0 | 1 => format!("dev{}.{zone}", i - i % 10),
                2 => format!("router.sub{}.{zone}", i - i % 10 + 7),
                _ => format!("nobody{i}.{zone}"),
            }
        })
        .collect()
}

fn decisions(c: &mut Criterion) {
    let engine = PolicyEngine::new(Limits::default()).unwrap();
    let wasm: Arc<dyn Policy> = Arc::new(prereg::load_policy(&engine, None).unwrap());
    let native: Arc<dyn Policy> = Arc::new(NativeDefaultPolicy::default());
    let mut group = c.benchmark_group("decision");
    for (label, n) in [("10k", 10_000)] {
        let (_dir, storage) = dataset(n);
        let names = queries(n);
        for (path, policy) in [("native", native.clone()), ("wasm", wasm.clone())] {
            let registry = Registry::new(storage.clone(), policy);
            // Sanity: the mix really has hits and misses.
            let allowed =
                names.iter().filter(|f| registry.decide(input(f), DecisionMode::DryRun, NOW).unwrap().allowed).count();
            assert!(allowed > 0 && allowed < names.len(), "{allowed} of {} allowed", names.len());
            let mut next = names.iter().cycle();
            group.bench_function(BenchmarkId::new(path, label), |b| {
                b.iter(|| {
                    let fqdn = next.next().unwrap();
                    black_box(registry.decide(input(fqdn), DecisionMode::DryRun, NOW).unwrap())
                })
            });
        }
    }
    group.finish();
}

fn input(fqdn: &str) -> EnrollmentInput {
    EnrollmentInput { procedure: "p".into(), fqdn: fqdn.into(), ..Default::default() }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
