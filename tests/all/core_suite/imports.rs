//! Bulk CSV import through the library: the real default policy component,
//! real SQLite, real files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use prereg::import::{CsvError, FileError, ImportProgress, RowError, RowErrorKind, RowSink};
use prereg::registry::{ImportError, ImportFile};
use prereg::signing::{self, WriteRequest};
use prereg::store::{ImportRecord, ImportStatus, RegistrationFilter};
use prereg::{RegistryError, import};

use crate::common::{Fixture, NOW, Req};

struct Run {
    record: ImportRecord,
    rows: Vec<RowError>,
}

fn write(fx: &Fixture, name: &str, bytes: &[u8]) -> PathBuf {
    let path = fx.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sign_import(fx: &Fixture, path: &Path, partial: bool, dry_run: bool) -> String {
    let public = fx.registry.sealing_key().unwrap().public_text();
    let (sha256, digest_key) = import::signed_digest(path, &public).unwrap();
    let request =
        WriteRequest::ImportCsv { procedure: "routers".into(), sha256, digest_key: Some(digest_key), partial, dry_run };
    signing::sign(&fx.admin, &fx.instance, request, NOW, 300).unwrap()
}

fn try_import(fx: &Fixture, path: &Path, partial: bool, dry_run: bool) -> Result<Run, ImportError> {
    let jws = sign_import(fx, path, partial, dry_run);
    let mut rows = Vec::new();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let record =
        fx.registry.import(&jws, ImportFile { path, name: &name }, NOW, Arc::new(ImportProgress::new()), &mut rows)?;
    Ok(Run { record, rows })
}

fn run(fx: &Fixture, path: &Path, partial: bool, dry_run: bool) -> Run {
    try_import(fx, path, partial, dry_run).unwrap()
}

fn fixture() -> Option<Fixture> {
    let fx = Fixture::on(super::BACKEND)?;
    fx.procedure("routers", "corp", "scep", &[]);
    Some(fx)
}

fn patterns(fx: &Fixture) -> Vec<String> {
    fx.registry.registrations(&RegistrationFilter::default()).unwrap().into_iter().map(|r| r.pattern).collect()
}

fn actions(fx: &Fixture) -> Vec<(String, String)> {
    fx.registry.audit_records(0, 10_000).unwrap().into_iter().map(|r| (r.action, r.outcome)).collect()
}

const MIXED: &str = "fqdn,ip,serial,password,valid_days,max_enrollments\n\
    a.example.com,10.0.0.1,,pw-a,,\n\
    b.example.com,not-an-ip,,,,\n\
    A.EXAMPLE.COM.,,,,,\n\
    c.example.com,,,,zero,\n\
    existing.example.com,,,,,\n\
    *.com,,,,,\n\
    d.example.com,,,,,0\n\
    e.example.com,,\n\
    *.lab.example.com,,,,30,\n";

#[test]
fn all_or_nothing_reports_every_bad_row_and_writes_nothing() {
    let Some(fx) = fixture() else { return };
    fx.register("routers", "existing.example.com").unwrap();
    let audit_before = actions(&fx).len();
    let path = write(&fx, "mixed.csv", MIXED.as_bytes());
    let Run { record, rows } = run(&fx, &path, false, false);
    assert_eq!(record.status, ImportStatus::Rejected, "{}", record.message);
    assert_eq!((record.rows_total, record.created, record.errors), (9, 0, 7));
    let seen: Vec<(u64, Option<&str>, RowErrorKind)> =
        rows.iter().map(|r| (r.row, r.column.as_deref(), r.kind)).collect();
    assert_eq!(
        seen,
        vec![
            (3, Some("ip"), RowErrorKind::Invalid),
            (4, Some("fqdn"), RowErrorKind::DuplicateInFile),
            (5, Some("valid_days"), RowErrorKind::Invalid),
            (6, Some("fqdn"), RowErrorKind::DuplicateExisting),
            (7, Some("fqdn"), RowErrorKind::Invalid),
            (8, Some("max_enrollments"), RowErrorKind::Invalid),
            (9, None, RowErrorKind::ColumnCount),
        ]
    );
    assert!(rows[1].message.contains("at row 2"), "{}", rows[1].message);
    assert!(rows[3].message.contains("registration 1"), "{}", rows[3].message);
    assert_eq!(patterns(&fx), vec!["existing.example.com"]);
    // One audit record, for the refused import; the chain holds.
    let audit = actions(&fx);
    assert_eq!(audit[audit_before..], [("import.csv".to_owned(), "rejected".to_owned())]);
    assert_eq!(fx.registry.verify_audit().unwrap().fault, None);
    assert_eq!(fx.registry.import_record(record.id).unwrap().status, ImportStatus::Rejected);
}

#[test]
fn partial_writes_the_good_rows_and_running_it_again_changes_nothing() {
    let Some(fx) = fixture() else { return };
    fx.register("routers", "existing.example.com").unwrap();
    let path = write(&fx, "mixed.csv", MIXED.as_bytes());
    let first = run(&fx, &path, true, false);
    assert_eq!(first.record.status, ImportStatus::Completed);
    assert_eq!((first.record.created, first.record.errors), (2, 7));
    assert_eq!(patterns(&fx), vec!["existing.example.com", "a.example.com", "*.lab.example.com"]);
    let created = fx.registry.registrations(&RegistrationFilter::default()).unwrap();
    assert_eq!(created[1].ip.as_deref(), Some("10.0.0.1"));
    assert!(created[1].has_password);
    assert_eq!(created[1].max_enrollments, Some(1));
    assert_eq!(created[2].expires_at, Some(NOW + 30 * 86_400));
    assert_eq!(created[2].max_enrollments, None);
    // The password in the file works, and only as a hash in the database.
    let allowed = fx.check(Req {
        procedure: "routers",
        fqdn: "a.example.com",
        ip: Some("10.0.0.1"),
        password: Some("pw-a"),
        ..Default::default()
    });
    assert!(allowed.allowed, "{allowed:?}");
    let db = fx.stored_bytes();
    assert!(!crate::common::contains(&db, b"pw-a"));

    let again = run(&fx, &path, true, false);
    assert_eq!((again.record.created, again.record.unchanged, again.record.errors), (0, 2, 7));
    assert!(again.record.message.starts_with("nothing changed"), "{}", again.record.message);
    assert_eq!(patterns(&fx).len(), 3);
    let creates = actions(&fx).iter().filter(|(a, _)| a == "registration.create").count();
    assert_eq!(creates, 3, "one audit record per registration created, none for unchanged rows");
    assert_eq!(fx.registry.verify_audit().unwrap().fault, None);
}

#[test]
fn a_clean_file_imports_whole_and_a_second_run_says_nothing_changed() {
    let Some(fx) = fixture() else { return };
    let mut text = String::from("\u{feff}FQDN,Serial\r\n");
    for i in 0..2500 {
        text.push_str(&format!("dev{i}.example.com,S{i}\r\n"));
    }
    let path = write(&fx, "clean.csv", text.as_bytes());
    let first = run(&fx, &path, false, false);
    assert_eq!((first.record.status, first.record.created), (ImportStatus::Completed, 2500));
    assert!(first.rows.is_empty());
    let second = run(&fx, &path, false, false);
    assert_eq!(
        (second.record.status, second.record.created, second.record.unchanged),
        (ImportStatus::Completed, 0, 2500)
    );
    assert_eq!(second.record.message, "nothing changed: all 2500 rows were already imported from this file");
    assert_eq!(fx.registry.registrations(&RegistrationFilter::default()).unwrap().len(), 2500);
    let audit = actions(&fx);
    assert_eq!(audit.iter().filter(|(a, _)| a == "registration.create").count(), 2500);
    assert_eq!(audit.iter().filter(|(a, _)| a == "import.csv").count(), 2);
    assert_eq!(fx.registry.verify_audit().unwrap().fault, None);
    // A different file with the same names is a duplicate, not "unchanged".
    let other = write(&fx, "other.csv", b"fqdn\ndev7.example.com\n");
    let run = run(&fx, &other, false, false);
    assert_eq!(run.rows[0].kind, RowErrorKind::DuplicateExisting);
}

#[test]
fn a_dry_run_checks_everything_and_writes_nothing() {
    let Some(fx) = fixture() else { return };
    let path = write(&fx, "mixed.csv", MIXED.as_bytes());
    let audit_before = actions(&fx).len();
    let dry = run(&fx, &path, false, true);
    assert_eq!(dry.record.status, ImportStatus::Completed);
    assert!(dry.record.dry_run);
    assert_eq!((dry.record.created, dry.record.errors), (0, 6));
    assert!(dry.record.message.contains("3 of 9 rows would be created"), "{}", dry.record.message);
    assert!(patterns(&fx).is_empty());
    assert_eq!(actions(&fx).len(), audit_before, "a dry run is not audited");
}

#[test]
fn quoting_bom_and_line_ends_are_read_as_rfc_4180_says() {
    let Some(fx) = fixture() else { return };
    let text = b"\xEF\xBB\xBF\"fqdn\",\"password\"\r\n\"q1.example.com\",\"a,b \"\"quoted\"\"\r\nnext line\"\r\nq2.example.com,\n";
    let path = write(&fx, "quoted.csv", text);
    let result = run(&fx, &path, false, false);
    assert_eq!(result.record.created, 2, "{:?}", result.rows);
    let allowed = fx.check(Req {
        procedure: "routers",
        fqdn: "q1.example.com",
        password: Some("a,b \"quoted\"\r\nnext line"),
        ..Default::default()
    });
    assert!(allowed.allowed, "{allowed:?}");
}

#[test]
fn broken_files_are_refused_before_anything_is_written() {
    let Some(fx) = fixture() else { return };
    let long_field = format!("fqdn\n{}.example.com\n", "a".repeat(1100));
    let long_row = format!("fqdn,serial\nx.example.com,{}\n", "s,".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "the file is empty"),
        ("header only", b"fqdn\n".to_vec(), "no rows"),
        ("utf16", b"\xFF\xFEf\0q\0d\0n\0".to_vec(), "UTF-16"),
        ("nul", b"fqdn\nx.example.com\0\n".to_vec(), "line 2: a NUL byte"),
        ("no fqdn", b"ip\n10.0.0.1\n".to_vec(), "no \"fqdn\" column"),
        ("unknown", b"fqdn,colour\nx.example.com,red\n".to_vec(), "unknown column \"colour\""),
        ("long field", long_field.into_bytes(), "row 2 (line 2), column 1: a field longer than 1024 bytes"),
        ("long row", long_row.into_bytes(), "row 2 (line 2): a row longer than 8192 bytes"),
        ("open quote", b"fqdn\n\"x.example.com\n".to_vec(), "a quoted field is never closed"),
        ("bad utf8", b"fqdn\nx\xC3\x28.example.com\n".to_vec(), "not valid UTF-8"),
    ];
    for (what, bytes, expected) in cases {
        let path = write(&fx, "broken.csv", &bytes);
        let error = match try_import(&fx, &path, true, false) {
            Err(ImportError::File(e)) => e,
            Err(other) => panic!("{what}: {other}"),
            Ok(run) => panic!("{what}: imported {:?}", run.record),
        };
        let message = error.to_string();
        assert!(message.starts_with("broken.csv: "), "{what}: {message}");
        assert!(message.contains(expected), "{what}: {message}");
    }
    assert!(patterns(&fx).is_empty());
    assert!(fx.registry.imports(100).unwrap().is_empty(), "a refused file leaves no import behind");
}

