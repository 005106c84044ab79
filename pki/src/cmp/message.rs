//! CMP messages (RFC 4210/9480, profile RFC 9483): reading requests (`ir`,
//! `cr`, `p10cr`, `certConf`) and writing responses (`ip`, `cp`, `pkiConf`,
//! `error`).

use crate::asn1::{self, Asn1Error, Value, tag};
use crate::errors::PkiError;
use crate::keys::PublicKey;
use crate::{DeviceFacts, csr, x509};

/// id-it-implicitConfirm
pub const IMPLICIT_CONFIRM: &str = "1.3.6.1.5.5.7.4.13";

/// Body tags (context-specific, constructed).
pub mod body_tag {
    /// Initialization request.
    pub const IR: u8 = 0xa0;
    /// Initialization response.
    pub const IP: u8 = 0xa1;
    /// Certification request.
    pub const CR: u8 = 0xa2;
    /// Certification response.
    pub const CP: u8 = 0xa3;
    /// PKCS#10 certification request.
    pub const P10CR: u8 = 0xa4;
    /// Confirmation.
    pub const PKI_CONF: u8 = 0xb3;
    /// Error.
    pub const ERROR: u8 = 0xb7;
    /// Certificate confirmation.
    pub const CERT_CONF: u8 = 0xb8;
}

/// Whether a response (a PKIMessage this server wrote) refuses: an `error`,
/// or an `ip`/`cp` whose first response has status rejection (2). What the
/// service counts as a failed attempt of the client's address.
pub fn is_refusal(response: &[u8]) -> bool {
    let status = || -> Option<bool> {
        let message = asn1::parse(response).ok()?;
        let mut parts = message.children().ok()?;
        parts.required("header").ok()?;
        let body = parts.required("body").ok()?;
        match body.tag {
            body_tag::ERROR => Some(true),
            body_tag::IP | body_tag::CP => {
                let content = body.children().ok()?.required("content").ok()?;
                let mut rep = content.children().ok()?;
                let mut responses = rep.required("response").ok()?;
                // caPubs [1] may come first.
                if responses.tag == 0xa1 {
                    responses = rep.required("response").ok()?;
                }
                let first = responses.children().ok()?.required("CertResponse").ok()?;
                let mut fields = first.children().ok()?;
                fields.required("certReqId").ok()?;
                let status = fields.required("status").ok()?;
                let code = status.children().ok()?.required("status").ok()?.small_uint().ok()?;
                Some(code == 2)
            }
            _ => Some(false),
        }
    };
    status().unwrap_or(false)
}

/// PKIFailureInfo bits (RFC 4210 §5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// badAlg (0)
    BadAlg = 0,
    /// badMessageCheck (1)
    BadMessageCheck = 1,
    /// badRequest (2)
    BadRequest = 2,
    /// badDataFormat (5)
    BadDataFormat = 5,
    /// badPOP (9)
    BadPop = 9,
    /// badCertTemplate (19)
    BadCertTemplate = 19,
    /// transactionIdInUse (21)
    TransactionIdInUse = 21,
    /// notAuthorized (23)
    NotAuthorized = 23,
    /// systemFailure (25)
    SystemFailure = 25,
}

/// A message that is not a CMP request prereg can read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not the ASN.1 of a PKIMessage.
    #[error("not a CMP message: {0}")]
    Asn1(#[from] Asn1Error),
    /// A certificate request that cannot be used.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// One certificate request of an `ir` or `cr`.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// certReqId.
    pub id: i64,
    /// Name, IP and serial from the template's subject and SAN.
    pub facts: DeviceFacts,
    /// The template's public key (DER SubjectPublicKeyInfo).
    pub spki: Vec<u8>,
}

