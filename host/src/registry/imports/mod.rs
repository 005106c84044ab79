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

mod job;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::job::{Job, Pass};
use super::import_lease;
use super::writes::consume_request_id;
use super::writes::verify_signed;
use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::import::{self, Columns, FileError, ImportProgress, Phase, RowSink};
use crate::signing::WriteRequest;
use crate::store::{ImportRecord, ImportStatus, OfficerRecord, ProcedureRecord, StoreError, TxKind};

/// Bad rows a terminal shows before "and N more" (the REST report has all).
pub const MAX_BAD_ROWS_SHOWN: u64 = 1000;

/// Rows per write transaction (a partial import's batch, an all-or-nothing
/// import's staged batch).
pub const BATCH_ROWS: usize = 1000;

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
            consume_request_id(tx.as_mut(), &request.jti.0, &request.officer.kid, request.jti.1, now)?;
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
