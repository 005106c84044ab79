//! The host's safety net over a policy's answer: whatever a policy says, an
//! allow must be backed by what the host handed out during that evaluation
//! (the registrations it offered, the password checks that matched, the
//! procedure's rules). A policy whose answer fails it gets `policy-error`,
//! never an allow. [`decide`] runs a policy and the guard together: real
//! decisions and the shadow policy's alike go through it.

use prereg_core::model::{canonical_ip, serial_eq};
use prereg_core::{Decision, EnrollmentRequest, Fqdn, PasswordCheck, Reason, RegistrationState};

use crate::evaluation::{Evaluation, Trace};
use crate::host::PolicyHost;
use crate::host_calls::HostCalls;
use crate::policy::Policy;

/// A decision that the guard has checked, with what happened and the
/// embedder's host back.
pub struct Decided {
    /// The decision: the policy's, or `policy-error` if the policy failed or
    /// its answer did not pass the guard.
    pub decision: Decision,
    /// What the evaluation handed out and recorded.
    pub trace: Trace,
    /// The embedder's host, given back.
    pub host: Box<dyn PolicyHost>,
}

/// Decides `request` with `policy` over the embedder's `host`, and checks
/// the answer with [`guard`]. A failed policy and an answer the guard
/// refuses are both `policy-error` (a deny).
pub fn decide(
    policy: &dyn Policy,
    host: Box<dyn PolicyHost>,
    request: &EnrollmentRequest,
    calls: HostCalls,
) -> Decided {
    let evaluation = Evaluation::new(host, &policy.info().name).with_host_calls(calls);
    let (result, evaluation) = policy.decide(evaluation, request);
    let (mut host, trace) = evaluation.finish();
    let decision = match result {
        Ok(decision) => match guard(&decision, &trace, request, host.as_mut()) {
            Ok(()) => decision,
            Err(why) => policy_error("invalid-output", &why),
        },
        Err(failure) => policy_error(failure.kind, &failure.message),
    };
    Decided { decision, trace, host }
}

/// The `policy-error` decision for a failure of `kind`.
pub fn policy_error(kind: &str, message: &str) -> Decision {
    Decision::new(Reason::PolicyError, None, format!("policy error ({kind}): {message}"))
}

/// The host's own safety net: whatever a policy says, an allow must be backed
/// by what the host handed out during this evaluation. A policy that fails
/// this check gets `policy-error`, never an allow. The procedure is asked
/// of `host` again (not through the evaluation, so it is not recorded).
pub fn guard(
    decision: &Decision,
    trace: &Trace,
    request: &EnrollmentRequest,
    host: &mut dyn PolicyHost,
) -> Result<(), String> {
    let now = host.now();
    if let Some(failure) = &trace.host_error {
        return Err(format!("the host failed during the evaluation: {failure}"));
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
            let procedure = host.procedure(&request.procedure).map_err(|e| e.to_string())?;
            match procedure {
                Some(p) if !p.require_preregistration && !p.protocol.always_requires_preregistration() => Ok(()),
                _ => Err(format!("not-required, but token procedure {:?} requires preregistration", request.procedure)),
            }
        }
        Reason::Matched => {
            let id = decision.registration.ok_or("matched without a registration")?;
            let offer = &trace.offered[&id];
            let record = &offer.registration;
            let procedure = host
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
