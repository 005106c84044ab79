//! Copying a whole instance from one store to another (`prereg migrate`):
//! an embedded SQLite instance into the PostgreSQL database of a cluster.
//!
//! Everything is written in one transaction of the target, so a failed copy
//! leaves it empty. Ids are kept (audit records name `registration:42`), the
//! audit log is copied record by record with its hashes, and the counts are
//! compared at the end. The caller verifies the chain on arrival.

use super::{Storage, StoreError, TxKind};

/// Rows per page when reading the source.
const PAGE: u32 = 5000;

/// What was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Officers.
    pub officers: u64,
    /// Token procedures.
    pub procedures: u64,
    /// Registrations.
    pub registrations: u64,
    /// Bulk import records.
    pub imports: u64,
    /// Policy versions.
    pub policies: u64,
    /// Certificates of the enrollment front.
    pub certificates: u64,
    /// Single-use request ids still remembered.
    pub request_ids: u64,
    /// Audit records.
    pub audit_records: u64,
    /// ACME binding keys, accounts, orders and authorizations.
    pub acme_objects: u64,
}

/// Copies the instance in `from` into `to`, which must hold no instance.
pub fn copy_instance(from: &dyn Storage, to: &dyn Storage) -> Result<CopyReport, StoreError> {
    let mut src = from.begin(TxKind::Read)?;
    let mut dst = to.begin(TxKind::Write)?;
    if let Some(existing) = dst.instance_id()? {
        return Err(StoreError::Duplicate { what: format!("an instance ({existing}) in the target database") });
    }
    let instance = src
        .instance_id()?
        .ok_or_else(|| StoreError::Missing(format!("{} holds no initialised instance", from.describe())))?;
    let first_audit = src.audit_records(0, 1)?;
    let created_at = first_audit.first().map_or(0, |r| r.time);
    dst.set_instance_id(&instance, created_at)?;
    if let Some(key) = src.sealing_key()? {
        dst.set_sealing_key(&key)?;
    }
    let mut report = CopyReport::default();

    for officer in src.officers()? {
        dst.insert_officer(&officer)?;
        report.officers += 1;
    }
    for procedure in src.procedures()? {
        dst.insert_procedure(&procedure)?;
        report.procedures += 1;
    }
    let mut imports = src.imports(u32::MAX)?;
    imports.reverse();
    for import in &imports {
        dst.restore_import(import)?;
        report.imports += 1;
    }
    let mut after = 0;
    loop {
        let page = src.stored_registrations(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.record.id;
        for registration in &page {
            dst.restore_registration(registration)?;
        }
        report.registrations += page.len() as u64;
    }
    for version in src.policy_versions()? {
        let component = src
            .policy_component(&version.sha256)?
            .ok_or_else(|| StoreError::Corrupt(format!("policy {} has no component", version.sha256)))?;
        dst.insert_policy(&version, &component)?;
        report.policies += 1;
    }
    if let Some(active) = src.active_policy()? {
        dst.set_active_policy(Some(&active), "migrate", created_at)?;
    }
    if let Some(shadow) = src.shadow_policy()? {
        dst.set_shadow_policy(Some(&shadow.sha256), &shadow.set_by, shadow.set_at)?;
    }
    let mut after = 0;
    loop {
        let page = src.certificates(after, PAGE)?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, certificate) in &page {
            dst.insert_certificate(certificate)?;
        }
        report.certificates += page.len() as u64;
    }
    // The newest CRL, so that the cRLNumber keeps growing after the move.
    if let Some(crl) = src.latest_crl()? {
        dst.insert_crl(&crl)?;
    }
    for kind in super::AcmeKind::ALL {
        let mut after = String::new();
        loop {
            let page = src.acme_objects(kind, &after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            for object in &page {
                dst.insert_acme_object(object)?;
            }
            report.acme_objects += page.len() as u64;
        }
    }
    for (jti, kid, expires_at) in src.request_ids()? {
        dst.consume_request_id(&jti, &kid, expires_at, 0, 0)?;
        report.request_ids += 1;
    }
    let mut after = 0;
    loop {
        let page = src.audit_records(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            dst.append_audit(record)?;
        }
        report.audit_records += page.len() as u64;
    }
    if let Some((seq, mac)) = src.audit_keyed_from()? {
        dst.set_audit_keyed_from(seq, &mac)?;
    }
    dst.restore_finish()?;
    dst.commit()?;

    // Count what arrived.
    let mut check = to.begin(TxKind::Read)?;
    let arrived: u64 = check.count_registrations_by_state()?.iter().map(|(_, n)| n).sum();
    let audit = check.audit_head()?.map_or(0, |(seq, _)| seq);
    if arrived != report.registrations || audit != report.audit_records {
        return Err(StoreError::Corrupt(format!(
            "copied {} registrations and {} audit records, but the target holds {arrived} and {audit}",
            report.registrations, report.audit_records
        )));
    }
    Ok(report)
}
