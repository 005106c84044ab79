//! The domain types of the `prereg:policy` WIT world, as plain Rust.
//!
//! `wit/policy.wit` is the contract; these types mirror its `types` interface
//! one to one so that policy code can be written and tested natively. The SDK
//! converts between them and the generated bindings.

use std::fmt;

/// Enrollment protocol of a token procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SCEP: preregistration always required.
    Scep,
    /// CMP: preregistration always required.
    Cmp,
    /// EST.
    Est,
    /// ACME.
    Acme,
    /// Anything else.
    Other,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [Protocol::Scep, Protocol::Cmp, Protocol::Est, Protocol::Acme, Protocol::Other];

    /// The lower-case name used in the CLI, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Scep => "scep",
            Protocol::Cmp => "cmp",
            Protocol::Est => "est",
            Protocol::Acme => "acme",
            Protocol::Other => "other",
        }
    }

    /// Parses [`Protocol::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether SPEC.md forces preregistration for this protocol.
    pub fn always_requires_preregistration(self) -> bool {
        matches!(self, Protocol::Scep | Protocol::Cmp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts about a token procedure that a policy may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// Unique name.
    pub name: String,
    /// Domain scoping its registrations.
    pub domain: String,
    /// Enrollment protocol.
    pub protocol: Protocol,
    /// Whether devices must be preregistered.
    pub require_preregistration: bool,
    /// Canonical allowed DNS names; empty: any.
    pub allowed_domains: Vec<String>,
}

/// Life-cycle state of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationState {
    /// Usable.
    Open,
    /// `max_enrollments` reached.
    Used,
    /// Disabled by an officer.
    Disabled,
    /// Locked after five failed password checks in a row.
    Locked,
}

impl RegistrationState {
    /// Every state.
    pub const ALL: [RegistrationState; 4] = [Self::Open, Self::Used, Self::Disabled, Self::Locked];

    /// The lower-case name used in the CLI, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Used => "used",
            Self::Disabled => "disabled",
            Self::Locked => "locked",
        }
    }

    /// Parses [`RegistrationState::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for RegistrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registration as a candidate lookup returns it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Identifier.
    pub id: u64,
    /// Canonical pattern.
    pub pattern: String,
    /// Canonical IP address, if set.
    pub ip: Option<String>,
    /// Serial number, if set.
    pub serial: Option<String>,
    /// Whether a password is set.
    pub has_password: bool,
    /// State.
    pub state: RegistrationState,
    /// End of validity (Unix seconds), if any.
    pub expires_at: Option<u64>,
    /// Enrollment limit, if any.
    pub max_enrollments: Option<u32>,
    /// Enrollments so far.
    pub enrollments: u32,
}

impl Registration {
    /// Whether it has not expired at `now` (Unix seconds).
    pub fn is_valid_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }

    /// Whether its enrollment limit is reached.
    pub fn is_used_up(&self) -> bool {
        self.max_enrollments.is_some_and(|max| self.enrollments >= max)
    }
}

/// An enrollment request (the password stays in the host).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnrollmentRequest {
    /// Token procedure name.
    pub procedure: String,
    /// Device name as received.
    pub fqdn: String,
    /// IP address as received.
    pub ip: Option<String>,
    /// Subject serialNumber as received.
    pub serial: Option<String>,
    /// Whether a password came with it.
    pub has_password: bool,
}

/// A renewal request (WIT `renewal-request`, since 0.1.1): a device that
/// holds a valid certificate from this CA asks for a new one. The host has
/// verified that certificate; there is no password.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenewalRequest {
    /// Token procedure name.
    pub procedure: String,
    /// Device name of the current certificate, as the new request repeats it.
    pub fqdn: String,
    /// IP address the new request asks for.
    pub ip: Option<String>,
    /// Subject serialNumber the new request carries.
    pub serial: Option<String>,
    /// The registration the current certificate was issued under.
    pub registration: u64,
    /// Serial number of the current certificate (lower-case hex).
    pub certificate_serial: String,
    /// End of the current certificate's validity (seconds since the epoch).
    pub certificate_expires_at: u64,
}

