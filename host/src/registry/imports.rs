//! Bulk imports: one signed request for a whole CSV file.
//!
//! 1. The request is verified and the officer authorized for the procedure's
//!    domain.
//! 2. The file is read through once ([`crate::import::scan`]): structure,
//!    limits, header, SHA-256 (which must be the signed one). A broken file is
//!    refused here, before anything is written.
//! 3. The import is recorded (and, unless a dry run, its request id consumed).
//! 4. The rows:
//!    - dry run: every row is checked, nothing is written;
//!    - all-or-nothing (the default): every row is checked in a read
//!      transaction; only if all are good are they written, in one
//!      transaction, so a failure or a kill at any point leaves nothing;
//!    - partial: good rows are written in batches of [`BATCH_ROWS`], each
//!      batch its own transaction; bad rows are reported.
//! 5. One audit record for the import, and one per registration created (in
//!    the transaction that creates it).
//!
//! A row whose pattern is already registered in the domain *by an import of
//! the same file* is "unchanged": running a file again changes nothing, and
//! running an interrupted partial import again completes it.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::writes::{CheckedRegistration, RegistrationFields, verify_signed};
use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::import::{
    self, Columns, CsvReader, FileError, ImportProgress, Phase, Record, RowError, RowErrorKind, RowSink,
};
use crate::password;
use crate::signing::WriteRequest;
use crate::store::{ImportRecord, ImportStatus, OfficerRecord, ProcedureRecord, StoreError, Tx, TxKind};

/// Bad rows a terminal shows before "and N more" (the REST report has all).
pub const MAX_BAD_ROWS_SHOWN: u64 = 1000;

/// Rows per transaction in a partial import.
pub const BATCH_ROWS: u64 = 1000;

/// The file to import: where it is, and the name to show in reports.
#[derive(Debug, Clone, Copy)]
pub struct ImportFile<'a> {
    /// Path.
    pub path: &'a Path,
    /// Name shown in messages (the upload's name).
    pub name: &'a str,
}

/// Why an import could not run (bad rows are not errors: they are in the
/// report).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The request, the officer, the procedure or the storage.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The file.
    #[error(transparent)]
    File(#[from] FileError),
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Registry(e.into())
    }
}

impl ImportError {
    /// Whether the caller's input is at fault.
    pub fn is_input_error(&self) -> bool {
        match self {
            ImportError::Registry(e) => e.is_input_error(),
            ImportError::File(FileError::Io { .. }) => false,
            ImportError::File(_) => true,
        }
    }
}

/// A verified import request.
struct Request {
    officer: OfficerRecord,
    procedure: ProcedureRecord,
    sha256: String,
    partial: bool,
    dry_run: bool,
    jti: (String, u64),
    jws: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Check every row; write nothing.
    Validate,
    /// Write every row in one transaction.
    WriteAll,
    /// Write good rows, a transaction per batch.
    Batches,
}

/// What one pass over the rows found.
#[derive(Default)]
struct Pass {
    rows_done: u64,
    /// Good rows (created, or that would be in a dry run).
    good: u64,
    created: u64,
    unchanged: u64,
    errors: u64,
    stopped: bool,
    /// The last (uncommitted) transaction of a writing pass.
    tx: Option<Box<dyn Tx>>,
}

/// One row, read and checked.
enum RowOutcome {
    Good { checked: CheckedRegistration, password: Option<zeroize::Zeroizing<String>> },
    Unchanged,
    Bad(RowError),
}

/// An import that passed its checks (signature, officer, procedure, file
/// structure and SHA-256) and is recorded, ready to run its rows. The REST
/// API answers with its id, then runs it in the background.
pub struct PreparedImport {
    registry: Registry,
    request: Request,
    record: ImportRecord,
    columns: Columns,
    path: PathBuf,
    now: u64,
    progress: Arc<ImportProgress>,
}

