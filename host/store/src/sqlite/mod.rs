//! The embedded default backend: SQLite (bundled) in WAL mode with
//! `synchronous=FULL` and foreign keys on.
//!
//! This file opens the database (connections, the busy handler, stand-by on
//! a full or read-only disk, migrations) and runs transactions
//! (`SqliteTx`); each role of the store is implemented in its own file
//! (`registrations.rs`, `imports.rs`...), over the row readers of `rows.rs`;
//! `file_guard.rs` notices a database file replaced under the process.

mod acme;
mod audit_log;
mod certificates;
mod directory;
mod file_guard;
mod imports;
mod instance;
mod nodes;
mod policy_versions;
mod registrations;
mod rows;
mod wal_header;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use file_guard::{FileGuard, wal_path};
use rows::is_unique_violation;
use rusqlite::{Connection, OptionalExtension, params};

use super::schema::MIGRATIONS;
use super::{ImportRecord, NewRegistration, Storage, StoreError, Tx, TxKind};

/// How long a writer waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's busy handler: retries every millisecond for the first second,
/// then every 10 ms, until [`BUSY_TIMEOUT`]. (SQLite's own `busy_timeout`
/// sleeps up to 100 ms between tries, so a writer waiting behind a short
/// transaction, such as one batch of an import, waited far longer than the
/// lock was held.)
fn wait_for_the_lock(tries: i32) -> bool {
    const FINE: i32 = 1000;
    let coarse = (BUSY_TIMEOUT.as_millis() as i32 - FINE) / 10;
    match tries {
        t if t < FINE => std::thread::sleep(Duration::from_millis(1)),
        t if t < FINE + coarse => std::thread::sleep(Duration::from_millis(10)),
        _ => return false,
    }
    true
}

/// How every connection is set up: WAL, full sync, foreign keys, and a page
/// cache of 16 MiB (SQLite's default of 2 MiB spills a bulk import's
/// transaction to the WAL many times over, and rereads a large index).
pub const CONNECTION_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;";

/// Prepared statements kept per connection (more than this file has).
const STATEMENT_CACHE: usize = 96;

/// Connections kept open for reuse.
const POOL_SIZE: usize = 8;

/// SQLite storage in one database file.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The files this process opened, and a fault once they are not.
    files: FileGuard,
    /// One connection kept open for as long as the storage: an in-memory
    /// database lives as long as it does, and a file's WAL is never deleted
    /// and created anew under the running process (SQLite deletes it when
    /// its last connection closes, as happens when errors close every
    /// pooled one), which the file guard would take for a replaced WAL.
    anchor: Mutex<Option<Connection>>,
    /// Set while the database cannot be written (see [`StandBy`]).
    stand_by: Mutex<Option<StandBy>>,
    /// A file (not a database in memory): its anchor's `data_version` is
    /// the change token ([`Storage::change_token`]).
    on_disk: bool,
    /// The WAL-index header as the anchor maps it, read without a lock for
    /// the change token; decided once, on the first token asked for
    /// (`None`: it could not be mapped, and `data_version` is the token).
    header: std::sync::OnceLock<Option<wal_header::WalHeader>>,
}

/// A database that could not be opened for writing at start: a full disk
/// (SQLite cannot even create its shared-memory index), a read-only file
/// system. Rather than refuse to start, the storage serves reads from the
/// database file alone (SQLite's `immutable` mode: no locks, no
/// shared-memory index), which is exact because it is entered only when no
/// WAL holds writes the file lacks, and checked again before every read.
/// Writes are refused with the cause; at most once per
/// [`STAND_BY_RETRY`] a transaction tries to open the database for writing
/// again, and once that works the storage is what it would have been.
struct StandBy {
    cause: Unwritable,
    tried: std::time::Instant,
}

/// Why a database cannot be written now, in the words of the failed open.
enum Unwritable {
    /// The disk is full.
    Full(String),
    /// The file, its folder or its file system is read-only.
    ReadOnly(String),
}

