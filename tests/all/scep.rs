//! SCEP enrollment with stock clients against `prereg serve` on loopback:
//! micromdm's `scepclient` (Debian package `scep`) and strongSwan's
//! `pki --scep` (`strongswan-pki`, `libstrongswan-extra-plugins`); and the
//! SCEP parser on messages captured from stock clients.
//!
//! `.ci/run` installs the clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use prereg::enroll::scep::{attr, cms};
use prereg::pki::keys::SigningKey;

use crate::common::{AuditedEnrollment, Server, audited_enrollments, run_local};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/enrollment").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    run_with_env(dir, &[], program, args)
}

fn run_with_env(dir: &Path, env: &[(&str, String)], program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (see .ci/run for the Debian packages): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn describe(dir: &Path, cert: &str) -> String {
    let (ok, text) =
        run(dir, "openssl", &["x509", "-in", cert, "-noout", "-subject", "-ext", "subjectAltName", "-issuer"]);
    assert!(ok, "{text}");
    text
}

/// SHA-256 of the RA certificate (DER), for scepclient's `-ca-fingerprint`:
/// without it, scepclient encrypts to every certificate GetCACert returns,
/// and the EC CA certificate cannot receive RSA key transport.
fn ra_fingerprint(dir: &Path) -> String {
    let pem = std::fs::read_to_string(dir.join("data/ca/ra.crt")).unwrap();
    let der = prereg::pki::x509::pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0);
    prereg::pki::x509::Certificate::from_der(&der).unwrap().fingerprint()
}

/// micromdm's scepclient for `cn` with `challenge`, in a folder of its own
/// (it keeps its self-signed signer in `self.pem` in the working folder).
fn scepclient(server: &Server, procedure: &str, cn: &str, challenge: &str) -> (bool, String, PathBuf) {
    let work = server.dir.join(format!("scepclient-{cn}-{challenge}"));
    std::fs::create_dir_all(&work).unwrap();
    let url = format!("{}/scep/{procedure}", server.url.trim_end_matches('/'));
    let fingerprint = ra_fingerprint(&server.dir);
    // Over HTTPS, scepclient (Go) trusts the roots in SSL_CERT_FILE: the
    // instance CA, for a service started with --tls-self.
    let (ok, text) = run_with_env(
        &work,
        &[("SSL_CERT_FILE", server.dir.join("data/ca/ca.crt").display().to_string())],
        "scepclient",
        &[
            "-server-url",
            &url,
            "-challenge",
            challenge,
            "-private-key",
            "device.key",
            "-certificate",
            "device.crt",
            "-cn",
            cn,
            "-ca-fingerprint",
            &fingerprint,
        ],
    );
    (ok && work.join("device.crt").exists(), text, work)
}

