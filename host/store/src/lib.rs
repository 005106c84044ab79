//! prereg-store: prereg's storage (`prereg::store`). The [`Storage`] trait, and the store's roles, each a trait
//! with its records: [`Instance`] (the instance id, request ids, idempotent
//! answers), [`Directory`] (procedures, officers, CA callers),
//! [`Registrations`] (devices and their change log), [`Imports`],
//! [`Certificates`], [`PolicyVersions`] (with shadow mode and the
//! precompiled ledger), [`AuditLog`], [`Nodes`] and [`AcmeObjects`] (the ACME
//! server's accounts, orders, authorizations and binding keys).
//!
//! Every operation runs in a transaction ([`Tx`], every role at once), so
//! that a change, the single-use request id that authorized it and its audit
//! record are written together or not at all.
//!
//! Two backends implement every role, a file per role: [`sqlite`] (the
//! embedded default) and [`postgres`] (a cluster of nodes sharing one
//! database, cargo feature `postgres`). Both run the same migrations
//! ([`schema`]), and the same test suite (prereg's `tests/all/core_suite`)
//! runs against both. [`copy`] copies an instance from one to the other;
//! [`pem`] reads the certificates PostgreSQL's TLS (and prereg's service)
//! trusts.

mod acme;
mod audit_log;
mod certificates;
pub mod copy;
mod directory;
mod errors;
mod imports;
mod instance;
mod nodes;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod pem;
mod policy_versions;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_tls;
mod registrations;
pub mod schema;
pub mod sqlite;

use prereg_core::{Protocol, RegistrationState};

pub use acme::*;
pub use audit_log::*;
pub use certificates::*;
pub use directory::*;
pub use errors::StoreError;
pub use imports::*;
pub use instance::*;
pub use nodes::*;
pub use policy_versions::*;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
pub use registrations::*;
pub use sqlite::SqliteStorage;

/// Opens the store at `location`: a `postgres://` URL, or the path of a
/// SQLite database file.
pub fn open(location: &str) -> Result<std::sync::Arc<dyn Storage>, StoreError> {
    if is_postgres_url(location) {
        open_postgres(location)
    } else {
        Ok(std::sync::Arc::new(SqliteStorage::open(std::path::Path::new(location))?))
    }
}

/// Whether `location` names a PostgreSQL database (`postgres://` or
/// `postgresql://`), not a SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The PostgreSQL database at `url`, migrated; refused, naming the cargo
/// feature, by a prereg built without PostgreSQL.
pub fn open_postgres(url: &str) -> Result<std::sync::Arc<dyn Storage>, StoreError> {
    #[cfg(feature = "postgres")]
    return Ok(std::sync::Arc::new(PostgresStorage::open(url)?));
    #[cfg(not(feature = "postgres"))]
    Err(StoreError::BadUrl {
        path: redact_url(url),
        message: "this prereg was built without PostgreSQL (cargo feature `postgres`)".into(),
    })
}

/// A PostgreSQL URL with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    #[cfg(feature = "postgres")]
    return postgres::redact(url);
    #[cfg(not(feature = "postgres"))]
    match url.split_once("://").and_then(|(_, rest)| rest.rsplit_once('@')) {
        Some((_, host)) => format!("postgres://(credentials hidden)@{host}"),
        None => url.split('?').next().unwrap_or_default().to_owned(),
    }
}

/// Something that changed in the store, as a listener hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// Registrations changed (the change log grew).
    Registrations,
    /// The policy versions, the active or the shadow policy changed.
    Policy,
    /// The listener (re)connected: anything may have changed unheard.
    Reconnected,
}

/// Waits for changes made by any process or node ([`Storage::listen`]).
pub trait StoreListener: Send {
    /// The changes heard within `timeout` (empty if none).
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Vec<StoreEvent>, StoreError>;
}

/// The kind of transaction to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// Reads only; rolled back at the end.
    Read,
    /// Reads and writes; takes the write lock at once, so that decisions and
    /// writes are serialized.
    Write,
}

