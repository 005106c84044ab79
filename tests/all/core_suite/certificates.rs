//! Certificates counted when issued (issue 15): an enrollment, its count, its
//! audit record and its certificate are one transaction; a held certificate
//! the client rejects or never confirms is revoked once, and its count given
//! back; an officer revokes within its domain only; the CRL lists every
//! revoked certificate with a growing number. Through the library, on both
//! backends.

use std::sync::Arc;

use prereg::DataDir;
use prereg::enroll::{IssueRequest, issue_granted};
use prereg::pki::Ca;
use prereg::pki::keys::SigningKey as DeviceKey;
use prereg::registry::{Grant, RegistryError, Revocation};
use prereg::signing::{Algorithm, SigningKey, WriteRequest};
use prereg::store::{CertificateRecord, CertificateState, TxKind};
use prereg_core::RegistrationState;

use crate::common::{Fixture, NOW, Reg, req};

/// A fixture with a CA, a CMP procedure in domain D and a one-time registration.
fn setup() -> Option<(Fixture, Arc<Ca>, u64)> {
    let f = Fixture::on(super::BACKEND)?;
    let ca = Arc::new(Ca::init(&DataDir::new(f.dir.path().join("data")), "Test CA", NOW).unwrap());
    f.procedure("p", "D", "cmp", &[]);
    let id = f.register_with(Reg { procedure: "p", fqdn: "dev.example.com", ..Default::default() }).unwrap();
    Some((f, ca, id))
}

/// Enrolls `fqdn` issuing a certificate in `state` (held ones wait until `NOW + 300`).
fn enroll(f: &Fixture, ca: &Arc<Ca>, fqdn: &str, state: CertificateState) -> (bool, Option<CertificateRecord>) {
    let spki = DeviceKey::generate_p256().spki_der().unwrap();
    let request = IssueRequest {
        ca: ca.clone(),
        spki,
        days: 30,
        now: NOW,
        transaction: format!("cmp:{fqdn}"),
        state,
        expires_at: (state == CertificateState::Held).then_some(NOW + 300),
        request: serde_json::json!({ "procedure": "p", "fqdn": fqdn, "cert_req_id": 0 }),
    };
    let issue = move |grant: &Grant<'_>| issue_granted(grant, &request);
    let (report, certificate) = f.registry.enroll_issuing(req("p", fqdn).input(), NOW, issue).unwrap();
    (report.allowed, certificate)
}

fn audit_actions(f: &Fixture) -> Vec<(String, Option<String>)> {
    let mut tx = f.registry.storage().begin(TxKind::Read).unwrap();
    tx.audit_records(0, 1000).unwrap().into_iter().map(|r| (r.action, r.reason)).collect()
}

#[test]
fn a_certificate_is_counted_and_recorded_with_its_decision() {
    let Some((f, ca, id)) = setup() else { return };
    let (allowed, certificate) = enroll(&f, &ca, "dev.example.com", CertificateState::Held);
    assert!(allowed);
    let certificate = certificate.unwrap();
    // Counted at issue, before any confirmation.
    let registration = f.registry.registration(id).unwrap();
    assert_eq!((registration.enrollments, registration.state), (1, RegistrationState::Used));
    // The audit record names the certificate.
    let mut tx = f.registry.storage().begin(TxKind::Read).unwrap();
    let last = tx.audit_records(0, 1000).unwrap().pop().unwrap();
    assert_eq!(last.action, "enroll");
    assert!(last.request.contains(&certificate.serial), "{}", last.request);
    assert_eq!(tx.certificate_by_serial(&certificate.serial).unwrap().unwrap().state, CertificateState::Held);
    drop(tx);
    // The second attempt is denied, and issues nothing.
    assert_eq!(enroll(&f, &ca, "dev.example.com", CertificateState::Held), (false, None));

    // The canonical name, nothing pinned: no IP, no serial.
    let cert = prereg::pki::x509::Certificate::from_der(&certificate.der).unwrap();
    assert_eq!(cert.subject_info().unwrap().common_name.as_deref(), Some("dev.example.com"));
    assert_eq!(cert.subject_info().unwrap().serial_number, None);
}

#[test]
fn a_failed_issue_rolls_the_decision_back() {
    let Some((f, _ca, id)) = setup() else { return };
    let before = audit_actions(&f).len();
    let failing = |_: &Grant<'_>| -> Result<CertificateRecord, String> { Err("the CA key is gone".into()) };
    let err = f.registry.enroll_issuing(req("p", "dev.example.com").input(), NOW, failing).unwrap_err();
    assert!(matches!(err, RegistryError::Issuance(_)), "{err}");
    // Nothing counted, nothing audited.
    assert_eq!(f.registry.registration(id).unwrap().enrollments, 0);
    assert_eq!(audit_actions(&f).len(), before);
}

