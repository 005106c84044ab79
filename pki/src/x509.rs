//! X.509 pieces: names, subject alternative names, certificates read and
//! written.

use std::net::IpAddr;

use super::asn1::{self, Value, tag};
use super::errors::{Context, PkiError};
use super::keys::{PublicKey, SigningKey};
use super::oid;

/// What prereg reads of a subject Name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameInfo {
    /// The (last) commonName.
    pub common_name: Option<String>,
    /// The serialNumber attribute.
    pub serial_number: Option<String>,
}

/// Reads the commonName and serialNumber of a DER or BER Name.
pub fn read_name(name: &Value<'_>) -> Result<NameInfo, PkiError> {
    let mut info = NameInfo::default();
    let mut rdns = name.expect(tag::SEQUENCE, "Name").reading("subject name")?.children().reading("subject name")?;
    while let Some(rdn) = rdns.next_value().reading("subject name")? {
        let mut attributes = rdn.children().reading("subject name")?;
        while let Some(attribute) = attributes.next_value().reading("subject name")? {
            let mut parts = attribute.children().reading("subject name")?;
            let kind = parts.required("attribute type").and_then(|v| v.oid()).reading("subject name")?;
            let value = parts.required("attribute value").reading("subject name")?;
            match kind.as_str() {
                oid::CN => info.common_name = Some(value.text().reading("commonName")?),
                oid::SERIAL_NUMBER => info.serial_number = Some(value.text().reading("serialNumber")?),
                _ => {}
            }
        }
    }
    Ok(info)
}

/// A DER Name from (OID, value) attributes, one per RDN; a serialNumber is a
/// PrintableString, everything else UTF8String.
pub fn write_name(attributes: &[(&str, &str)]) -> Vec<u8> {
    let rdns: Vec<Vec<u8>> = attributes
        .iter()
        .map(|(kind, value)| {
            let printable = *kind == oid::SERIAL_NUMBER && value.bytes().all(is_printable);
            let value = if printable { asn1::printable(value) } else { asn1::utf8(value) };
            asn1::set_of(&[&asn1::seq(&[&asn1::oid(kind), &value])])
        })
        .collect();
    let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    asn1::seq(&parts)
}

fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// Names in a subjectAltName.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    /// dNSName entries, in order.
    pub dns: Vec<String>,
    /// iPAddress entries.
    pub ip: Vec<IpAddr>,
}

/// Reads the content of a subjectAltName extension (the OCTET STRING's octets).
pub fn read_alt_names(der: &[u8]) -> Result<AltNames, PkiError> {
    let mut names = AltNames::default();
    let general_names = asn1::parse(der).reading("subjectAltName")?;
    let mut entries = general_names.children().reading("subjectAltName")?;
    while let Some(entry) = entries.next_value().reading("subjectAltName")? {
        match entry.tag {
            0x82 => names.dns.push(
                String::from_utf8(entry.content.to_vec())
                    .map_err(|_| PkiError::Invalid("a dNSName in the subjectAltName is not text".into()))?,
            ),
            0x87 => match entry.content.len() {
                4 => names.ip.push(IpAddr::from(<[u8; 4]>::try_from(entry.content).unwrap_or_default())),
                16 => names.ip.push(IpAddr::from(<[u8; 16]>::try_from(entry.content).unwrap_or_default())),
                n => return Err(PkiError::Invalid(format!("an iPAddress of {n} bytes in the subjectAltName"))),
            },
            _ => {}
        }
    }
    Ok(names)
}

/// Reads Extensions (`SEQUENCE OF Extension`) for a subjectAltName.
pub fn alt_names_in_extensions(extensions: &Value<'_>) -> Result<Option<AltNames>, PkiError> {
    match extension_value(extensions, oid::SUBJECT_ALT_NAME)? {
        Some(value) => read_alt_names(&value).map(Some),
        None => Ok(None),
    }
}

/// The value (the extnValue octets) of extension `id` in Extensions.
pub fn extension_value(extensions: &Value<'_>, id: &str) -> Result<Option<Vec<u8>>, PkiError> {
    let mut list = extensions.children().reading("extensions")?;
    while let Some(extension) = list.next_value().reading("extensions")? {
        let mut parts = extension.children().reading("extension")?;
        let extn_id = parts.required("extnID").and_then(|v| v.oid()).reading("extension")?;
        let mut value = parts.required("extnValue").reading("extension")?;
        if value.tag == tag::BOOLEAN {
            value = parts.required("extnValue").reading("extension")?;
        }
        if extn_id == id {
            return value.octet_string().map(|v| Some(v.into_owned())).reading("extension");
        }
    }
    Ok(None)
}

/// The parts of a certificate prereg needs.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The whole DER (or BER, as received).
    pub der: Vec<u8>,
    /// The issuer Name, as encoded.
    pub issuer: Vec<u8>,
    /// The serialNumber INTEGER, as encoded.
    pub serial: Vec<u8>,
    /// The subject Name, as encoded.
    pub subject: Vec<u8>,
    /// The SubjectPublicKeyInfo, as encoded.
    pub spki: Vec<u8>,
    /// notBefore, Unix seconds.
    pub not_before: u64,
    /// notAfter, Unix seconds.
    pub not_after: u64,
    tbs: Vec<u8>,
    signature_algorithm: String,
    signature: Vec<u8>,
}

