//! [`crate::AuditLog`] on PostgreSQL.

use super::PostgresTx;
use super::rows::{AUDIT_COLUMNS, audit_from, col, u64_at};
use crate::AuditLog;
use crate::{AuditRecord, StoreError};

impl AuditLog for PostgresTx {
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
}
