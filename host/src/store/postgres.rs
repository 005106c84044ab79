//! The cluster backend: PostgreSQL, shared by several prereg nodes.
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

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, Config, Row, Statement};
use prereg_core::{Protocol, RegistrationState};

use super::schema::MIGRATIONS;
use super::{
    AuditRecord, CallerRecord, CertificateRecord, CertificateState, CrlRecord, IdempotentAnswer, ImportLease,
    ImportRecord, ImportStatus, NewRegistration, NodeRecord, OfficerRecord, PolicyVersionRecord, ProcedureRecord,
    RegistrationChange, RegistrationFilter, RegistrationRecord, RevokedCertificate, ShadowDisagreement, ShadowRecord,
    ShadowSide, Storage, StoreError, StoreEvent, StoreListener, Tx, TxKind,
};

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

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
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
        let tx = |conn| PostgresTx { conn: Some(conn), storage: self.clone(), inserted: None, aborted: false };
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
        let mut tx = PostgresTx { conn: Some(conn), storage: self.clone(), inserted: None, aborted: false };
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

/// A connection of its own that waits for the store's notifications.
struct PostgresListener {
    storage: PostgresStorage,
    client: Option<Client>,
}

impl StoreListener for PostgresListener {
    fn wait(&mut self, timeout: Duration) -> Result<Vec<StoreEvent>, StoreError> {
        let mut events = Vec::new();
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut conn = self.storage.connect(Lane::Write)?;
            let listen: String = CHANNELS.iter().map(|c| format!("LISTEN {c};")).collect();
            conn.client.batch_execute(&listen)?;
            self.client = Some(conn.client);
            // Anything may have changed while no one listened.
            events.push(StoreEvent::Reconnected);
        }
        let Some(client) = self.client.as_mut() else { return Ok(events) };
        let (seen, failed) = {
            use postgres::fallible_iterator::FallibleIterator as _;
            let mut notifications = client.notifications();
            let mut seen = Vec::new();
            let first = notifications.timeout_iter(timeout).next();
            let failed = match first {
                Ok(n) => {
                    seen.extend(n);
                    // Take whatever else has arrived, without waiting.
                    let mut rest = notifications.iter();
                    while let Ok(Some(n)) = rest.next() {
                        seen.push(n);
                    }
                    None
                }
                Err(e) => Some(e),
            };
            (seen, failed)
        };
        if let Some(e) = failed {
            self.client = None;
            return Err(e.into());
        }
        for n in seen {
            let event = match n.channel() {
                "prereg_registrations" => StoreEvent::Registrations,
                _ => StoreEvent::Policy,
            };
            if !events.contains(&event) {
                events.push(event);
            }
        }
        Ok(events)
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

    /// The row holding `r`'s pattern, after an insert collided with it:
    /// `Ok(true)` if it was staged by an import that will never complete and
    /// is now deleted (insert again), `Err(Duplicate)` naming a running
    /// import that staged it, `Ok(false)` for a registration anyone sees.
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

fn int(value: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is out of range")))
}

fn col<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

fn u64_at(row: &Row, idx: usize) -> Result<u64, StoreError> {
    Ok(col::<i64>(row, idx)? as u64)
}

fn opt_u64_at(row: &Row, idx: usize) -> Result<Option<u64>, StoreError> {
    Ok(col::<Option<i64>>(row, idx)?.map(|v| v as u64))
}

fn u32_at(row: &Row, idx: usize) -> Result<u32, StoreError> {
    let v: i32 = col(row, idx)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {idx}: negative count {v}")))
}

fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("not a JSON list: {e}")))
}

const PROCEDURE_COLUMNS: &str =
    "name, domain, protocol, require_preregistration, allowed_domains, certificate_days, created_by, created_at";

fn procedure_from(row: &Row) -> Result<ProcedureRecord, StoreError> {
    let protocol: String = col(row, 2)?;
    Ok(ProcedureRecord {
        name: col(row, 0)?,
        domain: col(row, 1)?,
        protocol: Protocol::parse(&protocol)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown protocol {protocol:?}")))?,
        require_preregistration: col(row, 3)?,
        allowed_domains: json_list(&col::<String>(row, 4)?)?,
        certificate_days: u32_at(row, 5)?,
        created_by: col(row, 6)?,
        created_at: u64_at(row, 7)?,
    })
}

const OFFICER_COLUMNS: &str = "kid, name, algorithm, public_key_pem, domains, created_by, created_at, disabled_at";

fn officer_from(row: &Row) -> Result<OfficerRecord, StoreError> {
    Ok(OfficerRecord {
        kid: col(row, 0)?,
        name: col(row, 1)?,
        algorithm: col(row, 2)?,
        public_key_pem: col(row, 3)?,
        domains: json_list(&col::<String>(row, 4)?)?,
        created_by: col(row, 5)?,
        created_at: u64_at(row, 6)?,
        disabled_at: opt_u64_at(row, 7)?,
    })
}