impl Unwritable {
    /// The refusal of a write to the database at `path`.
    fn error(&self, path: &Path) -> StoreError {
        let path = path.display().to_string();
        match self {
            Unwritable::Full(message) => StoreError::Full { path, message: message.clone() },
            Unwritable::ReadOnly(message) => StoreError::ReadOnly { path, message: message.clone() },
        }
    }
}

/// How often a storage in stand-by tries to become writable again.
const STAND_BY_RETRY: Duration = Duration::from_secs(1);

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let storage = SqliteStorage {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                files: FileGuard::default(),
                anchor: Mutex::new(None),
                stand_by: Mutex::new(None),
                on_disk: true,
                header: std::sync::OnceLock::new(),
            }),
        };
        match storage.open_for_writing() {
            Ok(()) => Ok(storage),
            Err(e) => match storage.cannot_write_now(e) {
                Ok(cause) => {
                    let refusal = cause.error(path);
                    schema_is_current(&storage.stand_by_reads()?, &refusal)?;
                    tracing::warn!(database = %path.display(), "{refusal}: serving reads only until it can be written");
                    *lock(&storage.inner.stand_by) = Some(StandBy { cause, tried: std::time::Instant::now() });
                    Ok(storage)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Opens the database for writing: migrations, the anchor connection,
    /// the files to guard.
    fn open_for_writing(&self) -> Result<(), StoreError> {
        let mut conn = self.connect_new()?;
        migrate(&mut conn)?;
        self.release(conn);
        let anchor = self.connect_new()?;
        *lock(&self.inner.anchor) = Some(anchor);
        self.inner.files.remember(&self.inner.path);
        Ok(())
    }

    /// Whether `e`, opening the database, means it cannot be written now
    /// (and why) rather than anything else (returned as it is). A file
    /// written beside the database tells.
    fn cannot_write_now(&self, e: StoreError) -> Result<Unwritable, StoreError> {
        if !matches!(e, StoreError::Open { .. } | StoreError::Database(_)) {
            return Err(e);
        }
        let folder = match self.inner.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let probe = folder.join(format!(".prereg-write-probe-{}", std::process::id()));
        let written = std::fs::write(&probe, [0u8; 64 << 10]).and_then(|()| std::fs::File::open(&probe)?.sync_all());
        let _ = std::fs::remove_file(&probe);
        let message = e.to_string();
        match written {
            Err(io) if io.kind() == std::io::ErrorKind::StorageFull => Ok(Unwritable::Full(message)),
            Err(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                Ok(Unwritable::ReadOnly(format!("{message} ({io})")))
            }
            _ => Err(e),
        }
    }

    /// A read-only connection for a storage in stand-by: to the database
    /// file alone (`immutable`) when no WAL holds writes it lacks; otherwise
    /// one that reads the WAL too, through an index SQLite builds in its own
    /// memory (`readonly_shm`) since none can be written on the disk; refused
    /// when even that fails, rather than serve a stale file.
    fn stand_by_reads(&self) -> Result<Connection, StoreError> {
        let path = self.inner.path.display().to_string();
        let wal = std::fs::metadata(wal_path(&self.inner.path)).map_or(0, |m| m.len());
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let open = |parameter: &str| -> Result<Connection, rusqlite::Error> {
            let uri = format!("file:{}?{parameter}", uri_path(&self.inner.path));
            let conn = Connection::open_with_flags(uri, flags)?;
            // Reading the schema is where a WAL that cannot be read fails.
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(conn)
        };
        if wal == 0 {
            return open("immutable=1").map_err(|e| StoreError::Open { path, message: e.to_string() });
        }
        open("readonly_shm=1").map_err(|e| StoreError::Open {
            path,
            message: format!(
                "it cannot be written now, and its write-ahead log holds {wal} bytes of writes not yet in the \
                 database file, which cannot be read without writing ({e}): free space (or make it writable) and \
                 start again"
            ),
        })
    }

    /// In stand-by: tries (at most once per [`STAND_BY_RETRY`]) to open the
    /// database for writing again. `Ok(None)`: it is writable (no longer in
    /// stand-by); `Ok(Some(cause))`: still not.
    fn leave_stand_by(&self) -> Result<Option<StoreError>, StoreError> {
        let mut stand_by = lock(&self.inner.stand_by);
        let Some(state) = stand_by.as_mut() else { return Ok(None) };
        if state.tried.elapsed() >= STAND_BY_RETRY {
            state.tried = std::time::Instant::now();
            match self.open_for_writing() {
                Ok(()) => {
                    tracing::info!(database = %self.inner.path.display(), "the database can be written again");
                    *stand_by = None;
                    return Ok(None);
                }
                Err(e) => state.cause = self.cannot_write_now(e)?,
            }
        }
        Ok(Some(state.cause.error(&self.inner.path)))
    }

    /// A throwaway database in memory (`prereg policy test`, `prereg policy
    /// bench`): shared by the storage's connections, gone when it is dropped.
    pub fn in_memory() -> Result<Self, StoreError> {
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let path = PathBuf::from(format!("file:prereg-{name}?mode=memory&cache=shared"));
        let anchor = Connection::open(&path)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), message: e.to_string() })?;
        let storage = SqliteStorage {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
                files: FileGuard::default(),
                anchor: Mutex::new(Some(anchor)),
                stand_by: Mutex::new(None),
                // Shared-cache connections are not "other connections" to
                // one another for data_version.
                on_disk: false,
                header: std::sync::OnceLock::new(),
            }),
        };
        let mut conn = storage.connect()?;
        migrate(&mut conn)?;
        storage.release(conn);
        Ok(storage)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        if self.leave_stand_by()?.is_some() {
            return self.stand_by_reads();
        }
        self.connect_new()
    }

    fn connect_new(&self) -> Result<Connection, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: self.inner.path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open(&self.inner.path).map_err(open_err)?;
        conn.busy_handler(Some(wait_for_the_lock)).map_err(open_err)?;
        // Every statement is prepared once per connection and kept.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(CONNECTION_PRAGMAS).map_err(open_err)?;
        Ok(conn)
    }

    /// Returns a connection to the pool, unless it is mid-transaction or
    /// read-only: SQLite opens a connection read-only when the file cannot
    /// be written at that moment (a read-only file or file system), and such
    /// a connection would go on refusing writes after the file is writable
    /// again.
    fn release(&self, conn: Connection) {
        if let Ok(mut idle) = self.inner.idle.lock()
            && idle.len() < POOL_SIZE
            && conn.is_autocommit()
            && !is_read_only(&conn)
        {
            idle.push(conn);
        }
    }

    /// A connection that can write: a pooled one, or a new one; refuses,
    /// naming the cause, when the file cannot be written now.
    fn connect_writable(&self) -> Result<Connection, StoreError> {
        if let Some(cause) = self.leave_stand_by()? {
            return Err(cause);
        }
        let conn = self.connect()?;
        if !is_read_only(&conn) {
            return Ok(conn);
        }
        drop(conn);
        // A pooled connection may predate the change: a new one tells.
        let conn = self.connect_new()?;
        if is_read_only(&conn) {
            return Err(StoreError::ReadOnly {
                path: self.inner.path.display().to_string(),
                message: "the database file (or its folder or file system) cannot be written now".into(),
            });
        }
        Ok(conn)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A path as the path part of an SQLite URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn is_read_only(conn: &Connection) -> bool {
    conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true)
}

