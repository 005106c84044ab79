//! [`crate::Registrations`] on SQLite.

use prereg_core::RegistrationState;
use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::{REGISTRATION_COLUMNS, bad_value, registration_from, u64_col};
use crate::Registrations;
use crate::{
    NewRegistration, RegistrationChange, RegistrationFilter, RegistrationRecord, StoreError, StoredRegistration,
};

impl Registrations for SqliteTx {
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
                    filter.search.as_deref().map(|t| crate::like_pattern(&t.to_ascii_lowercase())),
                    filter.domains.as_deref().map(crate::to_json)
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
            .query_map(params![domain, crate::to_json(keys), (limit + 1) as i64], registration_from)?
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

    fn password_sealed(&mut self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT password_sealed FROM visible_registrations WHERE id = ?1")?
            .query_row([id as i64], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn insert_registration(&mut self, r: &NewRegistration) -> Result<u64, StoreError> {
        crate::registrations::insert_registration(self, r)
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
}
