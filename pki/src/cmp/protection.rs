//! CMP MAC-based protection (RFC 9481 §6.1): password-based MAC (RFC 4211
//! §4.4, "PBM") and PBMAC1 (RFC 8018), keyed by the registration's password.

use hmac::{Hmac, Mac};

use super::message::FailInfo;
use crate::asn1::{self, Value, tag};
use crate::keys::DigestAlg as Hash;
use crate::oid;

/// id-PasswordBasedMac
pub const PBM: &str = "1.2.840.113533.7.66.13";
/// id-PBMAC1
pub const PBMAC1: &str = "1.2.840.113549.1.5.14";
/// id-PBKDF2
const PBKDF2: &str = "1.2.840.113549.1.5.12";

/// Fewest iterations accepted from a client: fewer is too weak.
pub const MIN_ITERATIONS: u64 = 100;

/// Most iterations accepted from a client unless the server is configured
/// otherwise. Current guidance for PBKDF2 uses counts above 100,000
/// (262,144 is common, OWASP names 600,000 for PBKDF2-HMAC-SHA256); more is
/// a way to make the server burn CPU before it knows who asks, which the
/// per-client rate limits bound.
pub const DEFAULT_MAX_ITERATIONS: u64 = 600_000;

/// id-PBES2, which some CMP libraries put where PBMAC1's key derivation
/// function (PBKDF2) belongs; accepted as PBKDF2.
const PBES2: &str = "1.2.840.113549.1.5.13";

/// Longest salt accepted, in bytes.
const MAX_SALT: usize = 128;

/// Why a protection algorithm cannot be used, and the failInfo that says so:
/// `badAlg` for an algorithm or parameters not accepted, `badDataFormat` for
/// parameters that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtectionError {
    /// The failInfo bit.
    pub fail: FailInfo,
    /// What is wrong.
    pub message: String,
}

impl ProtectionError {
    fn unsupported(message: impl Into<String>) -> Self {
        ProtectionError { fail: FailInfo::BadAlg, message: message.into() }
    }

    fn malformed(message: impl Into<String>) -> Self {
        ProtectionError { fail: FailInfo::BadDataFormat, message: message.into() }
    }
}

/// The HMAC and PBKDF2 of a hash (the one-way function itself is
/// [`crate::keys::DigestAlg::digest`]).
trait Keyed {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8>;
    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]);
    fn hmac_oid(self) -> &'static str;
}

/// The hash of an HMAC algorithm OID.
fn hmac_from_oid(dotted: &str) -> Option<Hash> {
    match dotted {
        oid::HMAC_SHA1 | oid::HMAC_SHA1_PKCS5 => Some(Hash::Sha1),
        oid::HMAC_SHA256 => Some(Hash::Sha256),
        oid::HMAC_SHA384 => Some(Hash::Sha384),
        oid::HMAC_SHA512 => Some(Hash::Sha512),
        _ => None,
    }
}

impl Keyed for Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Hash::Sha1 => run::<Hmac<sha1::Sha1>>(key, data),
            Hash::Sha256 => run::<Hmac<sha2::Sha256>>(key, data),
            Hash::Sha384 => run::<Hmac<sha2::Sha384>>(key, data),
            Hash::Sha512 => run::<Hmac<sha2::Sha512>>(key, data),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, out),
            Hash::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, out),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out),
        }
    }

    fn hmac_oid(self) -> &'static str {
        match self {
            Hash::Sha1 => oid::HMAC_SHA1_PKCS5,
            Hash::Sha256 => oid::HMAC_SHA256,
            Hash::Sha384 => oid::HMAC_SHA384,
            Hash::Sha512 => oid::HMAC_SHA512,
        }
    }
}

/// A request's protection: a MAC keyed by a shared secret, or a signature
/// by the key of a certificate in extraCerts (RFC 9483 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// PBM or PBMAC1.
    Mac(MacAlgorithm),
    /// A signature with this algorithm (dotted OID).
    Signature(String),
}

/// The signature algorithms accepted for signature-based protection (those
/// prereg verifies: ECDSA P-256 with SHA-256, RSA PKCS#1 v1.5 with SHA-2,
/// Ed25519).
pub const SIGNATURES: [&str; 5] = [oid::ECDSA_SHA256, oid::SHA256_RSA, oid::SHA384_RSA, oid::SHA512_RSA, oid::ED25519];

