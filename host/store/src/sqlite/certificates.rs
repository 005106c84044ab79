//! [`crate::Certificates`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::{CERTIFICATE_COLUMNS, certificate_from};
use crate::Certificates;
use crate::{CertificateRecord, CertificateState, CrlRecord, RevokedCertificate, StoreError};

impl Certificates for SqliteTx {
    fn insert_certificate(&mut self, c: &CertificateRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO certificates (serial, transaction_id, registration, state, der, request, issued_at, \
                 expires_at, revoked_at, revocation_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                c.serial,
                c.transaction,
                c.registration.map(|r| r as i64),
                c.state.as_str(),
                c.der,
                c.request,
                c.issued_at as i64,
                c.expires_at as i64,
                c.revoked_at.map(|t| t as i64),
                c.revocation_reason.map(i64::from),
            ])?;
        Ok(())
    }

    fn revoke_certificate(&mut self, serial: &str, reason: Option<u8>, at: u64) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached(
                "UPDATE certificates SET revoked_at = ?2, revocation_reason = ?3 \
                 WHERE serial = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![serial, at as i64, reason.map(i64::from)])?;
        Ok(changed == 1)
    }

    fn revoked_certificates(&mut self) -> Result<Vec<RevokedCertificate>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RevokedCertificate {
                    serial: r.get(0)?,
                    revoked_at: r.get::<_, i64>(1)? as u64,
                    reason: r.get::<_, Option<i64>>(2)?.and_then(|c| u8::try_from(c).ok()),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn count_revoked_certificates(&mut self) -> Result<u64, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL")?
            .query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    fn unconfirmed_certificates(&mut self, now: u64, limit: u32) -> Result<Vec<CertificateRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE state = 'held' AND expires_at < ?1 \
             ORDER BY expires_at LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now as i64, limit], certificate_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn latest_crl(&mut self) -> Result<Option<CrlRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT number, this_update, next_update, revoked, der FROM crls ORDER BY number DESC LIMIT 1",
            )?
            .query_row([], |r| {
                Ok(CrlRecord {
                    number: r.get::<_, i64>(0)? as u64,
                    this_update: r.get::<_, i64>(1)? as u64,
                    next_update: r.get::<_, i64>(2)? as u64,
                    revoked: r.get::<_, i64>(3)? as u64,
                    der: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn insert_crl(&mut self, crl: &CrlRecord) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO crls (number, this_update, next_update, revoked, der) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            crl.number as i64,
            crl.this_update as i64,
            crl.next_update as i64,
            crl.revoked as i64,
            crl.der
        ])?;
        // Only the newest is served; older ones are kept a while for an operator.
        conn.prepare_cached("DELETE FROM crls WHERE number < ?1")?.execute([crl.number as i64 - 100])?;
        Ok(())
    }

    fn certificate_by_transaction(&mut self, transaction: &str) -> Result<Option<CertificateRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} \
                 FROM certificates WHERE transaction_id = ?1 ORDER BY issued_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([transaction], certificate_from)
            .optional()?)
    }

    fn certificate_by_serial(&mut self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(&format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = ?1"))?
            .query_row([serial], certificate_from)
            .optional()?)
    }

    fn certificates(&mut self, after: u64, limit: u32) -> Result<Vec<(u64, CertificateRecord)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CERTIFICATE_COLUMNS}, rowid FROM certificates WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![after as i64, limit], |r| Ok((r.get::<_, i64>(10)? as u64, certificate_from(r)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn set_certificate_state(
        &mut self,
        serial: &str,
        from: CertificateState,
        to: CertificateState,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached("UPDATE certificates SET state = ?3 WHERE serial = ?1 AND state = ?2")?
            .execute(params![serial, from.as_str(), to.as_str()])?;
        Ok(changed == 1)
    }
}
