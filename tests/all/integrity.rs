//! Smaller holes of issue 15, tried as an attacker would against `prereg
//! serve` and the CLI: names longer than DNS allows, a data folder left
//! readable by others with an upload in it, an officer added without saying
//! which domains.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Server, audit_records, prereg_command, run_local};

/// What a JSON POST to `server` got back.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    text: String,
}

/// POSTs `body` as JSON to `path` on `server` with the `Authorization`
/// value `authorization`, whatever the status.
fn post_json(server: &Server, authorization: &str, path: &str, body: &serde_json::Value) -> Answer {
    let url = format!("{}{path}", server.url.trim_end_matches('/'));
    let response = ureq::post(&url)
        .header("authorization", authorization)
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap_or_default().to_owned());
    Answer { status, retry_after, text: response.into_body().read_to_string().unwrap_or_default() }
}

fn audit_length(dir: &std::path::Path) -> usize {
    audit_records(dir).len()
}

fn database_size(dir: &std::path::Path) -> u64 {
    ["prereg.sqlite3", "prereg.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join("data").join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn names_longer_than_dns_allows_are_refused_before_anything_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    let server = Server::start(dir);
    let auth = format!("Bearer {}", server.add_caller("front", &["routers"]));
    let post = |fqdn: &str| {
        let answer = post_json(
            &server,
            &auth,
            "/v1/decisions/enroll",
            &serde_json::json!({ "procedure": "routers", "fqdn": fqdn }),
        );
        (answer.status, answer.text)
    };
    // An ordinary unregistered name is decided and audited. (422: a field is
    // invalid, and the answer names it.)
    let before = audit_length(dir);
    assert_eq!(post("nobody.example.com").0, 200);
    assert_eq!(audit_length(dir), before + 1);

    // 100 calls (a CA caller relaying what a device sent) with a 250 KB name, a 254-octet name and a 64-octet
    // label: refused naming the field, no audit record, the database does not grow.
    let size = database_size(dir);
    let huge = format!("{}.example.com", "a.".repeat(125_000));
    for _ in 0..100 {
        let (status, text) = post(&huge);
        assert_eq!(status, 422, "{text}");
        assert!(text.contains("fqdn") && text.contains("at most 253"), "{text}");
    }
    let long_name = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62));
    assert_eq!(long_name.len(), 254);
    assert_eq!(post(&long_name).0, 422);
    let (status, text) = post(&format!("{}.example.com", "l".repeat(64)));
    assert_eq!(status, 422);
    assert!(text.contains("at most 63"), "{text}");
    assert_eq!(audit_length(dir), before + 1);
    assert!(database_size(dir) < size + 64 * 1024, "the database grew from {size} to {}", database_size(dir));
    // 253 octets are fine (decided, no-registration).
    let longest = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
    assert_eq!(post(&longest).0, 200);
}

#[test]
fn start_up_tightens_the_data_folder_and_removes_leftover_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["ca", "init"]);
    let data = dir.join("data");
    // A folder restored from a backup with loose modes and an upload left
    // behind by a killed process (it may hold plaintext passwords).
    std::fs::create_dir_all(data.join("imports")).unwrap();
    std::fs::write(data.join("imports/upload-1234"), "fqdn,password\na.example.com,hunter2\n").unwrap();
    for (path, mode) in [
        (data.clone(), 0o755),
        (data.join("imports"), 0o777),
        (data.join("prereg.sqlite3"), 0o644),
        (data.join("officer.key"), 0o644),
        (data.join("sealing.key"), 0o644),
        (data.join("ca/ca.key"), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let server = Server::start(dir);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("imports")), 0o700);
    for file in ["prereg.sqlite3", "officer.key", "sealing.key", "ca/ca.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert!(!data.join("imports/upload-1234").exists());
    assert!(server.log().contains("prereg.sqlite3 -> 600"), "{}", server.log());
}

