//! Renewals are the policy's decision (WIT `decide-renewal`, since 0.1.1):
//! what the default rules allow and deny, that another policy decides
//! otherwise, that a policy of WIT 0.1.0 still runs (its renewals decided by
//! the host's default rules, which say so), and that the host's guard
//! refuses a hostile policy's renewal of what the rules would not renew.
//! The fronts that ask (EST `simplereenroll`, CMP `kur`) are tested with
//! stock clients in `est.rs` and `cmp.rs`. The procedures here are CMP's,
//! which always require preregistration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prereg::policy::Policy as _;
use prereg::registry::{DecisionReport, Grant, Renewal};
use prereg::signing::WriteRequest;
use prereg::store::{CertificateRecord, CertificateState};
use prereg::{Registry, WasmPolicy};
use prereg_core::Reason;

use crate::common::{Fixture, NOW, Reg, default_policy, engine, hostile, req};

const DAY: u64 = 86_400;

fn load(path: &str) -> Arc<WasmPolicy> {
    Arc::new(prereg::load_policy(engine(), Some(std::path::Path::new(path))).unwrap())
}

/// What a front asks after verifying the device's current certificate.
#[derive(Clone, Copy)]
struct Ask<'a> {
    procedure: &'a str,
    fqdn: &'a str,
    registration: u64,
    ip: Option<&'a str>,
    serial: Option<&'a str>,
    now: u64,
}

fn ask<'a>(procedure: &'a str, fqdn: &'a str, registration: u64) -> Ask<'a> {
    Ask { procedure, fqdn, registration, ip: None, serial: None, now: NOW }
}

/// Renews through `registry`; the issuer records which registration the
/// grant carried (the new certificate's pins come from it).
fn renew(registry: &Registry, ask: Ask<'_>) -> (DecisionReport, Option<CertificateRecord>) {
    static SERIALS: AtomicU64 = AtomicU64::new(1);
    let mut issue = |grant: &Grant<'_>| {
        Ok(CertificateRecord {
            serial: format!("{:x}", SERIALS.fetch_add(1, Ordering::Relaxed)),
            transaction: format!("test:{}", ask.now),
            registration: grant.registration.map(|r| r.id),
            state: CertificateState::Issued,
            der: Vec::new(),
            request: "{}".into(),
            issued_at: ask.now,
            expires_at: ask.now + 30 * DAY,
            revoked_at: None,
            revocation_reason: None,
        })
    };
    let renewal = Renewal {
        registration: ask.registration,
        fqdn: ask.fqdn,
        ip: ask.ip.map(Into::into),
        serial: ask.serial,
        procedure: ask.procedure,
        transaction: "test:renewal",
        replaces: "0a",
        replaces_expires_at: ask.now + DAY,
        actor: None,
    };
    registry.renew_issuing(&renewal, ask.now, &mut issue).unwrap()
}

fn renewals(f: &Fixture) -> Vec<(String, Option<String>, String)> {
    f.registry
        .audit_records(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "renew")
        .map(|r| (r.outcome, r.reason, r.policy_sha256.unwrap_or_default()))
        .collect()
}

#[test]
fn the_default_rules_renew_a_used_one_time_registration_without_counting_it() {
    let f = Fixture::new();
    f.procedure("gear", "corp", "cmp", &[]);
    let id = f
        .register_with(Reg { procedure: "gear", fqdn: "sw1.example.com", max_enrollments: Some(1), ..Reg::default() })
        .unwrap();
    assert!(f.enroll(req("gear", "sw1.example.com")).allowed);
    assert!(!f.enroll(req("gear", "sw1.example.com")).allowed, "a one-time registration enrolls once");

    let (report, certificate) = renew(&f.registry, ask("gear", "SW1.example.com.", id));
    assert_eq!((report.allowed, report.reason, report.registration), (true, Reason::Matched, Some(id)));
    assert!(report.explanation.contains("renewal of certificate 0a"), "{}", report.explanation);
    assert_eq!(certificate.unwrap().registration, Some(id));
    assert_eq!(f.registry.registration(id).unwrap().enrollments, 1, "a renewal counts nothing");
    let sha = default_policy().info().sha256.clone();
    assert_eq!(renewals(&f), [("allowed".into(), Some("matched".into()), sha)]);
}