const CALLER_COLUMNS: &str = "name, procedures, secret_sha256, certificate_sha256, created_by, created_at, disabled_at";

fn caller_from(row: &Row) -> Result<CallerRecord, StoreError> {
    Ok(CallerRecord {
        name: col(row, 0)?,
        procedures: json_list(&col::<String>(row, 1)?)?,
        secret_sha256: col(row, 2)?,
        certificate_sha256: col(row, 3)?,
        created_by: col(row, 4)?,
        created_at: u64_at(row, 5)?,
        disabled_at: opt_u64_at(row, 6)?,
    })
}

const REGISTRATION_COLUMNS: &str = "id, domain, procedure, pattern, ip, serial, password_hash IS NOT NULL, \
     expires_at, max_enrollments, enrollments, failed_attempts, state, created_by, created_at, import_id";

fn registration_from(row: &Row) -> Result<RegistrationRecord, StoreError> {
    let state: &str = col(row, 11)?;
    Ok(RegistrationRecord {
        id: u64_at(row, 0)?,
        domain: col(row, 1)?,
        procedure: col(row, 2)?,
        pattern: col(row, 3)?,
        ip: col(row, 4)?,
        serial: col(row, 5)?,
        has_password: col(row, 6)?,
        expires_at: opt_u64_at(row, 7)?,
        max_enrollments: col::<Option<i32>>(row, 8)?.map(|v| v.max(0) as u32),
        enrollments: u32_at(row, 9)?,
        failed_attempts: u32_at(row, 10)?,
        state: RegistrationState::parse(state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        created_by: col(row, 12)?,
        created_at: u64_at(row, 13)?,
        import_id: opt_u64_at(row, 14)?,
    })
}

const IMPORT_COLUMNS: &str = "id, sha256, procedure, file_name, partial, dry_run, officer, status, rows_total, \
     rows_done, created, unchanged, errors, started_at, finished_at, message";

fn import_from(row: &Row) -> Result<ImportRecord, StoreError> {
    let status: String = col(row, 7)?;
    Ok(ImportRecord {
        id: u64_at(row, 0)?,
        sha256: col(row, 1)?,
        procedure: col(row, 2)?,
        file_name: col(row, 3)?,
        partial: col(row, 4)?,
        dry_run: col(row, 5)?,
        officer: col(row, 6)?,
        status: ImportStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown import status {status:?}")))?,
        rows_total: u64_at(row, 8)?,
        rows_done: u64_at(row, 9)?,
        created: u64_at(row, 10)?,
        unchanged: u64_at(row, 11)?,
        errors: u64_at(row, 12)?,
        started_at: u64_at(row, 13)?,
        finished_at: opt_u64_at(row, 14)?,
        message: col(row, 15)?,
    })
}

const AUDIT_COLUMNS: &str =
    "seq, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, request, detail, mac, domain";

fn audit_from(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: u64_at(row, 0)?,
        prev_hash: col(row, 1)?,
        hash: col(row, 2)?,
        time: u64_at(row, 3)?,
        actor: col(row, 4)?,
        action: col(row, 5)?,
        object: col(row, 6)?,
        outcome: col(row, 7)?,
        reason: col(row, 8)?,
        policy_sha256: col(row, 9)?,
        request: col(row, 10)?,
        detail: col(row, 11)?,
        mac: col(row, 12)?,
        domain: col(row, 13)?,
    })
}

const CERTIFICATE_COLUMNS: &str =
    "serial, transaction_id, registration, state, der, request, issued_at, expires_at, revoked_at, revocation_reason";

fn certificate_from(row: &Row) -> Result<CertificateRecord, StoreError> {
    let state: String = col(row, 3)?;
    Ok(CertificateRecord {
        serial: col(row, 0)?,
        transaction: col(row, 1)?,
        registration: opt_u64_at(row, 2)?,
        state: CertificateState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        der: col(row, 4)?,
        request: col(row, 5)?,
        issued_at: u64_at(row, 6)?,
        expires_at: u64_at(row, 7)?,
        revoked_at: opt_u64_at(row, 8)?,
        revocation_reason: col::<Option<i32>>(row, 9)?.and_then(|r| u8::try_from(r).ok()),
    })
}

const NODE_COLUMNS: &str =
    "node_id, address, version, started_at, seen_at, policy_sha256, policy_name, index_seq, stopped";

fn node_from(row: &Row) -> Result<NodeRecord, StoreError> {
    Ok(NodeRecord {
        node_id: col(row, 0)?,
        address: col(row, 1)?,
        version: col(row, 2)?,
        started_at: u64_at(row, 3)?,
        seen_at: u64_at(row, 4)?,
        policy_sha256: col(row, 5)?,
        policy_name: col(row, 6)?,
        index_seq: u64_at(row, 7)?,
        stopped: col(row, 8)?,
    })
}

fn shadow_side(row: &Row, at: usize) -> Result<ShadowSide, StoreError> {
    Ok(ShadowSide {
        sha256: col(row, at)?,
        allowed: col(row, at + 1)?,
        reason: col(row, at + 2)?,
        registration: opt_u64_at(row, at + 3)?,
        explanation: col(row, at + 4)?,
    })
}

