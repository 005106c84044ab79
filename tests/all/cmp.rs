//! CMP enrollment with the stock `openssl cmp` client against `prereg serve`
//! on loopback, and the CMP parser on messages captured from stock clients
//! (`tests/fixtures/enrollment/`).
//!
//! Needs the `openssl` command (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use prereg::enroll::cmp::NOT_AUTHENTICATED;
use prereg::enroll::cmp::message::{self, Body};
use prereg::enroll::cmp::protection::{DEFAULT_MAX_ITERATIONS, MacAlgorithm};

use crate::common::{AuditedEnrollment, Server, audit_records, audited_enrollments, run_local};

/// What `openssl cmp` prints of the answer to a request that cannot be
/// authenticated (no usable registration, or a wrong secret).
const NOT_AUTHENTICATED_LINE: &str =
    "PKIFailureInfo: badMessageCheck; StatusString: \"the message's protection does not verify";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/enrollment").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the openssl command is needed (apt-get install openssl): {e}"))
}

/// `openssl cmp` against the server for `procedure`; (success, everything it printed).
fn cmp(server: &Server, procedure: &str, args: &[&str]) -> (bool, String) {
    let host = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let path = format!(".well-known/cmp/p/{procedure}");
    let mut all = vec!["cmp", "-server", &host, "-path", &path, "-unprotected_errors"];
    all.extend_from_slice(args);
    let out = openssl(&server.dir, &all);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A device key and an `ir` for `fqdn` with `secret`; extra arguments after.
fn ir(server: &Server, procedure: &str, fqdn: &str, secret: &str, out: &str, extra: &[&str]) -> (bool, String) {
    ir_as(server, procedure, &format!("/CN={fqdn}"), fqdn, secret, out, extra)
}

/// [`ir`] with any `subject` and reference (senderKID).
fn ir_as(
    server: &Server,
    procedure: &str,
    subject: &str,
    reference: &str,
    secret: &str,
    out: &str,
    extra: &[&str],
) -> (bool, String) {
    let secret = format!("pass:{secret}");
    let mut args = vec![
        "-cmd",
        "ir",
        "-newkey",
        "device.key",
        "-subject",
        subject,
        "-secret",
        &secret,
        "-ref",
        reference,
        "-certout",
        out,
    ];
    args.extend_from_slice(extra);
    cmp(server, procedure, &args)
}

/// The subject, SAN and dates of a PEM certificate, as openssl prints them.
fn describe(dir: &Path, cert: &str) -> String {
    let out = openssl(dir, &["x509", "-in", cert, "-noout", "-subject", "-ext", "subjectAltName", "-dates"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn verifies(dir: &Path, cert: &str) -> bool {
    openssl(dir, &["verify", "-CAfile", "data/ca/ca.crt", cert]).status.success()
}

/// A data folder with a CA, CMP procedures in two domains and registrations.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_local(&dir, &["init"]);
    run_local(&dir, &["ca", "init", "--name", "Test CA"]);
    run_local(
        &dir,
        &["procedure", "add", "routers", "--domain", "corp", "--protocol", "cmp", "--certificate-days", "30"],
    );
    run_local(&dir, &["procedure", "add", "lab", "--domain", "lab", "--protocol", "cmp"]);
    std::fs::write(dir.join("pw"), "s3cret").unwrap();
    let register = |procedure: &str, fqdn: &str, extra: &[&str]| {
        let mut args = vec!["register", "--procedure", procedure, "--fqdn", fqdn, "--password-file", "pw"];
        args.extend_from_slice(extra);
        run_local(&dir, &args);
    };
    register("routers", "router1.example.com", &[]);
    register("routers", "*.dept.example.com", &["--ip", "10.1.2.3"]);
    register("lab", "lab1.example.com", &[]);
    let key = openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "device.key"]);
    assert!(key.status.success());
    (tmp, dir)
}

#[test]
fn openssl_cmp_enrolls_preregistered_devices_and_refuses_the_others() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);

    // ir with -secret/-ref, explicit confirmation (certConf, pkiConf).
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "router1.crt", &[]);
    assert!(ok, "{text}");
    assert!(text.contains("received PKICONF"), "{text}");
    let shown = describe(&dir, "router1.crt");
    assert!(shown.contains("subject=CN = router1.example.com"), "{shown}");
    assert!(shown.contains("DNS:router1.example.com"), "{shown}");
    assert!(verifies(&dir, "router1.crt"));
    // The procedure's validity: 30 days (plus the 5 minutes it is backdated).
    let cert = prereg::pki::x509::Certificate::from_der(
        &prereg::pki::x509::pem_blocks(&std::fs::read_to_string(dir.join("router1.crt")).unwrap(), "CERTIFICATE")
            .unwrap()[0],
    )
    .unwrap();
    assert_eq!(cert.not_after - cert.not_before, 30 * 86_400 + 300);

    // An exact registration admits one device: the second is refused. It
    // cannot be authenticated any more (its registration is used up): an
    // unprotected error, badMessageCheck, the same as for a name never
    // registered or a wrong secret (RFC 9483 §3.6.4).
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "again.crt", &[]);
    assert!(!ok);
    assert!(text.contains(NOT_AUTHENTICATED_LINE), "{text}");

    // An unregistered FQDN.
    let (ok, text) = ir(&server, "routers", "nope.example.com", "s3cret", "nope.crt", &[]);
    assert!(!ok);
    assert!(text.contains(NOT_AUTHENTICATED_LINE), "{text}");

    // A wrong password: the MAC does not verify.
    let (ok, text) = ir(&server, "routers", "a.dept.example.com", "wrong", "a.crt", &["-sans", "10.1.2.3"]);
    assert!(!ok);
    // The same answer as for a name never registered: a refusal does not tell
    // whether the name is registered (the audit log keeps bad-password).
    assert!(text.contains(NOT_AUTHENTICATED_LINE), "{text}");

    // An IP mismatch.
    let (ok, text) = ir(&server, "routers", "a.dept.example.com", "s3cret", "a.crt", &["-sans", "10.9.9.9"]);
    assert!(!ok);
    assert!(text.contains(NOT_AUTHENTICATED_LINE), "{text}");

    // Registered only in another domain.
    let (ok, text) = ir(&server, "routers", "lab1.example.com", "s3cret", "lab.crt", &[]);
    assert!(!ok);
    assert!(text.contains(NOT_AUTHENTICATED_LINE), "{text}");

    // The wildcard admits several devices: ir with implicit confirmation, p10cr, cr.
    let (ok, text) =
        ir(&server, "routers", "b.dept.example.com", "s3cret", "b.crt", &["-sans", "10.1.2.3", "-implicit_confirm"]);
    assert!(ok, "{text}");
    assert!(!text.contains("CERTCONF"), "implicit confirmation was not granted: {text}");
    let shown = describe(&dir, "b.crt");
    assert!(shown.contains("DNS:b.dept.example.com, IP Address:10.1.2.3"), "{shown}");

    let csr = openssl(
        &dir,
        &[
            "req",
            "-new",
            "-key",
            "device.key",
            "-subj",
            "/CN=c.dept.example.com/serialNumber=FTX1",
            "-addext",
            "subjectAltName=DNS:c.dept.example.com,IP:10.1.2.3",
            "-out",
            "c.csr",
        ],
    );
    assert!(csr.status.success());
    let (ok, text) = cmp(
        &server,
        "routers",
        &[
            "-cmd",
            "p10cr",
            "-csr",
            "c.csr",
            "-secret",
            "pass:s3cret",
            "-ref",
            "c.dept.example.com",
            "-certout",
            "c.crt",
        ],
    );
    assert!(ok, "{text}");
    let shown = describe(&dir, "c.crt");
    // The registration pins no serial number: the requested one is dropped;
    // it pins the IP address, which is kept.
    assert!(shown.contains("subject=CN = c.dept.example.com\n"), "{shown}");
    assert!(shown.contains("DNS:c.dept.example.com, IP Address:10.1.2.3"), "{shown}");
    assert!(verifies(&dir, "c.crt"));

    let (ok, text) = cmp(
        &server,
        "routers",
        &[
            "-cmd",
            "cr",
            "-newkey",
            "device.key",
            "-subject",
            "/CN=d.dept.example.com",
            "-sans",
            "10.1.2.3",
            "-secret",
            "pass:s3cret",
            "-ref",
            "d.dept.example.com",
            "-certout",
            "d.crt",
        ],
    );
    assert!(ok, "{text}");
    assert!(describe(&dir, "d.crt").contains("DNS:d.dept.example.com"));

    // Every decision is audited with CMP's transaction id.
    let enrollments = audited_enrollments(&dir);
    assert_eq!(enrollments.len(), 9, "{enrollments:?}");
    assert!(enrollments.iter().all(|e| e.transaction.starts_with("cmp:")), "{enrollments:?}");
    assert_eq!(
        enrollments.iter().map(AuditedEnrollment::decision).collect::<Vec<_>>(),
        vec![
            ("allowed", "matched"),
            ("denied", "no-registration"),
            ("denied", "no-registration"),
            ("denied", "bad-password"),
            ("denied", "ip-mismatch"),
            ("denied", "no-registration"),
            ("allowed", "matched"),
            ("allowed", "matched"),
            ("allowed", "matched"),
        ]
    );
    let verify = run_local(&dir, &["audit", "verify"]);
    assert!(verify.contains("intact") || verify.contains("ok"), "{verify}");
}

