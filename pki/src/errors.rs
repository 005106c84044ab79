//! Why a certificate, key or request could not be used.

use super::asn1::Asn1Error;

/// PKI failures: malformed input, unsupported algorithms, bad signatures, files.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Bytes that are not the expected ASN.1.
    #[error("{what}: {source}")]
    Malformed {
        /// What was being read.
        what: String,
        /// Where and why.
        source: Asn1Error,
    },
    /// Well-formed, but not something prereg supports.
    #[error("{0}")]
    Unsupported(String),
    /// A key of a supported algorithm whose size is not accepted.
    #[error("{0}")]
    KeySize(String),
    /// A signature that does not verify.
    #[error("{0}: the signature does not verify")]
    BadSignature(String),
    /// A key or certificate that is unusable for its job.
    #[error("{0}")]
    Invalid(String),
    /// A file of the CA.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Adds what was being read to an [`Asn1Error`].
pub trait Context<T> {
    /// Names the structure being read.
    fn reading(self, what: &str) -> Result<T, PkiError>;
}

impl<T> Context<T> for Result<T, Asn1Error> {
    fn reading(self, what: &str) -> Result<T, PkiError> {
        self.map_err(|source| PkiError::Malformed { what: what.into(), source })
    }
}
