//! Sealed registration passwords.
//!
//! CMP protects its messages with a MAC keyed by the shared secret, so the
//! host must have the password itself, not only its hash. SPEC: keep it
//! encrypted under a key that does not live in the database. Each instance has
//! an X25519 key pair: the private half is `sealing.key` in the data folder
//! (mode 0600), the public half is published (`GET /v1/instance`). The officer's
//! client seals a password to the public key (ECIES: an ephemeral X25519 key,
//! HKDF-SHA256, ChaCha20-Poly1305), signs the sealed form into its request, and
//! the store keeps it beside the hash. So neither the database, the audit log
//! nor the signed request ever holds the password, and a stolen database
//! without the data folder's key reveals nothing.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::data_dir::{DataDir, write_new_file};

/// Format tag of a sealed secret.
const PREFIX: &str = "x25519-v1.";
/// HKDF info and AEAD associated data.
const CONTEXT: &[u8] = b"prereg sealed registration password v1";

/// Why a sealed secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not a sealed secret at all.
    #[error("not a sealed password ({0})")]
    Malformed(String),
    /// Sealed to another key, or altered.
    #[error("the sealed password does not open with this instance's key (sealed for another instance, or altered)")]
    WrongKey,
    /// The key file.
    #[error("{path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// The instance's sealing key pair.
pub struct SealingKey {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey({})", self.public_text())
    }
}

impl SealingKey {
    /// The data folder's key, created on first use.
    pub fn load_or_create(data: &DataDir) -> Result<Self, SealError> {
        let path = data.sealing_key();
        let shown = path.display().to_string();
        let key_error = |message: String| SealError::KeyFile { path: shown.clone(), message };
        if !path.exists() {
            let secret = StaticSecret::random_from_rng(rand_core::OsRng);
            let text = Zeroizing::new(B64.encode(secret.to_bytes()));
            match write_new_file(&path, text.as_bytes(), true) {
                Ok(()) => {}
                // Another process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(key_error(e.to_string())),
            }
        }
        Self::read(&path).map_err(key_error)
    }

    fn read(path: &Path) -> Result<Self, String> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| e.to_string())?);
        let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|e| format!("not base64url: {e}"))?);
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| "not a 32-byte X25519 key".to_string())?;
        let secret = StaticSecret::from(array);
        let public = PublicKey::from(&secret);
        Ok(SealingKey { secret, public })
    }

    /// The public key as it is published (base64url).
    pub fn public_text(&self) -> String {
        B64.encode(self.public.as_bytes())
    }

    /// A 32-byte key for another purpose of the instance, derived from this
    /// one (HKDF-SHA256 over the private key, `label` as info): every node
    /// holding the data folder's `sealing.key` derives the same keys, and the
    /// database alone reveals none (the audit chain's MAC key and the
    /// checkpoint signing key, [`crate::audit::AuditKeys`]).
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"prereg instance key derivation"), self.secret.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hkdf.expand(label, key.as_mut());
        key
    }

    /// Opens a sealed password.
    pub fn open(&self, sealed: &str) -> Result<Zeroizing<String>, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or_else(|| SealError::Malformed("unknown format".into()))?;
        let bytes = B64.decode(body).map_err(|e| SealError::Malformed(format!("not base64url: {e}")))?;
        if bytes.len() < 32 + 16 {
            return Err(SealError::Malformed("too short".into()));
        }
        let (ephemeral, ciphertext) = bytes.split_at(32);
        let ephemeral: [u8; 32] = ephemeral.try_into().map_err(|_| SealError::Malformed("too short".into()))?;
        let ephemeral = PublicKey::from(ephemeral);
        let cipher = cipher(&self.secret.diffie_hellman(&ephemeral), &ephemeral, &self.public);
        let plain = cipher
            .decrypt(&Nonce::from([0; 12]), Payload { msg: ciphertext, aad: CONTEXT })
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain).map(Zeroizing::new).map_err(|_| SealError::Malformed("not UTF-8".into()))
    }
}

/// HKDF info of the key an import file's digest is keyed with.
const DIGEST_CONTEXT: &[u8] = b"prereg import digest v1";

