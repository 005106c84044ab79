//! A policy of WIT 0.1.0, as an author built it before 0.1.1 added
//! `renewal`: bindings generated straight from the frozen
//! `wit/v0.1.0/policy.wit` (not through the SDK, which follows the current
//! WIT), and the version recorded as the SDK of that time did.
//!
//! Its rule is short and real: a device enrolls when an open registration of
//! the procedure's domain has exactly its name (no patterns, no passwords,
//! no pins). It validates no registrations. `tests/all/renewal.rs` checks that
//! a host of 0.1.1 loads it, asks it for decisions, and decides renewals of
//! its devices with the default rules, saying so.

// The export macro's attributes and the canonical ABI glue.
#![allow(unsafe_code)]

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/v0.1.0",
        world: "prereg:policy/policy-module",
    });
}

use bindings::exports::prereg::policy::policy::{
    Decision, EnrollmentRequest, Guest, PolicyMetadata, RegistrationRequest, ValidRegistration, ValidationError,
};
use bindings::prereg::policy::host;
use bindings::prereg::policy::types::{Reason, RegistrationState};

/// The legacy policy.
pub struct Legacy;

fn deny(reason: Reason, explanation: &str) -> Decision {
    Decision { allowed: false, reason, registration: None, explanation: explanation.into() }
}

impl Guest for Legacy {
    fn metadata() -> PolicyMetadata {
        PolicyMetadata { name: "legacy".into(), version: "0.1.0".into() }
    }

    fn validate_registration(_request: RegistrationRequest) -> Result<ValidRegistration, ValidationError> {
        Err(ValidationError { field: "fqdn".into(), message: "the legacy policy validates no registrations".into() })
    }

    fn decide(request: EnrollmentRequest) -> Decision {
        let Some(procedure) = host::get_procedure(&request.procedure) else {
            return deny(Reason::UnknownProcedure, "no such token procedure");
        };
        let name = request.fqdn.trim().trim_end_matches('.').to_ascii_lowercase();
        let Ok(candidates) = host::find_candidates(&procedure.domain, &name) else {
            return deny(Reason::NoRegistration, "candidate lookup failed");
        };
        let exact = candidates.iter().find(|r| {
            r.pattern == name
                && r.state == RegistrationState::Open
                && !r.has_password
                && r.ip.is_none()
                && r.serial.is_none()
                && r.max_enrollments.is_none_or(|max| r.enrollments < max)
                && r.expires_at.is_none_or(|end| end > host::now())
        });
        match exact {
            Some(r) => Decision {
                allowed: true,
                reason: Reason::Matched,
                registration: Some(r.id),
                explanation: format!("legacy: {name} is registered by its exact name"),
            },
            None => deny(Reason::NoRegistration, "legacy: no open registration has exactly this name"),
        }
    }
}

bindings::export!(Legacy with_types_in bindings);

/// The version the SDK of 0.1.0 recorded.
#[cfg(target_arch = "wasm32")]
#[unsafe(link_section = "prereg:wit-version")]
#[used]
static WIT_VERSION: [u8; 5] = *b"0.1.0";