/// What a signed import request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequestInfo {
    /// Token procedure.
    pub procedure: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Partial.
    pub partial: bool,
    /// Dry run.
    pub dry_run: bool,
}

impl Registry {
    /// Checks a signed `import.csv` request (signature, officer, procedure)
    /// before its file is received; consumes nothing.
    pub fn check_import_request(&self, jws: &str, now: u64) -> Result<ImportRequestInfo, RegistryError> {
        let r = self.verify_import(jws, now)?;
        Ok(ImportRequestInfo { procedure: r.procedure.name, sha256: r.sha256, partial: r.partial, dry_run: r.dry_run })
    }

    /// Imports a CSV file of registrations under one signed `import.csv`
    /// request: [`Registry::prepare_import`], then [`PreparedImport::run`].
    pub fn import(
        &self,
        jws: &str,
        file: ImportFile<'_>,
        now: u64,
        progress: Arc<ImportProgress>,
        sink: &mut dyn RowSink,
    ) -> Result<ImportRecord, ImportError> {
        self.prepare_import(jws, file, now, progress)?.run(sink)
    }

    /// Verifies the request, reads the file through once (structure, limits,
    /// header, SHA-256: a broken or different file is refused here, before
    /// anything is written), then records the import and, unless it is a dry
    /// run, consumes its request id.
    pub fn prepare_import(
        &self,
        jws: &str,
        file: ImportFile<'_>,
        now: u64,
        progress: Arc<ImportProgress>,
    ) -> Result<PreparedImport, ImportError> {
        let request = self.verify_import(jws, now)?;
        progress.start_phase(Phase::Scanning, 0);
        let scanned = import::scan(file.path, file.name)?;
        if scanned.sha256 != request.sha256 {
            return Err(FileError::Mismatch {
                file: file.name.into(),
                signed: request.sha256.clone(),
                found: scanned.sha256,
            }
            .into());
        }
        let mut record = ImportRecord {
            id: 0,
            sha256: request.sha256.clone(),
            procedure: request.procedure.name.clone(),
            file_name: file.name.into(),
            partial: request.partial,
            dry_run: request.dry_run,
            officer: request.officer.kid.clone(),
            status: ImportStatus::Running,
            rows_total: scanned.rows,
            rows_done: 0,
            created: 0,
            unchanged: 0,
            errors: 0,
            started_at: now,
            finished_at: None,
            message: String::new(),
        };
        let mut tx = self.storage.begin(TxKind::Write)?;
        if !request.dry_run {
            tx.consume_request_id(&request.jti.0, &request.officer.kid, request.jti.1, now)?;
        }
        record.id = tx.insert_import(&record)?;
        tx.commit()?;
        progress.start_phase(Phase::Validating, scanned.rows);
        tracing::info!(import = record.id, file = file.name, rows = scanned.rows, "import started");
        Ok(PreparedImport {
            registry: self.clone(),
            request,
            record,
            columns: scanned.columns,
            path: file.path.to_owned(),
            now,
            progress,
        })
    }

