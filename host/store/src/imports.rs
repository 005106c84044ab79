//! Bulk imports: their records, the leases of running ones, and the rows an all-or-nothing import
//! stages until it completes.

use serde::Serialize;

use super::StoreError;

/// Who runs an import, and when it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLease {
    /// The import.
    pub id: u64,
    /// The process running it (`host:pid:start`), `None` for imports
    /// started by a prereg older than leases.
    pub owner: Option<String>,
    /// Unix seconds of its owner's last renewal.
    pub heartbeat_at: Option<u64>,
}

/// The status of a bulk import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ImportStatus {
    /// Being processed.
    Running,
    /// Done: every good row is written (all rows, unless partial).
    Completed,
    /// Refused: bad rows and not partial, so nothing was written.
    Rejected,
    /// Stopped before the end (shutdown or crash); a partial import left its
    /// committed batches, and running it again completes it.
    Interrupted,
    /// Failed for a reason of the system (storage, policy).
    Failed,
}

impl ImportStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Running => "running",
            ImportStatus::Completed => "completed",
            ImportStatus::Rejected => "rejected",
            ImportStatus::Interrupted => "interrupted",
            ImportStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => ImportStatus::Running,
            "completed" => ImportStatus::Completed,
            "rejected" => ImportStatus::Rejected,
            "interrupted" => ImportStatus::Interrupted,
            "failed" => ImportStatus::Failed,
            _ => return None,
        })
    }
}

/// A bulk import as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportRecord {
    /// Identifier.
    pub id: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Token procedure.
    pub procedure: String,
    /// The file's name, as given.
    pub file_name: String,
    /// Good rows are written even if some are bad.
    pub partial: bool,
    /// Validation only.
    pub dry_run: bool,
    /// Officer key id.
    pub officer: String,
    /// Status.
    pub status: ImportStatus,
    /// Data rows in the file.
    pub rows_total: u64,
    /// Rows processed so far.
    pub rows_done: u64,
    /// Registrations created.
    pub created: u64,
    /// Rows already imported from this same file earlier.
    pub unchanged: u64,
    /// Bad rows.
    pub errors: u64,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds.
    pub finished_at: Option<u64>,
    /// Summary in words.
    pub message: String,
}

/// Bulk imports: their records, the leases of running ones, and the rows an all-or-nothing import
/// stages until it completes.
pub trait Imports {
    /// Writes an import record as it was stored elsewhere, with its id.
    fn restore_import(&mut self, import: &ImportRecord) -> Result<(), StoreError>;

    /// Records a new import; returns its id.
    fn insert_import(&mut self, import: &ImportRecord) -> Result<u64, StoreError>;

    /// Updates an import's status, counts and message.
    fn update_import(&mut self, import: &ImportRecord) -> Result<(), StoreError>;

    /// An import by id.
    fn import(&mut self, id: u64) -> Result<Option<ImportRecord>, StoreError>;

    /// The latest imports, newest first.
    fn imports(&mut self, limit: u32) -> Result<Vec<ImportRecord>, StoreError>;

    /// The leases of the imports that are `running`.
    fn running_imports(&mut self) -> Result<Vec<ImportLease>, StoreError>;

    /// Takes or renews the lease of a running import for `owner`.
    fn renew_import_lease(&mut self, id: u64, owner: &str, now: u64) -> Result<(), StoreError>;

    /// Marks an import `interrupted` (its owner is gone) if it is still
    /// running under the lease `seen`; returns whether it did.
    fn interrupt_import(&mut self, seen: &ImportLease, now: u64) -> Result<bool, StoreError>;

    /// Makes the rows staged by `import` visible: logs them as changed, for
    /// every process's candidate index. Call it in the transaction that marks
    /// the import `completed` (which is what makes them visible).
    fn publish_staged(&mut self, import: u64) -> Result<(), StoreError>;

    /// Deletes up to `limit` rows staged by `import`; returns how many.
    fn purge_staged(&mut self, import: u64, limit: u32) -> Result<u64, StoreError>;

    /// Imports that left staged rows and will never complete (neither
    /// running nor completed).
    fn abandoned_staging(&mut self) -> Result<Vec<u64>, StoreError>;
}
