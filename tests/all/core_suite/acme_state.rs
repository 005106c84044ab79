//! ACME's state in the store (issue 22), through the library, on both
//! backends: a binding key made by a signed write (sealed, in the officer's
//! domain), bound to exactly one account even when two race for it, an
//! account found by its key's thumbprint, and orders moved on by
//! compare-and-set.

use prereg::registry::acme::{Account, EabKey, NewAccount, Order};
use prereg::registry::RegistryError;
use prereg::signing::{Algorithm, SigningKey, WriteRequest};
use prereg::store::{AcmeKind, StoreError};

use crate::common::{Fixture, NOW};

fn hmac_key(f: &Fixture) -> String {
    let public = f.registry.sealing_key().unwrap().public_text();
    prereg::sealing::seal(&public, "nbuuQe4YK84iPUH2EcnozjYklOmmwhVPoCxRwLZS-sY").unwrap()
}

fn add_key(f: &Fixture, key_id: &str, domains: &[&str]) -> Result<prereg::registry::WriteOutcome, RegistryError> {
    f.submit(WriteRequest::AddEabKey {
        key_id: key_id.into(),
        procedure: "web".into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        hmac_key_sealed: hmac_key(f),
    })
}

fn account(id: &str, thumbprint: &str) -> Account {
    Account {
        id: id.into(),
        procedure: "web".into(),
        status: "valid".into(),
        jwk: serde_json::json!({ "kty": "EC" }),
        thumbprint: thumbprint.into(),
        contact: Vec::new(),
        eab_key: None,
        domains: Vec::new(),
        created_at: NOW,
    }
}

#[test]
fn a_binding_key_binds_one_account_once_and_keeps_its_names() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("web", "corp", "acme", &[]);
    f.procedure("routers", "corp", "cmp", &[]);
    add_key(&f, "k1", &["Lab.Example.COM", "lab.example.com"]).unwrap();
    let key: EabKey = f.registry.acme_get("k1").unwrap().unwrap();
    assert_eq!(key.domains, vec!["lab.example.com"], "canonical, once");
    assert!(!key.hmac_key_sealed.contains("nbuuQe4YK84"), "kept sealed");
    // The same id twice, an id with a slash, a procedure of another protocol.
    assert!(matches!(add_key(&f, "k1", &[]), Err(RegistryError::Store(StoreError::Duplicate { .. }))));
    for bad in ["a/b", "-k", ""] {
        assert!(matches!(add_key(&f, bad, &[]), Err(RegistryError::Invalid { field, .. }) if field == "key_id"), "{bad}");
    }
    let other = f.submit(WriteRequest::AddEabKey {
        key_id: "k2".into(),
        procedure: "routers".into(),
        domains: Vec::new(),
        hmac_key_sealed: hmac_key(&f),
    });
    assert!(matches!(other, Err(RegistryError::Invalid { ref field, .. }) if field == "procedure"), "{other:?}");
    // An HMAC key that is not sealed to this instance.
    let unsealed = f.submit(WriteRequest::AddEabKey {
        key_id: "k3".into(),
        procedure: "web".into(),
        domains: Vec::new(),
        hmac_key_sealed: "nbuuQe4YK84iPUH2EcnozjYklOmmwhVPoCxRwLZS-sY".into(),
    });
    assert!(matches!(unsealed, Err(RegistryError::Invalid { field, .. }) if field == "hmac_key_sealed"));

    // Bound once: the account takes the key's names; a second account is refused.
    let NewAccount::Created(first) = f.registry.acme_create_account(account("a1", "t1"), Some("k1"), NOW).unwrap()
    else {
        panic!("not created")
    };
    assert_eq!(first.domains, vec!["lab.example.com"]);
    assert_eq!(first.eab_key.as_deref(), Some("k1"));
    let second = f.registry.acme_create_account(account("a2", "t2"), Some("k1"), NOW).unwrap();
    assert!(matches!(second, NewAccount::KeyRefused(ref why) if why.contains("bound to another account")), "{second:?}");
    // The same key again: the existing account, not a new one.
    let again = f.registry.acme_create_account(account("a3", "t1"), Some("k1"), NOW).unwrap();
    assert!(matches!(again, NewAccount::Existing(ref a) if a.id == "a1"));
    assert_eq!(f.registry.acme_count(AcmeKind::Account).unwrap(), 1);
    assert_eq!(f.registry.acme_account_by_thumbprint("t1").unwrap().unwrap().id, "a1");
    // Listed with the account it bound, to officers of its domain only.
    let keys = f.registry.acme_eab_keys(|domain| domain == "corp").unwrap();
    assert_eq!((keys.len(), keys[0].account.as_deref()), (1, Some("a1")));
    assert!(f.registry.acme_eab_keys(|domain| domain == "lab").unwrap().is_empty());
    // Audited: the key's creation by the officer, the account's by itself.
    let records = f.registry.audit_records(0, 100).unwrap();
    assert!(records.iter().any(|r| r.action == "acme.eab.create" && r.object == "acme-eab:k1"));
    assert!(records.iter().any(|r| r.action == "acme.account.create" && r.actor == "acme:a1"));
}

#[test]
fn two_accounts_racing_for_one_binding_key_get_one_binding() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("web", "corp", "acme", &[]);
    add_key(&f, "k1", &[]).unwrap();
    let created: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let registry = f.registry.clone();
                s.spawn(move || {
                    let made = registry.acme_create_account(account(&format!("a{i}"), &format!("t{i}")), Some("k1"), NOW);
                    matches!(made, Ok(NewAccount::Created(_)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert_eq!(f.registry.acme_count(AcmeKind::Account).unwrap(), 1);
}

#[test]
fn an_order_moves_on_once() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("web", "corp", "acme", &[]);
    let order = Order {
        id: "o1".into(),
        account: "a1".into(),
        procedure: "web".into(),
        status: "ready".into(),
        expires: NOW + 3600,
        identifiers: Vec::new(),
        authorizations: Vec::new(),
        error: None,
        certificate: None,
        replaces: None,
        finalizing_since: None,
        created_at: NOW,
    };
    f.registry.acme_create_order(&order, &[]).unwrap();
    let processing = Order { status: "processing".into(), ..order.clone() };
    assert!(f.registry.acme_update(&processing, "ready").unwrap());
    assert!(!f.registry.acme_update(&processing, "ready").unwrap(), "a second finalize loses");
    assert_eq!(f.registry.acme_orders_of("a1", 10).unwrap(), vec![processing]);
    assert!(f.registry.acme_orders_of("a2", 10).unwrap().is_empty());
}

#[test]
fn an_officer_of_another_domain_makes_no_binding_key() {
    let Some(f) = Fixture::on(super::BACKEND) else { return };
    f.procedure("web", "corp", "acme", &[]);
    let eve = SigningKey::generate(Algorithm::Es256);
    f.submit(WriteRequest::AddOfficer {
        name: "eve".into(),
        public_key_pem: eve.public_key().to_pem().unwrap(),
        domains: vec!["lab".into()],
    })
    .unwrap();
    let made = f.submit_as(
        &eve,
        WriteRequest::AddEabKey {
            key_id: "k1".into(),
            procedure: "web".into(),
            domains: Vec::new(),
            hmac_key_sealed: hmac_key(&f),
        },
        NOW,
    );
    assert!(matches!(made, Err(RegistryError::Forbidden { .. })), "{made:?}");
    assert_eq!(f.registry.acme_count(AcmeKind::Eab).unwrap(), 0);
}
