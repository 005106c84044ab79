//! Bulk CSV import: reading the file, the columns, progress and the per-row
//! report. The rules themselves (validation, uniqueness, writing, audit) are
//! applied by [`crate::Registry::import`].
//!
//! The file format: a header naming the columns (any order, case-insensitive),
//! then one registration per row.
//!
//! | column | required | meaning |
//! | --- | --- | --- |
//! | `fqdn` | yes | FQDN or pattern |
//! | `ip` | no | IP address the device must present |
//! | `serial` | no | serial number the device must present |
//! | `password` | no | enrollment password (hashed with argon2id on arrival) |
//! | `valid_days` | no | days of validity |
//! | `max_enrollments` | no | enrollments allowed |

pub mod csv;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use serde::Serialize;
use sha2::Sha256;

pub use csv::{CsvError, CsvReader, Position, Record};

/// The columns a file may have.
pub const COLUMNS: [&str; 6] = ["fqdn", "ip", "serial", "password", "valid_days", "max_enrollments"];

/// Why a file cannot be imported at all (as opposed to a bad row).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not readable as CSV.
    #[error("{file}: {source}")]
    Csv {
        /// The file's name.
        file: String,
        /// Why.
        source: CsvError,
    },
    /// A header problem.
    #[error("{file}: header (row 1): {message}")]
    Header {
        /// The file's name.
        file: String,
        /// Why.
        message: String,
    },
    /// A header and no rows.
    #[error("{file}: the file has a header but no rows")]
    NoRows {
        /// The file's name.
        file: String,
    },
    /// The file is not the one that was signed.
    #[error("{file}: it is not the file that was signed (its keyed digest is {found}, the signed request's {signed})")]
    Mismatch {
        /// The file's name.
        file: String,
        /// Signed.
        signed: String,
        /// Found.
        found: String,
    },
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file's name.
        file: String,
        /// Why.
        source: io::Error,
    },
}

/// Where each known column is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// `fqdn`.
    pub fqdn: usize,
    /// `ip`.
    pub ip: Option<usize>,
    /// `serial`.
    pub serial: Option<usize>,
    /// `password`.
    pub password: Option<usize>,
    /// `valid_days`.
    pub valid_days: Option<usize>,
    /// `max_enrollments`.
    pub max_enrollments: Option<usize>,
    /// How many columns the header has.
    pub count: usize,
}

impl Columns {
    /// Reads the header: every name known, none twice, `fqdn` present.
    pub fn from_header(fields: &[String]) -> Result<Columns, String> {
        let mut found: [Option<usize>; 6] = [None; 6];
        for (i, raw) in fields.iter().enumerate() {
            let name = raw.trim().to_ascii_lowercase();
            let Some(k) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(format!(
                    "unknown column {:?} (column {}); the columns are {}",
                    raw,
                    i + 1,
                    COLUMNS.join(", ")
                ));
            };
            if found[k].is_some() {
                return Err(format!("column {name:?} appears twice"));
            }
            found[k] = Some(i);
        }
        let fqdn = found[0].ok_or_else(|| format!("no \"fqdn\" column; the columns are {}", COLUMNS.join(", ")))?;
        Ok(Columns {
            fqdn,
            ip: found[1],
            serial: found[2],
            password: found[3],
            valid_days: found[4],
            max_enrollments: found[5],
            count: fields.len(),
        })
    }

    /// The name of column `index` (from 0).
    pub fn name(&self, index: usize) -> &'static str {
        let all = [Some(self.fqdn), self.ip, self.serial, self.password, self.valid_days, self.max_enrollments];
        all.iter().position(|c| *c == Some(index)).map_or("?", |k| COLUMNS[k])
    }
}

/// A file that was read through once: it is CSV within the limits, its
/// header is good, and these are its keyed digests and row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// HMAC-SHA256 of the bytes under each key given to [`scan`], lowercase hex.
    pub digests: Vec<String>,
    /// Data rows (the header not counted).
    pub rows: u64,
    /// The columns.
    pub columns: Columns,
}

