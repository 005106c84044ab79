//! The storage backends side by side in one run: SQLite (the embedded
//! default) against PostgreSQL (the cluster backend), on the same dataset.
//!
//! - `backend/decision/{sqlite,postgres}/N`: a dry-run decision through
//!   `Registry::decide` with the in-memory index and the built-in policy on
//!   the pooling allocator, as `prereg serve` decides. The index is in
//!   memory on both, so what differs is the decision's read transaction.
//! - `backend/register/{sqlite,postgres}`: one signed registration write
//!   (verify, validate with the policy, insert, audit, commit), one writer.
//! - `backend/register/postgres-3-nodes`: three registries, each with a pool
//!   of its own (three nodes), writing at once; time per write, all nodes
//!   together. Writes are serialized cluster-wide by design (one audit
//!   chain), so this shows what three writers cost, not a speed-up.
//!
//! PostgreSQL comes from `PREREG_BENCH_POSTGRES` or `PREREG_TEST_POSTGRES`
//! (a URL to the server's `postgres` database; `.ci/postgres start` makes
//! one); without either, only the SQLite half runs. `cargo test --benches`
//! runs each once on a small dataset.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prereg::dataset;
use prereg::policy::Policy;
use prereg::registry::DecisionMode;
use prereg::signing::{self, SigningKey, WriteRequest};
use prereg::store::{PostgresStorage, SqliteStorage, Storage};
use prereg::{Allocation, Limits, PolicyEngine, Registry};

const NOW: u64 = 1_767_225_600;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn size() -> (&'static str, u64) {
    if measuring() { ("100k", 100_000) } else { ("1k", 1_000) }
}

fn admin_url() -> Option<String> {
    let url = std::env::var("PREREG_BENCH_POSTGRES").or_else(|_| std::env::var("PREREG_TEST_POSTGRES")).ok()?;
    (!url.is_empty()).then_some(url)
}

/// A database of its own, dropped at the end.
struct BenchDatabase {
    admin: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    fn create(admin: &str) -> Self {
        let mut id = [0u8; 6];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let name = format!("prereg_bench_{}", prereg::audit::hex(&id));
        let mut client = postgres::Client::connect(admin, postgres::NoTls).unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let root = admin.rsplit_once('/').map_or(admin, |(root, _)| root);
        BenchDatabase { admin: admin.to_owned(), url: format!("{root}/{name}"), name }
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// An initialised store with `n` registrations of `prereg::dataset`.
fn populate(storage: &dyn Storage, n: u64) -> (SigningKey, String) {
    dataset::initialise_populated(storage, n, NOW).unwrap()
}

struct Backend {
    label: &'static str,
    storage: Arc<dyn Storage>,
    key: SigningKey,
    instance: String,
    _keep: Box<dyn std::any::Any>,
}

fn backends(n: u64) -> Vec<Backend> {
    let mut all = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&dir.path().join("bench.sqlite3")).unwrap());
    let (key, instance) = populate(sqlite.as_ref(), n);
    all.push(Backend { label: "sqlite", storage: sqlite, key, instance, _keep: Box::new(dir) });
    match admin_url() {
        Some(admin) => {
            let db = BenchDatabase::create(&admin);
            let pg: Arc<dyn Storage> = Arc::new(PostgresStorage::open(&db.url).unwrap());
            let (key, instance) = populate(pg.as_ref(), n);
            all.push(Backend { label: "postgres", storage: pg, key, instance, _keep: Box::new(db) });
        }
        None => eprintln!("no PostgreSQL (PREREG_BENCH_POSTGRES / PREREG_TEST_POSTGRES): SQLite only"),
    }
    all
}

fn registry(storage: Arc<dyn Storage>, policy: Arc<dyn Policy>) -> Registry {
    Registry::new(storage, policy).with_memory_index().unwrap()
}

fn register(registry: &Registry, key: &SigningKey, instance: &str, fqdn: &str) {
    let request = WriteRequest::CreateRegistration {
        password_sealed: None,
        procedure: dataset::PROCEDURE.into(),
        fqdn: fqdn.into(),
        ip: None,
        serial: None,
        password_hash: None,
        valid_days: None,
        max_enrollments: None,
    };
    let jws = signing::sign(key, instance, request, NOW, 300).unwrap();
    registry.submit(&jws, NOW).unwrap();
}

fn backend(c: &mut Criterion) {
    let engine = PolicyEngine::with_allocation(Limits::default(), Allocation::Pooling { concurrent: 16 }).unwrap();
    let policy: Arc<dyn Policy> = Arc::new(prereg::load_policy(&engine, None).unwrap());
    let (label, n) = size();
    let queries = dataset::enrollment_inputs(n, 4096);
    let backends = backends(n);
    let written = AtomicU64::new(0);
    let mut group = c.benchmark_group("backend");
    for b in &backends {
        let registry = registry(b.storage.clone(), policy.clone());
        let mut next = 0usize;
        group.bench_function(BenchmarkId::new(format!("decision/{}", b.label), label), |bench| {
            bench.iter(|| {
                next = (next + 1) % queries.len();
                black_box(registry.decide(queries[next].clone(), DecisionMode::DryRun, NOW).unwrap())
            })
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("register/{}", b.label), |bench| {
            bench.iter(|| {
                let i = written.fetch_add(1, Ordering::Relaxed);
                register(&registry, &b.key, &b.instance, &format!("w{i}.bench-writes.example"));
            })
        });
    }
    if let Some(pg) = backends.iter().find(|b| b.label == "postgres") {
        // Three nodes: three registries with pools of their own.
        let nodes: Vec<Registry> = (0..3)
            .map(|_| {
                let storage = pg_clone(pg);
                registry(storage, policy.clone())
            })
            .collect();
        let (key, instance) = (&pg.key, pg.instance.as_str());
        group.bench_function("register/postgres-3-nodes", |bench| {
            bench.iter_custom(|iters| {
                let per_node = iters.div_ceil(3);
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for node in &nodes {
                        let written = &written;
                        scope.spawn(move || {
                            for _ in 0..per_node {
                                let i = written.fetch_add(1, Ordering::Relaxed);
                                register(node, key, instance, &format!("w{i}.bench-writes.example"));
                            }
                        });
                    }
                });
                // Time per write, all nodes together.
                started.elapsed().mul_f64(iters as f64 / (per_node * 3) as f64)
            })
        });
    }
    group.finish();
}

/// Another storage (a pool of its own) on the database of `pg`.
fn pg_clone(pg: &Backend) -> Arc<dyn Storage> {
    let db = pg._keep.downcast_ref::<BenchDatabase>().unwrap();
    Arc::new(PostgresStorage::open(&db.url).unwrap())
}

criterion_group!(benches, backend);
criterion_main!(benches);
