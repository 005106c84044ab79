//! Issue 20: EST (RFC 7030, RFC 8951) with stock clients against `prereg
//! serve --tls-self`: strongSwan's `pki --est` (HTTP Basic, then
//! re-enrollment with its certificate) and `curl` + `openssl` for each
//! operation, and the attacker's variants (an unknown device, a wrong
//! password, a used one-time registration, another device's name, plain
//! HTTP, a client certificate from another CA).
//!
//! Needs `pki` (strongswan-pki), `curl` and `openssl` (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Server, audit_records, audited_enrollments, run_local};

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (.ci/run installs it): {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A data folder with a CA, an EST procedure requiring preregistration (the
/// one served without a label), another that does not, and registrations.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_local(&dir, &["init"]);
    run_local(&dir, &["ca", "init", "--name", "Test CA"]);
    let est = ["procedure", "add", "gear", "--domain", "corp", "--protocol", "est"];
    run_local(&dir, &[&est[..], &["--require-preregistration", "true"]].concat());
    run_local(&dir, &["procedure", "add", "open", "--domain", "corp", "--protocol", "est"]);
    run_local(&dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "cmp"]);
    run_local(&dir, &["ca", "set", "--est-procedure", "gear"]);
    std::fs::write(dir.join("pw"), "s3cret").unwrap();
    run_local(&dir, &["register", "--procedure", "gear", "--fqdn", "sw1.example.com", "--password-file", "pw"]);
    let wildcard = ["register", "--procedure", "gear", "--fqdn", "*.lab.example.com", "--password-file", "pw"];
    run_local(&dir, &[&wildcard[..], &["--max-enrollments", "10"]].concat());
    (tmp, dir)
}

fn serve(dir: &Path) -> Server {
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self", "--failure-burst", "1000"];
    let server = Server::start_with(dir, "server.log", &args);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    server
}

/// A P-256 key and a DER CSR for `cn` (in `name`.key, `name`.csr.der), with
/// openssl's extra arguments.
fn csr(dir: &Path, name: &str, cn: &str, extra: &[&str]) -> Vec<u8> {
    let key = format!("{name}.key");
    assert!(
        run(dir, "openssl", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]).status.success()
    );
    let subject = format!("/CN={cn}");
    let out = format!("{name}.csr.der");
    let mut args = vec!["req", "-new", "-key", &key, "-subj", &subject, "-outform", "DER", "-out", &out];
    args.extend_from_slice(extra);
    let made = run(dir, "openssl", &args);
    assert!(made.status.success(), "{}", text(&made));
    std::fs::read(dir.join(out)).unwrap()
}

