//! Steps 8 and 9 and the registration life cycle: passwords and the lockout,
//! validity, `max_enrollments`, disable / reopen / delete, and dry runs that
//! change nothing.

use prereg::registry::DecisionMode;
use prereg::signing::WriteRequest;
use prereg_core::RegistrationState;

use crate::common::{Fixture, NOW, Reg, Req, contains, req};

fn state(f: &Fixture, id: u64) -> RegistrationState {
    f.registry.registration(id).unwrap().state
}

#[test]
fn passwords_and_the_lockout() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let id = f
        .register_with(Reg {
            procedure: "p",
            fqdn: "pw.example.com",
            password: Some("s3cret"),
            max_enrollments: Some(10),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(f.enroll(req("p", "pw.example.com")).reason, "password-required");
    // Four wrong passwords, then a right one: the count resets.
    for _ in 0..4 {
        assert_eq!(f.enroll(Req { password: Some("wrong"), ..req("p", "pw.example.com") }).reason, "bad-password");
    }
    assert_eq!(f.registry.registration(id).unwrap().failed_attempts, 4);
    assert_eq!(f.enroll(Req { password: Some("s3cret"), ..req("p", "pw.example.com") }).reason, "matched");
    assert_eq!(f.registry.registration(id).unwrap().failed_attempts, 0);
    // Five in a row lock it; then even the right password is refused.
    for _ in 0..5 {
        assert_eq!(f.enroll(Req { password: Some("wrong"), ..req("p", "pw.example.com") }).reason, "bad-password");
    }
    assert_eq!(state(&f, id), RegistrationState::Locked);
    let r = f.enroll(Req { password: Some("s3cret"), ..req("p", "pw.example.com") });
    assert_eq!((r.allowed, r.reason.as_str()), (false, "locked"));
    // Dry runs never count failures.
    let before = f.registry.registration(id).unwrap();
    f.check(Req { password: Some("wrong"), ..req("p", "pw.example.com") });
    assert_eq!(f.registry.registration(id).unwrap(), before);
    // An officer reopens it.
    f.submit(WriteRequest::ReopenRegistration { id }).unwrap();
    assert_eq!(state(&f, id), RegistrationState::Open);
    assert_eq!(f.enroll(Req { password: Some("s3cret"), ..req("p", "pw.example.com") }).reason, "matched");
}

#[test]
fn max_enrollments_and_defaults() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let exact = f.register("p", "once.example.com").unwrap();
    let pattern = f.register("p", "*.fleet.example.com").unwrap();
    let twice = f
        .register_with(Reg {
            procedure: "p",
            fqdn: "twice.example.com",
            max_enrollments: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(f.registry.registration(exact).unwrap().max_enrollments, Some(1));
    assert_eq!(f.registry.registration(pattern).unwrap().max_enrollments, None);

    // A dry run allows but counts nothing.
    assert!(f.check(req("p", "once.example.com")).allowed);
    assert_eq!(f.registry.registration(exact).unwrap().enrollments, 0);
    let first = f.enroll(req("p", "once.example.com"));
    assert!(first.allowed && first.audit_seq.is_some());
    assert_eq!(state(&f, exact), RegistrationState::Used);
    assert_eq!(f.enroll(req("p", "once.example.com")).reason, "no-registration");

    assert!(f.enroll(req("p", "twice.example.com")).allowed);
    assert!(f.enroll(req("p", "twice.example.com")).allowed);
    assert!(!f.enroll(req("p", "twice.example.com")).allowed);
    assert_eq!(f.registry.registration(twice).unwrap().enrollments, 2);

    for i in 0..5 {
        assert!(f.enroll(req("p", &format!("dev{i}.fleet.example.com"))).allowed);
    }
    assert_eq!(state(&f, pattern), RegistrationState::Open);
}

#[test]
fn validity_expires() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register_with(Reg { procedure: "p", fqdn: "short.example.com", valid_days: Some(2), ..Default::default() })
        .unwrap();
    let day = 86_400;
    assert!(f.registry.decide(req("p", "short.example.com").input(), DecisionMode::DryRun, NOW + day).unwrap().allowed);
    let late = f.registry.decide(req("p", "short.example.com").input(), DecisionMode::DryRun, NOW + 2 * day).unwrap();
    assert_eq!(late.reason, "no-registration");
}

#[test]
fn disable_reopen_delete() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let id = f.register("p", "dev.example.com").unwrap();
    f.submit(WriteRequest::DisableRegistration { id }).unwrap();
    assert_eq!(f.check(req("p", "dev.example.com")).reason, "no-registration");
    f.submit(WriteRequest::ReopenRegistration { id }).unwrap();
    assert_eq!(f.check(req("p", "dev.example.com")).reason, "matched");
    f.submit(WriteRequest::DeleteRegistration { id }).unwrap();
    assert!(f.registry.registration(id).is_err());
    assert_eq!(f.check(req("p", "dev.example.com")).reason, "no-registration");
    // The pattern is free again.
    f.register("p", "dev.example.com").unwrap();
    let missing = f.submit(WriteRequest::DisableRegistration { id: 9999 }).unwrap_err().to_string();
    assert_eq!(missing, "registration 9999 not found");
}

