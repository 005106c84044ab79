//! ACME's JSON Web Signatures (RFC 8555 §6.2, RFC 7515 flattened JSON):
//! the request envelope, account keys as JWKs (RFC 7517) with their RFC 7638
//! thumbprints, ES256, EdDSA (Ed25519) and RS256 signatures, and the HS256
//! MAC of external account binding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::Digest as _;

use super::problem::AcmeProblem;
use crate::pki::keys::PublicKey;
use crate::pki::{asn1, oid};

/// Largest ACME request body, in bytes (a CSR with a 8192-bit RSA key fits
/// many times over).
pub const MAX_REQUEST_BYTES: usize = 64 << 10;

/// A request as sent: flattened JSON serialization.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenedJws {
    /// The protected header (base64url JSON).
    pub protected: String,
    /// The payload (base64url; empty: POST-as-GET).
    pub payload: String,
    /// The signature (base64url).
    pub signature: String,
}

/// The protected header of an ACME request.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// `ES256`, `EdDSA`, `RS256` (HS256 for external account binding).
    pub alg: String,
    /// The replay nonce (absent in the inner JWS of a binding or a key change).
    #[serde(default)]
    pub nonce: Option<String>,
    /// The URL the request was sent to.
    #[serde(default)]
    pub url: Option<String>,
    /// The account key itself (new accounts, revocation by certificate key).
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
    /// The account URL (every other request).
    #[serde(default)]
    pub kid: Option<String>,
    /// Extensions the signer says must be understood (RFC 7515 §4.1.11):
    /// none is, so a request naming any is refused.
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
    /// RFC 7797's unencoded payload: refused (ACME payloads are base64url).
    #[serde(default)]
    pub b64: Option<serde_json::Value>,
}

/// A request whose header and payload were decoded, not yet verified.
#[derive(Debug)]
pub struct Parsed {
    /// Its header.
    pub header: Header,
    /// The payload bytes (empty: POST-as-GET).
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, AcmeProblem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| AcmeProblem::malformed(format!("the JWS {field} is not base64url without padding")))
}

/// base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Parsed {
    /// Decodes a flattened JWS (a JSON body), without checking it.
    pub fn from_body(body: &[u8]) -> Result<Parsed, AcmeProblem> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(AcmeProblem::malformed(format!("a request of at most {MAX_REQUEST_BYTES} bytes")));
        }
        let jws: FlattenedJws = serde_json::from_slice(body)
            .map_err(|e| AcmeProblem::malformed(format!("the request is no flattened JWS: {e}")))?;
        Self::from_parts(&jws)
    }

    /// Decodes a flattened JWS given as a JSON value (an inner JWS).
    pub fn from_value(value: &serde_json::Value) -> Result<Parsed, AcmeProblem> {
        let jws: FlattenedJws = serde_json::from_value(value.clone())
            .map_err(|e| AcmeProblem::malformed(format!("the inner JWS is no flattened JWS: {e}")))?;
        Self::from_parts(&jws)
    }

    fn from_parts(jws: &FlattenedJws) -> Result<Parsed, AcmeProblem> {
        let header_bytes = b64("protected header", &jws.protected)?;
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|e| AcmeProblem::malformed(format!("the JWS protected header: {e}")))?;
        if header.crit.is_some() || header.b64.is_some() {
            return Err(AcmeProblem::malformed(
                "the JWS protected header names extensions (crit, b64) this server does not take",
            ));
        }
        let payload = b64("payload", &jws.payload)?;
        let signature = b64("signature", &jws.signature)?;
        let signing_input = format!("{}.{}", jws.protected, jws.payload).into_bytes();
        Ok(Parsed { header, payload, signing_input, signature })
    }

    /// Verifies the signature with `key`, which must be of the header's
    /// algorithm.
    pub fn verify(&self, key: &AccountKey) -> Result<(), AcmeProblem> {
        key.verify(&self.header.alg, &self.signing_input, &self.signature)
    }

    /// Verifies an HS256 MAC (external account binding) with `key`.
    pub fn verify_hs256(&self, key: &[u8]) -> Result<(), AcmeProblem> {
        use hmac::Mac as _;
        if self.header.alg != "HS256" {
            return Err(AcmeProblem::malformed(format!(
                "the external account binding is MACed with {:?}; HS256 is taken",
                self.header.alg
            )));
        }
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
            .map_err(|_| AcmeProblem::server_internal("the HMAC key cannot be used"))?;
        mac.update(&self.signing_input);
        mac.verify_slice(&self.signature)
            .map_err(|_| AcmeProblem::unauthorized("the external account binding's MAC is not the key's"))
    }

    /// The payload as JSON (`{}` when empty is not allowed: POST-as-GET has
    /// no JSON).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, AcmeProblem> {
        serde_json::from_slice(&self.payload).map_err(|e| AcmeProblem::malformed(format!("the payload: {e}")))
    }

    /// Whether this is a POST-as-GET (empty payload).
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }
}