/// The registration `id` as `prereg show --json` prints it.
fn registration(dir: &Path, id: u64) -> serde_json::Value {
    serde_json::from_str(&run_local(dir, &["show", &id.to_string(), "--json"])).unwrap()
}

/// The serials of the certificates the audited enrollments issued, oldest first.
fn audited_certificates(dir: &Path) -> Vec<String> {
    audit_records(dir)
        .iter()
        .filter(|r| r["action"] == "enroll")
        .filter_map(|r| {
            let request: serde_json::Value = serde_json::from_str(r["request"].as_str().unwrap()).unwrap();
            request["certificate"].as_str().map(str::to_owned)
        })
        .collect()
}

/// The audit records of `action`: (reason, object).
fn audited(dir: &Path, action: &str) -> Vec<(String, String)> {
    audit_records(dir)
        .iter()
        .filter(|r| r["action"] == action)
        .map(|r| (r["reason"].as_str().unwrap_or_default().to_owned(), r["object"].as_str().unwrap().to_owned()))
        .collect()
}

/// Writes the certificate with `serial` from the store to `dir/NAME` (PEM).
fn stored_certificate(dir: &Path, serial: &str, name: &str) {
    let storage =
        prereg::store::open(&prereg::DataDir::new(dir.join("data")).database().display().to_string()).unwrap();
    let mut tx = storage.begin(prereg::store::TxKind::Read).unwrap();
    let record = tx.certificate_by_serial(serial).unwrap().unwrap();
    std::fs::write(dir.join(name), prereg::pki::x509::pem("CERTIFICATE", &record.der)).unwrap();
}

