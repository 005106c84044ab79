//! The host's safety net over a policy's answer: whatever a policy says, an
//! allow must be backed by what the host handed out during that evaluation
//! (the registrations it offered, the password checks that matched, the
//! procedure's rules). A policy whose answer fails it gets `policy-error`,
//! never an allow. Used by real decisions (`decisions.rs`) and by the
//! shadow policy's (`shadow.rs`) alike.

use prereg_core::model::{canonical_ip, serial_eq};
use prereg_core::{Decision, EnrollmentRequest, Fqdn, PasswordCheck, Reason, RegistrationState};

use crate::evaluation::Trace;
use crate::store::Tx;

pub(super) fn policy_error(kind: &str, message: &str) -> Decision {
    Decision::new(Reason::PolicyError, None, format!("policy error ({kind}): {message}"))
}

/// The host's own safety net: whatever a policy says, an allow must be backed
/// by what the host handed out during this evaluation. A policy that fails
/// this check gets `policy-error`, never an allow.
pub(super) fn guard(
    decision: &Decision,
    trace: &Trace,
    request: &EnrollmentRequest,
    tx: &mut dyn Tx,
    now: u64,
) -> Result<(), String> {
    if let Some(storage) = &trace.storage_error {
        return Err(format!("storage failed during the evaluation: {storage}"));
    }
    if let Some(violation) = &trace.violation {
        return Err(violation.clone());
    }
    if decision.allowed != decision.reason.allows() {
        return Err(format!("allowed={} contradicts reason {}", decision.allowed, decision.reason));
    }
    if decision.reason == Reason::PolicyError {
        return Err("a policy may not claim policy-error itself".into());
    }
    if let Some(id) = decision.registration
        && !trace.offered.contains_key(&id)
    {
        return Err(format!("the decision names registration {id}, which the host never offered"));
    }
    match decision.reason {
        Reason::NotRequired => {
            let procedure = tx.procedure(&request.procedure).map_err(|e| e.to_string())?;
            match procedure {
                Some(p) if !p.require_preregistration && !p.protocol.always_requires_preregistration() => Ok(()),
                _ => Err(format!("not-required, but token procedure {:?} requires preregistration", request.procedure)),
            }
        }
        Reason::Matched => {
            let id = decision.registration.ok_or("matched without a registration")?;
            let offer = &trace.offered[&id];
            let record = &offer.registration;
            let procedure = tx
                .procedure(&request.procedure)
                .map_err(|e| e.to_string())?
                .ok_or("matched, but the token procedure does not exist")?;
            let fqdn = Fqdn::parse(&request.fqdn).map_err(|e| format!("matched an invalid name: {e}"))?;
            // Offered for the request name, or for one of its parent names (a
            // policy may look up parents, as `multi-label` does).
            let offered_for_name = offer.fqdn == fqdn.as_str()
                || fqdn.as_str().strip_suffix(offer.fqdn.as_str()).is_some_and(|head| head.ends_with('.'));
            if offer.domain != procedure.domain || offer.registration_domain != procedure.domain || !offered_for_name {
                return Err(format!("registration {id} was offered for another domain or name"));
            }
            if record.state != RegistrationState::Open || !record.is_valid_at(now) || record.is_used_up() {
                return Err(format!("registration {id} is not usable (state {}, expired or used up)", record.state));
            }
            if let Some(ip) = &record.ip
                && request.ip.as_deref().and_then(canonical_ip).as_ref() != Some(ip)
            {
                return Err(format!("registration {id} requires IP {ip}"));
            }
            if let Some(serial) = &record.serial
                && !request.serial.as_deref().is_some_and(|s| serial_eq(s, serial))
            {
                return Err(format!("registration {id} requires another serial number"));
            }
            if record.has_password && trace.password_checks.get(&id) != Some(&PasswordCheck::Match) {
                return Err(format!("registration {id} has a password that was not checked successfully"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
