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
    /// The kinds of any other entries (`rfc822Name`, `uniformResourceIdentifier`,
    /// ...), in order: prereg issues none of them, so a request naming one is
    /// refused.
    pub other: Vec<&'static str>,
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
            other => names.other.push(general_name_kind(other)),
        }
    }
    Ok(names)
}

/// The name of a GeneralName choice, by its tag (RFC 5280 §4.2.1.6).
fn general_name_kind(tag: u8) -> &'static str {
    match tag & 0x1f {
        0 => "otherName",
        1 => "rfc822Name",
        3 => "x400Address",
        4 => "directoryName",
        5 => "ediPartyName",
        6 => "uniformResourceIdentifier",
        8 => "registeredID",
        _ => "an unknown GeneralName",
    }
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
        fingerprint(&self.der)
    }
}

/// SHA-256 of a certificate's DER, lower-case hex: its fingerprint (how an
/// operator, and a CA caller's client certificate, is told apart).
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    crate::hex(&sha2::Sha256::digest(der))
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

/// A cRLDistributionPoints value with one distribution point, the URL of
/// the CRL (`fullName` with one uniformResourceIdentifier).
pub fn crl_distribution_points_value(url: &str) -> Vec<u8> {
    let uri = asn1::tlv(0x86, url.as_bytes());
    let full_name = asn1::constructed(0xa0, &[&uri]);
    let distribution_point = asn1::constructed(0xa0, &[&full_name]);
    asn1::seq(&[&asn1::seq(&[&distribution_point])])
}

/// The URLs of a cRLDistributionPoints value (its fullName URIs).
pub fn read_crl_distribution_points(der: &[u8]) -> Result<Vec<String>, PkiError> {
    let mut urls = Vec::new();
    let points = asn1::parse(der).reading("cRLDistributionPoints")?;
    let mut list = points.children().reading("cRLDistributionPoints")?;
    while let Some(point) = list.next_value().reading("cRLDistributionPoints")? {
        let mut fields = point.children().reading("DistributionPoint")?;
        let Some(name) = fields.optional(0xa0).reading("DistributionPoint")? else { continue };
        let mut choices = name.children().reading("DistributionPointName")?;
        let Some(full) = choices.optional(0xa0).reading("DistributionPointName")? else { continue };
        let mut general = full.children().reading("fullName")?;
        while let Some(entry) = general.next_value().reading("fullName")? {
            if entry.tag == 0x86 {
                urls.push(String::from_utf8_lossy(entry.content).into_owned());
            }
        }
    }
    Ok(urls)
}

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The serial number's magnitude (the INTEGER's content octets).
    pub serial: Vec<u8>,
    /// When it was revoked, Unix seconds.
    pub revoked_at: u64,
    /// The CRLReason code (RFC 5280 §5.3.1); `None`: unspecified, which
    /// RFC 5280 says to leave out.
    pub reason: Option<u8>,
}

/// What goes into a CRL prereg issues.
#[derive(Debug, Clone)]
pub struct CrlTemplate<'a> {
    /// The issuer Name (DER), the CA's subject.
    pub issuer: &'a [u8],
    /// thisUpdate, Unix seconds.
    pub this_update: u64,
    /// nextUpdate, Unix seconds.
    pub next_update: u64,
    /// The cRLNumber: monotonically increasing for this CA.
    pub number: u64,
    /// The revoked certificates.
    pub revoked: &'a [RevokedEntry],
    /// The authorityKeyIdentifier extension (DER), if the CA has a key id.
    pub authority_key_id: Option<Vec<u8>>,
}