/// Fetches the CRL from the URL in `cert`'s CRL Distribution Points, as a
/// relying party does, to `dir/crl.pem`; returns `openssl crl -text`.
fn fetch_crl(dir: &Path, cert: &str) -> String {
    use prereg::pki::x509;
    let pem = std::fs::read_to_string(dir.join(cert)).unwrap();
    let parsed = x509::Certificate::from_der(&x509::pem_blocks(&pem, "CERTIFICATE").unwrap()[0]).unwrap();
    let cdp = parsed.extension(prereg::pki::oid::CRL_DISTRIBUTION_POINTS).unwrap().expect("a CRL Distribution Point");
    let urls = x509::read_crl_distribution_points(&cdp).unwrap();
    assert_eq!(urls.len(), 1, "{urls:?}");
    let mut response = ureq::get(&urls[0]).call().unwrap();
    assert_eq!(response.headers().get("content-type").unwrap(), "application/pkix-crl");
    std::fs::write(dir.join("crl.der"), response.body_mut().read_to_vec().unwrap()).unwrap();
    let out = openssl(dir, &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = openssl(dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(text.status.success());
    String::from_utf8_lossy(&text.stdout).into_owned()
}

/// `openssl verify -crl_check` of `cert` with the fetched CRL: (ok, output).
fn verify_with_crl(dir: &Path, cert: &str) -> (bool, String) {
    let out = openssl(dir, &["verify", "-crl_check", "-CAfile", "data/ca/ca.crt", "-CRLfile", "crl.pem", cert]);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// openssl's serial of a PEM certificate, as `prereg ca revoke` takes it.
fn serial_of(dir: &Path, cert: &str) -> String {
    let out = openssl(dir, &["x509", "-in", cert, "-noout", "-serial"]);
    String::from_utf8_lossy(&out.stdout).trim().trim_start_matches("serial=").to_owned()
}

#[test]
fn a_certificate_the_client_rejects_is_revoked_on_the_crl_and_its_count_given_back() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    // The client checks the new certificate against an unrelated trust
    // anchor and rejects it in its certConf.
    let other = openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-subj",
            "/CN=Other",
            "-out",
            "other.crt",
            "-days",
            "1",
        ],
    );
    assert!(other.status.success(), "{}", String::from_utf8_lossy(&other.stderr));
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "r.crt", &["-out_trusted", "other.crt"]);
    assert!(!ok, "{text}");
    assert!(text.contains("CERTCONF"), "{text}");
    // It was counted when issued, then revoked and given back: the one-time
    // registration is open again.
    let shown = registration(&dir, 1);
    assert_eq!((shown["state"].as_str(), shown["enrollments"].as_u64()), (Some("open"), Some(0)), "{shown}");
    let certificates = audited_certificates(&dir);
    assert_eq!(certificates.len(), 1);
    let rejected = &certificates[0];
    assert_eq!(
        audited(&dir, "certificate.revoke"),
        vec![("rejected-by-client".into(), format!("certificate:{rejected}"))]
    );

    // A relying party shown the rejected certificate fetches the CRL named in
    // it and refuses it.
    stored_certificate(&dir, rejected, "rejected.crt");
    let crl = fetch_crl(&dir, "rejected.crt");
    assert!(crl.contains(&format!("Serial Number: {}", rejected.to_uppercase())), "{crl}");
    assert!(crl.contains("X509v3 CRL Number: \n                1") || crl.contains("CRL Number"), "{crl}");
    let (ok, text) = verify_with_crl(&dir, "rejected.crt");
    assert!(!ok && text.contains("certificate revoked"), "{text}");

    // Accepted this time: counted, the registration used, the certificate good.
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "r.crt", &[]);
    assert!(ok, "{text}");
    assert_eq!(registration(&dir, 1)["state"], "used");
    fetch_crl(&dir, "r.crt");
    let (ok, text) = verify_with_crl(&dir, "r.crt");
    assert!(ok, "{text}");
    // A certConf for a transaction that is not waiting is refused.
    let (ok, _) = ir(&server, "routers", "router1.example.com", "s3cret", "r2.crt", &[]);
    assert!(!ok);

    // An officer revokes the good one: the CRL served next lists it with its reason.
    let serial = serial_of(&dir, "r.crt");
    let out = run_local(&dir, &["ca", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(out.contains(&format!("revoked certificate:{}", serial.to_lowercase())), "{out}");
    let crl = fetch_crl(&dir, "r.crt");
    assert!(crl.contains("Key Compromise"), "{crl}");
    let (ok, text) = verify_with_crl(&dir, "r.crt");
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    // `prereg ca crl` writes the same CRL the service serves.
    run_local(&dir, &["ca", "crl", "--out", "local.der"]);
    assert_eq!(std::fs::read(dir.join("local.der")).unwrap(), std::fs::read(dir.join("crl.der")).unwrap());

    // The attacker's side: an unknown serial and a bad reason are refused, naming them.
    let out = crate::common::prereg_command(&dir).args(["--data", "data", "ca", "revoke", "00ff"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate 00ff not found"));
    let out = crate::common::prereg_command(&dir)
        .args(["--data", "data", "ca", "revoke", rejected, "--reason", "lost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid reason"));
}

#[test]
fn a_client_that_never_confirms_gets_one_certificate_counted_then_revoked() {
    let (_tmp, dir) = setup();
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--cmp-confirm-seconds", "2"];
    let server = Server::start_with(&dir, "server.log", &args);
    // Three requests on a one-time registration, none confirmed: one
    // certificate, counted and audited at issue; the others refused.
    let mut issued = 0;
    for i in 0..3 {
        let out = format!("nc{i}.crt");
        let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", &out, &["-disable_confirm"]);
        if ok {
            issued += 1;
        } else {
            assert!(text.contains(NOT_AUTHENTICATED_LINE), "{text}");
        }
    }
    assert_eq!(issued, 1);
    let shown = registration(&dir, 1);
    assert_eq!((shown["state"].as_str(), shown["enrollments"].as_u64()), (Some("used"), Some(1)), "{shown}");
    let decisions: Vec<_> =
        audited_enrollments(&dir).iter().map(|e| e.decision()).map(|(a, b)| (a.to_owned(), b.to_owned())).collect();
    assert_eq!(
        decisions,
        vec![
            ("allowed".into(), "matched".into()),
            ("denied".into(), "no-registration".into()),
            ("denied".into(), "no-registration".into())
        ]
    );
    // The confirmation window (2 s here) closes: the sweeper revokes it,
    // audits it, and the registration is usable again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while registration(&dir, 1)["state"] != "open" {
        assert!(std::time::Instant::now() < deadline, "not revoked: {}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let serial = serial_of(&dir, "nc0.crt");
    assert_eq!(
        audited(&dir, "certificate.revoke"),
        vec![("not-confirmed".into(), format!("certificate:{}", serial.to_lowercase()))]
    );
    fetch_crl(&dir, "nc0.crt");
    let (ok, text) = verify_with_crl(&dir, "nc0.crt");
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "again.crt", &["-implicit_confirm"]);
    assert!(ok, "{text}");
}

#[test]
fn certificates_carry_the_registered_canonical_identity_and_extra_names_are_refused() {
    let (_tmp, dir) = setup();
    run_local(&dir, &["register", "--procedure", "routers", "--fqdn", "cmp1.example.com", "--password-file", "pw"]);
    run_local(
        &dir,
        &[
            "register",
            "--procedure",
            "routers",
            "--fqdn",
            "pinned.example.com",
            "--ip",
            "10.7.7.7",
            "--serial",
            "FTX9",
            "--password-file",
            "pw",
            "--max-enrollments",
            "5",
        ],
    );
    let server = Server::start(&dir);
    // The lying device: another spelling, its own IP and serial number.
    let subject = "/CN=CMP1.Example.COM./serialNumber=ANY-SERIAL";
    let extra = ["-sans", "10.66.66.66", "-implicit_confirm"];
    let (ok, text) = ir_as(&server, "routers", subject, "CMP1.Example.COM.", "s3cret", "cmp1.crt", &extra);
    assert!(ok, "{text}");
    let shown = describe(&dir, "cmp1.crt");
    assert!(shown.contains("subject=CN = cmp1.example.com\n"), "{shown}");
    assert!(shown.contains("DNS:cmp1.example.com\n"), "{shown}");
    assert!(!shown.contains("10.66.66.66") && !shown.contains("ANY-SERIAL"), "{shown}");

    // What the registration pins is carried, as registered.
    let subject = "/CN=pinned.example.com/serialNumber=ftx9";
    let extra = ["-sans", "10.7.7.7", "-implicit_confirm"];
    let (ok, text) = ir_as(&server, "routers", subject, "pinned.example.com", "s3cret", "pinned.crt", &extra);
    assert!(ok, "{text}");
    let shown = describe(&dir, "pinned.crt");
    assert!(shown.contains("subject=CN = pinned.example.com, serialNumber = FTX9"), "{shown}");
    assert!(shown.contains("DNS:pinned.example.com, IP Address:10.7.7.7"), "{shown}");

    // More names than the registered one: refused once the request is
    // authenticated (the same serial number and IP address as registered),
    // saying why, in a protected ip; nothing counted.
    let before = audited_enrollments(&dir).len();
    for sans in ["pinned.example.com,other.example.com,10.7.7.7", "pinned.example.com,10.7.7.7,mail@example.com"] {
        let extra = ["-sans", sans];
        let (ok, text) = ir_as(&server, "routers", subject, "pinned.example.com", "s3cret", "extra.crt", &extra);
        assert!(!ok, "{text}");
        assert!(text.contains("badCertTemplate"), "{text}");
        // openssl sends a name with an @ as a dNSName.
        assert!(text.contains("other.example.com") || text.contains("\"mail@example.com\" beside"), "{text}");
    }
    // Refused once authenticated: audited as refusals, nothing decided or counted.
    let after = audited_enrollments(&dir);
    assert_eq!(after.len(), before + 2);
    assert!(after[before..].iter().all(|e| e.outcome == "refused"), "{after:?}");
    assert_eq!(registration(&dir, 5)["enrollments"], 1);
}

#[test]
fn captured_openssl_messages_parse() {
    let ir = message::read(&fixture("cmp-openssl-3.0.19-ir-pbm.der")).unwrap();
    assert_eq!(ir.pvno, 2);
    assert_eq!(ir.sender_kid.as_deref(), Some(&b"4711"[..]));
    assert!(ir.implicit_confirm);
    assert_eq!(ir.transaction_id.as_ref().map(Vec::len), Some(16));
    let Body::Ir(Ok(requests)) = &ir.body else { panic!("not a readable ir: {:?}", ir.body) };
    assert!(requests[0].fault.is_none(), "{:?}", requests[0].fault);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].facts.fqdn.as_deref(), Some("device-0001"));
    let alg = MacAlgorithm::read(
        &prereg::pki::asn1::parse(ir.protection_alg.as_ref().unwrap()).unwrap(),
        prereg::enroll::cmp::protection::DEFAULT_MAX_ITERATIONS,
    )
    .unwrap();
    assert!(matches!(alg, MacAlgorithm::Pbm { iterations: 500, .. }), "{alg:?}");
    assert_eq!(ir.protection.as_ref().map(Vec::len), Some(20));

    // The mock server's ip: a response, read as far as a server reads it.
    let ip = message::read(&fixture("cmp-openssl-3.0.19-mock-ip-pbm.der")).unwrap();
    assert!(matches!(ip.body, Body::Other(message::body_tag::IP)));

    // Damaged copies are errors, never panics.
    let whole = fixture("cmp-openssl-3.0.19-ir-pbm.der");
    for cut in [0, 1, 10, 100, whole.len() - 1] {
        assert!(message::read(&whole[..cut]).is_err());
    }
    let mut flipped = whole.clone();
    flipped[300] ^= 0xff;
    let _ = message::read(&flipped);
}

/// A `p10cr` built here the way a client offering PBMAC1 builds one (openssl
/// 3.0 only offers PBM): the CSR from openssl, the header and the MAC from
/// prereg-pki. It asks for implicit confirmation.
fn p10cr(dir: &Path, fqdn: &str, alg: &MacAlgorithm, secret: &str) -> Vec<u8> {
    request(dir, fqdn, alg, secret, Kind::P10cr { implicit: true })
}

/// The requests this file builds.
enum Kind {
    /// A p10cr, asking for implicit confirmation or not.
    P10cr { implicit: bool },
    /// A certConf accepting this certificate, answering this server senderNonce.
    CertConf(Vec<u8>, Vec<u8>),
}

/// A request protected with `alg` under `secret` (transactionID 07…07).
fn request(dir: &Path, fqdn: &str, alg: &MacAlgorithm, secret: &str, kind: Kind) -> Vec<u8> {
    use prereg::pki::{asn1, x509};
    let implicit = matches!(kind, Kind::P10cr { implicit: true });
    let recip_nonce = match &kind {
        Kind::CertConf(_, nonce) => Some(nonce.clone()),
        Kind::P10cr { .. } => None,
    };
    let body = match kind {
        Kind::P10cr { .. } => {
            let subject = format!("/CN={fqdn}");
            let out = openssl(
                dir,
                &["req", "-new", "-key", "device.key", "-subj", &subject, "-outform", "DER", "-out", "p10.der"],
            );
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            asn1::constructed(0xa4, &[&std::fs::read(dir.join("p10.der")).unwrap()])
        }
        // CertConfirmContent: the certificate's SHA-256, certReqId -1 (p10cr).
        Kind::CertConf(cert, _) => {
            let hash = prereg::pki::keys::DigestAlg::Sha256.digest(&cert);
            let status = asn1::seq(&[&asn1::octet_string(&hash), &[0x02, 0x01, 0xff]]);
            asn1::constructed(message::body_tag::CERT_CONF, &[&asn1::seq(&[&status])])
        }
    };
    let header = message::Header {
        pvno: 2,
        sender: message::directory_name(&x509::write_name(&[(prereg::pki::oid::CN, fqdn)])),
        recipient: message::directory_name(&x509::write_name(&[])),
        protection_alg: Some(alg.encode()),
        sender_kid: Some(fqdn.as_bytes().to_vec()),
        transaction_id: Some(vec![7; 16]),
        sender_nonce: None,
        recip_nonce,
        implicit_confirm: implicit,
        now: prereg::registry::unix_now(),
    }
    .encode();
    let mac = |part: &[u8]| alg.mac(secret.as_bytes(), part);
    message::encode(&header, &body, Some(&mac))
}

fn post_cmp(server: &Server, procedure: &str, der: &[u8]) -> Vec<u8> {
    let url = format!("{}/.well-known/cmp/p/{procedure}", server.url.trim_end_matches('/'));
    let mut response = ureq::post(&url).content_type("application/pkixcmp").send(der).unwrap();
    response.body_mut().read_to_vec().unwrap()
}

/// The PKIStatus and statusString of the first response in a cp/ip, or of an error.
fn status_of(der: &[u8]) -> (u64, Option<String>, bool) {
    let (code, text, cert) = answer_of(der);
    (code, text, cert.is_some())
}

/// [`status_of`] with the certificate, if one was issued.
fn answer_of(der: &[u8]) -> (u64, Option<String>, Option<Vec<u8>>) {
    let answer = crate::cmp_conformance::read_answer(der);
    (answer.status, answer.text, answer.cert)
}

#[test]
fn pbmac1_requests_are_served_and_answered_in_kind_and_iteration_counts_are_bounded() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);

    let alg = MacAlgorithm::pbmac1_sha256(1000);
    let answer = post_cmp(&server, "routers", &p10cr(&dir, "e.dept.example.com", &alg, "s3cret"));
    // The request names no IP, but the wildcard registration has one:
    // ip-mismatch, decided before the secret is checked, so unprotected.
    let (code, text, _) = status_of(&answer);
    assert_eq!((code, text.as_deref()), (2, Some(NOT_AUTHENTICATED)));
    assert!(message::read(&answer).unwrap().protection.is_none());

    let answer = post_cmp(&server, "routers", &p10cr(&dir, "router1.example.com", &alg, "s3cret"));
    let (code, _, has_cert) = status_of(&answer);
    assert_eq!(code, 0);
    assert!(has_cert);
    let reply = message::read(&answer).unwrap();
    let reply_alg = MacAlgorithm::read(
        &prereg::pki::asn1::parse(reply.protection_alg.as_ref().unwrap()).unwrap(),
        prereg::enroll::cmp::protection::DEFAULT_MAX_ITERATIONS,
    )
    .unwrap();
    assert!(matches!(reply_alg, MacAlgorithm::Pbmac1 { iterations: 1000, .. }), "{reply_alg:?}");
    assert_ne!(reply_alg, alg, "a fresh salt");
    assert!(reply_alg.verify(b"s3cret", &reply.protected_part, reply.protection.as_deref().unwrap()));
    assert!(reply.implicit_confirm, "implicit confirmation granted");

    // Iteration counts outside 100 to the bound (600,000 unless configured)
    // are refused before any decision, badAlg.
    for iterations in [99, DEFAULT_MAX_ITERATIONS + 1] {
        let weak = MacAlgorithm::pbm_sha256(iterations);
        let answer = post_cmp(&server, "routers", &p10cr(&dir, "f.dept.example.com", &weak, "s3cret"));
        let (code, text, _) = status_of(&answer);
        assert_eq!(code, 2);
        assert!(text.unwrap().contains(&format!("iteration count {iterations}")));
    }
    let enrollments = audited_enrollments(&dir);
    assert_eq!(enrollments.len(), 2, "the refused iteration counts were not decided: {enrollments:?}");
}