/// strongSwan's `pki --scep` for `cn`. 3DES: strongSwan 5.9.8 refuses AES
/// ("AES_CBC encryption algorithm not supported by CA") whatever GetCACaps
/// says.
fn strongswan(server: &Server, procedure: &str, cn: &str, password: &str) -> (bool, String, PathBuf) {
    let work = server.dir.join(format!("pki-{cn}-{password}"));
    std::fs::create_dir_all(&work).unwrap();
    let key = run(&work, "pki", &["--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]);
    assert!(key.0, "{}", key.1);
    let pem_start = key.1.find("-----BEGIN").unwrap();
    std::fs::write(work.join("device.key"), &key.1[pem_start..]).unwrap();
    let url = format!("{}/scep/{procedure}", server.url.trim_end_matches('/'));
    let dn = format!("CN={cn}");
    let (ok, text) = run(
        &work,
        "sh",
        &[
            "-c",
            &format!(
                "pki --scep --url {url} --in device.key --dn '{dn}' --san {cn} --password '{password}' \
                 --cacert-enc ../data/ca/ra.crt --cacert-sig ../data/ca/ra.crt --cacert ../data/ca/ca.crt \
                 --cipher des3 --outform pem > device.crt"
            ),
        ],
    );
    let issued = std::fs::metadata(work.join("device.crt")).map(|m| m.len() > 0).unwrap_or(false);
    (ok && issued, text, work)
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run_local(&dir, &["init"]);
    run_local(&dir, &["ca", "init", "--name", "Test CA"]);
    run_local(&dir, &["procedure", "add", "phones", "--domain", "corp", "--protocol", "scep"]);
    std::fs::write(dir.join("pw"), "s3cret").unwrap();
    for fqdn in ["phone1.example.com", "ss*.example.com"] {
        run_local(&dir, &["register", "--procedure", "phones", "--fqdn", fqdn, "--password-file", "pw"]);
    }
    (tmp, dir)
}

#[test]
fn micromdm_scepclient_enrolls_a_preregistered_device_once() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);

    let (ok, text, work) = scepclient(&server, "phones", "phone1.example.com", "s3cret");
    assert!(ok, "{text}\n{}", server.log());
    assert!(text.contains("pkiStatus=SUCCESS"), "{text}");
    let shown = describe(&work, "device.crt");
    assert!(shown.contains("subject=CN = phone1.example.com"), "{shown}");
    assert!(shown.contains("DNS:phone1.example.com"), "{shown}");
    assert!(shown.contains("issuer=CN = Test CA"), "{shown}");
    let (verified, why) = run(&work, "openssl", &["verify", "-CAfile", "../data/ca/ca.crt", "device.crt"]);
    assert!(verified, "{why}");

    // max_enrollments 1 (an exact FQDN): a second device with that name is refused.
    let (ok, text, _) = scepclient(&server, "phones", "phone1.example.com", "s3cret-again");
    assert!(!ok);
    assert!(text.contains("failInfo: badRequest"), "{text}");
    // Unregistered, and a wrong challenge password.
    let (ok, text, _) = scepclient(&server, "phones", "unknown.example.com", "s3cret");
    assert!(!ok);
    assert!(text.contains("failInfo: badRequest"), "{text}");
    let (ok, text, _) = scepclient(&server, "phones", "ss9.example.com", "wrong");
    assert!(!ok);
    assert!(text.contains("failInfo: badRequest"), "{text}");

    let enrollments = audited_enrollments(&dir);
    assert_eq!(
        enrollments.iter().map(AuditedEnrollment::decision).collect::<Vec<_>>(),
        vec![
            ("allowed", "matched"),
            ("denied", "no-registration"),
            ("denied", "no-registration"),
            ("denied", "bad-password")
        ]
    );
    assert!(enrollments.iter().all(|e| e.transaction.starts_with("scep:")), "{enrollments:?}");
}

#[test]
fn strongswan_pki_enrolls_several_devices_under_a_wildcard_and_refuses_others() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    for cn in ["ss1.example.com", "ss2.example.com"] {
        let (ok, text, work) = strongswan(&server, "phones", cn, "s3cret");
        assert!(ok, "{cn}: {text}\n{}", server.log());
        let shown = describe(&work, "device.crt");
        assert!(shown.contains(&format!("subject=CN = {cn}")), "{shown}");
        assert!(shown.contains(&format!("DNS:{cn}")), "{shown}");
    }
    let (ok, text, _) = strongswan(&server, "phones", "other.example.com", "s3cret");
    assert!(!ok, "{text}");
    assert!(text.contains("FAILURE") || text.contains("failed"), "{text}");
    let (ok, _, _) = strongswan(&server, "phones", "ss3.example.com", "wrong");
    assert!(!ok);
    let shown = run_local(&dir, &["show", "2", "--json"]);
    assert!(shown.contains("\"state\": \"open\""), "a wildcard stays open: {shown}");
}

