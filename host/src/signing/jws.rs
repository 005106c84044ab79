//! Compact JWS (RFC 7515) over canonical JSON claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{Algorithm, PublicKey, SigningError, SigningKey, WriteRequest};

/// Longest accepted `exp - iat`, in seconds.
pub const MAX_LIFETIME_SECS: u64 = 300;
/// Tolerated clock skew for `iat` in the future, in seconds.
const CLOCK_SKEW_SECS: u64 = 60;

/// How long past its expiry a request id is remembered, in seconds: the
/// longest token lifetime plus the tolerated skew, so that a node whose clock
/// runs behind the one that forgot an id cannot accept its request again.
pub const REPLAY_MARGIN_SECS: u64 = MAX_LIFETIME_SECS + CLOCK_SKEW_SECS;
/// Largest signed request accepted, in bytes.
const MAX_JWS_BYTES: usize = 64 << 10;

/// The claims of a signed write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The instance id of the prereg it is meant for.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires, Unix seconds (at most [`MAX_LIFETIME_SECS`] after `iat`).
    pub exp: u64,
    /// Single-use request id.
    pub jti: String,
    /// The write.
    pub request: WriteRequest,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// A request whose signature, key and time checked out. The `jti` is still to
/// be consumed, in the transaction of the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signing officer's key id.
    pub kid: String,
    /// The claims.
    pub claims: Claims,
    /// The JWS as received, for the audit log.
    pub jws: String,
}

/// Signs `request` for instance `aud`, valid for `lifetime` seconds from `now`.
pub fn sign(
    key: &SigningKey,
    aud: &str,
    request: WriteRequest,
    now: u64,
    lifetime: u64,
) -> Result<String, SigningError> {
    let mut jti = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut jti);
    let claims = Claims {
        aud: aud.into(),
        iat: now,
        exp: now + lifetime.min(MAX_LIFETIME_SECS),
        jti: URL_SAFE_NO_PAD.encode(jti),
        request,
    };
    sign_claims(key, "prereg-request+jws", &claims)
}

/// Verifies a compact JWS: algorithm, key (looked up by `kid` through
/// `officer_key`), signature, audience and time. Does not consume the `jti`.
pub fn verify(
    jws: &str,
    instance_id: &str,
    now: u64,
    officer_key: impl FnOnce(&str) -> Option<PublicKey>,
) -> Result<Verified, SigningError> {
    let jws = jws.trim();
    let signed = verify_signature(jws, officer_key)?;
    if signed.typ.as_deref() == Some(super::ACCESS_TYP) {
        return Err(SigningError::Malformed("an access token is not a signed request".into()));
    }
    let claims: Claims =
        serde_json::from_slice(&signed.payload).map_err(|e| SigningError::Malformed(format!("payload: {e}")))?;
    check_claims(&claims.aud, claims.iat, claims.exp, instance_id, now)?;
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(SigningError::Malformed("jti must be 1 to 128 characters".into()));
    }
    Ok(Verified { kid: signed.kid, claims, jws: jws.to_owned() })
}

/// A compact JWS whose signature checked out.
pub(super) struct SignedParts {
    /// The signing key's id.
    pub kid: String,
    /// The header's `typ`.
    pub typ: Option<String>,
    /// The payload, decoded.
    pub payload: Vec<u8>,
}

/// Verifies the form, algorithm, key (looked up by `kid` through
/// `officer_key`) and signature of a compact JWS; the claims are the
/// caller's to check.
pub(super) fn verify_signature(
    jws: &str,
    officer_key: impl FnOnce(&str) -> Option<PublicKey>,
) -> Result<SignedParts, SigningError> {
    if jws.len() > MAX_JWS_BYTES {
        return Err(SigningError::Malformed(format!("{} bytes; at most {MAX_JWS_BYTES} accepted", jws.len())));
    }
    let mut parts = jws.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SigningError::Malformed("a compact JWS has three dot-separated parts".into()));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD.decode(part).map_err(|_| SigningError::Malformed(format!("the {what} is not base64url")))
    };
    let header: Header =
        serde_json::from_slice(&decode(h64, "header")?).map_err(|e| SigningError::Malformed(format!("header: {e}")))?;
    let algorithm = match header.alg.as_str() {
        "none" | "None" | "NONE" => return Err(SigningError::AlgNone),
        alg if alg.starts_with("HS") => return Err(SigningError::Hmac(alg.into())),
        alg => Algorithm::from_jws_name(alg).ok_or_else(|| SigningError::UnsupportedAlgorithm(alg.into()))?,
    };
    if let Some(name) =
        header.other.keys().find(|k| matches!(k.as_str(), "crit" | "jku" | "jwk" | "x5u" | "x5c" | "b64"))
    {
        return Err(SigningError::ForbiddenHeader(name.clone()));
    }
    let kid = header.kid.ok_or_else(|| SigningError::Malformed("the header has no kid".into()))?;
    let key = officer_key(&kid).ok_or_else(|| SigningError::UnknownKey(kid.clone()))?;
    if key.algorithm() != algorithm {
        return Err(SigningError::AlgorithmMismatch { header: header.alg, key: key.algorithm().to_string() });
    }
    let signature = decode(s64, "signature")?;
    let signing_input = &jws[..h64.len() + 1 + p64.len()];
    if !key.verify(signing_input.as_bytes(), &signature) {
        return Err(SigningError::BadSignature);
    }
    Ok(SignedParts { kid, typ: header.typ, payload: decode(p64, "payload")? })
}