#[test]
fn the_signature_covers_the_file_procedure_and_options() {
    let Some(fx) = fixture() else { return };
    fx.procedure("other", "lab", "est", &[]);
    let path = write(&fx, "a.csv", b"fqdn\nx.example.com\n");
    let jws = sign_import(&fx, &path, false, false);
    // The file changed after signing.
    std::fs::write(&path, b"fqdn\ny.example.com\n").unwrap();
    let mut rows = Vec::new();
    let progress = Arc::new(ImportProgress::new());
    let changed = fx.registry.import(&jws, ImportFile { path: &path, name: "a.csv" }, NOW, progress.clone(), &mut rows);
    assert!(matches!(changed, Err(ImportError::File(FileError::Mismatch { .. }))), "{changed:?}");
    // A signed registration is not an import.
    let other = signing::sign(
        &fx.admin,
        &fx.instance,
        crate::common::create_registration("routers", "z.example.com"),
        NOW,
        300,
    )
    .unwrap();
    let wrong = fx.registry.import(&other, ImportFile { path: &path, name: "a.csv" }, NOW, progress.clone(), &mut rows);
    assert!(matches!(wrong, Err(ImportError::Registry(RegistryError::Invalid { .. }))), "{wrong:?}");
    // And an import cannot be submitted without its file.
    assert!(matches!(fx.registry.submit(&jws, NOW), Err(RegistryError::Invalid { .. })));
    // Replay: the request id is consumed by the first real import.
    std::fs::write(&path, b"fqdn\nx.example.com\n").unwrap();
    fx.registry.import(&jws, ImportFile { path: &path, name: "a.csv" }, NOW, progress.clone(), &mut rows).unwrap();
    let replay = fx.registry.import(&jws, ImportFile { path: &path, name: "a.csv" }, NOW, progress, &mut rows);
    assert!(matches!(replay, Err(ImportError::Registry(RegistryError::Store(_)))), "{replay:?}");
}

