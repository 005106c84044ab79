//! Building CMP requests as a client does (RFC 4210/9483): the bodies of
//! `ir`/`cr` (a CertReqMessages with a signature proof of possession),
//! `p10cr`, `certConf`, and a whole message protected by a MAC. What the
//! project's tests drive the server with, beside stock clients; a device
//! written in Rust can enroll with it too.

use super::message::{self, FailInfo, Header, body_tag};
use super::protection::MacAlgorithm;
use crate::asn1::{self, tag};
use crate::errors::PkiError;
use crate::keys::{DigestAlg, SigningKey};
use crate::x509;

/// What one certificate request asks for.
#[derive(Debug, Clone)]
pub struct Template<'a> {
    /// certReqId (0 in the lightweight profile).
    pub id: i64,
    /// The subject's common name, if any.
    pub common_name: Option<&'a str>,
    /// The subject's serialNumber, if any.
    pub serial_number: Option<&'a str>,
    /// dNSNames and IP addresses of a subjectAltName extension (none: no extension).
    pub dns: &'a [&'a str],
    /// IP addresses of the subjectAltName.
    pub ips: &'a [std::net::IpAddr],
}

/// A CertReqMsg for `template` with the public key of `key`, and a
/// signature proof of possession by `key` over the CertRequest.
pub fn cert_req_msg(template: &Template<'_>, key: &SigningKey) -> Result<Vec<u8>, PkiError> {
    let cert_request = cert_request(template, &key.spki_der()?);
    let signature = key.sign(&cert_request)?;
    let popo = asn1::constructed(0xa1, &[&key.signature_algorithm(), &asn1::bit_string(&signature)]);
    Ok(asn1::seq(&[&cert_request, &popo]))
}

/// The CertRequest (what a proof of possession signs) for `template` and `spki`.
pub fn cert_request(template: &Template<'_>, spki: &[u8]) -> Vec<u8> {
    let mut attributes = Vec::new();
    if let Some(cn) = template.common_name {
        attributes.push((crate::oid::CN, cn));
    }
    if let Some(serial) = template.serial_number {
        attributes.push((crate::oid::SERIAL_NUMBER, serial));
    }
    let mut fields = vec![asn1::constructed(0xa5, &[&x509::write_name(&attributes)])];
    // publicKey [6] IMPLICIT SubjectPublicKeyInfo: the SEQUENCE's content under tag [6].
    let spki_content = asn1::parse(spki).map(|v| v.content.to_vec()).unwrap_or_default();
    fields.push(asn1::tlv(0xa6, &spki_content));
    if !template.dns.is_empty() || !template.ips.is_empty() {
        let san =
            x509::extension(crate::oid::SUBJECT_ALT_NAME, false, &x509::alt_names_value(template.dns, template.ips));
        fields.push(asn1::constructed(0xa9, &[&san]));
    }
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    let id = int(template.id);
    asn1::seq(&[&id, &asn1::seq(&refs)])
}

/// An `ir` or `cr` body (`body` is [`body_tag::IR`] or [`body_tag::CR`])
/// holding these CertReqMsgs.
pub fn cert_requests_body(body: u8, messages: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    asn1::constructed(body, &[&asn1::seq(&refs)])
}

/// A `p10cr` body holding a DER PKCS#10 request.
pub fn p10cr_body(csr: &[u8]) -> Vec<u8> {
    asn1::constructed(body_tag::P10CR, &[csr])
}

/// One CertStatus of a `certConf`.
#[derive(Debug, Clone)]
pub struct Confirmation<'a> {
    /// The certificate confirmed (its hash is computed here).
    pub certificate: &'a [u8],
    /// Its certReqId.
    pub cert_req_id: i64,
    /// The hash: SHA-256 unless another is named.
    pub hash: DigestAlg,
    /// Names the hash in hashAlg (CMP v3) rather than leaving it implied.
    pub name_hash: bool,
    /// statusInfo: status and failInfo (none: no statusInfo, an acceptance).
    pub status: Option<(u64, Option<FailInfo>)>,
}

