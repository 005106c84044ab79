//! Errors of the storage module.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file or folder could not be opened or created.
    #[error("cannot open the database {path}: {message}")]
    Open {
        /// The database path.
        path: String,
        /// Why.
        message: String,
    },
    /// The database's files are not what this process opened (removed,
    /// replaced), or the database fails its integrity check: nothing more
    /// is written, so that nothing is acknowledged that would be lost.
    #[error("the database {path} is damaged: {message}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The database cannot be written now (a read-only file, folder or file
    /// system); reads go on.
    #[error("the database {path} is read-only: {message}")]
    ReadOnly {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The disk holding the database is full: nothing can be written now;
    /// reads go on.
    #[error("the disk holding the database {path} is full: {message}")]
    Full {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The database URL asks for something that cannot be done (an unknown
    /// `sslmode`, `verify-full` without `sslrootcert`, a root file that
    /// cannot be read): the operator's input, before any connection.
    #[error("the database URL {path}: {message}")]
    BadUrl {
        /// The URL, without its password.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The same pattern is already registered in this domain (or another
    /// uniqueness rule).
    #[error("{what} already exists")]
    Duplicate {
        /// What collided.
        what: String,
    },
    /// A single-use request id was used before.
    #[error("request id {jti:?} was already used (replayed request)")]
    Replayed {
        /// The id.
        jti: String,
    },
    /// A row refers to something that does not exist.
    #[error("{0}")]
    Missing(String),
    /// The stored data is not what the schema promises.
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// The database is newer than this program.
    #[error("the database schema version {found} is newer than this prereg supports ({supported})")]
    SchemaTooNew {
        /// Found.
        found: i64,
        /// Supported.
        supported: i64,
    },
    /// The database cannot serve now (the server is down, restarting or
    /// unreachable, or every connection is busy); the request may be retried.
    #[error("the database {database} is unavailable: {message}")]
    Unavailable {
        /// Which.
        database: String,
        /// Why.
        message: String,
    },
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// Any other PostgreSQL error.
    #[error("database error: {0}")]
    Postgres(String),
}
