//! [`crate::PolicyVersions`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use super::rows::shadow_side;
use crate::PolicyVersions;
use crate::{PolicyVersionRecord, ShadowDisagreement, ShadowRecord, StoreError};

impl PolicyVersions for SqliteTx {
    fn insert_policy(&mut self, r: &PolicyVersionRecord, component: &[u8]) -> Result<bool, StoreError> {
        let n = self.conn()?.prepare_cached("INSERT OR IGNORE INTO policies (sha256, name, version, wit_version, size, component, loaded_by, loaded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![r.sha256, r.name, r.version, r.wit_version, r.size as i64, component, r.loaded_by, r.loaded_at as i64],
        )?;
        Ok(n > 0)
    }

    fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT p.sha256, p.name, p.version, p.wit_version, p.size, p.loaded_by, p.loaded_at, \
             (a.sha256 IS NOT NULL) AS active FROM policies p \
             LEFT JOIN active_policy a ON a.sha256 = p.sha256 ORDER BY p.loaded_at, p.rowid",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok(PolicyVersionRecord {
                    sha256: row.get(0)?,
                    name: row.get(1)?,
                    version: row.get(2)?,
                    wit_version: row.get(3)?,
                    size: row.get::<_, i64>(4)? as u64,
                    loaded_by: row.get(5)?,
                    loaded_at: row.get::<_, i64>(6)? as u64,
                    active: row.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn policy_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT component FROM policies WHERE sha256 = ?1")?
            .query_row([sha256], |r| r.get(0))
            .optional()?)
    }

    fn active_policy(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT sha256 FROM active_policy")?
            .query_row([], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn set_active_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO active_policy (singleton, sha256, activated_by, activated_at) VALUES (1, ?1, ?2, ?3) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = ?1, activated_by = ?2, activated_at = ?3",
            )?
            .execute(params![sha256, by, at as i64])?;
        Ok(())
    }

    fn shadow_policy(&mut self) -> Result<Option<ShadowRecord>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT sha256, set_by, set_at, compared, disagreed FROM shadow_policy WHERE sha256 IS NOT NULL",
            )?
            .query_row([], |r| {
                Ok(ShadowRecord {
                    sha256: r.get(0)?,
                    set_by: r.get(1)?,
                    set_at: r.get::<_, i64>(2)? as u64,
                    compared: r.get::<_, i64>(3)? as u64,
                    disagreed: r.get::<_, i64>(4)? as u64,
                })
            })
            .optional()?)
    }

    fn set_shadow_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO shadow_policy (singleton, sha256, set_by, set_at, since_id) \
             VALUES (1, ?1, ?2, ?3, (SELECT COALESCE(MAX(id), 0) FROM shadow_disagreements)) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = ?1, set_by = ?2, set_at = ?3, compared = 0, \
             disagreed = 0, since_id = excluded.since_id",
            )?
            .execute(params![sha256, by, at as i64])?;
        Ok(())
    }

    fn record_shadow(&mut self, disagreement: Option<&ShadowDisagreement>) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("UPDATE shadow_policy SET compared = compared + 1, disagreed = disagreed + ?1")?
            .execute([i64::from(disagreement.is_some())])?;
        if let Some(d) = disagreement {
            conn.prepare_cached(
                "INSERT INTO shadow_disagreements (time, audit_seq, request, active_sha256, active_allowed, \
                 active_reason, active_registration, active_explanation, shadow_sha256, shadow_allowed, \
                 shadow_reason, shadow_registration, shadow_explanation) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                d.time as i64,
                d.audit_seq as i64,
                d.request.to_string(),
                d.active.sha256,
                d.active.allowed,
                d.active.reason,
                d.active.registration.map(|id| id as i64),
                d.active.explanation,
                d.shadow.sha256,
                d.shadow.allowed,
                d.shadow.reason,
                d.shadow.registration.map(|id| id as i64),
                d.shadow.explanation,
            ])?;
        }
        Ok(())
    }

    fn shadow_disagreements(
        &mut self,
        sha256: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ShadowDisagreement>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, time, audit_seq, request, active_sha256, active_allowed, active_reason, active_registration, \
             active_explanation, shadow_sha256, shadow_allowed, shadow_reason, shadow_registration, shadow_explanation \
             FROM shadow_disagreements WHERE shadow_sha256 = ?1 AND id > ?2 \
             AND id > (SELECT since_id FROM shadow_policy) ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![sha256, after as i64, i64::from(limit)], |r| {
                let request: String = r.get(3)?;
                Ok(ShadowDisagreement {
                    id: r.get::<_, i64>(0)? as u64,
                    time: r.get::<_, i64>(1)? as u64,
                    audit_seq: r.get::<_, i64>(2)? as u64,
                    request: serde_json::from_str(&request).unwrap_or(serde_json::Value::String(request)),
                    active: shadow_side(r, 4)?,
                    shadow: shadow_side(r, 9)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn precompiled(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT sha256 FROM precompiled WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn record_precompiled(&mut self, key: &str, sha256: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO precompiled (key, sha256) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET sha256 = ?2",
            )?
            .execute(params![key, sha256])?;
        Ok(())
    }
}
