//! The cluster backend: PostgreSQL, shared by several prereg nodes.
//!
//! This file connects (pools of read and write connections, TLS through
//! [`super::postgres_tls`], migrations under an advisory lock) and runs
//! transactions (`PostgresTx`); each role of the store is implemented in
//! its own file (`registrations.rs`, `imports.rs`...), over the row readers
//! of `rows.rs`; `listener.rs` is LISTEN/NOTIFY.
//!
//! The rules that must hold across nodes are enforced by the database, not by
//! one process's memory:
//!
//! - **One writer at a time, cluster-wide.** A [`TxKind::Write`] transaction
//!   takes a transaction-scoped advisory lock first ([`WRITE_LOCK`]), the
//!   counterpart of SQLite's `BEGIN IMMEDIATE`. Writes, enrollment decisions
//!   and audit appends are therefore serialized across every node: the audit
//!   log stays one hash chain (each writer reads the head under the lock),
//!   `max_enrollments` is consumed by one decision at a time, and the change
//!   log's numbers commit in order. Transactions run at READ COMMITTED, so
//!   every statement after the lock sees every earlier commit.
//! - **Constraints as a second line.** Patterns are unique per domain (a
//!   unique index), request ids are a primary key shared by all nodes (a
//!   replay is refused everywhere), audit sequence numbers are a primary key
//!   (a forked chain cannot be written), and a CHECK keeps enrollments within
//!   `max_enrollments`.
//! - **Notifications.** Triggers notify `prereg_registrations` and
//!   `prereg_policy` at commit; [`PostgresStorage::listen`] gives a node a
//!   connection that waits for them, so its in-memory index and policy follow
//!   within milliseconds. The change log is still the truth: a node that
//!   missed notifications (a dropped connection) catches up from it.
//!
//! - **Reads without a transaction.** A [`TxKind::Read`] runs each statement
//!   on its own, on a connection whose session is read-only
//!   (`default_transaction_read_only`): no BEGIN and ROLLBACK, two loopback
//!   round trips fewer on every decision. Each statement sees the latest
//!   commits rather than one snapshot for all; every reader tolerates it:
//!   the audit log and the change log only grow, and the in-memory index
//!   records the change number it read *before* the rows, so a row newer
//!   than that number is read again at the next catch-up, never missed.
//!   Anything that must be consistent across statements is a write.
//!
//! A lost server is [`StoreError::Unavailable`] (HTTP 503), promptly: the
//! pool never waits long for a connection, connecting times out, and broken
//! connections are dropped rather than reused.

mod acme;
mod audit_log;
mod certificates;
mod directory;
mod imports;
mod instance;
mod listener;
mod nodes;
mod policy_versions;
mod registrations;
mod rows;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use listener::PostgresListener;
use postgres::types::ToSql;
use postgres::{Client, Config, Row, Statement};
use rows::{col, int, u64_at};

use super::schema::MIGRATIONS;
use super::{
    ImportRecord, NewRegistration, NodeRecord, ProcedureRecord, Storage, StoreError, StoreListener, Tx, TxKind,
};
use crate::Nodes;

/// The advisory lock every writing transaction holds (ASCII "prereg" + 1).
pub const WRITE_LOCK: i64 = 0x7072_6572_6567_0001;

/// The advisory lock that serializes migrations between nodes starting at once.
const MIGRATION_LOCK: i64 = 0x7072_6572_6567_0002;

/// Reading connections a node opens at most.
const MAX_READ_CONNECTIONS: usize = 16;

/// Writing connections a node opens at most (writers take turns anyway).
const MAX_WRITE_CONNECTIONS: usize = 8;

/// How long a transaction waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Connecting gives up after this long unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a writer waits for the write lock (SQLite's busy timeout).
const LOCK_TIMEOUT: &str = "10s";

/// The channels a node listens on.
const CHANNELS: [&str; 2] = ["prereg_registrations", "prereg_policy"];

