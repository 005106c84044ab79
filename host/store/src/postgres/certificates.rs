//! [`crate::Certificates`] on PostgreSQL.

use super::PostgresTx;
use super::rows::{CERTIFICATE_COLUMNS, certificate_from, col, u64_at};
use crate::Certificates;
use crate::{CertificateRecord, CertificateState, CrlRecord, RevokedCertificate, StoreError};

impl Certificates for PostgresTx {
    fn insert_certificate(&mut self, c: &CertificateRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO certificates (serial, transaction_id, registration, state, der, request, issued_at, \
             expires_at, revoked_at, revocation_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &c.serial,
                &c.transaction,
                &c.registration.map(|r| r as i64),
                &c.state.as_str(),
                &c.der,
                &c.request,
                &(c.issued_at as i64),
                &(c.expires_at as i64),
                &c.revoked_at.map(|t| t as i64),
                &c.revocation_reason.map(i32::from),
            ],
        )?;
        Ok(())
    }

    fn revoke_certificate(&mut self, serial: &str, reason: Option<u8>, at: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 WHERE serial = $1 AND revoked_at IS NULL",
            &[&serial, &(at as i64), &reason.map(i32::from)],
        )?;
        Ok(n == 1)
    }

    fn revoked_certificates(&mut self) -> Result<Vec<RevokedCertificate>, StoreError> {
        self.query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(RevokedCertificate {
                serial: col(r, 0)?,
                revoked_at: u64_at(r, 1)?,
                reason: col::<Option<i32>>(r, 2)?.and_then(|c| u8::try_from(c).ok()),
            })
        })
        .collect()
    }

    fn count_revoked_certificates(&mut self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL", &[])?;
        rows.first().map(|r| u64_at(r, 0)).unwrap_or(Ok(0))
    }

    fn unconfirmed_certificates(&mut self, now: u64, limit: u32) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE state = 'held' AND expires_at < $1 \
             ORDER BY expires_at LIMIT $2"
        );
        self.query(&sql, &[&(now as i64), &i64::from(limit)])?.iter().map(certificate_from).collect()
    }

    fn latest_crl(&mut self) -> Result<Option<CrlRecord>, StoreError> {
        self.query_opt(
            "SELECT number, this_update, next_update, revoked, der FROM crls ORDER BY number DESC LIMIT 1",
            &[],
        )?
        .map(|r| {
            Ok(CrlRecord {
                number: u64_at(&r, 0)?,
                this_update: u64_at(&r, 1)?,
                next_update: u64_at(&r, 2)?,
                revoked: u64_at(&r, 3)?,
                der: col(&r, 4)?,
            })
        })
        .transpose()
    }

    fn insert_crl(&mut self, crl: &CrlRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO crls (number, this_update, next_update, revoked, der) VALUES ($1, $2, $3, $4, $5)",
            &[
                &(crl.number as i64),
                &(crl.this_update as i64),
                &(crl.next_update as i64),
                &(crl.revoked as i64),
                &crl.der,
            ],
        )?;
        self.execute("DELETE FROM crls WHERE number < $1", &[&(crl.number as i64 - 100)])?;
        Ok(())
    }

    fn certificate_by_transaction(&mut self, transaction: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE transaction_id = $1 \
             ORDER BY issued_at DESC, seq DESC LIMIT 1"
        );
        self.query_opt(&sql, &[&transaction])?.as_ref().map(certificate_from).transpose()
    }

    fn certificate_by_serial(&mut self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1");
        self.query_opt(&sql, &[&serial])?.as_ref().map(certificate_from).transpose()
    }

    fn certificates(&mut self, after: u64, limit: u32) -> Result<Vec<(u64, CertificateRecord)>, StoreError> {
        let sql = format!("SELECT {CERTIFICATE_COLUMNS}, seq FROM certificates WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.query(&sql, &[&(after as i64), &i64::from(limit)])?
            .iter()
            .map(|r| Ok((u64_at(r, 8)?, certificate_from(r)?)))
            .collect()
    }

    fn set_certificate_state(
        &mut self,
        serial: &str,
        from: CertificateState,
        to: CertificateState,
    ) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE certificates SET state = $3 WHERE serial = $1 AND state = $2",
            &[&serial, &from.as_str(), &to.as_str()],
        )?;
        Ok(n == 1)
    }
}
