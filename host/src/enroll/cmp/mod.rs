//! The CMP server (RFC 4210/9480, Lightweight CMP Profile RFC 9483, HTTP
//! transfer RFC 6712): `ir`, `cr` and `p10cr` with MAC protection keyed by the
//! registration's password, `certConf`/`pkiConf` and implicit confirmation;
//! for enrolled devices, signed with their certificate, `kur`
//! ([`key_update`]), `rr` ([`revocation`], also by MAC) and `genm`
//! ([`general`], also unprotected: what it answers is public).
//!
//! How a request is answered:
//!
//! 1. **The header** ([`checks`]): a PKIMessage that cannot be read, or
//!    whose header breaks the profile (pvno other than 2 or 3, no protection,
//!    a protection algorithm not accepted, no senderKID, a transactionID or
//!    senderNonce that is not 128 bits, a recipNonce in a first message, a
//!    messageTime outside the window, a malformed generalInfo), gets an
//!    `error` with the failInfo RFC 9483 §3.5 names. These errors cannot be
//!    protected: the server does not know yet whose secret to use.
//! 2. **The MAC, before the body** ([`enrollment`]): the senderKID names the
//!    device (its FQDN). A dry run of the decision finds the registration
//!    that decides; any denial before the password step (no registration,
//!    an IP that does not match, another domain, a registration used up or
//!    locked) is decided for real and audited, and the client gets the same
//!    `error` (`badMessageCheck`) as for a wrong secret, so that an answer
//!    never tells whether a name is registered. Otherwise the registration's
//!    sealed secret ([`crate::sealing`]) checks the MAC; a wrong one is
//!    decided as a `bad-password` and counts towards the lockout.
//! 3. **Once the MAC verifies, every answer is protected** with the same
//!    secret: a transactionID in use is an `error` (`transactionIdInUse`);
//!    what is wrong with the request's content (a bad proof of possession
//!    or PKCS#10 signature `badPOP`, a key not supported `badAlg`, a key
//!    size or template not accepted `badCertTemplate`, a certReqId other
//!    than 0 or more than one request `badRequest`) is a rejection in the
//!    `ip`/`cp`, audited as a refusal.
//! 4. The enrollment is decided, counted and audited, and its certificate
//!    issued and recorded, in one transaction
//!    ([`Registry::enroll_issuing`]). Without implicit confirmation the
//!    certificate is held until the client's `certConf` ([`confirmation`]),
//!    which any process of the instance may receive: an acceptance issues it
//!    for good; a rejection, or no `certConf` within the confirmation
//!    window, revokes it and gives its count back, once.
//!
//! Certificates carry the canonical FQDN the decision matched, and an IP
//! address or serial number only when the registration pins it.

pub use prereg_pki::cmp::{client, message, protection};

mod checks;
mod confirmation;
mod enrollment;
pub mod general;
mod key_update;
mod reply;
mod revocation;
mod signature;

use std::sync::Arc;

use prereg_core::Reason;

use self::message::{Body, FailInfo, Request};
use crate::enroll::Told;
use crate::pki::Ca;
use crate::registry::{Registry, RegistryError};

/// How long an issued certificate waits for its `certConf` by default.
pub const CONFIRM_WAIT_SECONDS: u64 = 300;

/// How far a request's messageTime may be from the server's clock by
/// default, in seconds.
pub const TIME_WINDOW_SECONDS: u64 = 600;

/// What an operator may tune of the CMP server (`prereg serve --cmp-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmpLimits {
    /// How long a certificate issued without implicit confirmation waits
    /// for its `certConf`, in seconds.
    pub confirm_wait_seconds: u64,
    /// Most PBM/PBMAC1 iterations accepted from a client.
    pub max_iterations: u64,
    /// How far a messageTime may be from the server's clock, in seconds
    /// (0: not checked).
    pub time_window_seconds: u64,
}

impl Default for CmpLimits {
    fn default() -> Self {
        CmpLimits {
            confirm_wait_seconds: CONFIRM_WAIT_SECONDS,
            max_iterations: protection::DEFAULT_MAX_ITERATIONS,
            time_window_seconds: TIME_WINDOW_SECONDS,
        }
    }
}

/// The CMP endpoint of one instance.
pub struct CmpServer {
    registry: Registry,
    ca: Arc<Ca>,
    limits: CmpLimits,
}

/// An answer that cannot be protected (the request is not authenticated):
/// an unprotected `error` with this failInfo and text.
#[derive(Debug)]
struct Refusal {
    fail: FailInfo,
    text: String,
}

