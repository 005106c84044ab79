//! The hash-chained audit log.
//!
//! Each record carries the hash of the one before it; its own hash is SHA-256
//! over a canonical JSON array of every field but the hash itself. Changing,
//! removing, reordering or inserting a record breaks the chain at that record,
//! and [`verify_page`] names the first sequence number where it breaks.
//!
//! Someone who can write the database could rewrite the chain from any record
//! on, or cut its end off. Two things catch that, both resting on keys derived
//! from the instance key in the data folder ([`AuditKeys`]), which the database
//! does not hold: signed checkpoints ([`checkpoint`]) that fix the log's length
//! and head at a moment, and the re-verification of every officer's signed
//! request against the officer's key ([`verify`]).

pub mod checkpoint;
pub mod verify;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::{AuditRecord, StoreError, Tx};

/// The instance's audit keys, derived from its sealing key
/// ([`crate::sealing::SealingKey::derive`]): every node with the data
/// folder's `sealing.key` has them; the database alone gives neither.
///
/// The chain is keyed: each record written by a process that holds the keys
/// carries an HMAC of its sequence number and hash ([`AuditKeys::record_mac`]),
/// from the first such record on (which the instance records, under its own
/// MAC). Re-hashing the chain after a change breaks every MAC from there on,
/// and stripping the MACs is refused once the marker says where they start.
/// (A forger who also removes the marker makes the log look as if it had
/// never been keyed; the signed checkpoints catch a rewrite up to them.)
pub struct AuditKeys {
    /// Signs checkpoints (Ed25519).
    checkpoint: ed25519_dalek::SigningKey,
    /// Keys the chain (HMAC-SHA256).
    mac: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKeys({})", hex(self.checkpoint.verifying_key().as_bytes()))
    }
}

impl AuditKeys {
    /// The keys of the instance whose sealing key is `sealing`.
    pub fn from_sealing(sealing: &crate::sealing::SealingKey) -> Self {
        Self::from_secrets(
            &sealing.derive(b"prereg audit chain mac v1"),
            &sealing.derive(b"prereg audit checkpoint ed25519 v1"),
        )
    }

    /// From the two secrets themselves (tests).
    pub fn from_secrets(mac: &[u8; 32], checkpoint: &[u8; 32]) -> Self {
        AuditKeys { checkpoint: ed25519_dalek::SigningKey::from_bytes(checkpoint), mac: Zeroizing::new(*mac) }
    }

    fn hmac(&self, parts: &[&[u8]]) -> String {
        use hmac::Mac;
        // HMAC takes a key of any length.
        let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(self.mac.as_ref()) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex(&mac.finalize().into_bytes())
    }

    /// The MAC of audit record `seq` with chain hash `hash` (hex).
    pub fn record_mac(&self, seq: u64, hash: &str) -> String {
        self.hmac(&[b"prereg audit record", &seq.to_be_bytes(), hash.as_bytes()])
    }

    /// The MAC of the marker saying that record `seq` is the first keyed one.
    pub fn marker_mac(&self, seq: u64) -> String {
        self.hmac(&[b"prereg audit keyed from", &seq.to_be_bytes()])
    }
}

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit record before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub time: u64,
    /// Officer key id, `device` or `init`.
    pub actor: String,
    /// Action name.
    pub action: String,
    /// Object.
    pub object: String,
    /// `ok`, `allowed`, `denied`.
    pub outcome: String,
    /// Reason code.
    pub reason: Option<String>,
    /// Policy hash.
    pub policy_sha256: Option<String>,
    /// JWS, or request JSON.
    pub request: String,
    /// Detail.
    pub detail: String,
    /// The domain it belongs to; `None`: instance-wide.
    pub domain: Option<String>,
}

/// The hash of a record (hex), from all its fields but `hash` and `mac`: a
/// canonical JSON array of them, the domain last and only when the record
/// has one (records written before records had domains hash as they did).
pub fn record_hash(r: &AuditRecord) -> String {
    let mut fields = vec![
        serde_json::Value::from(r.seq),
        r.prev_hash.as_str().into(),
        r.time.into(),
        r.actor.as_str().into(),
        r.action.as_str().into(),
        r.object.as_str().into(),
        r.outcome.as_str().into(),
        r.reason.as_deref().into(),
        r.policy_sha256.as_deref().into(),
        r.request.as_str().into(),
        r.detail.as_str().into(),
    ];
    if let Some(domain) = &r.domain {
        fields.push(domain.as_str().into());
    }
    let canonical = serde_json::to_vec(&fields).unwrap_or_default();
    hex(&Sha256::digest(canonical))
}

/// Appends `entry` to the chain inside `tx`, keyed with `keys` when the
/// process holds them; the caller commits it with the change it records, so
/// that neither exists without the other.
pub fn append(tx: &mut dyn Tx, entry: AuditEntry, keys: Option<&AuditKeys>) -> Result<AuditRecord, StoreError> {
    let (seq, prev_hash) = match tx.audit_head()? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let mut record = AuditRecord {
        seq,
        prev_hash,
        hash: String::new(),
        time: entry.time,
        actor: entry.actor,
        action: entry.action,
        object: entry.object,
        outcome: entry.outcome,
        reason: entry.reason,
        policy_sha256: entry.policy_sha256,
        request: entry.request,
        detail: entry.detail,
        mac: None,
        domain: entry.domain,
    };
    record.hash = record_hash(&record);
    if let Some(keys) = keys {
        record.mac = Some(keys.record_mac(record.seq, &record.hash));
        // Recorded once: the first keyed record (a no-op afterwards).
        tx.set_audit_keyed_from(record.seq, &keys.marker_mac(record.seq))?;
    }
    tx.append_audit(&record)?;
    Ok(record)
}