#[test]
fn every_enrollment_decision_is_audited_and_dry_runs_are_not() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register("p", "dev.example.com").unwrap();
    let before = f.registry.audit_records(0, 1000).unwrap().len();
    f.check(req("p", "dev.example.com"));
    f.check(req("p", "nobody.example.com"));
    assert_eq!(f.registry.audit_records(0, 1000).unwrap().len(), before);
    let allowed = f.enroll(req("p", "dev.example.com"));
    let denied = f.enroll(req("p", "nobody.example.com"));
    let records = f.registry.audit_records(0, 1000).unwrap();
    assert_eq!(records.len(), before + 2);
    let a = &records[records.len() - 2];
    let d = &records[records.len() - 1];
    assert_eq!((a.action.as_str(), a.outcome.as_str(), a.reason.as_deref()), ("enroll", "allowed", Some("matched")));
    assert_eq!((d.outcome.as_str(), d.reason.as_deref()), ("denied", Some("no-registration")));
    assert_eq!(a.policy_sha256.as_deref(), Some(allowed.policy.sha256.as_str()));
    assert_eq!(Some(d.seq), denied.audit_seq);
    assert!(f.registry.verify_audit().unwrap().fault.is_none());
}

#[test]
fn passwords_are_never_stored_or_audited_in_plain_text() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register_with(Reg {
        procedure: "p",
        fqdn: "pw.example.com",
        password: Some("Plaintext-Secret-42"),
        ..Default::default()
    })
    .unwrap();
    f.enroll(Req { password: Some("Plaintext-Secret-42"), ..req("p", "pw.example.com") });
    f.enroll(Req { password: Some("Wrong-Guess-43"), ..req("p", "pw.example.com") });
    let bytes = f.stored_bytes();
    for secret in ["Plaintext-Secret-42", "Wrong-Guess-43"] {
        assert!(!contains(&bytes, secret.as_bytes()), "{secret} found in the database");
    }
}

/// Issue 17, item 9: a CA caller that timed out retries an enrollment with
/// the same Idempotency-Key: it gets the first answer, and a one-time
/// registration is counted once; the same key for another request is refused.
#[test]
fn a_retried_enrollment_with_the_same_key_is_answered_once() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let id = f.register("p", "once.example.com").unwrap();
    let input = |fqdn: &str, caller: &str, key: &str| prereg::registry::EnrollmentInput {
        caller: Some(caller.into()),
        idempotency_key: Some(key.into()),
        ..req("p", fqdn).input()
    };
    let first = f.registry.decide(input("once.example.com", "front", "k1"), DecisionMode::Enroll, NOW).unwrap();
    assert!(first.allowed, "{first:?}");
    let audited = f.registry.audit_records(0, 1000).unwrap().len();
    for _ in 0..3 {
        let again = f.registry.decide(input("once.example.com", "front", "k1"), DecisionMode::Enroll, NOW + 5).unwrap();
        assert_eq!(again, first, "the first answer, audit record included");
    }
    assert_eq!(f.registry.registration(id).unwrap().enrollments, 1);
    assert_eq!(f.registry.audit_records(0, 1000).unwrap().len(), audited, "nothing audited again");
    // A new key is a new enrollment: the registration is used up.
    let second = f.registry.decide(input("once.example.com", "front", "k2"), DecisionMode::Enroll, NOW).unwrap();
    assert!(!second.allowed, "{second:?}");
    // The same key for another request is refused, naming the header.
    let reused = f.registry.decide(input("other.example.com", "front", "k1"), DecisionMode::Enroll, NOW);
    assert!(matches!(&reused, Err(prereg::RegistryError::Invalid { field, .. }) if field == "idempotency-key"), "{reused:?}");
    // Keys are per caller: another caller's k1 is its own.
    let theirs = f.registry.decide(input("once.example.com", "webhook", "k1"), DecisionMode::Enroll, NOW).unwrap();
    assert!(!theirs.allowed && theirs.audit_seq != first.audit_seq);
    // A day later the key is forgotten (when the next key is recorded).
    let later = NOW + prereg::registry::IDEMPOTENCY_SECONDS + 1;
    f.registry.decide(input("x.example.com", "front", "k9"), DecisionMode::Enroll, later).unwrap();
    let after = f.registry.decide(input("once.example.com", "front", "k1"), DecisionMode::Enroll, later).unwrap();
    assert_ne!(after.audit_seq, first.audit_seq, "decided anew");
}
