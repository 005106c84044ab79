//! Errors of the signing module.

/// Why a signed request was refused or a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// Not three base64url parts, or bad JSON.
    #[error("malformed signed request: {0}")]
    Malformed(String),
    /// `alg: none`.
    #[error("unsigned requests (alg \"none\") are refused")]
    AlgNone,
    /// An HMAC algorithm.
    #[error("HMAC algorithms ({0}) are refused: officers sign with EdDSA or ES256")]
    Hmac(String),
    /// Another algorithm.
    #[error("unsupported signature algorithm {0:?}: officers sign with EdDSA or ES256")]
    UnsupportedAlgorithm(String),
    /// A header that would pull in keys from elsewhere, or a critical extension.
    #[error("header parameter {0:?} is not accepted")]
    ForbiddenHeader(String),
    /// No officer has this key.
    #[error("unknown signing key {0:?}: no officer has it")]
    UnknownKey(String),
    /// The officer's key was disabled (`prereg officer disable`).
    #[error("officer key {kid} was disabled at {at} (Unix seconds); its requests are refused")]
    KeyDisabled {
        /// The key id.
        kid: String,
        /// When, Unix seconds.
        at: u64,
    },
    /// The header's algorithm is not the officer key's.
    #[error("the request says alg {header:?} but the officer's key is {key}")]
    AlgorithmMismatch {
        /// From the header.
        header: String,
        /// The key's.
        key: String,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `aud` is not this instance.
    #[error("the request is for instance {found:?}, not this one ({expected:?})")]
    WrongAudience {
        /// Expected.
        expected: String,
        /// Found.
        found: String,
    },
    /// Past `exp`, or issued in the future.
    #[error("the request has expired or is not yet valid (iat {iat}, exp {exp}, now {now})")]
    Expired {
        /// Issued at.
        iat: u64,
        /// Expires.
        exp: u64,
        /// Now.
        now: u64,
    },
    /// `exp - iat` over five minutes.
    #[error("the request is valid for {0} s; at most 300 s are accepted")]
    LifetimeTooLong(u64),
    /// A key file could not be read or parsed.
    #[error("key {path}: {message}")]
    Key {
        /// The file (or a description).
        path: String,
        /// What is wrong.
        message: String,
    },
}