#[test]
fn a_cancelled_import_keeps_what_it_wrote_when_partial_and_nothing_otherwise() {
    for partial in [false, true] {
        let Some(fx) = fixture() else { return };
        let mut text = String::from("fqdn\n");
        for i in 0..2500 {
            text.push_str(&format!("dev{i}.example.com\n"));
        }
        text.push_str("stop.example.com\n");
        let path = write(&fx, "big.csv", text.as_bytes());
        let jws = sign_import(&fx, &path, partial, false);
        let progress = Arc::new(ImportProgress::new());
        // Cancel once the writing pass has passed row 1500.
        let watcher = {
            let progress = progress.clone();
            std::thread::spawn(move || {
                loop {
                    let p = progress.snapshot();
                    if p.phase == import::Phase::Writing && p.done >= 1500 {
                        progress.cancel();
                        return;
                    }
                    if p.phase == import::Phase::Done {
                        return;
                    }
                    std::thread::yield_now();
                }
            })
        };
        let mut sink = Vec::new();
        let record =
            fx.registry.import(&jws, ImportFile { path: &path, name: "big.csv" }, NOW, progress, &mut sink).unwrap();
        watcher.join().unwrap();
        assert_eq!(record.status, ImportStatus::Interrupted, "{record:?}");
        let count = patterns(&fx).len();
        if partial {
            // A cancelled partial import keeps its whole batches, as a kill
            // does (see the `faults` tests).
            assert!(count.is_multiple_of(prereg::registry::BATCH_ROWS) && (1000..2501).contains(&count), "{count}");
            assert_eq!(record.created as usize, count, "the record counts what was kept");
            // Running it again completes it, without duplicates.
            let jws = sign_import(&fx, &path, true, false);
            let mut rows = Vec::new();
            let again = fx
                .registry
                .import(
                    &jws,
                    ImportFile { path: &path, name: "big.csv" },
                    NOW,
                    Arc::new(ImportProgress::new()),
                    &mut rows,
                )
                .unwrap();
            assert_eq!(
                (again.status, again.unchanged, again.created),
                (ImportStatus::Completed, count as u64, 2501 - count as u64)
            );
            assert_eq!(patterns(&fx).len(), 2501);
        } else {
            assert_eq!(count, 0, "all or nothing");
        }
        assert_eq!(fx.registry.verify_audit().unwrap().fault, None);
    }
}