#[test]
fn get_ca_caps_ca_cert_and_get_pki_operation() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let base = format!("{}/scep/phones", server.url.trim_end_matches('/'));
    let get = |query: &str| {
        let mut response = ureq::get(&format!("{base}?{query}")).call().unwrap();
        let media = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
        (media, response.body_mut().read_to_vec().unwrap())
    };
    let (media, caps) = get("operation=GetCACaps");
    assert_eq!(media, "text/plain");
    let caps = String::from_utf8(caps).unwrap();
    for cap in ["POSTPKIOperation", "SHA-256", "SHA-384", "SHA-512", "AES"] {
        assert!(caps.lines().any(|l| l == cap), "GetCACaps lacks {cap}: {caps}");
    }

    let (media, certs) = get("operation=GetCACert");
    assert_eq!(media, "application/x-x509-ca-ra-cert");
    let signed = cms::read_signed(&certs).unwrap();
    let names: Vec<String> =
        signed.certificates.iter().map(|c| c.subject_info().unwrap().common_name.unwrap()).collect();
    assert_eq!(names, vec!["Test CA SCEP RA", "Test CA"]);

    // A captured PKCSReq (encrypted to another server's RA) by GET: a signed
    // FAILURE answer, not an HTTP error.
    let message = base64::engine::general_purpose::STANDARD.encode(fixture("scep-pyscep-0.0.14-pkcsreq.der"));
    let encoded: String = message.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    let (media, answer) = get(&format!("operation=PKIOperation&message={encoded}"));
    assert_eq!(media, "application/x-pki-message");
    let reply = cms::read_signed(&answer).unwrap();
    reply.verify().unwrap();
    assert_eq!(reply.attribute_text(attr::MESSAGE_TYPE).unwrap().as_deref(), Some("3"));
    assert_eq!(reply.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("2"));
    assert_eq!(reply.attribute_text(attr::FAIL_INFO).unwrap().as_deref(), Some("2"));
    let request = cms::read_signed(&fixture("scep-pyscep-0.0.14-pkcsreq.der")).unwrap();
    assert_eq!(
        reply.attribute_octets(attr::RECIPIENT_NONCE).unwrap(),
        request.attribute_octets(attr::SENDER_NONCE).unwrap()
    );
    assert_eq!(
        reply.attribute_text(attr::TRANSACTION_ID).unwrap(),
        request.attribute_text(attr::TRANSACTION_ID).unwrap()
    );

    // Garbage is an HTTP 400 with a problem document.
    let bad = ureq::post(&format!("{base}?operation=PKIOperation")).send(&b"not cms"[..]);
    assert!(matches!(bad, Err(ureq::Error::StatusCode(400))), "{bad:?}");
}

#[test]
fn captured_scep_messages_parse() {
    // micromdm scepclient: BER (indefinite-length encryptedContent), SHA-1, DES.
    for name in ["scep-micromdm-scepclient-2.1.0-pkcsreq.der", "scep-pyscep-0.0.14-pkcsreq.der"] {
        let signed = cms::read_signed(&fixture(name)).unwrap();
        signed.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(signed.attribute_text(attr::MESSAGE_TYPE).unwrap().as_deref(), Some("19"), "{name}");
        assert!(signed.attribute_text(attr::TRANSACTION_ID).unwrap().is_some());
        assert!(signed.content.as_ref().is_some_and(|c| !c.is_empty()));
    }
    let rep = cms::read_signed(&fixture("scep-micromdm-scepserver-2.1.0-certrep.der")).unwrap();
    rep.verify().unwrap();
    assert_eq!(rep.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("0"));
    let caps = String::from_utf8(fixture("scep-micromdm-getcacaps.txt")).unwrap();
    let theirs: std::collections::BTreeSet<&str> = caps.lines().collect();
    let ours: std::collections::BTreeSet<&str> = prereg::enroll::scep::CAPABILITIES.lines().collect();
    for needed in ["POSTPKIOperation", "SHA-256", "AES", "DES3", "SCEPStandard"] {
        assert!(theirs.contains(needed) && ours.contains(needed), "{needed}");
    }
    let ca = prereg::pki::x509::Certificate::from_der(&fixture("scep-micromdm-getcacert.der")).unwrap();
    assert!(ca.not_after > ca.not_before);
    ca.public_key().unwrap();

    // Truncations are errors, never panics.
    let whole = fixture("scep-micromdm-scepclient-2.1.0-pkcsreq.der");
    for cut in [0, 1, 100, 1000, whole.len() - 1] {
        assert!(cms::read_signed(&whole[..cut]).is_err());
    }
}