/// One entry of a `certConf`.
#[derive(Debug, Clone)]
pub struct CertStatus {
    /// The hash of the certificate it confirms.
    pub cert_hash: Vec<u8>,
    /// Its certReqId.
    pub cert_req_id: i64,
    /// Whether the client accepts the certificate (no status, or status 0/1).
    pub accepted: bool,
    /// hashAlg, when the client names it (CMP v3).
    pub hash_alg: Option<String>,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// `ir`
    Ir(Vec<CertRequest>),
    /// `cr`
    Cr(Vec<CertRequest>),
    /// `p10cr`
    P10cr(CertRequest),
    /// `certConf`
    CertConf(Vec<CertStatus>),
    /// Any other body (its tag).
    Other(u8),
}

impl Body {
    /// The body's name, for messages and the audit log.
    pub fn name(&self) -> String {
        match self {
            Body::Ir(_) => "ir".into(),
            Body::Cr(_) => "cr".into(),
            Body::P10cr(_) => "p10cr".into(),
            Body::CertConf(_) => "certConf".into(),
            Body::Other(t) => format!("body [{}]", t & 0x1f),
        }
    }
}

/// A received PKIMessage.
#[derive(Debug, Clone)]
pub struct Request {
    /// pvno (2 or 3).
    pub pvno: u64,
    /// sender (GeneralName, as encoded).
    pub sender: Vec<u8>,
    /// protectionAlg (AlgorithmIdentifier, as encoded), if protected.
    pub protection_alg: Option<Vec<u8>>,
    /// senderKID.
    pub sender_kid: Option<Vec<u8>>,
    /// transactionID.
    pub transaction_id: Option<Vec<u8>>,
    /// senderNonce.
    pub sender_nonce: Option<Vec<u8>>,
    /// Whether generalInfo asks for implicit confirmation.
    pub implicit_confirm: bool,
    /// The body.
    pub body: Body,
    /// DER of `SEQUENCE { header, body }`, what the protection covers.
    pub protected_part: Vec<u8>,
    /// The protection (MAC) bits.
    pub protection: Option<Vec<u8>>,
}

/// Largest request accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Reads a PKIMessage (BER accepted).
pub fn read(der: &[u8]) -> Result<Request, MessageError> {
    let message = asn1::parse(der)?.expect(tag::SEQUENCE, "PKIMessage")?;
    let mut parts = message.children()?;
    let header = parts.required("header")?.expect(tag::SEQUENCE, "PKIHeader")?;
    let body = parts.required("body")?;
    let protection = match parts.optional(tag::explicit(0))? {
        Some(p) => Some(p.children()?.required("protection")?.bit_string_bytes()?.into_owned()),
        None => None,
    };

    let mut h = header.children()?;
    let pvno = h.required("pvno")?.small_uint()?;
    let sender = h.required("sender")?.raw.to_vec();
    h.required("recipient")?;
    let mut request = Request {
        pvno,
        sender,
        protection_alg: None,
        sender_kid: None,
        transaction_id: None,
        sender_nonce: None,
        implicit_confirm: false,
        body: Body::Other(body.tag),
        protected_part: asn1::seq(&[header.raw, body.raw]),
        protection,
    };
    while let Some(field) = h.next_value()? {
        let inner = || -> Result<Value<'_>, Asn1Error> { field.children()?.required("header field") };
        match field.tag {
            t if t == tag::explicit(1) => request.protection_alg = Some(inner()?.raw.to_vec()),
            t if t == tag::explicit(2) => request.sender_kid = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(4) => request.transaction_id = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(5) => request.sender_nonce = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(8) => {
                let mut infos = inner()?.children()?;
                while let Some(info) = infos.next_value()? {
                    if info.children()?.required("infoType")?.oid()? == IMPLICIT_CONFIRM {
                        request.implicit_confirm = true;
                    }
                }
            }
            _ => {}
        }
    }
    request.body = match body.tag {
        body_tag::IR => Body::Ir(read_cert_requests(&body)?),
        body_tag::CR => Body::Cr(read_cert_requests(&body)?),
        body_tag::P10CR => {
            let csr = csr::read_value(&body.children()?.required("CertificationRequest")?)?;
            Body::P10cr(CertRequest { id: -1, facts: csr.facts, spki: csr.spki })
        }
        body_tag::CERT_CONF => Body::CertConf(read_cert_conf(&body)?),
        other => Body::Other(other),
    };
    Ok(request)
}

