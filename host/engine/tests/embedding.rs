//! prereg-engine as an embedder uses it: the built-in default policy as a
//! real WebAssembly component, over the in-memory host of
//! `examples/embed.rs` (the example itself, so it cannot rot), and over
//! hosts that lie or fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code, reason = "the example's main is not called here")]
#[path = "../examples/embed.rs"]
mod embed;

use embed::{MemoryHost, decide_one, host};
use prereg_core::{EnrollmentRequest, Fqdn, PasswordCheck, Procedure, Reason};
use prereg_engine::host_calls::RecordedHost;
use prereg_engine::{
    Candidate, Evaluation, HostCalls, HostError, Limits, NativeDefaultPolicy, Policy, PolicyEngine, PolicyHost,
    WasmPolicy, decide,
};

fn policy() -> WasmPolicy {
    WasmPolicy::builtin(&PolicyEngine::new(Limits::default()).unwrap()).unwrap()
}

fn request(fqdn: &str, password: bool) -> EnrollmentRequest {
    EnrollmentRequest { procedure: "routers".into(), fqdn: fqdn.into(), ip: None, serial: None, has_password: password }
}

#[test]
fn the_example_allows_the_right_password_and_denies_the_rest() {
    let policy = policy();
    let reasons: Vec<(bool, Reason, Option<u64>)> = embed::REQUESTS
        .iter()
        .map(|(fqdn, password)| {
            let d = decide_one(&policy, fqdn, *password);
            (d.allowed, d.reason, d.registration)
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (true, Reason::Matched, Some(1)),
            (false, Reason::BadPassword, Some(1)),
            (false, Reason::NoRegistration, None),
        ]
    );
}

#[test]
fn the_native_baseline_decides_as_the_component_does() {
    let (wasm, native) = (policy(), NativeDefaultPolicy::default());
    assert_eq!(wasm.info().sha256, native.info().sha256);
    for (fqdn, password) in embed::REQUESTS {
        let a = decide(&wasm, Box::new(host(password)), &request(fqdn, password.is_some()), HostCalls::Live);
        let b = decide(&native, Box::new(host(password)), &request(fqdn, password.is_some()), HostCalls::Live);
        assert_eq!(a.decision, b.decision, "{fqdn}");
    }
}

/// A recording replays without the host: the policy decides the same from a
/// host that knows nothing (as `prereg policy test --replay` does).
#[test]
fn a_recorded_decision_replays_without_the_host() {
    let policy = policy();
    let live = decide(
        &policy,
        Box::new(host(Some("s3cret-enough"))),
        &request("router5.dept.example.com", true),
        HostCalls::Record,
    );
    assert!(live.decision.allowed);
    let recording = live.trace.recorded.clone();
    assert!(recording.len() >= 3, "{recording:?}");
    let replay = |calls: Vec<prereg_engine::host_calls::HostCall>| {
        let evaluation = Evaluation::new(Box::new(RecordedHost { now: host(None).now }), "default")
            .with_host_calls(HostCalls::Replay(calls.into()));
        let (decision, evaluation) = policy.decide(evaluation, &request("router5.dept.example.com", true));
        (decision, evaluation.violation())
    };
    assert_eq!(replay(recording.clone()), (Ok(live.decision), None));
    // A recording that lacks an answer the policy needs stops the policy
    // (the budget's failure), rather than let it guess.
    let (decision, violation) = replay(recording[..1].to_vec());
    assert_eq!(decision.map_err(|f| f.kind), Err("budget"));
    assert!(violation.is_some_and(|v| v.contains("no answer")));
}

/// The host of an attacker's choosing around the honest one.
struct Lying {
    honest: MemoryHost,
    /// Offers every registration as if it belonged to the asked domain,
    /// whatever its own.
    cross_domain: bool,
    /// Answers `match` to every password check.
    any_password: bool,
    /// Fails every candidate lookup.
    storage_down: bool,
}

impl PolicyHost for Lying {
    fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError> {
        self.honest.procedure(name)
    }

    fn candidates(&mut self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Candidate>, HostError> {
        if self.storage_down {
            return Err(HostError::Unavailable("disk on fire".into()));
        }
        if self.cross_domain {
            let mut all = Vec::new();
            for d in &self.honest.devices {
                all.push(Candidate { registration: d.registration.clone(), domain: d.domain.into() });
            }
            return Ok(all);
        }
        self.honest.candidates(domain, fqdn, limit)
    }

    fn check_password(&mut self, registration: u64) -> Result<PasswordCheck, HostError> {
        if self.any_password {
            return Ok(PasswordCheck::Match);
        }
        self.honest.check_password(registration)
    }

    fn now(&self) -> u64 {
        self.honest.now
    }
}

fn lying(password: Option<&str>) -> Lying {
    Lying { honest: host(password), cross_domain: false, any_password: false, storage_down: false }
}

#[test]
fn a_registration_of_another_domain_never_allows() {
    let mut host = lying(Some("s3cret-enough"));
    // The procedure now scopes domain "lab"; the device is registered in "corp".
    host.honest.procedures[0].domain = "lab".into();
    host.cross_domain = true;
    let decided = decide(&policy(), Box::new(host), &request("router5.dept.example.com", true), HostCalls::Live);
    assert!(!decided.decision.allowed);
    assert_eq!(decided.decision.reason, Reason::PolicyError, "{}", decided.decision.explanation);
    assert!(decided.decision.explanation.contains("another domain"), "{}", decided.decision.explanation);
}

#[test]
fn a_failing_store_is_never_an_allow_and_is_reported() {
    let mut host = lying(Some("s3cret-enough"));
    host.storage_down = true;
    let decided = decide(&policy(), Box::new(host), &request("router5.dept.example.com", true), HostCalls::Live);
    assert!(!decided.decision.allowed);
    assert_eq!(decided.trace.host_error, Some(HostError::Unavailable("disk on fire".into())));
}

/// The host is the embedder's: one that says "match" to any password is
/// believed (the engine cannot know the password), but only for a
/// registration it offered, and at most twice per decision.
#[test]
fn password_checks_are_asked_only_for_offered_registrations() {
    let mut host = lying(Some("guessed"));
    host.any_password = true;
    let decided = decide(&policy(), Box::new(host), &request("router5.dept.example.com", true), HostCalls::Live);
    assert!(decided.decision.allowed);
    assert_eq!(decided.trace.password_checks.keys().copied().collect::<Vec<_>>(), [1]);
    assert!(decided.trace.offered.contains_key(&1));
}

#[test]
fn the_embedder_takes_its_host_back() {
    let decided =
        decide(&policy(), Box::new(host(None)), &request("printer1.dept.example.com", false), HostCalls::Live);
    assert_eq!(decided.decision.reason, Reason::NoRegistration);
    let back = prereg_engine::downcast_host::<MemoryHost>(decided.host).unwrap();
    assert_eq!(back.devices.len(), 1);
    // Another type is refused, not transmuted.
    let other = decide(&policy(), Box::new(host(None)), &request("printer1.dept.example.com", false), HostCalls::Live);
    assert!(prereg_engine::downcast_host::<RecordedHost>(other.host).is_none());
}
