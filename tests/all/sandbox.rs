//! The host survives a bad policy: the hostile guest (`tests/guests/hostile`)
//! loops, exhausts memory, recurses without end, storms the imports, traps
//! and answers nonsense or oversized output. Each gives a deny with
//! reason `policy-error`, never an allow and never a crash, and the host keeps
//! serving.

use prereg::policy::Policy as _;
use prereg::registry::DecisionMode;
use prereg::{EngineError, WasmPolicy};

use crate::common::{Fixture, NOW, create_registration, default_policy, engine, hostile, req};

/// A fixture whose registry decides with the hostile policy, with one
/// registration per misbehaviour so that a policy that wrongly allowed would
/// have something to allow.
fn fixture() -> Fixture {
    let f = Fixture::with_policy(default_policy());
    f.procedure("p", "D", "scep", &[]);
    for name in
        ["loop", "oom", "trap", "nonsense", "liar", "greedy", "chatty", "deep", "storm", "huge", "malformed", "calm"]
    {
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
    let grows = hostile().memory_grows();
    assert_policy_error(&fixture(), "oom", "memory");
    // Its growths up to the cap are counted, as `prereg policy bench` shows them.
    assert!(hostile().memory_grows() > grows);
}

#[test]
fn a_guest_that_recurses_without_end_overflows_its_stack() {
    assert_policy_error(&fixture(), "deep", "trap");
}

#[test]
fn an_import_storm_is_stopped_by_the_import_budget() {
    assert_policy_error(&fixture(), "storm", "host-import calls");
}

#[test]
fn a_huge_return_value_is_refused() {
    assert_policy_error(&fixture(), "huge", "explanation of 8388608 bytes");
}

#[test]
fn a_malformed_return_value_is_refused() {
    // A string that is not UTF-8 cannot be lifted: the call fails, the policy fails closed.
    assert_policy_error(&fixture(), "malformed", "utf-8");
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

/// WASI is linked (a `wasm32-wasip2` guest imports it), with a context made
/// only when a guest first calls it: that context gives nothing away (files
/// and sockets are not linked at all: see
/// `components_that_import_more_than_the_policy_world_are_refused_at_load`).
#[test]
fn a_guest_that_snoops_through_wasi_finds_nothing() {
    let f = fixture();
    f.register("p", "snoop.example.com").unwrap();
    let bad = f.with_other_policy(hostile());
    assert!(std::env::vars_os().count() > 0, "the test process has an environment to leak");
    for mode in [DecisionMode::DryRun, DecisionMode::Enroll] {
        let r = bad.decide(req("p", "snoop.example.com").input(), mode, NOW).unwrap();
        assert_eq!((r.allowed, r.reason.as_str()), (false, "no-registration"), "{r:?}");
        assert_eq!(r.explanation, "snooped: 0 environment variables, 0 arguments, clock true", "{mode:?}");
    }
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
    // Empty, truncated.
    let e = WasmPolicy::new(engine(), b"", "nothing.wasm").err().unwrap().to_string();
    assert!(e.contains("nothing.wasm") && e.contains("the file is empty"), "{e}");
    let whole = prereg::builtin::DEFAULT_POLICY_COMPONENT;
    let e = WasmPolicy::new(engine(), &whole[..whole.len() / 2], "half.wasm").err().unwrap().to_string();
    assert!(e.contains("half.wasm") && e.contains("truncated or malformed"), "{e}");
    // An empty component: it exports nothing of the prereg:policy world.
    let empty_component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let e = WasmPolicy::new(engine(), &empty_component, "empty.wasm").err().unwrap().to_string();
    assert!(e.contains("empty.wasm") && e.contains("prereg:policy"), "{e}");
}

/// A component with a `prereg:wit-version` section appended.
fn with_wit_version(version: &str) -> Vec<u8> {
    let mut bytes = prereg::builtin::DEFAULT_POLICY_COMPONENT.to_vec();
    let name = prereg::engine::inspect::WIT_VERSION_SECTION.as_bytes();
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(version.as_bytes());
    bytes.push(0); // a custom section
    bytes.push(content.len() as u8);
    bytes.extend_from_slice(&content);
    bytes
}

#[test]
fn the_wit_version_the_sdk_records_is_checked_at_load() {
    // The SDK records the version the default policy was built against.
    let facts = prereg::engine::inspect::inspect(prereg::builtin::DEFAULT_POLICY_COMPONENT, "built-in").unwrap();
    assert_eq!(facts.wit_version.as_deref(), Some(prereg_core::WIT_VERSION));
    assert_eq!(prereg::load_policy(engine(), None).unwrap().info().wit_version, prereg_core::WIT_VERSION);
    // A later patch version of the same WIT loads.
    assert!(WasmPolicy::new(engine(), &with_wit_version("0.1.9"), "patch.wasm").is_ok());
    // Another minor or major version is refused, naming what this host runs.
    for version in ["0.2.0", "1.0.0"] {
        let e = WasmPolicy::new(engine(), &with_wit_version(version), "newer.wasm").err().unwrap();
        assert!(matches!(e, EngineError::WitVersion { .. }), "{e}");
        let message = e.to_string();
        assert!(
            message.contains(&format!("built against prereg:policy@{version}"))
                && message.contains("runs prereg:policy@0.1.x"),
            "{message}"
        );
    }
}

#[test]
fn components_that_import_more_than_the_policy_world_are_refused_at_load() {
    for (import, file) in [
        ("wasi:filesystem/types@0.2.6", "files.wasm"),
        ("wasi:sockets/tcp@0.2.6", "sockets.wasm"),
        ("acme:spy/exfiltrate@1.0.0", "unknown.wasm"),
    ] {
        let bytes = wat::parse_str(format!(r#"(component (import "{import}" (instance)))"#)).unwrap();
        let e = WasmPolicy::new(engine(), &bytes, file).err().unwrap();
        assert!(matches!(e, EngineError::ForbiddenImport { .. }), "{e}");
        let message = e.to_string();
        assert!(message.contains(file) && message.contains(&format!("imports {import}")), "{message}");
    }
    // A component of another world: it imports nothing forbidden, but exports
    // nothing of prereg:policy.
    let other = wat::parse_str(r#"(component (import "wasi:cli/stdout@0.2.6" (instance)))"#).unwrap();
    let e = WasmPolicy::new(engine(), &other, "other-world.wasm").err().unwrap().to_string();
    assert!(e.contains("other-world.wasm") && e.contains("not a usable prereg:policy"), "{e}");
}

#[test]
fn benign_decisions_all_succeed_while_a_bad_guest_runs_beside_them() {
    let f = fixture();
    let bad = f.with_other_policy(hostile());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut attacks = 0;
            for name in ["loop", "oom", "storm", "deep"].iter().cycle() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let r =
                    bad.decide(req("p", &format!("{name}.example.com")).input(), DecisionMode::DryRun, NOW).unwrap();
                assert_eq!(r.reason, "policy-error");
                attacks += 1;
            }
            attacks
        })
    };
    let mut benign = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let r = f.check(req("p", "calm.example.com"));
        assert_eq!((r.allowed, r.reason.as_str()), (true, "matched"), "{r:?}");
        benign += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let attacks = attacker.join().unwrap();
    assert!(attacks >= 2 && benign >= 100, "{attacks} attacks, {benign} benign decisions");
    println!("{benign} benign decisions succeeded beside {attacks} attacks in 2 s");
}

#[test]
fn the_sandbox_limits_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = crate::common::prereg_command(dir.path()).args(["--data", "data"]).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(run(&["init"]).0, Some(0));
    assert_eq!(run(&["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]).0, Some(0));
    assert_eq!(run(&["register", "--procedure", "routers", "--fqdn", "r1.example.com"]).0, Some(0));
    let check = ["check", "--procedure", "routers", "--fqdn", "r1.example.com"];
    let (code, out) = run(&check);
    assert_eq!(code, Some(0), "{out}");
    // The default policy makes a few host calls per decision; two are too few.
    let (code, out) = run(&[&["--policy-import-calls", "2"][..], &check].concat());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("DENY policy-error") && out.contains("more than 2 host-import calls"), "{out}");
    // A Rust wasm32-wasip2 guest needs more than 1 MiB of linear memory to
    // start (its shadow stack alone is 1 MiB): under that cap the policy
    // cannot even be loaded. (The built-in policy starts in 512 KiB.)
    let out = crate::common::prereg_command(dir.path())
        .args(["--data", "data", "--policy-memory-mib", "1", "--policy", prereg_test_artifacts::EXACT_ONLY_POLICY])
        .args(check)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("policy failure (memory)"), "{err}");
    // Through the environment too.
    let out = crate::common::prereg_command(dir.path())
        .args(["--data", "data"])
        .args(check)
        .env("PREREG_POLICY_IMPORT_CALLS", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A bulk import validates its rows in batches on one instance: each call
/// gets the whole deadline and import budget, and a call that fails costs
/// only its own row (the rest get a fresh instance).
#[test]
fn a_batch_of_validations_isolates_the_row_that_fails() {
    let f = fixture();
    let storage = f.registry.storage().clone();
    let names = ["a.example.com", "trap.example.com", "loop.example.com", "storm.example.com", "b.example.com"];
    let requests: Vec<prereg_core::RegistrationRequest> = names
        .iter()
        .map(|fqdn| prereg_core::RegistrationRequest {
            procedure: "p".into(),
            fqdn: (*fqdn).into(),
            ip: None,
            serial: None,
            has_password: false,
        })
        .collect();
    let tx = storage.begin(prereg::store::TxKind::Read).unwrap();
    let evaluation = prereg::evaluation::StoreHost::new(tx, NOW).evaluation("hostile");
    let (answers, _) = hostile().validate_registrations(evaluation, &requests);
    let kinds: Vec<&str> = answers
        .iter()
        .map(|a| match a {
            Ok(Ok(_)) => "valid",
            Ok(Err(_)) => "invalid",
            Err(failure) => failure.kind,
        })
        .collect();
    // The hostile policy refuses every registration it survives.
    assert_eq!(kinds, ["invalid", "trap", "timeout", "budget", "invalid"], "{answers:?}");
    // The default policy answers a whole batch, in order, from one instance.
    let tx = storage.begin(prereg::store::TxKind::Read).unwrap();
    let evaluation = prereg::evaluation::StoreHost::new(tx, NOW).evaluation("default");
    let (answers, _) = default_policy().validate_registrations(evaluation, &requests);
    let patterns: Vec<String> = answers.into_iter().map(|a| a.unwrap().unwrap().pattern).collect();
    assert_eq!(patterns, names);
}