/// A CSR for `cn` made by openssl, with the challenge password `s3cret`.
fn csr(dir: &Path, cn: &str) -> Vec<u8> {
    csr_naming(dir, cn, None)
}

/// [`csr`] asking for the subjectAltName `san` (openssl's syntax) too.
fn csr_naming(dir: &Path, cn: &str, san: Option<&str>) -> Vec<u8> {
    let extensions =
        san.map_or_else(String::new, |san| format!("req_extensions = ext\n[ext]\nsubjectAltName = {san}\n"));
    let config = format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n{extensions}[dn]\nCN = {cn}\n[attrs]\nchallengePassword = s3cret\n"
    );
    std::fs::write(dir.join("csr.cnf"), config).unwrap();
    let (ok, text) = run(
        dir,
        "openssl",
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "csr.key", "-config", "csr.cnf", "-outform",
            "DER", "-out", "csr.der",
        ],
    );
    assert!(ok, "{text}");
    std::fs::read(dir.join("csr.der")).unwrap()
}

/// A SCEP request built here the way a client builds one: `content`
/// enveloped for the RA, signed by a self-signed certificate of `signer_key`.
fn scep_request(dir: &Path, signer_key: &SigningKey, message_type: &str, tid: &str, content: &[u8]) -> Vec<u8> {
    scep_request_with(dir, signer_key, prereg::pki::keys::DigestAlg::Sha256, message_type, tid, content)
}

/// [`scep_request`], signed with `digest`.
fn scep_request_with(
    dir: &Path,
    signer_key: &SigningKey,
    digest: prereg::pki::keys::DigestAlg,
    message_type: &str,
    tid: &str,
    content: &[u8],
) -> Vec<u8> {
    use prereg::pki::{asn1, oid, x509};
    let now = prereg::registry::unix_now();
    let spki = signer_key.spki_der().unwrap();
    let name = x509::write_name(&[(oid::CN, "SCEP SIGNER")]);
    let template = x509::CertificateTemplate {
        subject: name.clone(),
        spki: &spki,
        not_before: now - 60,
        not_after: now + 3600,
        extensions: vec![],
    };
    let signer =
        x509::Certificate::from_der(&x509::sign_certificate(&template, &name, &[7], signer_key).unwrap()).unwrap();

    let ra_pem = std::fs::read_to_string(dir.join("data/ca/ra.crt")).unwrap();
    let ra = x509::Certificate::from_der(&x509::pem_blocks(&ra_pem, "CERTIFICATE").unwrap()[0]).unwrap();
    let enveloped = cms::envelope(content, &ra, cms::Cipher::Aes256).unwrap();
    let attributes = vec![
        cms::attribute(attr::MESSAGE_TYPE, &asn1::printable(message_type)),
        cms::attribute(attr::TRANSACTION_ID, &asn1::printable(tid)),
        cms::attribute(attr::SENDER_NONCE, &asn1::octet_string(&[9; 16])),
    ];
    cms::sign_with(digest, Some(&enveloped), &attributes, &signer, signer_key, &[&signer.der], now).unwrap()
}

fn post(server: &Server, message: &[u8]) -> cms::Signed {
    let reply = cms::read_signed(&post_raw(server, message)).unwrap();
    reply.verify().unwrap();
    reply
}

/// The CertRep as the server sent it (DER).
fn post_raw(server: &Server, message: &[u8]) -> Vec<u8> {
    let url = format!("{}/scep/phones?operation=PKIOperation", server.url.trim_end_matches('/'));
    let mut response = ureq::post(&url).content_type("application/x-pki-message").send(message).unwrap();
    response.body_mut().read_to_vec().unwrap()
}

