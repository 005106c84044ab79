//! The CMS (PKCS#7) that SCEP wraps its messages in: SignedData (verified,
//! and written for responses), EnvelopedData with RSA key transport
//! (decrypted with the RA key, and written to the requester), and
//! certs-only SignedData.
//!
//! Content encryption: DES-CBC, 3DES-CBC, AES-128/192/256-CBC.

use std::collections::HashMap;

use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};

use crate::asn1::{self, Value, tag};
use crate::errors::{Context, PkiError};
use crate::keys::{DigestAlg, SigningKey};
use crate::x509::Certificate;

/// pkcs7-data
pub const DATA: &str = "1.2.840.113549.1.7.1";
/// pkcs7-signedData
pub const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
/// pkcs7-envelopedData
pub const ENVELOPED_DATA: &str = "1.2.840.113549.1.7.3";
/// contentType attribute
const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
/// messageDigest attribute
const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// signingTime attribute
const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";

/// Most key-transport recipients tried in one message.
const MAX_RECIPIENTS_TRIED: usize = 4;

/// A content-encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// DES-CBC (what micromdm's scepclient uses; weak, accepted for compatibility).
    Des,
    /// 3DES-CBC
    Des3,
    /// AES-128-CBC
    Aes128,
    /// AES-192-CBC
    Aes192,
    /// AES-256-CBC
    Aes256,
}

impl Cipher {
    fn from_oid(dotted: &str) -> Option<Self> {
        match dotted {
            "1.3.14.3.2.7" => Some(Cipher::Des),
            "1.2.840.113549.3.7" => Some(Cipher::Des3),
            "2.16.840.1.101.3.4.1.2" => Some(Cipher::Aes128),
            "2.16.840.1.101.3.4.1.22" => Some(Cipher::Aes192),
            "2.16.840.1.101.3.4.1.42" => Some(Cipher::Aes256),
            _ => None,
        }
    }

    fn oid(self) -> &'static str {
        match self {
            Cipher::Des => "1.3.14.3.2.7",
            Cipher::Des3 => "1.2.840.113549.3.7",
            Cipher::Aes128 => "2.16.840.1.101.3.4.1.2",
            Cipher::Aes192 => "2.16.840.1.101.3.4.1.22",
            Cipher::Aes256 => "2.16.840.1.101.3.4.1.42",
        }
    }

    fn key_len(self) -> usize {
        match self {
            Cipher::Des => 8,
            Cipher::Des3 | Cipher::Aes192 => 24,
            Cipher::Aes128 => 16,
            Cipher::Aes256 => 32,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Cipher::Des | Cipher::Des3 => 8,
            _ => 16,
        }
    }

    fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn run<C: KeyIvInit + BlockDecryptMut>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            C::new_from_slices(key, iv).ok()?.decrypt_padded_vec_mut::<Pkcs7>(data).ok()
        }
        match self {
            Cipher::Des => run::<cbc::Decryptor<des::Des>>(key, iv, data),
            Cipher::Des3 => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, data),
            Cipher::Aes128 => run::<cbc::Decryptor<aes::Aes128>>(key, iv, data),
            Cipher::Aes192 => run::<cbc::Decryptor<aes::Aes192>>(key, iv, data),
            Cipher::Aes256 => run::<cbc::Decryptor<aes::Aes256>>(key, iv, data),
        }
    }

    fn encrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn run<C: KeyIvInit + BlockEncryptMut>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            Some(C::new_from_slices(key, iv).ok()?.encrypt_padded_vec_mut::<Pkcs7>(data))
        }
        match self {
            Cipher::Des => run::<cbc::Encryptor<des::Des>>(key, iv, data),
            Cipher::Des3 => run::<cbc::Encryptor<des::TdesEde3>>(key, iv, data),
            Cipher::Aes128 => run::<cbc::Encryptor<aes::Aes128>>(key, iv, data),
            Cipher::Aes192 => run::<cbc::Encryptor<aes::Aes192>>(key, iv, data),
            Cipher::Aes256 => run::<cbc::Encryptor<aes::Aes256>>(key, iv, data),
        }
    }
}

/// A SignedData as SCEP sends it: one signer, its certificate inside.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The encapsulated content (joined if sent in BER pieces).
    pub content: Option<Vec<u8>>,
    /// The certificates carried.
    pub certificates: Vec<Certificate>,
    /// Signed attributes by OID: the first value's encoding.
    pub attributes: HashMap<String, Vec<u8>>,
    /// The signer; `None` for a certs-only SignedData.
    signer: Option<Signer>,
}

