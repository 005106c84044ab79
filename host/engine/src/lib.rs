//! prereg-engine: runs preregistration policies, WebAssembly components of
//! the `prereg:policy` world (`wit/policy.wit`), in a sandbox, over facts that
//! the embedder provides. No storage, no HTTP, no CLI: a CA that embeds it
//! keeps its registrations where it likes and implements [`PolicyHost`].
//!
//! - [`PolicyEngine`] (one per process): wasmtime, with the [`Limits`] of
//!   every evaluation, the instance [`Allocation`] and the epoch ticker.
//! - [`WasmPolicy`]: a component compiled once and linked; every evaluation
//!   gets a fresh store (deny-all WASI, memory cap, deadline, import budget).
//!   [`inspect`] holds the checks made before compiling (WIT version, allowed
//!   imports), [`cache`] precompiled policies. [`builtin`] is the default
//!   policy, embedded.
//! - [`PolicyHost`]: what the embedder implements (procedures, candidates,
//!   the password check, public suffixes, time, log).
//! - [`Evaluation`]: one evaluation's facts, bounded and traced;
//!   [`host_calls`] records and replays them.
//! - [`guard`]: the host's check of every answer; [`decide`] runs a policy
//!   and the guard together.
//! - [`Policy`]: a loaded policy, WebAssembly or the natively linked default
//!   ([`NativeDefaultPolicy`], the benchmarks' baseline: the same code as the
//!   built-in component).
//!
//! ```
//! use prereg_core::{EnrollmentRequest, Fqdn, PasswordCheck, Procedure, Protocol};
//! use prereg_engine::{Candidate, HostCalls, HostError, Limits, PolicyEngine, PolicyHost, WasmPolicy, decide};
//!
//! /// A host that knows one procedure and no device.
//! struct NoDevices;
//! impl PolicyHost for NoDevices {
//!     fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError> {
//!         Ok((name == "routers").then(|| Procedure {
//!             name: name.into(), domain: "corp".into(), protocol: Protocol::Scep,
//!             require_preregistration: true, allowed_domains: vec!["example.com".into()],
//!         }))
//!     }
//!     fn candidates(&mut self, _: &str, _: &Fqdn, _: usize) -> Result<Vec<Candidate>, HostError> { Ok(vec![]) }
//!     fn check_password(&mut self, _: u64) -> Result<PasswordCheck, HostError> { Ok(PasswordCheck::NotSet) }
//!     fn now(&self) -> u64 { 1_700_000_000 }
//! }
//!
//! let engine = PolicyEngine::new(Limits::default())?;
//! let policy = WasmPolicy::builtin(&engine)?;
//! let request = EnrollmentRequest { procedure: "routers".into(), fqdn: "r1.example.com".into(), ..Default::default() };
//! let decided = decide(&policy, Box::new(NoDevices), &request, HostCalls::Live);
//! assert_eq!(decided.decision.reason.code(), "no-registration");
//! # Ok::<(), prereg_engine::EngineError>(())
//! ```

pub mod builtin;
pub mod cache;
mod component;
mod engine;
mod errors;
pub mod evaluation;
pub mod guard;
mod host;
pub mod host_calls;
pub mod inspect;
pub mod policy;
pub mod public_suffix;

pub use component::WasmPolicy;
pub use engine::{Allocation, EPOCH_TICK, Limits, PolicyEngine};
pub use errors::EngineError;
pub use evaluation::{Evaluation, Offer, Trace};
pub use guard::{Decided, decide, decide_renewal};
pub use host::{Candidate, HostError, PolicyHost, downcast_host};
pub use host_calls::HostCalls;
pub use policy::{NativeDefaultPolicy, Policy, PolicyFailure, PolicyInfo, Validation, decide_renewal_by_default};

/// SHA-256 of `bytes`, in lower-case hex: how prereg names a component (and
/// an artifact of the precompiled cache).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    sha2::Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
