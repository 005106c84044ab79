//! Conversions between the generated WIT types and the core's Rust types.
//! Mechanical and total: every WIT case has exactly one Rust case.

use crate::bindings::exports::prereg::policy::renewal as wit_renewal;
use crate::bindings::prereg::policy::types as wit;
use prereg_core as core;

impl From<wit::Protocol> for core::Protocol {
    fn from(p: wit::Protocol) -> Self {
        match p {
            wit::Protocol::Scep => Self::Scep,
            wit::Protocol::Cmp => Self::Cmp,
            wit::Protocol::Est => Self::Est,
            wit::Protocol::Acme => Self::Acme,
            wit::Protocol::Other => Self::Other,
        }
    }
}

impl From<wit::Procedure> for core::Procedure {
    fn from(p: wit::Procedure) -> Self {
        core::Procedure {
            name: p.name,
            domain: p.domain,
            protocol: p.protocol.into(),
            require_preregistration: p.require_preregistration,
            allowed_domains: p.allowed_domains,
        }
    }
}

impl From<wit::RegistrationState> for core::RegistrationState {
    fn from(s: wit::RegistrationState) -> Self {
        match s {
            wit::RegistrationState::Open => Self::Open,
            wit::RegistrationState::Used => Self::Used,
            wit::RegistrationState::Disabled => Self::Disabled,
            wit::RegistrationState::Locked => Self::Locked,
        }
    }
}

impl From<wit::Registration> for core::Registration {
    fn from(r: wit::Registration) -> Self {
        core::Registration {
            id: r.id,
            pattern: r.pattern,
            ip: r.ip,
            serial: r.serial,
            has_password: r.has_password,
            state: r.state.into(),
            expires_at: r.expires_at,
            max_enrollments: r.max_enrollments,
            enrollments: r.enrollments,
        }
    }
}

impl From<wit::PasswordCheck> for core::PasswordCheck {
    fn from(c: wit::PasswordCheck) -> Self {
        match c {
            wit::PasswordCheck::Match => Self::Match,
            wit::PasswordCheck::Mismatch => Self::Mismatch,
            wit::PasswordCheck::NotProvided => Self::NotProvided,
            wit::PasswordCheck::NotSet => Self::NotSet,
        }
    }
}

impl From<wit::LookupError> for core::LookupError {
    fn from(e: wit::LookupError) -> Self {
        match e {
            wit::LookupError::TooMany => Self::TooMany,
            wit::LookupError::Unavailable => Self::Unavailable,
        }
    }
}

impl From<core::LogLevel> for wit::LogLevel {
    fn from(l: core::LogLevel) -> Self {
        match l {
            core::LogLevel::Debug => Self::Debug,
            core::LogLevel::Info => Self::Info,
            core::LogLevel::Warn => Self::Warn,
        }
    }
}

impl From<wit::EnrollmentRequest> for core::EnrollmentRequest {
    fn from(r: wit::EnrollmentRequest) -> Self {
        core::EnrollmentRequest {
            procedure: r.procedure,
            fqdn: r.fqdn,
            ip: r.ip,
            serial: r.serial,
            has_password: r.has_password,
        }
    }
}

impl From<wit_renewal::RenewalRequest> for core::RenewalRequest {
    fn from(r: wit_renewal::RenewalRequest) -> Self {
        core::RenewalRequest {
            procedure: r.procedure,
            fqdn: r.fqdn,
            ip: r.ip,
            serial: r.serial,
            registration: r.registration,
            certificate_serial: r.certificate_serial,
            certificate_expires_at: r.certificate_expires_at,
        }
    }
}

impl From<wit::RegistrationRequest> for core::RegistrationRequest {
    fn from(r: wit::RegistrationRequest) -> Self {
        core::RegistrationRequest {
            procedure: r.procedure,
            fqdn: r.fqdn,
            ip: r.ip,
            serial: r.serial,
            has_password: r.has_password,
        }
    }
}

impl From<core::PolicyMetadata> for wit::PolicyMetadata {
    fn from(m: core::PolicyMetadata) -> Self {
        wit::PolicyMetadata { name: m.name, version: m.version }
    }
}

impl From<core::ValidRegistration> for wit::ValidRegistration {
    fn from(v: core::ValidRegistration) -> Self {
        wit::ValidRegistration {
            domain: v.domain,
            pattern: v.pattern,
            ip: v.ip,
            serial: v.serial,
            wildcards: v.wildcards,
        }
    }
}

impl From<core::ValidationError> for wit::ValidationError {
    fn from(e: core::ValidationError) -> Self {
        wit::ValidationError { field: e.field.as_str().to_owned(), message: e.message }
    }
}

/// Maps a core reason to the WIT enum. `policy-error` is the host's alone; a
/// policy that produces it natively is reported as `no-registration`, a deny.
fn reason(r: core::Reason) -> wit::Reason {
    match r {
        core::Reason::UnknownProcedure => wit::Reason::UnknownProcedure,
        core::Reason::NotRequired => wit::Reason::NotRequired,
        core::Reason::InvalidFqdn => wit::Reason::InvalidFqdn,
        core::Reason::DomainNotAllowed => wit::Reason::DomainNotAllowed,
        core::Reason::NoRegistration | core::Reason::PolicyError => wit::Reason::NoRegistration,
        core::Reason::IpMismatch => wit::Reason::IpMismatch,
        core::Reason::SerialMismatch => wit::Reason::SerialMismatch,
        core::Reason::PasswordRequired => wit::Reason::PasswordRequired,
        core::Reason::BadPassword => wit::Reason::BadPassword,
        core::Reason::Locked => wit::Reason::Locked,
        core::Reason::Matched => wit::Reason::Matched,
    }
}

impl From<core::Decision> for wit::Decision {
    fn from(d: core::Decision) -> Self {
        wit::Decision {
            allowed: d.allowed && d.reason != core::Reason::PolicyError,
            reason: reason(d.reason),
            registration: d.registration,
            explanation: d.explanation,
        }
    }
}
