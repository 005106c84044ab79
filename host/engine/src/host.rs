//! What an embedder implements: [`PolicyHost`], the facts of one evaluation
//! (the WIT `prereg:policy/host` interface, as the embedder keeps it).
//!
//! Two traits carry the same questions, on either side of the engine:
//!
//! - [`prereg_core::PolicyHost`] is what a *policy* sees: infallible answers,
//!   the same for the WebAssembly guest and the natively linked default
//!   policy.
//! - [`PolicyHost`] (this one) is what an *embedder* implements: fallible
//!   answers from its own storage, and the request's secret (the password)
//!   kept on the embedder's side.
//!
//! The engine's [`crate::Evaluation`] stands between them: it bounds every
//! question (lookups, candidates, password checks, log lines), records what
//! it handed out so that [`crate::guard`] can check an allow against it, and
//! records or replays the answers ([`crate::host_calls`]).

use std::any::Any;

use prereg_core::{Fqdn, LogLevel, PasswordCheck, Procedure, Registration};

/// A registration offered as a candidate, with the domain it belongs to (the
/// guard refuses an allow for a registration of another domain, whatever the
/// embedder's storage returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The registration, as the policy will see it.
    pub registration: Registration,
    /// The domain it was registered under (shared: the candidates of one
    /// lookup are usually all of the domain asked).
    pub domain: std::sync::Arc<str>,
}

/// Why the embedder could not answer a question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// More candidates than the limit the engine asked for.
    #[error("too many candidates")]
    TooMany,
    /// The embedder's storage failed: the evaluation's outcome is not a
    /// decision (the guard refuses any allow, and the embedder should report
    /// the failure rather than a deny).
    #[error("the host's storage is unavailable: {0}")]
    Unavailable(String),
    /// A shared resource stayed busy (the pool of password checks): the
    /// evaluation could not be finished now, and its outcome must not count.
    #[error("the host is busy")]
    Busy,
}

/// The facts of one evaluation, from the embedder: token procedures,
/// preregistered devices, and the check of the request's password. One value
/// serves one evaluation; the engine gives it back when the evaluation ends
/// ([`crate::Evaluation::finish`]), so it may hold a storage transaction.
///
/// `Send`: wasmtime keeps it in a store. `Any` lets an embedder take its own
/// type back ([`downcast_host`]).
pub trait PolicyHost: Any + Send {
    /// The token procedure called `name`, or `None`.
    fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError>;

    /// The registrations of `domain` whose pattern may match the canonical
    /// name `fqdn`: those whose index key
    /// ([`prereg_core::IndexKey::of_canonical`] of the pattern) is one of
    /// [`prereg_core::IndexKey::probes`] of `fqdn`. More than `limit` is
    /// [`HostError::TooMany`] (or a longer list, which the engine refuses
    /// alike). The engine checks the patterns itself; returning a
    /// registration that does not match is harmless, omitting one denies it.
    fn candidates(&mut self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Candidate>, HostError>;

    /// Compares the request's password (which only the embedder holds) with
    /// that of `registration`. The engine asks only for registrations it
    /// offered, and at most [`crate::evaluation::MAX_PASSWORD_CHECKS`] times.
    fn check_password(&mut self, registration: u64) -> Result<PasswordCheck, HostError>;

    /// Whether a canonical name is a public suffix. By default, the public
    /// suffix list compiled into the engine.
    fn is_public_suffix(&mut self, name: &str) -> bool {
        crate::public_suffix::is_public_suffix(name)
    }

    /// The time of the evaluation, in Unix seconds (read once, when the
    /// evaluation starts).
    fn now(&self) -> u64;

    /// A line the policy logs (already bounded by the engine). By default,
    /// `tracing` at the policy's level.
    fn log(&mut self, policy: &str, level: LogLevel, message: &str) {
        match level {
            LogLevel::Debug => tracing::debug!(policy, "{message}"),
            LogLevel::Info => tracing::info!(policy, "{message}"),
            LogLevel::Warn => tracing::warn!(policy, "{message}"),
        }
    }
}

/// The embedder's host as its own type, when the engine gives it back
/// ([`crate::Evaluation::finish`], [`crate::Decided::host`]); `None` if it
/// was another type.
pub fn downcast_host<H: PolicyHost>(host: Box<dyn PolicyHost>) -> Option<Box<H>> {
    let host: Box<dyn Any> = host;
    host.downcast::<H>().ok()
}
