//! PKI for the enrollment front: ASN.1 ([`asn1`]), keys ([`keys`]),
//! certificates ([`x509`]) and the issuing CA ([`ca`]). The protocols that use
//! them (CMP, SCEP) live in [`crate::enroll`].

pub mod asn1;
pub mod ca;
pub mod errors;
pub mod keys;
pub mod oid;
pub mod x509;

pub use ca::{Ca, Issue};
pub use errors::PkiError;