impl Certificate {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let cert = asn1::parse(der).reading("certificate")?;
        Self::from_value(&cert)
    }

    /// Reads a certificate already parsed as part of a larger structure.
    pub fn from_value(cert: &Value<'_>) -> Result<Self, PkiError> {
        let r = |e| PkiError::Malformed { what: "certificate".into(), source: e };
        let mut parts = cert.children().map_err(r)?;
        let tbs = parts.required("tbsCertificate").map_err(r)?;
        let alg = parts.required("signatureAlgorithm").map_err(r)?;
        let signature_algorithm = alg.children().and_then(|mut a| a.required("algorithm")?.oid()).map_err(r)?;
        let signature = parts.required("signature").and_then(|v| v.bit_string_bytes()).map_err(r)?.into_owned();
        let mut fields = tbs.children().map_err(r)?;
        fields.optional(tag::explicit(0)).map_err(r)?;
        let serial = fields.required("serialNumber").map_err(r)?.raw.to_vec();
        fields.required("signature").map_err(r)?;
        let issuer = fields.required("issuer").map_err(r)?.raw.to_vec();
        let validity = fields.required("validity").map_err(r)?;
        let mut times = validity.children().map_err(r)?;
        let not_before = times.required("notBefore").and_then(|v| asn1::parse_time(&v)).map_err(r)?;
        let not_after = times.required("notAfter").and_then(|v| asn1::parse_time(&v)).map_err(r)?;
        let subject = fields.required("subject").map_err(r)?.raw.to_vec();
        let spki = fields.required("subjectPublicKeyInfo").map_err(r)?.raw.to_vec();
        Ok(Certificate {
            der: cert.raw.to_vec(),
            issuer,
            serial,
            subject,
            spki,
            not_before,
            not_after,
            tbs: tbs.raw.to_vec(),
            signature_algorithm,
            signature,
        })
    }

    /// Its subject's commonName and serialNumber.
    pub fn subject_info(&self) -> Result<NameInfo, PkiError> {
        read_name(&asn1::parse(&self.subject).reading("subject")?)
    }

    /// The value of its extension `id`, if it has it.
    pub fn extension(&self, id: &str) -> Result<Option<Vec<u8>>, PkiError> {
        let tbs = asn1::parse(&self.tbs).reading("tbsCertificate")?;
        let mut fields = tbs.children().reading("tbsCertificate")?;
        while let Some(field) = fields.next_value().reading("tbsCertificate")? {
            if field.tag == tag::explicit(3) {
                let extensions = field.children().and_then(|mut c| c.required("extensions")).reading("extensions")?;
                return extension_value(&extensions, id);
            }
        }
        Ok(None)
    }

    /// Whether it may issue certificates: basicConstraints with cA TRUE and,
    /// when keyUsage is present, keyCertSign.
    pub fn is_ca(&self) -> Result<bool, PkiError> {
        let Some(constraints) = self.extension(oid::BASIC_CONSTRAINTS)? else { return Ok(false) };
        let constraints = asn1::parse(&constraints).reading("basicConstraints")?;
        let ca = match constraints.children().reading("basicConstraints")?.next_value().reading("basicConstraints")? {
            Some(v) if v.tag == tag::BOOLEAN => v.content.first().is_some_and(|b| *b != 0),
            _ => false,
        };
        let cert_sign = match self.extension(oid::KEY_USAGE)? {
            // keyCertSign is bit 5: 0x04 in the first octet of the bits.
            Some(usage) => asn1::parse(&usage)
                .and_then(|v| v.octets().map(|b| b.get(1).is_some_and(|first| first & 0x04 != 0)))
                .reading("keyUsage")?,
            None => true,
        };
        Ok(ca && cert_sign)
    }

    /// Its public key.
    pub fn public_key(&self) -> Result<PublicKey, PkiError> {
        PublicKey::from_spki(&self.spki)
    }

    /// Checks that `issuer_key` signed it.
    pub fn verify_signed_by(&self, issuer_key: &PublicKey) -> Result<(), PkiError> {
        issuer_key.verify(&self.signature_algorithm, &self.tbs, &self.signature, "certificate")
    }

    /// The serial number: lower-case hex of the INTEGER's content octets.
    pub fn serial_hex(&self) -> String {
        asn1::parse(&self.serial).map(|v| crate::hex(v.content)).unwrap_or_default()
    }

    /// SHA-256 of the DER, lower-case hex (an operator's fingerprint).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        crate::hex(&sha2::Sha256::digest(&self.der))
    }
}

