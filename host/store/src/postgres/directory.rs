//! [`crate::Directory`] on PostgreSQL.

use super::rows::{CALLER_COLUMNS, OFFICER_COLUMNS, PROCEDURE_COLUMNS, caller_from, int, officer_from, procedure_from};
use super::{Lane, PostgresStorage, PostgresTx};
use crate::Directory;
use crate::{CallerRecord, OfficerRecord, ProcedureRecord, StoreError};

impl Directory for PostgresTx {
    fn procedure(&mut self, name: &str) -> Result<Option<ProcedureRecord>, StoreError> {
        let known = |storage: &PostgresStorage| storage.inner.procedures.lock().ok()?.get(name).cloned();
        if let Some(procedure) = known(&self.storage) {
            return Ok(Some(procedure));
        }
        let sql = format!("SELECT {PROCEDURE_COLUMNS} FROM procedures WHERE name = $1");
        let found = self.query_opt(&sql, &[&name])?.as_ref().map(procedure_from).transpose()?;
        // Only what a reader saw is committed (a writer may yet roll back).
        let committed = self.conn.as_ref().is_some_and(|c| c.lane == Lane::Read);
        if let (true, Some(procedure), Ok(mut seen)) = (committed, &found, self.storage.inner.procedures.lock()) {
            seen.insert(name.to_owned(), procedure.clone());
        }
        Ok(found)
    }

    fn procedures(&mut self) -> Result<Vec<ProcedureRecord>, StoreError> {
        let sql = format!("SELECT {PROCEDURE_COLUMNS} FROM procedures ORDER BY name");
        self.query(&sql, &[])?.iter().map(procedure_from).collect()
    }

    fn insert_procedure(&mut self, p: &ProcedureRecord) -> Result<(), StoreError> {
        self.execute("INSERT INTO domains (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&p.domain])?;
        let n = self.execute(
            "INSERT INTO procedures (name, domain, protocol, require_preregistration, allowed_domains, \
             certificate_days, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &p.name,
                &p.domain,
                &p.protocol.as_str(),
                &p.require_preregistration,
                &crate::to_json(&p.allowed_domains),
                &int(p.certificate_days, "certificate_days")?,
                &p.created_by,
                &(p.created_at as i64),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: format!("token procedure {:?}", p.name) });
        }
        Ok(())
    }

    fn officer(&mut self, kid: &str) -> Result<Option<OfficerRecord>, StoreError> {
        let sql = format!("SELECT {OFFICER_COLUMNS} FROM officers WHERE kid = $1");
        self.query_opt(&sql, &[&kid])?.as_ref().map(officer_from).transpose()
    }

    fn officers(&mut self) -> Result<Vec<OfficerRecord>, StoreError> {
        let sql = format!("SELECT {OFFICER_COLUMNS} FROM officers ORDER BY name");
        self.query(&sql, &[])?.iter().map(officer_from).collect()
    }

    fn disable_officer(&mut self, kid: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE officers SET disabled_at = $2 WHERE kid = $1 AND disabled_at IS NULL",
            &[&kid, &(at as i64)],
        )?;
        Ok(n == 1)
    }

    fn caller(&mut self, name: &str) -> Result<Option<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers WHERE name = $1");
        self.query_opt(&sql, &[&name])?.as_ref().map(caller_from).transpose()
    }

    fn caller_by_secret(&mut self, secret_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers WHERE secret_sha256 = $1");
        self.query_opt(&sql, &[&secret_sha256])?.as_ref().map(caller_from).transpose()
    }

    fn caller_by_certificate(&mut self, certificate_sha256: &str) -> Result<Option<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers WHERE certificate_sha256 = $1");
        self.query_opt(&sql, &[&certificate_sha256])?.as_ref().map(caller_from).transpose()
    }

    fn callers(&mut self) -> Result<Vec<CallerRecord>, StoreError> {
        let sql = format!("SELECT {CALLER_COLUMNS} FROM callers ORDER BY name");
        self.query(&sql, &[])?.iter().map(caller_from).collect()
    }

    fn insert_caller(&mut self, c: &CallerRecord) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO callers (name, procedures, secret_sha256, certificate_sha256, created_by, created_at, \
             disabled_at, webhook_secret_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &c.name,
                &crate::to_json(&c.procedures),
                &c.secret_sha256,
                &c.certificate_sha256,
                &c.created_by,
                &(c.created_at as i64),
                &c.disabled_at.map(|t| t as i64),
                &c.webhook_secret_sealed,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: format!("a caller named {:?} or with that credential", c.name) });
        }
        Ok(())
    }

    fn disable_caller(&mut self, name: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE callers SET disabled_at = $2 WHERE name = $1 AND disabled_at IS NULL",
            &[&name, &(at as i64)],
        )?;
        Ok(n == 1)
    }

    fn insert_officer(&mut self, o: &OfficerRecord) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO officers (kid, name, algorithm, public_key_pem, domains, created_by, created_at, disabled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &o.kid,
                &o.name,
                &o.algorithm,
                &o.public_key_pem,
                &crate::to_json(&o.domains),
                &o.created_by,
                &(o.created_at as i64),
                &o.disabled_at.map(|t| t as i64),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate { what: format!("an officer named {:?} or with that key", o.name) });
        }
        Ok(())
    }
}