/// An account key: the JWK as sent, its public key and its thumbprint.
#[derive(Debug, Clone)]
pub struct AccountKey {
    /// The JWK's public members only.
    pub jwk: serde_json::Value,
    /// RFC 7638 thumbprint (SHA-256, base64url).
    pub thumbprint: String,
    key: PublicKey,
}

fn member<'a>(jwk: &'a serde_json::Value, name: &str) -> Result<&'a str, AcmeProblem> {
    jwk.get(name)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| AcmeProblem::malformed(format!("the JWK has no string member {name:?}")))
}

impl AccountKey {
    /// Reads a JWK: EC P-256, OKP Ed25519 or RSA (2048 to 8192 bits).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<AccountKey, AcmeProblem> {
        let unsupported = |what: String| AcmeProblem::bad_signature_algorithm(what);
        let (public, spki) = match member(jwk, "kty")? {
            "EC" => {
                let crv = member(jwk, "crv")?;
                if crv != "P-256" {
                    return Err(unsupported(format!("EC keys on {crv:?} are not taken (P-256 is)")));
                }
                let (x, y) = (b64("JWK x", member(jwk, "x")?)?, b64("JWK y", member(jwk, "y")?)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(AcmeProblem::malformed("a P-256 JWK has 32-byte x and y"));
                }
                let point = [&[4u8][..], &x, &y].concat();
                let spki = asn1::seq(&[
                    &asn1::seq(&[&asn1::oid(oid::EC_PUBLIC_KEY), &asn1::oid(oid::P256)]),
                    &asn1::bit_string(&point),
                ]);
                let public =
                    serde_json::json!({ "crv": crv, "kty": "EC", "x": member(jwk, "x")?, "y": member(jwk, "y")? });
                (public, spki)
            }
            "OKP" => {
                let crv = member(jwk, "crv")?;
                if crv != "Ed25519" {
                    return Err(unsupported(format!("OKP keys on {crv:?} are not taken (Ed25519 is)")));
                }
                let x = b64("JWK x", member(jwk, "x")?)?;
                let spki = asn1::seq(&[&asn1::seq(&[&asn1::oid(oid::ED25519)]), &asn1::bit_string(&x)]);
                (serde_json::json!({ "crv": crv, "kty": "OKP", "x": member(jwk, "x")? }), spki)
            }
            "RSA" => {
                let (n, e) = (b64("JWK n", member(jwk, "n")?)?, b64("JWK e", member(jwk, "e")?)?);
                let rsa_key = asn1::seq(&[&asn1::uint(&n), &asn1::uint(&e)]);
                let spki = asn1::seq(&[&asn1::algorithm_null(oid::RSA_ENCRYPTION), &asn1::bit_string(&rsa_key)]);
                (serde_json::json!({ "e": member(jwk, "e")?, "kty": "RSA", "n": member(jwk, "n")? }), spki)
            }
            other => return Err(unsupported(format!("JWK key type {other:?} is not taken (EC, OKP, RSA are)"))),
        };
        let key = PublicKey::from_spki(&spki).map_err(|e| AcmeProblem::bad_public_key(format!("the JWK: {e}")))?;
        // RFC 7638: the required members, in lexicographic order, without
        // whitespace (serde_json's maps are sorted).
        let canonical = serde_json::to_vec(&public).map_err(|e| AcmeProblem::server_internal(e.to_string()))?;
        let thumbprint = encode(&sha2::Sha256::digest(&canonical));
        Ok(AccountKey { jwk: public, thumbprint, key })
    }

    /// The JWS algorithm names this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            PublicKey::P256(_) => "ES256",
            PublicKey::Ed25519(_) => "EdDSA",
            PublicKey::Rsa(_) => "RS256",
        }
    }

    fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), AcmeProblem> {
        if alg != self.algorithm() {
            return Err(AcmeProblem::bad_signature_algorithm(format!(
                "the request is signed with {alg:?}; this key signs with {} (ES256, EdDSA and RS256 are taken)",
                self.algorithm()
            )));
        }
        let bad = || AcmeProblem::malformed("the JWS signature does not verify with the account key");
        match &self.key {
            PublicKey::P256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| bad())?;
                key.verify(message, &sig).map_err(|_| bad())
            }
            PublicKey::Ed25519(_) => self.key.verify(oid::ED25519, message, signature, "JWS").map_err(|_| bad()),
            PublicKey::Rsa(_) => self.key.verify(oid::SHA256_RSA, message, signature, "JWS").map_err(|_| bad()),
        }
    }

    /// The DER SubjectPublicKeyInfo-equality test of a certificate's key
    /// against this one (revocation signed with the certificate's key).
    pub fn is_key_of(&self, spki: &[u8]) -> bool {
        crate::pki::keys::PublicKey::from_spki(spki).is_ok_and(|other| same_key(&other, &self.key))
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    match (a, b) {
        (PublicKey::P256(a), PublicKey::P256(b)) => a == b,
        (PublicKey::Ed25519(a), PublicKey::Ed25519(b)) => a == b,
        (PublicKey::Rsa(a), PublicKey::Rsa(b)) => a == b,
        _ => false,
    }
}