#[test]
fn csv_error_positions_name_row_and_line() {
    let e = CsvError::UnterminatedQuote { at: import::Position { row: 4, line: 6 }, column: 2 };
    assert_eq!(e.to_string(), "row 4 (line 6), column 2: a quoted field is never closed (a closing quote is missing)");
}

/// Issue 17, item 2: an import whose final commit fails (a full disk, say,
/// simulated by a trigger) ends as `failed` with the cause, not `running`
/// for ever; an all-or-nothing import keeps nothing of it.
#[test]
fn an_import_whose_end_fails_is_recorded_failed_with_the_cause() {
    let Some(fx) = fixture() else { return };
    fx.execute_sql(fx.backend.pick(
        "CREATE TRIGGER imports_end_fails BEFORE UPDATE OF status ON imports WHEN NEW.status = 'completed' \
         BEGIN SELECT RAISE(ABORT, 'no space left (simulated)'); END;",
        "CREATE FUNCTION imports_end_fails() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'no space left (simulated)'; END $$; \
         CREATE TRIGGER imports_end_fails BEFORE UPDATE ON imports FOR EACH ROW \
         WHEN (NEW.status = 'completed') EXECUTE FUNCTION imports_end_fails();",
    ));
    let path = write(&fx, "end.csv", b"fqdn\na.example.com\nb.example.com\n");
    let error = match try_import(&fx, &path, false, false) {
        Err(e) => e.to_string(),
        Ok(run) => panic!("{:?}", run.record),
    };
    assert!(error.contains("no space left (simulated)"), "{error}");
    let record = fx.registry.imports(10).unwrap().into_iter().next().unwrap();
    assert_eq!(record.status, ImportStatus::Failed, "{record:?}");
    assert!(record.message.contains("failed at its end") && record.message.contains("no space left"), "{}", record.message);
    assert!(patterns(&fx).is_empty(), "an all-or-nothing import keeps nothing: {:?}", patterns(&fx));
}

