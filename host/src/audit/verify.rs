//! Verifying the whole audit log: the hash chain, every officer's signed
//! request against the officer's key, and a signed checkpoint.
//!
//! What each check catches, for someone who can write the database alone:
//! - the chain: an altered, removed, reordered or inserted record, unless the
//!   chain was re-hashed from it to the end;
//! - the signatures: a forged or altered officer action, re-hashed or not
//!   (the officer's key never leaves the officer; a key swapped in the store
//!   no longer matches the key id that names it);
//! - a checkpoint signed by the instance key: a log cut short, or re-hashed
//!   anywhere up to the checkpoint.

use std::collections::HashMap;

use super::checkpoint::Checkpoint;
use super::{AuditKeys, ChainFault, GENESIS, verify_page};
use crate::signing::{self, PublicKey};
use crate::store::{AuditRecord, StoreError, Tx};

/// Records read at a time.
const PAGE: u32 = 1000;

/// The result of verifying the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Records checked (up to the first bad one).
    pub checked: u64,
    /// Officers' signed requests re-verified among them.
    pub signatures: u64,
    /// The size of the checkpoint the log was checked against, if one was.
    pub checkpoint: Option<u64>,
    /// The first fault, if any.
    pub fault: Option<ChainFault>,
}

/// Verifies the whole log of instance `instance_id` in `tx`: the chain, the
/// signed requests, the records' MACs when `keys` are given (the process has
/// the instance key), and `checkpoint` if given (already opened with the
/// instance's key, [`Checkpoint::open`]).
pub fn verify_log(
    tx: &mut dyn Tx,
    instance_id: &str,
    checkpoint: Option<&Checkpoint>,
    keys: Option<&AuditKeys>,
) -> Result<AuditVerification, StoreError> {
    let mut previous = (0u64, GENESIS.to_owned());
    let mut signatures = 0;
    let mut officers: HashMap<String, Result<(PublicKey, Option<u64>), String>> = HashMap::new();
    let result = |previous: &(u64, String), signatures, fault| AuditVerification {
        checked: previous.0,
        signatures,
        checkpoint: checkpoint.map(|c| c.size),
        fault,
    };
    let mut root_checked = checkpoint.is_none_or(|c| c.size == 0 && c.root == [0; 32]);
    let keyed_from = match keys {
        Some(keys) => match tx.audit_keyed_from()? {
            Some((from, mac)) if keys.marker_mac(from) != mac => {
                let why = "the instance's record of where the keyed records start was altered".to_owned();
                return Ok(result(&previous, 0, Some(ChainFault::Unkeyed { seq: from, why })));
            }
            marker => marker.map(|(from, _)| from),
        },
        None => None,
    };
    loop {
        let page = tx.audit_records(previous.0, PAGE)?;
        if page.is_empty() {
            break;
        }
        for record in &page {
            let before = previous.clone();
            if let Err(fault) = verify_page(&mut previous, std::slice::from_ref(record)) {
                return Ok(result(&before, signatures, Some(fault)));
            }
            if let Some(keys) = keys
                && let Some(why) = check_mac(keys, keyed_from, record)
            {
                return Ok(result(&before, signatures, Some(ChainFault::Unkeyed { seq: record.seq, why })));
            }
            match check_signature(tx, instance_id, record, &mut officers)? {
                Ok(true) => signatures += 1,
                Ok(false) => {}
                Err(why) => {
                    return Ok(result(&before, signatures, Some(ChainFault::Signature { seq: record.seq, why })));
                }
            }
            if let Some(c) = checkpoint
                && c.size == record.seq
            {
                if hash_root(&record.hash) != Some(c.root) {
                    return Ok(result(&before, signatures, Some(ChainFault::Rewritten { seq: record.seq })));
                }
                root_checked = true;
            }
        }
    }
    if let Some(c) = checkpoint
        && !root_checked
    {
        let fault = ChainFault::Truncated { records: previous.0, checkpoint: c.size };
        return Ok(result(&previous, signatures, Some(fault)));
    }
    Ok(result(&previous, signatures, None))
}