/// A database opened in stand-by must need no migration (which would be a
/// write): says so, naming why it cannot be written, when it does.
fn schema_is_current(conn: &Connection, cause: &StoreError) -> Result<(), StoreError> {
    let version = schema_version(conn)?;
    let supported = MIGRATIONS.len() as i64;
    if version < supported {
        return Err(StoreError::Open {
            path: conn.path().unwrap_or_default().to_owned(),
            message: format!(
                "it needs schema migrations (version {version} to {supported}), which cannot be written now: {cause}"
            ),
        });
    }
    Ok(())
}

/// The database's schema version; refused when newer than this program's.
fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew { found: version, supported });
    }
    Ok(version)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version = schema_version(conn)?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(migration.sqlite)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStorage {
    /// `PRAGMA data_version` on the anchor connection: the change token
    /// where the WAL-index header cannot be read.
    fn data_version(&self) -> Result<Option<u64>, StoreError> {
        if !self.inner.on_disk || lock(&self.inner.stand_by).is_some() {
            return Ok(None);
        }
        let anchor = lock(&self.inner.anchor);
        let Some(conn) = anchor.as_ref() else { return Ok(None) };
        let version: i64 = conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?;
        Ok(Some(version as u64))
    }

    /// Checks the files ([`FileGuard`]). When the WAL was just removed, the
    /// writes it held are still readable through this process's open
    /// connections: they are checkpointed into the database file, so that
    /// what was acknowledged survives the restart the fault asks for.
    fn guard(&self) -> Result<(), StoreError> {
        let checked = self.inner.files.check(&self.inner.path);
        if checked.is_err() && self.inner.files.take_rescue() {
            let rescued = self.connect().and_then(|conn| {
                let result = conn
                    .query_row("PRAGMA wal_checkpoint(FULL)", [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(2)?)))
                    .map_err(StoreError::from);
                self.release(conn);
                result
            });
            match rescued {
                Ok((0, frames)) => tracing::warn!(
                    database = %self.inner.path.display(),
                    frames,
                    "the removed write-ahead log was checkpointed into the database file: acknowledged writes are kept"
                ),
                Ok(_) => {
                    tracing::error!(database = %self.inner.path.display(), "the removed write-ahead log could not be checkpointed whole (busy)")
                }
                Err(e) => {
                    tracing::error!(database = %self.inner.path.display(), error = %e, "the removed write-ahead log could not be checkpointed")
                }
            }
        }
        checked
    }

    /// `PRAGMA quick_check`: a damaged database is refused, naming the file.
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let conn = self.connect()?;
        let problems: Vec<String> =
            conn.prepare("PRAGMA quick_check")?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
        self.release(conn);
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        Err(StoreError::Damaged {
            path: self.inner.path.display().to_string(),
            message: format!(
                "it fails SQLite's integrity check ({}); restore it from a backup (prereg migrate copies a sound one)",
                shown.join("; ")
            ),
        })
    }
}

