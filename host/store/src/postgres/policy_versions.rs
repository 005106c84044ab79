//! [`crate::PolicyVersions`] on PostgreSQL.

use super::PostgresTx;
use super::rows::{col, shadow_side, u64_at};
use crate::PolicyVersions;
use crate::{PolicyVersionRecord, ShadowDisagreement, ShadowRecord, StoreError};

impl PolicyVersions for PostgresTx {
    fn insert_policy(&mut self, r: &PolicyVersionRecord, component: &[u8]) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO policies (sha256, name, version, wit_version, size, component, loaded_by, loaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &r.sha256,
                &r.name,
                &r.version,
                &r.wit_version,
                &(r.size as i64),
                &component,
                &r.loaded_by,
                &(r.loaded_at as i64),
            ],
        )?;
        Ok(n > 0)
    }

    fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRecord>, StoreError> {
        self.query(
            "SELECT p.sha256, p.name, p.version, p.wit_version, p.size, p.loaded_by, p.loaded_at, \
             (a.sha256 IS NOT NULL) FROM policies p \
             LEFT JOIN active_policy a ON a.sha256 = p.sha256 ORDER BY p.loaded_at, p.seq",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(PolicyVersionRecord {
                sha256: col(r, 0)?,
                name: col(r, 1)?,
                version: col(r, 2)?,
                wit_version: col(r, 3)?,
                size: u64_at(r, 4)?,
                loaded_by: col(r, 5)?,
                loaded_at: u64_at(r, 6)?,
                active: col(r, 7)?,
            })
        })
        .collect()
    }

    fn policy_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query_opt("SELECT component FROM policies WHERE sha256 = $1", &[&sha256])?.map(|r| col(&r, 0)).transpose()
    }

    fn active_policy(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.query_opt("SELECT sha256 FROM active_policy", &[])?.map(|r| col(&r, 0)).transpose()?.flatten())
    }

    fn set_active_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO active_policy (singleton, sha256, activated_by, activated_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = $1, activated_by = $2, activated_at = $3",
            &[&sha256, &by, &(at as i64)],
        )?;
        Ok(())
    }

    fn shadow_policy(&mut self) -> Result<Option<ShadowRecord>, StoreError> {
        self.query_opt(
            "SELECT sha256, set_by, set_at, compared, disagreed FROM shadow_policy WHERE sha256 IS NOT NULL",
            &[],
        )?
        .map(|r| {
            Ok(ShadowRecord {
                sha256: col(&r, 0)?,
                set_by: col(&r, 1)?,
                set_at: u64_at(&r, 2)?,
                compared: u64_at(&r, 3)?,
                disagreed: u64_at(&r, 4)?,
            })
        })
        .transpose()
    }

    fn set_shadow_policy(&mut self, sha256: Option<&str>, by: &str, at: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO shadow_policy (singleton, sha256, set_by, set_at, since_id) \
             VALUES (1, $1, $2, $3, (SELECT COALESCE(MAX(id), 0) FROM shadow_disagreements)) \
             ON CONFLICT (singleton) DO UPDATE SET sha256 = $1, set_by = $2, set_at = $3, compared = 0, \
             disagreed = 0, since_id = excluded.since_id",
            &[&sha256, &by, &(at as i64)],
        )?;
        Ok(())
    }

    fn record_shadow(&mut self, disagreement: Option<&ShadowDisagreement>) -> Result<(), StoreError> {
        self.execute(
            "UPDATE shadow_policy SET compared = compared + 1, disagreed = disagreed + $1",
            &[&i64::from(disagreement.is_some())],
        )?;
        if let Some(d) = disagreement {
            self.execute(
                "INSERT INTO shadow_disagreements (time, audit_seq, request, active_sha256, active_allowed, \
                 active_reason, active_registration, active_explanation, shadow_sha256, shadow_allowed, \
                 shadow_reason, shadow_registration, shadow_explanation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &(d.time as i64),
                    &(d.audit_seq as i64),
                    &d.request.to_string(),
                    &d.active.sha256,
                    &d.active.allowed,
                    &d.active.reason,
                    &d.active.registration.map(|id| id as i64),
                    &d.active.explanation,
                    &d.shadow.sha256,
                    &d.shadow.allowed,
                    &d.shadow.reason,
                    &d.shadow.registration.map(|id| id as i64),
                    &d.shadow.explanation,
                ],
            )?;
        }
        Ok(())
    }

    fn shadow_disagreements(
        &mut self,
        sha256: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ShadowDisagreement>, StoreError> {
        self.query(
            "SELECT id, time, audit_seq, request, active_sha256, active_allowed, active_reason, active_registration, \
             active_explanation, shadow_sha256, shadow_allowed, shadow_reason, shadow_registration, shadow_explanation \
             FROM shadow_disagreements WHERE shadow_sha256 = $1 AND id > $2 \
             AND id > (SELECT since_id FROM shadow_policy) ORDER BY id LIMIT $3",
            &[&sha256, &(after as i64), &i64::from(limit)],
        )?
        .iter()
        .map(|r| {
            let request: String = col(r, 3)?;
            Ok(ShadowDisagreement {
                id: u64_at(r, 0)?,
                time: u64_at(r, 1)?,
                audit_seq: u64_at(r, 2)?,
                request: serde_json::from_str(&request).unwrap_or(serde_json::Value::String(request)),
                active: shadow_side(r, 4)?,
                shadow: shadow_side(r, 9)?,
            })
        })
        .collect()
    }

    fn precompiled(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.query_opt("SELECT sha256 FROM precompiled WHERE key = $1", &[&key])?.map(|r| col(&r, 0)).transpose()
    }

    fn record_precompiled(&mut self, key: &str, sha256: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO precompiled (key, sha256) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET sha256 = $2",
            &[&key, &sha256],
        )?;
        Ok(())
    }
}
