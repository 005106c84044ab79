//! Issue 20: prereg as step-ca's webhook. A contract test: the bodies and
//! headers exactly as step-ca sends them, from smallstep/certificates:
//!
//! - `webhook/types.go`: `RequestBody` (`timestamp`, `provisionerName`,
//!   `attestationData.permanentIdentifier`, `x509Certificate` (an
//!   `x509util.Certificate`: `subject.commonName`, `subject.serialNumber`,
//!   `dnsNames`, `ipAddresses`, ...), `x509CertificateRequest`,
//!   `scepChallenge`, `scepTransactionID`, `scepErrorCode`) and
//!   `ResponseBody` (`allow`);
//! - `authority/provisioner/webhook.go`, `DoWithContext`: the secret is
//!   `base64.StdEncoding.DecodeString(w.Secret)`; `h := hmac.New(sha256.New,
//!   secret); h.Write(reqBytes); sig := h.Sum(nil)`; the headers
//!   `X-Smallstep-Signature: hex(sig)` and `X-Smallstep-Webhook-ID: w.ID`;
//!   any status of 400 or more is a failure.
//!
//! Allow and deny for each kind, a bad signature, a replayed body, a stale
//! timestamp, a wildcard registration covering two devices, and a
//! certificate that names one name more than registered.

use serde_json::{Value, json};

use crate::common::{Server, audit_records, run_local};

struct StepCa {
    url: String,
    secret: Vec<u8>,
    agent: ureq::Agent,
}

impl StepCa {
    /// POSTs `body` as step-ca does; (status, answer).
    fn call(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = prereg::service::webhooks::signature(&self.secret, &bytes);
        self.send(&bytes, &signature)
    }

    fn send(&self, bytes: &[u8], signature: &str) -> (u16, Value) {
        self.try_send(bytes, signature).unwrap()
    }

    /// [`StepCa::send`]; an error if the server closed the connection first.
    fn try_send(&self, bytes: &[u8], signature: &str) -> Result<(u16, Value), ureq::Error> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Smallstep-Signature", signature)
            .header("X-Smallstep-Webhook-ID", "3c5b1f0e-8f3e-4d1a-9a57-6a1f0c2b7d11")
            .send(bytes)?;
        let status = response.status().as_u16();
        let value = response.body_mut().read_json().unwrap_or(Value::Null);
        Ok((status, value))
    }
}

/// Go's `time.Now()` as `encoding/json` marshals it (RFC 3339, nanoseconds:
/// two calls never have the same).
fn timestamp(offset: i64) -> String {
    static NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(123_456_789);
    let nanos = NANOS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = prereg::registry::unix_now() as i64 + offset;
    let der = prereg::pki::asn1::generalized_time(now as u64);
    let text = String::from_utf8(der[2..].to_vec()).unwrap();
    format!(
        "{}-{}-{}T{}:{}:{}.{nanos:09}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[8..10],
        &text[10..12],
        &text[12..14]
    )
}

/// An AUTHORIZING body for an X.509 certificate.
fn certificate(cn: &str, dns: &[&str], serial: &str, permanent_identifier: Option<&str>) -> Value {
    let mut body = json!({
        "timestamp": timestamp(0),
        "provisionerName": "acme",
        "x509Certificate": {
            "version": 3,
            "subject": { "commonName": cn, "serialNumber": serial },
            "rawSubject": null,
            "issuer": { "commonName": "Smallstep Intermediate CA" },
            "serialNumber": "173263189461728519011836",
            "dnsNames": dns,
            "emailAddresses": null,
            "ipAddresses": null,
            "uris": null,
            "keyUsage": ["digitalSignature"],
            "extKeyUsage": ["serverAuth", "clientAuth"],
            "publicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
            "publicKeyAlgorithm": "ECDSA",
            "notBefore": timestamp(0),
            "notAfter": timestamp(86_400),
        },
    });
    if let Some(id) = permanent_identifier {
        body["attestationData"] = json!({ "permanentIdentifier": id });
    }
    body
}