/// The root of a checkpoint of a log whose last record has chain hash `hash`.
pub fn hash_root(hash: &str) -> Option<[u8; 32]> {
    prereg_pki::unhex(hash)?.try_into().ok()
}

/// What is wrong with a record's MAC, if anything: records from the keyed
/// marker on must carry one, and every MAC must verify.
fn check_mac(keys: &AuditKeys, keyed_from: Option<u64>, record: &AuditRecord) -> Option<String> {
    match (&record.mac, keyed_from) {
        (Some(mac), _) if *mac != keys.record_mac(record.seq, &record.hash) => {
            Some("its MAC does not verify (it was rewritten or re-hashed without the key)".into())
        }
        (Some(_), None) => Some("it is keyed, but the instance's record of where keying starts is gone".into()),
        (None, Some(from)) if record.seq >= from => {
            Some(format!("records from {from} on are keyed, and this one has no MAC (written without the key)"))
        }
        _ => None,
    }
}

/// Whether a record is an officer's: not an enrollment decision (asked by
/// the device itself, or by a CA caller: `caller:NAME`, on `enroll` only),
/// set-up, or the server's own action (revoking what was never confirmed).
fn is_officer(record: &AuditRecord) -> bool {
    let caller_decision = record.actor.starts_with("caller:") && record.action == "enroll";
    !(caller_decision || matches!(record.actor.as_str(), "device" | "init" | "prereg"))
}

/// Re-verifies the signed request of an officer's record: `Ok(true)` if one
/// was verified, `Ok(false)` if the record carries none by design (not an
/// officer's, or a row of a signed import), `Err` naming what is wrong.
fn check_signature(
    tx: &mut dyn Tx,
    instance_id: &str,
    record: &AuditRecord,
    officers: &mut HashMap<String, Result<(PublicKey, Option<u64>), String>>,
) -> Result<Result<bool, String>, StoreError> {
    if !is_officer(record) {
        return Ok(Ok(false));
    }
    let request = record.request.trim();
    if request.starts_with('{') {
        // A row of a bulk import: the import's own record carries the
        // signed request that covers the file.
        let row = serde_json::from_str::<serde_json::Value>(request).ok();
        let is_import_row = record.action == "registration.create" && row.is_some_and(|r| r.get("import").is_some());
        return Ok(if is_import_row { Ok(false) } else { Err("an officer's record without a signed request".into()) });
    }
    if !officers.contains_key(&record.actor) {
        let key = match tx.officer(&record.actor)? {
            None => Err(format!("officer key {} is not in the store", record.actor)),
            Some(officer) => match PublicKey::from_pem(&officer.public_key_pem, &officer.name) {
                Ok(key) if key.kid() == record.actor => Ok((key, officer.disabled_at)),
                Ok(_) => Err(format!("the key stored for officer {} is not the key {}", officer.name, record.actor)),
                Err(e) => Err(e.to_string()),
            },
        };
        officers.insert(record.actor.clone(), key);
    }
    let key = match officers.get(&record.actor) {
        Some(Ok((_, Some(disabled)))) if record.time > *disabled => {
            return Ok(Err(format!("signed by officer key {} after it was disabled at {disabled}", record.actor)));
        }
        Some(Ok((key, _))) => key.clone(),
        Some(Err(why)) => return Ok(Err(why.clone())),
        None => return Ok(Err("no officer key".into())),
    };
    // Checked as the server checked it when it applied it: at the record's time.
    let verified = match signing::verify(request, instance_id, record.time, |kid| (kid == record.actor).then_some(key))
    {
        Ok(verified) => verified,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let signed_for = verified.claims.request.action();
    if signed_for != record.action {
        return Ok(Err(format!("the officer signed {signed_for}, but the record says {}", record.action)));
    }
    Ok(Ok(true))
}