/// Holds an import at its first bad row until released.
struct Gate {
    reached: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

impl RowSink for Gate {
    fn bad_row(&mut self, _: &RowError) -> std::io::Result<()> {
        let _ = self.reached.send(());
        let _ = self.release.recv();
        Ok(())
    }
}

/// Issue 17, item 5: an all-or-nothing import stages its rows, a batch per
/// short transaction, and nobody sees them until it completes: not the
/// reads, not an enrollment decision, not the candidate index; a
/// registration of a staged name is refused naming the running import; no
/// write lock is held between batches; and when it ends without completing,
/// what it staged is deleted.
#[test]
fn what_an_import_stages_is_seen_by_nobody_until_it_completes() {
    let Some(fx) = fixture() else { return };
    fx.register("routers", "before.example.com").unwrap();
    // Two whole batches, then a bad row that starts the third.
    let mut text = String::from("fqdn\n");
    for i in 0..2 * prereg::registry::BATCH_ROWS {
        text.push_str(&format!("staged{i}.example.com\n"));
    }
    text.push_str("not a name\n");
    let path = write(&fx, "staged.csv", text.as_bytes());
    let jws = sign_import(&fx, &path, false, false);
    let (reached_tx, reached) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let record = std::thread::scope(|s| {
        let import = s.spawn(|| {
            let mut gate = Gate { reached: reached_tx, release: release_rx };
            let file = ImportFile { path: &path, name: "staged.csv" };
            fx.registry.import(&jws, file, NOW, Arc::new(ImportProgress::new()), &mut gate)
        });
        reached.recv().unwrap();
        // 2,000 rows are staged and committed: nobody sees them.
        assert_eq!(patterns(&fx), vec!["before.example.com"]);
        let decision = fx.check(Req { procedure: "routers", fqdn: "staged7.example.com", ..Default::default() });
        assert!(!decision.allowed, "{decision:?}");
        // A write between batches does not wait for the import.
        let refused = fx.register("routers", "staged7.example.com").unwrap_err();
        assert!(refused.to_string().contains("which is still running"), "{refused}");
        fx.register("routers", "between.example.com").unwrap();
        release.send(()).unwrap();
        import.join().unwrap().unwrap()
    });
    assert_eq!(record.status, ImportStatus::Rejected, "{}", record.message);
    assert_eq!((record.created, record.errors), (0, 1));
    // What it staged is gone: the names are free.
    fx.register("routers", "staged7.example.com").unwrap();
    let mut seen = patterns(&fx);
    seen.sort();
    assert_eq!(seen, vec!["before.example.com", "between.example.com", "staged7.example.com"]);
    assert!(fx.check(Req { procedure: "routers", fqdn: "staged7.example.com", ..Default::default() }).allowed);
    assert_eq!(fx.registry.verify_audit().unwrap().fault, None);
}

/// A completed import's staged rows are registrations (to the candidate
/// index too); a rejected import's never are, and are deleted as it ends.
#[test]
fn rows_staged_by_an_import_that_did_not_complete_are_never_seen() {
    let Some(fx) = fixture() else { return };
    let mut text = String::from("fqdn\n");
    for i in 0..1500 {
        text.push_str(&format!("dev{i}.example.com\n"));
    }
    let path = write(&fx, "clean.csv", text.as_bytes());
    let done = run(&fx, &path, false, false);
    assert_eq!((done.record.status, done.record.created), (ImportStatus::Completed, 1500));
    assert!(fx.check(Req { procedure: "routers", fqdn: "dev1499.example.com", ..Default::default() }).allowed);
    assert_eq!(patterns(&fx).len(), 1500);
    // A rejected import: nothing it staged is seen, and the sweep of any
    // process deletes it.
    let bad = write(&fx, "bad.csv", b"fqdn\nnew1.example.com\nnew2.example.com\n*.com\n");
    let rejected = run(&fx, &bad, false, false);
    assert_eq!(rejected.record.status, ImportStatus::Rejected);
    assert!(!fx.check(Req { procedure: "routers", fqdn: "new1.example.com", ..Default::default() }).allowed);
    assert_eq!(fx.registry.sweep_imports(NOW).unwrap().purged, 0, "deleted when it ended");
    assert_eq!(patterns(&fx).len(), 1500);
}