#[test]
fn an_officer_is_added_only_with_the_domains_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["officer", "keygen", "--out", "bob.key"]);
    // No --domains: refused (it used to mean every domain).
    let out = prereg_command(dir)
        .args(["--data", "data", "officer", "add", "bob", "--public-key", "bob.key.pub"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--domains"), "{}", String::from_utf8_lossy(&out.stderr));
    run_local(dir, &["officer", "add", "bob", "--public-key", "bob.key.pub", "--domains", "corp"]);
    let listed = run_local(dir, &["officer", "list", "--json"]);
    let officers: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let bob = officers.as_array().unwrap().iter().find(|o| o["name"] == "bob").unwrap();
    assert_eq!(bob["domains"], serde_json::json!(["corp"]));
    // Disabled: bob's key signs nothing more, and the audit log says who did it.
    run_local(dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    run_local(dir, &["--key", "bob.key", "register", "--procedure", "routers", "--fqdn", "a.example.com"]);
    assert!(run_local(dir, &["officer", "disable", "bob"]).contains("disabled officer:bob"));
    let out = prereg_command(dir)
        .args(["--data", "data", "--key", "bob.key", "register", "--procedure", "routers", "--fqdn", "b.example.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was disabled"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run_local(dir, &["audit", "verify"]).contains("intact"));
}

#[test]
fn a_flood_of_wrong_passwords_does_not_turn_a_right_one_into_a_policy_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["procedure", "add", "meters", "--domain", "grid", "--protocol", "scep"]);
    std::fs::write(dir.join("right"), "right horse").unwrap();
    let register = |fqdn: &str, file: &str| {
        let args = ["register", "--procedure", "meters", "--fqdn", fqdn, "--password-file", file];
        run_local(dir, &[&args[..], &["--max-enrollments", "1000"]].concat());
    };
    register("good.example.net", "right");
    for i in 0..8 {
        std::fs::write(dir.join(format!("pw{i}")), format!("secret {i}")).unwrap();
        register(&format!("w{i}.example.net"), &format!("pw{i}"));
    }
    // Many failures from one address: the per-address limit is not what is tested here.
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--failure-burst", "1000"];
    let server = Server::start_with(dir, "server.log", &args);
    let auth = format!("Bearer {}", server.add_caller("front", &["meters"]));
    let enroll = |fqdn: String, password: &'static str| {
        let body = serde_json::json!({ "procedure": "meters", "fqdn": fqdn, "password": password });
        let answer = post_json(&server, &auth, "/v1/decisions/enroll", &body);
        (answer.status, answer.text)
    };
    // 32 wrong-password attempts on eight registrations (four each,
    // below the lockout) while eight clients enroll with the right password.
    let answers: Vec<(bool, u16, String)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 0..8 {
            let enroll = &enroll;
            handles.push(s.spawn(move || {
                (0..4).map(|_| (false, enroll(format!("w{i}.example.net"), "wrong"))).collect::<Vec<_>>()
            }));
            handles.push(s.spawn(move || vec![(true, enroll("good.example.net".into(), "right horse"))]));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .map(|(right, (status, text))| (right, status, text))
            .collect()
    });
    let mut matched = 0;
    for (right, status, text) in &answers {
        assert!(!text.contains("policy-error"), "{text}");
        match (right, status) {
            (true, 200) => {
                assert!(text.contains("\"reason\":\"matched\""), "{text}");
                matched += 1;
            }
            (false, 200) => assert!(text.contains("\"reason\":\"bad-password\""), "{text}"),
            // The pool of checks was full: nothing decided, try again.
            (_, 503) => assert!(text.contains("try again"), "{text}"),
            other => panic!("{other:?}: {text}"),
        }
    }
    assert!(matched >= 4, "{matched} of 8 right passwords matched: {answers:?}");
}