impl Tx for PostgresTx {
    fn instance_id(&mut self) -> Result<Option<String>, StoreError> {
        self.query_opt("SELECT instance_id FROM instance", &[])?.map(|r| col(&r, 0)).transpose()
    }

    fn set_instance_id(&mut self, id: &str, now: u64) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO instance (singleton, instance_id, created_at) VALUES (1, $1, $2) ON CONFLICT DO NOTHING",
            &[&id, &(now as i64)],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: "the instance".into() });
        }
        Ok(())
    }

    fn sealing_key(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.query_opt("SELECT sealing_key FROM instance", &[])?.map(|r| col(&r, 0)).transpose()?.flatten())
    }

    fn set_sealing_key(&mut self, public: &str) -> Result<(), StoreError> {
        self.execute("UPDATE instance SET sealing_key = $1", &[&public])?;
        Ok(())
    }

    fn procedure(&mut self, name: &str) -> Result<Option<ProcedureRecord>, StoreError> {
        let known = |storage: &PostgresStorage| storage.inner.procedures.lock().ok()?.get(name).cloned();
        if let Some(procedure) = known(&self.storage) {
            return Ok(Some(procedure));
        }
        let sql = format!("SELECT {PROCEDURE_COLUMNS} FROM procedures WHERE name = $1");
        let found = self.query_opt(&sql, &[&name])?.as_ref().map(procedure_from).transpose()?;
        // Only what a reader saw is committed (a writer may yet roll back).
        let committed = self.conn.as_ref().is_some_and(|c| c.lane == Lane::Read);
        if let (true, Some(procedure), Ok(mut seen)) = (committed, &found, self.storage.inner.procedures.lock()) {
            seen.insert(name.to_owned(), procedure.clone());
        }
        Ok(found)
    }

    fn procedures(&mut self) -> Result<Vec<ProcedureRecord>, StoreError> {
        let sql = format!("SELECT {PROCEDURE_COLUMNS} FROM procedures ORDER BY name");
        self.query(&sql, &[])?.iter().map(procedure_from).collect()
    }

    fn insert_procedure(&mut self, p: &ProcedureRecord) -> Result<(), StoreError> {
        self.execute("INSERT INTO domains (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&p.domain])?;
        let n = self.execute(
            "INSERT INTO procedures (name, domain, protocol, require_preregistration, allowed_domains, \
             certificate_days, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &p.name,
                &p.domain,
                &p.protocol.as_str(),
                &p.require_preregistration,
                &super::to_json(&p.allowed_domains),
                &int(p.certificate_days, "certificate_days")?,
                &p.created_by,
                &(p.created_at as i64),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: format!("token procedure {:?}", p.name) });
        }
        Ok(())
    }

    fn officer(&mut self, kid: &str) -> Result<Option<OfficerRecord>, StoreError> {
        let sql = format!("SELECT {OFFICER_COLUMNS} FROM officers WHERE kid = $1");
        self.query_opt(&sql, &[&kid])?.as_ref().map(officer_from).transpose()
    }

    fn officers(&mut self) -> Result<Vec<OfficerRecord>, StoreError> {
        let sql = format!("SELECT {OFFICER_COLUMNS} FROM officers ORDER BY name");
        self.query(&sql, &[])?.iter().map(officer_from).collect()
    }

    fn disable_officer(&mut self, kid: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE officers SET disabled_at = $2 WHERE kid = $1 AND disabled_at IS NULL",
            &[&kid, &(at as i64)],
        )?;
        Ok(n == 1)
    }

    fn caller(&mut self, name: &str) -> Result<Option<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers WHERE name = $1");
        self.query_opt(&sql, &[&name])?.as_ref().map(caller_from).transpose()
    }

    fn caller_by_secret(&mut self, secret_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers WHERE secret_sha256 = $1");
        self.query_opt(&sql, &[&secret_sha256])?.as_ref().map(caller_from).transpose()
    }

    fn caller_by_certificate(&mut self, certificate_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers WHERE certificate_sha256 = $1");
        self.query_opt(&sql, &[&certificate_sha256])?.as_ref().map(caller_from).transpose()
    }

    fn callers(&mut self) -> Result<Vec<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers ORDER BY name");
        self.query(&sql, &[])?.iter().map(caller_from).collect()
    }

    fn insert_caller(&mut self, c: &CallerRecord) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO callers (name, procedures, secret_sha256, certificate_sha256, created_by, created_at, \
             disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &c.name,
                &super::to_json(&c.procedures),
                &c.secret_sha256,
                &c.certificate_sha256,
                &c.created_by,
                &(c.created_at as i64),
                &c.disabled_at.map(|t| t as i64),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: format!("a caller named {:?} or with that credential", c.name) });
        }
        Ok(())
    }

    fn disable_caller(&mut self, name: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE callers SET disabled_at = $2 WHERE name = $1 AND disabled_at IS NULL",
            &[&name, &(at as i64)],
        )?;
        Ok(n == 1)
    }

    fn insert_officer(&mut self, o: &OfficerRecord) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO officers (kid, name, algorithm, public_key_pem, domains, created_by, created_at, disabled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &o.kid,
                &o.name,
                &o.algorithm,
                &o.public_key_pem,
                &super::to_json(&o.domains),
                &o.created_by,
                &(o.created_at as i64),
                &o.disabled_at.map(|t| t as i64),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: format!("an officer named {:?} or with that key", o.name) });
        }
        Ok(())
    }

    fn registration(&mut self, id: u64) -> Result<Option<RegistrationRecord>, StoreError> {
        let sql = format!("SELECT {REGISTRATION_COLUMNS} FROM visible_registrations WHERE id = $1");
        self.query_opt(&sql, &[&(id as i64)])?.as_ref().map(registration_from).transpose()
    }

    fn registrations(&mut self, filter: &RegistrationFilter) -> Result<Vec<RegistrationRecord>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS} FROM visible_registrations \
             WHERE ($1::text IS NULL OR domain = $1) AND ($2::text IS NULL OR state = $2) AND id > $3 \
             AND ($5::text IS NULL OR procedure = $5) AND ($6::text IS NULL OR pattern ILIKE $6) \
             AND ($7::text[] IS NULL OR domain = ANY($7)) \
             ORDER BY id LIMIT $4"
        );
        let search = filter.search.as_deref().map(|t| super::like_pattern(&t.to_ascii_lowercase()));
        self.query(
            &sql,
            &[
                &filter.domain,
                &filter.state.map(|s| s.as_str()),
                &(filter.after_id.unwrap_or(0) as i64),
                &filter.limit.map(i64::from),
                &filter.procedure,
                &search,
                &filter.domains,
            ],
        )?
        .iter()
        .map(registration_from)
        .collect()
    }

    fn candidates(
        &mut self,
        domain: &str,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<RegistrationRecord>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS} FROM visible_registrations WHERE domain = $1 AND index_key = ANY($2) LIMIT $3"
        );
        self.query(&sql, &[&domain, &keys, &((limit + 1) as i64)])?.iter().map(registration_from).collect()
    }

    fn password_hash(&mut self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_opt("SELECT password_hash FROM visible_registrations WHERE id = $1", &[&(id as i64)])?
            .map(|r| col(&r, 0))
            .transpose()?
            .flatten())
    }

    fn insert_certificate(&mut self, c: &CertificateRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO certificates (serial, transaction_id, registration, state, der, request, issued_at, \
             expires_at, revoked_at, revocation_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &c.serial,
                &c.transaction,
                &c.registration.map(|r| r as i64),
                &c.state.as_str(),
                &c.der,
                &c.request,
                &(c.issued_at as i64),
                &(c.expires_at as i64),
                &c.revoked_at.map(|t| t as i64),
                &c.revocation_reason.map(i32::from),
            ],
        )?;
        Ok(())
    }

    fn revoke_certificate(&mut self, serial: &str, reason: Option<u8>, at: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 WHERE serial = $1 AND revoked_at IS NULL",
            &[&serial, &(at as i64), &reason.map(i32::from)],
        )?;
        Ok(n == 1)
    }

    fn revoked_certificates(&mut self) -> Result<Vec<RevokedCertificate>, StoreError> {
        self.query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(RevokedCertificate {
                serial: col(r, 0)?,
                revoked_at: u64_at(r, 1)?,
                reason: col::<Option<i32>>(r, 2)?.and_then(|c| u8::try_from(c).ok()),
            })
        })
        .collect()
    }

    fn count_revoked_certificates(&mut self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL", &[])?;
        rows.first().map(|r| u64_at(r, 0)).unwrap_or(Ok(0))
    }

    fn unconfirmed_certificates(&mut self, now: u64, limit: u32) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE state = 'held' AND expires_at < $1 \
             ORDER BY expires_at LIMIT $2"
        );
        self.query(&sql, &[&(now as i64), &i64::from(limit)])?.iter().map(certificate_from).collect()
    }

    fn latest_crl(&mut self) -> Result<Option<CrlRecord>, StoreError> {
        self.query_opt(
            "SELECT number, this_update, next_update, revoked, der FROM crls ORDER BY number DESC LIMIT 1",
            &[],
        )?
        .map(|r| {
            Ok(CrlRecord {
                number: u64_at(&r, 0)?,
                this_update: u64_at(&r, 1)?,
                next_update: u64_at(&r, 2)?,
                revoked: u64_at(&r, 3)?,
                der: col(&r, 4)?,
            })
        })
        .transpose()
    }

    fn insert_crl(&mut self, crl: &CrlRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO crls (number, this_update, next_update, revoked, der) VALUES ($1, $2, $3, $4, $5)",
            &[
                &(crl.number as i64),
                &(crl.this_update as i64),
                &(crl.next_update as i64),
                &(crl.revoked as i64),
                &crl.der,
            ],
        )?;
        self.execute("DELETE FROM crls WHERE number < $1", &[&(crl.number as i64 - 100)])?;
        Ok(())
    }

    fn certificate_by_transaction(&mut self, transaction: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE transaction_id = $1 \
             ORDER BY issued_at DESC, seq DESC LIMIT 1"
        );
        self.query_opt(&sql, &[&transaction])?.as_ref().map(certificate_from).transpose()
    }

    fn certificate_by_serial(&mut self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1");
        self.query_opt(&sql, &[&serial])?.as_ref().map(certificate_from).transpose()
    }

    fn certificates(&mut self, after: u64, limit: u32) -> Result<Vec<(u64, CertificateRecord)>, StoreError> {
        let sql = format!("SELECT {CERTIFICATE_COLUMNS}, seq FROM certificates WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.query(&sql, &[&(after as i64), &i64::from(limit)])?
            .iter()
            .map(|r| Ok((u64_at(r, 8)?, certificate_from(r)?)))
            .collect()
    }

    fn set_certificate_state(
        &mut self,
        serial: &str,
        from: CertificateState,
        to: CertificateState,
    ) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE certificates SET state = $3 WHERE serial = $1 AND state = $2",
            &[&serial, &from.as_str(), &to.as_str()],
        )?;
        Ok(n == 1)
    }

    fn password_sealed(&mut self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_opt("SELECT password_sealed FROM visible_registrations WHERE id = $1", &[&(id as i64)])?
            .map(|r| col(&r, 0))
            .transpose()?
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

    fn stored_registrations(&mut self, after: u64, limit: u32) -> Result<Vec<super::StoredRegistration>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS}, index_key, password_hash, password_sealed, import_row \
             FROM visible_registrations WHERE id > $1 ORDER BY id LIMIT $2"
        );
        self.query(&sql, &[&(after as i64), &i64::from(limit)])?
            .iter()
            .map(|r| {
                Ok(super::StoredRegistration {
                    record: registration_from(r)?,
                    index_key: col(r, 15)?,
                    password_hash: col(r, 16)?,
                    password_sealed: col(r, 17)?,
                    import_row: opt_u64_at(r, 18)?,
                })
            })
            .collect()
    }

    fn restore_registration(&mut self, s: &super::StoredRegistration) -> Result<(), StoreError> {
        let r = &s.record;
        let max = r.max_enrollments.map(|m| int(m, "max_enrollments")).transpose()?;
        self.execute(
            "INSERT INTO registrations (id, domain, procedure, pattern, index_key, ip, serial, password_hash, \
             expires_at, max_enrollments, enrollments, failed_attempts, state, created_by, created_at, import_id, \
             import_row, password_sealed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            &[
                &(r.id as i64),
                &r.domain,
                &r.procedure,
                &r.pattern,
                &s.index_key,
                &r.ip,
                &r.serial,
                &s.password_hash,
                &r.expires_at.map(|v| v as i64),
                &max,
                &int(r.enrollments, "enrollments")?,
                &int(r.failed_attempts, "failed_attempts")?,
                &r.state.as_str(),
                &r.created_by,
                &(r.created_at as i64),
                &r.import_id.map(|v| v as i64),
                &s.import_row.map(|v| v as i64),
                &s.password_sealed,
            ],
        )?;
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
        // Identities go on after the copied ids.
        let result = self.conn()?.client.batch_execute(
            "SELECT setval(pg_get_serial_sequence('registrations', 'id'), GREATEST((SELECT MAX(id) FROM registrations), 1)); \
             SELECT setval(pg_get_serial_sequence('imports', 'id'), GREATEST((SELECT MAX(id) FROM imports), 1));",
        );
        self.aborted |= result.is_err();
        Ok(result?)
    }

    fn registration_by_pattern(
        &mut self,
        domain: &str,
        pattern: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let sql =
            format!("SELECT {REGISTRATION_COLUMNS} FROM visible_registrations WHERE domain = $1 AND pattern = $2");
        self.query_opt(&sql, &[&domain, &pattern])?.as_ref().map(registration_from).transpose()
    }

    fn count_registrations_by_state(&mut self) -> Result<Vec<(RegistrationState, u64)>, StoreError> {
        self.query("SELECT state, COUNT(*) FROM visible_registrations GROUP BY state", &[])?
            .iter()
            .map(|r| {
                let state: &str = col(r, 0)?;
                let state = RegistrationState::parse(state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?;
                Ok((state, u64_at(r, 1)?))
            })
            .collect()
    }

    fn update_registration(
        &mut self,
        id: u64,
        state: RegistrationState,
        enrollments: u32,
        failed_attempts: u32,
    ) -> Result<(), StoreError> {
        let n = self.execute(
            "UPDATE registrations SET state = $2, enrollments = $3, failed_attempts = $4 WHERE id = $1",
            &[
                &(id as i64),
                &state.as_str(),
                &int(enrollments, "enrollments")?,
                &int(failed_attempts, "failed_attempts")?,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Missing(format!("no registration {id}")));
        }
        Ok(())
    }

    fn delete_registration(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM registrations WHERE id = $1", &[&(id as i64)])? > 0)
    }

    fn registration_changes(&mut self, after: u64, limit: u32) -> Result<Vec<RegistrationChange>, StoreError> {
        self.query(
            "SELECT seq, first_id, last_id FROM registration_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&(after as i64), &i64::from(limit)],
        )?
        .iter()
        .map(|r| Ok(RegistrationChange { seq: u64_at(r, 0)?, first_id: u64_at(r, 1)?, last_id: u64_at(r, 2)? }))
        .collect()
    }

    fn registration_change_range(&mut self) -> Result<(u64, u64), StoreError> {
        let rows = self.query("SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM registration_changes", &[])?;
        match rows.first() {
            Some(r) => Ok((u64_at(r, 0)?, u64_at(r, 1)?)),
            None => Ok((0, 0)),
        }
    }

    fn prune_registration_changes(&mut self, keep: u64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM registration_changes WHERE seq <= (SELECT MAX(seq) FROM registration_changes) - $1",
            &[&(keep.max(1) as i64)],
        )
    }

    fn consume_request_id(&mut self, jti: &str, kid: &str, expires_at: u64, now: u64) -> Result<(), StoreError> {
        // Forgotten only once expired by the database's clock too: a node
        // whose clock runs ahead must not forget an id that another node,
        // whose clock runs behind, would still accept the request of.
        self.execute(
            "DELETE FROM request_ids WHERE expires_at < LEAST($1, EXTRACT(EPOCH FROM now())::bigint) - $2",
            &[&(now as i64), &(crate::signing::REPLAY_MARGIN_SECS as i64)],
        )?;
        let n = self.execute(
            "INSERT INTO request_ids (jti, kid, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&jti, &kid, &(expires_at as i64)],
        )?;
        if n == 0 {
            return Err(StoreError::Replayed { jti: jti.into() });
        }
        Ok(())
    }

    fn request_ids(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.query("SELECT jti, kid, expires_at FROM request_ids ORDER BY jti", &[])?
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?, u64_at(r, 2)?)))
            .collect()
    }

    fn insert_import(&mut self, i: &ImportRecord) -> Result<u64, StoreError> {
        self.write_import(i, None)
    }

    fn update_import(&mut self, i: &ImportRecord) -> Result<(), StoreError> {
        let n = self.execute(
            "UPDATE imports SET status = $2, rows_done = $3, created = $4, unchanged = $5, errors = $6, \
             finished_at = $7, message = $8 WHERE id = $1",
            &[
                &(i.id as i64),
                &i.status.as_str(),
                &(i.rows_done as i64),
                &(i.created as i64),
                &(i.unchanged as i64),
                &(i.errors as i64),
                &i.finished_at.map(|v| v as i64),
                &i.message,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Missing(format!("no import {}", i.id)));
        }
        Ok(())
    }

    fn import(&mut self, id: u64) -> Result<Option<ImportRecord>, StoreError> {
        let sql = format!("SELECT {IMPORT_COLUMNS} FROM imports WHERE id = $1");
        self.query_opt(&sql, &[&(id as i64)])?.as_ref().map(import_from).transpose()
    }

    fn imports(&mut self, limit: u32) -> Result<Vec<ImportRecord>, StoreError> {
        let sql = format!("SELECT {IMPORT_COLUMNS} FROM imports ORDER BY id DESC LIMIT $1");
        self.query(&sql, &[&i64::from(limit)])?.iter().map(import_from).collect()
    }

    fn running_imports(&mut self) -> Result<Vec<ImportLease>, StoreError> {
        self.query("SELECT id, owner, heartbeat_at FROM imports WHERE status = 'running'", &[])?
            .iter()
            .map(|r| {
                Ok(ImportLease {
                    id: u64_at(r, 0)?,
                    owner: col(r, 1)?,
                    heartbeat_at: col::<Option<i64>>(r, 2)?.map(|v| v as u64),
                })
            })
            .collect()
    }

    fn renew_import_lease(&mut self, id: u64, owner: &str, now: u64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE imports SET owner = $2, heartbeat_at = $3 WHERE id = $1",
            &[&(id as i64), &owner, &(now as i64)],
        )?;
        Ok(())
    }

    fn interrupt_import(&mut self, seen: &ImportLease, now: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE imports SET status = 'interrupted', finished_at = $2, message = $3 \
             WHERE id = $1 AND status = 'running' AND owner IS NOT DISTINCT FROM $4 \
             AND heartbeat_at IS NOT DISTINCT FROM $5",
            &[
                &(seen.id as i64),
                &(now as i64),
                &super::INTERRUPTED_MESSAGE,
                &seen.owner,
                &seen.heartbeat_at.map(|v| v as i64),
            ],
        )?;
        Ok(n == 1)
    }

    fn publish_staged(&mut self, import: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO registration_changes (first_id, last_id) \
             SELECT MIN(id), MAX(id) FROM registrations WHERE staged_by = $1 HAVING COUNT(*) > 0",
            &[&(import as i64)],
        )?;
        Ok(())
    }

    fn purge_staged(&mut self, import: u64, limit: u32) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM registrations WHERE id IN \
             (SELECT id FROM registrations WHERE staged_by = $1 ORDER BY id LIMIT $2)",
            &[&(import as i64), &i64::from(limit)],
        )
    }

    fn abandoned_staging(&mut self) -> Result<Vec<u64>, StoreError> {
        self.query(
            "SELECT DISTINCT staged_by FROM registrations WHERE staged_by IS NOT NULL \
             AND staged_by NOT IN (SELECT id FROM imports WHERE status IN ('running', 'completed'))",
            &[],
        )?
        .iter()
        .map(|r| u64_at(r, 0))
        .collect()
    }

    fn insert_policy(&mut self, r: &PolicyVersionRecord, component: &[u8]) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO policies (sha256, name, version, wit_version, size, component, loaded_by, loaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &r.sha256,
                &r.name,
                &r.version,
                &r.wit_version,
                &(r.size as i64),
                &component,
                &r.loaded_by,
                &(r.loaded_at as i64),
            ],
        )?;
        Ok(n > 0)
    }

    fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRecord>, StoreError> {
        self.query(
            "SELECT p.sha256, p.name, p.version, p.wit_version, p.size, p.loaded_by, p.loaded_at, \
             (a.sha256 IS NOT NULL) FROM policies p \
             LEFT JOIN active_policy a ON a.sha256 = p.sha256 ORDER BY p.loaded_at, p.seq",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(PolicyVersionRecord {
                sha256: col(r, 0)?,
                name: col(r, 1)?,
                version: col(r, 2)?,
                wit_version: col(r, 3)?,
                size: u64_at(r, 4)?,
                loaded_by: col(r, 5)?,
                loaded_at: u64_at(r, 6)?,
                active: col(r, 7)?,
            })
        })
        .collect()
    }

    fn policy_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query_opt("SELECT component FROM policies WHERE sha256 = $1", &[&sha256])?.map(|r| col(&r, 0)).transpose()
    }

    fn active_policy(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.query_opt("SELECT sha256 FROM active_policy", &[])?.map(|r| col(&r, 0)).transpose()?.flatten())
    }

    fn set_active_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO active_policy (singleton, sha256, activated_by, activated_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = $1, activated_by = $2, activated_at = $3",
            &[&sha256, &by, &(at as i64)],
        )?;
        Ok(())
    }

    fn shadow_policy(&mut self) -> Result<Option<ShadowRecord>, StoreError> {
        self.query_opt(
            "SELECT sha256, set_by, set_at, compared, disagreed FROM shadow_policy WHERE sha256 IS NOT NULL",
            &[],
        )?
        .map(|r| {
            Ok(ShadowRecord {
                sha256: col(&r, 0)?,
                set_by: col(&r, 1)?,
                set_at: u64_at(&r, 2)?,
                compared: u64_at(&r, 3)?,
                disagreed: u64_at(&r, 4)?,
            })
        })
        .transpose()
    }

    fn set_shadow_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO shadow_policy (singleton, sha256, set_by, set_at, since_id) \
             VALUES (1, $1, $2, $3, (SELECT COALESCE(MAX(id), 0) FROM shadow_disagreements)) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = $1, set_by = $2, set_at = $3, compared = 0, \
             disagreed = 0, since_id = excluded.since_id",
            &[&sha256, &by, &(at as i64)],
        )?;
        Ok(())
    }

    fn record_shadow(&mut self, disagreement: Option<&ShadowDisagreement>) -> Result<(), StoreError> {
        self.execute(
            "UPDATE shadow_policy SET compared = compared + 1, disagreed = disagreed + $1",
            &[&i64::from(disagreement.is_some())],
        )?;
        if let Some(d) = disagreement {
            self.execute(
                "INSERT INTO shadow_disagreements (time, audit_seq, request, active_sha256, active_allowed, \
                 active_reason, active_registration, active_explanation, shadow_sha256, shadow_allowed, \
                 shadow_reason, shadow_registration, shadow_explanation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &(d.time as i64),
                    &(d.audit_seq as i64),
                    &d.request.to_string(),
                    &d.active.sha256,
                    &d.active.allowed,
                    &d.active.reason,
                    &d.active.registration.map(|id| id as i64),
                    &d.active.explanation,
                    &d.shadow.sha256,
                    &d.shadow.allowed,
                    &d.shadow.reason,
                    &d.shadow.registration.map(|id| id as i64),
                    &d.shadow.explanation,
                ],
            )?;
        }
        Ok(())
    }

    fn shadow_disagreements(
        &mut self,
        sha256: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ShadowDisagreement>, StoreError> {
        self.query(
            "SELECT id, time, audit_seq, request, active_sha256, active_allowed, active_reason, active_registration, \
             active_explanation, shadow_sha256, shadow_allowed, shadow_reason, shadow_registration, shadow_explanation \
             FROM shadow_disagreements WHERE shadow_sha256 = $1 AND id > $2 \
             AND id > (SELECT since_id FROM shadow_policy) ORDER BY id LIMIT $3",
            &[&sha256, &(after as i64), &i64::from(limit)],
        )?
        .iter()
        .map(|r| {
            let request: String = col(r, 3)?;
            Ok(ShadowDisagreement {
                id: u64_at(r, 0)?,
                time: u64_at(r, 1)?,
                audit_seq: u64_at(r, 2)?,
                request: serde_json::from_str(&request).unwrap_or(serde_json::Value::String(request)),
                active: shadow_side(r, 4)?,
                shadow: shadow_side(r, 9)?,
            })
        })
        .collect()
    }

    fn precompiled(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.query_opt("SELECT sha256 FROM precompiled WHERE key = $1", &[&key])?.map(|r| col(&r, 0)).transpose()
    }

    fn record_precompiled(&mut self, key: &str, sha256: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO precompiled (key, sha256) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET sha256 = $2",
            &[&key, &sha256],
        )?;
        Ok(())
    }

    fn audit_head(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        self.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
            .map(|r| Ok((u64_at(&r, 0)?, col(&r, 1)?)))
            .transpose()
    }

    fn append_audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit (seq, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, \
             request, detail, mac, domain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &(a.seq as i64),
                &a.prev_hash,
                &a.hash,
                &(a.time as i64),
                &a.actor,
                &a.action,
                &a.object,
                &a.outcome,
                &a.reason,
                &a.policy_sha256,
                &a.request,
                &a.detail,
                &a.mac,
                &a.domain,
            ],
        )?;
        Ok(())
    }

    fn audit_keyed_from(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        let row = self.query_opt("SELECT audit_keyed_from, audit_keyed_mac FROM instance WHERE singleton = 1", &[])?;
        Ok(match row {
            Some(r) => match col::<Option<i64>>(&r, 0)? {
                Some(seq) => Some((seq as u64, col::<Option<String>>(&r, 1)?.unwrap_or_default())),
                None => None,
            },
            None => None,
        })
    }

    fn set_audit_keyed_from(&mut self, seq: u64, mac: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE instance SET audit_keyed_from = $1, audit_keyed_mac = $2 \
             WHERE singleton = 1 AND audit_keyed_from IS NULL",
            &[&(seq as i64), &mac],
        )?;
        Ok(())
    }

    fn audit_records(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.query(&sql, &[&(after as i64), &i64::from(limit)])?.iter().map(audit_from).collect()
    }

    fn audit_records_in(&mut self, domains: &[String], after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE domain = ANY($1) AND seq > $2 ORDER BY seq LIMIT $3");
        self.query(&sql, &[&domains, &(after as i64), &i64::from(limit)])?.iter().map(audit_from).collect()
    }

    fn latest_audit_records(
        &mut self,
        domains: Option<&[String]>,
        before: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let rows = match domains {
            None => {
                let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2");
                self.query(&sql, &[&before, &i64::from(limit)])?
            }
            Some(domains) => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE domain = ANY($1) AND seq < $2 ORDER BY seq DESC LIMIT $3"
                );
                self.query(&sql, &[&domains, &before, &i64::from(limit)])?
            }
        };
        rows.iter().map(audit_from).collect()
    }

    fn idempotent_answer(&mut self, caller: &str, key: &str) -> Result<Option<(String, String)>, StoreError> {
        self.query_opt(
            "SELECT request_sha256, answer FROM idempotent_answers WHERE caller = $1 AND key = $2",
            &[&caller, &key],
        )?
        .map(|r| Ok((col(&r, 0)?, col(&r, 1)?)))
        .transpose()
    }

    fn record_idempotent_answer(&mut self, kept: &IdempotentAnswer<'_>, forget_before: u64) -> Result<(), StoreError> {
        self.execute("DELETE FROM idempotent_answers WHERE created_at < $1", &[&(forget_before as i64)])?;
        self.execute(
            "INSERT INTO idempotent_answers (caller, key, request_sha256, answer, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&kept.caller, &kept.key, &kept.request_sha256, &kept.answer, &(kept.at as i64)],
        )?;
        Ok(())
    }

    fn record_node(&mut self, n: &NodeRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO nodes (node_id, address, version, started_at, seen_at, policy_sha256, policy_name, index_seq, stopped) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (node_id) DO UPDATE SET address = $2, version = $3, \
             started_at = $4, seen_at = $5, policy_sha256 = $6, policy_name = $7, index_seq = $8, stopped = $9",
            &[
                &n.node_id,
                &n.address,
                &n.version,
                &(n.started_at as i64),
                &(n.seen_at as i64),
                &n.policy_sha256,
                &n.policy_name,
                &(n.index_seq as i64),
                &n.stopped,
            ],
        )?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id");
        self.query(&sql, &[])?.iter().map(node_from).collect()
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
