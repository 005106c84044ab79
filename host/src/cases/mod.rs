//! Table-driven policy test cases, as `opa test` runs them: a TOML file of
//! token procedures, registrations and enrollment requests with the decision
//! each must get. `prereg policy test POLICY.wasm CASES.toml` runs them
//! against a policy in a throwaway store; a policy may also ship its cases
//! (the SDK's `export_policy!(P, cases = "cases.toml")`), and then the host
//! runs them every time the policy is loaded, and refuses it if one fails.
//!
//! ```toml
//! [[procedure]]
//! name = "routers"
//! domain = "corp"
//! protocol = "scep"
//!
//! [[registration]]
//! procedure = "routers"
//! fqdn = "*.dept.example.com"
//!
//! [[case]]
//! name = "a pattern matches one label"
//! procedure = "routers"
//! fqdn = "router5.dept.example.com"
//! expect = "allow"
//! reason = "matched"
//! pattern = "*.dept.example.com"
//! ```
//!
//! - [`CaseFile`]: the format (every field is documented there).
//! - [`run`]: runs a file against a policy, live, recording the host calls,
//!   or replaying them ([`crate::host_calls`]).

mod errors;
mod report;
mod run;

use serde::{Deserialize, Serialize};

pub use errors::CasesError;
pub use report::{CaseOutcome, Mismatch, TestReport};
pub use run::{Facts, RecordedCase, Recording, run};

/// Largest case file accepted, in bytes (the embedded section included).
pub const MAX_CASES_BYTES: usize = prereg_engine::inspect::MAX_TEST_CASES_BYTES;

/// The evaluation time of the cases unless the file sets `now`:
/// 2026-01-01T00:00:00Z.
pub const DEFAULT_NOW: u64 = 1_767_225_600;

/// A case file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Evaluation time in Unix seconds (registrations are created then);
    /// default [`DEFAULT_NOW`].
    #[serde(default)]
    pub now: Option<u64>,
    /// Token procedures, created first.
    #[serde(default, rename = "procedure")]
    pub procedures: Vec<CaseProcedure>,
    /// Registrations, created through the policy under test, in order (the
    /// first gets id 1).
    #[serde(default, rename = "registration")]
    pub registrations: Vec<CaseRegistration>,
    /// Enrollment requests and the decisions they must get, in order.
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

/// A token procedure of a case file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseProcedure {
    /// Unique name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// `scep`, `cmp`, `est`, `acme` or `other`.
    pub protocol: String,
    /// Allowed DNS names; empty: any.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Override of the protocol's default.
    #[serde(default)]
    pub require_preregistration: Option<bool>,
}

/// A registration of a case file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRegistration {
    /// Token procedure.
    pub procedure: String,
    /// FQDN or pattern.
    pub fqdn: String,
    /// IP address.
    #[serde(default)]
    pub ip: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// Days of validity.
    #[serde(default)]
    pub valid_days: Option<u32>,
    /// Enrollment limit.
    #[serde(default)]
    pub max_enrollments: Option<u32>,
    /// Disable it once created.
    #[serde(default)]
    pub disabled: bool,
    /// The policy must refuse it, naming this field (`procedure`, `fqdn`,
    /// `ip`, `serial`, `password`). This makes the registration a case too.
    #[serde(default)]
    pub invalid: Option<String>,
}

/// An enrollment request and the decision it must get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it shows, for the report.
    pub name: String,
    /// Token procedure.
    pub procedure: String,
    /// Device name.
    pub fqdn: String,
    /// IP address.
    #[serde(default)]
    pub ip: Option<String>,
    /// Subject serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// Password (challengePassword, CMP secret).
    #[serde(default)]
    pub password: Option<String>,
    /// A real enrollment (counted, lockout applied) instead of a dry run, so
    /// that later cases see its effects.
    #[serde(default)]
    pub enroll: bool,
    /// Decide this many days after `now` (expiry).
    #[serde(default)]
    pub days_later: u32,
    /// A renewal instead of an enrollment (EST `simplereenroll`, CMP
    /// `kur`): the device holds a certificate issued under the
    /// registration whose `fqdn` (as written in this file) this names, and
    /// asks the policy's `decide-renewal` for a new one. No password.
    #[serde(default)]
    pub renewal_of: Option<String>,
    /// `allow` or `deny`.
    pub expect: Expect,
    /// The reason code it must give, if checked.
    #[serde(default)]
    pub reason: Option<String>,
    /// The pattern of the deciding registration, if checked; `""` for none.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// An expected outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Allowed.
    Allow,
    /// Denied.
    #[default]
    Deny,
}

