//! The embedded default backend: SQLite (bundled) in WAL mode with
//! `synchronous=FULL` and foreign keys on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prereg_core::{Protocol, RegistrationState};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

use super::schema::MIGRATIONS;
use super::{
    AuditRecord, CallerRecord, CertificateRecord, CertificateState, CrlRecord, IdempotentAnswer, ImportLease,
    ImportRecord, ImportStatus, NewRegistration, NodeRecord, OfficerRecord, PolicyVersionRecord, ProcedureRecord,
    RegistrationChange, RegistrationFilter, RegistrationRecord, RevokedCertificate, ShadowDisagreement, ShadowRecord,
    ShadowSide, Storage, StoreError, StoredRegistration, Tx, TxKind,
};

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

/// The identity (device, inode) of the database file and its WAL as this
/// process found them, and the fault it latched once they changed. A file
/// removed or replaced under open connections takes the writes made to it
/// with it: they would be acknowledged and lost at the next start. So every
/// write transaction checks, at its start and before its commit, that the
/// files are still the ones it opened; once they are not, no write is made
/// until a restart looks at the database anew.
#[derive(Default)]
struct FileGuard {
    state: Mutex<GuardState>,
}

#[derive(Default)]
struct GuardState {
    database: Option<(u64, u64)>,
    wal: Option<(u64, u64)>,
    /// The largest size the WAL was seen at. SQLite never makes it shorter
    /// while a connection is open (it is reused from its start, not cut;
    /// there is no `journal_size_limit` and no TRUNCATE checkpoint), and the
    /// anchor connection is always open: a shorter WAL was cut by someone
    /// else, and the writes it held are gone.
    wal_size: u64,
    fault: Option<String>,
    /// The WAL was just found removed: what it holds is still readable
    /// through the open connections, and is to be checkpointed into the
    /// database file before anything else.
    rescue: bool,
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

/// A file's identity (device, inode) and size, from one `stat`.
fn stat(path: &Path) -> Option<((u64, u64), u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let identity = {
        use std::os::unix::fs::MetadataExt as _;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let identity = (0, meta.len());
    Some((identity, meta.len()))
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    stat(path).map(|(identity, _)| identity)
}

fn is_read_only(conn: &Connection) -> bool {
    conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true)
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl FileGuard {
    fn remember(&self, path: &Path) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.database = identity(path);
        let wal = stat(&wal_path(path));
        state.wal = wal.map(|(identity, _)| identity);
        state.wal_size = wal.map_or(0, |(_, size)| size);
    }

    /// Whether a rescue of the removed WAL is due (once).
    fn take_rescue(&self) -> bool {
        std::mem::take(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rescue)
    }

    /// Whether the files are still the ones opened; latches a fault when not.
    fn check(&self, path: &Path) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let damaged = |message: String| StoreError::Damaged { path: path.display().to_string(), message };
        if let Some(fault) = &state.fault {
            return Err(damaged(fault.clone()));
        }
        let Some(database) = state.database else { return Ok(()) };
        let fault = match identity(path) {
            None => Some("the database file was removed while the service ran".to_owned()),
            Some(now) if now != database => Some("the database file was replaced while the service ran".to_owned()),
            Some(_) => match (state.wal, stat(&wal_path(path))) {
                (Some(_), None) => {
                    state.rescue = true;
                    Some("its write-ahead log (-wal) was removed while the service ran".to_owned())
                }
                (Some(was), Some((now, _))) if was != now => {
                    Some("its write-ahead log (-wal) was replaced while the service ran".to_owned())
                }
                (None, now) => {
                    state.wal = now.map(|(identity, _)| identity);
                    state.wal_size = now.map_or(0, |(_, size)| size);
                    None
                }
                (Some(_), Some((_, now))) => {
                    if now < state.wal_size {
                        Some(format!(
                            "its write-ahead log (-wal) was cut from {} to {now} bytes while the service ran",
                            state.wal_size
                        ))
                    } else {
                        state.wal_size = now;
                        None
                    }
                }
            },
        };
        match fault {
            Some(fault) => {
                tracing::error!(database = %path.display(), "{fault}: no more writes until a restart checks the database");
                let message = format!("{fault}; no more writes until a restart checks the database");
                state.fault = Some(message.clone());
                Err(damaged(message))
            }
            None => Ok(()),
        }
    }
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
        Ok(Box::new(SqliteTx { conn: Some(conn), storage: self.clone(), inserted: None, write: kind == TxKind::Write }))
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.inner.path.display())
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
}

impl SqliteTx {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or_else(|| StoreError::Missing("transaction already finished".into()))
    }

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

    /// The row holding `r`'s pattern, after an insert collided with it:
    /// `Ok(true)` if it was staged by an import that will never complete and
    /// is now deleted (insert again), `Err(Duplicate)` naming a running
    /// import that staged it, `Ok(false)` for a registration anyone sees.
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

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation
        && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
}