/// A storage backend.
pub trait Storage: Send + Sync {
    /// Opens a transaction.
    fn begin(&self, kind: TxKind) -> Result<Box<dyn Tx>, StoreError>;

    /// A short description for logs (`sqlite:/path/prereg.sqlite3`), never
    /// with a password.
    fn describe(&self) -> String;

    /// A listener for changes made by other processes, if the backend can
    /// notify (PostgreSQL); `None`: poll (SQLite).
    fn listen(&self) -> Result<Option<Box<dyn StoreListener>>, StoreError> {
        Ok(None)
    }

    /// A number that changes whenever a transaction commits to the store,
    /// from any connection of any process, and that costs far less than a
    /// read transaction: a reader that saw the store as it was at token `t`
    /// and reads `t` again knows that nothing was committed meanwhile
    /// (SQLite: `PRAGMA data_version` on a connection that never writes).
    /// `None`: the backend has no such number (PostgreSQL, a database in
    /// memory, a storage in stand-by): read in a transaction.
    fn change_token(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// [`Storage::change_token`] with the number of commits it stands for,
    /// read at once, where the store counts them (SQLite's WAL-index header,
    /// `iChange`): a writer that read `(t, n)` under its write lock and
    /// `(u, n + 1)` after its commit knows that its commit alone took the
    /// store from `t` to `u`. `None` where there is no such count.
    fn counted_change_token(&self) -> Option<(u64, u32)> {
        None
    }

    /// Checks the database's integrity before a service starts on it
    /// (SQLite: `PRAGMA quick_check`); a damaged one is
    /// [`StoreError::Damaged`], naming the file.
    fn check_integrity(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Records a node's heartbeat. It is not a rule-bearing write, so a
    /// backend may record it without taking the write lock (PostgreSQL does).
    fn report_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let mut tx = self.begin(TxKind::Write)?;
        tx.record_node(node)?;
        tx.commit()
    }
}

/// One transaction, with every role of the store. Dropping it without
/// [`Tx::commit`] rolls it back. A function that needs one role takes that
/// role (`&mut dyn Registrations`), and a `&mut dyn Tx` converts to it.
pub trait Tx:
    Instance + Directory + Registrations + Imports + Certificates + PolicyVersions + AuditLog + Nodes + AcmeObjects + Send
{
    /// Commits.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Marks the point that [`Tx::rollback_to_savepoint`] goes back to: a
    /// write transaction that carries several decisions (group commit)
    /// takes one before each, so that a decision that fails takes back its
    /// own writes and nothing of the others'. One savepoint at a time; a new
    /// one replaces the last.
    fn savepoint(&mut self) -> Result<(), StoreError>;

    /// Keeps what was written since [`Tx::savepoint`] (it commits with the
    /// transaction) and forgets the savepoint.
    fn release_savepoint(&mut self) -> Result<(), StoreError>;

    /// Takes back everything written since [`Tx::savepoint`]; the
    /// transaction goes on, usable, as it was at the savepoint.
    fn rollback_to_savepoint(&mut self) -> Result<(), StoreError>;
}

/// What an import left `running` by a process that is gone says.
const INTERRUPTED_MESSAGE: &str =
    "interrupted: the process running it stopped before the end; run the same import again to complete it";

/// An insert that collided with a row a running import staged.
fn staged_collision(r: &NewRegistration, import: u64) -> StoreError {
    StoreError::Duplicate {
        what: format!(
            "pattern {:?} in domain {:?} (staged by import {import}, which is still running; it is visible only \
             if that import completes)",
            r.pattern, r.domain
        ),
    }
}

/// `%text%` for a LIKE (SQLite, with `ESCAPE '\'`) or ILIKE (PostgreSQL)
/// pattern, with `%`, `_` and `\` escaped.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A list of names as the JSON text both backends store.
fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn de_protocol<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    Protocol::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {text:?}")))
}

fn de_state<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RegistrationState, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    RegistrationState::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown state {text:?}")))
}