fn setup() -> (tempfile::TempDir, Server, StepCa) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let add = ["procedure", "add", "devices", "--domain", "corp", "--protocol", "acme"];
    run_local(dir, &[&add[..], &["--require-preregistration", "true"]].concat());
    run_local(
        dir,
        &["procedure", "add", "phones", "--domain", "corp", "--protocol", "other", "--require-preregistration", "true"],
    );
    run_local(dir, &["register", "--procedure", "devices", "--fqdn", "dev1.example.com", "--serial", "SN-0001"]);
    run_local(dir, &["register", "--procedure", "devices", "--fqdn", "*.lab.example.com", "--max-enrollments", "10"]);
    run_local(dir, &["register", "--procedure", "devices", "--fqdn", "dev2.example.com", "--serial", "SN-0002"]);
    std::fs::write(dir.join("pw"), "s3cret").unwrap();
    run_local(dir, &["register", "--procedure", "phones", "--fqdn", "phone1.example.com", "--password-file", "pw"]);
    // (registrations: 1 dev1, 2 *.lab, 3 dev2, 4 phone1)
    let out =
        run_local(dir, &["caller", "add", "stepca", "--procedures", "devices,phones", "--webhook", "--no-secret"]);
    let line = out.lines().find(|l| l.starts_with("webhook secret ")).unwrap_or_else(|| panic!("{out}"));
    let text = line.trim_start_matches("webhook secret ").split(' ').next().unwrap();
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    assert_eq!(secret.len(), 32);
    let server = Server::start_with(
        dir,
        "server.log",
        &["--data", "data", "serve", "--listen", "127.0.0.1:0", "--failure-burst", "1000"],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}/webhooks/step-ca/devices", server.url.trim_end_matches('/'));
    (tmp, server, StepCa { url, secret, agent })
}

fn registration(dir: &std::path::Path, id: u64) -> Value {
    serde_json::from_str(&run_local(dir, &["show", &id.to_string(), "--json"])).unwrap()
}

