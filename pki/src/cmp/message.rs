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
    /// Key update request.
    pub const KUR: u8 = 0xa7;
    /// Key update response.
    pub const KUP: u8 = 0xa8;
    /// Revocation request.
    pub const RR: u8 = 0xab;
    /// Revocation response.
    pub const RP: u8 = 0xac;
    /// Confirmation.
    pub const PKI_CONF: u8 = 0xb3;
    /// General message.
    pub const GENM: u8 = 0xb5;
    /// General response.
    pub const GENP: u8 = 0xb6;
    /// Error.
    pub const ERROR: u8 = 0xb7;
    /// Certificate confirmation.
    pub const CERT_CONF: u8 = 0xb8;
}

/// Whether a response (a PKIMessage this server wrote) refuses: an `error`,
/// or an `ip`/`cp` whose first response has status rejection (2). What the
/// service counts as a failed attempt of the client's address.
pub fn is_refusal(response: &[u8]) -> bool {
    match first_status(response) {
        Some((body_tag::ERROR, _)) => true,
        Some((_, status)) => status == Some(2),
        None => false,
    }
}

/// A response's body tag, and for an `ip`, `cp` or `kup` the PKIStatus of
/// its first CertResponse (0 accepted, 1 grantedWithMods, 2 rejection, ...);
/// `None` if it cannot be read.
pub fn first_status(response: &[u8]) -> Option<(u8, Option<u64>)> {
    let message = asn1::parse(response).ok()?;
    let mut parts = message.children().ok()?;
    parts.required("header").ok()?;
    let body = parts.required("body").ok()?;
    if !matches!(body.tag, body_tag::IP | body_tag::CP | body_tag::KUP) {
        return Some((body.tag, None));
    }
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
    Some((body.tag, Some(code)))
}

/// PKIFailureInfo bits (RFC 4210 §5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// badAlg (0): an unrecognized or unsupported algorithm.
    BadAlg = 0,
    /// badMessageCheck (1): the protection did not verify.
    BadMessageCheck = 1,
    /// badRequest (2): not permitted or not supported.
    BadRequest = 2,
    /// badTime (3): messageTime is too far from the server's clock.
    BadTime = 3,
    /// badCertId (4): no certificate matches what was named.
    BadCertId = 4,
    /// badDataFormat (5): the data is not well-formed.
    BadDataFormat = 5,
    /// badPOP (9): the proof of possession failed.
    BadPop = 9,
    /// certRevoked (10): the certificate is revoked already.
    CertRevoked = 10,
    /// certConfirmed (11): the certificate was confirmed already.
    CertConfirmed = 11,
    /// wrongIntegrity (12): the wrong kind of protection.
    WrongIntegrity = 12,
    /// badRecipientNonce (13).
    BadRecipientNonce = 13,
    /// badSenderNonce (18).
    BadSenderNonce = 18,
    /// badCertTemplate (19).
    BadCertTemplate = 19,
    /// signerNotTrusted (20).
    SignerNotTrusted = 20,
    /// transactionIdInUse (21).
    TransactionIdInUse = 21,
    /// unsupportedVersion (22).
    UnsupportedVersion = 22,
    /// notAuthorized (23).
    NotAuthorized = 23,
    /// systemFailure (25).
    SystemFailure = 25,
}

impl FailInfo {
    /// Its name in RFC 4210, as clients print it.
    pub fn name(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadMessageCheck => "badMessageCheck",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadTime => "badTime",
            FailInfo::BadCertId => "badCertId",
            FailInfo::BadDataFormat => "badDataFormat",
            FailInfo::BadPop => "badPOP",
            FailInfo::CertRevoked => "certRevoked",
            FailInfo::CertConfirmed => "certConfirmed",
            FailInfo::WrongIntegrity => "wrongIntegrity",
            FailInfo::BadRecipientNonce => "badRecipientNonce",
            FailInfo::BadSenderNonce => "badSenderNonce",
            FailInfo::BadCertTemplate => "badCertTemplate",
            FailInfo::SignerNotTrusted => "signerNotTrusted",
            FailInfo::TransactionIdInUse => "transactionIdInUse",
            FailInfo::UnsupportedVersion => "unsupportedVersion",
            FailInfo::NotAuthorized => "notAuthorized",
            FailInfo::SystemFailure => "systemFailure",
        }
    }

    /// The failInfo for a certificate request or key prereg cannot use.
    pub fn of(error: &PkiError) -> FailInfo {
        match error {
            PkiError::Malformed { .. } => FailInfo::BadDataFormat,
            PkiError::Unsupported(_) => FailInfo::BadAlg,
            PkiError::KeySize(_) | PkiError::Invalid(_) => FailInfo::BadCertTemplate,
            PkiError::BadSignature(_) => FailInfo::BadPop,
            PkiError::File { .. } => FailInfo::SystemFailure,
        }
    }
}

