//! The default prereg policy: the rules of SPEC.md ([`prereg_rules`]),
//! exported as a component, with its test cases (`cases.toml`), which the
//! host runs when the policy is loaded.

#![allow(unsafe_code)] // the export macro's attributes

use prereg_sdk::prelude::*;

/// The default policy.
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn metadata() -> PolicyMetadata {
        prereg_rules::metadata()
    }

    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision {
        prereg_rules::decide(host, &request)
    }

    fn decide_renewal(host: &impl PolicyHost, request: RenewalRequest) -> Decision {
        prereg_rules::decide_renewal(host, &request)
    }
}

#[cfg(target_arch = "wasm32")]
prereg_sdk::export_policy!(DefaultPolicy, cases = "cases.toml");
