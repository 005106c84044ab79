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

impl StoreError {
    /// The same failure again, for another caller it reached (the decisions
    /// of one failed batch): a copy, but for the SQLite error, which is not
    /// `Clone` and becomes [`StoreError::Unavailable`] with its text (a
    /// failure of the system either way).
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::Open { path, message } => StoreError::Open { path: path.clone(), message: message.clone() },
            StoreError::Damaged { path, message } => {
                StoreError::Damaged { path: path.clone(), message: message.clone() }
            }
            StoreError::ReadOnly { path, message } => {
                StoreError::ReadOnly { path: path.clone(), message: message.clone() }
            }
            StoreError::Full { path, message } => StoreError::Full { path: path.clone(), message: message.clone() },
            StoreError::BadUrl { path, message } => StoreError::BadUrl { path: path.clone(), message: message.clone() },
            StoreError::Duplicate { what } => StoreError::Duplicate { what: what.clone() },
            StoreError::Replayed { jti } => StoreError::Replayed { jti: jti.clone() },
            StoreError::Missing(m) => StoreError::Missing(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::SchemaTooNew { found, supported } => {
                StoreError::SchemaTooNew { found: *found, supported: *supported }
            }
            StoreError::Unavailable { database, message } => {
                StoreError::Unavailable { database: database.clone(), message: message.clone() }
            }
            StoreError::Database(e) => StoreError::Unavailable { database: "SQLite".into(), message: e.to_string() },
            StoreError::Postgres(m) => StoreError::Postgres(m.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_again_says_the_same() {
        let errors = [
            StoreError::Full { path: "/d/p.sqlite3".into(), message: "no space".into() },
            StoreError::ReadOnly { path: "/d/p.sqlite3".into(), message: "read-only file system".into() },
            StoreError::Unavailable { database: "postgres://h/db".into(), message: "gone".into() },
            StoreError::Replayed { jti: "cmp:01".into() },
            StoreError::SchemaTooNew { found: 9, supported: 8 },
            StoreError::Postgres("deadlock detected".into()),
        ];
        for e in &errors {
            assert_eq!(e.again().to_string(), e.to_string());
            assert_eq!(std::mem::discriminant(&e.again()), std::mem::discriminant(e));
        }
        // SQLite's own error is not Clone: the system failure keeps its text.
        let sqlite = StoreError::Database(rusqlite::Error::QueryReturnedNoRows);
        let again = sqlite.again();
        assert!(matches!(&again, StoreError::Unavailable { .. }), "{again:?}");
        assert!(again.to_string().contains(&rusqlite::Error::QueryReturnedNoRows.to_string()));
    }
}
