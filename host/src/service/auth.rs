//! Who is calling, and what they may read or ask.
//!
//! Two kinds of principal present a credential as `Authorization: Bearer`:
//!
//! - **Officers** read with an access token signed by their own key
//!   ([`crate::signing::access`]): every `/v1` read and the RA page's data
//!   need one, and show only the officer's domains (an officer of `*` sees
//!   all). Writes need no token: each is signed by its officer already.
//! - **CA callers** (the CA front, another CA's webhook, a script) ask for
//!   enrollment decisions with a bearer secret (`prc_…`, of which the
//!   service keeps only the SHA-256), or over HTTPS with a client
//!   certificate from the instance CA (`prereg ca issue-client`; its
//!   SHA-256 names the caller), for the token procedures they list.
//!
//! [`authenticate`] resolves the header once per request into a
//! [`Principal`] in the request's extensions (a refused credential is a 401
//! at once, and counts against the client address: too many and the address
//! gets 429); the extractors [`Officer`], [`Caller`] and [`Reader`] then
//! say which principal a route needs. No cookie is ever set or read, so a
//! cross-site request carries no credential a browser adds by itself.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::problem::ApiError;
use super::routes::blocking;
use crate::registry::unix_now;
use crate::registry::with_officer_keys;
use crate::signing::SigningError;
use crate::signing::access::verify_access;
use crate::store::{CallerRecord, OfficerRecord, TxKind};

/// How a CA caller's bearer secret begins (so a leaked one is recognisable).
pub const CALLER_SECRET_PREFIX: &str = "prc_";

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An RA officer, by access token.
    Officer(OfficerRecord),
    /// A CA caller, by bearer secret.
    Caller(CallerRecord),
}

impl Principal {
    /// How logs and audit records name it: `officer:NAME` or `caller:NAME`.
    pub fn label(&self) -> String {
        match self {
            Principal::Officer(o) => format!("officer:{}", o.name),
            Principal::Caller(c) => format!("caller:{}", c.name),
        }
    }
}

/// A new caller secret: `prc_` and 256 random bits, base64url.
pub fn new_caller_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    format!("{CALLER_SECRET_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 (lowercase hex) the service keeps of a caller secret.
pub fn caller_secret_sha256(secret: &str) -> String {
    prereg_pki::hex(&Sha256::digest(secret.trim().as_bytes()))
}

/// Set on a response to an authenticated request: who made it (for the
/// request's log line).
#[derive(Debug, Clone)]
pub struct Authenticated(pub String);

/// The address of the client that sent `request`: the peer of the
/// connection (a trusted proxy's `X-Forwarded-For` is resolved before this,
/// by [`super::listener`]).
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip())
}

/// CA callers resolved from their bearer secrets (by the secret's
/// SHA-256), remembered with the store's change token
/// ([`crate::registry::TokenMemo`], as dry runs are): while nothing is
/// committed, by any process, a request with the same secret is resolved
/// without a transaction or a trip to the blocking pool. Any commit (a
/// caller disabled, another added) changes the token, and the next request
/// is resolved from the store again. Refused secrets are never remembered.
pub type ResolvedCallers = crate::registry::TokenMemo<String, Principal>;

/// Middleware: resolves the request's credential, if it has one, into a
/// [`Principal`] in its extensions; a refused credential is answered 401
/// here, and an address that was refused too often 429.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // EST authenticates devices itself (HTTP Basic with the registration's
    // password, or a client certificate of the device): neither is a
    // principal of the API.
    if request.uri().path().starts_with(super::enrollment::EST_PREFIX) {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        // No header: a client certificate may name a CA caller.
        let certificate = request.extensions().get::<super::listener::ClientCertificate>().cloned();
        if let Some(super::listener::ClientCertificate(sha256, _)) = certificate {
            let resolving = state.clone();
            match blocking(move || caller_by_certificate(&resolving, &sha256)).await {
                Ok(Some(principal)) => return with_principal(request, principal, next).await,
                Ok(None) => {}
                Err(e) => return e.into_response(),
            }
        }
        return next.run(request).await;
    };
    let client = client_ip(request.extensions());
    if let Err(wait) = state.auth_failures().check(client) {
        return ApiError::too_many_requests(
            wait,
            format!("too many refused credentials from this address; try again in {wait} s"),
        )
        .into_response();
    }
    let credential = match value.to_str().ok().and_then(bearer) {
        Some(credential) => credential.to_owned(),
        None => {
            state.auth_failures().failed(client);
            return ApiError::unauthenticated("the Authorization header must be `Bearer <token>`").into_response();
        }
    };
    // A caller's secret resolved before, with nothing committed since.
    let caller_secret = credential.starts_with(CALLER_SECRET_PREFIX).then(|| caller_secret_sha256(&credential));
    let token = match &caller_secret {
        Some(_) => state.registry().storage().change_token().ok().flatten(),
        None => None,
    };
    if let (Some(token), Some(sha256)) = (token, &caller_secret)
        && let Some(principal) = state.resolved_callers().get(token, sha256)
    {
        return with_principal(request, principal, next).await;
    }
    let resolving = state.clone();
    match blocking(move || resolve(&resolving, &credential)).await {
        Ok(principal) => {
            if let (Some(token), Some(sha256)) = (token, caller_secret) {
                state
                    .resolved_callers()
                    .remember(token, std::collections::HashMap::from([(sha256, principal.clone())]));
            }
            with_principal(request, principal, next).await
        }
        Err(e) => {
            if e.status() == axum::http::StatusCode::UNAUTHORIZED {
                state.metrics().credential_refused();
                state.auth_failures().failed(client);
                tracing::warn!(client = %client, detail = %e, "credential refused");
            }
            e.into_response()
        }
    }
}

