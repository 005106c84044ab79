//! Group commit (issue 21): enrollment decisions that arrive together share
//! one write transaction. Each still sees the ones before it, counts once,
//! fails alone, and is audited in order on one chain.

use std::sync::{Arc, Barrier};

use prereg::registry::{DecisionMode, EnrollmentInput, RegistryError};
use prereg_core::RegistrationState;

use crate::common::{Fixture, NOW, Reg, Req, req};

/// The enrollment records of the audit log, in order: (seq, object, outcome, reason).
fn enroll_records(f: &Fixture) -> Vec<(u64, String, String, Option<String>)> {
    f.registry
        .audit_records(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "enroll")
        .map(|r| (r.seq, r.object, r.outcome, r.reason))
        .collect()
}

fn intact(f: &Fixture) {
    let verified = f.registry.verify_audit().unwrap();
    assert!(verified.fault.is_none(), "{verified:?}");
}

#[test]
fn a_one_time_registration_in_one_batch_is_allowed_once() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let id = f.register("p", "once.example.com").unwrap();
    let other = f.register("p", "*.fleet.example.com").unwrap();
    // With the memory index, as `prereg serve` decides: the batch must see
    // its own writes, which the index does not hold.
    let registry = f.registry.clone().with_memory_index().unwrap();
    let mut inputs: Vec<EnrollmentInput> = (0..16).map(|_| req("p", "once.example.com").input()).collect();
    inputs.insert(3, req("p", "a.fleet.example.com").input());
    let answers = registry.enroll_together(inputs, NOW);
    let reports: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let allowed: Vec<usize> =
        reports.iter().enumerate().filter(|(_, r)| r.allowed && r.registration == Some(id)).map(|(i, _)| i).collect();
    assert_eq!(allowed, vec![0], "the first in the batch, and only it");
    assert!(reports[3].allowed && reports[3].registration == Some(other), "{:?}", reports[3]);
    for r in reports.iter().skip(1).filter(|r| r.registration != Some(other)) {
        assert_eq!(r.reason.code(), "no-registration", "{r:?}");
    }
    let once = registry.registration(id).unwrap();
    assert_eq!((once.state, once.enrollments), (RegistrationState::Used, 1));
    // One record per decision, in the batch's order, on one intact chain.
    let records = enroll_records(&f);
    assert_eq!(records.len(), 17);
    let seqs: Vec<u64> = reports.iter().map(|r| r.audit_seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {seqs:?}");
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), seqs);
    intact(&f);
    // And the memory index, caught up after the commit, agrees.
    assert!(!registry.check(req("p", "once.example.com").input(), NOW).unwrap().allowed);
    assert_eq!(registry.group_commit_stats().largest, 17);
}

/// The attacker's version: sixteen clients race for one one-time
/// registration at the same instant, each through `decide` (which batches
/// concurrent callers by itself). One wins, whatever the batches were.
#[test]
fn sixteen_concurrent_clients_racing_for_a_one_time_registration_win_once() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let registry = f.registry.clone().with_memory_index().unwrap();
    for round in 0..5 {
        let name = format!("once{round}.example.com");
        let id = f.register("p", &name).unwrap();
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (registry, barrier, name) = (registry.clone(), barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    registry.decide(req("p", &name).input(), DecisionMode::Enroll, NOW).unwrap()
                })
            })
            .collect();
        let reports: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(reports.iter().filter(|r| r.allowed).count(), 1, "round {round}: {reports:?}");
        assert_eq!(registry.registration(id).unwrap().enrollments, 1);
        let mut seqs: Vec<u64> = reports.iter().map(|r| r.audit_seq.unwrap()).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 16, "sixteen records");
    }
    let stats = registry.group_commit_stats();
    assert_eq!(stats.decisions, 80);
    assert!(stats.batches <= 80 && stats.largest <= 16, "{stats:?}");
    intact(&f);
}

/// A decision of a batch that fails takes back its own writes only: the
/// decisions before and after it are committed, counted and audited.
#[test]
fn a_failing_decision_takes_back_only_its_own_writes() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let first = f.register("p", "a.example.com").unwrap();
    let last = f.register("p", "c.example.com").unwrap();
    let keyed = |fqdn: &str, key: &str| EnrollmentInput {
        caller: Some("front".into()),
        idempotency_key: Some(key.into()),
        ..req("p", fqdn).input()
    };
    // k1 answers b.example.com (denied: not registered).
    assert!(!f.registry.decide(keyed("b.example.com", "k1"), DecisionMode::Enroll, NOW).unwrap().allowed);
    let before = enroll_records(&f).len();
    let too_long = format!("{}.example.com", "a".repeat(64));
    let answers = f.registry.enroll_together(
        vec![
            keyed("a.example.com", "k2"),
            // The same key for another request: refused, nothing of it kept.
            keyed("c.example.com", "k1"),
            req("p", &too_long).input(),
            keyed("c.example.com", "k3"),
            // A retry of k2 within the same batch: the first answer.
            keyed("a.example.com", "k2"),
        ],
        NOW,
    );
    let [a, reused, long, c, retry] = <[_; 5]>::try_from(answers).unwrap();
    let (a, c, retry) = (a.unwrap(), c.unwrap(), retry.unwrap());
    assert!(matches!(&reused, Err(RegistryError::Invalid { field, .. }) if field == "idempotency-key"), "{reused:?}");
    assert!(matches!(&long, Err(RegistryError::Invalid { field, .. }) if field == "fqdn"), "{long:?}");
    assert!(a.allowed && c.allowed, "{a:?} {c:?}");
    assert_eq!(retry, a, "the retry in the same batch gets the first answer");
    assert_eq!(f.registry.registration(first).unwrap().enrollments, 1, "counted once");
    assert_eq!(f.registry.registration(last).unwrap().enrollments, 1);
    assert_eq!(enroll_records(&f).len(), before + 2, "two decisions audited, no more");
    assert_eq!(c.audit_seq.unwrap(), a.audit_seq.unwrap() + 1, "the failed one left no gap in the chain");
    intact(&f);
}

