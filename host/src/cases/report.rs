//! The outcome of a case run: one line per case, the difference for each
//! failure, as text for people and JSON for CI.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::PolicyInfo;

/// One field that differs from the expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// `decision`, `reason`, `pattern` or `field`.
    pub field: String,
    /// What the case expects.
    pub expected: String,
    /// What the policy gave.
    pub got: String,
}

/// The outcome of one case (a decision case, or a registration the policy
/// must refuse or accept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// The case's name (`registration 3 (*.x.example.com)` for registrations).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The fields that differ (empty when it passed).
    pub mismatches: Vec<Mismatch>,
    /// What the policy said, in words.
    pub explanation: String,
}

/// The outcome of a case file against a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// The policy.
    pub policy: PolicyInfo,
    /// The case file.
    pub cases_file: String,
    /// `live`, `record` or `replay`.
    pub facts: String,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Every case, in file order (registrations first).
    pub cases: Vec<CaseOutcome>,
}

impl TestReport {
    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }

    /// The failures, one line each, for a refusal message.
    pub fn failure_summary(&self) -> String {
        self.cases
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                let diff: Vec<String> = c
                    .mismatches
                    .iter()
                    .map(|m| format!("{} expected {}, got {}", m.field, m.expected, m.got))
                    .collect();
                format!("{:?}: {}", c.name, diff.join("; "))
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} (sha256 {}) against {} [{}]",
            self.policy.name,
            self.policy.version,
            &self.policy.sha256[..12.min(self.policy.sha256.len())],
            self.cases_file,
            self.facts
        )?;
        for case in &self.cases {
            writeln!(f, "  {}  {}", if case.passed { "ok  " } else { "FAIL" }, case.name)?;
            if !case.passed {
                for m in &case.mismatches {
                    writeln!(f, "        {:<9} expected {}, got {}", format!("{}:", m.field), m.expected, m.got)?;
                }
                writeln!(f, "        policy:   {}", case.explanation)?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}
