//! The rules of SPEC.md, as a library for policies: plain Rust over
//! [`PolicyHost`], with no WebAssembly in it.
//!
//! The default policy (`policies/default`) exports exactly these rules as a
//! component; the prereg host links the same code natively (its native
//! baseline and tests), so there is one copy of the rules. Other policies
//! reuse them and change one step: `policies/exact-only` and
//! `policies/multi-label` pass another matching rule to [`decide_with`],
//! `policies/serial-required` adds a check after [`decide`].

use prereg_core::model::{canonical_ip, serial_eq};
use prereg_core::name::{Quoted, is_within};
use prereg_core::pattern;
use prereg_core::{
    Decision, EnrollmentRequest, Field, Fqdn, PasswordCheck, Pattern, PolicyHost, PolicyMetadata, Procedure, Reason,
    Registration, RegistrationRequest, RegistrationState, RenewalRequest, ValidRegistration, ValidationError,
};

/// Longest serial number accepted (X.520 serialNumber is at most 64 characters).
pub const MAX_SERIAL_LEN: usize = 64;

/// Name and version of the default policy (these rules as they are).
pub fn metadata() -> PolicyMetadata {
    PolicyMetadata { name: "default".into(), version: env!("CARGO_PKG_VERSION").into() }
}

/// SPEC.md, "Registering": validates and canonicalizes a new registration.
/// Uniqueness is the host's (a database constraint).
pub fn validate_registration(
    host: &impl PolicyHost,
    request: &RegistrationRequest,
) -> Result<ValidRegistration, ValidationError> {
    let procedure = host.procedure(&request.procedure).ok_or_else(|| {
        ValidationError::new(Field::Procedure, format!("unknown token procedure {:?}", request.procedure))
    })?;
    let pattern = Pattern::parse(&request.fqdn)
        .and_then(|p| p.check_public_suffix(|name| host.is_public_suffix(name)).map(|()| p))
        .map_err(|e| ValidationError::new(Field::Fqdn, format!("{:?}: {e}", request.fqdn)))?;
    if pattern.is_catch_all() && !request.has_password {
        return Err(ValidationError::new(
            Field::Password,
            "the catch-all pattern '*' is accepted only with a password",
        ));
    }
    if !procedure.allowed_domains.is_empty()
        && !procedure.allowed_domains.iter().any(|d| is_within(pattern.literal_suffix(), d))
    {
        return Err(ValidationError::new(
            Field::Fqdn,
            format!(
                "{:?} is outside the allowed domains of token procedure {:?} ({})",
                pattern.as_str(),
                procedure.name,
                procedure.allowed_domains.join(", ")
            ),
        ));
    }
    let ip = match request.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            canonical_ip(text)
                .ok_or_else(|| ValidationError::new(Field::Ip, format!("{text:?} is not an IPv4 or IPv6 address")))?,
        ),
    };
    let serial = match request.serial.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(validate_serial(text)?),
    };
    Ok(ValidRegistration {
        domain: procedure.domain,
        wildcards: pattern.wildcards(),
        pattern: pattern.into_string(),
        ip,
        serial,
    })
}

fn validate_serial(serial: &str) -> Result<String, ValidationError> {
    if serial.len() > MAX_SERIAL_LEN {
        return Err(ValidationError::new(
            Field::Serial,
            format!("{} characters long; at most {MAX_SERIAL_LEN} are allowed", serial.len()),
        ));
    }
    if let Some(c) = serial.chars().find(|c| !c.is_ascii_graphic() && *c != ' ') {
        return Err(ValidationError::new(Field::Serial, format!("contains {c:?}; only printable ASCII is allowed")));
    }
    Ok(serial.to_owned())
}

/// SPEC.md, "Deciding an enrollment", steps 1 to 8 (step 9, counting the
/// enrollment, is the host's, atomically with the audit record).
pub fn decide(host: &impl PolicyHost, request: &EnrollmentRequest) -> Decision {
    decide_with(host, request, spec_match)
}

/// SPEC.md's matching: `*` stands for exactly one label, or for part of one.
pub fn spec_match(registration: &Registration, fqdn: &Fqdn) -> bool {
    pattern::matches(&registration.pattern, fqdn.as_str())
}