/// PostgreSQL storage: one database, shared by the nodes of a cluster.
#[derive(Clone)]
pub struct PostgresStorage {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// TLS as the URL's `sslmode` says ([`super::postgres_tls`]).
    tls: super::postgres_tls::RustlsConnect,
    shown: String,
    /// Read-only connections, then writing ones ([`Lane`]).
    lanes: [LanePool; 2],
    /// Token procedures read so far: a procedure is never changed or
    /// deleted once created, so a decision need not ask the server again.
    procedures: Mutex<HashMap<String, ProcedureRecord>>,
}

/// The two kinds of connection. A reading connection is read-only for the
/// whole session (`default_transaction_read_only`) and runs each statement
/// on its own (no BEGIN and ROLLBACK: two round trips fewer per decision);
/// a writing one runs transactions under the write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Read = 0,
    Write = 1,
}

impl Lane {
    fn max(self) -> usize {
        match self {
            Lane::Read => MAX_READ_CONNECTIONS,
            Lane::Write => MAX_WRITE_CONNECTIONS,
        }
    }
}

#[derive(Default)]
struct LanePool {
    pool: Mutex<Pool>,
    freed: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// A connection with its prepared statements.
struct Connection {
    client: Client,
    lane: Lane,
    statements: HashMap<String, Statement>,
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`)
    /// and runs pending migrations.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let storage = Self::connect_only(url)?;
        storage.migrate()?;
        Ok(storage)
    }

    /// Connects without migrating.
    fn connect_only(url: &str) -> Result<Self, StoreError> {
        let (driver_url, settings) =
            super::postgres_tls::split_url(url).map_err(|message| StoreError::BadUrl { path: redact(url), message })?;
        let mut config = Config::from_str(&driver_url)
            .map_err(|e| StoreError::BadUrl { path: redact(url), message: format!("not a PostgreSQL URL: {e}") })?;
        config.ssl_mode(settings.mode.driver_mode());
        let tls = super::postgres_tls::connector(&settings)
            .map_err(|message| StoreError::BadUrl { path: redact(url), message })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("prereg");
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        let shown = format!("{}?sslmode={}", describe(&config), settings.mode.as_str());
        let storage = PostgresStorage {
            inner: Arc::new(Inner { config, tls, shown, lanes: Default::default(), procedures: Mutex::default() }),
        };
        // Fail now, with the reason, rather than at the first request.
        let conn = storage.checkout(Lane::Write)?;
        storage.release(conn);
        Ok(storage)
    }

    fn connect(&self, lane: Lane) -> Result<Connection, StoreError> {
        let mut client = self
            .inner
            .config
            .connect(self.inner.tls.clone())
            .map_err(|e| StoreError::Unavailable { database: self.inner.shown.clone(), message: message_of(&e) })?;
        let read_only = if lane == Lane::Read { "on" } else { "off" };
        client.batch_execute(&format!(
            "SET lock_timeout = '{LOCK_TIMEOUT}'; SET default_transaction_read_only = {read_only}"
        ))?;
        Ok(Connection { client, lane, statements: HashMap::new() })
    }

    /// An idle connection of `lane`, or a new one while fewer than its
    /// maximum are open; waits [`POOL_WAIT`] at most.
    fn checkout(&self, lane: Lane) -> Result<Connection, StoreError> {
        let deadline = Instant::now() + POOL_WAIT;
        fn poisoned<T>(_: T) -> StoreError {
            StoreError::Postgres("the connection pool is poisoned".into())
        }
        let slot = &self.inner.lanes[lane as usize];
        let mut pool = slot.pool.lock().map_err(poisoned)?;
        loop {
            while let Some(conn) = pool.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(conn);
                }
                pool.open -= 1;
            }
            if pool.open < lane.max() {
                pool.open += 1;
                drop(pool);
                return self.connect(lane).inspect_err(|_| {
                    if let Ok(mut pool) = slot.pool.lock() {
                        pool.open -= 1;
                    }
                    slot.freed.notify_one();
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable {
                    database: self.inner.shown.clone(),
                    message: format!("all {} {lane:?} connections are busy", lane.max()),
                });
            }
            pool = slot.freed.wait_timeout(pool, deadline - now).map_err(poisoned)?.0;
        }
    }

    /// Gives a connection back; a broken one is closed instead.
    fn release(&self, conn: Connection) {
        let slot = &self.inner.lanes[conn.lane as usize];
        if let Ok(mut pool) = slot.pool.lock() {
            if conn.client.is_closed() {
                pool.open -= 1;
            } else {
                pool.idle.push(conn);
            }
        }
        slot.freed.notify_one();
    }

    /// Forgets a connection that is in an unknown state.
    fn discard(&self, conn: Connection) {
        let slot = &self.inner.lanes[conn.lane as usize];
        drop(conn);
        if let Ok(mut pool) = slot.pool.lock() {
            pool.open -= 1;
        }
        slot.freed.notify_one();
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.checkout(Lane::Write)?;
        let result = migrate(&mut conn.client);
        self.release(conn);
        result
    }

    /// The schema version of the database (how many migrations have run).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.checkout(Lane::Read)?;
        let result = schema_version(&mut conn.client);
        self.release(conn);
        result
    }
}

fn schema_version(client: &mut Client) -> Result<i64, StoreError> {
    let row = client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?;
    Ok(row.try_get(0)?)
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let supported = MIGRATIONS.len() as i64;
    loop {
        let mut tx = client.transaction()?;
        // Nodes starting together: one migrates, the others wait and find it done.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        let version: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?.try_get(0)?;
        if version > supported {
            return Err(StoreError::SchemaTooNew { found: version, supported });
        }
        let Some(migration) = MIGRATIONS.get(version as usize) else { return Ok(()) };
        tx.batch_execute(migration.postgres)?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(version + 1)])?;
        tx.commit()?;
    }
}

/// The URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    let driver_url = super::postgres_tls::split_url(url).map_or_else(|_| url.to_owned(), |(u, _)| u);
    match Config::from_str(&driver_url) {
        Ok(config) => describe(&config),
        Err(_) => "postgres://(unreadable URL)".into(),
    }
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or(config.get_user().unwrap_or(""))
    )
}

/// The most useful words of a driver error: the server's message, or the
/// underlying I/O error.
fn message_of(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

/// Errors that mean "the database cannot serve now; try again": the
/// connection is gone, the server is shutting down or starting, or a lock
/// was not granted in time.
fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Not from the server: I/O, a timeout, a lost connection.
        None => e.code().is_none(),
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")        // connection exception
                || code.starts_with("57P") // admin / crash shutdown, cannot connect now
                || code == "53300"         // too many connections
                || code == "55P03"         // lock not available (lock_timeout)
                || code == "40001"         // serialization failure
                || code == "40P01" // deadlock detected
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable { database: "PostgreSQL".into(), message: message_of(&e) }
        } else {
            StoreError::Postgres(message_of(&e))
        }
    }
}

impl Storage for PostgresStorage {
    fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx>, StoreError> {
        let tx = |conn| PostgresTx {
            conn: Some(conn),
            storage: self.clone(),
            inserted: None,
            aborted: false,
            savepoint: None,
        };
        match kind {
            // Each statement on its own, on a read-only session: see the
            // module's documentation for why readers tolerate it.
            TxKind::Read => Ok(Box::new(tx(self.checkout(Lane::Read)?))),
            TxKind::Write => {
                let mut conn = self.checkout(Lane::Write)?;
                let begin = format!("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})");
                if let Err(e) = conn.client.batch_execute(&begin) {
                    self.discard(conn);
                    return Err(e.into());
                }
                Ok(Box::new(tx(conn)))
            }
        }
    }

    fn describe(&self) -> String {
        self.inner.shown.clone()
    }

    fn report_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        // Autocommit, without the write lock: a heartbeat must not wait
        // behind a bulk import.
        let conn = self.checkout(Lane::Write)?;
        let mut tx =
            PostgresTx { conn: Some(conn), storage: self.clone(), inserted: None, aborted: false, savepoint: None };
        let result = tx.record_node(node);
        if let Some(conn) = tx.conn.take() {
            self.release(conn);
        }
        result
    }

    fn listen(&self) -> Result<Option<Box<dyn StoreListener>>, StoreError> {
        let listener = PostgresListener { storage: self.clone(), client: None };
        Ok(Some(Box::new(listener)))
    }
}

/// A transaction on a pooled connection.
struct PostgresTx {
    conn: Option<Connection>,
    storage: PostgresStorage,
    /// The ids this transaction inserted, logged as one change at commit.
    inserted: Option<(u64, u64)>,
    /// A statement failed: PostgreSQL has aborted the transaction, and a
    /// COMMIT would silently roll it back, so commit refuses instead.
    aborted: bool,
    /// What `inserted` was at the savepoint, if one is held.
    savepoint: Option<Option<(u64, u64)>>,
}

impl Drop for PostgresTx {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.lane == Lane::Read {
                // No transaction: nothing to roll back.
                self.storage.release(conn);
                return;
            }
            match conn.client.batch_execute("ROLLBACK") {
                Ok(()) => self.storage.release(conn),
                Err(_) => self.storage.discard(conn),
            }
        }
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl crate::registrations::RowInsert for PostgresTx {
    fn insert_registration_row(&mut self, r: &NewRegistration) -> Result<u64, StoreError> {
        let max = r.max_enrollments.map(|m| int(m, "max_enrollments")).transpose()?;
        // ON CONFLICT keeps the transaction usable after a duplicate (a failed
        // statement would abort it in PostgreSQL), as callers expect.
        let row = self.query_opt(
            "INSERT INTO registrations (domain, procedure, pattern, index_key, ip, serial, password_hash, expires_at, \
             max_enrollments, state, created_by, created_at, import_id, import_row, password_sealed, staged_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (domain, pattern) DO NOTHING RETURNING id",
            &[
                &r.domain,
                &r.procedure,
                &r.pattern,
                &r.index_key,
                &r.ip,
                &r.serial,
                &r.password_hash,
                &r.expires_at.map(|v| v as i64),
                &max,
                &r.created_by,
                &(r.created_at as i64),
                &r.import.map(|(id, _)| id as i64),
                &r.import.map(|(_, row)| row as i64),
                &r.password_sealed,
                &r.import.filter(|_| r.staged).map(|(id, _)| id as i64),
            ],
        )?;
        let Some(row) = row else {
            return Err(StoreError::Duplicate { what: format!("pattern {:?} in domain {:?}", r.pattern, r.domain) });
        };
        u64_at(&row, 0)
    }

    fn collision(&mut self, r: &NewRegistration) -> Result<bool, StoreError> {
        let held = self.query_opt(
            "SELECT r.id, r.staged_by, i.status FROM registrations r LEFT JOIN imports i ON i.id = r.staged_by \
             WHERE r.domain = $1 AND r.pattern = $2",
            &[&r.domain, &r.pattern],
        )?;
        let Some(row) = held else { return Ok(false) };
        let (id, staged_by, status): (i64, Option<i64>, Option<String>) = (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
        match (staged_by, status.as_deref()) {
            (None, _) | (_, Some("completed")) => Ok(false),
            (Some(import), Some("running")) => Err(super::staged_collision(r, import as u64)),
            (Some(_), _) => {
                self.execute("DELETE FROM registrations WHERE id = $1", &[&id])?;
                Ok(true)
            }
        }
    }

    fn inserted_range(&mut self) -> &mut Option<(u64, u64)> {
        &mut self.inserted
    }
}

impl PostgresTx {
    fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        self.conn.as_mut().ok_or_else(|| StoreError::Missing("transaction already finished".into()))
    }

    /// The prepared statement for `sql`, prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        let conn = self.conn()?;
        if let Some(statement) = conn.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = conn.client.prepare(sql)?;
        conn.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `f` with the connection and a prepared `sql`; a failure marks
    /// the transaction aborted.
    fn run<T>(
        &mut self,
        sql: &str,
        f: impl FnOnce(&mut Client, &Statement) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let result = self.statement(sql).and_then(|statement| Ok(f(&mut self.conn()?.client, &statement)?));
        if result.is_err() {
            self.aborted = true;
        }
        result
    }

    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        self.run(sql, |client, statement| client.query(statement, params))
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        self.run(sql, |client, statement| client.query_opt(statement, params))
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        self.run(sql, |client, statement| client.execute(statement, params))
    }

    /// Writes an import record with the id `id`, or a new one (`None`: the
    /// next of the identity); returns its id.
    fn write_import(&mut self, i: &ImportRecord, id: Option<u64>) -> Result<u64, StoreError> {
        let row = self.query_opt(
            "INSERT INTO imports (id, sha256, procedure, file_name, partial, dry_run, officer, status, rows_total, \
             rows_done, created, unchanged, errors, started_at, finished_at, message) \
             VALUES (COALESCE($1, nextval(pg_get_serial_sequence('imports', 'id'))), $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16) RETURNING id",
            &[
                &id.map(|v| v as i64),
                &i.sha256,
                &i.procedure,
                &i.file_name,
                &i.partial,
                &i.dry_run,
                &i.officer,
                &i.status.as_str(),
                &(i.rows_total as i64),
                &(i.rows_done as i64),
                &(i.created as i64),
                &(i.unchanged as i64),
                &(i.errors as i64),
                &(i.started_at as i64),
                &i.finished_at.map(|v| v as i64),
                &i.message,
            ],
        )?;
        u64_at(&row.ok_or_else(|| StoreError::Missing("the new import has no id".into()))?, 0)
    }
}

/// The one savepoint a transaction holds ([`Tx::savepoint`]).
const SAVEPOINT: &str = "prereg_step";

impl PostgresTx {
    /// Runs savepoint commands, which only a write transaction has.
    fn savepoint_command(&mut self, sql: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if conn.lane == Lane::Read {
            return Err(StoreError::Missing("a read transaction has no savepoints".into()));
        }
        let result = conn.client.batch_execute(sql);
        if result.is_err() {
            self.aborted = true;
        }
        Ok(result?)
    }
}

impl Tx for PostgresTx {
    fn savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.is_some() {
            self.release_savepoint()?;
        }
        self.savepoint_command(&format!("SAVEPOINT {SAVEPOINT}"))?;
        self.savepoint = Some(self.inserted);
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoint.take().is_some() {
            self.savepoint_command(&format!("RELEASE SAVEPOINT {SAVEPOINT}"))?;
        }
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        let Some(inserted) = self.savepoint.take() else {
            return Err(StoreError::Missing("no savepoint to roll back to".into()));
        };
        // Also what makes an aborted transaction usable again.
        self.savepoint_command(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"))?;
        self.aborted = false;
        self.inserted = inserted;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.aborted {
            // Drop rolls back.
            return Err(StoreError::Postgres("the transaction was aborted by an earlier error".into()));
        }
        let mut conn = self.conn.take().ok_or_else(|| StoreError::Missing("transaction already finished".into()))?;
        if conn.lane == Lane::Read {
            self.storage.release(conn);
            return Ok(());
        }
        let mut run = || -> Result<(), postgres::Error> {
            if let Some((first, last)) = self.inserted {
                conn.client.execute(
                    "INSERT INTO registration_changes (first_id, last_id) VALUES ($1, $2)",
                    &[&(first as i64), &(last as i64)],
                )?;
            }
            conn.client.batch_execute("COMMIT")
        };
        match run() {
            Ok(()) => {
                self.storage.release(conn);
                Ok(())
            }
            Err(e) => {
                // COMMIT of an aborted transaction, or a lost connection: the
                // connection's state is unknown, so it is not reused.
                self.storage.discard(conn);
                Err(e.into())
            }
        }
    }
}