/// What is wrong at the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    /// A sequence number is missing or out of order (removed, reordered or
    /// inserted records).
    #[error(
        "record {found} follows record {previous}; expected {expected} (a record was removed, reordered or inserted)"
    )]
    Sequence {
        /// The previous record's seq (0 before the first).
        previous: u64,
        /// The seq expected.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// `prev_hash` does not match the previous record's hash.
    #[error(
        "record {seq} does not link to the record before it (a record was removed, reordered or inserted, or the previous one altered)"
    )]
    Link {
        /// The record.
        seq: u64,
    },
    /// The record's hash does not match its content.
    #[error("record {seq} was altered: its content does not match its hash")]
    Altered {
        /// The record.
        seq: u64,
    },
    /// An officer's record whose signed request does not verify against the
    /// officer's key (forged, or the key or request altered).
    #[error("record {seq} is not what its officer signed: {why}")]
    Signature {
        /// The record.
        seq: u64,
        /// Why.
        why: String,
    },
    /// The log is shorter than a signed checkpoint: its end was cut off.
    #[error(
        "the log ends at record {records}, but a signed checkpoint counts {checkpoint}: records were cut off its end"
    )]
    Truncated {
        /// Records in the log.
        records: u64,
        /// Records the checkpoint counts.
        checkpoint: u64,
    },
    /// A record that should carry the instance key's MAC does not: written
    /// or rewritten by someone without the key.
    #[error("record {seq} does not carry the instance key's MAC: {why}")]
    Unkeyed {
        /// The record.
        seq: u64,
        /// Why.
        why: String,
    },
    /// The record at a checkpoint's size no longer hashes to its root.
    #[error(
        "record {seq} no longer hashes to the signed checkpoint's root: the log up to it was rewritten and re-hashed"
    )]
    Rewritten {
        /// The record.
        seq: u64,
    },
}

impl ChainFault {
    /// The sequence number of the first bad record.
    pub fn seq(&self) -> u64 {
        match *self {
            ChainFault::Sequence { found, .. } => found,
            ChainFault::Link { seq } | ChainFault::Altered { seq } | ChainFault::Rewritten { seq } => seq,
            ChainFault::Signature { seq, .. } | ChainFault::Unkeyed { seq, .. } => seq,
            ChainFault::Truncated { records, .. } => records + 1,
        }
    }
}

/// Checks records in storage order, continuing a chain whose last good record
/// was `previous` (seq and hash; `(0, GENESIS)` at the start).
pub fn verify_page(previous: &mut (u64, String), page: &[AuditRecord]) -> Result<(), ChainFault> {
    for record in page {
        if record.seq != previous.0 + 1 {
            return Err(ChainFault::Sequence { previous: previous.0, expected: previous.0 + 1, found: record.seq });
        }
        if record.hash != record_hash(record) {
            return Err(ChainFault::Altered { seq: record.seq });
        }
        if record.prev_hash != previous.1 {
            return Err(ChainFault::Link { seq: record.seq });
        }
        *previous = (record.seq, record.hash.clone());
    }
    Ok(())
}

/// Lower-case hex (one implementation, in `prereg-pki`).
pub use prereg_pki::hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut r = AuditRecord {
                    seq,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                    time: 1000 + seq,
                    actor: "kid".into(),
                    action: "registration.create".into(),
                    object: format!("registration:{seq}"),
                    outcome: "ok".into(),
                    reason: None,
                    policy_sha256: None,
                    request: "{}".into(),
                    detail: String::new(),
                    mac: None,
                    domain: (seq % 2 == 0).then(|| "corp".to_owned()),
                };
                r.hash = record_hash(&r);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn verify(records: &[AuditRecord]) -> Result<(), ChainFault> {
        verify_page(&mut (0, GENESIS.to_owned()), records)
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn the_domain_is_hashed_when_present_and_old_records_hash_as_before() {
        let records = chain(2);
        // Record 1 has no domain: its hash is over the eleven fields records
        // had before domains, as they were hashed then.
        let r = &records[0];
        let before = serde_json::to_vec(&serde_json::json!([
            r.seq,
            r.prev_hash,
            r.time,
            r.actor,
            r.action,
            r.object,
            r.outcome,
            r.reason,
            r.policy_sha256,
            r.request,
            r.detail
        ]))
        .unwrap();
        assert_eq!(r.hash, hex(&Sha256::digest(before)));
        // Moving record 2 to another domain (to hide it from its officers,
        // or show it to others) breaks the chain there.
        let mut moved = chain(3);
        moved[1].domain = Some("other".into());
        assert_eq!(verify(&moved), Err(ChainFault::Altered { seq: 2 }));
        let mut stripped = chain(3);
        stripped[1].domain = None;
        assert_eq!(verify(&stripped), Err(ChainFault::Altered { seq: 2 }));
    }

    #[test]
    fn alteration_removal_reordering_and_insertion_are_caught() {
        let mut altered = chain(5);
        altered[2].object.push('x');
        assert_eq!(verify(&altered), Err(ChainFault::Altered { seq: 3 }));

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(&removed).map_err(|e| e.seq()), Err(3));

        // Swapping two records' contents but keeping their sequence numbers.
        let mut swapped = chain(5);
        swapped.swap(1, 2);
        let (a, b) = (swapped[1].seq, swapped[2].seq);
        swapped[1].seq = b;
        swapped[2].seq = a;
        assert!(verify(&swapped).is_err());

        // A forged record re-hashed in place still breaks the next link.
        let mut forged = chain(5);
        forged[2].object = "registration:999".into();
        forged[2].hash = record_hash(&forged[2]);
        assert_eq!(verify(&forged), Err(ChainFault::Link { seq: 4 }));
    }
}