/// The key authorization of a challenge token (RFC 8555 §8.1).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// What a `dns-01` TXT record holds (RFC 8555 §8.4).
pub fn dns_txt(key_authorization: &str) -> String {
    encode(&sha2::Sha256::digest(key_authorization.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example: the thumbprint of its RSA key.
    #[test]
    fn the_rfc_7638_example_thumbprint() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = AccountKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.thumbprint, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(key.algorithm(), "RS256");
    }

    #[test]
    fn an_eddsa_request_verifies_and_the_same_under_es256_does_not() {
        use ed25519_dalek::Signer as _;
        let signing = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let jwk =
            serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": encode(signing.verifying_key().as_bytes()) });
        let key = AccountKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithm(), "EdDSA");
        let protected =
            encode(serde_json::json!({ "alg": "EdDSA", "nonce": "n", "url": "u", "kid": "k" }).to_string().as_bytes());
        let payload = encode(b"{}");
        let sig = signing.sign(format!("{protected}.{payload}").as_bytes());
        let body =
            serde_json::json!({ "protected": protected, "payload": payload, "signature": encode(&sig.to_bytes()) });
        let parsed = Parsed::from_body(body.to_string().as_bytes()).unwrap();
        parsed.verify(&key).unwrap();
        let mut parsed = Parsed::from_body(body.to_string().as_bytes()).unwrap();
        parsed.header.alg = "ES256".into();
        assert_eq!(parsed.verify(&key).unwrap_err().kind, "badSignatureAlgorithm");
        // Keys that are not taken: another curve, a short RSA modulus.
        let p384 = serde_json::json!({ "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA" });
        assert_eq!(AccountKey::from_jwk(&p384).unwrap_err().kind, "badSignatureAlgorithm");
        let short = serde_json::json!({ "kty": "RSA", "n": encode(&[0xc5; 128]), "e": "AQAB" });
        assert_eq!(AccountKey::from_jwk(&short).unwrap_err().kind, "badPublicKey");
    }

    #[test]
    fn an_es256_request_verifies_and_a_changed_one_does_not() {
        use p256::ecdsa::signature::Signer as _;
        let signing = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let point = signing.verifying_key().to_encoded_point(false);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": encode(point.x().unwrap()), "y": encode(point.y().unwrap()),
        });
        let header =
            serde_json::json!({ "alg": "ES256", "jwk": jwk, "nonce": "n", "url": "https://x/acme/p/new-account" });
        let protected = encode(header.to_string().as_bytes());
        let payload = encode(b"{}");
        let sig: p256::ecdsa::Signature = signing.sign(format!("{protected}.{payload}").as_bytes());
        let body =
            serde_json::json!({ "protected": protected, "payload": payload, "signature": encode(&sig.to_bytes()) });
        let parsed = Parsed::from_body(body.to_string().as_bytes()).unwrap();
        let key = AccountKey::from_jwk(parsed.header.jwk.as_ref().unwrap()).unwrap();
        parsed.verify(&key).unwrap();

        let tampered = serde_json::json!({ "protected": protected, "payload": encode(b"{\"x\":1}"), "signature": encode(&sig.to_bytes()) });
        let parsed = Parsed::from_body(tampered.to_string().as_bytes()).unwrap();
        assert!(parsed.verify(&key).is_err());
        // The same signature presented as another algorithm is refused.
        let mut parsed = Parsed::from_body(body.to_string().as_bytes()).unwrap();
        parsed.header.alg = "HS256".into();
        assert!(parsed.verify(&key).is_err());
    }
}