#[test]
fn an_imported_rsa_ca_issues_and_bad_imports_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_local(&dir, &["init"]);
    let made = openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "corp-ca.key",
            "-subj",
            "/CN=Corp Issuing CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "corp-ca.crt",
        ],
    );
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let other = openssl(&dir, &["genrsa", "-out", "other.key", "2048"]);
    assert!(other.status.success());

    // A key that is not the certificate's: exit 2, naming both files.
    let out = crate::common::prereg_command(&dir)
        .args(["--data", "data", "ca", "import", "--cert", "corp-ca.crt", "--key", "other.key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other.key is not the private key of the certificate in corp-ca.crt"), "{err}");
    let out = crate::common::prereg_command(&dir)
        .args(["--data", "data", "ca", "import", "--cert", "missing.crt", "--key", "other.key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.crt"));

    let shown = run_local(&dir, &["ca", "import", "--cert", "corp-ca.crt", "--key", "corp-ca.key"]);
    assert!(shown.contains("CA       CN=Corp Issuing CA"), "{shown}");
    assert!(shown.contains("SCEP RA  CN=Corp Issuing CA SCEP RA"), "{shown}");

    run_local(&dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "cmp"]);
    std::fs::write(dir.join("pw"), "s3cret").unwrap();
    run_local(&dir, &["register", "--procedure", "routers", "--fqdn", "router1.example.com", "--password-file", "pw"]);
    assert!(
        openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "device.key"]).status.success()
    );
    let server = Server::start(&dir);
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "router1.crt", &[]);
    assert!(ok, "{text}");
    // Signed by the imported RSA CA, never past its end.
    let verify = openssl(&dir, &["verify", "-CAfile", "corp-ca.crt", "router1.crt"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let ca = prereg::pki::x509::Certificate::from_der(
        &prereg::pki::x509::pem_blocks(&std::fs::read_to_string(dir.join("corp-ca.crt")).unwrap(), "CERTIFICATE")
            .unwrap()[0],
    )
    .unwrap();
    let issued = prereg::pki::x509::Certificate::from_der(
        &prereg::pki::x509::pem_blocks(&std::fs::read_to_string(dir.join("router1.crt")).unwrap(), "CERTIFICATE")
            .unwrap()[0],
    )
    .unwrap();
    assert_eq!(issued.not_after, ca.not_after, "365 days capped at the CA's 30");

    // A device certificate is no CA: refused, naming the file.
    let again = tempfile::tempdir().unwrap();
    run_local(again.path(), &["init"]);
    let out = crate::common::prereg_command(again.path())
        .args(["--data", "data", "ca", "import", "--cert"])
        .arg(dir.join("router1.crt"))
        .arg("--key")
        .arg(dir.join("device.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("router1.crt is not a CA certificate"), "{err}");
}

#[test]
fn a_held_certificate_is_confirmed_after_a_restart_and_only_once() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let alg = MacAlgorithm::pbm_sha256(500);
    // Without implicit confirmation: issued, counted, and held for the certConf.
    let held = request(&dir, "router1.example.com", &alg, "s3cret", Kind::P10cr { implicit: false });
    let answer = post_cmp(&server, "routers", &held);
    let (code, _, cert) = answer_of(&answer);
    assert_eq!(code, 0);
    let cert = cert.expect("a certificate");
    let server_nonce = message::read(&answer).unwrap().sender_nonce.unwrap();
    assert_eq!(registration(&dir, 1)["enrollments"], 1);

    // The service restarts; the certConf reaches the new process.
    assert!(server.stop().success());
    let server = Server::start(&dir);
    let conf = request(&dir, "router1.example.com", &alg, "s3cret", Kind::CertConf(cert, server_nonce));
    let answer = post_cmp(&server, "routers", &conf);
    assert!(matches!(message::read(&answer).unwrap().body, Body::Other(message::body_tag::PKI_CONF)));
    let shown = run_local(&dir, &["show", "1", "--json"]);
    assert!(shown.contains("\"state\": \"used\""), "{shown}");
    // The same certConf again: the transaction is over (certConfirmed, protected).
    let answer = post_cmp(&server, "routers", &conf);
    let (code, text, _) = answer_of(&answer);
    assert_eq!(code, 2);
    assert!(text.unwrap().contains("the certificate was confirmed already"));
    assert!(message::read(&answer).unwrap().protection.is_some());
}

#[test]
fn a_refusal_does_not_tell_whether_a_name_is_registered() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let alg = MacAlgorithm::pbm_sha256(1000);
    // Never registered; registered, with the wrong secret; registered, with
    // another IP pinned: the client is told the same.
    let unregistered = status_of(&post_cmp(&server, "routers", &p10cr(&dir, "nobody.example.com", &alg, "s3cret")));
    let wrong_secret = status_of(&post_cmp(&server, "routers", &p10cr(&dir, "router1.example.com", &alg, "guess")));
    let pinned_ip = status_of(&post_cmp(&server, "routers", &p10cr(&dir, "e.dept.example.com", &alg, "s3cret")));
    assert_eq!(unregistered, (2, Some(NOT_AUTHENTICATED.into()), false));
    assert_eq!(wrong_secret, unregistered);
    assert_eq!(pinned_ip, unregistered);
    // The audit log tells the operator why.
    let reasons: Vec<_> = audited_enrollments(&dir).iter().map(|e| e.decision().1.to_owned()).collect();
    assert_eq!(reasons, vec!["no-registration", "bad-password", "ip-mismatch"]);
}

#[test]
fn openssl_cmp_enrolls_over_https_with_the_instance_ca_trusted() {
    let (_tmp, dir) = setup();
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self"];
    let server = Server::start_with(&dir, "server.log", &args);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    // A client that trusts another root refuses the service and sends nothing.
    let made = openssl(
        &dir,
        &["req", "-x509", "-key", "device.key", "-subj", "/CN=Other root", "-days", "1", "-out", "other.crt"],
    );
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let wrong = ["-tls_used", "-tls_trusted", "other.crt"];
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "untrusted.crt", &wrong);
    assert!(!ok, "{text}");
    assert!(!dir.join("untrusted.crt").exists());
    // Trusting the instance CA, it enrolls, and the registration is used.
    let tls = ["-tls_used", "-tls_trusted", "data/ca/ca.crt"];
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "router1.crt", &tls);
    assert!(ok, "{text}");
    assert!(verifies(&dir, "router1.crt"));
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "again.crt", &tls);
    assert!(!ok && text.contains(NOT_AUTHENTICATED_LINE), "{text}");
}