/// The decision of SPEC.md with another matching rule: `matches` says whether
/// a candidate's pattern covers the request name. Derived policies (see
/// `policies/exact-only` and `policies/multi-label`) change only that, and
/// keep every other step, reason and explanation of the default policy.
pub fn decide_with(
    host: &impl PolicyHost,
    request: &EnrollmentRequest,
    matches: impl Fn(&Registration, &Fqdn) -> bool,
) -> Decision {
    // 1. The token procedure.
    let Some(procedure) = host.procedure(&request.procedure) else {
        return Decision::new(Reason::UnknownProcedure, None, format!("no token procedure {:?}", request.procedure));
    };
    // 2. Preregistration required? (Always for SCEP and CMP, whatever the setting says.)
    if !procedure.require_preregistration && !procedure.protocol.always_requires_preregistration() {
        return Decision::new(
            Reason::NotRequired,
            None,
            format!("token procedure {:?} does not require preregistration", procedure.name),
        );
    }
    // 3 and 4. A valid FQDN, without `*`, within the allowed domains.
    let fqdn = match name_within(&procedure, &request.fqdn) {
        Ok(fqdn) => fqdn,
        Err(denied) => return denied,
    };
    // 5. Candidates of the procedure's domain: matching, usable.
    let now = host.now();
    let candidates = match host.candidates(&procedure.domain, &fqdn) {
        Ok(list) => list,
        Err(e) => return Decision::new(Reason::NoRegistration, None, format!("candidate lookup failed: {e}")),
    };
    let mut usable: Vec<Registration> = candidates
        .into_iter()
        .filter(|r| matches(r, &fqdn))
        .filter(|r| matches!(r.state, RegistrationState::Open | RegistrationState::Locked))
        .filter(|r| r.is_valid_at(now) && !r.is_used_up())
        .collect();
    // Most specific first; equal specificity: the oldest registration first.
    usable.sort_by(|a, b| {
        pattern::Specificity::of(&b.pattern).cmp(&pattern::Specificity::of(&a.pattern)).then(a.id.cmp(&b.id))
    });
    let Some(most_specific) = usable.first() else {
        return Decision::new(
            Reason::NoRegistration,
            None,
            format!("no open registration in domain {} matches {fqdn}", Quoted(&procedure.domain)),
        );
    };
    // 6. IP and serial: empty matches anything, set must be equal.
    let request_ip = request.ip.as_deref().and_then(canonical_ip);
    let ip_ok = |r: &Registration| r.ip.is_none() || r.ip == request_ip;
    let serial_ok = |r: &Registration| match (&r.serial, &request.serial) {
        (None, _) => true,
        (Some(want), Some(got)) => serial_eq(want, got),
        (Some(_), None) => false,
    };
    // 7. The most specific remaining candidate decides, with no fall-through.
    let Some(chosen) = usable.iter().find(|r| ip_ok(r) && serial_ok(r)) else {
        let (reason, what) = if !ip_ok(most_specific) {
            (Reason::IpMismatch, "IP address")
        } else {
            (Reason::SerialMismatch, "serial number")
        };
        return Decision::new(
            reason,
            Some(most_specific.id),
            format!("{fqdn} matches {:?} but the {what} does not", most_specific.pattern),
        );
    };
    // 8. Lockout and password.
    if chosen.state == RegistrationState::Locked {
        return Decision::new(
            Reason::Locked,
            Some(chosen.id),
            format!("registration {} is locked after repeated password failures", chosen.id),
        );
    }
    if chosen.has_password {
        let failure = match host.check_password(chosen.id) {
            PasswordCheck::Match => None,
            PasswordCheck::NotProvided => {
                Some((Reason::PasswordRequired, "requires a password; the request carries none"))
            }
            PasswordCheck::Mismatch => Some((Reason::BadPassword, "has a different password")),
            PasswordCheck::NotSet => Some((Reason::BadPassword, "has a password the host could not check")),
        };
        if let Some((reason, why)) = failure {
            return Decision::new(
                reason,
                Some(chosen.id),
                format!("registration {} ({}) {why}", chosen.id, chosen.pattern),
            );
        }
    }
    // 9. Allow; the host counts the enrollment.
    Decision::new(Reason::Matched, Some(chosen.id), format!("{fqdn} matched {}", Quoted(&chosen.pattern)))
}

