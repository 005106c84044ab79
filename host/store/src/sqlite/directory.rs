//! [`crate::Directory`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::{caller_from, is_unique_violation, officer_from, procedure_from};
use crate::Directory;
use crate::{CallerRecord, OfficerRecord, ProcedureRecord, StoreError};

impl Directory for SqliteTx {
    fn procedure(&mut self, name: &str) -> Result<Option<ProcedureRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM procedures WHERE name = ?1")?
            .query_row([name], procedure_from)
            .optional()?)
    }

    fn procedures(&mut self) -> Result<Vec<ProcedureRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT * FROM procedures ORDER BY name")?;
        let rows = stmt.query_map([], procedure_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_procedure(&mut self, p: &ProcedureRecord) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("INSERT OR IGNORE INTO domains (name) VALUES (?1)")?.execute([&p.domain])?;
        conn.prepare_cached("INSERT INTO procedures (name, domain, protocol, require_preregistration, allowed_domains, certificate_days, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?8, ?6, ?7)")?.execute(params![
                p.name,
                p.domain,
                p.protocol.as_str(),
                p.require_preregistration,
                crate::to_json(&p.allowed_domains),
                p.created_by,
                p.created_at as i64,
                p.certificate_days
            ],
        )
        .map_err(|e| {
            if is_unique_violation(&e) { StoreError::Duplicate { what: format!("token procedure {:?}", p.name) } } else { e.into() }
        })?;
        Ok(())
    }

    fn officer(&mut self, kid: &str) -> Result<Option<OfficerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM officers WHERE kid = ?1")?
            .query_row([kid], officer_from)
            .optional()?)
    }

    fn officers(&mut self) -> Result<Vec<OfficerRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT * FROM officers ORDER BY name")?;
        let rows = stmt.query_map([], officer_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn disable_officer(&mut self, kid: &str, at: u64) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached("UPDATE officers SET disabled_at = ?2 WHERE kid = ?1 AND disabled_at IS NULL")?
            .execute(params![kid, at as i64])?;
        Ok(changed == 1)
    }

    fn caller(&mut self, name: &str) -> Result<Option<CallerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM callers WHERE name = ?1")?
            .query_row([name], caller_from)
            .optional()?)
    }

    fn caller_by_secret(&mut self, secret_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM callers WHERE secret_sha256 = ?1")?
            .query_row([secret_sha256], caller_from)
            .optional()?)
    }

    fn caller_by_certificate(&mut self, certificate_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT * FROM callers WHERE certificate_sha256 = ?1")?
            .query_row([certificate_sha256], caller_from)
            .optional()?)
    }

    fn callers(&mut self) -> Result<Vec<CallerRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT * FROM callers ORDER BY name")?;
        let rows = stmt.query_map([], caller_from)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn insert_caller(&mut self, c: &CallerRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO callers (name, procedures, secret_sha256, certificate_sha256, created_by, created_at, \
                 disabled_at, webhook_secret_sealed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                c.name,
                crate::to_json(&c.procedures),
                c.secret_sha256,
                c.certificate_sha256,
                c.created_by,
                c.created_at as i64,
                c.disabled_at.map(|t| t as i64),
                c.webhook_secret_sealed
            ])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate { what: format!("a caller named {:?} or with that credential", c.name) }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    fn disable_caller(&mut self, name: &str, at: u64) -> Result<bool, StoreError> {
        let changed = self
            .conn()?
            .prepare_cached("UPDATE callers SET disabled_at = ?2 WHERE name = ?1 AND disabled_at IS NULL")?
            .execute(params![name, at as i64])?;
        Ok(changed == 1)
    }

    fn insert_officer(&mut self, o: &OfficerRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO officers (kid, name, algorithm, public_key_pem, domains, created_by, created_at, \
                 disabled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                o.kid,
                o.name,
                o.algorithm,
                o.public_key_pem,
                crate::to_json(&o.domains),
                o.created_by,
                o.created_at as i64,
                o.disabled_at.map(|t| t as i64)
            ])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate { what: format!("an officer named {:?} or with that key", o.name) }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }
}
