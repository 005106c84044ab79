//! The in-memory candidate index (`prereg::index`): decisions made through it
//! agree with decisions made through the storage index, and see every change
//! the moment it is committed, whoever wrote it: this registry, another
//! registry on the same database, or another process.

use prereg::registry::{DecisionMode, DecisionReport, Registry};
use prereg::signing::WriteRequest;

use crate::common::{Fixture, NOW, Reg, Req, default_policy, req};

/// Decides `r` on both registries and checks they agree; the indexed answer.
fn both(indexed: &Registry, plain: &Registry, r: Req<'_>, mode: DecisionMode) -> DecisionReport {
    let by_index = indexed.decide(r.input(), mode, NOW).unwrap();
    let by_store = plain.decide(r.input(), DecisionMode::DryRun, NOW).unwrap();
    if mode == DecisionMode::DryRun {
        assert_eq!(
            (&by_index.reason, by_index.registration),
            (&by_store.reason, by_store.registration),
            "{}: the index and the store disagree",
            r.fqdn
        );
    }
    by_index
}

#[test]
fn decisions_through_the_index_see_every_change_of_another_writer_at_once() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    // Another registry on the same database, deciding through a memory index
    // built now: everything below is written through `f.registry`.
    let indexed = f.with_other_policy(default_policy()).with_memory_index().unwrap();
    let plain = &f.registry;
    assert!(indexed.memory_index().unwrap().is_empty());
    let check = |fqdn: &str| both(&indexed, plain, req("routers", fqdn), DecisionMode::DryRun);

    f.procedure("routers", "corp", "scep", &[]);
    assert_eq!(check("a.dept.example.com").reason, "no-registration");
    let wildcard = f.register("routers", "*.dept.example.com").unwrap();
    let r = check("a.dept.example.com");
    assert_eq!((r.reason.as_str(), r.registration), ("matched", Some(wildcard)));

    // An exact registration, more specific, used up by enrollments through the index.
    let once = f
        .register_with(Reg {
            procedure: "routers",
            fqdn: "once.dept.example.com",
            max_enrollments: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(check("once.dept.example.com").registration, Some(once));
    let first = both(&indexed, plain, req("routers", "once.dept.example.com"), DecisionMode::Enroll);
    assert_eq!((first.allowed, first.registration), (true, Some(once)));
    // Used: the wildcard decides now, in both.
    assert_eq!(check("once.dept.example.com").registration, Some(wildcard));
    assert_eq!(plain.registration(once).unwrap().state.to_string(), "used");

    // Disable, reopen, delete, through the other registry.
    f.submit(WriteRequest::DisableRegistration { id: wildcard }).unwrap();
    assert_eq!(check("a.dept.example.com").reason, "no-registration");
    f.submit(WriteRequest::ReopenRegistration { id: wildcard }).unwrap();
    assert_eq!(check("a.dept.example.com").reason, "matched");
    f.submit(WriteRequest::DeleteRegistration { id: wildcard }).unwrap();
    assert_eq!(check("a.dept.example.com").reason, "no-registration");

    // Lockout through the index: five bad passwords, then even the right one
    // is refused; the store agrees.
    let locked = f
        .register_with(Reg {
            procedure: "routers",
            fqdn: "pw.dept.example.com",
            password: Some("right"),
            ..Default::default()
        })
        .unwrap();
    for _ in 0..5 {
        let r = both(
            &indexed,
            plain,
            Req { password: Some("wrong"), ..req("routers", "pw.dept.example.com") },
            DecisionMode::Enroll,
        );
        assert_eq!(r.reason, "bad-password");
    }
    let r = both(
        &indexed,
        plain,
        Req { password: Some("right"), ..req("routers", "pw.dept.example.com") },
        DecisionMode::DryRun,
    );
    assert_eq!((r.reason.as_str(), r.registration), ("locked", Some(locked)));
    assert_eq!(plain.registration(locked).unwrap().state.to_string(), "locked");

    // Another domain's registrations are never candidates.
    f.procedure("meters", "utility", "scep", &[]);
    f.register("meters", "*.dept.example.com").unwrap();
    assert_eq!(check("b.dept.example.com").reason, "no-registration");
    let index = indexed.memory_index().unwrap();
    assert_eq!((index.len(), index.stats().builds), (3, 1), "kept up by changes, never rebuilt");
}