/// SPEC.md reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Deny: unknown token procedure.
    UnknownProcedure,
    /// Allow: preregistration not required.
    NotRequired,
    /// Deny: invalid name or `*` in it.
    InvalidFqdn,
    /// Deny: outside `allowed_domains`.
    DomainNotAllowed,
    /// Deny: no usable matching registration.
    NoRegistration,
    /// Deny: IP mismatch.
    IpMismatch,
    /// Deny: serial mismatch.
    SerialMismatch,
    /// Deny: password required.
    PasswordRequired,
    /// Deny: wrong password.
    BadPassword,
    /// Deny: registration locked.
    Locked,
    /// Allow: matched.
    Matched,
    /// Deny: the policy failed (trap, timeout, out of memory, nonsense). Only the
    /// host gives this reason.
    PolicyError,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 12] = [
        Reason::UnknownProcedure,
        Reason::NotRequired,
        Reason::InvalidFqdn,
        Reason::DomainNotAllowed,
        Reason::NoRegistration,
        Reason::IpMismatch,
        Reason::SerialMismatch,
        Reason::PasswordRequired,
        Reason::BadPassword,
        Reason::Locked,
        Reason::Matched,
        Reason::PolicyError,
    ];

    /// The SPEC.md reason code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::UnknownProcedure => "unknown-procedure",
            Reason::NotRequired => "not-required",
            Reason::InvalidFqdn => "invalid-fqdn",
            Reason::DomainNotAllowed => "domain-not-allowed",
            Reason::NoRegistration => "no-registration",
            Reason::IpMismatch => "ip-mismatch",
            Reason::SerialMismatch => "serial-mismatch",
            Reason::PasswordRequired => "password-required",
            Reason::BadPassword => "bad-password",
            Reason::Locked => "locked",
            Reason::Matched => "matched",
            Reason::PolicyError => "policy-error",
        }
    }

    /// The SPEC.md reason code ([`Reason::code`]).
    pub fn as_str(&self) -> &'static str {
        self.code()
    }

    /// Parses a reason code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Whether this reason allows enrollment.
    pub fn allows(self) -> bool {
        matches!(self, Reason::NotRequired | Reason::Matched)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A reason equals its code: `reason == "matched"`.
impl PartialEq<&str> for Reason {
    fn eq(&self, code: &&str) -> bool {
        self.code() == *code
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, code: &str) -> bool {
        self.code() == code
    }
}

/// A policy's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the device may enroll.
    pub allowed: bool,
    /// The reason code.
    pub reason: Reason,
    /// The deciding registration, if any.
    pub registration: Option<u64>,
    /// Explanation for the audit log and the operator.
    pub explanation: String,
}

impl Decision {
    /// A decision whose `allowed` follows from its reason.
    pub fn new(reason: Reason, registration: Option<u64>, explanation: impl Into<String>) -> Self {
        Decision { allowed: reason.allows(), reason, registration, explanation: explanation.into() }
    }
}

/// A registration an officer asks to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationRequest {
    /// Token procedure it is created through.
    pub procedure: String,
    /// FQDN or pattern as typed.
    pub fqdn: String,
    /// IP address as typed.
    pub ip: Option<String>,
    /// Serial number as typed.
    pub serial: Option<String>,
    /// Whether a password comes with it.
    pub has_password: bool,
}

/// A validated registration in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRegistration {
    /// Domain of the procedure.
    pub domain: String,
    /// Canonical pattern.
    pub pattern: String,
    /// Canonical IP.
    pub ip: Option<String>,
    /// Trimmed serial.
    pub serial: Option<String>,
    /// Number of `*` (0: exact).
    pub wildcards: u32,
}

/// The field a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The token procedure.
    Procedure,
    /// The FQDN pattern.
    Fqdn,
    /// The IP address.
    Ip,
    /// The serial number.
    Serial,
    /// The password.
    Password,
}

impl Field {
    /// Every field.
    pub const ALL: [Field; 5] = [Field::Procedure, Field::Fqdn, Field::Ip, Field::Serial, Field::Password];

    /// The field's name as in the WIT, the CLI and CSV headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Procedure => "procedure",
            Field::Fqdn => "fqdn",
            Field::Ip => "ip",
            Field::Serial => "serial",
            Field::Password => "password",
        }
    }

    /// Parses [`Field::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Why a registration request is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", field.as_str())]
pub struct ValidationError {
    /// The field at fault.
    pub field: Field,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// A validation error about `field`.
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        ValidationError { field, message: message.into() }
    }
}

/// Outcome of a host password comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Equal.
    Match,
    /// Not equal.
    Mismatch,
    /// The request has no password.
    NotProvided,
    /// The registration has none.
    NotSet,
}

/// Why a candidate lookup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Too many candidates for one answer.
    #[error("too many candidate registrations")]
    TooMany,
    /// Storage failure.
    #[error("registration storage unavailable")]
    Unavailable,
}

/// Severity of a policy log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Normal.
    Info,
    /// Odd.
    Warn,
}

/// A policy's name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMetadata {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// Canonical text of an IP address (`std`'s formatting: dotted quad, RFC 5952
/// for IPv6), or `None` if it is not one.
pub fn canonical_ip(input: &str) -> Option<String> {
    input.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// Whether two serial numbers are equal, case-insensitively, ignoring
/// surrounding white space.
pub fn serial_eq(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}