/// What goes into a certificate prereg issues.
#[derive(Debug, Clone)]
pub struct CertificateTemplate<'a> {
    /// Subject Name (DER).
    pub subject: Vec<u8>,
    /// SubjectPublicKeyInfo (DER).
    pub spki: &'a [u8],
    /// Validity start and end, Unix seconds.
    pub not_before: u64,
    /// End of validity.
    pub not_after: u64,
    /// Extensions (each a DER Extension).
    pub extensions: Vec<Vec<u8>>,
}

/// One DER Extension.
pub fn extension(id: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        asn1::seq(&[&asn1::oid(id), &[tag::BOOLEAN, 1, 0xff], &asn1::octet_string(value)])
    } else {
        asn1::seq(&[&asn1::oid(id), &asn1::octet_string(value)])
    }
}

/// A subjectAltName value from DNS names and IP addresses.
pub fn alt_names_value(dns: &[&str], ips: &[IpAddr]) -> Vec<u8> {
    let mut entries: Vec<Vec<u8>> = dns.iter().map(|d| asn1::tlv(0x82, d.as_bytes())).collect();
    for ip in ips {
        entries.push(match ip {
            IpAddr::V4(v4) => asn1::tlv(0x87, &v4.octets()),
            IpAddr::V6(v6) => asn1::tlv(0x87, &v6.octets()),
        });
    }
    let parts: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    asn1::seq(&parts)
}

/// A keyIdentifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1).
pub fn key_identifier(spki: &[u8]) -> Result<Vec<u8>, PkiError> {
    use sha1::Digest;
    let value = asn1::parse(spki).reading("SubjectPublicKeyInfo")?;
    let mut parts = value.children().reading("SubjectPublicKeyInfo")?;
    parts.required("algorithm").reading("SubjectPublicKeyInfo")?;
    let bits = parts.required("subjectPublicKey").and_then(|v| v.bit_string_bytes()).reading("SubjectPublicKeyInfo")?;
    Ok(sha1::Sha1::digest(&bits).to_vec())
}

/// Signs a certificate: `issuer` is the issuer Name (DER), `serial` the
/// serial number's magnitude.
pub fn sign_certificate(
    template: &CertificateTemplate<'_>,
    issuer: &[u8],
    serial: &[u8],
    key: &SigningKey,
) -> Result<Vec<u8>, PkiError> {
    let algorithm = key.signature_algorithm();
    let extension_parts: Vec<&[u8]> = template.extensions.iter().map(Vec::as_slice).collect();
    let extensions = asn1::constructed(tag::explicit(3), &[&asn1::seq(&extension_parts)]);
    let tbs = asn1::seq(&[
        &asn1::constructed(tag::explicit(0), &[&asn1::small(2)]),
        &asn1::uint(serial),
        &algorithm,
        issuer,
        &asn1::seq(&[&asn1::x509_time(template.not_before), &asn1::x509_time(template.not_after)]),
        &template.subject,
        template.spki,
        &extensions,
    ]);
    let signature = key.sign(&tbs)?;
    Ok(asn1::seq(&[&tbs, &algorithm, &asn1::bit_string(&signature)]))
}

/// PEM armour.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every `label` block of a PEM file, decoded.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let Some(stop) = rest[body_start..].find(&end) else { return Err(format!("{begin} without {end}")) };
        let body: String = rest[body_start..body_start + stop].chars().filter(|c| !c.is_whitespace()).collect();
        blocks.push(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| format!("a {label} block is not base64: {e}"))?,
        );
        rest = &rest[body_start + stop + end.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_alt_names_round_trip() {
        let name = write_name(&[(oid::CN, "router5.dept.example.com"), (oid::SERIAL_NUMBER, "FTX1")]);
        let info = read_name(&asn1::parse(&name).unwrap()).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("router5.dept.example.com"));
        assert_eq!(info.serial_number.as_deref(), Some("FTX1"));
        let san = alt_names_value(&["a.example.com"], &["10.1.2.3".parse().unwrap(), "::1".parse().unwrap()]);
        let names = read_alt_names(&san).unwrap();
        assert_eq!(names.dns, vec!["a.example.com"]);
        assert_eq!(names.ip.len(), 2);
    }

    #[test]
    fn a_signed_certificate_reads_back_and_verifies() {
        let key = SigningKey::generate_p256();
        let spki = key.spki_der().unwrap();
        let subject = write_name(&[(oid::CN, "x.example.com")]);
        let template = CertificateTemplate {
            subject: subject.clone(),
            spki: &spki,
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            extensions: vec![extension(oid::SUBJECT_ALT_NAME, false, &alt_names_value(&["x.example.com"], &[]))],
        };
        let der = sign_certificate(&template, &subject, &[1, 2, 3], &key).unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject, subject);
        assert_eq!(cert.not_after, 1_800_000_000);
        cert.verify_signed_by(&PublicKey::from_spki(&spki).unwrap()).unwrap();
        let other = SigningKey::generate_p256();
        assert!(cert.verify_signed_by(&PublicKey::from_spki(&other.spki_der().unwrap()).unwrap()).is_err());
        let text = pem("CERTIFICATE", &der);
        assert_eq!(pem_blocks(&text, "CERTIFICATE").unwrap(), vec![der]);
    }
}