/// `pki --est` against the server, the certificate (PEM) saved to `out`;
/// (success, what it printed).
fn strongswan(server: &Server, out: &str, args: &[&str]) -> (bool, String) {
    let url = server.url.trim_end_matches('/');
    let mut all = vec!["--est", "--url", url, "--cacert", "data/ca/ca.crt", "--outform", "pem"];
    all.extend_from_slice(args);
    let output = run(&server.dir, "pki", &all);
    if output.status.success() {
        std::fs::write(server.dir.join(out), &output.stdout).unwrap();
    }
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `curl` to `path` over the instance's TLS; (status line and headers, body).
fn curl(server: &Server, path: &str, args: &[&str]) -> (String, Vec<u8>) {
    let url = format!("{}{path}", server.url.trim_end_matches('/'));
    let mut all = vec!["-s", "--cacert", "data/ca/ca.crt", "-D", "headers.txt", "-o", "body.bin"];
    all.extend_from_slice(args);
    all.push(&url);
    let out = run(&server.dir, "curl", &all);
    assert!(out.status.success(), "curl {path}: {}", text(&out));
    let headers = std::fs::read_to_string(server.dir.join("headers.txt")).unwrap();
    (headers, std::fs::read(server.dir.join("body.bin")).unwrap())
}

/// POSTs the base64 file `body` to `path` over the instance's TLS with the
/// client certificate `cert` (PEM, chain allowed) and its `key`; the HTTP
/// status as curl prints it (`000`: no connection).
fn post_with_certificate(server: &Server, path: &str, cert: &str, key: &str, body: &str) -> String {
    let url = format!("{}{path}", server.url.trim_end_matches('/'));
    let data = format!("@{body}");
    let args =
        ["-s", "--cacert", "data/ca/ca.crt", "--cert", cert, "--key", key, "-H", "Content-Type: application/pkcs10"];
    let out = run(
        &server.dir,
        "curl",
        &[&args[..], &["--data-binary", &data, "-o", "/dev/null", "-w", "%{http_code}", &url]].concat(),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unbase64(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let cleaned: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(cleaned).unwrap()
}

fn registration(dir: &Path, id: u64) -> serde_json::Value {
    serde_json::from_str(&run_local(dir, &["show", &id.to_string(), "--json"])).unwrap()
}

#[test]
fn strongswan_pki_est_enrolls_with_its_password_and_reenrolls_with_its_certificate() {
    let (_tmp, dir) = setup();
    let server = serve(&dir);
    csr(&dir, "sw1", "sw1.example.com", &[]);
    let (ok, out) = strongswan(&server, "sw1.crt", &["--userpass", "sw1.example.com:s3cret", "--in", "sw1.csr.der"]);
    assert!(ok, "{out}");
    let issued = run(&dir, "openssl", &["x509", "-in", "sw1.crt", "-noout", "-subject", "-ext", "subjectAltName"]);
    let shown = text(&issued);
    assert!(shown.contains("subject=CN = sw1.example.com") && shown.contains("DNS:sw1.example.com"), "{shown}");
    assert!(run(&dir, "openssl", &["verify", "-CAfile", "data/ca/ca.crt", "sw1.crt"]).status.success());
    assert_eq!(registration(&dir, 1)["enrollments"], 1);

    // The one-time registration is used: a second device with its password is refused, 401.
    csr(&dir, "again", "sw1.example.com", &[]);
    let (ok, out) =
        strongswan(&server, "again.crt", &["--userpass", "sw1.example.com:s3cret", "--in", "again.csr.der"]);
    assert!(!ok && out.contains("HTTP 401"), "{out}");

    // Re-enrollment with the certificate and its key: a new key, the same
    // device; not counted; audited as renew.
    csr(&dir, "sw1-new", "sw1.example.com", &[]);
    let args = ["--cert", "sw1.crt", "--key", "sw1.key", "--in", "sw1-new.csr.der"];
    let (ok, out) = strongswan(&server, "sw1-new.crt", &args);
    assert!(ok, "{out}");
    assert!(out.contains("Issued certificate is trusted"), "{out}");
    let renewed = text(&run(&dir, "openssl", &["x509", "-in", "sw1-new.crt", "-noout", "-subject", "-pubkey"]));
    let old = text(&run(&dir, "openssl", &["x509", "-in", "sw1.crt", "-noout", "-pubkey"]));
    assert!(renewed.contains("subject=CN = sw1.example.com") && !renewed.contains(old.trim()), "{renewed}");
    assert_eq!(registration(&dir, 1)["enrollments"], 1);

    // The policy decides renewals: once the officer disables the
    // registration, the valid certificate renews no more (403), and the
    // denial is audited with its reason.
    run_local(&dir, &["disable", "1"]);
    csr(&dir, "sw1-next", "sw1.example.com", &[]);
    let args = ["--cert", "sw1-new.crt", "--key", "sw1-new.key", "--in", "sw1-next.csr.der"];
    let (ok, out) = strongswan(&server, "sw1-next.crt", &args);
    assert!(!ok && out.contains("HTTP 403"), "{out}");
    let renewals: Vec<(String, String)> = audit_records(&dir)
        .into_iter()
        .filter(|r| r["action"] == "renew")
        .map(|r| (r["outcome"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(renewals, [("allowed".into(), "matched".into()), ("denied".into(), "no-registration".into())]);
    let decisions: Vec<(String, String)> =
        audited_enrollments(&dir).iter().map(|e| (e.outcome.clone(), e.reason.clone())).collect();
    assert_eq!(decisions, [("allowed".into(), "matched".into()), ("denied".into(), "no-registration".into())]);
}

#[test]
fn curl_and_openssl_drive_every_operation_and_refusals_get_the_rfcs_status_codes() {
    let (_tmp, dir) = setup();
    let server = serve(&dir);

    // cacerts: a base64 certs-only PKCS#7 with the CA.
    let (headers, body) = curl(&server, "/.well-known/est/gear/cacerts", &[]);
    assert!(headers.starts_with("HTTP/2 200") && headers.contains("application/pkcs7-mime"), "{headers}");
    std::fs::write(dir.join("cacerts.der"), unbase64(&body)).unwrap();
    let certs = run(&dir, "openssl", &["pkcs7", "-inform", "DER", "-in", "cacerts.der", "-print_certs", "-noout"]);
    assert!(text(&certs).contains("subject=CN = Test CA"), "{}", text(&certs));
    // csrattrs: challengePassword.
    let (headers, body) = curl(&server, "/.well-known/est/gear/csrattrs", &[]);
    assert!(headers.contains("application/csrattrs"), "{headers}");
    std::fs::write(dir.join("attrs.der"), unbase64(&body)).unwrap();
    let attrs = run(&dir, "openssl", &["asn1parse", "-inform", "DER", "-in", "attrs.der"]);
    assert!(text(&attrs).contains("challengePassword"), "{}", text(&attrs));

    let post = |name: &str, path: &str, csr: &[u8], extra: &[&str]| {
        std::fs::write(dir.join(format!("{name}.b64")), base64(csr)).unwrap();
        let data = format!("@{name}.b64");
        let mut args = vec!["-H", "Content-Type: application/pkcs10", "--data-binary", &data];
        args.extend_from_slice(extra);
        curl(&server, path, &args)
    };
    // simpleenroll with the CSR's challengePassword, under the label.
    let a = csr(&dir, "a", "a.lab.example.com", &["-addext", "subjectAltName=DNS:a.lab.example.com"]);
    let with_challenge = {
        let config = "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = b.lab.example.com\n\
                      [attrs]\nchallengePassword = s3cret\n";
        std::fs::write(dir.join("b.cnf"), config).unwrap();
        assert!(
            run(&dir, "openssl", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "b.key"])
                .status
                .success()
        );
        let made = run(
            &dir,
            "openssl",
            &["req", "-new", "-key", "b.key", "-config", "b.cnf", "-outform", "DER", "-out", "b.csr.der"],
        );
        assert!(made.status.success(), "{}", text(&made));
        std::fs::read(dir.join("b.csr.der")).unwrap()
    };
    let (headers, body) = post("b", "/.well-known/est/gear/simpleenroll", &with_challenge, &[]);
    assert!(headers.starts_with("HTTP/2 200"), "{headers}");
    assert!(headers.contains("application/pkcs7-mime; smime-type=certs-only"), "{headers}");
    std::fs::write(dir.join("b.p7"), unbase64(&body)).unwrap();
    let issued = run(&dir, "openssl", &["pkcs7", "-inform", "DER", "-in", "b.p7", "-print_certs", "-noout"]);
    assert!(text(&issued).contains("subject=CN = b.lab.example.com"), "{}", text(&issued));
    // With HTTP Basic.
    let (headers, _) = post("a", "/.well-known/est/gear/simpleenroll", &a, &["-u", "a.lab.example.com:s3cret"]);
    assert!(headers.starts_with("HTTP/2 200"), "{headers}");

    // The attacker's variants. A wrong password, an unknown device, a used
    // registration: the same 401 with a Basic challenge.
    let c = csr(&dir, "c", "c.lab.example.com", &[]);
    let nobody = csr(&dir, "n", "nobody.example.com", &[]);
    let used = csr(&dir, "u", "sw1.example.com", &[]);
    let (_, first) = post("u", "/.well-known/est/gear/simpleenroll", &used, &["-u", "sw1.example.com:s3cret"]);
    assert!(!first.is_empty());
    let mut bodies = Vec::new();
    for (name, csr, user) in [
        ("c", &c, "c.lab.example.com:wrong"),
        ("n", &nobody, "nobody.example.com:s3cret"),
        ("u", &used, "sw1.example.com:s3cret"),
    ] {
        let (headers, body) = post(name, "/.well-known/est/gear/simpleenroll", csr, &["-u", user]);
        assert!(headers.starts_with("HTTP/2 401"), "{name}: {headers}");
        assert!(headers.to_lowercase().contains("www-authenticate: basic realm=\"prereg est\""), "{headers}");
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        bodies.push(problem["detail"].clone());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one answer for every denial: {bodies:?}");
    // No credentials at all: 401 asking for them.
    let (headers, _) = post("c", "/.well-known/est/gear/simpleenroll", &c, &[]);
    assert!(headers.starts_with("HTTP/2 401") && headers.to_lowercase().contains("www-authenticate"), "{headers}");
    // A user name that is not the CSR's device: 400.
    let (headers, _) = post("c", "/.well-known/est/gear/simpleenroll", &c, &["-u", "a.lab.example.com:s3cret"]);
    assert!(headers.starts_with("HTTP/2 400"), "{headers}");
    // A CSR naming another device beside its own: 400, audited as refused.
    let extra =
        csr(&dir, "x", "d.lab.example.com", &["-addext", "subjectAltName=DNS:d.lab.example.com,DNS:bank.example.net"]);
    let (headers, _) = post("x", "/.well-known/est/gear/simpleenroll", &extra, &["-u", "d.lab.example.com:s3cret"]);
    assert!(headers.starts_with("HTTP/2 400"), "{headers}");
    // A procedure that does not require preregistration: EST refuses, 403.
    let (headers, _) = post("c", "/.well-known/est/open/simpleenroll", &c, &["-u", "c.lab.example.com:s3cret"]);
    assert!(headers.starts_with("HTTP/2 403"), "{headers}");
    // Another protocol's procedure: 404.
    let (headers, _) = post("c", "/.well-known/est/routers/simpleenroll", &c, &["-u", "c.lab.example.com:s3cret"]);
    assert!(headers.starts_with("HTTP/2 404"), "{headers}");
    // Re-enrollment without a client certificate: 401.
    let (headers, _) = post("c", "/.well-known/est/gear/simplereenroll", &c, &[]);
    assert!(headers.starts_with("HTTP/2 401"), "{headers}");

    let decisions: Vec<(String, String)> =
        audited_enrollments(&dir).iter().map(|e| (e.outcome.clone(), e.reason.clone())).collect();
    let expected = [
        ("allowed", "matched"),
        ("allowed", "matched"),
        ("allowed", "matched"),
        ("denied", "bad-password"),
        ("denied", "no-registration"),
        ("denied", "no-registration"),
        ("refused", ""),
        ("refused", "not-required"),
    ];
    assert_eq!(decisions, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert!(audited_enrollments(&dir).iter().all(|e| e.transaction.starts_with("est:")));
}

#[test]
fn est_is_served_over_tls_only_and_a_client_certificate_of_another_ca_gets_no_connection() {
    let (_tmp, dir) = setup();
    // Plain HTTP: 403, tls-required.
    let plain = Server::start_with(&dir, "plain.log", &["--data", "data", "serve", "--listen", "127.0.0.1:0"]);
    let url = format!("{}/.well-known/est/gear/cacerts", plain.url.trim_end_matches('/'));
    let out = run(&dir, "curl", &["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    drop(plain);

    let server = serve(&dir);
    // A self-signed client certificate: the TLS handshake refuses it.
    csr(&dir, "o", "sw1.example.com", &[]);
    let made = run(
        &dir,
        "openssl",
        &["req", "-x509", "-key", "o.key", "-subj", "/CN=sw1.example.com", "-days", "1", "-out", "o.crt"],
    );
    assert!(made.status.success());
    std::fs::write(dir.join("o.b64"), base64(&std::fs::read(dir.join("o.csr.der")).unwrap())).unwrap();
    let status = post_with_certificate(&server, "/.well-known/est/gear/simplereenroll", "o.crt", "o.key", "o.b64");
    assert!(status == "000" || status.is_empty(), "{status}");
    assert!(!dir.join("o-new.crt").exists());
}

/// A device presenting its manufacturer certificate (IDevID) in the TLS
/// handshake enrolls without a password when the procedure trusts its
/// manufacturer (`prereg ca set --est-trust-anchor`): the certificate's
/// subject serialNumber must be the serial its registration pins. The
/// attacker's variants: another serial, a registration that pins none, a
/// certificate of a manufacturer the procedure does not trust.
#[test]
fn a_manufacturer_certificate_enrolls_a_device_registered_with_its_serial() {
    let (_tmp, dir) = setup();
    std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n").unwrap();
    std::fs::write(dir.join("leaf.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    // A manufacturer: a root, an intermediate, and devices' certificates
    // under the intermediate; another manufacturer with one device.
    for maker in ["acme", "rogue"] {
        crate::common::openssl_root_ca(&dir, &format!("{maker}-root"), &format!("/CN={maker} Root"));
    }
    let issue = |name: &str, subject: &str, issuer: &str, ext: &str| {
        crate::common::openssl_issue(&dir, name, subject, issuer, ext);
    };
    issue("acme-ica", "/CN=acme Devices", "acme-root", "ca.ext");
    for (name, serial) in [("dev42", "SN-42"), ("dev43", "SN-43"), ("dev44", "SN-44")] {
        issue(name, &format!("/CN=idevid/serialNumber={serial}"), "acme-ica", "leaf.ext");
        // The chain a device presents: its certificate, then the intermediate.
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap(),
            std::fs::read_to_string(dir.join("acme-ica.crt")).unwrap()
        );
        std::fs::write(dir.join(format!("{name}-chain.pem")), chain).unwrap();
    }
    issue("rogue42", "/CN=idevid/serialNumber=SN-42", "rogue-root", "leaf.ext");

    let register = |fqdn: &str, serial: Option<&str>| {
        let mut args = vec!["register", "--procedure", "gear", "--fqdn", fqdn];
        if let Some(serial) = serial {
            args.extend_from_slice(&["--serial", serial]);
        }
        run_local(&dir, &args);
    };
    register("sw42.example.com", Some("SN-42"));
    register("sw77.example.com", Some("SN-77"));
    register("sw88.example.com", None);
    let trusted = run_local(&dir, &["ca", "set", "--est-trust-anchor", "gear=acme-root.crt"]);
    assert!(trusted.contains("gear trusts 1 more manufacturer CA certificate(s)"), "{trusted}");
    let server = serve(&dir);

    let enroll = |chain: &str, key: &str, cn: &str| {
        let csr = csr(&dir, "m", cn, &[]);
        std::fs::write(dir.join("m.b64"), base64(&csr)).unwrap();
        post_with_certificate(&server, "/.well-known/est/gear/simpleenroll", chain, key, "m.b64")
    };
    // Its serial, pinned by the registration: enrolled, counted.
    assert_eq!(enroll("dev42-chain.pem", "dev42.key", "sw42.example.com"), "200");
    assert_eq!(registration(&dir, 3)["enrollments"], 1, "registration 3: sw42");
    // Another serial than the registration pins.
    assert_eq!(enroll("dev43-chain.pem", "dev43.key", "sw77.example.com"), "401");
    // A registration that pins no serial: a manufacturer certificate proves nothing for it.
    assert_eq!(enroll("dev44-chain.pem", "dev44.key", "sw88.example.com"), "401");
    // Another manufacturer, whose root was never given: no connection at all.
    let rogue = enroll("rogue42.crt", "rogue42.key", "sw42.example.com");
    assert!(rogue == "000" || rogue.is_empty(), "{rogue}");
    let decisions: Vec<(String, String)> =
        audited_enrollments(&dir).iter().map(|e| (e.outcome.clone(), e.reason.clone())).collect();
    assert_eq!(
        decisions,
        [
            ("allowed".into(), "matched".into()),
            ("denied".into(), "serial-mismatch".into()),
            ("refused".into(), "".into())
        ]
    );
}

/// An expired registration enrolls nothing: the service runs two days
/// later (libfaketime) than a registration valid for one day was made; the
/// device is told what every registration-dependent denial is told, 401.
#[test]
fn an_expired_registration_is_refused_like_every_other_denial() {
    let (_tmp, dir) = setup();
    let register = ["register", "--procedure", "gear", "--fqdn", "old.example.com", "--password-file", "pw"];
    run_local(&dir, &[&register[..], &["--valid-days", "1"]].concat());
    // The service's TLS certificate is issued now (a service started two
    // days ahead would date it so that curl, on today's clock, refuses it).
    drop(serve(&dir));
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self", "--failure-burst", "1000"];
    let server = Server::start_later(&dir, "later.log", "+2d", &args);
    let old = csr(&dir, "old", "old.example.com", &[]);
    std::fs::write(dir.join("old.b64"), base64(&old)).unwrap();
    let (headers, _) = curl(
        &server,
        "/.well-known/est/gear/simpleenroll",
        &["-u", "old.example.com:s3cret", "-H", "Content-Type: application/pkcs10", "--data-binary", "@old.b64"],
    );
    assert!(headers.starts_with("HTTP/2 401"), "{headers}");
    let decisions: Vec<(String, String)> =
        audited_enrollments(&dir).iter().map(|e| (e.outcome.clone(), e.reason.clone())).collect();
    assert_eq!(decisions, [("denied".to_owned(), "no-registration".to_owned())]);
}

/// How a procedure's devices may authenticate is the operator's choice
/// (`prereg ca set --est-auth PROCEDURE=WAYS`): a procedure that takes
/// manufacturer certificates only refuses a right password, and says what it
/// takes.
#[test]
fn a_procedure_takes_only_the_ways_of_authenticating_it_is_set_to() {
    let (_tmp, dir) = setup();
    let shown = run_local(&dir, &["ca", "set", "--est-auth", "gear=idevid"]);
    assert!(shown.contains("EST      gear: idevid (manufacturer anchors: 0)"), "{shown}");
    assert!(shown.contains("EST      open: basic, challenge, idevid"), "{shown}");
    let refused = crate::common::prereg_command(&dir)
        .args(["--data", "data", "ca", "set", "--est-auth", "gear=password"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("\"password\" is not one of basic, challenge, idevid, all")
    );
    let server = serve(&dir);
    let c = csr(&dir, "c", "c.lab.example.com", &[]);
    std::fs::write(dir.join("c.b64"), base64(&c)).unwrap();
    let args = ["-u", "c.lab.example.com:s3cret", "-H", "Content-Type: application/pkcs10", "--data-binary", "@c.b64"];
    let (headers, body) = curl(&server, "/.well-known/est/gear/simpleenroll", &args);
    assert!(headers.starts_with("HTTP/2 401"), "{headers}");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["detail"], "authenticate with the device's manufacturer certificate in the TLS handshake");
    assert!(audited_enrollments(&dir).is_empty(), "nothing decided");
    // All ways again.
    drop(server);
    let shown = run_local(&dir, &["ca", "set", "--est-auth", "gear=all"]);
    assert!(shown.contains("EST      gear: basic, challenge, idevid"), "{shown}");
}

/// A re-enrollment revokes nothing unless the procedure says so
/// (`prereg ca set --est-reenroll-revokes gear=yes`): then the replaced
/// certificate goes on the CRL as superseded, audited.
#[test]
fn a_procedure_may_have_re_enrollment_revoke_the_certificate_it_replaces() {
    let (_tmp, dir) = setup();
    let shown = run_local(&dir, &["ca", "set", "--est-reenroll-revokes", "gear=yes"]);
    assert!(shown.contains("re-enrollment revokes the old"), "{shown}");
    let server = serve(&dir);
    let first = csr(&dir, "sw1", "sw1.example.com", &[]);
    std::fs::write(dir.join("sw1.b64"), base64(&first)).unwrap();
    let args = ["-u", "sw1.example.com:s3cret", "-H", "Content-Type: application/pkcs10", "--data-binary", "@sw1.b64"];
    let (headers, body) = curl(&server, "/.well-known/est/gear/simpleenroll", &args);
    assert!(headers.starts_with("HTTP/2 200"), "{headers}");
    std::fs::write(dir.join("sw1.p7"), unbase64(&body)).unwrap();
    let out = run(&dir, "openssl", &["pkcs7", "-inform", "DER", "-in", "sw1.p7", "-print_certs", "-out", "sw1.crt"]);
    assert!(out.status.success(), "{}", text(&out));
    let old_serial = text(&run(&dir, "openssl", &["x509", "-in", "sw1.crt", "-noout", "-serial"]));
    let renewed = csr(&dir, "sw1-new", "sw1.example.com", &[]);
    std::fs::write(dir.join("renew.b64"), base64(&renewed)).unwrap();
    let status =
        post_with_certificate(&server, "/.well-known/est/gear/simplereenroll", "sw1.crt", "sw1.key", "renew.b64");
    assert_eq!(status, "200");
    run_local(&dir, &["ca", "crl", "--out", "crl.der"]);
    let crl = text(&run(&dir, "openssl", &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]));
    let serial = old_serial.trim().trim_start_matches("serial=");
    assert!(crl.contains(serial) && crl.contains("Superseded"), "{serial} superseded in {crl}");
    let revoked: Vec<_> = audit_records(&dir)
        .into_iter()
        .filter(|r| r["action"] == "certificate.revoke")
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(revoked, ["revoked on its EST re-enrollment, superseded"]);
}
