//! [`crate::Registrations`] on PostgreSQL.

use prereg_core::RegistrationState;

use super::PostgresTx;
use super::rows::{REGISTRATION_COLUMNS, col, int, opt_u64_at, registration_from, u64_at};
use crate::Registrations;
use crate::{NewRegistration, RegistrationChange, RegistrationFilter, RegistrationRecord, StoreError};

impl Registrations for PostgresTx {
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
        let search = filter.search.as_deref().map(|t| crate::like_pattern(&t.to_ascii_lowercase()));
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

    fn password_sealed(&mut self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_opt("SELECT password_sealed FROM visible_registrations WHERE id = $1", &[&(id as i64)])?
            .map(|r| col(&r, 0))
            .transpose()?
            .flatten())
    }

    fn insert_registration(&mut self, r: &NewRegistration) -> Result<u64, StoreError> {
        crate::registrations::insert_registration(self, r)
    }

    fn stored_registrations(&mut self, after: u64, limit: u32) -> Result<Vec<crate::StoredRegistration>, StoreError> {
        let sql = format!(
            "SELECT {REGISTRATION_COLUMNS}, index_key, password_hash, password_sealed, import_row \
             FROM visible_registrations WHERE id > $1 ORDER BY id LIMIT $2"
        );
        self.query(&sql, &[&(after as i64), &i64::from(limit)])?
            .iter()
            .map(|r| {
                Ok(crate::StoredRegistration {
                    record: registration_from(r)?,
                    index_key: col(r, 15)?,
                    password_hash: col(r, 16)?,
                    password_sealed: col(r, 17)?,
                    import_row: opt_u64_at(r, 18)?,
                })
            })
            .collect()
    }

    fn restore_registration(&mut self, s: &crate::StoredRegistration) -> Result<(), StoreError> {
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
}
