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
//!    - all-or-nothing (the default): the rows are *staged*, a batch of
//!      [`BATCH_ROWS`] per transaction: written, but seen by nobody until
//!      the one short transaction that marks the import `completed` makes
//!      them all visible at once (schema migration 13). So enrollments and
//!      other writers wait for a batch at most, never for the whole file,
//!      and a failure or a kill at any point leaves nothing visible. From
//!      the first bad row on, nothing more is staged and the rest is only
//!      checked, so that every bad row is reported; what was staged is
//!      deleted in batches once the import has ended;
//!    - partial: good rows are written in batches of [`BATCH_ROWS`], each
//!      batch its own transaction; bad rows are reported.
//!
//!    Each batch is read and checked by the policy in a read transaction, its
//!    passwords hashed outside any transaction, and only then written, so the
//!    write lock is held for the inserts alone.
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

use super::import_lease::{self, LeaseClock};
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

/// Rows per write transaction (a partial import's batch, an all-or-nothing
/// import's staged batch).
pub const BATCH_ROWS: usize = 1000;

/// Rows the policy validates in one evaluation (one instance).
const VALIDATION_BATCH: usize = 256;

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
    /// The signed digest of the file; once the file is checked, the
    /// instance's own keyed digest of it (what the import record keeps).
    sha256: String,
    /// The ephemeral key the signed digest was keyed under.
    digest_key: String,
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
    /// Rows were staged (an all-or-nothing import): they become visible if
    /// the import completes, and are deleted otherwise.
    staged: bool,
}

impl Pass {
    fn count_unchanged(&mut self, progress: &ImportProgress) {
        self.unchanged += 1;
        progress.add_unchanged();
    }

    fn count_good(&mut self, progress: &ImportProgress) {
        self.good += 1;
        progress.add_created();
    }
}

/// One row, read and checked.
enum RowOutcome {
    Good { checked: CheckedRegistration, password: Option<zeroize::Zeroizing<String>> },
    Unchanged,
    Bad(RowError),
}

/// A password hashed (and sealed) for its row, before the write.
struct Secret {
    hash: String,
    sealed: Option<String>,
}

/// What became of a good row in a writing pass, or of a row whose pattern
/// is already registered.
enum Written {
    Created,
    /// This same file imported it before.
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
        let mut request = self.verify_import(jws, now)?;
        progress.start_phase(Phase::Scanning, 0);
        // The file is the one signed if its HMAC under the key agreed with the
        // officer's client matches; the record keeps the instance's own keyed
        // digest (stable across imports of the same file, and no digest that
        // a guess of the file could be checked against). Both are computed
        // while the file is read through.
        let sealing = self.sealing_key().ok_or_else(|| RegistryError::Invalid {
            field: "digest_key".into(),
            message: "this instance has no sealing key to check a keyed digest with".into(),
        })?;
        let signed_key = sealing
            .digest_key(&request.digest_key)
            .map_err(|e| RegistryError::Invalid { field: "digest_key".into(), message: e.to_string() })?;
        let record_key = sealing.derive(b"prereg import file digest v1");
        let scanned = import::scan(file.path, file.name, &[&signed_key, &record_key])?;
        let (signed, kept) = match scanned.digests.as_slice() {
            [signed, kept] => (signed.clone(), kept.clone()),
            _ => {
                let source = std::io::Error::other("the file's digests could not be computed");
                return Err(FileError::Io { file: file.name.into(), source }.into());
            }
        };
        if signed != request.sha256 {
            return Err(
                FileError::Mismatch { file: file.name.into(), signed: request.sha256.clone(), found: signed }.into()
            );
        }
        request.sha256 = kept;
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
        // Imports of processes that are gone no longer hold their rows.
        self.sweep_imports(super::unix_now())?;
        let mut tx = self.storage.begin(TxKind::Write)?;
        if !request.dry_run {
            tx.consume_request_id(&request.jti.0, &request.officer.kid, request.jti.1, now)?;
        }
        record.id = tx.insert_import(&record)?;
        tx.renew_import_lease(record.id, import_lease::this_process(), super::unix_now())?;
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
        let WriteRequest::ImportCsv { procedure, sha256, digest_key, partial, dry_run } =
            verified.claims.request.clone()
        else {
            return Err(RegistryError::Invalid {
                field: "action".into(),
                message: format!("an import needs an import.csv request, not {}", verified.claims.request.action()),
            });
        };
        let sha256 = sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RegistryError::Invalid {
                field: "sha256".into(),
                message: "must be the file's keyed digest (HMAC-SHA256) as 64 hex digits".into(),
            });
        }
        let digest_key = digest_key.ok_or_else(|| RegistryError::Invalid {
            field: "digest_key".into(),
            message: "sign the file's keyed digest (HMAC-SHA256 under a key agreed with the instance key, with its \
                      digest_key): a plain SHA-256 of a file holding a password lets whoever reads the audit log \
                      test guesses of it"
                .into(),
        })?;
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
            digest_key,
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
        pass: Pass,
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
        // What an all-or-nothing import staged becomes visible in this
        // transaction, with its `completed`; otherwise it is deleted below.
        let mut tx = self.storage.begin(TxKind::Write)?;
        if pass.staged && status == ImportStatus::Completed {
            tx.publish_staged(record.id)?;
        }
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
                    domain: Some(request.procedure.domain.clone()),
                },
                self.audit_mac_keys(),
            )?;
        }
        tx.update_import(&record)?;
        tx.commit()?;
        if pass.staged && status != ImportStatus::Completed {
            // Nobody saw them; any process's sweep deletes what is left if
            // this fails or is cut short.
            if let Err(e) = self.purge_staged(record.id) {
                tracing::warn!(import = record.id, error = %e, "the rows it staged are deleted later");
            }
        }
        progress.start_phase(Phase::Done, rows);
        tracing::info!(import = record.id, status = status.as_str(), message = %record.message, "import finished");
        Ok(record)
    }
}

