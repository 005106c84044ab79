//! [`crate::Instance`] on PostgreSQL.

use super::PostgresTx;
use super::rows::{col, u64_at};
use crate::Instance;
use crate::{IdempotentAnswer, StoreError};

impl Instance for PostgresTx {
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

    fn consume_request_id(
        &mut self,
        jti: &str,
        kid: &str,
        expires_at: u64,
        now: u64,
        margin: u64,
    ) -> Result<(), StoreError> {
        // Forgotten only once expired by the database's clock too: a node
        // whose clock runs ahead must not forget an id that another node,
        // whose clock runs behind, would still accept the request of.
        self.execute(
            "DELETE FROM request_ids WHERE expires_at < LEAST($1, EXTRACT(EPOCH FROM now())::bigint) - $2",
            &[&(now as i64), &(margin as i64)],
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
}
