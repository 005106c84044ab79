//! [`crate::Instance`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::is_unique_violation;
use crate::Instance;
use crate::{IdempotentAnswer, StoreError};

impl Instance for SqliteTx {
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

    fn consume_request_id(
        &mut self,
        jti: &str,
        kid: &str,
        expires_at: u64,
        now: u64,
        margin: u64,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        // An expired token is refused before it gets here, so forgetting ids
        // well past their expiry (the margin covers clocks that disagree)
        // cannot let a replay through.
        let forget_before = now.saturating_sub(margin);
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
}