    fn verify_import(&self, jws: &str, now: u64) -> Result<Request, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        let (verified, officer) = verify_signed(tx.as_mut(), jws, now)?;
        let WriteRequest::ImportCsv { procedure, sha256, partial, dry_run } = verified.claims.request.clone() else {
            return Err(RegistryError::Invalid {
                field: "action".into(),
                message: format!("an import needs an import.csv request, not {}", verified.claims.request.action()),
            });
        };
        let sha256 = sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RegistryError::Invalid {
                field: "sha256".into(),
                message: "must be the file's SHA-256 as 64 hex digits".into(),
            });
        }
        let procedure = tx.procedure(&procedure)?.ok_or_else(|| RegistryError::Invalid {
            field: "procedure".into(),
            message: format!("unknown token procedure {procedure:?}"),
        })?;
        if !officer.may_act_in(&procedure.domain) {
            return Err(RegistryError::Forbidden { officer: officer.name.clone(), domain: procedure.domain.clone() });
        }
        Ok(Request {
            officer,
            procedure,
            sha256,
            partial,
            dry_run,
            jti: (verified.claims.jti.clone(), verified.claims.exp),
            jws: verified.jws,
        })
    }

    fn finish_import(
        &self,
        request: &Request,
        mut record: ImportRecord,
        mut pass: Pass,
        progress: &ImportProgress,
    ) -> Result<ImportRecord, ImportError> {
        let status = if pass.stopped {
            ImportStatus::Interrupted
        } else if request.dry_run {
            ImportStatus::Completed
        } else if pass.errors > 0 && !request.partial {
            ImportStatus::Rejected
        } else {
            ImportStatus::Completed
        };
        let rows = record.rows_total;
        let message = match status {
            ImportStatus::Interrupted if request.partial => format!(
                "interrupted after {} of {rows} rows: {} registrations created in whole batches; run the same import \
                 again to complete it",
                pass.rows_done, pass.created
            ),
            ImportStatus::Interrupted => {
                format!("interrupted after {} of {rows} rows: nothing was written", pass.rows_done)
            }
            _ if request.dry_run => format!(
                "dry run: {} of {rows} rows would be created, {} already imported from this file, {} bad; nothing \
                 was written",
                pass.good, pass.unchanged, pass.errors
            ),
            ImportStatus::Rejected => format!(
                "{} of {rows} rows are bad, so nothing was written (fix them, or import with --partial)",
                pass.errors
            ),
            _ if pass.created == 0 && pass.errors == 0 => {
                format!("nothing changed: all {rows} rows were already imported from this file")
            }
            _ if pass.created == 0 => format!(
                "nothing changed: {} rows already imported from this file, {} bad rows skipped",
                pass.unchanged, pass.errors
            ),
            _ => {
                let mut text = format!("{} registrations created", pass.created);
                if pass.unchanged > 0 {
                    text.push_str(&format!(", {} rows already imported from this file", pass.unchanged));
                }
                if pass.errors > 0 {
                    text.push_str(&format!(", {} bad rows skipped", pass.errors));
                }
                text
            }
        };
        record.status = status;
        record.rows_done = pass.rows_done;
        record.created = if matches!(status, ImportStatus::Rejected) || request.dry_run { 0 } else { pass.created };
        record.unchanged = pass.unchanged;
        record.errors = pass.errors;
        record.finished_at = Some(super::unix_now().max(record.started_at));
        record.message = message;
        // The registrations of an all-or-nothing import that did not complete
        // are rolled back with their transaction; a partial import's last
        // batch is kept.
        let keep = status == ImportStatus::Completed || request.partial;
        let mut tx = match pass.tx.take() {
            Some(tx) if keep && !request.dry_run => tx,
            other => {
                drop(other);
                self.storage.begin(TxKind::Write)?
            }
        };
        if !request.dry_run {
            let outcome = match status {
                ImportStatus::Completed => "ok",
                ImportStatus::Rejected => "rejected",
                _ => "interrupted",
            };
            audit::append(
                tx.as_mut(),
                AuditEntry {
                    time: record.started_at,
                    actor: request.officer.kid.clone(),
                    action: "import.csv".into(),
                    object: format!("import:{}", record.id),
                    outcome: outcome.into(),
                    reason: None,
                    policy_sha256: Some(self.policy().info().sha256.clone()),
                    request: request.jws.clone(),
                    detail: format!(
                        "{} (sha256 {}, procedure {}): {}",
                        record.file_name, record.sha256, record.procedure, record.message
                    ),
                },
            )?;
        }
        tx.update_import(&record)?;
        tx.commit()?;
        progress.start_phase(Phase::Done, rows);
        tracing::info!(import = record.id, status = status.as_str(), message = %record.message, "import finished");
        Ok(record)
    }
}

