//! Canonical patterns are unique within a domain, enforced by the database: of
//! two writers racing to register the same pattern, exactly one wins.

use std::sync::{Arc, Barrier};

use prereg::signing;

use crate::common::{Fixture, NOW, create_registration};

#[test]
fn two_threads_racing_for_the_same_pattern_exactly_one_wins() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    let f = Arc::new(f);
    f.procedure("d-one", "D", "scep", &[]);
    f.procedure("d-two", "D", "cmp", &[]);
    for round in 0..20 {
        // Two spellings of the same canonical pattern, through two procedures
        // of the same domain.
        let spellings = [format!("*.Site{round}.Example.COM."), format!("*.site{round}.example.com")];
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = spellings
            .into_iter()
            .zip(["d-one", "d-two"])
            .map(|(fqdn, procedure)| {
                let (f, barrier) = (f.clone(), barrier.clone());
                let jws =
                    signing::sign(&f.admin, &f.instance, create_registration(procedure, &fqdn), NOW, 300).unwrap();
                std::thread::spawn(move || {
                    barrier.wait();
                    f.registry.submit(&jws, NOW)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        let loss = results.iter().find_map(|r| r.as_ref().err()).unwrap().to_string();
        assert!(loss.contains("already exists"), "{loss}");
    }
    assert_eq!(f.registry.registrations(&Default::default()).unwrap().len(), 20);
}