#[test]
fn a_password_check_does_not_count_against_the_policy_deadline() {
    // A deadline far shorter than one argon2id check (19 MiB, 2 passes): the
    // guest's own time fits, and the host's check is given back to it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["procedure", "add", "meters", "--domain", "grid", "--protocol", "scep"]);
    std::fs::write(dir.join("pw"), "right horse").unwrap();
    run_local(dir, &["register", "--procedure", "meters", "--fqdn", "m1.example.net", "--password-file", "pw"]);
    let out = prereg_command(dir)
        .args(["--data", "data", "--policy-deadline-ms", "10", "enroll", "--procedure", "meters"])
        .args(["--fqdn", "m1.example.net", "--password-file", "pw"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("ALLOW matched"), "{text}");
}

#[test]
fn nothing_the_api_returns_can_test_a_password_guess_offline() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["procedure", "add", "meters", "--domain", "grid", "--protocol", "scep"]);
    let server = Server::start(dir);
    let remote = |args: &[&str]| {
        let out = prereg_command(dir).args(["--data", "data", "--server", &server.url]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // A 4-digit password registered through the API, and another in a
    // one-row import (the way the RA page sends one).
    std::fs::write(dir.join("pw"), "4711").unwrap();
    remote(&["register", "--procedure", "meters", "--fqdn", "m1.example.net", "--password-file", "pw"]);
    let csv = "fqdn,password\nm2.example.net,0815\n";
    std::fs::write(dir.join("one.csv"), csv).unwrap();
    remote(&["import", "one.csv", "--procedure", "meters"]);
    run_local(dir, &["register", "--procedure", "meters", "--fqdn", "m3.example.net", "--password-file", "pw"]);

    let officer = server.officer_authorization();
    let get = |path: &str| {
        let url = format!("{}{path}", server.url.trim_end_matches('/'));
        ureq::get(&url).header("authorization", &officer).call().unwrap().into_body().read_to_string().unwrap()
    };
    let published = format!("{}{}", get("/v1/audit?limit=1000"), get("/v1/imports"));
    assert!(!published.contains("$argon2"), "a password hash is published: {published}");
    for password in ["4711", "0815"] {
        assert!(!published.contains(&format!("\"{password}\"")), "{published}");
    }
    // The one-row file's SHA-256 (what a guesser of its password would
    // recompute) is nowhere, under any guess of the 4-digit password.
    let digest = |text: &str| prereg::audit::hex(&sha2::Sha256::digest(text.as_bytes()));
    assert!(!published.contains(&digest(csv)), "the file's SHA-256 is published");
    assert!((0..10_000).all(|pin| !published.contains(&digest(&format!("fqdn,password\nm2.example.net,{pin:04}\n")))));

    // A request that signs a plain SHA-256 is refused, naming the field.
    let key = server.admin_key();
    let client = server.client();
    let plain = prereg::signing::WriteRequest::ImportCsv {
        procedure: "meters".into(),
        sha256: digest(csv),
        digest_key: None,
        partial: false,
        dry_run: false,
    };
    // The signed request alone (it is refused before any file is read).
    let jws = crate::common::sign_for(&client, &key, plain);
    let flattened = serde_json::to_string(&prereg::service::signed::FlattenedJws::from_compact(&jws).unwrap()).unwrap();
    let body = format!(
        "--b7\r\ncontent-disposition: form-data; name=\"request\"\r\ncontent-type: application/json\r\n\r\n\
         {flattened}\r\n--b7--\r\n"
    );
    let url = format!("{}/v1/imports", server.url.trim_end_matches('/'));
    let response = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .content_type("multipart/form-data; boundary=b7")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let text = response.into_body().read_to_string().unwrap();
    assert!(text.contains("digest_key"), "{text}");
}

#[test]
fn failed_enrollments_are_limited_per_client_address_across_protocols() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["ca", "init"]);
    run_local(dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "cmp"]);
    run_local(dir, &["procedure", "add", "phones", "--domain", "corp", "--protocol", "scep"]);
    let args =
        ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--failure-burst", "5", "--failures-per-minute", "1"];
    let server = Server::start_with(dir, "server.log", &args);
    let auth = format!("Bearer {}", server.add_caller("front", &["routers", "phones"]));
    let base = server.url.trim_end_matches('/').to_owned();
    let enroll = |fqdn: &str| {
        let body = serde_json::json!({ "procedure": "phones", "fqdn": fqdn, "password": "guess" });
        let answer = post_json(&server, &auth, "/v1/decisions/enroll", &body);
        (answer.status, answer.retry_after, answer.text)
    };
    // Five guesses at five names: decided (and audited) as usual.
    for i in 0..5 {
        let (status, _, text) = enroll(&format!("d{i}.example.com"));
        assert_eq!(status, 200, "{text}");
    }
    // Then this address is refused before anything is decided, with Retry-After.
    let audited = audit_records(dir).len();
    let (status, retry, text) = enroll("d9.example.com");
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("too-many-failures"), "{text}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s))));
    assert_eq!(audit_records(dir).len(), audited, "nothing decided");
    // The same bucket holds for CMP from this address.
    let url = format!("{base}/.well-known/cmp/p/routers");
    let response = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .content_type("application/pkixcmp")
        .send(&b"\x30\x00"[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
}

#[test]
fn fifty_dry_run_guesses_reveal_nothing_and_real_failures_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["procedure", "add", "meters", "--domain", "grid", "--protocol", "scep"]);
    std::fs::write(dir.join("pw"), "4711").unwrap();
    run_local(dir, &["register", "--procedure", "meters", "--fqdn", "m1.example.net", "--password-file", "pw"]);
    let server = Server::start(dir);
    let auth = format!("Bearer {}", server.add_caller("front", &["meters"]));
    let post = |path: &str, password: String| {
        let body = serde_json::json!({ "procedure": "meters", "fqdn": "m1.example.net", "password": password });
        post_json(&server, &auth, path, &body).text
    };
    // 49 wrong guesses and the right one: one answer for all, nothing counted.
    let answers: std::collections::BTreeSet<String> =
        (4690..4740).map(|pin| post("/v1/decisions/check", format!("{pin:04}"))).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer = answers.into_iter().next().unwrap();
    assert!(answer.contains("\"reason\":\"password-required\"") && answer.contains("would check it"), "{answer}");
    let shown = run_local(dir, &["show", "1", "--json"]);
    assert!(shown.contains("\"failed_attempts\": 0") && shown.contains("\"state\": \"open\""), "{shown}");
    // Real decisions check it, and five failures in a row lock the registration.
    for pin in ["0000", "1111", "2222", "3333", "4444"] {
        assert!(post("/v1/decisions/enroll", pin.into()).contains("\"reason\":\"bad-password\""));
    }
    assert!(post("/v1/decisions/enroll", "4711".into()).contains("\"reason\":\"locked\""));
    assert!(run_local(dir, &["show", "1", "--json"]).contains("\"state\": \"locked\""));
}