/// Signs a version 2 CRL (RFC 5280 §5) with the issuing CA's key.
pub fn sign_crl(template: &CrlTemplate<'_>, key: &SigningKey) -> Result<Vec<u8>, PkiError> {
    let algorithm = key.signature_algorithm();
    let entries: Vec<Vec<u8>> = template
        .revoked
        .iter()
        .map(|entry| {
            let date = asn1::x509_time(entry.revoked_at);
            let serial = asn1::uint(&entry.serial);
            match entry.reason {
                Some(code) => {
                    let reason = extension(oid::CRL_REASON, false, &asn1::tlv(0x0a, &[code]));
                    asn1::seq(&[&serial, &date, &asn1::seq(&[&reason])])
                }
                None => asn1::seq(&[&serial, &date]),
            }
        })
        .collect();
    let mut extensions = vec![extension(oid::CRL_NUMBER, false, &asn1::small(template.number))];
    if let Some(aki) = &template.authority_key_id {
        extensions.insert(0, aki.clone());
    }
    let extension_parts: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    let crl_extensions = asn1::constructed(tag::explicit(0), &[&asn1::seq(&extension_parts)]);
    let version = asn1::small(1);
    let this_update = asn1::x509_time(template.this_update);
    let next_update = asn1::x509_time(template.next_update);
    let entry_parts: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    let revoked = asn1::seq(&entry_parts);
    let mut tbs_parts: Vec<&[u8]> = vec![&version, &algorithm, template.issuer, &this_update, &next_update];
    // An empty revokedCertificates is left out (RFC 5280 §5.1.2.6).
    if !entries.is_empty() {
        tbs_parts.push(&revoked);
    }
    tbs_parts.push(&crl_extensions);
    let tbs = asn1::seq(&tbs_parts);
    let signature = key.sign(&tbs)?;
    Ok(asn1::seq(&[&tbs, &algorithm, &asn1::bit_string(&signature)]))
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
        assert!(names.other.is_empty());
        // An rfc822Name and a URI are reported by kind.
        let more = asn1::seq(&[&asn1::tlv(0x81, b"a@example.com"), &asn1::tlv(0x86, b"https://x")]);
        assert_eq!(read_alt_names(&more).unwrap().other, vec!["rfc822Name", "uniformResourceIdentifier"]);
        let cdp = crl_distribution_points_value("http://ca.example.com/ca/crl");
        assert_eq!(read_crl_distribution_points(&cdp).unwrap(), vec!["http://ca.example.com/ca/crl"]);
    }

    #[test]
    fn a_signed_crl_verifies_and_lists_its_entries() {
        let key = SigningKey::generate_p256();
        let issuer = write_name(&[(oid::CN, "CA")]);
        let revoked = [
            RevokedEntry { serial: vec![0x12, 0x34], revoked_at: 1_700_000_100, reason: Some(1) },
            RevokedEntry { serial: vec![0x7f; 16], revoked_at: 1_700_000_200, reason: None },
        ];
        let crl = sign_crl(
            &CrlTemplate {
                issuer: &issuer,
                this_update: 1_700_000_300,
                next_update: 1_700_086_700,
                number: 7,
                revoked: &revoked,
                authority_key_id: None,
            },
            &key,
        )
        .unwrap();
        let value = asn1::parse(&crl).unwrap();
        let mut parts = value.children().unwrap();
        let tbs = parts.required("tbs").unwrap();
        let alg = parts.required("alg").unwrap();
        let alg = alg.children().unwrap().required("oid").unwrap().oid().unwrap();
        let signature = parts.required("signature").unwrap().bit_string_bytes().unwrap();
        PublicKey::from_spki(&key.spki_der().unwrap()).unwrap().verify(&alg, tbs.raw, &signature, "crl").unwrap();
        let mut fields = tbs.children().unwrap();
        assert_eq!(fields.required("version").unwrap().small_uint().unwrap(), 1);
        fields.required("signature").unwrap();
        assert_eq!(fields.required("issuer").unwrap().raw, issuer.as_slice());
        assert_eq!(asn1::parse_time(&fields.required("thisUpdate").unwrap()).unwrap(), 1_700_000_300);
        assert_eq!(asn1::parse_time(&fields.required("nextUpdate").unwrap()).unwrap(), 1_700_086_700);
        let list = fields.required("revokedCertificates").unwrap().children().unwrap().remaining().unwrap();
        assert_eq!(list.len(), 2);
        // No entries: the field is left out, the extensions follow thisUpdate/nextUpdate.
        let empty = sign_crl(
            &CrlTemplate {
                issuer: &issuer,
                this_update: 1,
                next_update: 2,
                number: 8,
                revoked: &[],
                authority_key_id: None,
            },
            &key,
        )
        .unwrap();
        let value = asn1::parse(&empty).unwrap();
        let tbs = value.children().unwrap().required("tbs").unwrap();
        assert_eq!(tbs.children().unwrap().remaining().unwrap().len(), 6);
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