fn signed_int(value: &Value<'_>) -> Result<i64, Asn1Error> {
    let bytes = value.expect(tag::INTEGER, "INTEGER")?.content;
    if bytes.is_empty() || bytes.len() > 8 {
        return Err(Asn1Error { offset: value.offset, message: "INTEGER out of range".into() });
    }
    let negative = bytes[0] & 0x80 != 0;
    let start: i64 = if negative { -1 } else { 0 };
    Ok(bytes.iter().fold(start, |acc, b| (acc << 8) | i64::from(*b)))
}

/// CertReqMessages: each request's template, with its proof of possession
/// checked (a signature by the template's key over the CertRequest).
fn read_cert_requests(body: &Value<'_>) -> Result<Vec<CertRequest>, MessageError> {
    let messages = body.children()?.required("CertReqMessages")?;
    let mut list = messages.children()?;
    let mut requests = Vec::new();
    while let Some(message) = list.next_value()? {
        let mut m = message.children()?;
        let cert_req = m.required("certReq")?;
        let popo = m.next_value()?.filter(|v| v.tag & 0xe0 == 0x80 || v.tag & 0xe0 == 0xa0);
        let mut r = cert_req.children()?;
        let id = signed_int(&r.required("certReqId")?)?;
        let template = r.required("certTemplate")?;
        let mut name = x509::NameInfo::default();
        let mut alt_names = x509::AltNames::default();
        let mut spki = None;
        let mut fields = template.children()?;
        while let Some(field) = fields.next_value()? {
            match field.tag {
                0xa5 => name = x509::read_name(&field.children()?.required("subject")?)?,
                0xa6 => spki = Some(asn1::tlv(tag::SEQUENCE, field.content)),
                0xa9 => alt_names = x509::alt_names_in_extensions(&field)?.unwrap_or_default(),
                _ => {}
            }
        }
        let spki = spki.ok_or_else(|| {
            PkiError::Invalid(
                "the certificate template has no public key (central key generation is not offered)".into(),
            )
        })?;
        let key = PublicKey::from_spki(&spki)?;
        match popo {
            Some(p) if p.tag == 0xa1 => {
                let mut s = p.children()?;
                let mut first = s.required("algorithmIdentifier")?;
                if first.tag == tag::explicit(0) {
                    return Err(PkiError::Unsupported(
                        "proof of possession with poposkInput (a template without a subject)".into(),
                    )
                    .into());
                }
                if first.tag != tag::SEQUENCE {
                    first = s.required("algorithmIdentifier")?;
                }
                let algorithm = first.children()?.required("algorithm")?.oid()?;
                let signature = s.required("signature")?.bit_string_bytes()?;
                key.verify(&algorithm, cert_req.raw, &signature, "proof of possession")?;
            }
            _ => {
                return Err(PkiError::BadSignature(
                    "proof of possession (a signature by the requested key is required)".into(),
                )
                .into());
            }
        }
        requests.push(CertRequest { id, facts: DeviceFacts::from_parts(name, alt_names), spki });
    }
    if requests.is_empty() {
        return Err(PkiError::Invalid("no certificate request in the message".into()).into());
    }
    Ok(requests)
}