#[test]
fn the_default_rules_refuse_a_disabled_locked_expired_or_moved_registration_and_broken_pins() {
    let f = Fixture::new();
    f.procedure("gear", "corp", "cmp", &[]);
    f.procedure("other", "elsewhere", "cmp", &[]);
    let disabled = f.register("gear", "disabled.example.com").unwrap();
    f.submit(WriteRequest::DisableRegistration { id: disabled }).unwrap();
    let locked = f
        .register_with(Reg {
            procedure: "gear",
            fqdn: "locked.example.com",
            password: Some("right-one"),
            ..Reg::default()
        })
        .unwrap();
    for _ in 0..5 {
        f.enroll(crate::common::Req { password: Some("wrong"), ..req("gear", "locked.example.com") });
    }
    let expiring = f
        .register_with(Reg { procedure: "gear", fqdn: "expiring.example.com", valid_days: Some(1), ..Reg::default() })
        .unwrap();
    let pinned = f
        .register_with(Reg {
            procedure: "gear",
            fqdn: "pinned.example.com",
            ip: Some("192.0.2.7"),
            serial: Some("SN-7"),
            ..Reg::default()
        })
        .unwrap();
    let wildcard = f.register("gear", "*.lab.example.com").unwrap();

    let cases: [(Ask<'_>, Reason); 8] = [
        (ask("gear", "disabled.example.com", disabled), Reason::NoRegistration),
        (ask("gear", "locked.example.com", locked), Reason::Locked),
        (Ask { now: NOW + 2 * DAY, ..ask("gear", "expiring.example.com", expiring) }, Reason::NoRegistration),
        (Ask { serial: Some("SN-7"), ..ask("gear", "pinned.example.com", pinned) }, Reason::IpMismatch),
        (Ask { ip: Some("192.0.2.7"), ..ask("gear", "pinned.example.com", pinned) }, Reason::SerialMismatch),
        // A name the registration does not cover: the device moved.
        (ask("gear", "a.b.lab.example.com", wildcard), Reason::NoRegistration),
        // The registration of another domain: not a candidate there.
        (ask("other", "x.lab.example.com", wildcard), Reason::NoRegistration),
        (ask("missing", "x.lab.example.com", wildcard), Reason::UnknownProcedure),
    ];
    for (asked, reason) in cases {
        let (report, certificate) = renew(&f.registry, asked);
        assert_eq!((report.allowed, report.reason), (false, reason), "{}: {}", asked.fqdn, report.explanation);
        assert!(certificate.is_none());
    }
    // The same requests that hold their pins, within validity, renew.
    let pins = Ask { ip: Some("192.0.2.7"), serial: Some("sn-7"), ..ask("gear", "pinned.example.com", pinned) };
    assert!(renew(&f.registry, pins).0.allowed);
    assert!(renew(&f.registry, ask("gear", "expiring.example.com", expiring)).0.allowed);
    assert!(renew(&f.registry, ask("gear", "x.lab.example.com", wildcard)).0.allowed);
    // Every one is audited, allowed or denied.
    assert_eq!(renewals(&f).len(), 11);
}

#[test]
fn another_policy_decides_renewals_its_own_way() {
    // exact-only: a device enrolled under a pattern renews no more; one
    // registered by its exact name does.
    let f = Fixture::new();
    f.procedure("gear", "corp", "cmp", &[]);
    let wildcard = f.register("gear", "*.lab.example.com").unwrap();
    let exact = f.register("gear", "sw1.example.com").unwrap();
    let exact_only = f.with_other_policy(load(prereg_test_artifacts::EXACT_ONLY_POLICY));
    let (report, _) = renew(&exact_only, ask("gear", "x.lab.example.com", wildcard));
    assert_eq!(
        (report.allowed, report.reason, report.policy.name.as_str()),
        (false, Reason::NoRegistration, "exact-only")
    );
    assert!(renew(&exact_only, ask("gear", "sw1.example.com", exact)).0.allowed);
    // The default policy renews the pattern's device.
    assert!(renew(&f.registry, ask("gear", "x.lab.example.com", wildcard)).0.allowed);

    // serial-required: through a CMP procedure, a renewal needs a serial
    // number in the request and in the registration.
    f.procedure("routers", "corp", "cmp", &[]);
    let with_serial = f
        .register_with(Reg { procedure: "routers", fqdn: "r1.example.com", serial: Some("SN-1"), ..Reg::default() })
        .unwrap();
    let serial_required = f.with_other_policy(load(prereg_test_artifacts::SERIAL_REQUIRED_POLICY));
    let without = renew(&serial_required, ask("routers", "r1.example.com", with_serial)).0;
    assert_eq!((without.allowed, without.reason), (false, Reason::SerialMismatch));
    let with = Ask { serial: Some("SN-1"), ..ask("routers", "r1.example.com", with_serial) };
    assert!(renew(&serial_required, with).0.allowed);
}

#[test]
fn a_policy_of_wit_0_1_0_still_runs_and_its_renewals_are_decided_by_the_default_rules() {
    let legacy = load(prereg_test_artifacts::LEGACY_POLICY);
    assert_eq!(legacy.info().wit_version, "0.1.0");
    assert!(!legacy.decides_renewals());
    assert!(default_policy().decides_renewals());

    let f = Fixture::new();
    f.procedure("gear", "corp", "cmp", &[]);
    let id = f.register("gear", "sw1.example.com").unwrap();
    let disabled = f.register("gear", "sw2.example.com").unwrap();
    f.submit(WriteRequest::DisableRegistration { id: disabled }).unwrap();
    let registry = f.with_other_policy(legacy);
    // Its own decisions: the 0.1.0 exports, found by a semver-compatible name.
    let enrolled =
        registry.decide(req("gear", "sw1.example.com").input(), prereg::registry::DecisionMode::Enroll, NOW).unwrap();
    assert_eq!((enrolled.allowed, enrolled.policy.name.as_str()), (true, "legacy"));
    assert!(enrolled.explanation.starts_with("legacy:"), "{}", enrolled.explanation);

    // Renewals: the default rules, named in the explanation.
    let (report, _) = renew(&registry, ask("gear", "sw1.example.com", id));
    assert!(report.allowed, "{}", report.explanation);
    assert!(
        report
            .explanation
            .contains("decided by the host's default renewal rules: policy legacy 0.1.0 implements WIT 0.1.0"),
        "{}",
        report.explanation
    );
    let (report, _) = renew(&registry, ask("gear", "sw2.example.com", disabled));
    assert_eq!((report.allowed, report.reason), (false, Reason::NoRegistration));
}

/// The attacker: a hostile policy allows every renewal. The guard lets
/// through only what is backed by an offered, standing registration whose
/// pins the request holds.
#[test]
fn the_guard_refuses_a_hostile_policys_renewal_of_what_the_rules_would_not_renew() {
    let f = Fixture::new();
    f.procedure("gear", "corp", "cmp", &[]);
    f.procedure("other", "elsewhere", "cmp", &[]);
    let open = f.register("gear", "calm.example.com").unwrap();
    let disabled = f.register("gear", "off.example.com").unwrap();
    f.submit(WriteRequest::DisableRegistration { id: disabled }).unwrap();
    let pinned = f
        .register_with(Reg { procedure: "gear", fqdn: "pin.example.com", ip: Some("192.0.2.9"), ..Reg::default() })
        .unwrap();
    let bad = f.with_other_policy(hostile());

    let refused = [
        ask("gear", "off.example.com", disabled),
        ask("gear", "pin.example.com", pinned),
        // Another domain's registration: never offered through "other".
        ask("other", "calm.example.com", open),
        // Another device's registration, under this device's name.
        ask("gear", "calm.example.com", pinned),
        // A registration that does not exist.
        ask("gear", "calm.example.com", 9_999),
    ];
    for asked in refused {
        let (report, certificate) = renew(&bad, asked);
        assert_eq!((report.allowed, report.reason), (false, Reason::PolicyError), "{}", asked.fqdn);
        assert!(report.explanation.contains("invalid-output"), "{}", report.explanation);
        assert!(certificate.is_none());
    }
    // A misbehaving renewal is stopped like a misbehaving decision.
    let (report, _) = renew(&bad, ask("gear", "loop.example.com", open));
    assert_eq!(report.reason, Reason::PolicyError);
    assert!(report.explanation.contains("timeout"), "{}", report.explanation);
    // What the rules would renew, the guard lets through.
    assert!(renew(&bad, ask("gear", "calm.example.com", open)).0.allowed);
    let audited = renewals(&f);
    assert_eq!(audited.iter().filter(|(outcome, _, _)| outcome == "allowed").count(), 1);
    assert_eq!(audited.iter().filter(|(_, reason, _)| reason.as_deref() == Some("policy-error")).count(), 6);
}
