//! Keys: verifying a requester's signature (proof of possession, a CSR, a SCEP
//! signer) and the CA's signing keys.
//!
//! Requesters may use EC P-256, RSA (2048 to 8192 bits) or Ed25519 keys. The CA
//! signs with EC P-256 (what `prereg ca init` makes) or RSA (an imported CA).
//! RSA is the `rsa` crate 0.10, which is free of RUSTSEC-2023-0071.

use p256::ecdsa::signature::{Signer, Verifier};
use sha2::Digest;

use super::asn1::{self, tag};
use super::errors::{Context, PkiError};
use super::oid;

/// DigestInfo prefixes of PKCS#1 v1.5 signatures (RFC 8017 §9.2, note 1).
const SHA1_PREFIX: &[u8] = &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];
const SHA256_PREFIX: &[u8] =
    &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
const SHA384_PREFIX: &[u8] =
    &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30];
const SHA512_PREFIX: &[u8] =
    &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40];

/// Smallest and largest RSA moduli accepted from a requester, in bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    /// SHA-1 (SCEP clients still sign with it).
    Sha1,
    /// SHA-256
    Sha256,
    /// SHA-384
    Sha384,
    /// SHA-512
    Sha512,
}

impl DigestAlg {
    /// From a digest algorithm OID.
    pub fn from_oid(dotted: &str) -> Option<Self> {
        match dotted {
            oid::SHA1 => Some(DigestAlg::Sha1),
            oid::SHA256 => Some(DigestAlg::Sha256),
            oid::SHA384 => Some(DigestAlg::Sha384),
            oid::SHA512 => Some(DigestAlg::Sha512),
            _ => None,
        }
    }

    /// Its OID.
    pub fn oid(self) -> &'static str {
        match self {
            DigestAlg::Sha1 => oid::SHA1,
            DigestAlg::Sha256 => oid::SHA256,
            DigestAlg::Sha384 => oid::SHA384,
            DigestAlg::Sha512 => oid::SHA512,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn pkcs1_prefix(self) -> &'static [u8] {
        match self {
            DigestAlg::Sha1 => SHA1_PREFIX,
            DigestAlg::Sha256 => SHA256_PREFIX,
            DigestAlg::Sha384 => SHA384_PREFIX,
            DigestAlg::Sha512 => SHA512_PREFIX,
        }
    }

    /// The digest's length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            DigestAlg::Sha1 => 20,
            DigestAlg::Sha256 => 32,
            DigestAlg::Sha384 => 48,
            DigestAlg::Sha512 => 64,
        }
    }

    fn pkcs1(self) -> rsa::Pkcs1v15Sign {
        rsa::Pkcs1v15Sign { hash_len: Some(self.output_len()), prefix: self.pkcs1_prefix().into() }
    }
}

