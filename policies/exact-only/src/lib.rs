//! `exact-only`: the rules of SPEC.md, except that wildcard registrations
//! (`*.zone`, `serial-*.zone`, the catch-all `*`) never match. Operators use
//! it while auditing a zone: only devices registered by their exact name
//! enroll. Registering patterns stays possible, so switching back to the
//! default policy restores them.

#![allow(unsafe_code)] // the export macro's attributes

use prereg_sdk::prelude::*;

/// The policy.
pub struct ExactOnly;

impl Policy for ExactOnly {
    fn metadata() -> PolicyMetadata {
        PolicyMetadata { name: "exact-only".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision {
        prereg_rules::decide_with(host, &request, exact)
    }

    fn decide_renewal(host: &impl PolicyHost, request: RenewalRequest) -> Decision {
        // A device enrolled under a pattern before the switch renews only if
        // it is registered by its exact name.
        prereg_rules::decide_renewal_with(host, &request, exact)
    }
}

/// Only a registration whose pattern is the request name itself matches.
fn exact(registration: &prereg_sdk::Registration, fqdn: &Fqdn) -> bool {
    registration.pattern == fqdn.as_str()
}

#[cfg(target_arch = "wasm32")]
prereg_sdk::export_policy!(ExactOnly, cases = "cases.toml");