impl Protection {
    /// Reads a protectionAlg: a signature algorithm of [`SIGNATURES`], or
    /// what [`MacAlgorithm::read`] accepts.
    pub fn read(algorithm: &Value<'_>, max_iterations: u64) -> Result<Self, ProtectionError> {
        let id = algorithm
            .children()
            .and_then(|mut c| c.required("algorithm")?.oid())
            .map_err(|e| ProtectionError::malformed(format!("protectionAlg: {e}")))?;
        if SIGNATURES.contains(&id.as_str()) {
            return Ok(Protection::Signature(id));
        }
        MacAlgorithm::read(algorithm, max_iterations).map(Protection::Mac)
    }
}

/// A MAC protection as the client chose it; the response uses the same
/// algorithm and parameters with a fresh salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// RFC 4211 password-based MAC.
    Pbm {
        /// Salt.
        salt: Vec<u8>,
        /// One-way function.
        owf: HashName,
        /// Iterations of the OWF.
        iterations: u64,
        /// The MAC's hash (HMAC).
        mac: HashName,
    },
    /// PBMAC1: PBKDF2 then HMAC.
    Pbmac1 {
        /// PBKDF2 salt.
        salt: Vec<u8>,
        /// PBKDF2 iterations.
        iterations: u64,
        /// Derived key length.
        key_length: u64,
        /// PBKDF2 PRF hash.
        prf: HashName,
        /// The MAC's hash (HMAC).
        mac: HashName,
    },
}

/// A hash named in a protection algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashName(Hash);

impl MacAlgorithm {
    /// PBMAC1 with PBKDF2-HMAC-SHA256 and HMAC-SHA256, a fresh 16-byte salt
    /// (what a client offering PBMAC1 sends; RFC 9481 §6.1.1).
    pub fn pbmac1_sha256(iterations: u64) -> Self {
        MacAlgorithm::Pbmac1 {
            salt: vec![0; 16],
            iterations,
            key_length: 32,
            prf: HashName(Hash::Sha256),
            mac: HashName(Hash::Sha256),
        }
        .fresh()
    }

    /// Password-based MAC with SHA-256 and HMAC-SHA256, a fresh 16-byte salt.
    pub fn pbm_sha256(iterations: u64) -> Self {
        MacAlgorithm::Pbm { salt: vec![0; 16], owf: HashName(Hash::Sha256), iterations, mac: HashName(Hash::Sha256) }
            .fresh()
    }