/// A requester's public key, from its SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// EC P-256
    P256(p256::ecdsa::VerifyingKey),
    /// RSA
    Rsa(rsa::PublicKey),
    /// Ed25519
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<Self, PkiError> {
        let spki = asn1::parse(der).reading("SubjectPublicKeyInfo")?;
        let mut fields = spki
            .expect(tag::SEQUENCE, "SubjectPublicKeyInfo")
            .reading("public key")?
            .children()
            .reading("public key")?;
        let alg = fields.required("algorithm").reading("public key")?;
        let mut alg_fields = alg.children().reading("public key algorithm")?;
        let alg_oid = alg_fields.required("algorithm").and_then(|v| v.oid()).reading("public key algorithm")?;
        let bits = fields.required("subjectPublicKey").and_then(|v| v.bit_string_bytes()).reading("public key")?;
        match alg_oid.as_str() {
            oid::EC_PUBLIC_KEY => {
                let curve = alg_fields.required("curve").and_then(|v| v.oid()).reading("EC parameters")?;
                if curve != oid::P256 {
                    return Err(PkiError::Unsupported(format!("EC curve {curve} is not supported (P-256 is)")));
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&bits)
                    .map(PublicKey::P256)
                    .map_err(|_| PkiError::Invalid("the P-256 public key is not a point on the curve".into()))
            }
            oid::RSA_ENCRYPTION => {
                use rsa::pkcs8::DecodePublicKey;
                let key = rsa::PublicKey::from_public_key_der(der)
                    .map_err(|e| PkiError::Invalid(format!("RSA public key: {e}")))?;
                let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
                if !RSA_BITS.contains(&bits) {
                    return Err(PkiError::KeySize(format!(
                        "an RSA key of {bits} bits (from {} to {} are accepted)",
                        RSA_BITS.start(),
                        RSA_BITS.end()
                    )));
                }
                Ok(PublicKey::Rsa(key))
            }
            oid::ED25519 => {
                let bytes: [u8; 32] =
                    bits.as_ref().try_into().map_err(|_| PkiError::Invalid("an Ed25519 key is 32 bytes".into()))?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(PublicKey::Ed25519)
                    .map_err(|_| PkiError::Invalid("not an Ed25519 public key".into()))
            }
            other => Err(PkiError::Unsupported(format!("public key algorithm {other} is not supported"))),
        }
    }

    /// Verifies `signature` over `message` with the algorithm of the DER
    /// AlgorithmIdentifier `algorithm` (its OID); `what` names the signature
    /// in the error.
    pub fn verify(&self, algorithm: &str, message: &[u8], signature: &[u8], what: &str) -> Result<(), PkiError> {
        let bad = || PkiError::BadSignature(what.into());
        match (self, algorithm) {
            // ring's P-256 (assembly, constant time) verifies in about a
            // fifth of the time of the pure-Rust p256: this is on every
            // CMP, SCEP and EST request's proof of possession.
            (PublicKey::P256(key), oid::ECDSA_SHA256) => {
                let point = key.to_encoded_point(false);
                ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point.as_bytes())
                    .verify(message, signature)
                    .map_err(|_| bad())
            }
            (PublicKey::Rsa(key), alg) => {
                let digest = match alg {
                    oid::SHA1_RSA => DigestAlg::Sha1,
                    oid::SHA256_RSA => DigestAlg::Sha256,
                    oid::SHA384_RSA => DigestAlg::Sha384,
                    oid::SHA512_RSA => DigestAlg::Sha512,
                    other => {
                        return Err(PkiError::Unsupported(format!(
                            "{what}: signature algorithm {other} with an RSA key"
                        )));
                    }
                };
                key.verify(digest.pkcs1(), &digest.digest(message), signature).map_err(|_| bad())
            }
            (PublicKey::Ed25519(key), oid::ED25519) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad())?;
                key.verify(message, &sig).map_err(|_| bad())
            }
            (_, other) => {
                Err(PkiError::Unsupported(format!("{what}: signature algorithm {other} does not fit the key")))
            }
        }
    }

    /// Verifies an RSA PKCS#1 v1.5 signature over a digest already computed
    /// (CMS signed attributes).
    pub fn verify_digest(&self, alg: DigestAlg, digest: &[u8], signature: &[u8], what: &str) -> Result<(), PkiError> {
        match self {
            PublicKey::Rsa(key) => {
                key.verify(alg.pkcs1(), digest, signature).map_err(|_| PkiError::BadSignature(what.into()))
            }
            PublicKey::P256(key) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| PkiError::BadSignature(what.into()))?;
                key.verify_prehash(digest, &sig).map_err(|_| PkiError::BadSignature(what.into()))
            }
            PublicKey::Ed25519(_) => Err(PkiError::Unsupported(format!("{what}: Ed25519 over a digest"))),
        }
    }

    /// The RSA key, for SCEP's key transport to the requester.
    pub fn rsa(&self) -> Option<&rsa::PublicKey> {
        match self {
            PublicKey::Rsa(key) => Some(key),
            _ => None,
        }
    }
}

/// The CA's signing key.
pub enum SigningKey {
    /// EC P-256, signatures ecdsa-with-SHA256.
    P256(Box<P256Key>),
    /// RSA, signatures sha256WithRSAEncryption.
    Rsa(Box<rsa::PrivateKey>),
}

/// An EC P-256 private key: the p256 crate's, which reads and writes its
/// encodings, and ring's key pair made from it, which signs about four times
/// faster (each certificate issued is signed). Should ring ever refuse a key
/// that p256 took, the p256 key signs.
pub struct P256Key {
    key: p256::ecdsa::SigningKey,
    signer: Option<ring::signature::EcdsaKeyPair>,
}

impl P256Key {
    fn new(key: p256::ecdsa::SigningKey) -> Box<Self> {
        let public = key.verifying_key().to_encoded_point(false);
        // The scalar's copy handed to ring is wiped after use.
        let secret = zeroize::Zeroizing::new(key.to_bytes());
        let signer = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &secret[..],
            public.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .ok();
        Box::new(P256Key { key, signer })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let Some(signer) = &self.signer else {
            let signature: p256::ecdsa::Signature = self.key.sign(message);
            return Ok(signature.to_der().as_bytes().to_vec());
        };
        signer
            .sign(&ring::rand::SystemRandom::new(), message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| PkiError::Invalid("ECDSA P-256 signing failed".into()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::P256(_) => "SigningKey::P256(..)",
            SigningKey::Rsa(_) => "SigningKey::Rsa(..)",
        })
    }
}