/// The key an officer's client keys an import file's digest with, agreed
/// with the instance key `public` (base64url) by an ephemeral X25519 key:
/// (the ephemeral public key, base64url, which travels in the signed request;
/// the 32-byte key, which does not). Only this instance can derive the key
/// again ([`SealingKey::digest_key`]), so the signed digest cannot be
/// recomputed from a guess of the file (WebCrypto does the same in the RA
/// page: X25519, HKDF-SHA256, HMAC-SHA256).
pub fn client_digest_key(public: &str) -> Result<(String, Zeroizing<[u8; 32]>), SealError> {
    let recipient = public_key(public)?;
    let ephemeral = x25519_dalek::EphemeralSecret::random_from_rng(rand_core::OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(&recipient);
    Ok((B64.encode(ephemeral_public.as_bytes()), digest_kdf(&shared, &ephemeral_public, &recipient)))
}

impl SealingKey {
    /// The digest key a client agreed with this instance under the
    /// ephemeral key `ephemeral` ([`client_digest_key`]).
    pub fn digest_key(&self, ephemeral: &str) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let ephemeral = public_key(ephemeral)?;
        Ok(digest_kdf(&self.secret.diffie_hellman(&ephemeral), &ephemeral, &self.public))
    }
}

fn public_key(text: &str) -> Result<PublicKey, SealError> {
    let bytes = B64.decode(text.trim()).map_err(|e| SealError::Malformed(format!("an X25519 key: {e}")))?;
    let array: [u8; 32] =
        bytes.as_slice().try_into().map_err(|_| SealError::Malformed("an X25519 key is 32 bytes".into()))?;
    Ok(PublicKey::from(array))
}

fn digest_kdf(
    shared: &x25519_dalek::SharedSecret,
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> Zeroizing<[u8; 32]> {
    let mut salt = ephemeral.as_bytes().to_vec();
    salt.extend_from_slice(recipient.as_bytes());
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hkdf.expand(DIGEST_CONTEXT, key.as_mut());
    key
}

/// Seals `password` to the instance public key `public` (base64url), as an
/// officer's client does before signing a registration request.
pub fn seal(public: &str, password: &str) -> Result<String, SealError> {
    let recipient = public_key(public)?;
    let ephemeral = x25519_dalek::EphemeralSecret::random_from_rng(rand_core::OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(&recipient);
    let cipher = cipher(&shared, &ephemeral_public, &recipient);
    // A fresh key per message: the all-zero nonce is never reused under a key.
    let ciphertext = cipher
        .encrypt(&Nonce::from([0; 12]), Payload { msg: password.as_bytes(), aad: CONTEXT })
        .map_err(|_| SealError::Malformed("encryption failed".into()))?;
    let mut out = ephemeral_public.as_bytes().to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(format!("{PREFIX}{}", B64.encode(out)))
}

fn cipher(shared: &x25519_dalek::SharedSecret, ephemeral: &PublicKey, recipient: &PublicKey) -> ChaCha20Poly1305 {
    let mut salt = ephemeral.as_bytes().to_vec();
    salt.extend_from_slice(recipient.as_bytes());
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hkdf.expand(CONTEXT, key.as_mut());
    ChaCha20Poly1305::new(&Key::from(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse_another_key_or_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let key = SealingKey::load_or_create(&DataDir::new(dir.path())).unwrap();
        let again = SealingKey::load_or_create(&DataDir::new(dir.path())).unwrap();
        assert_eq!(key.public_text(), again.public_text());
        let sealed = seal(&key.public_text(), "s3cret").unwrap();
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.open(&sealed).unwrap().as_str(), "s3cret");
        assert_ne!(sealed, seal(&key.public_text(), "s3cret").unwrap());

        let other_dir = tempfile::tempdir().unwrap();
        let other = SealingKey::load_or_create(&DataDir::new(other_dir.path())).unwrap();
        assert_eq!(other.open(&sealed), Err(SealError::WrongKey));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(key.open(&String::from_utf8(altered).unwrap()).is_err());
        assert!(matches!(key.open("plain"), Err(SealError::Malformed(_))));
    }
}
