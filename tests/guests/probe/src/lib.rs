//! A policy that does one measurable thing per request, for the `boundary/*`
//! benchmarks (`benches/decision.rs`): what a host→guest call, a guest→host
//! import and a list of candidates cost on their own.
//!
//! What it does depends on the first label of the request name, up to its
//! first `-` (so `candidates-x.zone.example` looks up that name):
//!
//! | first label | behaviour |
//! | --- | --- |
//! | `empty` | denies at once: no import (the request still crosses in, the decision out) |
//! | `imports` | calls the host's `now` N times, N being the request's serial number |
//! | `candidates` | looks up the candidates of the procedure's domain for the name, and denies |
//! | anything else | denies |
//!
//! It never allows anything. Never use it for real decisions.

use std::hint::black_box;

use prereg_sdk::prelude::*;

/// The probe policy.
pub struct Probe;

impl Policy for Probe {
    fn metadata() -> PolicyMetadata {
        PolicyMetadata { name: "probe".into(), version: "0.0.1".into() }
    }

    fn validate_registration(
        _host: &impl PolicyHost,
        _request: RegistrationRequest,
    ) -> Result<ValidRegistration, ValidationError> {
        Err(ValidationError::new(Field::Fqdn, "the probe policy accepts no registrations"))
    }

    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision {
        let deny = |what: String| Decision::new(Reason::NoRegistration, None, what);
        let label = request.fqdn.split('.').next().unwrap_or_default();
        match label.split('-').next().unwrap_or_default() {
            "empty" => deny(String::new()),
            "imports" => {
                let n: u32 = request.serial.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                let mut sum = 0u64;
                for _ in 0..n {
                    sum = black_box(sum.wrapping_add(host.now()));
                }
                deny(format!("{n} imports ({sum})"))
            }
            "candidates" => {
                let Some(procedure) = host.procedure(&request.procedure) else {
                    return Decision::new(Reason::UnknownProcedure, None, "no such procedure");
                };
                let Ok(fqdn) = Fqdn::parse(&request.fqdn) else {
                    return Decision::new(Reason::InvalidFqdn, None, "not a name");
                };
                match host.candidates(&procedure.domain, &fqdn) {
                    Ok(found) => deny(format!("{} candidates", black_box(found).len())),
                    Err(_) => deny("lookup failed".into()),
                }
            }
            _ => deny("the probe policy denies".into()),
        }
    }
}

#[cfg(target_arch = "wasm32")]
prereg_sdk::export_policy!(Probe);