/// Steps 3 and 4 of a decision: `name` is a valid FQDN without `*`
/// (`invalid-fqdn`), within the procedure's allowed domains
/// (`domain-not-allowed`).
fn name_within(procedure: &Procedure, name: &str) -> Result<Fqdn, Decision> {
    let fqdn = Fqdn::parse(name).map_err(|e| Decision::new(Reason::InvalidFqdn, None, format!("{name:?}: {e}")))?;
    if !procedure.allowed_domains.is_empty() && !procedure.allowed_domains.iter().any(|d| fqdn.is_within(d)) {
        return Err(Decision::new(
            Reason::DomainNotAllowed,
            None,
            format!("{fqdn} is outside the allowed domains of {:?}", procedure.name),
        ));
    }
    Ok(fqdn)
}

/// The default rules for a renewal (WIT `decide-renewal`): the device keeps
/// its certificate's name under the registration it was issued under, while
/// that registration stands. See [`decide_renewal_with`].
pub fn decide_renewal(host: &impl PolicyHost, request: &RenewalRequest) -> Decision {
    decide_renewal_with(host, request, spec_match)
}

/// A renewal with another matching rule (`matches`, as in [`decide_with`]):
///
/// 1. the token procedure exists (`unknown-procedure`);
/// 2. the name is a valid FQDN (`invalid-fqdn`) within the procedure's
///    allowed domains (`domain-not-allowed`), which may have changed since;
/// 3. the registration the certificate was issued under is still a
///    candidate for the name in the procedure's domain and still covers it
///    (`no-registration`: deleted, or the device moved);
/// 4. it is not disabled (`no-registration`), locked (`locked`) or expired
///    (`no-registration`: its validity is how long the device is
///    preregistered); `used` is fine, a renewal counts no enrollment;
/// 5. its pinned IP address and serial number are the request's
///    (`ip-mismatch`, `serial-mismatch`);
/// 6. allow, `matched`. No password is checked: the certificate is the
///    credential.
pub fn decide_renewal_with(
    host: &impl PolicyHost,
    request: &RenewalRequest,
    matches: impl Fn(&Registration, &Fqdn) -> bool,
) -> Decision {
    let id = request.registration;
    let Some(procedure) = host.procedure(&request.procedure) else {
        return Decision::new(Reason::UnknownProcedure, None, format!("no token procedure {:?}", request.procedure));
    };
    let fqdn = match name_within(&procedure, &request.fqdn) {
        Ok(fqdn) => fqdn,
        Err(denied) => return denied,
    };
    let candidates = match host.candidates(&procedure.domain, &fqdn) {
        Ok(list) => list,
        Err(e) => return Decision::new(Reason::NoRegistration, None, format!("candidate lookup failed: {e}")),
    };
    let Some(registration) = candidates.into_iter().find(|r| r.id == id && matches(r, &fqdn)) else {
        return Decision::new(
            Reason::NoRegistration,
            None,
            format!(
                "registration {id}, under which certificate {} was issued, no longer covers {fqdn} in domain {:?}",
                request.certificate_serial, procedure.domain
            ),
        );
    };
    let renewing = format!("renewal of certificate {} of {fqdn}", request.certificate_serial);
    match registration.state {
        RegistrationState::Disabled => {
            return Decision::new(
                Reason::NoRegistration,
                Some(id),
                format!("{renewing}: registration {id} ({}) is disabled", registration.pattern),
            );
        }
        RegistrationState::Locked => {
            return Decision::new(
                Reason::Locked,
                Some(id),
                format!("{renewing}: registration {id} is locked after repeated password failures"),
            );
        }
        RegistrationState::Open | RegistrationState::Used => {}
    }
    if !registration.is_valid_at(host.now()) {
        return Decision::new(
            Reason::NoRegistration,
            Some(id),
            format!("{renewing}: registration {id} ({}) has expired", registration.pattern),
        );
    }
    if registration.ip.is_some() && registration.ip != request.ip.as_deref().and_then(canonical_ip) {
        return Decision::new(
            Reason::IpMismatch,
            Some(id),
            format!("{renewing}: registration {id} pins another IP address"),
        );
    }
    if let Some(want) = &registration.serial
        && !request.serial.as_deref().is_some_and(|got| serial_eq(want, got))
    {
        return Decision::new(
            Reason::SerialMismatch,
            Some(id),
            format!("{renewing}: registration {id} pins another serial number"),
        );
    }
    Decision::new(
        Reason::Matched,
        Some(id),
        format!("{renewing}: registration {id} ({}) still covers it", registration.pattern),
    )
}
