//! The object identifiers prereg reads and writes, in dotted form.

/// commonName
pub const CN: &str = "2.5.4.3";
/// serialNumber (the device serial, SPEC "serial")
pub const SERIAL_NUMBER: &str = "2.5.4.5";
/// subjectAltName
pub const SUBJECT_ALT_NAME: &str = "2.5.29.17";
/// basicConstraints
pub const BASIC_CONSTRAINTS: &str = "2.5.29.19";
/// keyUsage
pub const KEY_USAGE: &str = "2.5.29.15";
/// extKeyUsage
pub const EXT_KEY_USAGE: &str = "2.5.29.37";
/// subjectKeyIdentifier
pub const SUBJECT_KEY_ID: &str = "2.5.29.14";
/// authorityKeyIdentifier
pub const AUTHORITY_KEY_ID: &str = "2.5.29.35";
/// id-kp-serverAuth
pub const KP_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// id-kp-clientAuth
pub const KP_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// id-ecPublicKey
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// prime256v1 / secp256r1
pub const P256: &str = "1.2.840.10045.3.1.7";
/// rsaEncryption
pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// Ed25519
pub const ED25519: &str = "1.3.101.112";
/// ecdsa-with-SHA256
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// sha1WithRSAEncryption
pub const SHA1_RSA: &str = "1.2.840.113549.1.1.5";
/// sha256WithRSAEncryption
pub const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
/// sha384WithRSAEncryption
pub const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
/// sha512WithRSAEncryption
pub const SHA512_RSA: &str = "1.2.840.113549.1.1.13";

/// SHA-1
pub const SHA1: &str = "1.3.14.3.2.26";
/// SHA-256
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// SHA-384
pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
/// SHA-512
pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";
/// hmacWithSHA1 (RFC 8018), also written hmac-sha1 (1.3.6.1.5.5.8.1.2)
pub const HMAC_SHA1: &str = "1.3.6.1.5.5.8.1.2";
/// hmacWithSHA1 (PKCS#5 arc)
pub const HMAC_SHA1_PKCS5: &str = "1.2.840.113549.2.7";
/// hmacWithSHA256
pub const HMAC_SHA256: &str = "1.2.840.113549.2.9";
/// hmacWithSHA384
pub const HMAC_SHA384: &str = "1.2.840.113549.2.10";
/// hmacWithSHA512
pub const HMAC_SHA512: &str = "1.2.840.113549.2.11";

/// PKCS#9 extensionRequest
pub const EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
/// PKCS#9 challengePassword
pub const CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";
/// cRLDistributionPoints (RFC 5280 §4.2.1.13)
pub const CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";
/// cRLNumber (RFC 5280 §5.2.3)
pub const CRL_NUMBER: &str = "2.5.29.20";
/// reasonCode, a CRL entry extension (RFC 5280 §5.3.1)
pub const CRL_REASON: &str = "2.5.29.21";
