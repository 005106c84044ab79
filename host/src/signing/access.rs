//! Officers' access tokens: how an officer reads.
//!
//! An officer proves who is reading with the key it already signs writes
//! with: a compact JWS of type [`ACCESS_TYP`] whose claims are only the
//! audience (the instance id), `iat` and `exp`, at most
//! [`MAX_LIFETIME_SECS`](super::MAX_LIFETIME_SECS) later. The CLI in
//! `--server` mode and the RA page (WebCrypto) make a fresh one as the old
//! one nears its end, and send it as `Authorization: Bearer`. No password
//! and no cookie: a cross-site request carries nothing a browser adds by
//! itself.
//!
//! A token is a bearer credential for its few minutes, not a single-use
//! request: reading changes nothing. Its type keeps it apart from a signed
//! write (a write's claims carry a `request` and a `jti`, which a token's
//! refuse), so neither can stand in for the other.

use serde::{Deserialize, Serialize};

use super::jws::{check_claims, sign_claims, verify_signature};
use super::{PublicKey, SigningError, SigningKey};

pub use super::ACCESS_TYP;

/// How long the tokens the CLI makes live, in seconds (refreshed before).
pub const ACCESS_LIFETIME_SECS: u64 = 240;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The instance id of the prereg it is meant for.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires, Unix seconds.
    pub exp: u64,
}

/// An access token whose signature, audience and time checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessVerified {
    /// The officer's key id.
    pub kid: String,
    /// The claims.
    pub claims: AccessClaims,
}

/// An access token for instance `aud`, valid from `now` for `lifetime`
/// seconds (at most [`MAX_LIFETIME_SECS`](super::MAX_LIFETIME_SECS)).
pub fn sign_access(key: &SigningKey, aud: &str, now: u64, lifetime: u64) -> Result<String, SigningError> {
    let claims = AccessClaims { aud: aud.into(), iat: now, exp: now + lifetime.min(super::MAX_LIFETIME_SECS) };
    sign_claims(key, ACCESS_TYP, &claims)
}

/// Verifies an access token: its type, algorithm, key (looked up by `kid`
/// through `officer_key`), signature, audience and time.
pub fn verify_access(
    token: &str,
    instance_id: &str,
    now: u64,
    officer_key: impl FnOnce(&str) -> Option<PublicKey>,
) -> Result<AccessVerified, SigningError> {
    let signed = verify_signature(token.trim(), officer_key)?;
    if signed.typ.as_deref() != Some(ACCESS_TYP) {
        return Err(SigningError::Malformed(format!("an access token has typ {ACCESS_TYP:?}")));
    }
    let claims: AccessClaims =
        serde_json::from_slice(&signed.payload).map_err(|e| SigningError::Malformed(format!("payload: {e}")))?;
    check_claims(&claims.aud, claims.iat, claims.exp, instance_id, now)?;
    Ok(AccessVerified { kid: signed.kid, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{Algorithm, WriteRequest, sign, verify};

    fn lookup(key: &SigningKey) -> impl Fn(&str) -> Option<PublicKey> + '_ {
        move |kid: &str| (kid == key.public_key().kid()).then(|| key.public_key())
    }

    #[test]
    fn tokens_verify_for_their_instance_and_time_only() {
        for alg in [Algorithm::EdDsa, Algorithm::Es256] {
            let key = SigningKey::generate(alg);
            let token = sign_access(&key, "inst", 1000, 240).unwrap();
            let ok = verify_access(&token, "inst", 1100, lookup(&key)).unwrap();
            assert_eq!(ok.kid, key.public_key().kid());
            assert!(matches!(
                verify_access(&token, "other", 1100, lookup(&key)),
                Err(SigningError::WrongAudience { .. })
            ));
            assert!(matches!(verify_access(&token, "inst", 1240, lookup(&key)), Err(SigningError::Expired { .. })));
            let stranger = SigningKey::generate(alg);
            assert_eq!(
                verify_access(&token, "inst", 1100, |_| Some(stranger.public_key())),
                Err(SigningError::BadSignature)
            );
        }
        // At most five minutes, whatever the signer asks.
        let key = SigningKey::generate(Algorithm::EdDsa);
        let long = sign_access(&key, "inst", 1000, 86_400).unwrap();
        assert!(verify_access(&long, "inst", 1299, lookup(&key)).is_ok());
        assert!(verify_access(&long, "inst", 1300, lookup(&key)).is_err());
    }

    #[test]
    fn a_token_and_a_signed_write_cannot_stand_in_for_each_other() {
        let key = SigningKey::generate(Algorithm::EdDsa);
        let write = sign(&key, "inst", WriteRequest::DisableRegistration { id: 1 }, 1000, 300).unwrap();
        assert!(matches!(verify_access(&write, "inst", 1010, lookup(&key)), Err(SigningError::Malformed(_))));
        let token = sign_access(&key, "inst", 1000, 240).unwrap();
        assert!(matches!(verify(&token, "inst", 1010, lookup(&key)), Err(SigningError::Malformed(_))));
    }
}
