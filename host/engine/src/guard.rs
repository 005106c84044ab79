//! The host's safety net over a policy's answer: whatever a policy says, an
//! allow must be backed by what the host handed out during that evaluation
//! (the registrations it offered, the password checks that matched, the
//! procedure's rules). A policy whose answer fails it gets `policy-error`,
//! never an allow. [`decide`] runs a policy and the guard together: real
//! decisions and the shadow policy's alike go through it; [`decide_renewal`]
//! does the same for renewals, with [`guard_renewal`].

use prereg_core::model::{canonical_ip, serial_eq};
use prereg_core::{Decision, EnrollmentRequest, Fqdn, PasswordCheck, Reason, RegistrationState, RenewalRequest};

use crate::evaluation::{Evaluation, Offer, Trace};
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
    guarded(
        policy,
        host,
        calls,
        |evaluation| policy.decide(evaluation, request),
        |decision, trace, host| guard(decision, trace, request, host),
    )
}

/// Decides the renewal `request` with `policy` over the embedder's `host`,
/// and checks the answer with [`guard_renewal`].
pub fn decide_renewal(
    policy: &dyn Policy,
    host: Box<dyn PolicyHost>,
    request: &RenewalRequest,
    calls: HostCalls,
) -> Decided {
    guarded(
        policy,
        host,
        calls,
        |evaluation| policy.decide_renewal(evaluation, request),
        |decision, trace, host| guard_renewal(decision, trace, request, host),
    )
}

/// One evaluation of `policy` (`ask`), its answer checked by `check`: a
/// failed policy and an answer `check` refuses are both `policy-error`.
fn guarded(
    policy: &dyn Policy,
    host: Box<dyn PolicyHost>,
    calls: HostCalls,
    ask: impl FnOnce(Evaluation) -> (Result<Decision, crate::policy::PolicyFailure>, Evaluation),
    check: impl FnOnce(&Decision, &Trace, &mut dyn PolicyHost) -> Result<(), String>,
) -> Decided {
    let evaluation = Evaluation::new(host, &policy.info().name).with_host_calls(calls);
    let (result, evaluation) = ask(evaluation);
    let (mut host, trace) = evaluation.finish();
    let decision = match result {
        Ok(decision) => match check(&decision, &trace, host.as_mut()) {
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
    sound(decision, trace)?;
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
            offered_for(offer, &procedure.domain, &request.fqdn)?;
            if record.state != RegistrationState::Open || !record.is_valid_at(now) || record.is_used_up() {
                return Err(format!("registration {id} is not usable (state {}, expired or used up)", record.state));
            }
            pins_held(offer, request.ip.as_deref(), request.serial.as_deref())?;
            if record.has_password && trace.password_checks.get(&id) != Some(&PasswordCheck::Match) {
                return Err(format!("registration {id} has a password that was not checked successfully"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The guard of a renewal: an allow is `matched`, names the registration the
/// device's certificate was issued under, which the host offered for the
/// request's name (or a parent) in the procedure's domain, which is neither
/// disabled nor locked, and whose pinned IP address and serial number the
/// request holds. Expiry is the policy's to judge (the default rules refuse
/// an expired registration); use is not counted.
pub fn guard_renewal(
    decision: &Decision,
    trace: &Trace,
    request: &RenewalRequest,
    host: &mut dyn PolicyHost,
) -> Result<(), String> {
    sound(decision, trace)?;
    if !decision.allowed {
        return Ok(());
    }
    if decision.reason != Reason::Matched {
        return Err(format!("a renewal is allowed only as matched, not {}", decision.reason));
    }
    let id = request.registration;
    if decision.registration != Some(id) {
        return Err(format!(
            "the renewal names registration {:?}, not {id}, under which the certificate was issued",
            decision.registration
        ));
    }
    let offer = trace.offered.get(&id).ok_or_else(|| format!("registration {id} was never offered"))?;
    let procedure = host
        .procedure(&request.procedure)
        .map_err(|e| e.to_string())?
        .ok_or("renewed, but the token procedure does not exist")?;
    offered_for(offer, &procedure.domain, &request.fqdn)?;
    if matches!(offer.registration.state, RegistrationState::Disabled | RegistrationState::Locked) {
        return Err(format!("registration {id} is {}", offer.registration.state));
    }
    pins_held(offer, request.ip.as_deref(), request.serial.as_deref())
}

/// What every answer must be, allow or deny: no host failure or budget
/// overrun behind it, `allowed` as its reason says, not `policy-error`, and
/// only registrations the host offered.
fn sound(decision: &Decision, trace: &Trace) -> Result<(), String> {
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
    Ok(())
}

/// The registration of `offer` was offered in `domain`, for the request
/// name `fqdn` or one of its parent names (a policy may look up parents, as
/// `multi-label` does).
fn offered_for(offer: &Offer, domain: &str, fqdn: &str) -> Result<(), String> {
    let id = offer.registration.id;
    let fqdn = Fqdn::parse(fqdn).map_err(|e| format!("matched an invalid name: {e}"))?;
    let offered_for_name = &*offer.fqdn == fqdn.as_str()
        || fqdn.as_str().strip_suffix(&*offer.fqdn).is_some_and(|head| head.ends_with('.'));
    if &*offer.domain != domain || &*offer.registration_domain != domain || !offered_for_name {
        return Err(format!("registration {id} was offered for another domain or name"));
    }
    Ok(())
}

/// The request holds the IP address and serial number the registration pins.
fn pins_held(offer: &Offer, ip: Option<&str>, serial: Option<&str>) -> Result<(), String> {
    let record = &offer.registration;
    let id = record.id;
    if let Some(pinned) = &record.ip
        && ip.and_then(canonical_ip).as_ref() != Some(pinned)
    {
        return Err(format!("registration {id} requires IP {pinned}"));
    }
    if let Some(pinned) = &record.serial
        && !serial.is_some_and(|s| serial_eq(s, pinned))
    {
        return Err(format!("registration {id} requires another serial number"));
    }
    Ok(())
}
