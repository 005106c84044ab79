//! [`crate::Imports`] on PostgreSQL.

use super::PostgresTx;
use super::rows::{IMPORT_COLUMNS, col, import_from, u64_at};
use crate::Imports;
use crate::{ImportLease, ImportRecord, StoreError};

impl Imports for PostgresTx {
    fn restore_import(&mut self, i: &ImportRecord) -> Result<(), StoreError> {
        self.write_import(i, Some(i.id)).map(|_| ())
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
                &crate::INTERRUPTED_MESSAGE,
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
}