impl Storage for SqliteStorage {
    fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx>, StoreError> {
        let conn = match kind {
            TxKind::Write => {
                self.guard()?;
                self.connect_writable()?
            }
            TxKind::Read => self.connect()?,
        };
        if let Err(e) = conn.execute_batch(match kind {
            TxKind::Read => "BEGIN DEFERRED",
            TxKind::Write => "BEGIN IMMEDIATE",
        }) {
            // Not returned to the pool: a connection that failed to begin
            // (an I/O error, a read-only file) is opened anew next time.
            drop(conn);
            return Err(e.into());
        }
        Ok(Box::new(SqliteTx {
            conn: Some(conn),
            storage: self.clone(),
            inserted: None,
            write: kind == TxKind::Write,
            savepoint: None,
        }))
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.inner.path.display())
    }

    /// The WAL-index header, read without a lock as SQLite's readers read
    /// it ([`wal_header`]): any commit of any connection of any process
    /// changes it. Where the header cannot be mapped, `PRAGMA data_version`
    /// on the anchor connection, which never writes (it opens a read
    /// transaction of its own: a look at the shared-memory index, behind
    /// the anchor's mutex). The two are never mixed: which one a storage
    /// uses is decided once.
    fn change_token(&self) -> Result<Option<u64>, StoreError> {
        if let Some(header) = self.inner.header.get() {
            return match header {
                // A header being rewritten all the while: read in a transaction.
                Some(header) => Ok(header.token()),
                None => self.data_version(),
            };
        }
        if !self.inner.on_disk || lock(&self.inner.stand_by).is_some() {
            return Ok(None);
        }
        let anchor = lock(&self.inner.anchor);
        let Some(conn) = anchor.as_ref() else { return Ok(None) };
        // The anchor maps the WAL index when it first reads.
        let _: i64 = conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?;
        let header = self.inner.header.get_or_init(|| wal_header::WalHeader::map(conn));
        drop(anchor);
        match header {
            Some(header) => Ok(header.token()),
            None => self.data_version(),
        }
    }

    /// From the mapped WAL-index header only: never `PRAGMA data_version`,
    /// whose numbers count no commits.
    fn counted_change_token(&self) -> Option<(u64, u32)> {
        self.inner.header.get().and_then(Option::as_ref).and_then(wal_header::WalHeader::counted_token)
    }

    fn check_integrity(&self) -> Result<(), StoreError> {
        self.quick_check()
    }
}