#[test]
fn an_oversized_request_part_is_refused_before_it_is_held() {
    // Issue 16 (limits): the signed `request` part of an upload is at most
    // 64 KiB, read a chunk at a time, before any signature check.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let server = Server::start(dir);
    let huge = "x".repeat(1 << 20);
    let body = format!(
        "--b7\r\ncontent-disposition: form-data; name=\"request\"\r\n\r\n{huge}\r\n--b7\r\n\
         content-disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nfqdn\na.example.com\n\r\n--b7--\r\n"
    );
    for path in ["/v1/imports", "/v1/policies"] {
        let url = format!("{}{path}", server.url.trim_end_matches('/'));
        let response = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .content_type("multipart/form-data; boundary=b7")
            .send(body.as_bytes());
        match response {
            Ok(response) => {
                assert_eq!(response.status().as_u16(), 413, "{path}");
                let text = response.into_body().read_to_string().unwrap();
                assert!(text.contains("larger than the 65536 bytes accepted"), "{text}");
            }
            // The server may answer and close before the client has sent it all.
            Err(e) => assert!(e.to_string().contains("pipe") || e.to_string().contains("reset"), "{path}: {e}"),
        }
    }
    let health = ureq::get(&format!("{}/healthz", server.url.trim_end_matches('/'))).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