/// A message that is not a CMP message prereg can read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not the ASN.1 of a PKIMessage.
    #[error("not a CMP message: {0}")]
    Asn1(#[from] Asn1Error),
    /// A certificate request that cannot be used.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What is wrong with a body's content, and the failInfo that says so. A
/// server reads it before the message's protection is verified and answers
/// it only after, in a protected response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentFault {
    /// The failInfo bit.
    pub fail: FailInfo,
    /// What is wrong, for the statusString.
    pub text: String,
}

impl ContentFault {
    fn new(fail: FailInfo, text: impl Into<String>) -> Self {
        ContentFault { fail, text: text.into() }
    }
}

impl From<PkiError> for ContentFault {
    fn from(e: PkiError) -> Self {
        ContentFault { fail: FailInfo::of(&e), text: e.to_string() }
    }
}

impl From<Asn1Error> for ContentFault {
    fn from(e: Asn1Error) -> Self {
        ContentFault { fail: FailInfo::BadDataFormat, text: e.to_string() }
    }
}

/// One certificate request of an `ir`, `cr` or `kur`, or the CSR of a `p10cr`.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// certReqId (-1 for a `p10cr`).
    pub id: i64,
    /// Name, IP and serial from the template's subject and SAN.
    pub facts: DeviceFacts,
    /// The template's public key (DER SubjectPublicKeyInfo; empty if none).
    pub spki: Vec<u8>,
    /// Why the request cannot be served (bad proof of possession, key,
    /// template), found while reading it; `None` if it can be.
    pub fault: Option<ContentFault>,
}

/// One entry of a `certConf`.
#[derive(Debug, Clone)]
pub struct CertStatus {
    /// The hash of the certificate it confirms.
    pub cert_hash: Vec<u8>,
    /// Its certReqId.
    pub cert_req_id: i64,
    /// The client's PKIStatus, if it gives one (0 accepted, 2 rejection).
    pub status: Option<u64>,
    /// Whether its statusInfo carries a failInfo.
    pub has_fail_info: bool,
    /// hashAlg, when the client names it (CMP v3).
    pub hash_alg: Option<String>,
}

impl CertStatus {
    /// Whether the client accepts the certificate (no status, or status 0/1).
    pub fn accepted(&self) -> bool {
        self.status.is_none_or(|s| s <= 1)
    }
}

/// A request body. Each readable body keeps, rather than fails on, what is
/// wrong with its content ([`ContentFault`]).
#[derive(Debug, Clone)]
pub enum Body {
    /// `ir`
    Ir(Result<Vec<CertRequest>, ContentFault>),
    /// `cr`
    Cr(Result<Vec<CertRequest>, ContentFault>),
    /// `p10cr`
    P10cr(Result<CertRequest, ContentFault>),
    /// `kur`
    Kur(Result<Vec<CertRequest>, ContentFault>),
    /// `certConf`
    CertConf(Result<Vec<CertStatus>, ContentFault>),
    /// `rr`
    Rr(Result<Vec<RevDetails>, ContentFault>),
    /// `genm`
    Genm(Result<Vec<InfoTypeAndValue>, ContentFault>),
    /// Any other body (its tag).
    Other(u8),
}

/// One entry of an `rr`: the certificate to revoke, and why.
#[derive(Debug, Clone)]
pub struct RevDetails {
    /// The issuer named in the template (a DER Name), if any.
    pub issuer: Option<Vec<u8>>,
    /// The serial number named in the template (the INTEGER's content octets).
    pub serial: Option<Vec<u8>>,
    /// The CRL reason code asked for (crlEntryDetails), if any.
    pub reason: Option<u8>,
}

/// One InfoTypeAndValue of a `genm` or `genp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoTypeAndValue {
    /// infoType (dotted OID).
    pub kind: String,
    /// infoValue (DER), if present.
    pub value: Option<Vec<u8>>,
}

