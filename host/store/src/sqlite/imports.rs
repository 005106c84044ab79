//! [`crate::Imports`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::{import_from, u64_col};
use crate::Imports;
use crate::{ImportLease, ImportRecord, StoreError};

impl Imports for SqliteTx {
    fn restore_import(&mut self, i: &ImportRecord) -> Result<(), StoreError> {
        self.write_import(i, Some(i.id)).map(|_| ())
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
                crate::INTERRUPTED_MESSAGE,
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
}