/// The one SignerInfo SCEP uses.
#[derive(Debug, Clone)]
struct Signer {
    issuer: Vec<u8>,
    serial: Vec<u8>,
    digest: DigestAlg,
    /// The signed attributes as signed: a SET OF (tag 0x31).
    signed_attributes: Vec<u8>,
    signature: Vec<u8>,
}

fn unwrap_content_info<'a>(value: &Value<'a>, expected: &str) -> Result<Value<'a>, PkiError> {
    let what = "ContentInfo";
    let mut parts = value.children().reading(what)?;
    let kind = parts.required("contentType").and_then(|v| v.oid()).reading(what)?;
    if kind != expected {
        return Err(PkiError::Invalid(format!("a ContentInfo of type {kind} where {expected} was expected")));
    }
    parts.required("content").and_then(|v| v.children()?.required("content")).reading(what)
}

/// Reads a ContentInfo holding a SignedData.
pub fn read_signed(der: &[u8]) -> Result<Signed, PkiError> {
    let what = "SignedData";
    let outer = asn1::parse(der).reading("SCEP message")?;
    let signed = unwrap_content_info(&outer, SIGNED_DATA)?;
    let mut parts = signed.children().reading(what)?;
    parts.required("version").reading(what)?;
    parts.required("digestAlgorithms").reading(what)?;
    let encap = parts.required("encapContentInfo").reading(what)?;
    let mut encap_parts = encap.children().reading(what)?;
    encap_parts.required("eContentType").reading(what)?;
    let content = match encap_parts.optional(tag::explicit(0)).reading(what)? {
        Some(wrapper) => Some(
            wrapper.children().and_then(|mut c| c.required("eContent")?.octet_string()).reading(what)?.into_owned(),
        ),
        None => None,
    };
    let mut certificates = Vec::new();
    if let Some(certs) = parts.optional(tag::explicit(0)).reading(what)? {
        let mut list = certs.children().reading(what)?;
        while let Some(cert) = list.next_value().reading(what)? {
            certificates.push(Certificate::from_value(&cert)?);
        }
    }
    parts.optional(tag::explicit(1)).reading(what)?;
    let infos = parts.required("signerInfos").reading(what)?;
    let Some(info) = infos.children().and_then(|mut c| c.next_value()).reading(what)? else {
        return Ok(Signed { content, certificates, attributes: HashMap::new(), signer: None });
    };
    let mut s = info.children().reading("SignerInfo")?;
    s.required("version").reading("SignerInfo")?;
    let sid = s.required("sid").reading("SignerInfo")?;
    let mut sid_parts = sid.children().reading("SignerInfo issuerAndSerialNumber")?;
    let signer_issuer = sid_parts.required("issuer").reading("SignerInfo")?.raw.to_vec();
    let signer_serial = sid_parts.required("serialNumber").reading("SignerInfo")?.raw.to_vec();
    let digest_oid =
        s.required("digestAlgorithm").and_then(|v| v.children()?.required("algorithm")?.oid()).reading("SignerInfo")?;
    let digest = DigestAlg::from_oid(&digest_oid)
        .ok_or_else(|| PkiError::Unsupported(format!("SignerInfo digest algorithm {digest_oid}")))?;
    let attrs = s
        .optional(tag::explicit(0))
        .reading("SignerInfo")?
        .ok_or_else(|| PkiError::Invalid("the SignerInfo has no signed attributes (SCEP needs them)".into()))?;
    let mut attributes = HashMap::new();
    let mut list = attrs.children().reading("signed attributes")?;
    while let Some(attribute) = list.next_value().reading("signed attributes")? {
        let mut a = attribute.children().reading("signed attribute")?;
        let kind = a.required("type").and_then(|v| v.oid()).reading("signed attribute")?;
        let first = a.required("values").and_then(|v| v.children()?.required("value")).reading("signed attribute")?;
        attributes.insert(kind, first.raw.to_vec());
    }
    // The signature covers the attributes as a SET OF (tag 0x31), not as [0].
    let mut signed_attributes = attrs.raw.to_vec();
    if let Some(first) = signed_attributes.first_mut() {
        *first = tag::SET;
    }
    if attrs.indefinite() {
        return Err(PkiError::Unsupported("signed attributes with an indefinite length".into()));
    }
    s.required("signatureAlgorithm").reading("SignerInfo")?;
    let signature = s.required("signature").and_then(|v| v.octet_string()).reading("SignerInfo")?.into_owned();
    let signer = Signer { issuer: signer_issuer, serial: signer_serial, digest, signed_attributes, signature };
    Ok(Signed { content, certificates, attributes, signer: Some(signer) })
}

