//! Signed writes: officer keys and compact JWS.
//!
//! Every write is a [`WriteRequest`] wrapped in [`Claims`] (audience = the
//! instance id, a single-use `jti`, `iat`, `exp` at most five minutes later) and
//! signed by an officer's key as a compact JWS (`EdDSA` or `ES256`, with `kid`).
//! The host verifies it ([`verify`]) before acting; the `jti` is consumed in the
//! transaction that makes the change.
//!
//! Officers read with short-lived access tokens signed by the same key
//! ([`access`]).

pub mod access;
mod errors;
mod jws;
mod keys;
mod requests;

pub use errors::SigningError;
pub use jws::{Claims, MAX_LIFETIME_SECS, REPLAY_MARGIN_SECS, Verified, sign, verify};
pub use keys::{Algorithm, PublicKey, SigningKey};
pub use requests::WriteRequest;

/// The JWS `typ` of an officer's access token ([`access`]): the JWS
/// verifier refuses it as a signed write.
pub const ACCESS_TYP: &str = "prereg-access+jws";
