//! [`crate::AuditLog`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::audit_from;
use crate::AuditLog;
use crate::{AuditRecord, StoreError};

impl AuditLog for SqliteTx {
    fn audit_head(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .optional()?)
    }

    fn append_audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO audit (seq, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, \
                 request, detail, mac, domain) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                a.seq as i64,
                a.prev_hash,
                a.hash,
                a.time as i64,
                a.actor,
                a.action,
                a.object,
                a.outcome,
                a.reason,
                a.policy_sha256,
                a.request,
                a.detail,
                a.mac,
                a.domain
            ])?;
        Ok(())
    }

    fn audit_keyed_from(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        let row = self
            .conn()?
            .prepare_cached("SELECT audit_keyed_from, audit_keyed_mac FROM instance WHERE singleton = 1")?
            .query_row([], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<String>>(1)?)))
            .optional()?;
        Ok(match row {
            Some((Some(seq), mac)) => Some((seq as u64, mac.unwrap_or_default())),
            _ => None,
        })
    }

    fn set_audit_keyed_from(&mut self, seq: u64, mac: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "UPDATE instance SET audit_keyed_from = ?1, audit_keyed_mac = ?2 \
                 WHERE singleton = 1 AND audit_keyed_from IS NULL",
            )?
            .execute(params![seq as i64, mac])?;
        Ok(())
    }

    fn audit_records(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT * FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after as i64, limit], audit_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn audit_records_in(&mut self, domains: &[String], after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM audit WHERE domain IN (SELECT value FROM json_each(?1)) AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![crate::to_json(domains), after as i64, limit], audit_from)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn latest_audit_records(
        &mut self,
        domains: Option<&[String]>,
        before: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let rows = match domains {
            None => conn
                .prepare_cached("SELECT * FROM audit WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2")?
                .query_map(params![before, limit], audit_from)?
                .collect::<Result<_, _>>()?,
            Some(domains) => conn
                .prepare_cached(
                    "SELECT * FROM audit WHERE domain IN (SELECT value FROM json_each(?1)) AND seq < ?2 \
                     ORDER BY seq DESC LIMIT ?3",
                )?
                .query_map(params![crate::to_json(domains), before, limit], audit_from)?
                .collect::<Result<_, _>>()?,
        };
        Ok(rows)
    }
}
