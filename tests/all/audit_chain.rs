//! Tampering with the audit table is caught by `audit verify`: a changed
//! byte, a deleted record, two swapped records, an inserted record.

use rusqlite::Connection;

use crate::common::{Fixture, NOW, create_registration, req};

/// A fixture with a dozen audit records.
fn fixture() -> Fixture {
    let f = Fixture::new();
    f.procedure("p", "D", "scep", &[]);
    for i in 0..5 {
        f.register("p", &format!("dev{i}.example.com")).unwrap();
    }
    for i in 0..5 {
        f.enroll(req("p", &format!("dev{i}.example.com")));
    }
    assert!(f.registry.verify_audit().unwrap().fault.is_none());
    assert_eq!(f.registry.verify_audit().unwrap().checked, 12);
    f
}

fn tamper(f: &Fixture, sql: &str) -> u64 {
    let conn = Connection::open(f.database()).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    let result = f.registry.verify_audit().unwrap();
    result.fault.expect("tampering went unnoticed").seq()
}

#[test]
fn a_changed_byte_is_caught() {
    let f = fixture();
    let seq = tamper(&f, "UPDATE audit SET outcome = 'allowEd' WHERE seq = 9");
    assert_eq!(seq, 9);
}

#[test]
fn a_deleted_record_is_caught() {
    let f = fixture();
    assert_eq!(tamper(&f, "DELETE FROM audit WHERE seq = 5"), 6);
}

#[test]
fn swapped_records_are_caught() {
    let f = fixture();
    let seq = tamper(
        &f,
        "UPDATE audit SET seq = -1 WHERE seq = 7; UPDATE audit SET seq = 7 WHERE seq = 8; UPDATE audit SET seq = 8 WHERE seq = -1;",
    );
    assert_eq!(seq, 7);
}

#[test]
fn an_inserted_record_is_caught() {
    let f = fixture();
    let seq = tamper(
        &f,
        "UPDATE audit SET seq = -(seq + 1) WHERE seq >= 4; UPDATE audit SET seq = -seq WHERE seq < 0; \
         INSERT INTO audit SELECT 4, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, request, detail FROM audit WHERE seq = 3;",
    );
    assert_eq!(seq, 4);
}

/// If the audit record cannot be written, the action fails and nothing of it
/// remains: neither a write, nor an enrollment's count, nor its request id.
#[test]
fn when_the_audit_insert_fails_the_whole_action_fails() {
    let f = fixture();
    let id = f.register("p", "later.example.com").unwrap();
    let before = f.registry.registration(id).unwrap();
    let records = f.registry.audit_records(0, 1000).unwrap().len();
    let conn = Connection::open(f.database()).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER audit_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END;",
    )
    .unwrap();

    let jws =
        prereg::signing::sign(&f.admin, &f.instance, create_registration("p", "lost.example.com"), NOW, 300).unwrap();
    let e = f.registry.submit(&jws, NOW).unwrap_err().to_string();
    assert!(e.contains("audit unavailable"), "{e}");
    assert!(f.registry.registrations(&Default::default()).unwrap().iter().all(|r| r.pattern != "lost.example.com"));
    assert!(
        f.registry.decide(req("p", "later.example.com").input(), prereg::registry::DecisionMode::Enroll, NOW).is_err()
    );
    assert_eq!(f.registry.registration(id).unwrap(), before, "the enrollment was not counted");

    // Once the audit log works again, the same signed request goes through:
    // its request id was not consumed by the failed attempt.
    conn.execute_batch("DROP TRIGGER audit_fails").unwrap();
    f.registry.submit(&jws, NOW).unwrap();
    assert_eq!(f.registry.audit_records(0, 1000).unwrap().len(), records + 1);
    assert!(f.registry.verify_audit().unwrap().fault.is_none());
}
