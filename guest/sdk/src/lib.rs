//! The prereg policy SDK.
//!
//! A policy is a Rust crate of type `cdylib`, compiled for `wasm32-wasip2`. It
//! implements [`Policy`] on plain Rust types (those of [`prereg_core`]) and
//! exports it with [`export_policy!`]:
//!
//! ```ignore
//! use prereg_sdk::prelude::*;
//!
//! struct Mine;
//! impl Policy for Mine {
//!     fn metadata() -> PolicyMetadata { /* name, version */ }
//!     fn validate_registration(host: &impl PolicyHost, request: RegistrationRequest)
//!         -> Result<ValidRegistration, ValidationError> { /* ... */ }
//!     fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision { /* ... */ }
//!     // decide_renewal: the default rules unless overridden.
//! }
//! prereg_sdk::export_policy!(Mine);
//! ```
//!
//! A policy may also be built for `wasm32-unknown-unknown` and made a component
//! with `wasm-tools component new` (as `host/engine/build.rs` does for the
//! built-in policy): it then imports no WASI, and a fresh instance of it is
//! cheaper to make. Give it some heap in its initial memory
//! (`-C link-arg=--initial-memory=...`): on that target the SDK's allocator
//! starts there.
//!
//! Because [`Policy`] only sees a [`PolicyHost`], the same code runs natively
//! (in tests, or in the prereg host's native baseline) against any
//! implementation of it. [`WasmHost`] is the one backed by the WIT imports.

// wit-bindgen's generated glue and the export macro need `unsafe` (export names,
// the canonical ABI); the SDK's own code does not use it.
#![allow(unsafe_code)]

pub use prereg_core as core;
pub use prereg_core::{
    Decision, EnrollmentRequest, Field, Fqdn, LogLevel, LookupError, PasswordCheck, Pattern, PolicyHost,
    PolicyMetadata, Procedure, Protocol, Reason, Registration, RegistrationRequest, RegistrationState, RenewalRequest,
    ValidRegistration, ValidationError,
};
pub use prereg_rules as rules;

mod convert;
mod wasm_host;

/// On `wasm32-unknown-unknown`, dlmalloc serves allocations from the heap
/// the linker left in the module's initial memory (`__heap_base` to
/// `__heap_end`) before it grows the memory. Rust's own allocator there always
/// grows first, and growing a pooled memory costs two `mprotect` calls per
/// instance: a tenth of a decision.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

pub use wasm_host::WasmHost;

/// Generated bindings of the `prereg:policy/policy-module` world (`wit/policy.wit`).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "prereg:policy/policy-module",
        pub_export_macro: true,
        export_macro_name: "__export_policy_module",
        default_bindings_module: "prereg_sdk::bindings",
    });
}

/// The WIT package version this SDK was built against, as embedded in the
/// `prereg:wit-version` custom section of every policy.
pub const WIT_VERSION: &str = prereg_core::WIT_VERSION;

/// Everything a policy usually needs.
pub mod prelude {
    pub use crate::{
        Decision, EnrollmentRequest, Field, Fqdn, LogLevel, Pattern, Policy, PolicyHost, PolicyMetadata, Reason,
        RegistrationRequest, RenewalRequest, ValidRegistration, ValidationError,
    };
}

/// A preregistration policy.
pub trait Policy {
    /// The policy's name and version.
    fn metadata() -> PolicyMetadata;

    /// Validates a new registration; returns it in canonical form or the
    /// field at fault. By default, SPEC.md's validation ([`prereg_rules`]).
    fn validate_registration(
        host: &impl PolicyHost,
        request: RegistrationRequest,
    ) -> Result<ValidRegistration, ValidationError> {
        prereg_rules::validate_registration(host, &request)
    }

    /// Decides an enrollment request.
    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision;

    /// Decides a renewal: a device with a valid certificate from this CA
    /// asks for a new one (EST `simplereenroll`, CMP `kur`). By default,
    /// [`prereg_rules::decide_renewal`]: the registration the certificate
    /// was issued under must still cover the device and be neither
    /// disabled, locked nor expired. A policy that changes how names match
    /// in [`Policy::decide`] should match the same way here
    /// ([`prereg_rules::decide_renewal_with`]).
    fn decide_renewal(host: &impl PolicyHost, request: RenewalRequest) -> Decision {
        prereg_rules::decide_renewal(host, &request)
    }
}

/// Glue between a [`Policy`] and the generated export trait. Not for direct use.
#[doc(hidden)]
pub struct Export<P>(std::marker::PhantomData<P>);

impl<P: Policy> bindings::exports::prereg::policy::policy::Guest for Export<P> {
    fn metadata() -> bindings::exports::prereg::policy::policy::PolicyMetadata {
        P::metadata().into()
    }

    fn validate_registration(
        request: bindings::exports::prereg::policy::policy::RegistrationRequest,
    ) -> Result<
        bindings::exports::prereg::policy::policy::ValidRegistration,
        bindings::exports::prereg::policy::policy::ValidationError,
    > {
        P::validate_registration(&WasmHost, request.into()).map(Into::into).map_err(Into::into)
    }

    fn decide(
        request: bindings::exports::prereg::policy::policy::EnrollmentRequest,
    ) -> bindings::exports::prereg::policy::policy::Decision {
        P::decide(&WasmHost, request.into()).into()
    }
}

impl<P: Policy> bindings::exports::prereg::policy::renewal::Guest for Export<P> {
    fn decide_renewal(
        request: bindings::exports::prereg::policy::renewal::RenewalRequest,
    ) -> bindings::exports::prereg::policy::policy::Decision {
        P::decide_renewal(&WasmHost, request.into()).into()
    }
}

/// Exports a [`Policy`] as the component's `prereg:policy/policy` and
/// `prereg:policy/renewal` interfaces and
/// records the WIT version in the `prereg:wit-version` custom section.
///
/// With `cases = "FILE"` (a path relative to the crate's `Cargo.toml`), the
/// policy also ships its own test cases (the format of `prereg policy test`)
/// in the `prereg:test-cases` custom section: the host runs them when the
/// policy is loaded, and refuses it if one fails.
///
/// ```ignore
/// prereg_sdk::export_policy!(MyPolicy, cases = "cases.toml");
/// ```
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "prereg:wit-version")]
        #[used]
        static __PREREG_WIT_VERSION: [u8; 5] = *b"0.1.1";

        type __PreregExport = $crate::Export<$policy>;
        $crate::bindings::__export_policy_module!(__PreregExport with_types_in $crate::bindings);
    };
    ($policy:ty, cases = $cases:literal) => {
        $crate::export_policy!($policy);

        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "prereg:test-cases")]
        #[used]
        static __PREREG_TEST_CASES: [u8; include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $cases)).len()] =
            *include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $cases));
    };
}
