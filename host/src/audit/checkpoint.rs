//! Signed checkpoints of the audit log, in the C2SP `tlog-checkpoint` form
//! (a signed note): the origin, the number of records and the root hash, signed
//! with Ed25519 by a key derived from the instance key in the data folder
//! ([`AuditKeys`]), so that the database alone cannot make one.
//!
//! ```text
//! prereg/audit/5a2eef9086e9b58ddaf986a9cd5c151f
//! 42
//! q1Wx1H0ys0rM3B1Vq9XkP8Ei6yXb6X7Jx3k3xq2mL8Q=
//!
//! — prereg/audit/5a2eef9086e9b58ddaf986a9cd5c151f Ab3dEr0mZ...
//! ```
//!
//! The root hash is the chain hash of the last record counted (32 zero bytes
//! for an empty log). The log is a hash chain rather than a Merkle tree
//! (RFC 6962): `prereg audit verify` always reads the whole log, and a chain
//! lets every write append in O(1) inside its own transaction; what a Merkle
//! tree adds, a consistency proof between two checkpoints without the records,
//! matters to outside witnesses, which prereg does not have yet. A log that is
//! shorter than a checkpoint, or whose record at the checkpoint's size no
//! longer hashes to its root, fails verification ([`super::verify`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use super::AuditKeys;

/// The em dash and space that start a signed note's signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Signature type of an Ed25519 note key (C2SP signed-note).
const ED25519_TYPE: u8 = 0x01;

/// What a checkpoint states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name: `prereg/audit/<instance id>`.
    pub origin: String,
    /// How many records the log had.
    pub size: u64,
    /// The chain hash of record `size` (zeros for an empty log).
    pub root: [u8; 32],
}

/// Why a checkpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not a signed note of a checkpoint.
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    /// Signed for another log.
    #[error("the checkpoint is for log {found:?}, not this instance's {expected:?}")]
    OtherLog {
        /// This instance's origin.
        expected: String,
        /// The checkpoint's.
        found: String,
    },
    /// No signature by this instance's key verifies.
    #[error("the checkpoint is not signed by this instance's key (altered, or made elsewhere)")]
    BadSignature,
}

/// The origin line of an instance's audit log.
pub fn origin(instance_id: &str) -> String {
    format!("prereg/audit/{instance_id}")
}

impl Checkpoint {
    /// The note's text (what is signed): three lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// The signed note.
    pub fn sign(&self, keys: &AuditKeys) -> String {
        let body = self.body();
        let signature = keys.checkpoint.sign(body.as_bytes());
        let mut blob = key_id(&self.origin, keys).to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n{SIGNATURE_PREFIX}{} {}\n", self.origin, B64.encode(blob))
    }

    /// Reads a signed note and checks it is this instance's (`origin`),
    /// signed by its key.
    pub fn open(text: &str, expected_origin: &str, keys: &AuditKeys) -> Result<Checkpoint, CheckpointError> {
        let malformed = |why: &str| CheckpointError::Malformed(why.into());
        let (body, signatures) =
            text.split_once("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| malformed("no origin line"))?.to_owned();
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or_else(|| malformed("the second line is not a record count"))?;
        let root: [u8; 32] = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("the third line is not a base64 SHA-256 root hash"))?;
        if origin != expected_origin {
            return Err(CheckpointError::OtherLog { expected: expected_origin.into(), found: origin });
        }
        let id = key_id(&origin, keys);
        let public = keys.checkpoint.verifying_key();
        let signed = signatures.lines().filter_map(|l| l.strip_prefix(SIGNATURE_PREFIX)).any(|line| {
            let Some((name, blob)) = line.split_once(' ') else { return false };
            let Ok(blob) = B64.decode(blob.trim()) else { return false };
            let Ok(signature) = ed25519_dalek::Signature::from_slice(blob.get(4..).unwrap_or_default()) else {
                return false;
            };
            name == origin && blob.get(..4) == Some(&id[..]) && public.verify(body.as_bytes(), &signature).is_ok()
        });
        if !signed {
            return Err(CheckpointError::BadSignature);
        }
        Ok(Checkpoint { origin, size, root })
    }
}

/// The note key id: the first 4 bytes of SHA-256(name, newline, key type, key).
fn key_id(name: &str, keys: &AuditKeys) -> [u8; 4] {
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update(b"\n");
    hash.update([ED25519_TYPE]);
    hash.update(keys.checkpoint.verifying_key().as_bytes());
    let digest = hash.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> AuditKeys {
        AuditKeys::from_secrets(&[seed; 32], &[seed.wrapping_add(1); 32])
    }

    #[test]
    fn a_signed_checkpoint_opens_and_a_forged_one_does_not() {
        let keys = keys(7);
        let checkpoint = Checkpoint { origin: origin("abc"), size: 42, root: [9; 32] };
        let note = checkpoint.sign(&keys);
        assert!(note.starts_with("prereg/audit/abc\n42\n"), "{note}");
        assert!(note.contains("\n\n\u{2014} prereg/audit/abc "), "{note}");
        assert_eq!(Checkpoint::open(&note, "prereg/audit/abc", &keys), Ok(checkpoint.clone()));

        // Another count under the same signature, another key, another log.
        let altered = note.replacen("\n42\n", "\n41\n", 1);
        assert_eq!(Checkpoint::open(&altered, "prereg/audit/abc", &keys), Err(CheckpointError::BadSignature));
        assert_eq!(Checkpoint::open(&note, "prereg/audit/abc", &self::keys(8)), Err(CheckpointError::BadSignature));
        assert!(matches!(Checkpoint::open(&note, "prereg/audit/xyz", &keys), Err(CheckpointError::OtherLog { .. })));
        assert!(matches!(Checkpoint::open("garbage", "x", &keys), Err(CheckpointError::Malformed(_))));
    }
}