impl PreparedImport {
    /// The import's id.
    pub fn id(&self) -> u64 {
        self.record.id
    }

    /// The import as recorded so far.
    pub fn record(&self) -> &ImportRecord {
        &self.record
    }

    /// Runs the rows; bad rows go to `sink`. Returns the import as finished.
    pub fn run(self, sink: &mut dyn RowSink) -> Result<ImportRecord, ImportError> {
        let PreparedImport { registry, request, mut record, columns, path, now, progress } = self;
        let name = record.file_name.clone();
        let job = Job {
            registry: &registry,
            request: &request,
            columns,
            file: ImportFile { path: &path, name: &name },
            import_id: record.id,
            rows: record.rows_total,
            now,
            progress: &progress,
        };
        let pass = match job.run_all(sink) {
            Ok(pass) => pass,
            Err(e) => {
                record.status = ImportStatus::Failed;
                record.finished_at = Some(super::unix_now().max(now));
                record.message = format!("failed: {e}");
                let saved = registry.storage.begin(TxKind::Write).and_then(|mut tx| {
                    tx.update_import(&record)?;
                    tx.commit()
                });
                if let Err(save) = saved {
                    tracing::error!(import = record.id, error = %save, "cannot record the failed import");
                }
                progress.start_phase(Phase::Done, record.rows_total);
                return Err(e);
            }
        };
        registry.finish_import(&request, record, pass, &progress)
    }
}

/// One import in progress.
struct Job<'a> {
    registry: &'a Registry,
    request: &'a Request,
    columns: Columns,
    file: ImportFile<'a>,
    import_id: u64,
    rows: u64,
    now: u64,
    progress: &'a ImportProgress,
}