    /// Reads a protectionAlg AlgorithmIdentifier, accepting iteration
    /// counts from [`MIN_ITERATIONS`] to `max_iterations`. Signature
    /// algorithms and anything else are refused.
    pub fn read(algorithm: &Value<'_>, max_iterations: u64) -> Result<Self, ProtectionError> {
        let asn = |e: asn1::Asn1Error| ProtectionError::malformed(format!("protection parameters: {e}"));
        let mut parts = algorithm.children().map_err(asn)?;
        let id = parts.required("algorithm").and_then(|v| v.oid()).map_err(asn)?;
        let params = parts.next_value().map_err(asn)?;
        let algorithm_oid = |v: Value<'_>| -> Result<String, ProtectionError> {
            v.children().and_then(|mut c| c.required("algorithm")?.oid()).map_err(asn)
        };
        let checked_iterations = |n: u64| {
            if (MIN_ITERATIONS..=max_iterations).contains(&n) {
                Ok(n)
            } else {
                Err(ProtectionError::unsupported(format!(
                    "iteration count {n} is outside {MIN_ITERATIONS} to {max_iterations}"
                )))
            }
        };
        let checked_salt = |salt: Vec<u8>| {
            if salt.is_empty() || salt.len() > MAX_SALT {
                Err(ProtectionError::unsupported(format!("a salt of {} bytes (1 to {MAX_SALT} accepted)", salt.len())))
            } else {
                Ok(salt)
            }
        };
        match id.as_str() {
            PBM => {
                let params = params.ok_or_else(|| ProtectionError::malformed("PBM without parameters"))?;
                let mut p = params.children().map_err(asn)?;
                let salt = checked_salt(p.required("salt").and_then(|v| v.octet_string()).map_err(asn)?.into_owned())?;
                let owf_oid = algorithm_oid(p.required("owf").map_err(asn)?)?;
                let owf = Hash::from_oid(&owf_oid).ok_or_else(|| {
                    ProtectionError::unsupported(format!("PBM one-way function {owf_oid} is not supported"))
                })?;
                let iterations =
                    checked_iterations(p.required("iterationCount").and_then(|v| v.small_uint()).map_err(asn)?)?;
                let mac_oid = algorithm_oid(p.required("mac").map_err(asn)?)?;
                let mac = hmac_from_oid(&mac_oid).ok_or_else(|| {
                    ProtectionError::unsupported(format!("PBM MAC algorithm {mac_oid} is not supported"))
                })?;
                Ok(MacAlgorithm::Pbm { salt, owf: HashName(owf), iterations, mac: HashName(mac) })
            }
            PBMAC1 => {
                let params = params.ok_or_else(|| ProtectionError::malformed("PBMAC1 without parameters"))?;
                let mut p = params.children().map_err(asn)?;
                let kdf = p.required("keyDerivationFunc").map_err(asn)?;
                let mut kdf_parts = kdf.children().map_err(asn)?;
                let kdf_oid = kdf_parts.required("algorithm").and_then(|v| v.oid()).map_err(asn)?;
                match kdf_oid.as_str() {
                    PBKDF2 => {}
                    PBES2 => tracing::info!(
                        "CMP: PBMAC1 names PBES2 ({PBES2}) as its key derivation function; read as PBKDF2 ({PBKDF2}), \
                         as some CMP libraries write it"
                    ),
                    other => {
                        return Err(ProtectionError::unsupported(format!(
                            "PBMAC1 key derivation {other} is not PBKDF2"
                        )));
                    }
                }
                let mut k = kdf_parts.required("PBKDF2-params").and_then(|v| v.children()).map_err(asn)?;
                let salt = checked_salt(k.required("salt").and_then(|v| v.octet_string()).map_err(asn)?.into_owned())?;
                let iterations =
                    checked_iterations(k.required("iterationCount").and_then(|v| v.small_uint()).map_err(asn)?)?;
                let key_length = match k.optional(tag::INTEGER).map_err(asn)? {
                    Some(v) => v.small_uint().map_err(asn)?,
                    None => 32,
                };
                if !(16..=64).contains(&key_length) {
                    return Err(ProtectionError::unsupported(format!(
                        "PBKDF2 key length {key_length} (16 to 64 accepted)"
                    )));
                }
                let prf = match k.optional(tag::SEQUENCE).map_err(asn)? {
                    Some(v) => {
                        let o = algorithm_oid(v)?;
                        hmac_from_oid(&o)
                            .ok_or_else(|| ProtectionError::unsupported(format!("PBKDF2 PRF {o} is not supported")))?
                    }
                    None => Hash::Sha1,
                };
                let mac_oid = algorithm_oid(p.required("messageAuthScheme").map_err(asn)?)?;
                let mac = hmac_from_oid(&mac_oid)
                    .ok_or_else(|| ProtectionError::unsupported(format!("PBMAC1 MAC {mac_oid} is not supported")))?;
                Ok(MacAlgorithm::Pbmac1 { salt, iterations, key_length, prf: HashName(prf), mac: HashName(mac) })
            }
            other => Err(ProtectionError::unsupported(format!(
                "protection algorithm {other} is not accepted: protect requests with the registration's password \
                 (PBM or PBMAC1, with HMAC-SHA1 or HMAC-SHA2), or sign them with the device's certificate from \
                 this CA (ECDSA P-256 with SHA-256, RSA with SHA-2, Ed25519)"
            ))),
        }
    }

    /// The same algorithm with a fresh salt, for the response.
    pub fn fresh(&self) -> Self {
        let mut next = self.clone();
        let salt = match &mut next {
            MacAlgorithm::Pbm { salt, .. } | MacAlgorithm::Pbmac1 { salt, .. } => salt,
        };
        use rand_core::RngCore;
        let mut fresh = vec![0u8; salt.len().max(16)];
        rand_core::OsRng.fill_bytes(&mut fresh);
        *salt = fresh;
        next
    }

    /// The AlgorithmIdentifier (DER).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            MacAlgorithm::Pbm { salt, owf, iterations, mac } => {
                let owf_oid = owf.0.oid();
                let mac_oid = if mac.0 == Hash::Sha1 { oid::HMAC_SHA1 } else { mac.0.hmac_oid() };
                asn1::seq(&[
                    &asn1::oid(PBM),
                    &asn1::seq(&[
                        &asn1::octet_string(salt),
                        &asn1::algorithm(owf_oid),
                        &asn1::small(*iterations),
                        &asn1::algorithm(mac_oid),
                    ]),
                ])
            }
            MacAlgorithm::Pbmac1 { salt, iterations, key_length, prf, mac } => asn1::seq(&[
                &asn1::oid(PBMAC1),
                &asn1::seq(&[
                    &asn1::seq(&[
                        &asn1::oid(PBKDF2),
                        &asn1::seq(&[
                            &asn1::octet_string(salt),
                            &asn1::small(*iterations),
                            &asn1::small(*key_length),
                            &asn1::algorithm_null(prf.0.hmac_oid()),
                        ]),
                    ]),
                    &asn1::algorithm_null(mac.0.hmac_oid()),
                ]),
            ]),
        }
    }

    /// The MAC of `protected_part` (the DER of `SEQUENCE { header, body }`)
    /// under `secret`.
    pub fn mac(&self, secret: &[u8], protected_part: &[u8]) -> Vec<u8> {
        match self {
            MacAlgorithm::Pbm { salt, owf, iterations, mac } => {
                let mut key = owf.0.digest(&[secret, salt.as_slice()].concat());
                for _ in 1..*iterations {
                    key = owf.0.digest(&key);
                }
                mac.0.hmac(&key, protected_part)
            }
            MacAlgorithm::Pbmac1 { salt, iterations, key_length, prf, mac } => {
                let mut key = zeroize::Zeroizing::new(vec![0u8; usize::try_from(*key_length).unwrap_or(32)]);
                prf.0.pbkdf2(secret, salt, u32::try_from(*iterations).unwrap_or(u32::MAX), &mut key);
                mac.0.hmac(&key, protected_part)
            }
        }
    }

    /// Whether `tag` is the MAC of `protected_part` under `secret` (constant time).
    pub fn verify(&self, secret: &[u8], protected_part: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(secret, protected_part);
        !expected.is_empty()
            && expected.len() == tag.len()
            && expected.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(der: &[u8]) -> Result<MacAlgorithm, ProtectionError> {
        MacAlgorithm::read(&asn1::parse(der).unwrap(), DEFAULT_MAX_ITERATIONS)
    }

    #[test]
    fn both_algorithms_round_trip_and_verify() {
        for alg in [
            MacAlgorithm::Pbm {
                salt: vec![1; 16],
                owf: HashName(Hash::Sha256),
                iterations: 500,
                mac: HashName(Hash::Sha1),
            },
            MacAlgorithm::Pbmac1 {
                salt: vec![2; 16],
                iterations: 1000,
                key_length: 32,
                prf: HashName(Hash::Sha256),
                mac: HashName(Hash::Sha256),
            },
        ] {
            let again = read(&alg.encode()).unwrap();
            assert_eq!(again, alg);
            let tag = alg.mac(b"s3cret", b"message");
            assert!(alg.verify(b"s3cret", b"message", &tag));
            assert!(!alg.verify(b"s3cre7", b"message", &tag));
            assert!(!alg.verify(b"s3cret", b"messagE", &tag));
            let fresh = alg.fresh();
            assert_ne!(fresh, alg);
            assert_ne!(fresh.mac(b"s3cret", b"message"), tag);
        }
    }

    #[test]
    fn iteration_counts_out_of_bounds_are_refused() {
        for n in [99, DEFAULT_MAX_ITERATIONS + 1] {
            let alg = MacAlgorithm::Pbm {
                salt: vec![1; 16],
                owf: HashName(Hash::Sha256),
                iterations: n,
                mac: HashName(Hash::Sha256),
            };
            let e = read(&alg.encode()).unwrap_err();
            assert!(e.message.contains(&format!("iteration count {n}")), "{e}");
            assert_eq!(e.fail, FailInfo::BadAlg);
        }
        let signature = asn1::algorithm(oid::ECDSA_SHA256);
        let e = read(&signature).unwrap_err();
        assert!(e.message.contains("registration's password"));
        assert_eq!(e.fail, FailInfo::BadAlg);
    }
}
