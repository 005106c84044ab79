//! Running a case file against a policy in a throwaway store.
//!
//! Live and record: a fresh SQLite store in memory, an instance
//! with a throwaway officer key, the file's procedures and registrations
//! created through signed requests (so the policy under test validates every
//! registration), then each case decided through [`Registry::decide`], the
//! host's guard included ([`Registry::check_renewal`] for a renewal case).
//! Replay: no store at all; each case's decision is made by the policy
//! alone from the recorded answers.

use std::sync::Arc;

use prereg_core::{Decision, EnrollmentRequest};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Case, CaseFile, CaseOutcome, CasesError, Mismatch, TestReport};
use crate::evaluation::Evaluation;
use crate::host_calls::{HostCall, HostCalls, RecordedHost};
use crate::policy::Policy;
use crate::registry::{DecisionMode, DecisionReport, EnrollmentInput, RegistryError, Renewal};
use crate::scratch::Scratch;
use crate::signing::WriteRequest;

/// Where the facts of a run come from.
#[derive(Debug, Clone)]
pub enum Facts {
    /// A throwaway store set up from the file.
    Live,
    /// The same, and every host call the policy makes is recorded.
    Record,
    /// Only the recorded answers; no store.
    Replay(Recording),
}

/// The host calls of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCase {
    /// The case's name.
    pub name: String,
    /// Its evaluation time.
    pub now: u64,
    /// For a renewal case, the registration the certificate was issued
    /// under, as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_of: Option<u64>,
    /// The calls, in order, with their answers.
    pub calls: Vec<HostCall>,
}

/// The host calls of a whole run (`--record FILE` writes it as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// Format version.
    pub format: u32,
    /// The policy that was recorded (any policy may be replayed against it).
    pub recorded_with: String,
    /// Each case's calls.
    pub cases: Vec<RecordedCase>,
}