/// The lockout counts across a batch: five wrong passwords lock the
/// registration, and the right one after them in the same batch is refused.
#[test]
fn the_lockout_counts_within_a_batch() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    let id = f
        .register_with(Reg { procedure: "p", fqdn: "pw.example.com", password: Some("s3cret"), ..Default::default() })
        .unwrap();
    let registry = f.registry.clone().with_memory_index().unwrap();
    let with = |password| Req { password: Some(password), ..req("p", "pw.example.com") }.input();
    let mut inputs: Vec<EnrollmentInput> = (0..5).map(|_| with("wrong")).collect();
    inputs.push(with("s3cret"));
    let reasons: Vec<String> =
        registry.enroll_together(inputs, NOW).into_iter().map(|r| r.unwrap().reason.code().to_owned()).collect();
    assert_eq!(reasons, ["bad-password", "bad-password", "bad-password", "bad-password", "bad-password", "locked"]);
    assert_eq!(registry.registration(id).unwrap().state, RegistrationState::Locked);
    intact(&f);
}

/// A protocol transaction id claimed by eight clients at once (a CMP
/// transactionID replayed) is claimed once; the claims share batches with
/// enrollments, and a refused claim takes nothing of theirs back (on
/// PostgreSQL its failed insert would abort the whole transaction).
#[test]
fn a_transaction_id_claimed_at_once_by_eight_clients_is_claimed_once() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "cmp", &[]);
    f.register_with(Reg { procedure: "p", fqdn: "*.fleet.example.com", max_enrollments: Some(100), ..Default::default() })
        .unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (registry, barrier) = (f.registry.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if i % 2 == 0 {
                    (Some(registry.claim_transaction("cmp:0123", NOW).unwrap()), None)
                } else {
                    let name = format!("d{i}.fleet.example.com");
                    (None, Some(registry.decide(req("p", &name).input(), DecisionMode::Enroll, NOW).unwrap()))
                }
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let claimed = answers.iter().filter(|(c, _)| *c == Some(true)).count();
    assert_eq!(claimed, 1, "{answers:?}");
    assert!(answers.iter().filter_map(|(_, r)| r.as_ref()).all(|r| r.allowed), "{answers:?}");
    assert_eq!(enroll_records(&f).len(), 8);
    // Durable: claimed still, for anyone.
    assert!(!f.registry.claim_transaction("cmp:0123", NOW + 60).unwrap());
    assert!(f.registry.claim_transaction("cmp:0124", NOW + 60).unwrap());
    intact(&f);
}

/// A memo of the store (the service's resolved CA callers) stays valid
/// across this process's own enrollment batches, which change none of it,
/// and across nothing else: another write of this process, or a commit of
/// another process, even one that lands between a batch's lock and its
/// commit-time reading, invalidates it.
#[test]
fn a_memo_outlives_this_process_batches_and_nothing_else() {
    use std::collections::HashMap;

    use prereg::registry::TokenMemo;

    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register("p", "a.example.com").unwrap();
    f.register("p", "b.example.com").unwrap();
    let memo: Arc<TokenMemo<String, u32>> = Arc::default();
    f.registry.carry_over_own_batches(memo.clone());
    let storage = f.registry.storage().clone();
    let token = || storage.change_token().unwrap();
    let key = "caller".to_owned();
    let Some(at) = token() else {
        // No change token (PostgreSQL): there is no memo to carry.
        assert!(storage.counted_change_token().is_none());
        return;
    };
    memo.remember(at, HashMap::from([(key.clone(), 1)]));

    // Batches of this process: the memo holds after each.
    for _ in 0..3 {
        f.registry.decide(req("p", "a.example.com").input(), DecisionMode::Enroll, NOW).unwrap();
    }
    let after = token().unwrap();
    assert_ne!(after, at, "the batches committed");
    assert_eq!(memo.get(after, &key), Some(1), "carried over this process's batches");

    // Another write of this process (an officer's registration): not carried.
    f.register("p", "c.example.com").unwrap();
    let later = token().unwrap();
    assert_eq!(memo.get(later, &key), None, "another write invalidates it");

    // Another process commits, then this process's batch: the batch began
    // after that commit, so the memo, read before it, is not carried.
    memo.remember(later, HashMap::from([(key.clone(), 2)]));
    f.execute_sql("UPDATE registrations SET expires_at = 4102444800 WHERE pattern = 'c.example.com'");
    f.registry.decide(req("p", "b.example.com").input(), DecisionMode::Enroll, NOW).unwrap();
    assert_eq!(memo.get(token().unwrap(), &key), None, "another process's commit invalidates it");
}
