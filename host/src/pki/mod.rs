//! PKI for the enrollment front: the ASN.1, keys and certificates of the
//! `prereg-pki` crate (`pki/`), and the issuing CA kept in the data folder
//! ([`ca`]). The protocols that use them (CMP, SCEP) live in [`crate::enroll`].

pub mod ca;

pub use ca::{Ca, Issue};
pub use prereg_pki::errors::PkiError;
pub use prereg_pki::{asn1, errors, hex, keys, oid, unhex, x509};