/// Issue 17, item 9: CMP's transactionID makes a retry safe. A client that
/// lost the answer resends the same request: it gets the certificate issued
/// in that transaction, and the one-time registration is counted once. The
/// attacker's variants (the same transactionID with a wrong secret, or for
/// another key) get nothing and count nothing: transactionIdInUse.
#[test]
fn a_resent_request_gets_its_transactions_certificate_counted_once() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let alg = MacAlgorithm::pbm_sha256(500);
    let first = request(&dir, "router1.example.com", &alg, "s3cret", Kind::P10cr { implicit: true });
    let (code, _, cert) = answer_of(&post_cmp(&server, "routers", &first));
    assert_eq!(code, 0);
    let cert = cert.expect("a certificate");
    // The answer was lost: the same message again.
    let (code, text, again) = answer_of(&post_cmp(&server, "routers", &first));
    assert_eq!((code, text), (0, None));
    assert_eq!(again.as_deref(), Some(cert.as_slice()), "the same certificate");
    assert_eq!(registration(&dir, 1)["enrollments"], 1);
    assert_eq!(audited_certificates(&dir).len(), 1, "one certificate issued and audited");
    // The same transactionID, the same key, a wrong secret: not authenticated.
    let forged = request(&dir, "router1.example.com", &alg, "guess", Kind::P10cr { implicit: true });
    let (code, text, none) = answer_of(&post_cmp(&server, "routers", &forged));
    assert_eq!(code, 2);
    assert!(none.is_none() && text.as_deref() == Some(NOT_AUTHENTICATED), "{text:?}");
    // The same transactionID and secret for another key.
    let key = openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "device.key"]);
    assert!(key.status.success());
    let other = request(&dir, "router1.example.com", &alg, "s3cret", Kind::P10cr { implicit: true });
    let answer = post_cmp(&server, "routers", &other);
    let (code, _, none) = answer_of(&answer);
    assert_eq!(code, 2);
    assert!(none.is_none());
    // failInfo transactionIdInUse: bit 21 (RFC 4210 §5.2.3).
    assert!(answer.windows(5).any(|w| w == [0x03, 0x04, 0x02, 0x00, 0x00]), "{answer:02x?}");
    assert_eq!(registration(&dir, 1)["enrollments"], 1);
    assert_eq!(audited_certificates(&dir).len(), 1);
}