#[test]
fn a_rejected_or_unconfirmed_certificate_is_revoked_once_and_given_back() {
    let Some((f, ca, id)) = setup() else { return };
    let (_, held) = enroll(&f, &ca, "dev.example.com", CertificateState::Held);
    let held = held.unwrap();
    // The client rejects it: revoked, count given back, audited; a second
    // settlement (another node, the sweeper) finds nothing to do.
    assert!(f.registry.revoke_unconfirmed(&held.serial, Revocation::RejectedByClient, NOW + 1).unwrap());
    assert!(!f.registry.revoke_unconfirmed(&held.serial, Revocation::NotConfirmed, NOW + 2).unwrap());
    assert!(!f.registry.confirm_certificate(&held.serial).unwrap(), "a revoked certificate cannot be confirmed");
    let registration = f.registry.registration(id).unwrap();
    assert_eq!((registration.enrollments, registration.state), (0, RegistrationState::Open));
    let stored = f.registry.certificate_by_serial(&held.serial).unwrap().unwrap();
    assert_eq!((stored.state, stored.revoked_at), (CertificateState::Rejected, Some(NOW + 1)));
    let revocations: Vec<_> = audit_actions(&f).into_iter().filter(|(a, _)| a == "certificate.revoke").collect();
    assert_eq!(revocations, vec![("certificate.revoke".to_owned(), Some("rejected-by-client".to_owned()))]);

    // Usable again; this time never confirmed: the sweep revokes it after
    // the window, once, and gives the count back.
    let (allowed, second) = enroll(&f, &ca, "dev.example.com", CertificateState::Held);
    assert!(allowed);
    let second = second.unwrap();
    assert_eq!(f.registry.sweep_unconfirmed(NOW + 299).unwrap(), 0, "still inside the window");
    assert_eq!(f.registry.sweep_unconfirmed(NOW + 301).unwrap(), 1);
    assert_eq!(f.registry.sweep_unconfirmed(NOW + 302).unwrap(), 0);
    assert_eq!(f.registry.registration(id).unwrap().state, RegistrationState::Open);
    assert!(f.registry.certificate_by_serial(&second.serial).unwrap().unwrap().revoked_at.is_some());

    // A confirmed one stays counted and is swept by nothing.
    let (_, third) = enroll(&f, &ca, "dev.example.com", CertificateState::Held);
    let third = third.unwrap();
    assert!(f.registry.confirm_certificate(&third.serial).unwrap());
    assert!(!f.registry.confirm_certificate(&third.serial).unwrap(), "confirmed once");
    assert_eq!(f.registry.sweep_unconfirmed(NOW + 10_000).unwrap(), 0);
    assert_eq!(f.registry.registration(id).unwrap().state, RegistrationState::Used);
}

#[test]
fn officers_revoke_in_their_domain_and_the_crl_lists_every_revocation() {
    let Some((f, ca, _id)) = setup() else { return };
    let (_, issued) = enroll(&f, &ca, "dev.example.com", CertificateState::Issued);
    let issued = issued.unwrap();

    // The CRL before: empty, number 1; asked again, the same one.
    let first = f.registry.crl(&ca, NOW).unwrap();
    assert!(ca.signed_crl(&first));
    assert_eq!(f.registry.crl(&ca, NOW + 10).unwrap(), first);

    // An officer of another domain may not revoke it.
    let other = SigningKey::generate(Algorithm::EdDsa);
    f.submit(WriteRequest::AddOfficer {
        name: "eve".into(),
        public_key_pem: other.public_key().to_pem().unwrap(),
        domains: vec!["E".into()],
    })
    .unwrap();
    let revoke = |reason: &str| WriteRequest::RevokeCertificate {
        serial: issued.serial.to_uppercase(),
        reason: Some(reason.into()),
    };
    let err = f.submit_as(&other, revoke("keyCompromise"), NOW).unwrap_err();
    assert!(matches!(err, RegistryError::Forbidden { .. }), "{err}");
    // A reason that is not RFC 5280's is refused, naming the field.
    let err = f.submit(revoke("lost-it")).unwrap_err();
    assert!(err.to_string().contains("invalid reason"), "{err}");
    // The domain's officer may; once.
    let outcome = f.submit(revoke("key-compromise")).unwrap();
    assert_eq!(outcome.object, format!("certificate:{}", issued.serial));
    let err = f.submit(revoke("superseded")).unwrap_err();
    assert!(err.to_string().contains("revoked already"), "{err}");
    let err = f
        .submit(WriteRequest::RevokeCertificate { serial: "00ff".into(), reason: None })
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");

    // The CRL now lists it, with a higher number.
    let second = f.registry.crl(&ca, NOW + 20).unwrap();
    assert_ne!(second, first);
    assert!(ca.signed_crl(&second));
    let mut tx = f.registry.storage().begin(TxKind::Read).unwrap();
    let latest = tx.latest_crl().unwrap().unwrap();
    assert_eq!((latest.number, latest.revoked), (2, 1));
    let revoked = tx.revoked_certificates().unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!((revoked[0].serial.as_str(), revoked[0].reason), (issued.serial.as_str(), Some(1)));
    drop(tx);
    // After an hour it is issued anew even without a revocation.
    f.registry.crl(&ca, NOW + 20 + 3_600).unwrap();
    let mut tx = f.registry.storage().begin(TxKind::Read).unwrap();
    assert_eq!(tx.latest_crl().unwrap().unwrap().number, 3);
}
