//! Swapping the active policy while decisions run: none fails, none mixes
//! two policies (each decision is made, and reported, by one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prereg::policy::Policy;

use crate::common::{Fixture, default_policy, hostile, req};

#[test]
fn a_hundred_swaps_while_two_threads_decide_fail_and_mix_nothing() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "scep", &[]);
    f.register("p", "dev.example.com").unwrap();
    // Two policies that answer this request differently: the default allows
    // it (matched), the hostile one denies everything it does not misbehave on.
    let default: Arc<dyn Policy> = default_policy();
    let other: Arc<dyn Policy> = hostile();
    let (default_sha, other_sha) = (default.info().sha256.clone(), other.info().sha256.clone());
    assert_ne!(default_sha, other_sha);

    let stop = Arc::new(AtomicBool::new(false));
    let deciders: Vec<_> = (0..2)
        .map(|_| {
            let (registry, stop) = (f.registry.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reports = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let report = registry
                        .decide(
                            req("p", "dev.example.com").input(),
                            prereg::registry::DecisionMode::DryRun,
                            crate::common::NOW,
                        )
                        .unwrap();
                    reports.push(report);
                }
                reports
            })
        })
        .collect();
    for i in 0..100 {
        f.registry.swap_policy(if i % 2 == 0 { other.clone() } else { default.clone() });
        std::thread::sleep(Duration::from_millis(3));
    }
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<_> = deciders.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let (mut by_default, mut by_other) = (0, 0);
    for r in &reports {
        assert_ne!(r.reason, "policy-error", "{r:?}");
        if r.policy.sha256 == default_sha {
            assert!(r.allowed && r.reason == "matched", "the default policy's answer, reported with its hash: {r:?}");
            by_default += 1;
        } else {
            assert_eq!(r.policy.sha256, other_sha);
            assert!(!r.allowed && r.reason == "no-registration", "the other policy's answer: {r:?}");
            by_other += 1;
        }
    }
    assert!(by_default > 0 && by_other > 0, "{by_default} by the default policy, {by_other} by the other");
    // After an even number of swaps the default policy is active again.
    assert_eq!(f.registry.policy().info().sha256, default_sha);
    assert!(f.check(req("p", "dev.example.com")).allowed);
}

#[test]
fn writes_record_the_policy_that_validated_them() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("p", "D", "est", &[]);
    let id = f.register("p", "a.example.com").unwrap();
    let audit = f.registry.audit_records(0, 100).unwrap();
    let record = audit.iter().find(|r| r.object == format!("registration:{id}")).unwrap();
    assert_eq!(record.policy_sha256.as_deref(), Some(default_policy().info().sha256.as_str()));
}