/// OpenSSL-based clients verify every CertRep with `PKCS7_verify` or
/// `CMS_verify` before they read its status: a FAILURE with no
/// encapsulated content is refused there ("no content"), the client reports
/// the CA unreachable and retries, and each retry with a wrong password
/// counts toward the lockout. So a FAILURE signs an empty content (RFC 8894
/// §3.3.2), and both of OpenSSL's verifiers accept every kind of CertRep.
#[test]
fn every_cert_rep_verifies_with_openssl_cms_and_smime() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let key = SigningKey::generate_rsa();
    let success = post_raw(&server, &scep_request(&dir, &key, "19", "tid-ok", &csr(&dir, "phone1.example.com")));
    // SHA-384 and SHA-512, as GetCACaps offers them: verified, and answered
    // with the same digest.
    use prereg::pki::keys::DigestAlg;
    let sha384 = post_raw(
        &server,
        &scep_request_with(&dir, &key, DigestAlg::Sha384, "19", "tid-384", &csr(&dir, "ss384.example.com")),
    );
    let sha512 = post_raw(
        &server,
        &scep_request_with(&dir, &key, DigestAlg::Sha512, "19", "tid-512", &csr(&dir, "ss512.example.com")),
    );
    for (der, digest) in [(&sha384, DigestAlg::Sha384), (&sha512, DigestAlg::Sha512), (&success, DigestAlg::Sha256)] {
        let reply = cms::read_signed(der).unwrap();
        reply.verify().unwrap();
        assert_eq!(reply.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("0"));
        assert_eq!(reply.digest(), Some(digest));
    }
    // A name that is not registered, and a signer SCEP cannot answer (EC): two failures.
    let denied = post_raw(&server, &scep_request(&dir, &key, "19", "tid-no", &csr(&dir, "laptop9.example.com")));
    let ec = SigningKey::generate_p256();
    let bad_alg = post_raw(&server, &scep_request(&dir, &ec, "19", "tid-ec", &csr(&dir, "phone2.example.com")));
    for (what, der, status) in [
        ("success", &success, "0"),
        ("success-sha384", &sha384, "0"),
        ("success-sha512", &sha512, "0"),
        ("denied", &denied, "2"),
        ("badAlg", &bad_alg, "2"),
    ] {
        let reply = cms::read_signed(der).unwrap();
        reply.verify().unwrap();
        assert_eq!(reply.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some(status), "{what}");
        if status == "2" {
            // The failure says nothing but its failInfo: the content is empty.
            assert_eq!(reply.content.as_deref(), Some(&[][..]), "{what}");
        }
        let file = dir.join(format!("certrep-{what}.der"));
        std::fs::write(&file, der).unwrap();
        let file = file.to_str().unwrap();
        for tool in ["cms", "smime"] {
            let (ok, out) = run(
                &dir,
                "openssl",
                &[tool, "-verify", "-inform", "DER", "-in", file, "-noverify", "-out", "/dev/null"],
            );
            assert!(ok, "openssl {tool} -verify refuses the {what} CertRep: {out}");
        }
    }
}

/// The certificate of a SUCCESS reply, decrypted with the requester's key.
fn issued(reply: &cms::Signed, key: &SigningKey) -> Vec<u8> {
    assert_eq!(reply.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("0"));
    let (degenerate, _) = cms::decrypt_enveloped(reply.content.as_deref().unwrap(), key).unwrap();
    cms::read_signed(&degenerate).unwrap().certificates.remove(0).der
}