/// Checks the audience and the time of signed claims: meant for
/// `instance_id`, at most [`MAX_LIFETIME_SECS`] long, and valid at `now`.
pub(super) fn check_claims(aud: &str, iat: u64, exp: u64, instance_id: &str, now: u64) -> Result<(), SigningError> {
    if aud != instance_id {
        return Err(SigningError::WrongAudience { expected: instance_id.into(), found: aud.into() });
    }
    if exp < iat || exp - iat > MAX_LIFETIME_SECS {
        return Err(SigningError::LifetimeTooLong(exp.saturating_sub(iat)));
    }
    if now >= exp || iat > now + CLOCK_SKEW_SECS {
        return Err(SigningError::Expired { iat, exp, now });
    }
    Ok(())
}

/// Signs `claims` with `key` as a compact JWS of type `typ`.
pub(super) fn sign_claims(key: &SigningKey, typ: &str, claims: &impl Serialize) -> Result<String, SigningError> {
    let header = Header {
        alg: key.algorithm().jws_name().into(),
        kid: Some(key.public_key().kid()),
        typ: Some(typ.into()),
        other: Default::default(),
    };
    let encode = |v: &dyn erased::Json| -> Result<String, SigningError> {
        Ok(URL_SAFE_NO_PAD.encode(v.canonical().map_err(|e| SigningError::Malformed(e.to_string()))?))
    };
    let signing_input = format!("{}.{}", encode(&header)?, encode(claims)?);
    let signature = key.sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

mod erased {
    /// Canonical JSON (serde_json sorts nothing by itself: struct fields come in
    /// declaration order, which is fixed; maps are BTreeMaps).
    pub trait Json {
        fn canonical(&self) -> serde_json::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn canonical(&self) -> serde_json::Result<Vec<u8>> {
            // Through Value: object keys come out sorted.
            serde_json::to_vec(&serde_json::to_value(self)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> WriteRequest {
        WriteRequest::DisableRegistration { id: 7 }
    }

    #[test]
    fn round_trip_for_both_algorithms() {
        for alg in [Algorithm::EdDsa, Algorithm::Es256] {
            let key = SigningKey::generate(alg);
            let jws = sign(&key, "inst", request(), 1000, 300).unwrap();
            let v =
                verify(&jws, "inst", 1010, |kid| (kid == key.public_key().kid()).then(|| key.public_key())).unwrap();
            assert_eq!(v.claims.request, request());
            assert_eq!(v.kid, key.public_key().kid());
        }
    }

    #[test]
    fn refusals() {
        let key = SigningKey::generate(Algorithm::EdDsa);
        let other = SigningKey::generate(Algorithm::EdDsa);
        let lookup = |k: &SigningKey| {
            let pk = k.public_key();
            move |kid: &str| (kid == pk.kid()).then(|| pk.clone())
        };
        let jws = sign(&key, "inst", request(), 1000, 300).unwrap();
        // Wrong key: the kid of `key` resolves to `other`'s public key.
        let wrong = verify(&jws, "inst", 1010, |_| Some(other.public_key()));
        assert_eq!(wrong, Err(SigningError::BadSignature));
        assert_eq!(
            verify(&jws, "inst", 1300, lookup(&key)).map(|_| ()),
            Err(SigningError::Expired { iat: 1000, exp: 1300, now: 1300 })
        );
        assert!(matches!(verify(&jws, "other", 1010, lookup(&key)), Err(SigningError::WrongAudience { .. })));
        assert!(matches!(verify(&jws, "inst", 1010, |_| None), Err(SigningError::UnknownKey(_))));
        // A flipped payload byte.
        let mut parts: Vec<String> = jws.split('.').map(String::from).collect();
        let mut payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
        let i = payload.iter().position(|&b| b == b'7').unwrap();
        payload[i] = b'8';
        parts[1] = URL_SAFE_NO_PAD.encode(payload);
        assert_eq!(verify(&parts.join("."), "inst", 1010, lookup(&key)), Err(SigningError::BadSignature));
        // alg none and HMAC.
        for (alg, expected) in [("none", SigningError::AlgNone), ("HS256", SigningError::Hmac("HS256".into()))] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, key.public_key().kid()));
            let forged = format!("{header}.{}.", jws.split('.').nth(1).unwrap());
            assert_eq!(verify(&forged, "inst", 1010, lookup(&key)), Err(expected));
        }
        // ES256 header on an Ed25519 key.
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.public_key().kid()));
        let confused = format!("{header}.{}.{}", parts[1], parts[2]);
        assert!(matches!(verify(&confused, "inst", 1010, lookup(&key)), Err(SigningError::AlgorithmMismatch { .. })));
    }
}