impl Signed {
    /// The signer's digest algorithm; `None` for a certs-only SignedData.
    pub fn digest(&self) -> Option<DigestAlg> {
        self.signer.as_ref().map(|s| s.digest)
    }

    /// Checks the signature with the signer's certificate (carried in the
    /// message) and the messageDigest against the content. Returns the signer.
    pub fn verify(&self) -> Result<&Certificate, PkiError> {
        let info = self.signer.as_ref().ok_or_else(|| PkiError::Invalid("the message has no signer".into()))?;
        let signer = self
            .certificates
            .iter()
            .find(|c| c.issuer == info.issuer && c.serial == info.serial)
            .ok_or_else(|| PkiError::Invalid("the signer's certificate is not in the message".into()))?;
        let digest = self
            .attribute_octets(MESSAGE_DIGEST)?
            .ok_or_else(|| PkiError::Invalid("no messageDigest attribute".into()))?;
        let content = self.content.as_deref().unwrap_or_default();
        if digest != info.digest.digest(content) {
            return Err(PkiError::BadSignature("SCEP message (messageDigest)".into()));
        }
        let key = signer.public_key()?;
        key.verify_digest(info.digest, &info.digest.digest(&info.signed_attributes), &info.signature, "SCEP message")?;
        Ok(signer)
    }

    /// A signed attribute's value as text (PrintableString and friends).
    pub fn attribute_text(&self, oid: &str) -> Result<Option<String>, PkiError> {
        match self.attributes.get(oid) {
            None => Ok(None),
            Some(raw) => asn1::parse(raw).and_then(|v| v.text()).map(Some).reading("signed attribute"),
        }
    }

    /// A signed attribute's value as octets.
    pub fn attribute_octets(&self, oid: &str) -> Result<Option<Vec<u8>>, PkiError> {
        match self.attributes.get(oid) {
            None => Ok(None),
            Some(raw) => asn1::parse(raw)
                .and_then(|v| v.octet_string().map(|c| c.into_owned()))
                .map(Some)
                .reading("signed attribute"),
        }
    }
}

/// Decrypts a ContentInfo holding an EnvelopedData with the RA's RSA key;
/// returns the content and the cipher the sender chose.
pub fn decrypt_enveloped(der: &[u8], key: &SigningKey) -> Result<(Vec<u8>, Cipher), PkiError> {
    let what = "EnvelopedData";
    let rsa = key.rsa().ok_or_else(|| PkiError::Invalid("the RA key is not RSA".into()))?;
    let outer = asn1::parse(der).reading(what)?;
    let enveloped = unwrap_content_info(&outer, ENVELOPED_DATA)?;
    let mut parts = enveloped.children().reading(what)?;
    parts.required("version").reading(what)?;
    parts.optional(tag::explicit(0)).reading(what)?;
    let recipients = parts.required("recipientInfos").reading(what)?;
    let encrypted = parts.required("encryptedContentInfo").reading(what)?;
    let mut e = encrypted.children().reading(what)?;
    e.required("contentType").reading(what)?;
    let alg = e.required("contentEncryptionAlgorithm").reading(what)?;
    let mut alg_parts = alg.children().reading(what)?;
    let alg_oid = alg_parts.required("algorithm").and_then(|v| v.oid()).reading(what)?;
    let cipher = Cipher::from_oid(&alg_oid).ok_or_else(|| {
        PkiError::Unsupported(format!("content encryption {alg_oid} (DES, 3DES, AES-CBC are supported)"))
    })?;
    let iv = alg_parts.required("IV").and_then(|v| v.octet_string()).reading(what)?.into_owned();
    let body = e.required("encryptedContent").and_then(|v| v.octets()).reading(what)?.into_owned();

    let mut list = recipients.children().reading(what)?;
    let mut tried = 0;
    while let Some(recipient) = list.next_value().reading(what)? {
        if recipient.tag != tag::SEQUENCE {
            continue;
        }
        // Each try is an RSA private-key operation: a message listing many
        // recipients must not buy many of them.
        tried += 1;
        if tried > MAX_RECIPIENTS_TRIED {
            break;
        }
        let mut r = recipient.children().reading("KeyTransRecipientInfo")?;
        r.required("version").reading("KeyTransRecipientInfo")?;
        r.required("rid").reading("KeyTransRecipientInfo")?;
        r.required("keyEncryptionAlgorithm").reading("KeyTransRecipientInfo")?;
        let wrapped = r.required("encryptedKey").and_then(|v| v.octet_string()).reading("KeyTransRecipientInfo")?;
        // A failed unwrap and a failed content decryption look the same to
        // the sender (no padding oracle): both are "cannot decrypt".
        let Ok(content_key) = rsa.pkcs1v15_decrypt(&wrapped) else { continue };
        if content_key.len() != cipher.key_len() || iv.len() != cipher.iv_len() {
            continue;
        }
        if let Some(plain) = cipher.decrypt(&content_key, &iv, &body) {
            return Ok((plain, cipher));
        }
    }
    Err(PkiError::Invalid("the request cannot be decrypted with the RA key".into()))
}