/// A transaction on a pooled connection.
struct SqliteTx {
    conn: Option<Connection>,
    storage: SqliteStorage,
    /// The ids this transaction inserted, logged as one change at commit.
    inserted: Option<(u64, u64)>,
    /// A write transaction (its commit checks the files first).
    write: bool,
    /// What `inserted` was at the savepoint, if one is held.
    savepoint: Option<Option<(u64, u64)>>,
}

impl crate::registrations::RowInsert for SqliteTx {
    fn insert_registration_row(&mut self, r: &NewRegistration) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO registrations (domain, procedure, pattern, index_key, ip, serial, password_hash, expires_at, \
             max_enrollments, state, created_by, created_at, import_id, import_row, password_sealed, staged_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            r.domain,
            r.procedure,
            r.pattern,
            r.index_key,
            r.ip,
            r.serial,
            r.password_hash,
            r.expires_at.map(|v| v as i64),
            r.max_enrollments,
            r.created_by,
            r.created_at as i64,
            r.import.map(|(id, _)| id as i64),
            r.import.map(|(_, row)| row as i64),
            r.password_sealed,
            r.import.filter(|_| r.staged).map(|(id, _)| id as i64)
        ])
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate { what: format!("pattern {:?} in domain {:?}", r.pattern, r.domain) }
            } else {
                e.into()
            }
        })?;
        Ok(conn.last_insert_rowid() as u64)
    }

    fn collision(&mut self, r: &NewRegistration) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let held: Option<(i64, Option<i64>, Option<String>)> = conn
            .prepare_cached(
                "SELECT r.id, r.staged_by, i.status FROM registrations r LEFT JOIN imports i ON i.id = r.staged_by \
                 WHERE r.domain = ?1 AND r.pattern = ?2",
            )?
            .query_row(params![r.domain, r.pattern], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        match held {
            Some((id, Some(import), status)) => match status.as_deref() {
                Some("completed") => Ok(false),
                Some("running") => Err(super::staged_collision(r, import as u64)),
                _ => {
                    conn.prepare_cached("DELETE FROM registrations WHERE id = ?1")?.execute([id])?;
                    Ok(true)
                }
            },
            _ => Ok(false),
        }
    }

    fn inserted_range(&mut self) -> &mut Option<(u64, u64)> {
        &mut self.inserted
    }
}

impl SqliteTx {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or_else(|| StoreError::Missing("transaction already finished".into()))
    }

    /// Writes an import record with the id `id`, or a new one (`None`: SQLite
    /// hands out the next); returns its id.
    fn write_import(&mut self, i: &ImportRecord, id: Option<u64>) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO imports (id, sha256, procedure, file_name, partial, dry_run, officer, status, rows_total, \
             rows_done, created, unchanged, errors, started_at, finished_at, message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?
        .execute(params![
            id.map(|v| v as i64),
            i.sha256,
            i.procedure,
            i.file_name,
            i.partial,
            i.dry_run,
            i.officer,
            i.status.as_str(),
            i.rows_total as i64,
            i.rows_done as i64,
            i.created as i64,
            i.unchanged as i64,
            i.errors as i64,
            i.started_at as i64,
            i.finished_at.map(|v| v as i64),
            i.message
        ])?;
        Ok(conn.last_insert_rowid() as u64)
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.storage.release(conn);
        }
    }
}