impl Body {
    /// The body's name, for messages and the audit log.
    pub fn name(&self) -> String {
        match self {
            Body::Ir(_) => "ir".into(),
            Body::Cr(_) => "cr".into(),
            Body::P10cr(_) => "p10cr".into(),
            Body::Kur(_) => "kur".into(),
            Body::CertConf(_) => "certConf".into(),
            Body::Rr(_) => "rr".into(),
            Body::Genm(_) => "genm".into(),
            Body::Other(t) => name_of_tag(*t).map_or_else(|| format!("body [{}]", t & 0x1f), str::to_owned),
        }
    }

    /// Whether the body starts a transaction (every request but `certConf`,
    /// `pollReq` and the like that continue one).
    pub fn is_first(&self) -> bool {
        !matches!(self, Body::CertConf(_)) && !matches!(self, Body::Other(t) if *t == POLL_REQ || *t == PKI_CONF_TAG)
    }

    /// Whether the body requests a certificate (`ir`, `cr`, `p10cr`, `kur`).
    pub fn requests_a_certificate(&self) -> bool {
        matches!(self, Body::Ir(_) | Body::Cr(_) | Body::P10cr(_) | Body::Kur(_))
    }
}

const POLL_REQ: u8 = 0xb9;
const PKI_CONF_TAG: u8 = body_tag::PKI_CONF;

/// RFC 4210's name of a body tag.
fn name_of_tag(tag: u8) -> Option<&'static str> {
    const NAMES: [&str; 27] = [
        "ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr", "krp", "rr", "rp", "ccr", "ccp",
        "ckuann", "cann", "rann", "crlann", "pkiconf", "nested", "genm", "genp", "error", "certConf", "pollReq",
        "pollRep",
    ];
    NAMES.get(usize::from(tag & 0x1f)).copied().filter(|_| tag & 0xe0 == 0xa0)
}

/// id-it-confirmWaitTime
pub const CONFIRM_WAIT_TIME: &str = "1.3.6.1.5.5.7.4.14";

/// A received PKIMessage.
#[derive(Debug, Clone)]
pub struct Request {
    /// pvno (RFC 4210: 2; RFC 9480: 3).
    pub pvno: u64,
    /// sender (GeneralName, as encoded).
    pub sender: Vec<u8>,
    /// messageTime, Unix seconds, if present.
    pub message_time: Option<u64>,
    /// protectionAlg (AlgorithmIdentifier, as encoded), if protected.
    pub protection_alg: Option<Vec<u8>>,
    /// senderKID.
    pub sender_kid: Option<Vec<u8>>,
    /// transactionID.
    pub transaction_id: Option<Vec<u8>>,
    /// senderNonce.
    pub sender_nonce: Option<Vec<u8>>,
    /// recipNonce.
    pub recip_nonce: Option<Vec<u8>>,
    /// Whether generalInfo asks for implicit confirmation.
    pub implicit_confirm: bool,
    /// What is wrong in generalInfo (an implicitConfirm value that is not
    /// NULL, a confirmWaitTime that is not a GeneralizedTime), if anything.
    pub general_info_fault: Option<String>,
    /// The body.
    pub body: Body,
    /// DER of `SEQUENCE { header, body }`, what the protection covers.
    pub protected_part: Vec<u8>,
    /// The protection (MAC) bits.
    pub protection: Option<Vec<u8>>,
    /// extraCerts (DER certificates), as sent.
    pub extra_certs: Vec<Vec<u8>>,
}