fn json_list(text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn bad_value(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {value:?}").into(),
    )
}

fn u64_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(idx)? as u64)
}

fn certificate_from(row: &Row<'_>) -> rusqlite::Result<CertificateRecord> {
    let state: String = row.get(3)?;
    Ok(CertificateRecord {
        serial: row.get(0)?,
        transaction: row.get(1)?,
        registration: row.get::<_, Option<i64>>(2)?.map(|r| r as u64),
        state: CertificateState::parse(&state).ok_or_else(|| bad_value("state", &state))?,
        der: row.get(4)?,
        request: row.get(5)?,
        issued_at: row.get::<_, i64>(6)? as u64,
        expires_at: row.get::<_, i64>(7)? as u64,
        revoked_at: row.get::<_, Option<i64>>(8)?.map(|t| t as u64),
        revocation_reason: row.get::<_, Option<i64>>(9)?.and_then(|r| u8::try_from(r).ok()),
    })
}

/// The columns [`certificate_from`] reads, in its order.
const CERTIFICATE_COLUMNS: &str =
    "serial, transaction_id, registration, state, der, request, issued_at, expires_at, revoked_at, revocation_reason";

fn procedure_from(row: &Row<'_>) -> rusqlite::Result<ProcedureRecord> {
    let protocol: String = row.get("protocol")?;
    Ok(ProcedureRecord {
        name: row.get("name")?,
        domain: row.get("domain")?,
        protocol: Protocol::parse(&protocol).ok_or_else(|| bad_value("protocol", &protocol))?,
        require_preregistration: row.get("require_preregistration")?,
        allowed_domains: json_list(&row.get::<_, String>("allowed_domains")?)?,
        certificate_days: row.get("certificate_days")?,
        created_by: row.get("created_by")?,
        created_at: u64_col(row, "created_at")?,
    })
}

fn officer_from(row: &Row<'_>) -> rusqlite::Result<OfficerRecord> {
    Ok(OfficerRecord {
        kid: row.get("kid")?,
        name: row.get("name")?,
        algorithm: row.get("algorithm")?,
        public_key_pem: row.get("public_key_pem")?,
        domains: json_list(&row.get::<_, String>("domains")?)?,
        created_by: row.get("created_by")?,
        created_at: u64_col(row, "created_at")?,
        disabled_at: row.get::<_, Option<i64>>("disabled_at")?.map(|t| t as u64),
    })
}

fn caller_from(row: &Row<'_>) -> rusqlite::Result<CallerRecord> {
    Ok(CallerRecord {
        name: row.get("name")?,
        procedures: json_list(&row.get::<_, String>("procedures")?)?,
        secret_sha256: row.get("secret_sha256")?,
        certificate_sha256: row.get("certificate_sha256")?,
        created_by: row.get("created_by")?,
        created_at: u64_col(row, "created_at")?,
        disabled_at: row.get::<_, Option<i64>>("disabled_at")?.map(|t| t as u64),
    })
}

const REGISTRATION_COLUMNS: &str = "id, domain, procedure, pattern, ip, serial, password_hash IS NOT NULL AS has_password, \
     expires_at, max_enrollments, enrollments, failed_attempts, state, created_by, created_at, import_id";

/// By position, in the order of [`REGISTRATION_COLUMNS`]: looking columns up
/// by name costs more than the rest of the row (index builds read millions).
fn registration_from(row: &Row<'_>) -> rusqlite::Result<RegistrationRecord> {
    let state = row
        .get_ref(11)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(RegistrationRecord {
        id: row.get::<_, i64>(0)? as u64,
        domain: row.get(1)?,
        procedure: row.get(2)?,
        pattern: row.get(3)?,
        ip: row.get(4)?,
        serial: row.get(5)?,
        has_password: row.get(6)?,
        expires_at: row.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        max_enrollments: row.get(8)?,
        enrollments: row.get(9)?,
        failed_attempts: row.get(10)?,
        state: RegistrationState::parse(state).ok_or_else(|| bad_value("state", state))?,
        created_by: row.get(12)?,
        created_at: row.get::<_, i64>(13)? as u64,
        import_id: row.get::<_, Option<i64>>(14)?.map(|v| v as u64),
    })
}

fn import_from(row: &Row<'_>) -> rusqlite::Result<ImportRecord> {
    let status: String = row.get("status")?;
    Ok(ImportRecord {
        id: u64_col(row, "id")?,
        sha256: row.get("sha256")?,
        procedure: row.get("procedure")?,
        file_name: row.get("file_name")?,
        partial: row.get("partial")?,
        dry_run: row.get("dry_run")?,
        officer: row.get("officer")?,
        status: ImportStatus::parse(&status).ok_or_else(|| bad_value("import status", &status))?,
        rows_total: u64_col(row, "rows_total")?,
        rows_done: u64_col(row, "rows_done")?,
        created: u64_col(row, "created")?,
        unchanged: u64_col(row, "unchanged")?,
        errors: u64_col(row, "errors")?,
        started_at: u64_col(row, "started_at")?,
        finished_at: row.get::<_, Option<i64>>("finished_at")?.map(|v| v as u64),
        message: row.get("message")?,
    })
}

