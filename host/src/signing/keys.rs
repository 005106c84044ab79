//! Officer keys: Ed25519 (`EdDSA`) and P-256 (`ES256`), as PKCS#8 / SPKI PEM.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::ecdsa::signature::{Signer, Verifier};
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::SigningError;

/// A JWS signature algorithm officers may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519.
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl Algorithm {
    /// The JWS `alg` name.
    pub fn jws_name(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Es256 => "ES256",
        }
    }

    /// Parses a JWS `alg` name.
    pub fn from_jws_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Algorithm::EdDsa),
            "ES256" => Some(Algorithm::Es256),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jws_name())
    }
}

/// An officer's private key.
pub enum SigningKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// P-256.
    Es256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, {})", self.algorithm(), self.public_key().kid())
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::EdDsa => SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
            Algorithm::Es256 => SigningKey::Es256(p256::ecdsa::SigningKey::random(&mut OsRng)),
        }
    }

    /// Parses a PKCS#8 PEM private key (Ed25519 or P-256).
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self, SigningError> {
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey::Ed25519(key));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map(SigningKey::Es256).map_err(|_| SigningError::Key {
            path: origin.into(),
            message: "not a PKCS#8 PEM Ed25519 or P-256 private key".into(),
        })
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, SigningError> {
        let pem = match self {
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(Default::default()),
            SigningKey::Es256(k) => k.to_pkcs8_pem(Default::default()),
        };
        pem.map(|p| Zeroizing::new(p.to_string()))
            .map_err(|e| SigningError::Key { path: "(new key)".into(), message: e.to_string() })
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Ed25519(_) => Algorithm::EdDsa,
            SigningKey::Es256(_) => Algorithm::Es256,
        }
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::Es256(k) => PublicKey::Es256(*k.verifying_key()),
        }
    }

    /// Signs `message` (JWS signature bytes: 64 for both algorithms).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SigningKey::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
        }
    }
}

/// An officer's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// P-256.
    Es256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Parses an SPKI PEM public key (Ed25519 or P-256).
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self, SigningError> {
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(key));
        }
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem).map(PublicKey::Es256).map_err(|_| SigningError::Key {
            path: origin.into(),
            message: "not an SPKI PEM Ed25519 or P-256 public key".into(),
        })
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> Result<String, SigningError> {
        match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(Default::default()),
            PublicKey::Es256(k) => k.to_public_key_pem(Default::default()),
        }
        .map_err(|e| SigningError::Key { path: "(public key)".into(), message: e.to_string() })
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::EdDsa,
            PublicKey::Es256(_) => Algorithm::Es256,
        }
    }

    /// The key id: the RFC 7638 JWK SHA-256 thumbprint, base64url.
    pub fn kid(&self) -> String {
        let jwk = match self {
            PublicKey::Ed25519(k) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(k.as_bytes()))
            }
            PublicKey::Es256(k) => {
                let point = k.to_encoded_point(false);
                let (x, y) = (
                    point.x().map(|x| x.to_vec()).unwrap_or_default(),
                    point.y().map(|y| y.to_vec()).unwrap_or_default(),
                );
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(x),
                    URL_SAFE_NO_PAD.encode(y)
                )
            }
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
    }

    /// Whether `signature` signs `message` (strict Ed25519; ECDSA P-256).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(signature).is_ok_and(|sig| k.verify_strict(message, &sig).is_ok())
            }
            PublicKey::Es256(k) => {
                p256::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| k.verify(message, &sig).is_ok())
            }
        }
    }
}