/// The one savepoint a transaction holds ([`Tx::savepoint`]).
const SAVEPOINT: &str = "prereg_step";

impl Tx for SqliteTx {
    fn savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.is_some() {
            self.release_savepoint()?;
        }
        self.conn()?.execute_batch(&format!("SAVEPOINT {SAVEPOINT}"))?;
        self.savepoint = Some(self.inserted);
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.take().is_some() {
            self.conn()?.execute_batch(&format!("RELEASE {SAVEPOINT}"))?;
        }
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        let Some(inserted) = self.savepoint.take() else {
            return Err(StoreError::Missing("no savepoint to roll back to".into()));
        };
        self.conn()?.execute_batch(&format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}"))?;
        self.inserted = inserted;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let conn = self.conn.take().ok_or_else(|| StoreError::Missing("transaction already finished".into()))?;
        // The inserts of this transaction, as one change; ids are handed out
        // in order under the write lock, so the range holds only its own
        // rows (and ids it deleted again, which the log has too).
        let logged = match self.inserted {
            Some((first, last)) => conn
                .prepare_cached("INSERT INTO registration_changes (first_id, last_id) VALUES (?1, ?2)")
                .and_then(|mut stmt| stmt.execute([first as i64, last as i64]))
                .map(|_| ()),
            None => Ok(()),
        };
        // A file removed since the transaction began: the commit would be
        // acknowledged and lost.
        if self.write
            && let Err(e) = self.storage.inner.files.check(&self.storage.inner.path)
        {
            // Rolled back first: the rescue needs no writer in the way.
            let _ = conn.execute_batch("ROLLBACK");
            self.storage.release(conn);
            let _ = self.storage.guard();
            return Err(e);
        }
        let result = logged.and_then(|()| conn.execute_batch("COMMIT"));
        match &result {
            Ok(()) => self.storage.release(conn),
            // A failed commit (disk full, an I/O error, a read-only file):
            // rolled back, and the connection closed rather than pooled.
            Err(_) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
            }
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_run_in_wal_mode_with_full_sync_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("t.sqlite3")).unwrap();
        let conn = storage.connect().unwrap();
        let pragma = |name: &str| {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, rusqlite::types::Value>(0)).unwrap()
        };
        assert_eq!(pragma("journal_mode"), rusqlite::types::Value::Text("wal".into()));
        assert_eq!(pragma("synchronous"), rusqlite::types::Value::Integer(2)); // FULL
        assert_eq!(pragma("foreign_keys"), rusqlite::types::Value::Integer(1));
        assert_eq!(pragma("user_version"), rusqlite::types::Value::Integer(MIGRATIONS.len() as i64));
        // Foreign keys bite: a registration for a procedure that does not exist.
        let mut tx = storage.begin(TxKind::Write).unwrap();
        let orphan = NewRegistration {
            password_sealed: None,
            domain: "D".into(),
            procedure: "nope".into(),
            pattern: "a.example.com".into(),
            index_key: "=a.example.com".into(),
            ip: None,
            serial: None,
            password_hash: None,
            expires_at: None,
            max_enrollments: None,
            created_by: "k".into(),
            created_at: 0,
            import: None,
            staged: false,
        };
        assert!(tx.insert_registration(&orphan).is_err());
    }

    #[test]
    fn reopening_runs_no_migration_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        drop(SqliteStorage::open(&path).unwrap());
        let storage = SqliteStorage::open(&path).unwrap();
        let mut tx = storage.begin(TxKind::Read).unwrap();
        assert_eq!(tx.instance_id().unwrap(), None);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 999").unwrap();
        assert!(matches!(SqliteStorage::open(&path), Err(StoreError::SchemaTooNew { found: 999, .. })));
    }
}
