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

/// A dry run is answered from memory (the index and the procedures last
/// read) only while the store's change token says nothing was committed
/// since: a commit by this registry, by another registry over the same
/// storage, or by another process's own connections (another storage on the
/// same file) sends the next dry run back to a transaction, which sees it.
/// PostgreSQL has no change token: every dry run takes a transaction.
#[test]
fn dry_runs_are_answered_from_memory_only_until_anything_is_committed() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    let sqlite = f.backend == crate::common::Backend::Sqlite;
    f.procedure("routers", "corp", "scep", &[]);
    let id = f.register("routers", "a.dept.example.com").unwrap();
    let indexed = f.with_other_policy(default_policy()).with_memory_index().unwrap();
    let dry = |fqdn: &str| indexed.decide(req("routers", fqdn).input(), DecisionMode::DryRun, NOW).unwrap();
    let from_memory = || indexed.dry_runs_from_memory();

    assert!(dry("a.dept.example.com").allowed);
    let before = from_memory();
    for _ in 0..3 {
        let r = dry("a.dept.example.com");
        assert_eq!((r.reason.as_str(), r.registration), ("matched", Some(id)));
    }
    assert_eq!(from_memory(), before + if sqlite { 3 } else { 0 });

    // A commit through the other registry: seen at once.
    f.submit(WriteRequest::DisableRegistration { id }).unwrap();
    let after_commit = from_memory();
    assert_eq!(dry("a.dept.example.com").reason, "no-registration");
    assert_eq!(from_memory(), after_commit, "the first dry run after a commit takes a transaction");
    assert_eq!(dry("a.dept.example.com").reason, "no-registration");

    // A commit through another storage on the same database (its own
    // connections and anchor, as another process has): seen at once too.
    if sqlite {
        let storage = std::sync::Arc::new(prereg::store::SqliteStorage::open(&f.database()).unwrap());
        let other = Registry::new(storage, default_policy());
        let jws = prereg::signing::sign(&f.admin, &f.instance, WriteRequest::ReopenRegistration { id }, NOW, 300);
        other.submit(&jws.unwrap(), NOW).unwrap();
        let r = dry("a.dept.example.com");
        assert_eq!((r.reason.as_str(), r.registration), ("matched", Some(id)));
    }

    // A dry run with a password, and a procedure never read, take a transaction.
    f.procedure("meters", "field", "cmp", &[]);
    let with_password = crate::common::Req { password: Some("guess"), ..req("routers", "a.dept.example.com") };
    dry("a.dept.example.com");
    let counted = from_memory();
    indexed.decide(with_password.input(), DecisionMode::DryRun, NOW).unwrap();
    assert_eq!(indexed.decide(req("meters", "m.example.net").input(), DecisionMode::DryRun, NOW).unwrap().reason, "no-registration");
    assert_eq!(from_memory(), counted);
    // ... and then the procedure is remembered.
    assert_eq!(indexed.decide(req("meters", "m.example.net").input(), DecisionMode::DryRun, NOW).unwrap().reason, "no-registration");
    assert_eq!(from_memory(), counted + u64::from(sqlite));
}