impl Expect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }
}

impl CaseFile {
    /// Parses a case file; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, CasesError> {
        if text.len() > MAX_CASES_BYTES {
            return Err(CasesError::Parse {
                file: source.into(),
                message: format!("{} bytes; at most {MAX_CASES_BYTES} are accepted", text.len()),
            });
        }
        let file: CaseFile = toml::from_str(text)
            .map_err(|e| CasesError::Parse { file: source.into(), message: e.to_string().trim_end().to_owned() })?;
        file.check(source)?;
        Ok(file)
    }

    /// Reads and parses a case file.
    pub fn read(path: &std::path::Path) -> Result<Self, CasesError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CasesError::Read { file: source.clone(), error: e })?;
        Self::parse(&text, &source)
    }

    /// Parses the cases embedded in a policy (`prereg:test-cases`).
    pub fn parse_embedded(bytes: &[u8], policy: &str) -> Result<Self, CasesError> {
        let source = format!("{policy} (embedded test cases)");
        let text = std::str::from_utf8(bytes)
            .map_err(|e| CasesError::Parse { file: source.clone(), message: format!("not UTF-8: {e}") })?;
        Self::parse(text, &source)
    }

    fn check(&self, source: &str) -> Result<(), CasesError> {
        let fault = |what: String| CasesError::Parse { file: source.into(), message: what };
        for (i, p) in self.procedures.iter().enumerate() {
            if prereg_core::Protocol::parse(&p.protocol).is_none() {
                return Err(fault(format!(
                    "procedure {} ({:?}): protocol {:?} is not one of scep, cmp, est, acme, other",
                    i + 1,
                    p.name,
                    p.protocol
                )));
            }
        }
        for (i, r) in self.registrations.iter().enumerate() {
            if let Some(field) = &r.invalid
                && prereg_core::Field::parse(field).is_none()
            {
                return Err(fault(format!(
                    "registration {} ({:?}): invalid = {field:?} is not one of procedure, fqdn, ip, serial, password",
                    i + 1,
                    r.fqdn
                )));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.cases.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(fault(format!("case {}: a case needs a name", i + 1)));
            }
            if !names.insert(c.name.as_str()) {
                return Err(fault(format!("case {} ({:?}): two cases have this name", i + 1, c.name)));
            }
            if let Some(of) = &c.renewal_of {
                let at = format!("case {} ({:?})", i + 1, c.name);
                let Some(r) = self.registrations.iter().find(|r| r.fqdn == *of) else {
                    return Err(fault(format!(
                        "{at}: renewal_of = {of:?} names no [[registration]] fqdn of this file"
                    )));
                };
                if r.invalid.is_some() {
                    return Err(fault(format!(
                        "{at}: renewal_of = {of:?} names a registration the policy must refuse"
                    )));
                }
                if c.password.is_some() || c.enroll {
                    return Err(fault(format!("{at}: a renewal carries no password and is never enrolled")));
                }
            }
            if let Some(reason) = &c.reason
                && prereg_core::Reason::parse(reason).is_none()
            {
                return Err(fault(format!(
                    "case {} ({:?}): reason {reason:?} is not a SPEC.md reason code",
                    i + 1,
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// The evaluation time.
    pub fn now(&self) -> u64 {
        self.now.unwrap_or(DEFAULT_NOW)
    }
}
