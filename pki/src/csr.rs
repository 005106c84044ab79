//! PKCS#10 certification requests (CMP `p10cr`, SCEP `PKCSReq`): read, and
//! verify their self-signature.

use zeroize::Zeroizing;

use crate::DeviceFacts;
use crate::asn1::{self, tag};
use crate::errors::{Context, PkiError};
use crate::keys::PublicKey;
use crate::{oid, x509};

/// What a CSR asks for.
#[derive(Debug, Clone)]
pub struct Csr {
    /// The device facts (name, IP, serial) from its subject and SAN.
    pub facts: DeviceFacts,
    /// Its SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    /// Its challengePassword attribute (SCEP), if any.
    pub challenge_password: Option<Zeroizing<String>>,
}

/// Reads a CSR (BER accepted) and checks that its key signed it.
pub fn read(der: &[u8]) -> Result<Csr, PkiError> {
    let value = asn1::parse(der).reading("certification request")?;
    read_value(&value)
}

/// [`read`] for a CSR inside a larger structure.
pub fn read_value(value: &asn1::Value<'_>) -> Result<Csr, PkiError> {
    let unverified = parse_value(value)?;
    unverified.verify()?;
    Ok(unverified.csr)
}

/// A CSR read, its self-signature not yet checked: what CMP reads of a
/// `p10cr` before the message's protection is verified, so that a bad
/// signature is answered (`badPOP`) in a protected response.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// What it asks for.
    pub csr: Csr,
    info: Vec<u8>,
    algorithm: String,
    signature: Vec<u8>,
}

impl Unverified {
    /// Checks that the CSR's key signed it, with an algorithm prereg accepts.
    pub fn verify(&self) -> Result<(), PkiError> {
        let key = PublicKey::from_spki(&self.csr.spki)?;
        key.verify(&self.algorithm, &self.info, &self.signature, "certification request")
    }
}

/// Reads a CSR's contents without checking its signature (see [`Unverified`]).
/// Only version 0 (v1) exists; any other is refused.
pub fn parse_value(value: &asn1::Value<'_>) -> Result<Unverified, PkiError> {
    let what = "certification request";
    let mut parts = value.expect(tag::SEQUENCE, what).reading(what)?.children().reading(what)?;
    let info = parts.required("certificationRequestInfo").reading(what)?;
    let algorithm =
        parts.required("signatureAlgorithm").and_then(|a| a.children()?.required("algorithm")?.oid()).reading(what)?;
    let signature = parts.required("signature").and_then(|s| s.bit_string_bytes()).reading(what)?;

    let mut fields = info.children().reading(what)?;
    let version_field = fields.required("version").reading(what)?;
    let version = version_field.small_uint().reading(what)?;
    if version != 0 {
        let message = format!("version {version} (only 0, v1, is defined)");
        return Err(PkiError::Malformed {
            what: what.into(),
            source: asn1::Asn1Error { offset: version_field.offset, message },
        });
    }
    let subject = fields.required("subject").reading(what)?;
    let spki = fields.required("subjectPKInfo").reading(what)?;
    let name = x509::read_name(&subject)?;
    let mut alt_names = None;
    let mut challenge_password = None;
    if let Some(attributes) = fields.optional(tag::explicit(0)).reading(what)? {
        let mut list = attributes.children().reading(what)?;
        while let Some(attribute) = list.next_value().reading(what)? {
            let mut a = attribute.children().reading("CSR attribute")?;
            let kind = a.required("type").and_then(|v| v.oid()).reading("CSR attribute")?;
            let values = a.required("values").reading("CSR attribute")?;
            let Some(first) = values.children().reading("CSR attribute")?.next_value().reading("CSR attribute")? else {
                continue;
            };
            match kind.as_str() {
                oid::EXTENSION_REQUEST => alt_names = x509::alt_names_in_extensions(&first)?,
                oid::CHALLENGE_PASSWORD => {
                    challenge_password = Some(Zeroizing::new(first.text().reading("challengePassword")?));
                }
                _ => {}
            }
        }
    }
    Ok(Unverified {
        csr: Csr {
            facts: DeviceFacts::from_parts(name, alt_names.unwrap_or_default()),
            spki: spki.raw.to_vec(),
            challenge_password,
        },
        info: info.raw.to_vec(),
        algorithm,
        signature: signature.into_owned(),
    })
}
