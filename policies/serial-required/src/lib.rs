//! `serial-required`: the rules of SPEC.md, plus one: a SCEP or CMP request
//! must carry a serial number, and the registration that decides must hold
//! that serial number. Registrations made through a SCEP or CMP token
//! procedure must therefore have one. Other protocols follow SPEC.md.

#![allow(unsafe_code)] // the export macro's attributes

use std::cell::RefCell;

use prereg_sdk::prelude::*;
use prereg_sdk::{LookupError, PasswordCheck, Procedure, Protocol, Registration};

/// The policy.
pub struct SerialRequired;

fn serial_protocol(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Scep | Protocol::Cmp)
}

impl Policy for SerialRequired {
    fn metadata() -> PolicyMetadata {
        PolicyMetadata { name: "serial-required".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn validate_registration(
        host: &impl PolicyHost,
        request: RegistrationRequest,
    ) -> Result<ValidRegistration, ValidationError> {
        let valid = prereg_rules::validate_registration(host, &request)?;
        let scep_or_cmp = host.procedure(&request.procedure).is_some_and(|p| serial_protocol(p.protocol));
        if scep_or_cmp && valid.serial.is_none() {
            return Err(ValidationError::new(
                Field::Serial,
                format!("token procedure {:?} is SCEP or CMP: a serial number is required", request.procedure),
            ));
        }
        Ok(valid)
    }

    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision {
        let remembered = Remembering { host, seen: RefCell::new(Vec::new()) };
        let decision = prereg_rules::decide(&remembered, &request);
        with_serial(&remembered, &request.procedure, request.serial.as_deref(), decision)
    }

    fn decide_renewal(host: &impl PolicyHost, request: RenewalRequest) -> Decision {
        let remembered = Remembering { host, seen: RefCell::new(Vec::new()) };
        let decision = prereg_rules::decide_renewal(&remembered, &request);
        with_serial(&remembered, &request.procedure, request.serial.as_deref(), decision)
    }
}

/// The rule this policy adds, after the default decision: through a SCEP or
/// CMP procedure, an allow needs a serial number in the request and in the
/// deciding registration (which the default rules then found equal).
fn with_serial<H: PolicyHost>(
    remembered: &Remembering<'_, H>,
    procedure: &str,
    serial: Option<&str>,
    decision: Decision,
) -> Decision {
    let scep_or_cmp = remembered.procedure(procedure).is_some_and(|p| serial_protocol(p.protocol));
    if !scep_or_cmp || !decision.allowed || decision.reason != Reason::Matched {
        return decision;
    }
    let chosen = remembered.seen.borrow().iter().find(|r| Some(r.id) == decision.registration).cloned();
    match (serial.map(str::trim).filter(|s| !s.is_empty()), chosen) {
        (None, chosen) => Decision::new(
            Reason::SerialMismatch,
            chosen.map(|r| r.id),
            "SCEP and CMP requests must carry a serial number; this one has none",
        ),
        (Some(_), Some(r)) if r.serial.is_none() => Decision::new(
            Reason::SerialMismatch,
            Some(r.id),
            format!("registration {} ({}) has no serial number; SCEP and CMP need one", r.id, r.pattern),
        ),
        _ => decision,
    }
}

/// A host that remembers the candidates it handed out.
struct Remembering<'h, H> {
    host: &'h H,
    seen: RefCell<Vec<Registration>>,
}

impl<H: PolicyHost> PolicyHost for Remembering<'_, H> {
    fn procedure(&self, name: &str) -> Option<Procedure> {
        self.host.procedure(name)
    }

    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        let list = self.host.candidates(domain, fqdn)?;
        self.seen.borrow_mut().extend(list.iter().cloned());
        Ok(list)
    }

    fn check_password(&self, registration: u64) -> PasswordCheck {
        self.host.check_password(registration)
    }

    fn is_public_suffix(&self, name: &str) -> bool {
        self.host.is_public_suffix(name)
    }

    fn now(&self) -> u64 {
        self.host.now()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }
}

#[cfg(target_arch = "wasm32")]
prereg_sdk::export_policy!(SerialRequired, cases = "cases.toml");