/// HMAC-SHA256 of a file under each of `keys`, lowercase hex, in one read.
pub fn keyed_digests(path: &Path, keys: &[&[u8; 32]]) -> io::Result<Vec<String>> {
    let mut reader = DigestingReader::new(File::open(path)?, keys);
    Ok(reader.finish())
}

/// What an officer's client signs for an import file (`import.csv`'s
/// `sha256` and `digest_key`): HMAC-SHA256 of the file under a key agreed with
/// the instance key `instance_public` ([`crate::sealing::client_digest_key`]),
/// and the ephemeral public key that lets the instance derive it again. A
/// plain SHA-256 of a file holding a password would let anyone who reads the
/// audit log test guesses of it.
pub fn signed_digest(path: &Path, instance_public: &str) -> io::Result<(String, String)> {
    let (ephemeral, key) =
        crate::sealing::client_digest_key(instance_public).map_err(|e| io::Error::other(e.to_string()))?;
    let digest = keyed_digests(path, &[&key])?.pop().unwrap_or_default();
    Ok((digest, ephemeral))
}

/// Reads a whole file once, checking its structure (no database needed), so
/// that a broken file is refused before anything is written, and computing
/// its HMAC-SHA256 under each of `keys` on the way.
pub fn scan(path: &Path, file_name: &str, keys: &[&[u8; 32]]) -> Result<ScannedFile, FileError> {
    let io_error = |source| FileError::Io { file: file_name.into(), source };
    let file = File::open(path).map_err(io_error)?;
    let mut reader = CsvReader::new(BufReader::with_capacity(64 << 10, DigestingReader::new(file, keys)));
    let csv_error = |source| FileError::Csv { file: file_name.into(), source };
    let header = reader
        .next_record()
        .map_err(csv_error)?
        .ok_or(FileError::Csv { file: file_name.into(), source: CsvError::Empty })?;
    let columns = Columns::from_header(&header.fields)
        .map_err(|message| FileError::Header { file: file_name.into(), message })?;
    let mut rows = 0u64;
    while reader.next_record().map_err(csv_error)?.is_some() {
        rows += 1;
    }
    if rows == 0 {
        return Err(FileError::NoRows { file: file_name.into() });
    }
    let digests = reader.into_inner().into_inner().finish();
    Ok(ScannedFile { digests, rows, columns })
}

/// Computes HMAC-SHA256 under each of its keys of what passes through it.
struct DigestingReader<R> {
    inner: R,
    macs: Vec<hmac::Hmac<Sha256>>,
}

impl<R: Read> DigestingReader<R> {
    fn new(inner: R, keys: &[&[u8; 32]]) -> Self {
        use hmac::Mac;
        // A 32-byte key is always a valid HMAC key.
        let macs = keys.iter().filter_map(|k| hmac::Hmac::<Sha256>::new_from_slice(k.as_slice()).ok()).collect();
        DigestingReader { inner, macs }
    }