#[test]
fn authorizing_decides_counts_and_audits_as_the_caller() {
    let (tmp, _server, step) = setup();
    let dir = tmp.path();
    // The device, its serial attested (ACME device-attest-01): allowed, counted.
    let body = certificate("dev1.example.com", &["dev1.example.com"], "", Some("SN-0001"));
    assert_eq!(step.call(&body), (200, json!({ "allow": true })));
    assert_eq!(registration(dir, 1)["enrollments"], 1);
    // The one-time registration is used: the next device with that name is refused.
    let body = certificate("dev1.example.com", &["dev1.example.com"], "", Some("SN-0001"));
    assert_eq!(step.call(&body), (200, json!({ "allow": false })));
    // Another serial than registered.
    let body = certificate("dev2.example.com", &["dev2.example.com"], "SN-9999", None);
    assert_eq!(step.call(&body).1, json!({ "allow": false }));
    // A wildcard covers two devices, each its own certificate.
    for device in ["a.lab.example.com", "b.lab.example.com"] {
        let body = certificate(device, &[device], "", None);
        assert_eq!(step.call(&body).1, json!({ "allow": true }), "{device}");
    }
    assert_eq!(registration(dir, 2)["enrollments"], 2);
    // One name more than registered: refused, nothing counted, audited.
    let body = certificate("c.lab.example.com", &["c.lab.example.com", "bank.example.net"], "", None);
    assert_eq!(step.call(&body).1, json!({ "allow": false }));
    assert_eq!(registration(dir, 2)["enrollments"], 2);
    // Both names covered by the same wildcard: one certificate, allowed.
    let body = certificate("d.lab.example.com", &["d.lab.example.com", "e.lab.example.com"], "", None);
    assert_eq!(step.call(&body).1, json!({ "allow": true }));

    let records = audit_records(dir);
    let enrolls: Vec<&Value> = records.iter().filter(|r| r["action"] == "enroll").collect();
    assert!(enrolls.iter().all(|r| r["actor"] == "caller:stepca"), "{enrolls:?}");
    let request: Value = serde_json::from_str(enrolls[0]["request"].as_str().unwrap()).unwrap();
    assert_eq!(request["transaction"], "step-ca:acme:3c5b1f0e-8f3e-4d1a-9a57-6a1f0c2b7d11");
    let outcomes: Vec<(&str, &str)> =
        enrolls.iter().map(|r| (r["outcome"].as_str().unwrap(), r["reason"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        outcomes,
        [
            ("allowed", "matched"),
            ("denied", "no-registration"),
            ("denied", "serial-mismatch"),
            ("allowed", "matched"),
            ("allowed", "matched"),
            ("refused", "no-registration"),
            ("allowed", "matched"),
        ]
    );
}

#[test]
fn the_signature_the_clock_and_replays_are_checked_before_anything_is_decided() {
    let (tmp, _server, step) = setup();
    let dir = tmp.path();
    let body = certificate("a.lab.example.com", &["a.lab.example.com"], "", None);
    let bytes = serde_json::to_vec(&body).unwrap();
    // Another key; a signature of other bytes; none; the legacy form of
    // early step-ca versions (the body followed by the HMAC of nothing),
    // which proves nothing and is refused.
    let other = prereg::service::webhooks::signature(&[7u8; 32], &bytes);
    let of_other_bytes = prereg::service::webhooks::signature(&step.secret, b"{}");
    let legacy = {
        let empty = prereg::service::webhooks::signature(&step.secret, b"");
        format!("{}{empty}", prereg::audit::hex(&bytes))
    };
    for signature in [other.as_str(), of_other_bytes.as_str(), "", legacy.as_str()] {
        let (status, problem) = step.send(&bytes, signature);
        assert_eq!(status, 401, "{problem}");
    }
    // A body within the service's limit is read (this one is no webhook
    // body); one over 1 MiB is refused before its signature is looked at.
    let big = vec![b' '; 200 << 10];
    assert_eq!(step.send(&big, &prereg::service::webhooks::signature(&step.secret, &big)).0, 400);
    let too_big = vec![b' '; (1 << 20) + 1];
    // 413, or the connection closed while the body was still being sent. On
    // an agent of its own: the server closes that connection, which must
    // not go back to the pool the later calls use.
    let lone = StepCa {
        url: step.url.clone(),
        secret: step.secret.clone(),
        agent: ureq::Agent::config_builder().http_status_as_error(false).build().into(),
    };
    let refused = lone.try_send(&too_big, "00").map(|(status, _)| status);
    assert!(matches!(refused, Ok(413) | Err(_)), "{refused:?}");
    // A stale timestamp (step-ca stamps each call).
    let mut stale = body.clone();
    stale["timestamp"] = json!(timestamp(-3600));
    assert_eq!(step.call(&stale).0, 422);
    let mut garbled = body.clone();
    garbled["timestamp"] = json!("yesterday");
    assert_eq!(step.call(&garbled).0, 422);
    // The same call twice: the second is a replay.
    assert_eq!(step.call(&body), (200, json!({ "allow": true })));
    let (status, problem) = step.call(&body);
    assert_eq!((status, problem["type"].as_str()), (409, Some("urn:prereg:problem:replayed-request")));
    assert_eq!(registration(dir, 2)["enrollments"], 1, "decided once");
    // A procedure the caller does not list.
    run_local(dir, &["procedure", "add", "elsewhere", "--domain", "corp", "--protocol", "acme"]);
    let elsewhere = StepCa {
        url: step.url.replace("/devices", "/elsewhere"),
        secret: step.secret.clone(),
        agent: step.agent.clone(),
    };
    let mut fresh = body.clone();
    fresh["timestamp"] = json!(timestamp(1));
    assert_eq!(elsewhere.call(&fresh).0, 401);
    // A disabled caller's secret is refused.
    run_local(dir, &["caller", "disable", "stepca"]);
    fresh["timestamp"] = json!(timestamp(2));
    assert_eq!(step.call(&fresh).0, 401);
}

#[test]
fn scep_challenges_are_real_password_checks_and_notifications_are_audited() {
    let (tmp, _server, step) = setup();
    let dir = tmp.path();
    let phones =
        StepCa { url: step.url.replace("/devices", "/phones"), secret: step.secret.clone(), agent: step.agent.clone() };
    let challenge = |password: &str, id: &str| {
        json!({
            "timestamp": timestamp(0),
            "provisionerName": "scep",
            "x509CertificateRequest": {
                "subject": { "commonName": "phone1.example.com" },
                "dnsNames": ["phone1.example.com"],
                "publicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
                "publicKeyAlgorithm": "ECDSA",
            },
            "scepChallenge": password,
            "scepTransactionID": id,
        })
    };
    // A wrong challenge: refused, and a failure counted toward the lockout.
    assert_eq!(phones.call(&challenge("guessed", "tx-1")), (200, json!({ "allow": false })));
    assert_eq!(registration(dir, 4)["failed_attempts"], 1);
    // The registration's password: allowed, counted.
    assert_eq!(phones.call(&challenge("s3cret", "tx-2")), (200, json!({ "allow": true })));
    assert_eq!(registration(dir, 4)["enrollments"], 1);
    // NOTIFYING: step-ca reports the transaction's outcome.
    let notice = json!({ "timestamp": timestamp(0), "provisionerName": "scep", "scepTransactionID": "tx-2" });
    assert_eq!(phones.call(&notice), (200, json!({ "allow": true })));
    let failure = json!({
        "timestamp": timestamp(1),
        "provisionerName": "scep",
        "scepTransactionID": "tx-3",
        "scepErrorCode": 2,
        "scepErrorDescription": "badRequest",
    });
    assert_eq!(phones.call(&failure).1, json!({ "allow": true }));
    let notices: Vec<String> = audit_records(dir)
        .into_iter()
        .filter(|r| r["action"] == "webhook.notify")
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(notices.len(), 2);
    assert!(notices[0].contains("tx-2") && notices[1].contains("failed: 2 badRequest"), "{notices:?}");
}

/// step-ca presents its own TLS client certificate unless told not to: with
/// its root given to `serve --tls-client-ca`, the handshake takes it (the
/// call is still proven by its HMAC); a certificate of a CA not given is
/// refused in the handshake.
#[test]
fn step_cas_own_client_certificate_is_taken_when_its_root_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A root like step-ca's, and the leaf it would present; another root's leaf.
    std::fs::write(dir.join("leaf.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["step", "other"] {
        crate::common::openssl_root_ca(dir, &format!("{name}-root"), &format!("/CN={name} Root CA"));
        crate::common::openssl_issue(dir, name, "/CN=step-ca", &format!("{name}-root"), "leaf.ext");
    }
    run_local(dir, &["init"]);
    run_local(dir, &["ca", "init", "--name", "Test CA"]);
    let add = ["procedure", "add", "devices", "--domain", "corp", "--protocol", "acme"];
    run_local(dir, &[&add[..], &["--require-preregistration", "true"]].concat());
    run_local(dir, &["register", "--procedure", "devices", "--fqdn", "*.lab.example.com", "--max-enrollments", "10"]);
    let out = run_local(dir, &["caller", "add", "stepca", "--procedures", "devices", "--webhook", "--no-secret"]);
    let text = out.lines().find_map(|l| l.strip_prefix("webhook secret ")).unwrap().split(' ').next().unwrap();
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self", "--tls-client-ca", "step-root.crt"];
    let server = Server::start_with(dir, "server.log", &args);
    let url = format!("{}/webhooks/step-ca/devices", server.url.trim_end_matches('/'));
    let call = |leaf: &str, device: &str| {
        let body = serde_json::to_vec(&certificate(device, &[device], "", None)).unwrap();
        std::fs::write(dir.join("body.json"), &body).unwrap();
        let signature = format!("X-Smallstep-Signature: {}", prereg::service::webhooks::signature(&secret, &body));
        let (cert, key) = (format!("{leaf}.crt"), format!("{leaf}.key"));
        std::process::Command::new("curl")
            .current_dir(dir)
            .args([
                "-s",
                "--cacert",
                "data/ca/ca.crt",
                "--cert",
                &cert,
                "--key",
                &key,
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-H", &signature, "--data-binary", "@body.json", &url])
            .output()
            .unwrap()
    };
    let taken = call("step", "a.lab.example.com");
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    assert_eq!(String::from_utf8_lossy(&taken.stdout), r#"{"allow":true}"#);
    let refused = call("other", "b.lab.example.com");
    assert!(
        !refused.status.success(),
        "a client certificate of another CA got through: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
}

/// The secret step-ca made: `step ca provisioner webhook add` prints a
/// "Signing Secret" of 64 random bytes in standard base64
/// (smallstep/certificates, `authority/admin/api/webhook.go`). prereg
/// imports it (`caller add --webhook-secret-file`) and takes step-ca's calls
/// signed with it; the attacker's weak or garbled secrets are refused,
/// naming the file.
#[test]
fn a_secret_step_ca_made_is_imported_and_weak_ones_are_refused() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let add = ["procedure", "add", "devices", "--domain", "corp", "--protocol", "acme"];
    run_local(dir, &[&add[..], &["--require-preregistration", "true"]].concat());
    run_local(dir, &["register", "--procedure", "devices", "--fqdn", "*.lab.example.com", "--max-enrollments", "10"]);
    let secret: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    let text = base64::engine::general_purpose::STANDARD.encode(&secret);
    let add_caller = |name: &str, file: &str| {
        crate::common::prereg_command(dir)
            .args(["--data", "data", "caller", "add", name, "--procedures", "devices", "--no-secret"])
            .args(["--webhook-secret-file", file])
            .output()
            .unwrap()
    };
    for (file, content, wanted) in [
        ("short.txt", base64::engine::general_purpose::STANDARD.encode([7u8; 16]), "16 bytes once decoded"),
        ("garbled.txt", "not base64!".into(), "not standard base64"),
        ("empty.txt", "\n".into(), "the file is empty"),
    ] {
        std::fs::write(dir.join(file), content).unwrap();
        let out = add_caller("weak", file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("--webhook-secret-file {file}: {wanted}")), "{err}");
    }
    let out = add_caller("weak", "missing.txt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--webhook-secret-file missing.txt"));

    std::fs::write(dir.join("step-secret.txt"), format!("{text}\n")).unwrap();
    let out = add_caller("stepca", "step-secret.txt");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains("webhook secret imported"), "{shown}");
    assert!(!shown.contains(&text), "an imported secret is not printed back");

    let server = Server::start_with(dir, "server.log", &["--data", "data", "serve", "--listen", "127.0.0.1:0"]);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}/webhooks/step-ca/devices", server.url.trim_end_matches('/'));
    let step_ca = StepCa { url: url.clone(), secret, agent: agent.clone() };
    let (status, answer) = step_ca.call(&certificate("a.lab.example.com", &["a.lab.example.com"], "", None));
    assert_eq!((status, &answer), (200, &json!({ "allow": true })));
    // Signed with another 64-byte key: refused.
    let forger = StepCa { url, secret: vec![0x5a; 64], agent };
    let (status, _) = forger.call(&certificate("b.lab.example.com", &["b.lab.example.com"], "", None));
    assert_eq!(status, 401);
}