fn refuse(fail: FailInfo, text: impl Into<String>) -> Refusal {
    Refusal { fail, text: text.into() }
}

/// What a client is told of a denial that depends on what is registered (no
/// registration, a wrong secret, an IP or serial that does not match, a
/// locked registration): one answer for all, so that a refusal never tells
/// whether a name is registered. The audit log keeps the real reason.
pub const NOT_AUTHORIZED: &str = "not-authorized";

/// What a client is told when its request cannot be authenticated: the
/// senderKID names no registration that can enroll it, or the MAC does not
/// verify with its secret (one text for both).
pub const NOT_AUTHENTICATED: &str =
    "the message's protection does not verify: no registration with this reference can enroll, or the secret is wrong";

/// The statusString and failInfo that tell a client its enrollment was denied.
pub fn denial_for(reason: Reason) -> (&'static str, FailInfo) {
    match crate::enroll::Told::of(reason) {
        Told::BadRequest | Told::UnknownProcedure => (reason.code(), FailInfo::BadRequest),
        Told::DomainNotAllowed => (reason.code(), FailInfo::NotAuthorized),
        Told::PolicyError => (reason.code(), FailInfo::SystemFailure),
        Told::NotAuthorized => (NOT_AUTHORIZED, FailInfo::NotAuthorized),
    }
}

impl CmpServer {
    /// A CMP server deciding with `registry` and issuing from `ca`.
    pub fn new(registry: Registry, ca: Arc<Ca>) -> Self {
        CmpServer { registry, ca, limits: CmpLimits::default() }
    }

    /// The same, with these limits instead of the defaults.
    pub fn with_limits(mut self, limits: CmpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Answers one DER PKIMessage posted for token procedure `procedure`.
    /// Never fails: every problem is a CMP error or rejection.
    pub fn handle(&self, procedure: &str, der: &[u8], now: u64) -> Vec<u8> {
        let request = match message::read(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "CMP: unreadable request");
                return self.unprotected_error(None, now, FailInfo::BadDataFormat, &e.to_string());
            }
        };
        match self.answer(procedure, &request, now) {
            Ok(response) => response,
            Err(refusal) => {
                tracing::info!(
                    procedure,
                    body = %request.body.name(),
                    fail = refusal.fail.name(),
                    "CMP: refused: {}",
                    refusal.text
                );
                self.unprotected_error(Some(&request), now, refusal.fail, &refusal.text)
            }
        }
    }

    fn answer(&self, procedure: &str, request: &Request, now: u64) -> Result<Vec<u8>, Refusal> {
        let transaction_id = checks::profile(request, &self.limits, now)?;
        if let Body::Genm(infos) = &request.body
            && request.protection_alg.is_none()
        {
            return self.general(procedure, request, None, infos, now);
        }
        let checked = checks::protection(request, &self.limits, transaction_id)?;
        match &request.body {
            Body::Ir(_) | Body::Cr(_) | Body::P10cr(_) => self.enroll(procedure, &checked, now),
            Body::Kur(_) => self.key_update(procedure, &checked, now),
            Body::CertConf(statuses) => self.confirm(&checked, statuses, now),
            Body::Rr(details) => self.revoke(&checked, details, now),
            Body::Genm(infos) => self.general(procedure, request, Some(&checked), infos, now),
            Body::Other(_) => Err(refuse(
                FailInfo::BadRequest,
                format!("{} is not served here (ir, cr, p10cr, kur, certConf, rr and genm are)", request.body.name()),
            )),
        }
    }
}

/// What a `certConf` that cannot be served is told.
mod confirmation_text {
    pub const NOTHING_WAITS: &str = "no certificate of this transaction awaits confirmation";
    pub const WRONG_NONCE: &str = "the recipNonce is not the senderNonce of the server's answer";
    pub const CONFIRMED: &str = "the certificate was confirmed already (implicit confirmation was granted, or a \
                                 certConf came before): the transaction is over";
    pub const REVOKED: &str =
        "the certificate was revoked (rejected, or not confirmed in time): the transaction is over";
    pub const WRONG_HASH: &str = "the certHash is not the hash of the certificate issued";
    pub const SETTLED: &str = "the certificate was settled already";
}

fn system(e: RegistryError) -> Refusal {
    if e.is_input_error() {
        return refuse(FailInfo::BadRequest, e.to_string());
    }
    tracing::error!(error = %e, "CMP: the registry failed");
    refuse(FailInfo::SystemFailure, "the server cannot decide now")
}
