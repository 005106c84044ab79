//! The host survives a bad policy: the hostile guest (`tests/guests/hostile`)
//! loops, exhausts memory, traps and answers nonsense. Each gives a deny with
//! reason `policy-error`, never an allow and never a crash, and the host keeps
//! serving.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use prereg::registry::DecisionMode;
use prereg::{EngineError, WasmPolicy};

use crate::common::{Fixture, NOW, create_registration, default_policy, engine, req};

fn hostile() -> Arc<WasmPolicy> {
    static POLICY: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            Arc::new(prereg::load_policy(engine(), Some(Path::new(prereg::builtin::HOSTILE_POLICY_PATH))).unwrap())
        })
        .clone()
}

/// A fixture whose registry decides with the hostile policy, with one
/// registration per misbehaviour so that a policy that wrongly allowed would
/// have something to allow.
fn fixture() -> Fixture {
    let f = Fixture::with_policy(default_policy());
    f.procedure("p", "D", "scep", &[]);
    for name in ["loop", "oom", "trap", "nonsense", "liar", "greedy", "chatty", "calm"] {
        f.register("p", &format!("{name}.example.com")).unwrap();
    }
    f
}

fn assert_policy_error(f: &Fixture, name: &str, kind: &str) {
    let bad = f.with_other_policy(hostile());
    let fqdn = format!("{name}.example.com");
    for mode in [DecisionMode::DryRun, DecisionMode::Enroll] {
        let r = bad.decide(req("p", &fqdn).input(), mode, NOW).unwrap();
        assert_eq!((r.allowed, r.reason.as_str()), (false, "policy-error"), "{name}: {r:?}");
        assert!(r.explanation.contains(kind), "{name}: expected {kind:?} in {:?}", r.explanation);
        assert_eq!(r.policy.name, "hostile");
    }
    // The same hostile component serves an ordinary request next (fresh store).
    assert_eq!(
        bad.decide(req("p", "calm.example.com").input(), DecisionMode::DryRun, NOW).unwrap().reason,
        "no-registration"
    );
    // And the default policy on the same engine and storage is unaffected.
    assert_eq!(f.check(req("p", &fqdn)).reason, "matched");
}

#[test]
fn a_guest_that_loops_forever_times_out() {
    assert_policy_error(&fixture(), "loop", "timeout");
}

#[test]
fn a_guest_that_exhausts_memory_is_stopped() {
    assert_policy_error(&fixture(), "oom", "memory");
}

#[test]
fn a_guest_that_traps() {
    assert_policy_error(&fixture(), "trap", "trap");
}

#[test]
fn an_allow_for_a_registration_never_offered_is_refused() {
    assert_policy_error(&fixture(), "nonsense", "never offered");
}

#[test]
fn an_allow_with_a_deny_reason_is_refused() {
    assert_policy_error(&fixture(), "liar", "contradicts");
}

#[test]
fn claiming_not_required_on_a_scep_procedure_is_refused() {
    assert_policy_error(&fixture(), "greedy", "requires preregistration");
}

#[test]
fn a_one_mib_log_line_is_cut_and_does_no_harm() {
    let f = fixture();
    let bad = f.with_other_policy(hostile());
    let r = bad.decide(req("p", "chatty.example.com").input(), DecisionMode::DryRun, NOW).unwrap();
    assert_eq!(r.reason, "no-registration");
}

#[test]
fn policy_errors_in_real_decisions_are_audited() {
    let f = fixture();
    let bad = f.with_other_policy(hostile());
    let r = bad.decide(req("p", "trap.example.com").input(), DecisionMode::Enroll, NOW).unwrap();
    let records = f.registry.audit_records(0, 1000).unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        (last.seq, last.outcome.as_str(), last.reason.as_deref()),
        (r.audit_seq.unwrap(), "denied", Some("policy-error"))
    );
    assert_eq!(last.policy_sha256.as_deref(), Some(prereg::policy::Policy::info(hostile().as_ref()).sha256.as_str()));
}

#[test]
fn a_guest_that_loops_while_validating_a_registration_is_stopped() {
    let f = fixture();
    let bad = f.with_other_policy(hostile());
    let jws =
        prereg::signing::sign(&f.admin, &f.instance, create_registration("p", "loop.other.example.com"), NOW, 300)
            .unwrap();
    let e = bad.submit(&jws, NOW).unwrap_err();
    assert!(matches!(e, prereg::RegistryError::Policy(ref m) if m.contains("timeout")), "{e}");
    // Nothing was written, and the request id was not burnt: the default policy accepts it.
    assert_eq!(f.registry.submit(&jws, NOW).unwrap().action, "registration.create");
}

#[test]
fn files_that_are_not_policy_components_are_refused_with_a_reason() {
    let garbage = WasmPolicy::new(engine(), b"not wasm at all", "garbage.wasm");
    assert!(matches!(garbage, Err(EngineError::Invalid { .. })), "{:?}", garbage.err());
    // A core module, not a component.
    let core_module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    let e = WasmPolicy::new(engine(), &core_module, "core.wasm").err().unwrap().to_string();
    assert!(e.contains("core.wasm") && e.contains("not a usable"), "{e}");
    // An empty component: it exports nothing of the prereg:policy world.
    let empty_component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let e = WasmPolicy::new(engine(), &empty_component, "empty.wasm").err().unwrap().to_string();
    assert!(e.contains("empty.wasm") && e.contains("prereg:policy"), "{e}");
}