/// A ContentInfo holding an EnvelopedData of `content` for `recipient` (RSA
/// key transport).
pub fn envelope(content: &[u8], recipient: &Certificate, cipher: Cipher) -> Result<Vec<u8>, PkiError> {
    use rand_core::RngCore;
    let key = recipient.public_key()?;
    let rsa =
        key.rsa().ok_or_else(|| PkiError::Unsupported("the requester's key is not RSA (SCEP needs RSA)".into()))?;
    let mut content_key = zeroize::Zeroizing::new(vec![0u8; cipher.key_len()]);
    let mut iv = vec![0u8; cipher.iv_len()];
    rand_core::OsRng.fill_bytes(&mut content_key);
    rand_core::OsRng.fill_bytes(&mut iv);
    let encrypted = cipher
        .encrypt(&content_key, &iv, content)
        .ok_or_else(|| PkiError::Invalid("content encryption failed".into()))?;
    let wrapped = rsa.pkcs1v15_encrypt(&content_key).map_err(|e| PkiError::Invalid(format!("key transport: {e}")))?;
    let recipient_info = asn1::seq(&[
        &asn1::small(0),
        &asn1::seq(&[&recipient.issuer, &recipient.serial]),
        &asn1::algorithm_null(crate::oid::RSA_ENCRYPTION),
        &asn1::octet_string(&wrapped),
    ]);
    let enveloped = asn1::seq(&[
        &asn1::small(0),
        &asn1::set_of(&[&recipient_info]),
        &asn1::seq(&[
            &asn1::oid(DATA),
            &asn1::seq(&[&asn1::oid(cipher.oid()), &asn1::octet_string(&iv)]),
            &asn1::tlv(tag::implicit(0), &encrypted),
        ]),
    ]);
    Ok(asn1::seq(&[&asn1::oid(ENVELOPED_DATA), &asn1::constructed(tag::explicit(0), &[&enveloped])]))
}

/// A certs-only SignedData ("degenerate" PKCS#7), as GetCACert and CertRep carry.
pub fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    let signed = asn1::seq(&[
        &asn1::small(1),
        &asn1::set_of(&[]),
        &asn1::seq(&[&asn1::oid(DATA)]),
        &asn1::constructed(tag::explicit(0), certs),
        &asn1::set_of(&[]),
    ]);
    asn1::seq(&[&asn1::oid(SIGNED_DATA), &asn1::constructed(tag::explicit(0), &[&signed])])
}

/// A ContentInfo holding a SignedData of `content` (`None`: no encapsulated
/// content at all; a SCEP failure signs an empty one instead),
/// signed by `signer` with SHA-256 over `attributes` (each a DER Attribute)
/// plus contentType, messageDigest and signingTime.
pub fn sign(
    content: Option<&[u8]>,
    attributes: &[Vec<u8>],
    signer: &Certificate,
    key: &SigningKey,
    certificates: &[&[u8]],
    now: u64,
) -> Result<Vec<u8>, PkiError> {
    sign_with(DigestAlg::Sha256, content, attributes, signer, key, certificates, now)
}