/// Largest request accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Reads a PKIMessage (BER accepted). Fails only if the message or its
/// header cannot be read; what is wrong in the body's content is kept in
/// the [`Body`].
pub fn read(der: &[u8]) -> Result<Request, MessageError> {
    let message = asn1::parse(der)?.expect(tag::SEQUENCE, "PKIMessage")?;
    let mut parts = message.children()?;
    let header = parts.required("header")?.expect(tag::SEQUENCE, "PKIHeader")?;
    let body = parts.required("body")?;
    if body.tag & 0xe0 != 0xa0 {
        return Err(Asn1Error { offset: body.offset, message: "the body is not a tagged PKIBody".into() }.into());
    }
    let mut protection = None;
    let mut extra_certs = Vec::new();
    while let Some(field) = parts.next_value()? {
        match field.tag {
            t if t == tag::explicit(0) => {
                protection = Some(field.children()?.required("protection")?.bit_string_bytes()?.into_owned());
            }
            t if t == tag::explicit(1) => {
                let mut list = field.children()?.required("extraCerts")?.children()?;
                while let Some(cert) = list.next_value()? {
                    extra_certs.push(cert.raw.to_vec());
                }
            }
            _ => {
                return Err(
                    Asn1Error { offset: field.offset, message: "unexpected field after the body".into() }.into()
                );
            }
        }
    }

    let mut h = header.children()?;
    let pvno = h.required("pvno")?.small_uint()?;
    let sender = h.required("sender")?.raw.to_vec();
    h.required("recipient")?;
    let mut request = Request {
        pvno,
        sender,
        message_time: None,
        protection_alg: None,
        sender_kid: None,
        transaction_id: None,
        sender_nonce: None,
        recip_nonce: None,
        implicit_confirm: false,
        general_info_fault: None,
        body: Body::Other(body.tag),
        protected_part: asn1::seq(&[header.raw, body.raw]),
        protection,
        extra_certs,
    };
    while let Some(field) = h.next_value()? {
        let inner = || -> Result<Value<'_>, Asn1Error> { field.children()?.required("header field") };
        match field.tag {
            t if t == tag::explicit(0) => {
                let time = inner()?.expect(tag::GENERALIZED_TIME, "messageTime")?;
                request.message_time = Some(asn1::parse_time(&time)?);
            }
            t if t == tag::explicit(1) => request.protection_alg = Some(inner()?.raw.to_vec()),
            t if t == tag::explicit(2) => request.sender_kid = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(4) => request.transaction_id = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(5) => request.sender_nonce = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(6) => request.recip_nonce = Some(inner()?.octet_string()?.into_owned()),
            t if t == tag::explicit(8) => {
                let mut infos = inner()?.children()?;
                while let Some(info) = infos.next_value()? {
                    let mut parts = info.children()?;
                    let kind = parts.required("infoType")?.oid()?;
                    let value = parts.next_value()?;
                    match kind.as_str() {
                        IMPLICIT_CONFIRM => match value {
                            None => request.implicit_confirm = true,
                            Some(v) if v.tag == tag::NULL && v.content.is_empty() => request.implicit_confirm = true,
                            Some(_) => {
                                request.general_info_fault = Some("the implicitConfirm value must be NULL".into());
                            }
                        },
                        CONFIRM_WAIT_TIME => {
                            let ok = value
                                .filter(|v| v.tag == tag::GENERALIZED_TIME)
                                .is_some_and(|v| asn1::parse_time(&v).is_ok());
                            if !ok {
                                request.general_info_fault =
                                    Some("the confirmWaitTime value must be a GeneralizedTime".into());
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    request.body = match body.tag {
        body_tag::IR => Body::Ir(read_cert_requests(&body)),
        body_tag::CR => Body::Cr(read_cert_requests(&body)),
        body_tag::P10CR => Body::P10cr(read_p10(&body)),
        body_tag::KUR => Body::Kur(read_cert_requests(&body)),
        body_tag::CERT_CONF => Body::CertConf(read_cert_conf(&body).map_err(ContentFault::from)),
        body_tag::RR => Body::Rr(read_rev_details(&body).map_err(ContentFault::from)),
        body_tag::GENM => Body::Genm(read_infos(&body).map_err(ContentFault::from)),
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

/// A `p10cr`'s CSR: its facts, and its signature checked (a bad one is the
/// request's fault, `badPOP`).
fn read_p10(body: &Value<'_>) -> Result<CertRequest, ContentFault> {
    let value = body.children()?.required("CertificationRequest")?;
    let unverified = csr::parse_value(&value)?;
    let fault = unverified.verify().err().map(|e| match e {
        PkiError::BadSignature(_) => ContentFault::new(FailInfo::BadPop, "the PKCS#10 signature does not verify"),
        other => ContentFault::from(other),
    });
    Ok(CertRequest { id: -1, facts: unverified.csr.facts, spki: unverified.csr.spki, fault })
}

/// CertReqMessages: each request's template, with its proof of possession
/// checked (a signature by the template's key over the CertRequest).
fn read_cert_requests(body: &Value<'_>) -> Result<Vec<CertRequest>, ContentFault> {
    let messages = body.children()?.required("CertReqMessages")?;
    let mut list = messages.children()?;
    let mut requests = Vec::new();
    while let Some(message) = list.next_value()? {
        requests.push(read_cert_req_msg(&message)?);
    }
    if requests.is_empty() {
        return Err(ContentFault::new(FailInfo::BadDataFormat, "no certificate request in the message"));
    }
    Ok(requests)
}

fn read_cert_req_msg(message: &Value<'_>) -> Result<CertRequest, ContentFault> {
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
    let mut fault = None;
    while let Some(field) = fields.next_value()? {
        match field.tag {
            0xa5 => name = x509::read_name(&field.children()?.required("subject")?)?,
            0xa6 => spki = Some(asn1::tlv(tag::SEQUENCE, field.content)),
            0xa9 => match x509::alt_names_in_extensions(&field) {
                Ok(names) => alt_names = names.unwrap_or_default(),
                Err(e) => fault = Some(ContentFault::new(FailInfo::BadCertTemplate, e.to_string())),
            },
            _ => {}
        }
    }
    let facts = DeviceFacts::from_parts(name, alt_names);
    let Some(spki) = spki else {
        let fault = ContentFault::new(
            FailInfo::BadCertTemplate,
            "the certificate template has no public key (central key generation is not offered)",
        );
        return Ok(CertRequest { id, facts, spki: Vec::new(), fault: Some(fault) });
    };
    let fault = fault.or_else(|| proof_of_possession(&spki, cert_req.raw, popo.as_ref()).err());
    Ok(CertRequest { id, facts, spki, fault })
}

/// Checks a signature proof of possession (POPOSigningKey over the
/// CertRequest, RFC 4211 §4.1) by the template's key.
fn proof_of_possession(spki: &[u8], cert_req: &[u8], popo: Option<&Value<'_>>) -> Result<(), ContentFault> {
    let key = PublicKey::from_spki(spki)?;
    let bad_pop = |text: &str| ContentFault::new(FailInfo::BadPop, text);
    let Some(p) = popo.filter(|p| p.tag == 0xa1) else {
        return Err(bad_pop("proof of possession: a signature by the requested key is required"));
    };
    let mut s = p.children()?;
    let mut first = s.required("algorithmIdentifier")?;
    if first.tag == tag::explicit(0) {
        return Err(bad_pop("proof of possession with poposkInput (a template without a subject) is not supported"));
    }
    if first.tag != tag::SEQUENCE {
        first = s.required("algorithmIdentifier")?;
    }
    let algorithm = first.children()?.required("algorithm")?.oid()?;
    let signature = s.required("signature")?.bit_string_bytes()?;
    key.verify(&algorithm, cert_req, &signature, "proof of possession").map_err(ContentFault::from)
}

/// id-ce-cRLReasons
const CRL_REASON: &str = "2.5.29.21";

fn read_rev_details(body: &Value<'_>) -> Result<Vec<RevDetails>, Asn1Error> {
    let content = body.children()?.required("RevReqContent")?;
    let mut list = content.children()?;
    let mut details = Vec::new();
    while let Some(entry) = list.next_value()? {
        let mut parts = entry.children()?;
        let template = parts.required("certDetails")?;
        let mut found = RevDetails { issuer: None, serial: None, reason: None };
        let mut fields = template.children()?;
        while let Some(field) = fields.next_value()? {
            match field.tag {
                // serialNumber [1] IMPLICIT INTEGER
                0x81 => found.serial = Some(field.content.to_vec()),
                // issuer [3] EXPLICIT Name
                0xa3 => found.issuer = Some(field.children()?.required("issuer")?.raw.to_vec()),
                _ => {}
            }
        }
        if let Some(extensions) = parts.optional(tag::SEQUENCE)? {
            let mut list = extensions.children()?;
            while let Some(extension) = list.next_value()? {
                let mut e = extension.children()?;
                if e.required("extnID")?.oid()? != CRL_REASON {
                    continue;
                }
                let mut value = e.required("extnValue")?;
                if value.tag == tag::BOOLEAN {
                    value = e.required("extnValue")?;
                }
                let octets = value.octet_string()?;
                let inner = asn1::parse(&octets)?.expect(tag::ENUMERATED, "CRLReason")?;
                found.reason = inner.content.first().copied();
            }
        }
        details.push(found);
    }
    Ok(details)
}

fn read_infos(body: &Value<'_>) -> Result<Vec<InfoTypeAndValue>, Asn1Error> {
    let content = body.children()?.required("GenMsgContent")?;
    let mut list = content.children()?;
    let mut infos = Vec::new();
    while let Some(info) = list.next_value()? {
        let mut parts = info.children()?;
        let kind = parts.required("infoType")?.oid()?;
        let value = parts.next_value()?.map(|v| v.raw.to_vec());
        infos.push(InfoTypeAndValue { kind, value });
    }
    Ok(infos)
}

fn read_cert_conf(body: &Value<'_>) -> Result<Vec<CertStatus>, Asn1Error> {
    let content = body.children()?.required("CertConfirmContent")?;
    let mut list = content.children()?;
    let mut statuses = Vec::new();
    while let Some(status) = list.next_value()? {
        let mut s = status.children()?;
        let cert_hash = s.required("certHash")?.octet_string()?.into_owned();
        let cert_req_id = signed_int(&s.required("certReqId")?)?;
        let mut code = None;
        let mut has_fail_info = false;
        let mut hash_alg = None;
        while let Some(field) = s.next_value()? {
            if field.tag == tag::SEQUENCE {
                let mut info = field.children()?;
                code = Some(info.required("status")?.small_uint()?);
                while let Some(part) = info.next_value()? {
                    // failInfo, a named-bit BIT STRING (its first octet counts unused bits).
                    if part.tag == tag::BIT_STRING {
                        has_fail_info = part.content.iter().skip(1).any(|b| *b != 0);
                    }
                }
            } else if field.tag == tag::explicit(0) {
                hash_alg = Some(field.children()?.required("hashAlg")?.children()?.required("algorithm")?.oid()?);
            }
        }
        statuses.push(CertStatus { cert_hash, cert_req_id, status: code, has_fail_info, hash_alg });
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

/// An `rp` body: one PKIStatusInfo for the one RevDetails of the `rr`.
pub fn rev_rep(status: &[u8]) -> Vec<u8> {
    asn1::constructed(body_tag::RP, &[&asn1::seq(&[&asn1::seq(&[status])])])
}

/// A `genp` body.
pub fn genp_body(infos: &[InfoTypeAndValue]) -> Vec<u8> {
    let entries: Vec<Vec<u8>> = infos
        .iter()
        .map(|i| match &i.value {
            Some(value) => asn1::seq(&[&asn1::oid(&i.kind), value]),
            None => asn1::seq(&[&asn1::oid(&i.kind)]),
        })
        .collect();
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    asn1::constructed(body_tag::GENP, &[&asn1::seq(&refs)])
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
    /// senderNonce; `None`: a fresh one ([`fresh_nonce`]).
    pub sender_nonce: Option<Vec<u8>>,
    /// recipNonce (the request's senderNonce).
    pub recip_nonce: Option<Vec<u8>>,
    /// Grants implicit confirmation.
    pub implicit_confirm: bool,
    /// messageTime, Unix seconds.
    pub now: u64,
}

impl Header {
    /// The DER PKIHeader.
    pub fn encode(&self) -> Vec<u8> {
        let nonce = self.sender_nonce.clone().unwrap_or_else(fresh_nonce);
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

/// 128 random bits, for a senderNonce or a transactionID (RFC 9483 §3.1).
pub fn fresh_nonce() -> Vec<u8> {
    use rand_core::RngCore;
    let mut nonce = vec![0u8; 16];
    rand_core::OsRng.fill_bytes(&mut nonce);
    nonce
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
    encode_with_certs(header, body, protect, &[])
}

/// [`encode`] with extraCerts (the signer's certificate first, for a
/// signature-protected message).
pub fn encode_with_certs(header: &[u8], body: &[u8], protect: Option<&MacFn<'_>>, extra_certs: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = vec![header.to_vec(), body.to_vec()];
    if let Some(compute) = protect {
        let protected_part = asn1::seq(&[header, body]);
        let bits = compute(&protected_part);
        parts.push(asn1::constructed(tag::explicit(0), &[&asn1::bit_string(&bits)]));
    }
    if !extra_certs.is_empty() {
        parts.push(asn1::constructed(tag::explicit(1), &[&asn1::seq(extra_certs)]));
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    asn1::seq(&refs)
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
            sender_nonce: None,
            recip_nonce: None,
            implicit_confirm: false,
            now: 1_800_000_000,
        }
        .encode();
        let rejected = status_info(2, Some("not-authorized"), Some(FailInfo::NotAuthorized));
        let accepted = status_info(0, None, None);
        assert!(is_refusal(&encode(&header, &cert_rep(body_tag::IP, 0, &rejected, None), None)));
        assert!(is_refusal(&encode(&header, &cert_rep(body_tag::KUP, 0, &rejected, None), None)));
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