#[test]
fn a_resent_request_gets_the_same_certificate_once_and_an_ec_signer_is_refused_before_counting() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let key = SigningKey::generate_rsa();
    let request = scep_request(&dir, &key, "19", "tid-0001", &csr(&dir, "phone1.example.com"));

    let first = issued(&post(&server, &request), &key);
    let cert = prereg::pki::x509::Certificate::from_der(&first).unwrap();
    assert_eq!(cert.subject_info().unwrap().common_name.as_deref(), Some("phone1.example.com"));
    // Resent (RFC 8894 §3.3.1): the same certificate, and the one-time
    // registration is not counted twice (it would be refused if it were decided again).
    assert_eq!(issued(&post(&server, &request), &key), first);
    // CertPoll for the transaction: the same certificate.
    let poll = scep_request(&dir, &key, "20", "tid-0001", b"IssuerAndSubject (not read)");
    assert_eq!(issued(&post(&server, &poll), &key), first);
    // GetCert by issuer and serial number.
    let issuer_and_serial = prereg::pki::asn1::seq(&[&cert.issuer, &cert.serial]);
    let get = scep_request(&dir, &key, "21", "tid-get", &issuer_and_serial);
    assert_eq!(issued(&post(&server, &get), &key), first);
    // A new transaction for the used registration is refused.
    let again = post(&server, &scep_request(&dir, &key, "19", "tid-0002", &csr(&dir, "phone1.example.com")));
    assert_eq!(again.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("2"));
    assert_eq!(again.attribute_text(attr::FAIL_INFO).unwrap().as_deref(), Some("2"));

    // An EC signer could not receive the certificate: badAlg, and nothing decided.
    let ec = SigningKey::generate_p256();
    let refused = post(&server, &scep_request(&dir, &ec, "19", "tid-0003", &csr(&dir, "ss5.example.com")));
    assert_eq!(refused.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("2"));
    assert_eq!(refused.attribute_text(attr::FAIL_INFO).unwrap().as_deref(), Some("0"));

    let enrollments = audited_enrollments(&dir);
    assert_eq!(
        enrollments.iter().map(AuditedEnrollment::decision).collect::<Vec<_>>(),
        vec![("allowed", "matched"), ("denied", "no-registration")]
    );
}

#[test]
fn micromdm_scepclient_enrolls_over_https() {
    let (_tmp, dir) = setup();
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self"];
    let server = Server::start_with(&dir, "server.log", &args);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let (ok, text, work) = scepclient(&server, "phones", "phone1.example.com", "s3cret");
    assert!(ok, "{text}");
    assert!(describe(&work, "device.crt").contains("phone1.example.com"));
    let (ok, _, _) = scepclient(&server, "phones", "unknown.example.com", "s3cret");
    assert!(!ok);
}

/// Issue 19: a request the SCEP front refuses before the policy decides
/// (here, it names a device beside its own) is audited like a decision:
/// outcome `refused`, with its transaction, and nothing counted.
#[test]
fn a_request_refused_before_the_policy_decides_is_audited() {
    let (_tmp, dir) = setup();
    let server = Server::start(&dir);
    let key = SigningKey::generate_rsa();
    let csr = csr_naming(&dir, "phone1.example.com", Some("DNS:phone1.example.com,DNS:bank.example.net"));
    let refused = post(&server, &scep_request(&dir, &key, "19", "tid-names", &csr));
    assert_eq!(refused.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("2"));
    assert_eq!(refused.attribute_text(attr::FAIL_INFO).unwrap().as_deref(), Some("2"));
    let enrollments = audited_enrollments(&dir);
    assert_eq!(enrollments.len(), 1, "{enrollments:?}");
    assert_eq!(enrollments[0].outcome, "refused");
    assert_eq!(enrollments[0].transaction, "scep:tid-names");
    let records = crate::common::audit_records(&dir);
    let record = records.iter().find(|r| r["action"] == "enroll").unwrap();
    assert!(record["detail"].as_str().unwrap().contains("bank.example.net"), "{record}");
    assert_eq!(record["domain"], "corp", "{record}");
    // The registration is still open: the refused request counted nothing.
    let again =
        post(&server, &scep_request(&dir, &key, "19", "tid-good", &csr_naming(&dir, "phone1.example.com", None)));
    assert_eq!(again.attribute_text(attr::PKI_STATUS).unwrap().as_deref(), Some("0"));
}