fn audit_from(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: u64_col(row, "seq")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
        time: u64_col(row, "time")?,
        actor: row.get("actor")?,
        action: row.get("action")?,
        object: row.get("object")?,
        outcome: row.get("outcome")?,
        reason: row.get("reason")?,
        policy_sha256: row.get("policy_sha256")?,
        request: row.get("request")?,
        detail: row.get("detail")?,
        mac: row.get("mac")?,
        domain: row.get("domain")?,
    })
}

/// One side of a shadow disagreement, from five columns starting at `at`.
fn shadow_side(r: &Row<'_>, at: usize) -> rusqlite::Result<ShadowSide> {
    Ok(ShadowSide {
        sha256: r.get(at)?,
        allowed: r.get(at + 1)?,
        reason: r.get(at + 2)?,
        registration: r.get::<_, Option<i64>>(at + 3)?.map(|id| id as u64),
        explanation: r.get(at + 4)?,
    })
}

impl Tx for SqliteTx {
    fn instance_id(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.conn()?.prepare_cached("SELECT instance_id FROM instance")?.query_row([], |r| r.get(0)).optional()?)
    }

    fn set_instance_id(&mut self, id: &str, now: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("INSERT INTO instance (singleton, instance_id, created_at) VALUES (1, ?1, ?2)")?
            .execute(params![id, now as i64])
            .map_err(|e| {
                if is_unique_violation(&e) { StoreError::Duplicate { what: "the instance".into() } } else { e.into() }
            })?;
        Ok(())
    }

    fn sealing_key(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT sealing_key FROM instance")?
            .query_row([], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn set_sealing_key(&mut self, public: &str) -> Result<(), StoreError> {
        self.conn()?.prepare_cached("UPDATE instance SET sealing_key = ?1")?.execute([public])?;
        Ok(())
    }

    fn procedure(&mut self, name: &str) -> Result<Option<ProcedureRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM procedures WHERE name = ?1")?
            .query_row([name], procedure_from)
            .optional()?)
    }

    fn procedures(&mut self) -> Result<Vec<ProcedureRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT * FROM procedures ORDER BY name")?;
        let rows = stmt.query_map([], procedure_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_procedure(&mut self, p: &ProcedureRecord) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("INSERT OR IGNORE INTO domains (name) VALUES (?1)")?.execute([&p.domain])?;
        conn.prepare_cached("INSERT INTO procedures (name, domain, protocol, require_preregistration, allowed_domains, certificate_days, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?8, ?6, ?7)")?.execute(params![
                p.name,
                p.domain,
                p.protocol.as_str(),
                p.require_preregistration,
                super::to_json(&p.allowed_domains),
                p.created_by,
                p.created_at as i64,
                p.certificate_days
            ],
        )
        .map_err(|e| {
            if is_unique_violation(&e) { StoreError::Duplicate { what: format!("token procedure {:?}", p.name) } } else { e.into() }
        })?;
        Ok(())
    }

    fn officer(&mut self, kid: &str) -> Result<Option<OfficerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM officers WHERE kid = ?1")?
            .query_row([kid], officer_from)
            .optional()?)
    }

    fn officers(&mut self) -> Result<Vec<OfficerRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT * FROM officers ORDER BY name")?;
        let rows = stmt.query_map([], officer_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn disable_officer(&mut self, kid: &str, at: u64) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached("UPDATE officers SET disabled_at = ?2 WHERE kid = ?1 AND disabled_at IS NULL")?
            .execute(params![kid, at as i64])?;
        Ok(changed == 1)
    }

    fn caller(&mut self, name: &str) -> Result<Option<CallerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM callers WHERE name = ?1")?
            .query_row([name], caller_from)
            .optional()?)
    }

    fn caller_by_secret(&mut self, secret_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM callers WHERE secret_sha256 = ?1")?
            .query_row([secret_sha256], caller_from)
            .optional()?)
    }

    fn caller_by_certificate(&mut self, certificate_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM callers WHERE certificate_sha256 = ?1")?
            .query_row([certificate_sha256], caller_from)
            .optional()?)
    }

    fn callers(&mut self) -> Result<Vec<CallerRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT * FROM callers ORDER BY name")?;
        let rows = stmt.query_map([], caller_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_caller(&mut self, c: &CallerRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO callers (name, procedures, secret_sha256, certificate_sha256, created_by, created_at, \
                 disabled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                c.name,
                super::to_json(&c.procedures),
                c.secret_sha256,
                c.certificate_sha256,
                c.created_by,
                c.created_at as i64,
                c.disabled_at.map(|t| t as i64)
            ])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate { what: format!("a caller named {:?} or with that credential", c.name) }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    fn disable_caller(&mut self, name: &str, at: u64) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached("UPDATE callers SET disabled_at = ?2 WHERE name = ?1 AND disabled_at IS NULL")?
            .execute(params![name, at as i64])?;
        Ok(changed == 1)
    }

    fn insert_officer(&mut self, o: &OfficerRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO officers (kid, name, algorithm, public_key_pem, domains, created_by, created_at, \
                 disabled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                o.kid,
                o.name,
                o.algorithm,
                o.public_key_pem,
                super::to_json(&o.domains),
                o.created_by,
                o.created_at as i64,
                o.disabled_at.map(|t| t as i64)
            ])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate { what: format!("an officer named {:?} or with that key", o.name) }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    fn registration(&mut self, id: u64) -> Result<Option<RegistrationRecord>, StoreError> {
        let sql = format!("SELECT {REGISTRATION_COLUMNS} FROM visible_registrations WHERE id = ?1");
        Ok(self.conn()?.prepare_cached(&sql)?.query_row([id as i64], registration_from).optional()?)
    }

    fn registrations(&mut self, filter: &RegistrationFilter) -> Result<Vec<RegistrationRecord>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS} FROM visible_registrations \
             WHERE (?1 IS NULL OR domain = ?1) AND (?2 IS NULL OR state = ?2) AND id > ?3 \
             AND (?5 IS NULL OR procedure = ?5) AND (?6 IS NULL OR pattern LIKE ?6 ESCAPE '\\') \
             AND (?7 IS NULL OR domain IN (SELECT value FROM json_each(?7))) \
             ORDER BY id LIMIT ?4"
        );
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(
                params![
                    filter.domain,
                    filter.state.map(|s| s.as_str()),
                    filter.after_id.unwrap_or(0) as i64,
                    filter.limit.map_or(-1, i64::from),
                    filter.procedure,
                    filter.search.as_deref().map(|t| super::like_pattern(&t.to_ascii_lowercase())),
                    filter.domains.as_deref().map(super::to_json)
                ],
                registration_from,
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn candidates(
        &mut self,
        domain: &str,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<RegistrationRecord>, StoreError> {
        // One indexed equality probe per key; the probe list is short (labels + 2).
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS} FROM visible_registrations \
             WHERE domain = ?1 AND index_key IN (SELECT value FROM json_each(?2)) LIMIT ?3"
        );
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![domain, super::to_json(keys), (limit + 1) as i64], registration_from)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn password_hash(&mut self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT password_hash FROM visible_registrations WHERE id = ?1")?
            .query_row([id as i64], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn insert_certificate(&mut self, c: &CertificateRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO certificates (serial, transaction_id, registration, state, der, request, issued_at, \
                 expires_at, revoked_at, revocation_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                c.serial,
                c.transaction,
                c.registration.map(|r| r as i64),
                c.state.as_str(),
                c.der,
                c.request,
                c.issued_at as i64,
                c.expires_at as i64,
                c.revoked_at.map(|t| t as i64),
                c.revocation_reason.map(i64::from),
            ])?;
        Ok(())
    }

    fn revoke_certificate(&mut self, serial: &str, reason: Option<u8>, at: u64) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached(
                "UPDATE certificates SET revoked_at = ?2, revocation_reason = ?3 \
                 WHERE serial = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![serial, at as i64, reason.map(i64::from)])?;
        Ok(changed == 1)
    }

    fn revoked_certificates(&mut self) -> Result<Vec<RevokedCertificate>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RevokedCertificate {
                    serial: r.get(0)?,
                    revoked_at: r.get::<_, i64>(1)? as u64,
                    reason: r.get::<_, Option<i64>>(2)?.and_then(|c| u8::try_from(c).ok()),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn count_revoked_certificates(&mut self) -> Result<u64, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL")?
            .query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    fn unconfirmed_certificates(&mut self, now: u64, limit: u32) -> Result<Vec<CertificateRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE state = 'held' AND expires_at < ?1 \
             ORDER BY expires_at LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now as i64, limit], certificate_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn latest_crl(&mut self) -> Result<Option<CrlRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT number, this_update, next_update, revoked, der FROM crls ORDER BY number DESC LIMIT 1",
            )?
            .query_row([], |r| {
                Ok(CrlRecord {
                    number: r.get::<_, i64>(0)? as u64,
                    this_update: r.get::<_, i64>(1)? as u64,
                    next_update: r.get::<_, i64>(2)? as u64,
                    revoked: r.get::<_, i64>(3)? as u64,
                    der: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn insert_crl(&mut self, crl: &CrlRecord) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO crls (number, this_update, next_update, revoked, der) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            crl.number as i64,
            crl.this_update as i64,
            crl.next_update as i64,
            crl.revoked as i64,
            crl.der
        ])?;
        // Only the newest is served; older ones are kept a while for an operator.
        conn.prepare_cached("DELETE FROM crls WHERE number < ?1")?.execute([crl.number as i64 - 100])?;
        Ok(())
    }

    fn certificate_by_transaction(&mut self, transaction: &str) -> Result<Option<CertificateRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} \
                 FROM certificates WHERE transaction_id = ?1 ORDER BY issued_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([transaction], certificate_from)
            .optional()?)
    }

    fn certificate_by_serial(&mut self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(&format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = ?1"))?
            .query_row([serial], certificate_from)
            .optional()?)
    }

    fn certificates(&mut self, after: u64, limit: u32) -> Result<Vec<(u64, CertificateRecord)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CERTIFICATE_COLUMNS}, rowid FROM certificates WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![after as i64, limit], |r| Ok((r.get::<_, i64>(10)? as u64, certificate_from(r)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn set_certificate_state(
        &mut self,
        serial: &str,
        from: CertificateState,
        to: CertificateState,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached("UPDATE certificates SET state = ?3 WHERE serial = ?1 AND state = ?2")?
            .execute(params![serial, from.as_str(), to.as_str()])?;
        Ok(changed == 1)
    }

    fn password_sealed(&mut self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT password_sealed FROM visible_registrations WHERE id = ?1")?
            .query_row([id as i64], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn insert_registration(&mut self, r: &NewRegistration) -> Result<u64, StoreError> {
        let inserted = match self.insert_registration_row(r) {
            // A pattern held by a row of an import that will never complete
            // is taken back once (see `collision`).
            Err(StoreError::Duplicate { .. }) if self.collision(r)? => self.insert_registration_row(r),
            other => other,
        };
        let id = inserted?;
        // Staged rows are logged as changed when their import completes.
        if !r.staged {
            self.inserted = Some(match self.inserted {
                Some((first, last)) => (first.min(id), last.max(id)),
                None => (id, id),
            });
        }
        Ok(id)
    }

    fn stored_registrations(&mut self, after: u64, limit: u32) -> Result<Vec<StoredRegistration>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS}, index_key, password_hash, password_sealed, import_row \
             FROM visible_registrations WHERE id > ?1 ORDER BY id LIMIT ?2"
        );
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![after as i64, limit], |r| {
                Ok(StoredRegistration {
                    record: registration_from(r)?,
                    index_key: r.get(15)?,
                    password_hash: r.get(16)?,
                    password_sealed: r.get(17)?,
                    import_row: r.get::<_, Option<i64>>(18)?.map(|v| v as u64),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn restore_registration(&mut self, s: &StoredRegistration) -> Result<(), StoreError> {
        let r = &s.record;
        self.conn()?
            .prepare_cached(
                "INSERT INTO registrations (id, domain, procedure, pattern, index_key, ip, serial, password_hash, \
                 expires_at, max_enrollments, enrollments, failed_attempts, state, created_by, created_at, import_id, \
                 import_row, password_sealed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?
            .execute(params![
                r.id as i64,
                r.domain,
                r.procedure,
                r.pattern,
                s.index_key,
                r.ip,
                r.serial,
                s.password_hash,
                r.expires_at.map(|v| v as i64),
                r.max_enrollments,
                r.enrollments,
                r.failed_attempts,
                r.state.as_str(),
                r.created_by,
                r.created_at as i64,
                r.import_id.map(|v| v as i64),
                s.import_row.map(|v| v as i64),
                s.password_sealed
            ])?;
        self.inserted = Some(match self.inserted {
            Some((first, last)) => (first.min(r.id), last.max(r.id)),
            None => (r.id, r.id),
        });
        Ok(())
    }

    fn restore_import(&mut self, i: &ImportRecord) -> Result<(), StoreError> {
        self.write_import(i, Some(i.id)).map(|_| ())
    }

    fn restore_finish(&mut self) -> Result<(), StoreError> {
        // AUTOINCREMENT already continues after the largest id.
        Ok(())
    }

    fn registration_by_pattern(
        &mut self,
        domain: &str,
        pattern: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let sql =
            format!("SELECT {REGISTRATION_COLUMNS} FROM visible_registrations WHERE domain = ?1 AND pattern = ?2");
        Ok(self.conn()?.prepare_cached(&sql)?.query_row(params![domain, pattern], registration_from).optional()?)
    }

    fn count_registrations_by_state(&mut self) -> Result<Vec<(RegistrationState, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM visible_registrations GROUP BY state")?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(0)?;
                let state = RegistrationState::parse(&state).ok_or_else(|| bad_value("state", &state))?;
                Ok((state, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn update_registration(
        &mut self,
        id: u64,
        state: RegistrationState,
        enrollments: u32,
        failed_attempts: u32,
    ) -> Result<(), StoreError> {
        let n = self
            .conn()?
            .prepare_cached(
                "UPDATE registrations SET state = ?2, enrollments = ?3, failed_attempts = ?4 WHERE id = ?1",
            )?
            .execute(params![id as i64, state.as_str(), enrollments, failed_attempts])?;
        if n == 0 {
            return Err(StoreError::Missing(format!("no registration {id}")));
        }
        Ok(())
    }

    fn delete_registration(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.conn()?.prepare_cached("DELETE FROM registrations WHERE id = ?1")?.execute([id as i64])? > 0)
    }

    fn registration_changes(&mut self, after: u64, limit: u32) -> Result<Vec<RegistrationChange>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, first_id, last_id FROM registration_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![after as i64, limit], |r| {
                Ok(RegistrationChange {
                    seq: r.get::<_, i64>(0)? as u64,
                    first_id: r.get::<_, i64>(1)? as u64,
                    last_id: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn registration_change_range(&mut self) -> Result<(u64, u64), StoreError> {
        // Two rowid probes: MIN and MAX in one query would scan the table.
        let conn = self.conn()?;
        let end = |sql: &str| -> Result<u64, StoreError> {
            let mut stmt = conn.prepare_cached(sql)?;
            Ok(stmt.query_row([], |r| u64_col(r, "seq")).optional()?.unwrap_or(0))
        };
        let oldest = end("SELECT seq FROM registration_changes ORDER BY seq LIMIT 1")?;
        let newest = end("SELECT seq FROM registration_changes ORDER BY seq DESC LIMIT 1")?;
        Ok((oldest, newest))
    }

    fn prune_registration_changes(&mut self, keep: u64) -> Result<u64, StoreError> {
        let n = self
            .conn()?
            .prepare_cached(
                "DELETE FROM registration_changes WHERE seq <= (SELECT MAX(seq) FROM registration_changes) - ?1",
            )?
            .execute([keep.max(1) as i64])?;
        Ok(n as u64)
    }

    fn consume_request_id(&mut self, jti: &str, kid: &str, expires_at: u64, now: u64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        // An expired token is refused before it gets here, so forgetting ids
        // well past their expiry (the margin covers clocks that disagree)
        // cannot let a replay through.
        let forget_before = now.saturating_sub(crate::signing::REPLAY_MARGIN_SECS);
        conn.prepare_cached("DELETE FROM request_ids WHERE expires_at < ?1")?.execute([forget_before as i64])?;
        conn.prepare_cached("INSERT INTO request_ids (jti, kid, expires_at) VALUES (?1, ?2, ?3)")?
            .execute(params![jti, kid, expires_at as i64])
            .map_err(|e| if is_unique_violation(&e) { StoreError::Replayed { jti: jti.into() } } else { e.into() })?;
        Ok(())
    }

    fn request_ids(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT jti, kid, expires_at FROM request_ids ORDER BY jti")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_import(&mut self, i: &ImportRecord) -> Result<u64, StoreError> {
        self.write_import(i, None)
    }

    fn update_import(&mut self, i: &ImportRecord) -> Result<(), StoreError> {
        let n = self
            .conn()?
            .prepare_cached(
                "UPDATE imports SET status = ?2, rows_done = ?3, created = ?4, unchanged = ?5, errors = ?6, \
             finished_at = ?7, message = ?8 WHERE id = ?1",
            )?
            .execute(params![
                i.id as i64,
                i.status.as_str(),
                i.rows_done as i64,
                i.created as i64,
                i.unchanged as i64,
                i.errors as i64,
                i.finished_at.map(|v| v as i64),
                i.message
            ])?;
        if n == 0 {
            return Err(StoreError::Missing(format!("no import {}", i.id)));
        }
        Ok(())
    }

    fn import(&mut self, id: u64) -> Result<Option<ImportRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM imports WHERE id = ?1")?
            .query_row([id as i64], import_from)
            .optional()?)
    }

    fn imports(&mut self, limit: u32) -> Result<Vec<ImportRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT * FROM imports ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit], import_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn running_imports(&mut self) -> Result<Vec<ImportLease>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT id, owner, heartbeat_at FROM imports WHERE status = 'running'")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ImportLease {
                    id: u64_col(r, "id")?,
                    owner: r.get(1)?,
                    heartbeat_at: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn renew_import_lease(&mut self, id: u64, owner: &str, now: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("UPDATE imports SET owner = ?2, heartbeat_at = ?3 WHERE id = ?1")?
            .execute(params![id as i64, owner, now as i64])?;
        Ok(())
    }

    fn interrupt_import(&mut self, seen: &ImportLease, now: u64) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .prepare_cached(
                "UPDATE imports SET status = 'interrupted', finished_at = ?2, message = ?3 \
                 WHERE id = ?1 AND status = 'running' AND owner IS ?4 AND heartbeat_at IS ?5",
            )?
            .execute(params![
                seen.id as i64,
                now as i64,
                super::INTERRUPTED_MESSAGE,
                seen.owner,
                seen.heartbeat_at.map(|v| v as i64)
            ])?;
        Ok(n == 1)
    }

    fn publish_staged(&mut self, import: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO registration_changes (first_id, last_id) \
                 SELECT MIN(id), MAX(id) FROM registrations WHERE staged_by = ?1 HAVING COUNT(*) > 0",
            )?
            .execute([import as i64])?;
        Ok(())
    }

    fn purge_staged(&mut self, import: u64, limit: u32) -> Result<u64, StoreError> {
        let n = self
            .conn()?
            .prepare_cached(
                "DELETE FROM registrations WHERE id IN \
                 (SELECT id FROM registrations WHERE staged_by = ?1 ORDER BY id LIMIT ?2)",
            )?
            .execute(params![import as i64, limit])?;
        Ok(n as u64)
    }

    fn abandoned_staging(&mut self) -> Result<Vec<u64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT staged_by FROM registrations WHERE staged_by IS NOT NULL \
             AND staged_by NOT IN (SELECT id FROM imports WHERE status IN ('running', 'completed'))",
        )?;
        let rows = stmt.query_map([], |r| u64_col(r, "staged_by"))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_policy(&mut self, r: &PolicyVersionRecord, component: &[u8]) -> Result<bool, StoreError> {
        let n = self.conn()?.prepare_cached("INSERT OR IGNORE INTO policies (sha256, name, version, wit_version, size, component, loaded_by, loaded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![r.sha256, r.name, r.version, r.wit_version, r.size as i64, component, r.loaded_by, r.loaded_at as i64],
        )?;
        Ok(n > 0)
    }

    fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT p.sha256, p.name, p.version, p.wit_version, p.size, p.loaded_by, p.loaded_at, \
             (a.sha256 IS NOT NULL) AS active FROM policies p \
             LEFT JOIN active_policy a ON a.sha256 = p.sha256 ORDER BY p.loaded_at, p.rowid",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok(PolicyVersionRecord {
                    sha256: row.get(0)?,
                    name: row.get(1)?,
                    version: row.get(2)?,
                    wit_version: row.get(3)?,
                    size: row.get::<_, i64>(4)? as u64,
                    loaded_by: row.get(5)?,
                    loaded_at: row.get::<_, i64>(6)? as u64,
                    active: row.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn policy_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT component FROM policies WHERE sha256 = ?1")?
            .query_row([sha256], |r| r.get(0))
            .optional()?)
    }

    fn active_policy(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT sha256 FROM active_policy")?
            .query_row([], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn set_active_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO active_policy (singleton, sha256, activated_by, activated_at) VALUES (1, ?1, ?2, ?3) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = ?1, activated_by = ?2, activated_at = ?3",
            )?
            .execute(params![sha256, by, at as i64])?;
        Ok(())
    }

    fn shadow_policy(&mut self) -> Result<Option<ShadowRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT sha256, set_by, set_at, compared, disagreed FROM shadow_policy WHERE sha256 IS NOT NULL",
            )?
            .query_row([], |r| {
                Ok(ShadowRecord {
                    sha256: r.get(0)?,
                    set_by: r.get(1)?,
                    set_at: r.get::<_, i64>(2)? as u64,
                    compared: r.get::<_, i64>(3)? as u64,
                    disagreed: r.get::<_, i64>(4)? as u64,
                })
            })
            .optional()?)
    }

    fn set_shadow_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO shadow_policy (singleton, sha256, set_by, set_at, since_id) \
             VALUES (1, ?1, ?2, ?3, (SELECT COALESCE(MAX(id), 0) FROM shadow_disagreements)) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = ?1, set_by = ?2, set_at = ?3, compared = 0, \
             disagreed = 0, since_id = excluded.since_id",
            )?
            .execute(params![sha256, by, at as i64])?;
        Ok(())
    }

    fn record_shadow(&mut self, disagreement: Option<&ShadowDisagreement>) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("UPDATE shadow_policy SET compared = compared + 1, disagreed = disagreed + ?1")?
            .execute([i64::from(disagreement.is_some())])?;
        if let Some(d) = disagreement {
            conn.prepare_cached(
                "INSERT INTO shadow_disagreements (time, audit_seq, request, active_sha256, active_allowed, \
                 active_reason, active_registration, active_explanation, shadow_sha256, shadow_allowed, \
                 shadow_reason, shadow_registration, shadow_explanation) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                d.time as i64,
                d.audit_seq as i64,
                d.request.to_string(),
                d.active.sha256,
                d.active.allowed,
                d.active.reason,
                d.active.registration.map(|id| id as i64),
                d.active.explanation,
                d.shadow.sha256,
                d.shadow.allowed,
                d.shadow.reason,
                d.shadow.registration.map(|id| id as i64),
                d.shadow.explanation,
            ])?;
        }
        Ok(())
    }

    fn shadow_disagreements(
        &mut self,
        sha256: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ShadowDisagreement>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, time, audit_seq, request, active_sha256, active_allowed, active_reason, active_registration, \
             active_explanation, shadow_sha256, shadow_allowed, shadow_reason, shadow_registration, shadow_explanation \
             FROM shadow_disagreements WHERE shadow_sha256 = ?1 AND id > ?2 \
             AND id > (SELECT since_id FROM shadow_policy) ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![sha256, after as i64, i64::from(limit)], |r| {
                let request: String = r.get(3)?;
                Ok(ShadowDisagreement {
                    id: r.get::<_, i64>(0)? as u64,
                    time: r.get::<_, i64>(1)? as u64,
                    audit_seq: r.get::<_, i64>(2)? as u64,
                    request: serde_json::from_str(&request).unwrap_or(serde_json::Value::String(request)),
                    active: shadow_side(r, 4)?,
                    shadow: shadow_side(r, 9)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn precompiled(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT sha256 FROM precompiled WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn record_precompiled(&mut self, key: &str, sha256: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO precompiled (key, sha256) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET sha256 = ?2",
            )?
            .execute(params![key, sha256])?;
        Ok(())
    }

    fn audit_head(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .optional()?)
    }

    fn append_audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO audit (seq, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, \
                 request, detail, mac, domain) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                a.seq as i64,
                a.prev_hash,
                a.hash,
                a.time as i64,
                a.actor,
                a.action,
                a.object,
                a.outcome,
                a.reason,
                a.policy_sha256,
                a.request,
                a.detail,
                a.mac,
                a.domain
            ])?;
        Ok(())
    }

    fn audit_keyed_from(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        let row = self
            .conn()?
            .prepare_cached("SELECT audit_keyed_from, audit_keyed_mac FROM instance WHERE singleton = 1")?
            .query_row([], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<String>>(1)?)))
            .optional()?;
        Ok(match row {
            Some((Some(seq), mac)) => Some((seq as u64, mac.unwrap_or_default())),
            _ => None,
        })
    }

    fn set_audit_keyed_from(&mut self, seq: u64, mac: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "UPDATE instance SET audit_keyed_from = ?1, audit_keyed_mac = ?2 \
                 WHERE singleton = 1 AND audit_keyed_from IS NULL",
            )?
            .execute(params![seq as i64, mac])?;
        Ok(())
    }

    fn audit_records(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT * FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after as i64, limit], audit_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn audit_records_in(&mut self, domains: &[String], after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM audit WHERE domain IN (SELECT value FROM json_each(?1)) AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![super::to_json(domains), after as i64, limit], audit_from)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn latest_audit_records(
        &mut self,
        domains: Option<&[String]>,
        before: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let rows = match domains {
            None => conn
                .prepare_cached("SELECT * FROM audit WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2")?
                .query_map(params![before, limit], audit_from)?
                .collect::<Result<_, _>>()?,
            Some(domains) => conn
                .prepare_cached(
                    "SELECT * FROM audit WHERE domain IN (SELECT value FROM json_each(?1)) AND seq < ?2 \
                     ORDER BY seq DESC LIMIT ?3",
                )?
                .query_map(params![super::to_json(domains), before, limit], audit_from)?
                .collect::<Result<_, _>>()?,
        };
        Ok(rows)
    }

    fn idempotent_answer(&mut self, caller: &str, key: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT request_sha256, answer FROM idempotent_answers WHERE caller = ?1 AND key = ?2")?
            .query_row(params![caller, key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn record_idempotent_answer(&mut self, kept: &IdempotentAnswer<'_>, forget_before: u64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("DELETE FROM idempotent_answers WHERE created_at < ?1")?
            .execute(params![forget_before as i64])?;
        conn.prepare_cached(
            "INSERT INTO idempotent_answers (caller, key, request_sha256, answer, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![kept.caller, kept.key, kept.request_sha256, kept.answer, kept.at as i64])?;
        Ok(())
    }

    fn record_node(&mut self, n: &NodeRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO nodes (node_id, address, version, started_at, seen_at, policy_sha256, policy_name, \
                 index_seq, stopped) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (node_id) DO UPDATE SET \
                 address = ?2, version = ?3, started_at = ?4, seen_at = ?5, policy_sha256 = ?6, policy_name = ?7, \
                 index_seq = ?8, stopped = ?9",
            )?
            .execute(params![
                n.node_id,
                n.address,
                n.version,
                n.started_at as i64,
                n.seen_at as i64,
                n.policy_sha256,
                n.policy_name,
                n.index_seq as i64,
                n.stopped
            ])?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT node_id, address, version, started_at, seen_at, policy_sha256, policy_name, index_seq, stopped \
             FROM nodes ORDER BY node_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(NodeRecord {
                    node_id: r.get(0)?,
                    address: r.get(1)?,
                    version: r.get(2)?,
                    started_at: r.get::<_, i64>(3)? as u64,
                    seen_at: r.get::<_, i64>(4)? as u64,
                    policy_sha256: r.get(5)?,
                    policy_name: r.get(6)?,
                    index_seq: r.get::<_, i64>(7)? as u64,
                    stopped: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
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