/// A `certConf` body.
pub fn cert_conf_body(statuses: &[Confirmation<'_>]) -> Vec<u8> {
    let entries: Vec<Vec<u8>> = statuses
        .iter()
        .map(|c| {
            let mut parts = vec![asn1::octet_string(&c.hash.digest(c.certificate)), int(c.cert_req_id)];
            if let Some((status, fail)) = c.status {
                parts.push(message::status_info(status, None, fail));
            }
            if c.name_hash {
                parts.push(asn1::constructed(tag::explicit(0), &[&asn1::algorithm(c.hash.oid())]));
            }
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            asn1::seq(&refs)
        })
        .collect();
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    asn1::constructed(body_tag::CERT_CONF, &[&asn1::seq(&refs)])
}

/// A whole message: `header` and `body`, MAC-protected with `alg` under
/// `secret` when given (the header must then name `alg`).
pub fn protected(header: &Header, body: &[u8], mac: Option<(&MacAlgorithm, &[u8])>) -> Vec<u8> {
    let header = header.encode();
    match mac {
        Some((alg, secret)) => {
            let compute = |part: &[u8]| alg.mac(secret, part);
            message::encode(&header, body, Some(&compute))
        }
        None => message::encode(&header, body, None),
    }
}

/// A DER INTEGER of any sign.
fn int(n: i64) -> Vec<u8> {
    if n >= 0 {
        return asn1::small(n.unsigned_abs());
    }
    let bytes = n.to_be_bytes();
    // Drop leading 0xff octets while the next keeps the sign bit.
    let start = (0..7).find(|&i| !(bytes[i] == 0xff && bytes[i + 1] & 0x80 != 0)).unwrap_or(7);
    asn1::tlv(tag::INTEGER, &bytes[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_any_sign_are_minimal() {
        assert_eq!(int(-1), vec![0x02, 0x01, 0xff]);
        assert_eq!(int(-129), vec![0x02, 0x02, 0xff, 0x7f]);
        assert_eq!(int(0), vec![0x02, 0x01, 0x00]);
        assert_eq!(int(200), vec![0x02, 0x02, 0x00, 0xc8]);
    }

    #[test]
    fn a_built_ir_reads_back_with_its_proof_of_possession_verified() {
        let key = SigningKey::generate_p256();
        let template = Template {
            id: 0,
            common_name: Some("router1.example.com"),
            serial_number: None,
            dns: &["router1.example.com"],
            ips: &["10.0.0.1".parse().unwrap()],
        };
        let body = cert_requests_body(body_tag::IR, &[cert_req_msg(&template, &key).unwrap()]);
        let name = message::directory_name(&x509::write_name(&[]));
        let header = Header {
            pvno: 2,
            sender: name.clone(),
            recipient: name,
            protection_alg: None,
            sender_kid: None,
            transaction_id: Some(message::fresh_nonce()),
            sender_nonce: None,
            recip_nonce: None,
            implicit_confirm: false,
            now: 1_800_000_000,
        };
        let read = message::read(&protected(&header, &body, None)).unwrap();
        let message::Body::Ir(Ok(requests)) = read.body else { panic!("{:?}", read.body) };
        assert_eq!(requests.len(), 1);
        assert!(requests[0].fault.is_none(), "{:?}", requests[0].fault);
        assert_eq!(requests[0].facts.fqdn.as_deref(), Some("router1.example.com"));
        assert_eq!(requests[0].facts.ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(requests[0].spki, key.spki_der().unwrap());
        assert_eq!(read.message_time, Some(1_800_000_000));

        // Signed by another key: badPOP, kept as the request's fault.
        let other = SigningKey::generate_p256();
        let cert_request = cert_request(&template, &key.spki_der().unwrap());
        let signature = other.sign(&cert_request).unwrap();
        let popo = asn1::constructed(0xa1, &[&other.signature_algorithm(), &asn1::bit_string(&signature)]);
        let forged = asn1::seq(&[&cert_request, &popo]);
        let body = cert_requests_body(body_tag::IR, &[forged]);
        let read = message::read(&protected(&header, &body, None)).unwrap();
        let message::Body::Ir(Ok(requests)) = read.body else { panic!() };
        assert_eq!(requests[0].fault.as_ref().map(|f| f.fail), Some(FailInfo::BadPop));
    }
}
