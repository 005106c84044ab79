//! Bulk import against bare SQLite, side by side in one run on the same rows.
//!
//! - `import/csv/{rows}`: `Registry::import` of a CSV file from
//!   `prereg::dataset` (all or nothing): the signed request, the file scan and
//!   its SHA-256, every row validated by the built-in policy component,
//!   canonicalized, checked for duplicates, written with its audit record,
//!   and the change log that keeps candidate indexes in step.
//! - `import/sqlite-baseline/{rows}`: the same rows, already canonical,
//!   inserted into the same `registrations` table (same indexes) of a fresh
//!   prereg database, with the store's connection settings, in one
//!   transaction with one prepared statement: what the storage alone costs.
//!
//! Each iteration imports into a fresh database (made outside the timing).
//! After each group the bench prints the peak resident memory of the
//! iterations, which stays flat as the file grows because the file is
//! streamed, never loaded.
//!
//! `cargo bench -p prereg --bench import` measures 1M rows
//! (`PREREG_BENCH_IMPORT_ROWS` for another size); `cargo test --benches` runs
//! each once on 2,000 rows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use prereg::dataset;
use prereg::import::{ImportProgress, RowError};
use prereg::registry::{ImportFile, initialise};
use prereg::signing::{Algorithm, SigningKey, WriteRequest};
use prereg::store::{ImportStatus, SqliteStorage, Storage, TxKind};
use prereg::{Limits, PolicyEngine, Registry};

const NOW: u64 = 1_767_225_600;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Rows of the file: 1M when measuring, 2,000 in `cargo test --benches`.
fn rows() -> u64 {
    if !measuring() {
        return 2_000;
    }
    std::env::var("PREREG_BENCH_IMPORT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A fresh instance with the token procedure of the dataset.
struct Fresh {
    _dir: tempfile::TempDir,
    storage: Arc<SqliteStorage>,
    key: SigningKey,
    instance: String,
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite3")).unwrap();
    let key = SigningKey::generate(Algorithm::EdDsa);
    let instance = initialise(&storage, "bench", &key, NOW).unwrap();
    let mut tx = storage.begin(TxKind::Write).unwrap();
    dataset::populate(tx.as_mut(), 0, &key.public_key().kid(), NOW).unwrap();
    tx.commit().unwrap();
    Fresh { _dir: dir, storage: Arc::new(storage), key, instance }
}

/// Forgets the process's peak resident memory so far (Linux), so that the
/// next reading is the peak of what runs after; returns the memory now.
fn reset_peak_rss() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    prereg::bench::current_rss().unwrap_or(0)
}

fn report_peak(what: &str, before: u64) {
    if let Some(peak) = prereg::bench::peak_rss() {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        eprintln!("{what}: peak resident memory {:.1} MiB ({:.1} MiB before it ran)", mib(peak), mib(before));
    }
}

fn import(c: &mut Criterion) {
    let n = rows();
    let files = tempfile::tempdir().unwrap();
    let csv = files.path().join("rows.csv");
    dataset::write_csv(&csv, n).unwrap();
    let sealing = Arc::new(prereg::sealing::SealingKey::load_or_create(&prereg::DataDir::new(files.path())).unwrap());
    let (sha256, digest_key) = prereg::import::signed_digest(&csv, &sealing.public_text()).unwrap();
    let engine = PolicyEngine::new(Limits::default()).unwrap();
    let policy: Arc<dyn prereg::policy::Policy> = Arc::new(prereg::load_policy(&engine, None).unwrap());
    // The baseline's rows: what the import stores, computed outside the timing.
    let canonical: Vec<(String, String, Option<String>, Option<String>)> = (0..n)
        .filter_map(|i| {
            let (text, ip, serial) = dataset::registration(i, n);
            let pattern = prereg_core::Pattern::parse(&text).ok()?;
            Some((pattern.index_key().encode(), pattern.into_string(), ip, serial))
        })
        .collect();

    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));

    let before = reset_peak_rss();
    group.bench_function(BenchmarkId::new("csv", label(n)), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let f = fresh();
                let registry = Registry::new(f.storage.clone(), policy.clone()).with_sealing_key(sealing.clone());
                let request = WriteRequest::ImportCsv {
                    procedure: dataset::PROCEDURE.into(),
                    sha256: sha256.clone(),
                    digest_key: Some(digest_key.clone()),
                    partial: false,
                    dry_run: false,
                };
                let jws = prereg::signing::sign(&f.key, &f.instance, request, NOW, 300).unwrap();
                let mut bad: Vec<RowError> = Vec::new();
                let started = Instant::now();
                let record = registry
                    .import(
                        &jws,
                        ImportFile { path: &csv, name: "rows.csv" },
                        NOW,
                        Arc::new(ImportProgress::new()),
                        &mut bad,
                    )
                    .unwrap();
                total += started.elapsed();
                assert_eq!((record.status, record.created, bad.len()), (ImportStatus::Completed, n, 0), "{bad:?}");
            }
            total
        })
    });
    report_peak(&format!("import/csv/{}", label(n)), before);

    let before = reset_peak_rss();
    group.bench_function(BenchmarkId::new("sqlite-baseline", label(n)), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let f = fresh();
                let kid = f.key.public_key().kid();
                let database = f._dir.path().join("bench.sqlite3");
                let mut conn = rusqlite::Connection::open(&database).unwrap();
                // Bare: the store's connection settings, none of its code.
                conn.execute_batch(prereg::store::sqlite::CONNECTION_PRAGMAS).unwrap();
                let started = Instant::now();
                let tx = conn.transaction().unwrap();
                {
                    let mut insert = tx
                        .prepare(
                            "INSERT INTO registrations (domain, procedure, pattern, index_key, ip, serial, \
                             max_enrollments, state, created_by, created_at) \
                             VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8)",
                        )
                        .unwrap();
                    for (key, pattern, ip, serial) in &canonical {
                        let max = (!pattern.contains('*')).then_some(1);
                        insert
                            .execute(rusqlite::params![
                                dataset::PROCEDURE,
                                pattern,
                                key,
                                ip,
                                serial,
                                max,
                                kid,
                                NOW as i64
                            ])
                            .unwrap();
                    }
                }
                tx.commit().unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    report_peak(&format!("import/sqlite-baseline/{}", label(n)), before);
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