impl SigningKey {
    /// A new EC P-256 key.
    pub fn generate_p256() -> Self {
        SigningKey::P256(P256Key::new(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng)))
    }

    /// A new RSA key (the `rsa` crate's default size, 3072 bits), exponent 65537.
    pub fn generate_rsa() -> Self {
        SigningKey::Rsa(Box::new(<rsa::PrivateKey as rsa::Generate>::generate()))
    }

    /// Reads a PEM private key: PKCS#8, SEC1 (`EC PRIVATE KEY`) or PKCS#1
    /// (`RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str, path: &str) -> Result<Self, PkiError> {
        let file = |message: String| PkiError::File { path: path.into(), message };
        if pem.contains("BEGIN EC PRIVATE KEY") {
            return p256::SecretKey::from_sec1_pem(pem)
                .map(|k| SigningKey::P256(P256Key::new(k.into())))
                .map_err(|e| file(format!("not an EC P-256 private key: {e}")));
        }
        if pem.contains("BEGIN RSA PRIVATE KEY") {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            return rsa::PrivateKey::from_pkcs1_pem(pem)
                .map(|k| SigningKey::Rsa(Box::new(k)))
                .map_err(|e| file(format!("not an RSA private key: {e}")));
        }
        if pem.contains("BEGIN PRIVATE KEY") {
            if let Ok(key) = <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
                return Ok(SigningKey::P256(P256Key::new(key)));
            }
            use rsa::pkcs8::DecodePrivateKey;
            return rsa::PrivateKey::from_pkcs8_pem(pem)
                .map(|k| SigningKey::Rsa(Box::new(k)))
                .map_err(|e| file(format!("a PKCS#8 key that is neither EC P-256 nor RSA: {e}")));
        }
        Err(file("no PEM private key (PKCS#8, EC or RSA) found".into()))
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, PkiError> {
        let text = match self {
            SigningKey::P256(k) => p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&k.key, p256::pkcs8::LineEnding::LF)
                .map(|s| s.to_string())
                .map_err(|e| e.to_string()),
            SigningKey::Rsa(k) => rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(k.as_ref(), rsa::pkcs8::LineEnding::LF)
                .map(|s| s.to_string())
                .map_err(|e| e.to_string()),
        };
        text.map_err(|e| PkiError::Invalid(format!("encoding a private key: {e}")))
    }

    /// DER SubjectPublicKeyInfo of the public half.
    pub fn spki_der(&self) -> Result<Vec<u8>, PkiError> {
        let der = match self {
            SigningKey::P256(k) => p256::pkcs8::EncodePublicKey::to_public_key_der(k.key.verifying_key())
                .map(|d| d.into_vec())
                .map_err(|e| e.to_string()),
            SigningKey::Rsa(k) => rsa::pkcs8::EncodePublicKey::to_public_key_der(k.as_public_key())
                .map(|d| d.into_vec())
                .map_err(|e| e.to_string()),
        };
        der.map_err(|e| PkiError::Invalid(format!("encoding a public key: {e}")))
    }

    /// The signature AlgorithmIdentifier this key signs with (DER).
    pub fn signature_algorithm(&self) -> Vec<u8> {
        match self {
            SigningKey::P256(_) => asn1::algorithm(oid::ECDSA_SHA256),
            SigningKey::Rsa(_) => asn1::algorithm_null(oid::SHA256_RSA),
        }
    }

    /// Signs `message` (SHA-256), returning the signature value as it goes into
    /// a BIT STRING or OCTET STRING (DER ECDSA-Sig-Value for EC).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.sign_with(DigestAlg::Sha256, message)
    }

    /// Signs `message` with the digest `digest`: any of them for RSA
    /// (PKCS#1 v1.5), SHA-256 only for P-256.
    pub fn sign_with(&self, digest: DigestAlg, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        match self {
            SigningKey::P256(k) if digest == DigestAlg::Sha256 => k.sign(message),
            SigningKey::P256(_) => Err(PkiError::Unsupported(format!("ECDSA P-256 with {digest:?}"))),
            SigningKey::Rsa(k) => {
                let hashed = digest.digest(message);
                k.sign(digest.pkcs1(), &hashed).map_err(|e| PkiError::Invalid(format!("RSA signing: {e}")))
            }
        }
    }

    /// The RSA key, for SCEP's key transport from the requester.
    pub fn rsa(&self) -> Option<&rsa::PrivateKey> {
        match self {
            SigningKey::Rsa(k) => Some(k),
            SigningKey::P256(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_both_kinds() {
        for key in [SigningKey::generate_p256(), SigningKey::generate_rsa()] {
            let public = PublicKey::from_spki(&key.spki_der().unwrap()).unwrap();
            let sig = key.sign(b"hello").unwrap();
            let alg_der = key.signature_algorithm();
            let alg = asn1::parse(&alg_der).unwrap();
            let alg_oid = alg.children().unwrap().required("oid").unwrap().oid().unwrap();
            public.verify(&alg_oid, b"hello", &sig, "test").unwrap();
            assert!(matches!(public.verify(&alg_oid, b"hellO", &sig, "test"), Err(PkiError::BadSignature(_))));
            let pem = key.to_pem().unwrap();
            let again = SigningKey::from_pem(&pem, "k.pem").unwrap();
            assert_eq!(again.spki_der().unwrap(), key.spki_der().unwrap());
        }
    }

    #[test]
    fn rsa_signs_with_every_sha2_digest_and_p256_only_with_sha256() {
        let rsa = SigningKey::generate_rsa();
        let public = PublicKey::from_spki(&rsa.spki_der().unwrap()).unwrap();
        for digest in [DigestAlg::Sha256, DigestAlg::Sha384, DigestAlg::Sha512] {
            let sig = rsa.sign_with(digest, b"hello").unwrap();
            public.verify_digest(digest, &digest.digest(b"hello"), &sig, "test").unwrap();
            // A signature made with one digest does not pass for another.
            let other = if digest == DigestAlg::Sha256 { DigestAlg::Sha384 } else { DigestAlg::Sha256 };
            assert!(public.verify_digest(other, &other.digest(b"hello"), &sig, "test").is_err());
        }
        let ec = SigningKey::generate_p256();
        assert!(matches!(ec.sign_with(DigestAlg::Sha384, b"hello"), Err(PkiError::Unsupported(_))));
    }

    /// ring signs and verifies P-256; the p256 crate still reads the keys
    /// and verifies over digests (CMS). Each must take the other's
    /// signatures, and neither a signature under another key, nor one
    /// changed by a bit, nor one that is not DER.
    #[test]
    fn p256_signatures_of_ring_and_of_the_p256_crate_agree() {
        use p256::ecdsa::signature::{Signer as _, Verifier as _};
        let SigningKey::P256(key) = SigningKey::generate_p256() else { unreachable!("a P-256 key") };
        assert!(key.signer.is_some(), "ring takes a key that p256 made");
        let public =
            PublicKey::from_spki(&SigningKey::P256(P256Key::new(key.key.clone())).spki_der().unwrap()).unwrap();
        // ring's signature, verified by p256, by prehash (CMS) and by ring.
        let by_ring = key.sign(b"tbsCertificate").unwrap();
        let parsed = p256::ecdsa::Signature::from_der(&by_ring).unwrap();
        key.key.verifying_key().verify(b"tbsCertificate", &parsed).unwrap();
        let digest = DigestAlg::Sha256.digest(b"tbsCertificate");
        public.verify_digest(DigestAlg::Sha256, &digest, &by_ring, "test").unwrap();
        public.verify(oid::ECDSA_SHA256, b"tbsCertificate", &by_ring, "test").unwrap();
        // p256's signature, verified by ring.
        let by_p256: p256::ecdsa::Signature = key.key.sign(b"tbsCertificate");
        public.verify(oid::ECDSA_SHA256, b"tbsCertificate", by_p256.to_der().as_bytes(), "test").unwrap();
        // The attacker's: another key's signature, a flipped bit, raw r||s.
        let SigningKey::P256(other) = SigningKey::generate_p256() else { unreachable!("a P-256 key") };
        let forged = other.sign(b"tbsCertificate").unwrap();
        let mut flipped = by_ring.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let raw = by_p256.to_bytes().to_vec();
        for bad in [&forged, &flipped, &raw, &Vec::new()] {
            assert!(matches!(
                public.verify(oid::ECDSA_SHA256, b"tbsCertificate", bad, "test"),
                Err(PkiError::BadSignature(_))
            ));
        }
    }
}