/// Issue 19: the stock client's other commands against `prereg serve`:
/// `-cmd genm` and `-cmd kur` signed with the device's certificate (its
/// one-time registration is used, so its password no longer authenticates
/// it), `-cmd rr` signed with the new key, and `-cmd rr` by MAC for the old
/// certificate. The revoked certificates are on the CRL.
#[test]
fn openssl_cmp_asks_general_messages_updates_the_key_and_revokes() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let (ok, text) = ir(&server, "routers", "router1.example.com", "s3cret", "router1.crt", &["-implicit_confirm"]);
    assert!(ok, "{text}");
    let signed = ["-cert", "router1.crt", "-key", "device.key", "-trusted", "data/ca/ca.crt"];

    let (ok, text) =
        cmp(&server, "routers", &[&["-cmd", "genm", "-infotype", "signKeyPairTypes"][..], &signed].concat());
    assert!(ok, "{text}");
    assert!(text.contains("received GENP"), "{text}");
    // The registration's password no longer authenticates the used registration.
    let mac = ["-secret", "pass:s3cret", "-ref", "router1.example.com"];
    let (ok, text) = cmp(&server, "routers", &[&["-cmd", "genm", "-infotype", "currentCRL"][..], &mac].concat());
    assert!(!ok && text.contains("badMessageCheck"), "{text}");

    let key = openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "new.key"]);
    assert!(key.status.success());
    let kur = ["-cmd", "kur", "-newkey", "new.key", "-certout", "router1-new.crt"];
    let (ok, text) = cmp(&server, "routers", &[&kur[..], &signed].concat());
    assert!(ok, "{text}");
    assert!(text.contains("received KUP") && text.contains("received PKICONF"), "{text}");
    assert!(verifies(&dir, "router1-new.crt"));
    let shown = describe(&dir, "router1-new.crt");
    assert!(shown.contains("subject=CN = router1.example.com") && shown.contains("DNS:router1.example.com"), "{shown}");
    assert_ne!(serial_of(&dir, "router1.crt"), serial_of(&dir, "router1-new.crt"));
    // Not counted: still one enrollment.
    assert_eq!(registration(&dir, 1)["enrollments"], 1);

    let rr = [
        "-cmd",
        "rr",
        "-oldcert",
        "router1-new.crt",
        "-cert",
        "router1-new.crt",
        "-key",
        "new.key",
        "-trusted",
        "data/ca/ca.crt",
        "-revreason",
        "1",
    ];
    let (ok, text) = cmp(&server, "routers", &rr);
    assert!(ok, "{text}");
    assert!(text.contains("received RP"), "{text}");
    // By MAC, the old certificate.
    let (ok, text) = cmp(&server, "routers", &[&["-cmd", "rr", "-oldcert", "router1.crt"][..], &mac].concat());
    assert!(ok, "{text}");

    let crl = fetch_crl(&dir, "router1.crt");
    assert!(crl.contains("Key Compromise"), "{crl}");
    for cert in ["router1.crt", "router1-new.crt"] {
        let (ok, why) = verify_with_crl(&dir, cert);
        assert!(!ok && why.contains("certificate revoked"), "{cert}: {why}");
    }
}