/// Runs `file` against `policy`. Returns the report and, with
/// [`Facts::Record`], the recording.
pub fn run(
    policy: Arc<dyn Policy>,
    file: &CaseFile,
    cases_file: &str,
    facts: Facts,
) -> Result<(TestReport, Option<Recording>), CasesError> {
    let mut outcomes = Vec::new();
    let mut recorded = Vec::new();
    let facts_name = match &facts {
        Facts::Live => "live",
        Facts::Record => "record",
        Facts::Replay(_) => "replay",
    };
    match &facts {
        Facts::Replay(recording) => {
            for case in &file.cases {
                outcomes.push(replay_case(&policy, case, recording)?);
            }
        }
        Facts::Live | Facts::Record => {
            let scratch = Scratch::new(policy.clone(), file.now())?;
            let registry = scratch.registry();
            for (i, p) in file.procedures.iter().enumerate() {
                scratch
                    .submit(WriteRequest::CreateProcedure {
                        certificate_days: None,
                        name: p.name.clone(),
                        domain: p.domain.clone(),
                        protocol: p.protocol.clone(),
                        allowed_domains: p.allowed_domains.clone(),
                        require_preregistration: p.require_preregistration,
                    })
                    .map_err(|error| CasesError::Setup {
                        what: format!("procedure {} ({:?})", i + 1, p.name),
                        error,
                    })?;
            }
            // The id of each registration created, by its fqdn as written.
            let mut created = Vec::new();
            for (i, r) in file.registrations.iter().enumerate() {
                match create_registration(&scratch, i, r)? {
                    Created::Id(id) => created.push((r.fqdn.as_str(), id)),
                    Created::Outcome(outcome) => outcomes.push(outcome),
                }
            }
            for case in &file.cases {
                let calls = if matches!(facts, Facts::Record) { HostCalls::Record } else { HostCalls::Live };
                let now = file.now() + u64::from(case.days_later) * 86_400;
                let failed = |error| CasesError::Decision { case: case.name.clone(), error };
                let (report, calls, renewal_of) = match &case.renewal_of {
                    Some(of) => {
                        // Refused by the policy at setup: the case cannot run.
                        let id = created.iter().find(|(fqdn, _)| fqdn == of).map(|(_, id)| *id).ok_or_else(|| {
                            failed(RegistryError::Invalid {
                                field: "renewal_of".into(),
                                message: format!("registration {of:?} was not created"),
                            })
                        })?;
                        let (report, calls) =
                            registry.check_renewal(&renewal(case, id, now), now, calls).map_err(failed)?;
                        (report, calls, Some(id))
                    }
                    None => {
                        let mode = if case.enroll { DecisionMode::Enroll } else { DecisionMode::DryRun };
                        let (report, calls) =
                            registry.decide_recording(input(case), mode, now, calls).map_err(failed)?;
                        (report, calls, None)
                    }
                };
                outcomes.push(compare(case, &report));
                recorded.push(RecordedCase { name: case.name.clone(), now, calls, renewal_of });
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    let report = TestReport {
        policy: policy.info().clone(),
        cases_file: cases_file.into(),
        facts: facts_name.into(),
        passed: outcomes.len() - failed,
        failed,
        cases: outcomes,
    };
    let recording = matches!(facts, Facts::Record).then(|| Recording {
        format: 1,
        recorded_with: format!("{} {} sha256:{}", report.policy.name, report.policy.version, report.policy.sha256),
        cases: recorded,
    });
    Ok((report, recording))
}

/// What creating a registration of the file gave.
enum Created {
    /// It was created, with this id.
    Id(u64),
    /// An outcome to report: the file expects a refusal, or the policy
    /// refused it.
    Outcome(CaseOutcome),
}

/// Creates registration `i` of the file in the throwaway instance.
fn create_registration(scratch: &Scratch, i: usize, r: &super::CaseRegistration) -> Result<Created, CasesError> {
    let name = format!("registration {} ({})", i + 1, r.fqdn);
    let password_sealed = match &r.password {
        None => None,
        Some(p) => Some(scratch.seal(p).map_err(|error| CasesError::Setup { what: name.clone(), error })?),
    };
    let created = scratch.submit(WriteRequest::CreateRegistration {
        password_sealed,
        procedure: r.procedure.clone(),
        fqdn: r.fqdn.clone(),
        ip: r.ip.clone(),
        serial: r.serial.clone(),
        password_hash: None,
        valid_days: r.valid_days,
        max_enrollments: r.max_enrollments,
    });
    let refused = match (&created, &r.invalid) {
        (Ok(outcome), None) => {
            let id = outcome.id.unwrap_or_default();
            if r.disabled {
                scratch
                    .submit(WriteRequest::DisableRegistration { id })
                    .map_err(|error| CasesError::Setup { what: name.clone(), error })?;
            }
            return Ok(Created::Id(id));
        }
        (Ok(_), Some(field)) => {
            return Ok(Created::Outcome(CaseOutcome {
                name,
                passed: false,
                mismatches: vec![Mismatch {
                    field: "field".into(),
                    expected: format!("refused ({field})"),
                    got: "accepted".into(),
                }],
                explanation: "the policy accepted the registration".into(),
            }));
        }
        (Err(RegistryError::Invalid { field, message }), expected) => (field.clone(), message.clone(), expected),
        (Err(error), _) => {
            return Err(CasesError::Setup {
                what: name,
                error: RegistryError::Invalid { field: "registration".into(), message: error.to_string() },
            });
        }
    };
    let (field, message, expected) = refused;
    let passed = expected.as_deref() == Some(field.as_str());
    Ok(Created::Outcome(CaseOutcome {
        name,
        passed,
        mismatches: if passed {
            Vec::new()
        } else {
            vec![Mismatch {
                field: "field".into(),
                expected: expected.as_deref().map_or("accepted".into(), |f| format!("refused ({f})")),
                got: format!("refused ({field})"),
            }]
        },
        explanation: message,
    }))
}

fn input(case: &Case) -> EnrollmentInput {
    EnrollmentInput {
        procedure: case.procedure.clone(),
        fqdn: case.fqdn.clone(),
        ip: case.ip.clone(),
        serial: case.serial.clone(),
        password: case.password.clone().map(Zeroizing::new),
        ..Default::default()
    }
}

/// The renewal a case asks for: the device's certificate (serial `01`,
/// valid for 30 more days) was issued under registration `id`.
fn renewal(case: &Case, id: u64, now: u64) -> Renewal<'_> {
    Renewal {
        registration: id,
        fqdn: &case.fqdn,
        ip: case.ip.clone(),
        serial: case.serial.as_deref(),
        procedure: &case.procedure,
        transaction: "cases:renewal",
        replaces: CASE_CERTIFICATE,
        replaces_expires_at: now + 30 * 86_400,
        actor: None,
    }
}

/// The serial of the certificate a renewal case replaces.
const CASE_CERTIFICATE: &str = "01";

/// Compares a decision with the case's expectation.
fn compare(case: &Case, report: &DecisionReport) -> CaseOutcome {
    let mut mismatches = Vec::new();
    let got = if report.allowed { "allow" } else { "deny" };
    if got != case.expect.as_str() {
        mismatches.push(Mismatch { field: "decision".into(), expected: case.expect.as_str().into(), got: got.into() });
    }
    if let Some(reason) = &case.reason
        && report.reason != reason.as_str()
    {
        mismatches.push(Mismatch {
            field: "reason".into(),
            expected: reason.clone(),
            got: report.reason.code().into(),
        });
    }
    if let Some(pattern) = &case.pattern {
        let got = report.pattern.clone().unwrap_or_default();
        if *pattern != got {
            let shown = |p: &str| if p.is_empty() { "none".to_owned() } else { format!("{p:?}") };
            mismatches.push(Mismatch { field: "pattern".into(), expected: shown(pattern), got: shown(&got) });
        }
    }
    CaseOutcome {
        name: case.name.clone(),
        passed: mismatches.is_empty(),
        mismatches,
        explanation: report.explanation.clone(),
    }
}

/// Decides one case from its recorded answers only.
fn replay_case(policy: &Arc<dyn Policy>, case: &Case, recording: &Recording) -> Result<CaseOutcome, CasesError> {
    let Some(recorded) = recording.cases.iter().find(|c| c.name == case.name) else {
        return Err(CasesError::Recording {
            path: recording.recorded_with.clone(),
            message: format!("no recorded host calls for case {:?}", case.name),
        });
    };
    // The policy sees no store: every fact comes from the recording.
    let info = policy.info().clone();
    let evaluation = Evaluation::new(Box::new(RecordedHost { now: recorded.now }), &info.name)
        .with_host_calls(HostCalls::Replay(recorded.calls.clone().into()));
    let (result, evaluation) = match (&case.renewal_of, recorded.renewal_of) {
        (Some(_), Some(id)) => policy.decide_renewal(evaluation, &renewal(case, id, recorded.now).request()),
        (None, None) => {
            let request = EnrollmentRequest {
                procedure: case.procedure.clone(),
                fqdn: case.fqdn.clone(),
                ip: case.ip.clone(),
                serial: case.serial.clone(),
                has_password: case.password.is_some(),
            };
            policy.decide(evaluation, &request)
        }
        _ => {
            return Err(CasesError::Recording {
                path: recording.recorded_with.clone(),
                message: format!("case {:?} is a renewal in one of the case file and the recording only", case.name),
            });
        }
    };
    let violation = evaluation.violation();
    let decision = match (result, violation) {
        (_, Some(v)) => Decision::new(prereg_core::Reason::PolicyError, None, format!("policy error (replay): {v}")),
        (Ok(d), None) => d,
        (Err(f), None) => Decision::new(prereg_core::Reason::PolicyError, None, format!("policy error: {f}")),
    };
    let pattern = decision.registration.and_then(|id| {
        recorded.calls.iter().find_map(|call| match call {
            HostCall::FindCandidates { answer: Ok(list), .. } => {
                list.iter().find(|r| r.id == id).map(|r| r.pattern.clone())
            }
            _ => None,
        })
    });
    let report = DecisionReport::of(&decision, pattern, &info, true);
    Ok(compare(case, &report))
}