    /// Reads to the end (so the digests cover the whole file) and returns them.
    fn finish(&mut self) -> Vec<String> {
        use hmac::Mac;
        let mut rest = [0u8; 8192];
        while let Ok(n) = self.read(&mut rest) {
            if n == 0 {
                break;
            }
        }
        std::mem::take(&mut self.macs).into_iter().map(|m| crate::audit::hex(&m.finalize().into_bytes())).collect()
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use hmac::Mac;
        let n = self.inner.read(buf)?;
        for mac in &mut self.macs {
            mac.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// What is wrong with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RowErrorKind {
    /// A field is invalid (the column says which).
    Invalid,
    /// The row has more or fewer fields than the header.
    ColumnCount,
    /// The same pattern appears earlier in the file.
    DuplicateInFile,
    /// The pattern is already registered in the domain.
    DuplicateExisting,
}

/// One bad row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowError {
    /// Row number (the header is row 1).
    pub row: u64,
    /// Line the row starts on.
    pub line: u64,
    /// The column at fault, if one is.
    pub column: Option<String>,
    /// What kind of fault.
    pub kind: RowErrorKind,
    /// Why, in words.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {} (line {})", self.row, self.line)?;
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Where the report's bad rows go (a list, a file, the terminal).
pub trait RowSink {
    /// Takes one bad row.
    fn bad_row(&mut self, error: &RowError) -> io::Result<()>;
}

impl RowSink for Vec<RowError> {
    fn bad_row(&mut self, error: &RowError) -> io::Result<()> {
        self.push(error.clone());
        Ok(())
    }
}

/// The phase of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Reading the file through once (structure, SHA-256).
    Scanning,
    /// Checking every row, writing nothing.
    Validating,
    /// Writing.
    Writing,
    /// Finished.
    Done,
}

/// Live progress of an import, shared between the import and whoever
/// watches it (a progress bar, the REST status); also the way to stop it.
#[derive(Debug, Default)]
pub struct ImportProgress {
    total: AtomicU64,
    done: AtomicU64,
    created: AtomicU64,
    unchanged: AtomicU64,
    errors: AtomicU64,
    phase: AtomicU8,
    cancel: AtomicBool,
}

/// A snapshot of [`ImportProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressSnapshot {
    /// Phase.
    pub phase: Phase,
    /// Rows in the file.
    pub total: u64,
    /// Rows done in this phase.
    pub done: u64,
    /// Good rows so far: created (when writing) or that would be created
    /// (when validating).
    pub created: u64,
    /// Rows already imported from this file before.
    pub unchanged: u64,
    /// Bad rows so far.
    pub errors: u64,
}

impl ImportProgress {
    /// Fresh progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            phase: match self.phase.load(Ordering::Relaxed) {
                0 => Phase::Scanning,
                1 => Phase::Validating,
                2 => Phase::Writing,
                _ => Phase::Done,
            },
            total: self.total.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
            unchanged: self.unchanged.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Asks the import to stop at the next row (an all-or-nothing import then
    /// writes nothing; a partial one keeps its committed batches).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether [`ImportProgress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub(crate) fn start_phase(&self, phase: Phase, total: u64) {
        self.phase.store(
            match phase {
                Phase::Scanning => 0,
                Phase::Validating => 1,
                Phase::Writing => 2,
                Phase::Done => 3,
            },
            Ordering::Relaxed,
        );
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.created.store(0, Ordering::Relaxed);
        self.unchanged.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }

    pub(crate) fn row_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_unchanged(&self) {
        self.unchanged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = Columns::from_header(&names(&["IP", " fqdn ", "password"])).unwrap();
        assert_eq!((c.fqdn, c.ip, c.password, c.count), (1, Some(0), Some(2), 3));
        assert_eq!(c.name(2), "password");
        assert!(Columns::from_header(&names(&["ip"])).unwrap_err().contains("no \"fqdn\""));
        assert!(Columns::from_header(&names(&["fqdn", "colour"])).unwrap_err().contains("unknown column \"colour\""));
        assert!(Columns::from_header(&names(&["fqdn", "FQDN"])).unwrap_err().contains("twice"));
    }

    #[test]
    fn scan_hashes_the_whole_file_and_counts_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let text = "fqdn,ip\r\na.example.com,\r\n\"b.example.com\",10.0.0.1\r\n";
        std::fs::write(&path, text).unwrap();
        let key = [7u8; 32];
        let scanned = scan(&path, "a.csv", &[&key]).unwrap();
        assert_eq!(scanned.rows, 2);
        assert_eq!(scanned.digests, keyed_digests(&path, &[&key]).unwrap());
        use hmac::Mac;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(text.as_bytes());
        assert_eq!(scanned.digests[0], crate::audit::hex(&mac.finalize().into_bytes()));
        std::fs::write(&path, "fqdn\n").unwrap();
        assert!(matches!(scan(&path, "a.csv", &[]), Err(FileError::NoRows { .. })));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(scan(&path, "a.csv", &[]), Err(FileError::Csv { source: CsvError::Empty, .. })));
    }
}