impl Job<'_> {
    fn run_all(&self, sink: &mut dyn RowSink) -> Result<Pass, ImportError> {
        if self.request.dry_run {
            return self.run(Mode::Validate, sink);
        }
        if self.request.partial {
            return self.run(Mode::Batches, sink);
        }
        // All or nothing: check first without holding the write lock; write
        // only a file that is all good.
        let checked = self.run(Mode::Validate, sink)?;
        if checked.errors > 0 || checked.stopped {
            return Ok(checked);
        }
        self.run(Mode::WriteAll, sink)
    }

    fn run(&self, mode: Mode, sink: &mut dyn RowSink) -> Result<Pass, ImportError> {
        let storage = &self.registry.storage;
        let mut tx = storage.begin(if mode == Mode::Validate { TxKind::Read } else { TxKind::Write })?;
        let phase = if mode == Mode::Validate { Phase::Validating } else { Phase::Writing };
        self.progress.start_phase(phase, self.rows);
        let file_error = |source| FileError::Io { file: self.file.name.into(), source };
        let input = File::open(self.file.path).map_err(file_error)?;
        let mut reader = CsvReader::new(BufReader::with_capacity(64 << 10, input));
        let csv_error = |source| FileError::Csv { file: self.file.name.into(), source };
        // The header, checked by the scan.
        reader.next_record().map_err(csv_error)?;
        let hasher = RandomState::new();
        // Canonical pattern (hashed) -> first row, for duplicates in the file.
        let mut seen: HashMap<u64, u64> = HashMap::new();
        // Import id -> whether it imported this same file.
        let mut same_file: HashMap<u64, bool> = HashMap::new();
        let mut pass = Pass::default();
        let mut in_batch = 0u64;
        while let Some(record) = reader.next_record().map_err(csv_error)? {
            if self.progress.is_cancelled() {
                pass.stopped = true;
                break;
            }
            let (tx_back, outcome) = self.check_row(tx, &record, &hasher, &mut seen, &mut same_file);
            tx = tx_back;
            match outcome? {
                RowOutcome::Bad(error) => self.bad(&mut pass, sink, &error)?,
                RowOutcome::Unchanged => {
                    pass.unchanged += 1;
                    self.progress.add_unchanged();
                }
                RowOutcome::Good { checked, password } => {
                    pass.good += 1;
                    let write = match mode {
                        Mode::Validate => false,
                        Mode::Batches => true,
                        // After a bad row nothing of this pass will be kept.
                        Mode::WriteAll => pass.errors == 0,
                    };
                    if write {
                        match self.create(tx.as_mut(), &record, checked, password)? {
                            Ok(()) => {
                                pass.created += 1;
                                self.progress.add_created();
                            }
                            Err(error) => self.bad(&mut pass, sink, &error)?,
                        }
                    } else if mode == Mode::Validate {
                        self.progress.add_created();
                    }
                }
            }
            pass.rows_done += 1;
            self.progress.row_done();
            if mode == Mode::Batches {
                in_batch += 1;
                if in_batch == BATCH_ROWS {
                    in_batch = 0;
                    tx.commit()?;
                    tx = storage.begin(TxKind::Write)?;
                }
            }
        }
        pass.tx = Some(tx);
        Ok(pass)
    }

    fn bad(&self, pass: &mut Pass, sink: &mut dyn RowSink, error: &RowError) -> Result<(), ImportError> {
        pass.errors += 1;
        self.progress.add_error();
        sink.bad_row(error).map_err(|source| FileError::Io { file: "the import report".into(), source }.into())
    }

    /// Reads and checks one row. Hands the transaction back whatever happens.
    fn check_row(
        &self,
        tx: Box<dyn Tx>,
        record: &Record,
        hasher: &RandomState,
        seen: &mut HashMap<u64, u64>,
        same_file: &mut HashMap<u64, bool>,
    ) -> (Box<dyn Tx>, Result<RowOutcome, ImportError>) {
        let bad = |column: Option<&str>, kind, message: String| {
            Ok(RowOutcome::Bad(RowError {
                row: record.at.row,
                line: record.at.line,
                column: column.map(String::from),
                kind,
                message,
            }))
        };
        let c = &self.columns;
        if record.fields.len() != c.count {
            let message = format!("{} fields, but the header has {}", record.fields.len(), c.count);
            return (tx, bad(None, RowErrorKind::ColumnCount, message));
        }
        let text = |index: Option<usize>| index.map(|i| record.fields[i].trim()).filter(|v| !v.is_empty());
        let number = |name: &'static str, index: Option<usize>| -> Result<Option<u32>, (Option<&str>, String)> {
            match text(index) {
                None => Ok(None),
                Some(v) => v.parse::<u32>().map(Some).map_err(|_| (Some(name), format!("{v:?} is not a whole number"))),
            }
        };
        let Some(fqdn) = text(Some(c.fqdn)) else {
            return (tx, bad(Some("fqdn"), RowErrorKind::Invalid, "empty: every row needs an FQDN or pattern".into()));
        };
        let (valid_days, max_enrollments) =
            match (number("valid_days", c.valid_days), number("max_enrollments", c.max_enrollments)) {
                (Ok(v), Ok(m)) => (v, m),
                (Err((column, message)), _) | (_, Err((column, message))) => {
                    return (tx, bad(column, RowErrorKind::Invalid, message));
                }
            };
        // The password is taken as written (spaces count), empty: none.
        let password = c.password.map(|i| record.fields[i].as_str()).filter(|p| !p.is_empty());
        if password.is_some_and(|p| p.len() > password::MAX_PASSWORD_BYTES) {
            let message = format!("longer than {} bytes", password::MAX_PASSWORD_BYTES);
            return (tx, bad(Some("password"), RowErrorKind::Invalid, message));
        }
        let fields = RegistrationFields {
            fqdn,
            ip: text(c.ip),
            serial: text(c.serial),
            has_password: password.is_some(),
            valid_days,
            max_enrollments,
        };
        let (mut tx, checked) = self.registry.check_registration(tx, &self.request.procedure, &fields, self.now);
        let checked = match checked {
            Ok(checked) => checked,
            Err(RegistryError::Invalid { field, message }) => {
                let column = match field.as_str() {
                    "valid-days" => "valid_days".to_owned(),
                    "max-enrollments" => "max_enrollments".to_owned(),
                    other => other.to_owned(),
                };
                return (tx, bad(Some(&column), RowErrorKind::Invalid, message));
            }
            Err(e) => return (tx, Err(e.into())),
        };
        let key = hasher.hash_one(&checked.pattern);
        if let Some(first) = seen.get(&key) {
            let message = format!("{} is already in this file at row {first}", checked.pattern);
            return (tx, bad(Some("fqdn"), RowErrorKind::DuplicateInFile, message));
        }
        seen.insert(key, record.at.row);
        let existing = match tx.registration_by_pattern(&self.request.procedure.domain, &checked.pattern) {
            Ok(existing) => existing,
            Err(e) => return (tx, Err(e.into())),
        };
        if let Some(existing) = existing {
            let from_this_file = match existing.import_id {
                None => false,
                Some(id) => match same_file.get(&id) {
                    Some(same) => *same,
                    None => {
                        let same = match tx.import(id) {
                            Ok(found) => found.is_some_and(|i| {
                                i.sha256 == self.request.sha256 && i.procedure == self.request.procedure.name
                            }),
                            Err(e) => return (tx, Err(e.into())),
                        };
                        same_file.insert(id, same);
                        same
                    }
                },
            };
            if from_this_file {
                return (tx, Ok(RowOutcome::Unchanged));
            }
            let message = format!(
                "{} is already registered in domain {} (registration {})",
                checked.pattern, self.request.procedure.domain, existing.id
            );
            return (tx, bad(Some("fqdn"), RowErrorKind::DuplicateExisting, message));
        }
        let password = password.map(|p| zeroize::Zeroizing::new(p.to_owned()));
        (tx, Ok(RowOutcome::Good { checked, password }))
    }

    /// Writes one good row and its audit record. A row that collides with a
    /// registration made since it was checked is a bad row, not a failure.
    fn create(
        &self,
        tx: &mut dyn Tx,
        record: &Record,
        checked: CheckedRegistration,
        password: Option<zeroize::Zeroizing<String>>,
    ) -> Result<Result<(), RowError>, ImportError> {
        let password_hash = match password {
            None => None,
            Some(p) => Some(
                password::hash(&p).map_err(|message| RegistryError::Invalid { field: "password".into(), message })?,
            ),
        };
        let procedure = &self.request.procedure;
        let pattern = checked.pattern.clone();
        let policy_sha256 = checked.policy_sha256.clone();
        let new = checked.into_new(
            procedure,
            password_hash,
            &self.request.officer.kid,
            self.now,
            Some((self.import_id, record.at.row)),
        );
        let id = match tx.insert_registration(&new) {
            Ok(id) => id,
            Err(StoreError::Duplicate { what }) => {
                return Ok(Err(RowError {
                    row: record.at.row,
                    line: record.at.line,
                    column: Some("fqdn".into()),
                    kind: RowErrorKind::DuplicateExisting,
                    message: format!("{what} (registered while the import ran)"),
                }));
            }
            Err(e) => return Err(e.into()),
        };
        audit::append(
            tx,
            AuditEntry {
                time: self.now,
                actor: self.request.officer.kid.clone(),
                action: "registration.create".into(),
                object: format!("registration:{id}"),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: Some(policy_sha256),
                request: serde_json::json!({ "import": self.import_id, "row": record.at.row }).to_string(),
                detail: format!(
                    "pattern {pattern} in domain {} (import {}, row {})",
                    procedure.domain, self.import_id, record.at.row
                ),
            },
        )?;
        Ok(Ok(()))
    }
}
