//! [`crate::AcmeObjects`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::is_unique_violation;
use crate::{AcmeKind, AcmeObject, AcmeObjects, StoreError};

const COLUMNS: &str = "id, parent, lookup, state, body, created_at";

fn object_from(kind: AcmeKind) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<AcmeObject> {
    move |r| {
        Ok(AcmeObject {
            kind,
            id: r.get(0)?,
            parent: r.get(1)?,
            lookup: r.get(2)?,
            state: r.get(3)?,
            body: r.get(4)?,
            created_at: r.get::<_, i64>(5)? as u64,
        })
    }
}

fn duplicate(object: &AcmeObject) -> StoreError {
    StoreError::Duplicate { what: format!("ACME {} {:?}", object.kind.as_str(), object.id) }
}

impl AcmeObjects for SqliteTx {
    fn insert_acme_object(&mut self, o: &AcmeObject) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO acme_objects (kind, id, parent, lookup, state, body, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![o.kind.as_str(), o.id, o.parent, o.lookup, o.state, o.body, o.created_at as i64])
            .map_err(|e| if is_unique_violation(&e) { duplicate(o) } else { e.into() })?;
        Ok(())
    }

    fn acme_object(&mut self, kind: AcmeKind, id: &str) -> Result<Option<AcmeObject>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_objects WHERE kind = ?1 AND id = ?2");
        Ok(self.conn()?.prepare_cached(&sql)?.query_row(params![kind.as_str(), id], object_from(kind)).optional()?)
    }

    fn acme_object_by_lookup(&mut self, kind: AcmeKind, lookup: &str) -> Result<Option<AcmeObject>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_objects WHERE kind = ?1 AND lookup = ?2");
        Ok(self
            .conn()?
            .prepare_cached(&sql)?
            .query_row(params![kind.as_str(), lookup], object_from(kind))
            .optional()?)
    }

    fn acme_children(&mut self, kind: AcmeKind, parent: &str, limit: u32) -> Result<Vec<AcmeObject>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM acme_objects WHERE kind = ?1 AND parent = ?2 ORDER BY created_at, id LIMIT ?3"
        );
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![kind.as_str(), parent, limit], object_from(kind))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn update_acme_object(&mut self, o: &AcmeObject, from: &str) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached(
                "UPDATE acme_objects SET lookup = ?3, state = ?4, body = ?5 WHERE kind = ?1 AND id = ?2 AND state = ?6",
            )?
            .execute(params![o.kind.as_str(), o.id, o.lookup, o.state, o.body, from])
            .map_err(|e| if is_unique_violation(&e) { duplicate(o) } else { e.into() })?;
        Ok(changed == 1)
    }

    fn count_acme_objects(&mut self, kind: AcmeKind) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .prepare_cached("SELECT count(*) FROM acme_objects WHERE kind = ?1")?
            .query_row(params![kind.as_str()], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn acme_objects(&mut self, kind: AcmeKind, after: &str, limit: u32) -> Result<Vec<AcmeObject>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_objects WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![kind.as_str(), after, limit], object_from(kind))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
