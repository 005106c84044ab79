//! Tampering with the audit table is caught by `audit verify`: a changed
//! byte, a deleted record, two swapped records, an inserted record.

use crate::common::{Fixture, NOW, create_registration, req};

/// A fixture with a dozen audit records.
fn fixture() -> Option<Fixture> {
    let f = Fixture::on(super::BACKEND)?;
    f.procedure("p", "D", "scep", &[]);
    for i in 0..5 {
        f.register("p", &format!("dev{i}.example.com")).unwrap();
    }
    for i in 0..5 {
        f.enroll(req("p", &format!("dev{i}.example.com")));
    }
    assert!(f.registry.verify_audit().unwrap().fault.is_none());
    assert_eq!(f.registry.verify_audit().unwrap().checked, 12);
    Some(f)
}

fn tamper(f: &Fixture, sql: &str) -> u64 {
    f.execute_sql(sql);
    let result = f.registry.verify_audit().unwrap();
    result.fault.expect("tampering went unnoticed").seq()
}

#[test]
fn a_changed_byte_is_caught() {
    let Some(f) = fixture() else { return };
    let seq = tamper(&f, "UPDATE audit SET outcome = 'allowEd' WHERE seq = 9");
    assert_eq!(seq, 9);
}

#[test]
fn a_deleted_record_is_caught() {
    let Some(f) = fixture() else { return };
    assert_eq!(tamper(&f, "DELETE FROM audit WHERE seq = 5"), 6);
}

#[test]
fn swapped_records_are_caught() {
    let Some(f) = fixture() else { return };
    let seq = tamper(
        &f,
        "UPDATE audit SET seq = -1 WHERE seq = 7; UPDATE audit SET seq = 7 WHERE seq = 8; UPDATE audit SET seq = 8 WHERE seq = -1;",
    );
    assert_eq!(seq, 7);
}

#[test]
fn an_inserted_record_is_caught() {
    let Some(f) = fixture() else { return };
    let seq = tamper(
        &f,
        "UPDATE audit SET seq = -(seq + 1) WHERE seq >= 4; UPDATE audit SET seq = -seq WHERE seq < 0; \
         INSERT INTO audit SELECT 4, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, request, detail, mac, domain FROM audit WHERE seq = 3;",
    );
    assert_eq!(seq, 4);
}

/// If the audit record cannot be written, the action fails and nothing of it
/// remains: neither a write, nor an enrollment's count, nor its request id.
#[test]
fn when_the_audit_insert_fails_the_whole_action_fails() {
    let Some(f) = fixture() else { return };
    let id = f.register("p", "later.example.com").unwrap();
    let before = f.registry.registration(id).unwrap();
    let records = f.registry.audit_records(0, 1000).unwrap().len();
    f.execute_sql(f.backend.pick(
        "CREATE TRIGGER audit_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END;",
        "CREATE FUNCTION audit_fails() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'audit unavailable'; END $$; \
         CREATE TRIGGER audit_fails BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_fails();",
    ));

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
    f.execute_sql(f.backend.pick("DROP TRIGGER audit_fails", "DROP TRIGGER audit_fails ON audit"));
    f.registry.submit(&jws, NOW).unwrap();
    assert_eq!(f.registry.audit_records(0, 1000).unwrap().len(), records + 1);
    assert!(f.registry.verify_audit().unwrap().fault.is_none());
}