fn read_cert_conf(body: &Value<'_>) -> Result<Vec<CertStatus>, MessageError> {
    let content = body.children()?.required("CertConfirmContent")?;
    let mut list = content.children()?;
    let mut statuses = Vec::new();
    while let Some(status) = list.next_value()? {
        let mut s = status.children()?;
        let cert_hash = s.required("certHash")?.octet_string()?.into_owned();
        let cert_req_id = signed_int(&s.required("certReqId")?)?;
        let mut accepted = true;
        let mut hash_alg = None;
        while let Some(field) = s.next_value()? {
            if field.tag == tag::SEQUENCE {
                let code = field.children()?.required("status")?.small_uint()?;
                accepted = code <= 1;
            } else if field.tag == tag::explicit(0) {
                hash_alg = Some(field.children()?.required("hashAlg")?.children()?.required("algorithm")?.oid()?);
            }
        }
        statuses.push(CertStatus { cert_hash, cert_req_id, accepted, hash_alg });
    }
    Ok(statuses)
}

// ------------------------------------------------------------------ writing

/// PKIStatusInfo: status, statusString, failInfo.
pub fn status_info(status: u64, text: Option<&str>, fail: Option<FailInfo>) -> Vec<u8> {
    let mut parts = vec![asn1::small(status)];
    if let Some(text) = text {
        parts.push(asn1::seq(&[&asn1::utf8(text)]));
    }
    if let Some(fail) = fail {
        parts.push(fail_info_bits(fail as u8));
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    asn1::seq(&refs)
}

/// A named-bit BIT STRING with one bit set, in DER (no trailing zero bits).
fn fail_info_bits(bit: u8) -> Vec<u8> {
    let bytes = usize::from(bit / 8) + 1;
    let mut content = vec![0u8; bytes + 1];
    content[0] = 7 - (bit % 8);
    content[bytes] = 0x80 >> (bit % 8);
    asn1::tlv(tag::BIT_STRING, &content)
}

/// CertRepMessage (the body of `ip` or `cp`): the CA certificate in caPubs
/// when a certificate is issued, and one CertResponse.
pub fn cert_rep(body_tag: u8, cert_req_id: i64, status: &[u8], issued: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let id = if cert_req_id < 0 { vec![tag::INTEGER, 1, 0xff] } else { asn1::small(cert_req_id.unsigned_abs()) };
    let mut response_parts: Vec<Vec<u8>> = vec![id, status.to_vec()];
    let mut content: Vec<Vec<u8>> = Vec::new();
    if let Some((cert, ca)) = issued {
        response_parts.push(asn1::seq(&[&asn1::constructed(tag::explicit(0), &[cert])]));
        content.push(asn1::constructed(tag::explicit(1), &[&asn1::seq(&[ca])]));
    }
    let refs: Vec<&[u8]> = response_parts.iter().map(Vec::as_slice).collect();
    content.push(asn1::seq(&[&asn1::seq(&refs)]));
    let refs: Vec<&[u8]> = content.iter().map(Vec::as_slice).collect();
    asn1::constructed(body_tag, &[&asn1::seq(&refs)])
}

/// An `error` body.
pub fn error_body(status: &[u8]) -> Vec<u8> {
    asn1::constructed(body_tag::ERROR, &[&asn1::seq(&[status])])
}

/// A `pkiConf` body.
pub fn pki_conf_body() -> Vec<u8> {
    asn1::constructed(body_tag::PKI_CONF, &[&asn1::null()])
}

/// The header of a message prereg writes (a response; the tests build requests with it too).
#[derive(Debug, Clone)]
pub struct Header {
    /// pvno, as the request's.
    pub pvno: u64,
    /// The CA's name (a directoryName GeneralName, DER).
    pub sender: Vec<u8>,
    /// The requester (its sender GeneralName, DER).
    pub recipient: Vec<u8>,
    /// protectionAlg (DER), when the response is protected.
    pub protection_alg: Option<Vec<u8>>,
    /// senderKID (the request's).
    pub sender_kid: Option<Vec<u8>>,
    /// transactionID (the request's).
    pub transaction_id: Option<Vec<u8>>,
    /// recipNonce (the request's senderNonce).
    pub recip_nonce: Option<Vec<u8>>,
    /// Grants implicit confirmation.
    pub implicit_confirm: bool,
    /// messageTime, Unix seconds.
    pub now: u64,
}

impl Header {
    /// The DER PKIHeader, with a fresh senderNonce.
    pub fn encode(&self) -> Vec<u8> {
        use rand_core::RngCore;
        let mut nonce = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let explicit = |n: u8, inner: &[u8]| asn1::constructed(tag::explicit(n), &[inner]);
        let mut parts: Vec<Vec<u8>> = vec![asn1::small(self.pvno), self.sender.clone(), self.recipient.clone()];
        parts.push(explicit(0, &asn1::generalized_time(self.now)));
        if let Some(alg) = &self.protection_alg {
            parts.push(explicit(1, alg));
        }
        if let Some(kid) = &self.sender_kid {
            parts.push(explicit(2, &asn1::octet_string(kid)));
        }
        if let Some(tid) = &self.transaction_id {
            parts.push(explicit(4, &asn1::octet_string(tid)));
        }
        parts.push(explicit(5, &asn1::octet_string(&nonce)));
        if let Some(n) = &self.recip_nonce {
            parts.push(explicit(6, &asn1::octet_string(n)));
        }
        if self.implicit_confirm {
            parts.push(explicit(8, &asn1::seq(&[&asn1::seq(&[&asn1::oid(IMPLICIT_CONFIRM), &asn1::null()])])));
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        asn1::seq(&refs)
    }
}

/// A directoryName GeneralName for a DER Name.
pub fn directory_name(name: &[u8]) -> Vec<u8> {
    asn1::constructed(tag::explicit(4), &[name])
}

/// Computes the protection of a protected part.
pub type MacFn<'a> = dyn Fn(&[u8]) -> Vec<u8> + 'a;

/// A whole PKIMessage: header, body and, if `protect` gives one, the MAC of
/// both.
pub fn encode(header: &[u8], body: &[u8], protect: Option<&MacFn<'_>>) -> Vec<u8> {
    match protect {
        Some(mac) => {
            let protected_part = asn1::seq(&[header, body]);
            let tag_bits = mac(&protected_part);
            asn1::seq(&[header, body, &asn1::constructed(tag::explicit(0), &[&asn1::bit_string(&tag_bits)])])
        }
        None => asn1::seq(&[header, body]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_info_is_minimal_der() {
        // notAuthorized is bit 23: three octets, last bit of the third.
        assert_eq!(fail_info_bits(23), vec![0x03, 0x04, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(fail_info_bits(2), vec![0x03, 0x02, 0x05, 0x20]);
        assert_eq!(fail_info_bits(1), vec![0x03, 0x02, 0x06, 0x40]);
    }

    #[test]
    fn refusals_are_told_from_issues() {
        let name = directory_name(&crate::x509::write_name(&[]));
        let header = Header {
            pvno: 2,
            sender: name.clone(),
            recipient: name,
            protection_alg: None,
            sender_kid: None,
            transaction_id: Some(vec![1; 16]),
            recip_nonce: None,
            implicit_confirm: false,
            now: 1_800_000_000,
        }
        .encode();
        let rejected = status_info(2, Some("not-authorized"), Some(FailInfo::NotAuthorized));
        let accepted = status_info(0, None, None);
        assert!(is_refusal(&encode(&header, &cert_rep(body_tag::IP, 0, &rejected, None), None)));
        assert!(is_refusal(&encode(&header, &error_body(&rejected), None)));
        assert!(!is_refusal(&encode(
            &header,
            &cert_rep(body_tag::CP, 0, &accepted, Some((b"\x30\x00", b"\x30\x00"))),
            None
        )));
        assert!(!is_refusal(&encode(&header, &pki_conf_body(), None)));
        assert!(!is_refusal(b"garbage"));
    }
}