/// [`sign`] with the digest `digest` (an RSA signer).
pub fn sign_with(
    digest: DigestAlg,
    content: Option<&[u8]>,
    attributes: &[Vec<u8>],
    signer: &Certificate,
    key: &SigningKey,
    certificates: &[&[u8]],
    now: u64,
) -> Result<Vec<u8>, PkiError> {
    let mut attrs: Vec<Vec<u8>> = vec![
        attribute(CONTENT_TYPE, &asn1::oid(DATA)),
        attribute(MESSAGE_DIGEST, &asn1::octet_string(&digest.digest(content.unwrap_or_default()))),
        attribute(SIGNING_TIME, &asn1::x509_time(now)),
    ];
    attrs.extend(attributes.iter().cloned());
    let refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    let set = asn1::set_of(&refs);
    let signature = key.sign_with(digest, &set)?;
    let mut implicit = set.clone();
    implicit[0] = tag::explicit(0);
    let digest_alg = asn1::algorithm_null(digest.oid());
    let signer_info = asn1::seq(&[
        &asn1::small(1),
        &asn1::seq(&[&signer.issuer, &signer.serial]),
        &digest_alg,
        &implicit,
        &asn1::algorithm_null(crate::oid::RSA_ENCRYPTION),
        &asn1::octet_string(&signature),
    ]);
    let encap = match content {
        Some(c) => asn1::seq(&[&asn1::oid(DATA), &asn1::constructed(tag::explicit(0), &[&asn1::octet_string(c)])]),
        None => asn1::seq(&[&asn1::oid(DATA)]),
    };
    let signed = asn1::seq(&[
        &asn1::small(1),
        &asn1::set_of(&[&digest_alg]),
        &encap,
        &asn1::constructed(tag::explicit(0), certificates),
        &asn1::set_of(&[&signer_info]),
    ]);
    Ok(asn1::seq(&[&asn1::oid(SIGNED_DATA), &asn1::constructed(tag::explicit(0), &[&signed])]))
}

/// One Attribute with one value.
pub fn attribute(oid: &str, value: &[u8]) -> Vec<u8> {
    asn1::seq(&[&asn1::oid(oid), &asn1::set_of(&[value])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::{self, CertificateTemplate};

    fn ra() -> (SigningKey, Certificate) {
        let key = SigningKey::generate_rsa();
        let spki = key.spki_der().unwrap();
        let name = x509::write_name(&[(crate::oid::CN, "RA")]);
        let template = CertificateTemplate {
            subject: name.clone(),
            spki: &spki,
            not_before: 0,
            not_after: 4_000_000_000,
            extensions: vec![],
        };
        let cert = Certificate::from_der(&x509::sign_certificate(&template, &name, &[1], &key).unwrap()).unwrap();
        (key, cert)
    }

    #[test]
    fn every_cipher_round_trips_and_a_list_of_recipients_is_bounded() {
        let (key, cert) = ra();
        for cipher in [Cipher::Des, Cipher::Des3, Cipher::Aes128, Cipher::Aes192, Cipher::Aes256] {
            let sealed = envelope(b"a CSR", &cert, cipher).unwrap();
            assert_eq!(decrypt_enveloped(&sealed, &key).unwrap(), (b"a CSR".to_vec(), cipher));
        }
        let (other_key, _) = ra();
        assert!(decrypt_enveloped(&envelope(b"x", &cert, Cipher::Aes128).unwrap(), &other_key).is_err());

        // The right recipient after MAX_RECIPIENTS_TRIED others is not tried.
        let sealed = envelope(b"a CSR", &cert, Cipher::Aes128).unwrap();
        let outer = asn1::parse(&sealed).unwrap();
        let enveloped = unwrap_content_info(&outer, ENVELOPED_DATA).unwrap();
        let mut parts = enveloped.children().unwrap();
        let version = parts.required("version").unwrap().raw.to_vec();
        let recipients = parts.required("recipientInfos").unwrap();
        let real = recipients.children().unwrap().required("recipient").unwrap().raw.to_vec();
        let encrypted = parts.required("encryptedContentInfo").unwrap().raw.to_vec();
        let with = |decoys: usize| {
            let mut list: Vec<&[u8]> = Vec::new();
            let bogus = asn1::seq(&[
                &asn1::small(0),
                &asn1::seq(&[&x509::write_name(&[]), &asn1::small(9)]),
                &asn1::algorithm_null(crate::oid::RSA_ENCRYPTION),
                &asn1::octet_string(&[0x55; 384]),
            ]);
            for _ in 0..decoys {
                list.push(&bogus);
            }
            list.push(&real);
            let inner = asn1::seq(&[&version, &asn1::constructed(tag::SET, &list), &encrypted]);
            let whole = asn1::seq(&[&asn1::oid(ENVELOPED_DATA), &asn1::constructed(tag::explicit(0), &[&inner])]);
            decrypt_enveloped(&whole, &key)
        };
        assert!(with(MAX_RECIPIENTS_TRIED - 1).is_ok());
        assert!(with(MAX_RECIPIENTS_TRIED).is_err());
    }
}