/// Runs `request` as `principal`'s, and names it on the response (for the
/// request's log line).
async fn with_principal(mut request: Request, principal: Principal, next: Next) -> Response {
    let label = Authenticated(principal.label());
    tracing::Span::current().record("principal", label.0.as_str());
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(label);
    response
}

/// The enabled CA caller whose client certificate has this SHA-256, if
/// any: a certificate of the instance CA that names no caller (a device's)
/// is no credential, and a disabled caller's is refused.
fn caller_by_certificate(state: &AppState, sha256: &str) -> Result<Option<Principal>, ApiError> {
    let mut tx = state.registry().storage().begin(TxKind::Read)?;
    match tx.caller_by_certificate(sha256)? {
        Some(caller) if caller.disabled_at.is_some() => {
            Err(ApiError::unauthenticated(format!("CA caller {:?} is disabled", caller.name)))
        }
        Some(caller) => Ok(Some(Principal::Caller(caller))),
        None => Ok(None),
    }
}

/// The credential of an `Authorization: Bearer` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credential) = value.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

/// The principal a credential stands for.
fn resolve(state: &AppState, credential: &str) -> Result<Principal, ApiError> {
    let mut tx = state.registry().storage().begin(TxKind::Read)?;
    if credential.starts_with(CALLER_SECRET_PREFIX) {
        let caller = tx
            .caller_by_secret(&caller_secret_sha256(credential))?
            .ok_or_else(|| ApiError::unauthenticated("no CA caller has that secret"))?;
        if caller.disabled_at.is_some() {
            return Err(ApiError::unauthenticated(format!("CA caller {:?} is disabled", caller.name)));
        }
        return Ok(Principal::Caller(caller));
    }
    let instance = tx.instance_id()?.ok_or_else(|| ApiError::unavailable("the instance is not initialised"))?;
    let (verified, officer) =
        with_officer_keys(tx.as_mut(), |key| verify_access(credential, &instance, unix_now(), key))?;
    match (verified, officer) {
        (Ok(_), Some(officer)) if officer.disabled_at.is_some() => {
            Err(ApiError::unauthenticated(format!("officer {:?}'s key is disabled", officer.name)))
        }
        (Ok(_), Some(officer)) => Ok(Principal::Officer(officer)),
        (Ok(v), None) => Err(ApiError::unauthenticated(SigningError::UnknownKey(v.kid).to_string())),
        (Err(e), _) => Err(ApiError::unauthenticated(format!("the access token was refused: {e}"))),
    }
}

fn principal(parts: &Parts) -> Option<&Principal> {
    parts.extensions.get::<Principal>()
}

/// A route an officer reads: the request carried a valid access token.
#[derive(Debug, Clone)]
pub struct Officer(pub OfficerRecord);

impl Officer {
    /// The domains it may read: `None` for every domain.
    pub fn domains(&self) -> Option<Vec<String>> {
        self.0.readable_domains()
    }

    /// Whether it may read `domain`'s data.
    pub fn reads(&self, domain: &str) -> bool {
        self.0.may_act_in(domain)
    }

    /// Refuses unless it is an officer of every domain (instance-wide reads:
    /// the whole audit chain, its checkpoints).
    pub fn of_every_domain(&self, what: &str) -> Result<(), ApiError> {
        if self.0.has_all_domains() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("{what} needs an officer of every domain (\"*\")")))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Officer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts) {
            Some(Principal::Officer(o)) => Ok(Officer(o.clone())),
            Some(Principal::Caller(c)) => Err(ApiError::forbidden(format!(
                "CA caller {:?} may ask for decisions only; this needs an officer",
                c.name
            ))),
            None => Err(ApiError::unauthenticated(
                "this needs an officer's access token (Authorization: Bearer, a JWS signed by the officer's key)",
            )),
        }
    }
}

/// A route a CA caller calls: the request carried a valid caller secret.
#[derive(Debug, Clone)]
pub struct Caller(pub CallerRecord);

impl Caller {
    /// Refuses unless it may ask for decisions of `procedure`.
    pub fn may_ask_for(&self, procedure: &str) -> Result<(), ApiError> {
        if self.0.procedures.iter().any(|p| p == procedure) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "CA caller {:?} may not ask for token procedure {procedure:?}",
                self.0.name
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match principal(parts) {
            Some(Principal::Caller(c)) => Ok(Caller(c.clone())),
            Some(Principal::Officer(o)) => Err(ApiError::forbidden(format!(
                "officer {:?} signs writes; enrollment decisions are asked by a CA caller (`prereg caller add`)",
                o.name
            ))),
            None => Err(ApiError::unauthenticated(
                "this needs a CA caller's secret (Authorization: Bearer prc_…, from `prereg caller add`)",
            )),
        }
    }
}

/// A route any principal may read (an officer or a CA caller).
#[derive(Debug, Clone)]
pub struct Reader(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts)
            .cloned()
            .map(Reader)
            .ok_or_else(|| ApiError::unauthenticated("this needs an officer's access token or a CA caller's secret"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn secrets_are_long_random_and_kept_as_a_hash() {
        let a = new_caller_secret();
        let b = new_caller_secret();
        assert!(a.starts_with(CALLER_SECRET_PREFIX) && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(caller_secret_sha256(&a).len(), 64);
        assert_ne!(caller_secret_sha256(&a), caller_secret_sha256(&b));
    }
}
