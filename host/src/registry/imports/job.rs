//! One pass over an import's rows ([`Job`]): read a batch, have the policy
//! validate it and look it up in a read transaction, hash its passwords
//! outside any transaction, then write or stage it in one short write
//! transaction. What the pass found ([`Pass`]) is what the import's end
//! records (`mod.rs`).

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::BufReader;

use super::super::RegistryError;
use super::super::import_lease::LeaseClock;
use super::super::writes::{CheckedRegistration, RegistrationFields};
use super::{BATCH_ROWS, ImportError, ImportFile, Request};
use crate::Registry;
use crate::audit::{self, AuditEntry};
use crate::import::{Columns, CsvReader, FileError, ImportProgress, Phase, Record, RowError, RowErrorKind, RowSink};
use crate::password;
use crate::store::{StoreError, Tx, TxKind};

/// Rows the policy validates in one evaluation (one instance).
const VALIDATION_BATCH: usize = 256;

/// What a pass does with good rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Check every row; write nothing.
    Validate,
    /// Stage every row (all or nothing), a batch per transaction.
    WriteAll,
    /// Write good rows, a transaction per batch.
    Batches,
}

/// What one pass over the rows found.
#[derive(Default)]
pub(super) struct Pass {
    pub(super) rows_done: u64,
    /// Good rows (created, or that would be in a dry run).
    pub(super) good: u64,
    pub(super) created: u64,
    pub(super) unchanged: u64,
    pub(super) errors: u64,
    pub(super) stopped: bool,
    /// Rows were staged (an all-or-nothing import): they become visible if
    /// the import completes, and are deleted otherwise.
    pub(super) staged: bool,
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

/// One import in progress.
pub(super) struct Job<'a> {
    pub(super) registry: &'a Registry,
    pub(super) request: &'a Request,
    pub(super) columns: Columns,
    pub(super) file: ImportFile<'a>,
    pub(super) import_id: u64,
    pub(super) rows: u64,
    pub(super) now: u64,
    pub(super) progress: &'a ImportProgress,
}

impl Job<'_> {
    pub(super) fn run_all(&self, sink: &mut dyn RowSink) -> Result<Pass, ImportError> {
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