/// Records an import as failed with `message`; if even that cannot be
/// written, says so in the log (the next start marks it interrupted).
fn record_failure(registry: &Registry, record: &mut ImportRecord, message: &str, progress: &ImportProgress) {
    record.status = ImportStatus::Failed;
    record.finished_at = Some(super::unix_now().max(record.started_at));
    record.message = message.to_owned();
    let saved = registry.storage.begin(TxKind::Write).and_then(|mut tx| {
        tx.update_import(record)?;
        tx.commit()
    });
    match saved {
        Err(save) => tracing::error!(import = record.id, error = %save, "cannot record the failed import"),
        // What it staged is seen by nobody; the sweep retries a failed purge.
        Ok(()) => {
            if let Err(e) = registry.purge_staged(record.id) {
                tracing::warn!(import = record.id, error = %e, "the rows it staged are deleted later");
            }
        }
    }
    progress.start_phase(Phase::Done, record.rows_total);
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
                record_failure(&registry, &mut record, &format!("failed: {e}"), &progress);
                return Err(e);
            }
        };
        // Its end can fail too (a full disk at the final commit): the record
        // then says so, rather than `running` for ever.
        let kept = record.clone();
        registry.finish_import(&request, record, pass, &progress).map_err(|e| {
            let mut record = kept;
            let cause = format!("failed at its end, nothing of it was kept unless it was partial: {e}");
            record_failure(&registry, &mut record, &cause, &progress);
            e
        })
    }

    /// Ends the import as failed before it ran (its report cannot be
    /// written, say), recording `cause`.
    pub fn fail(self, cause: &str) -> ImportRecord {
        let PreparedImport { registry, mut record, progress, .. } = self;
        record_failure(&registry, &mut record, &format!("failed: {cause}"), &progress);
        record
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
        // All or nothing: one pass that stages batches, made visible by the
        // import's end. From the first bad row on it stages nothing more and
        // checks the rest, so that every bad row is reported.
        self.run(Mode::WriteAll, sink)
    }

    fn run(&self, mode: Mode, sink: &mut dyn RowSink) -> Result<Pass, ImportError> {
        let mut mode = mode;
        let storage = &self.registry.storage;
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
        let mut pass = Pass { staged: mode == Mode::WriteAll, ..Pass::default() };
        let mut lease = LeaseClock::new(self.import_id);
        let mut rows: Vec<Record> = Vec::with_capacity(BATCH_ROWS);
        let mut at_end = false;
        while !at_end && !pass.stopped {
            rows.clear();
            while rows.len() < BATCH_ROWS {
                match reader.next_record().map_err(csv_error)? {
                    Some(record) => rows.push(record),
                    None => {
                        at_end = true;
                        break;
                    }
                }
            }
            // Checked in a read transaction: the policy and the look-ups
            // hold no write lock.
            let mut outcomes = self.check_batch(&rows, mode, &hasher, &mut seen, &mut same_file)?;
            if mode == Mode::Validate {
                lease.renew(self.registry)?;
                for outcome in outcomes {
                    if self.progress.is_cancelled() {
                        pass.stopped = true;
                        break;
                    }
                    match outcome {
                        RowOutcome::Bad(error) => self.bad(&mut pass, sink, &error)?,
                        RowOutcome::Unchanged => pass.count_unchanged(self.progress),
                        RowOutcome::Good { .. } => pass.count_good(self.progress),
                    }
                    pass.rows_done += 1;
                    self.progress.row_done();
                }
                continue;
            }
            // Passwords are hashed (slowly, on purpose) outside any
            // transaction, then the batch is written in one short one.
            let secrets = self.hash_passwords(&mut outcomes)?;
            // The write transaction begins at the batch's first row to write
            // (a batch of bad rows takes no write lock); rows checked past a
            // bad one are looked up in a read transaction.
            let mut writer: Option<Box<dyn Tx>> = None;
            let mut reader: Option<Box<dyn Tx>> = None;
            let mut keep = true;
            let created_before = pass.created;
            for ((record, outcome), secret) in rows.iter().zip(outcomes).zip(secrets) {
                if self.progress.is_cancelled() {
                    // A partial import keeps whole batches only: what this
                    // one wrote is rolled back, and not counted.
                    pass.stopped = true;
                    pass.created = created_before;
                    keep = false;
                    break;
                }
                match outcome {
                    RowOutcome::Bad(error) => self.bad(&mut pass, sink, &error)?,
                    RowOutcome::Unchanged => pass.count_unchanged(self.progress),
                    // Past a bad row of this batch: checked, not written.
                    RowOutcome::Good { checked, .. } if mode == Mode::Validate => {
                        let tx = match &mut reader {
                            Some(tx) => tx,
                            None => reader.insert(storage.begin(TxKind::Read)?),
                        };
                        match self.against_existing(tx.as_mut(), record, &checked.pattern, &mut same_file)? {
                            Some(Written::Bad(error)) => self.bad(&mut pass, sink, &error)?,
                            Some(Written::Unchanged) => pass.count_unchanged(self.progress),
                            None | Some(Written::Created) => pass.count_good(self.progress),
                        }
                    }
                    RowOutcome::Good { checked, .. } => {
                        let tx = match &mut writer {
                            Some(tx) => tx,
                            None => {
                                let mut tx = storage.begin(TxKind::Write)?;
                                lease.renew_in(tx.as_mut())?;
                                writer.insert(tx)
                            }
                        };
                        match self.create(tx.as_mut(), record, checked, secret, mode, &mut same_file)? {
                            Written::Created => {
                                pass.created += 1;
                                pass.count_good(self.progress);
                            }
                            Written::Unchanged => pass.count_unchanged(self.progress),
                            Written::Bad(error) => self.bad(&mut pass, sink, &error)?,
                        }
                    }
                }
                pass.rows_done += 1;
                self.progress.row_done();
                if mode == Mode::WriteAll && pass.errors > 0 {
                    // Nothing of it will be seen: stage no more, check the
                    // rest. What this batch staged goes with its rollback,
                    // now, so the write lock is given back at once.
                    mode = Mode::Validate;
                    keep = false;
                    writer = None;
                }
            }
            drop(reader);
            match writer.take() {
                Some(tx) if keep => tx.commit()?,
                other => {
                    // Rolled back before the lease takes a write lock of its own.
                    drop(other);
                    lease.renew(self.registry)?;
                }
            }
        }
        Ok(pass)
    }

    /// Reads a batch's rows' own fields, has the policy validate them (in
    /// evaluations of [`VALIDATION_BATCH`]), and checks them against the
    /// file and, where needed, the store: in one read transaction.
    fn check_batch(
        &self,
        rows: &[Record],
        mode: Mode,
        hasher: &RandomState,
        seen: &mut HashMap<u64, u64>,
        same_file: &mut HashMap<u64, bool>,
    ) -> Result<Vec<RowOutcome>, ImportError> {
        let mut tx = self.registry.storage.begin(TxKind::Read)?;
        let mut outcomes = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(VALIDATION_BATCH) {
            let fields: Vec<Result<(RegistrationFields<'_>, Option<&str>), RowError>> =
                chunk.iter().map(|record| self.row_fields(record)).collect();
            let to_validate: Vec<RegistrationFields<'_>> =
                fields.iter().filter_map(|f| f.as_ref().ok().map(|(fields, _)| *fields)).collect();
            let (tx_back, validations) =
                self.registry.check_registrations(tx, &self.request.procedure, &to_validate, self.now);
            tx = tx_back;
            let mut validations = validations.into_iter();
            for (record, fields) in chunk.iter().zip(fields) {
                outcomes.push(match fields {
                    Err(error) => RowOutcome::Bad(error),
                    Ok((_, password)) => {
                        let validation = validations
                            .next()
                            .unwrap_or_else(|| Err(RegistryError::Policy("no answer to the validation".into())));
                        // A writing pass learns of an existing registration
                        // from the insert itself (one index probe, not two),
                        // unless the row has a password, which is hashed
                        // only for a row that will be written.
                        let look_up = (mode == Mode::Validate || password.is_some()).then_some(&mut *same_file);
                        self.check_row(tx.as_mut(), record, validation, password, hasher, seen, look_up)?
                    }
                });
            }
        }
        Ok(outcomes)
    }

    /// Hashes (and seals, for CMP's MAC) the passwords of the good rows.
    fn hash_passwords(&self, outcomes: &mut [RowOutcome]) -> Result<Vec<Option<Secret>>, ImportError> {
        let mut secrets = Vec::with_capacity(outcomes.len());
        for outcome in outcomes.iter_mut() {
            let RowOutcome::Good { password: Some(p), .. } = outcome else {
                secrets.push(None);
                continue;
            };
            let hash =
                password::hash(p).map_err(|message| RegistryError::Invalid { field: "password".into(), message })?;
            let sealed = match self.registry.sealing_key() {
                Some(key) => Some(
                    crate::sealing::seal(&key.public_text(), p)
                        .map_err(|e| RegistryError::Invalid { field: "password".into(), message: e.to_string() })?,
                ),
                None => None,
            };
            secrets.push(Some(Secret { hash, sealed }));
        }
        Ok(secrets)
    }

    fn bad(&self, pass: &mut Pass, sink: &mut dyn RowSink, error: &RowError) -> Result<(), ImportError> {
        pass.errors += 1;
        self.progress.add_error();
        sink.bad_row(error).map_err(|source| FileError::Io { file: "the import report".into(), source }.into())
    }

    /// A row's own fields, checked before the policy sees them: the column
    /// count, an FQDN, the numbers and the password's length.
    fn row_fields<'r>(&self, record: &'r Record) -> Result<(RegistrationFields<'r>, Option<&'r str>), RowError> {
        let bad = |column: Option<&str>, kind, message: String| RowError {
            row: record.at.row,
            line: record.at.line,
            column: column.map(String::from),
            kind,
            message,
        };
        let c = &self.columns;
        if record.fields.len() != c.count {
            let message = format!("{} fields, but the header has {}", record.fields.len(), c.count);
            return Err(bad(None, RowErrorKind::ColumnCount, message));
        }
        let text = |index: Option<usize>| index.map(|i| record.fields[i].trim()).filter(|v| !v.is_empty());
        let number = |name: &'static str, index: Option<usize>| -> Result<Option<u32>, RowError> {
            match text(index) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| bad(Some(name), RowErrorKind::Invalid, format!("{v:?} is not a whole number"))),
            }
        };
        let Some(fqdn) = text(Some(c.fqdn)) else {
            return Err(bad(Some("fqdn"), RowErrorKind::Invalid, "empty: every row needs an FQDN or pattern".into()));
        };
        let valid_days = number("valid_days", c.valid_days)?;
        let max_enrollments = number("max_enrollments", c.max_enrollments)?;
        // The password is taken as written (spaces count), empty: none.
        let password = c.password.map(|i| record.fields[i].as_str()).filter(|p| !p.is_empty());
        if password.is_some_and(|p| p.len() > password::MAX_PASSWORD_BYTES) {
            let message = format!("longer than {} bytes", password::MAX_PASSWORD_BYTES);
            return Err(bad(Some("password"), RowErrorKind::Invalid, message));
        }
        let fields = RegistrationFields {
            fqdn,
            ip: text(c.ip),
            serial: text(c.serial),
            has_password: password.is_some(),
            valid_days,
            max_enrollments,
        };
        Ok((fields, password))
    }

    /// A row the policy validated: an invalid field, a duplicate in the file
    /// or in the registry, unchanged (imported by this same file), or good.
    #[allow(clippy::too_many_arguments)]
    fn check_row(
        &self,
        tx: &mut dyn Tx,
        record: &Record,
        validation: Result<CheckedRegistration, RegistryError>,
        password: Option<&str>,
        hasher: &RandomState,
        seen: &mut HashMap<u64, u64>,
        look_up: Option<&mut HashMap<u64, bool>>,
    ) -> Result<RowOutcome, ImportError> {
        let bad = |column: &str, kind, message: String| {
            Ok(RowOutcome::Bad(RowError {
                row: record.at.row,
                line: record.at.line,
                column: Some(column.into()),
                kind,
                message,
            }))
        };
        let checked = match validation {
            Ok(checked) => checked,
            Err(RegistryError::Invalid { field, message }) => {
                let column = match field.as_str() {
                    "valid-days" => "valid_days".to_owned(),
                    "max-enrollments" => "max_enrollments".to_owned(),
                    other => other.to_owned(),
                };
                return bad(&column, RowErrorKind::Invalid, message);
            }
            Err(e) => return Err(e.into()),
        };
        let key = hasher.hash_one(&checked.pattern);
        if let Some(first) = seen.get(&key) {
            let message = format!("{} is already in this file at row {first}", checked.pattern);
            return bad("fqdn", RowErrorKind::DuplicateInFile, message);
        }
        seen.insert(key, record.at.row);
        if let Some(same_file) = look_up {
            match self.against_existing(tx, record, &checked.pattern, same_file)? {
                None | Some(Written::Created) => {}
                Some(Written::Unchanged) => return Ok(RowOutcome::Unchanged),
                Some(Written::Bad(error)) => return Ok(RowOutcome::Bad(error)),
            }
        }
        let password = password.map(|p| zeroize::Zeroizing::new(p.to_owned()));
        Ok(RowOutcome::Good { checked, password })
    }

    /// What a registration of the same pattern already in the domain makes of
    /// a row: unchanged (this same file imported it) or a duplicate; `None`
    /// when there is none. `same_file` remembers, per import id, whether it
    /// imported this same file.
    fn against_existing(
        &self,
        tx: &mut dyn Tx,
        record: &Record,
        pattern: &str,
        same_file: &mut HashMap<u64, bool>,
    ) -> Result<Option<Written>, ImportError> {
        let Some(existing) = tx.registration_by_pattern(&self.request.procedure.domain, pattern)? else {
            return Ok(None);
        };
        let from_this_file = match existing.import_id {
            None => false,
            Some(id) => match same_file.get(&id) {
                Some(same) => *same,
                None => {
                    let same = tx
                        .import(id)?
                        .is_some_and(|i| i.sha256 == self.request.sha256 && i.procedure == self.request.procedure.name);
                    same_file.insert(id, same);
                    same
                }
            },
        };
        if from_this_file {
            return Ok(Some(Written::Unchanged));
        }
        Ok(Some(Written::Bad(RowError {
            row: record.at.row,
            line: record.at.line,
            column: Some("fqdn".into()),
            kind: RowErrorKind::DuplicateExisting,
            message: format!(
                "{pattern} is already registered in domain {} (registration {})",
                self.request.procedure.domain, existing.id
            ),
        })))
    }

    /// Writes (or, all or nothing, stages) one good row and its audit
    /// record. A row that collides with a registration made since it was
    /// checked is a bad row, not a failure.
    fn create(
        &self,
        tx: &mut dyn Tx,
        record: &Record,
        checked: CheckedRegistration,
        secret: Option<Secret>,
        mode: Mode,
        same_file: &mut HashMap<u64, bool>,
    ) -> Result<Written, ImportError> {
        let staged = mode == Mode::WriteAll;
        let (password_hash, password_sealed) = match secret {
            None => (None, None),
            Some(Secret { hash, sealed }) => (Some(hash), sealed),
        };
        let procedure = &self.request.procedure;
        let pattern = checked.pattern.clone();
        let policy_sha256 = checked.policy_sha256.clone();
        let mut new = checked.into_new(
            procedure,
            password_hash,
            &self.request.officer.kid,
            self.now,
            Some((self.import_id, record.at.row)),
        );
        new.password_sealed = password_sealed;
        new.staged = staged;
        let id = match tx.insert_registration(&new) {
            Ok(id) => id,
            Err(StoreError::Duplicate { what }) => {
                return match self.against_existing(tx, record, &pattern, same_file)? {
                    Some(outcome) => Ok(outcome),
                    // Held by a row nobody sees yet: another import's, staged.
                    None => Ok(Written::Bad(RowError {
                        row: record.at.row,
                        line: record.at.line,
                        column: Some("fqdn".into()),
                        kind: RowErrorKind::DuplicateExisting,
                        message: format!("{what} already exists"),
                    })),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let staged_note = if staged { ", staged: visible once the import completes" } else { "" };
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
                    "pattern {pattern} in domain {} (import {}, row {}{staged_note})",
                    procedure.domain, self.import_id, record.at.row
                ),
                domain: Some(procedure.domain.clone()),
            },
            self.registry.audit_mac_keys(),
        )?;
        Ok(Written::Created)
    }
}
