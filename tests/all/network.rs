//! `prereg serve` facing a network (issue 16), through the real binary on
//! HTTPS with a certificate from the instance CA (`--tls-self`), tried as
//! the officers, CA callers and attackers on that network would: reads
//! need an officer's token and show the officer's domains only, decisions
//! need a CA caller of the procedure, a wrong Host is misdirected, slow and
//! idle connections are closed, a huge request part costs no memory, plain
//! HTTP on a network address is refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prereg::client::Client;
use prereg::signing::{Algorithm, SigningKey};

use crate::common::{Server, prereg_command, run_local};

/// A data folder with a CA, two domains and a registration in each: `d`
/// (procedure `d-routers`) and `e` (procedure `e-routers`), and an officer
/// `eve` of `e` whose key is `dir/eve.key`.
fn two_domains(dir: &Path) {
    run_local(dir, &["init"]);
    run_local(dir, &["ca", "init"]);
    for domain in ["d", "e"] {
        let procedure = format!("{domain}-routers");
        run_local(dir, &["procedure", "add", &procedure, "--domain", domain, "--protocol", "scep"]);
        let fqdn = format!("router1.{domain}.example.com");
        run_local(dir, &["register", "--procedure", &procedure, "--fqdn", &fqdn]);
    }
    run_local(dir, &["officer", "keygen", "--out", "eve.key", "--algorithm", "es256"]);
    run_local(dir, &["officer", "add", "eve", "--public-key", "eve.key.pub", "--domains", "e"]);
}

/// `prereg serve --tls-self` on a loopback port, with `extra` arguments.
fn tls_server(dir: &Path, extra: &[&str]) -> Server {
    let args = [&["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self"][..], extra].concat();
    let server = Server::start_with(dir, "server.log", &args);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    server
}

/// `prereg serve` on a loopback port over plain HTTP, with `extra` arguments.
fn plain_server(dir: &Path, extra: &[&str]) -> Server {
    let args = [&["--data", "data", "serve", "--listen", "127.0.0.1:0"][..], extra].concat();
    Server::start_with(dir, "server.log", &args)
}

/// The instance CA's certificate (what clients of a `--tls-self` service trust).
fn ca_pem(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("data/ca/ca.crt")).unwrap()
}

/// An HTTPS agent that trusts the instance CA and reports every status.
fn https(dir: &Path) -> ureq::Agent {
    https_as(dir, None)
}

/// [`https`], presenting the client certificate `cert` (PEM, with its key
/// beside it as `cert.key`'s stem `.key`) when given.
fn https_as(dir: &Path, cert: Option<&str>) -> ureq::Agent {
    let roots = ureq::tls::parse_pem(&ca_pem(dir))
        .filter_map(|item| match item.unwrap() {
            ureq::tls::PemItem::Certificate(cert) => Some(cert),
            _ => None,
        })
        .collect::<Vec<_>>();
    let client_cert = cert.map(|file| {
        let pem = std::fs::read(dir.join(file)).unwrap();
        let key = std::fs::read(dir.join(Path::new(file).with_extension("key"))).unwrap();
        ureq::tls::ClientCert::new_with_certs(
            &[ureq::tls::Certificate::from_pem(&pem).unwrap()],
            ureq::tls::PrivateKey::from_pem(&key).unwrap(),
        )
    });
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .client_cert(client_cert)
        .build();
    ureq::Agent::config_builder().http_status_as_error(false).tls_config(tls).build().into()
}

fn officer_key(dir: &Path, file: &str) -> Arc<SigningKey> {
    let pem = std::fs::read_to_string(dir.join(file)).unwrap();
    Arc::new(SigningKey::from_pem(&pem, file).unwrap())
}

/// A GET with an optional `Authorization` value: (status, body).
fn get(agent: &ureq::Agent, url: &str, authorization: Option<&str>) -> (u16, String) {
    let mut request = agent.get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.call().unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().unwrap())
}

#[test]
fn officers_read_only_their_domains_over_https_and_anonymous_clients_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    two_domains(dir);
    let server = tls_server(dir, &[]);
    let agent = https(dir);
    let url = |path: &str| format!("{}{path}", server.url);

    // Anonymous: every read and decision is refused with a problem document.
    for path in
        ["/v1/registrations", "/v1/registrations/1", "/v1/audit", "/v1/imports", "/v1/officers", "/metrics", "/ui/main"]
    {
        let (status, text) = get(&agent, &url(path), None);
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("urn:prereg:problem:unauthenticated"), "{path}: {text}");
        assert!(!text.contains("router1"), "{path}: {text}");
    }
    let response = agent
        .post(&url("/v1/decisions/enroll"))
        .send_json(serde_json::json!({"procedure": "d-routers", "fqdn": "router1.d.example.com"}))
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // The RA page itself shows nothing until a key is loaded, and says HSTS.
    let response = agent.get(&url("/")).call().unwrap();
    assert_eq!(response.headers().get("strict-transport-security").unwrap(), "max-age=31536000");
    let page = response.into_body().read_to_string().unwrap();
    assert!(!page.contains("router1") && page.contains("Load your officer key"), "{page}");

    // Eve lists through the CLI over HTTPS: e's registration, none of d's.
    let out = prereg_command(dir)
        .args(["--server", &server.url, "--ca-cert", "data/ca/ca.crt", "--key", "eve.key", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(listed.contains("router1.e.example.com") && !listed.contains("router1.d.example.com"), "{listed}");
    // The admin (every domain) sees both.
    let admin = Client::with_roots(&server.url, &ca_pem(dir)).unwrap().with_officer(Arc::new(server.admin_key()));
    let all = admin.registrations(&Default::default()).unwrap();
    assert_eq!(all.len(), 2);
    let d_id = all.iter().find(|r| r.domain == "d").unwrap().id;

    // Through the API, eve's view of everything is e's.
    let eve = Client::with_roots(&server.url, &ca_pem(dir)).unwrap().with_officer(officer_key(dir, "eve.key"));
    let seen = eve.registrations(&Default::default()).unwrap();
    assert_eq!(seen.iter().map(|r| r.domain.as_str()).collect::<Vec<_>>(), ["e"]);
    // Asking for d's by domain filter or by id finds nothing.
    let filter = prereg::store::RegistrationFilter { domain: Some("d".into()), ..Default::default() };
    assert!(eve.registrations(&filter).unwrap().is_empty());
    let e = eve.registration(d_id).unwrap_err();
    assert!(e.to_string().contains("not-found"), "{e}");
    let procedures: Vec<String> = eve.procedures().unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(procedures, ["e-routers"]);
    let records = eve.audit(0, 1000).unwrap().items;
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r.domain.as_deref() == Some("e")), "{records:?}");
    let e = eve.verify_audit().unwrap_err();
    assert!(e.to_string().contains("forbidden"), "{e}");
    // A dry run in d's procedure is refused to her.
    let input = prereg::registry::EnrollmentInput {
        procedure: "d-routers".into(),
        fqdn: "router1.d.example.com".into(),
        ..Default::default()
    };
    let e = eve.decide(&input, prereg::registry::DecisionMode::DryRun).unwrap_err();
    assert!(e.to_string().contains("forbidden"), "{e}");

    // Attacks on the token: another instance's, expired, a signed write in
    // its place, a stranger's key, a disabled officer's. All 401.
    let instance = admin.instance().unwrap().instance_id;
    let now = prereg::registry::unix_now();
    let eve_key = officer_key(dir, "eve.key");
    let stranger = SigningKey::generate(Algorithm::Es256);
    let write = prereg::signing::sign(
        &eve_key,
        &instance,
        prereg::signing::WriteRequest::DisableRegistration { id: d_id },
        now,
        300,
    )
    .unwrap();
    for (what, token) in [
        ("another instance", prereg::signing::access::sign_access(&eve_key, "other-instance", now, 240).unwrap()),
        ("expired", prereg::signing::access::sign_access(&eve_key, &instance, now - 600, 240).unwrap()),
        ("a signed write", write),
        ("a stranger's key", prereg::signing::access::sign_access(&stranger, &instance, now, 240).unwrap()),
        ("not a token", "garbage".to_owned()),
    ] {
        let (status, text) = get(&agent, &url("/v1/registrations"), Some(&format!("Bearer {token}")));
        assert_eq!(status, 401, "{what}: {text}");
    }
    run_local(dir, &["officer", "disable", "eve"]);
    let (status, text) = get(
        &agent,
        &url("/v1/registrations"),
        Some(&format!("Bearer {}", {
            prereg::signing::access::sign_access(&eve_key, &instance, prereg::registry::unix_now(), 240).unwrap()
        })),
    );
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("disabled"), "{text}");

    // DNS rebinding: a request naming another host is misdirected.
    let response = agent.get(&url("/healthz")).header("host", "attacker.example").call().unwrap();
    assert_eq!(response.status().as_u16(), 421);
    // The log names the client address and the principal of each request.
    let log = server.log();
    assert!(log.contains("client=127.0.0.1") && log.contains("principal=officer:eve"), "{log}");
}

#[test]
fn callers_ask_for_their_procedures_only_and_are_named_in_the_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    two_domains(dir);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let server = tls_server(dir, &["--metrics-listen", &metrics_address]);
    let cli = |args: &[&str]| {
        let out = prereg_command(dir)
            .args(["--server", &server.url, "--ca-cert", "data/ca/ca.crt", "--key", "data/officer.key"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = cli(&["caller", "add", "d-front", "--procedures", "d-routers"]);
    let secret = out.lines().find_map(|l| l.strip_prefix("secret ")).unwrap().split(' ').next().unwrap().to_owned();
    // Only its hash is kept: not in the database, not in the log.
    let db = std::fs::read(dir.join("data/prereg.sqlite3")).unwrap();
    assert!(!crate::common::contains(&db, secret.as_bytes()));
    let caller = Client::with_roots(&server.url, &ca_pem(dir)).unwrap().with_caller_secret(&secret);
    let input = |procedure: &str, fqdn: &str| prereg::registry::EnrollmentInput {
        procedure: procedure.into(),
        fqdn: fqdn.into(),
        ..Default::default()
    };
    let report =
        caller.decide(&input("d-routers", "router1.d.example.com"), prereg::registry::DecisionMode::Enroll).unwrap();
    assert!(report.allowed, "{report:?}");
    // Another domain's procedure: 403, nothing decided or audited.
    let audited = crate::common::audit_records(dir).len();
    let e = caller.decide(&input("e-routers", "router1.e.example.com"), prereg::registry::DecisionMode::Enroll);
    match e {
        Err(prereg::client::ClientError::Problem(p)) => assert_eq!(p.status, 403, "{p:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(crate::common::audit_records(dir).len(), audited);
    // A caller reads nothing of the registry.
    assert!(caller.registrations(&Default::default()).is_err());
    // Its decision's audit record names it.
    let records = crate::common::audit_records(dir);
    let decision = records.iter().rev().find(|r| r["action"] == "enroll").unwrap();
    assert_eq!(decision["actor"], "caller:d-front");
    assert_eq!(decision["domain"], "d");
    // Disabled, its secret is refused.
    cli(&["caller", "disable", "d-front"]);
    match caller.decide(&input("d-routers", "x.d.example.com"), prereg::registry::DecisionMode::DryRun) {
        Err(prereg::client::ClientError::Problem(p)) => assert_eq!(p.status, 401, "{p:?}"),
        other => panic!("{other:?}"),
    }
    assert!(cli(&["caller", "list"]).contains("disabled"));
    // Guessing secrets: refused, then the address is slowed (429, Retry-After).
    let agent = https(dir);
    let mut statuses = Vec::new();
    for i in 0..25 {
        let response = agent
            .post(&format!("{}/v1/decisions/check", server.url))
            .header("authorization", format!("Bearer prc_guess{i}"))
            .send_json(serde_json::json!({"procedure": "d-routers", "fqdn": "a.d.example.com"}))
            .unwrap();
        statuses.push((response.status().as_u16(), response.headers().get("retry-after").is_some()));
    }
    // Twenty refusals from this address in a burst (the disabled secret
    // above was the first), then 429.
    assert!(statuses[..19].iter().all(|s| *s == (401, false)), "{statuses:?}");
    assert!(statuses[19..].iter().all(|s| *s == (429, true)), "{statuses:?}");
    assert!(server.log().contains("credential refused"));
    // The limit holds for every credential from this address for a while
    // (an officer behind the same address too): metrics are read apart.
    let (_, text) = get(&agent, &format!("http://{metrics_address}/metrics"), None);
    assert!(text.contains("prereg_credentials_refused_total 20"), "{text}");
}

#[test]
fn slow_and_silent_connections_are_closed_while_health_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let server = plain_server(dir, &["--header-timeout-seconds", "3"]);
    let address = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    // 250 clients trickling a header line a second (slowloris), 250 sending nothing.
    let mut slow: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(&address).unwrap()).collect();
    let started = Instant::now();
    for (i, stream) in slow.iter_mut().enumerate() {
        stream.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        if i % 2 == 0 {
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
        }
    }
    // Meanwhile the service answers.
    let health = ureq::get(&format!("{}/healthz", server.url)).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(1));
        for stream in slow.iter_mut().step_by(2) {
            let _ = stream.write_all(b"X-Slow: 1\r\n");
        }
    }
    // All 500 are closed by the header timeout (3 s), none served.
    for (i, stream) in slow.iter_mut().enumerate() {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buffer = [0u8; 64];
        let read = stream.read(&mut buffer);
        assert!(matches!(read, Ok(0)) || read.is_err(), "connection {i} was answered: {read:?}");
    }
    let closed_after = started.elapsed();
    eprintln!("500 slow or silent connections all closed {closed_after:?} after they opened");
    assert!(closed_after < Duration::from_secs(9), "closed after {closed_after:?}");
    assert_eq!(ureq::get(&format!("{}/healthz", server.url)).call().unwrap().status().as_u16(), 200);
}

#[test]
fn connections_past_the_limit_are_closed_at_once_and_served_again_when_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let server = plain_server(dir, &["--max-connections", "20", "--header-timeout-seconds", "2"]);
    let address = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(&address).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // The 21st is closed without an answer.
    let mut extra = TcpStream::connect(&address).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut buffer = [0u8; 64];
    let read = extra.read(&mut buffer);
    assert!(matches!(read, Ok(0)) || read.is_err(), "answered past the limit: {read:?}");
    // When the held ones time out, the service answers again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ureq::get(&format!("{}/healthz", server.url)).call().unwrap().status().as_u16(), 200);
    drop(held);
    assert!(server.log().contains("connection limit reached"), "{}", server.log());
    let metrics = server.read_as_officer("/metrics");
    assert!(metrics.contains("prereg_connections_refused 1"), "{metrics}");
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_600_mb_request_part_is_refused_with_413_and_costs_no_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let server = Server::start(dir);
    let address = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    assert_eq!(ureq::get(&format!("{}/healthz", server.url)).call().unwrap().status().as_u16(), 200);
    let idle = peak_rss_kib(server.child.id());
    let part = 600u64 << 20;
    let head = "--b7\r\ncontent-disposition: form-data; name=\"request\"\r\n\r\n";
    let length = head.len() as u64 + part + 8;
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST /v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b7\r\n\
         Content-Length: {length}\r\n\r\n{head}"
    )
    .unwrap();
    // Send until the server stops reading (it answers and closes).
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0u64;
    while sent < part && stream.write_all(&chunk).is_ok() {
        sent += chunk.len() as u64;
    }
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than the 65536 bytes accepted"), "{answer}");
    let grown = peak_rss_kib(server.child.id()).saturating_sub(idle);
    eprintln!("600 MB request part: {} MiB sent before the 413, peak RSS {idle} KiB idle, +{grown} KiB", sent >> 20);
    assert!(grown < 100 * 1024, "peak RSS grew by {grown} KiB");
    assert!(sent < part, "the server read all {sent} bytes");
}

#[test]
fn plain_http_on_a_network_address_is_refused_unless_a_tls_proxy_is_said_to_be_in_front() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let out = prereg_command(dir).args(["--data", "data", "serve", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plain HTTP on a network address") && err.contains("--tls-self"), "{err}");
    let out = prereg_command(dir)
        .args(["--data", "data", "serve", "--listen", "0.0.0.0:0", "--plain-http-behind-proxy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-url"));
    // Behind a proxy that says which client it forwards: that address is
    // the client, and only the public name is answered.
    let args = [
        "--data",
        "data",
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--plain-http-behind-proxy",
        "--public-url",
        "https://ra.example.com",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let server = Server::start_with(dir, "server.log", &args);
    let port = server.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let local = format!("http://127.0.0.1:{port}/healthz");
    let response =
        agent.get(&local).header("host", "ra.example.com").header("x-forwarded-for", "198.51.100.7").call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers().get("strict-transport-security").unwrap(), "max-age=31536000");
    assert_eq!(agent.get(&local).header("host", "other.example.com").call().unwrap().status().as_u16(), 421);
    assert!(server.log().contains("client=198.51.100.7"), "{}", server.log());
}

#[test]
fn the_tls_certificate_is_replaced_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["ca", "init"]);
    let server = tls_server(dir, &[]);
    let served = |dir: &Path| {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", server.url.trim_start_matches("https://"), "-servername", "localhost"])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is needed (see .ci/run)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
        let end = text.find("-----END CERTIFICATE-----").unwrap();
        text[start..end].to_owned()
    };
    let before = served(dir);
    assert!(std::fs::read_to_string(dir.join("data/tls/server.crt")).unwrap().contains(&before[28..100]));
    // Another certificate from the same CA, written over the files: the next
    // connection gets it (the files are watched; SIGHUP reloads at once).
    let issued = dir.join("next");
    std::fs::create_dir_all(&issued).unwrap();
    let key = prereg_pki::keys::SigningKey::generate_p256();
    let ca = prereg::pki::Ca::load(&prereg::DataDir::new(dir.join("data"))).unwrap().unwrap();
    let cert = ca
        .issue_server(
            &["localhost"],
            &["127.0.0.1".parse().unwrap()],
            &key.spki_der().unwrap(),
            30,
            prereg::registry::unix_now(),
        )
        .unwrap();
    std::fs::write(dir.join("data/tls/server.key"), key.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("data/tls/server.crt"), prereg_pki::x509::pem("CERTIFICATE", &cert.der)).unwrap();
    std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while served(dir) == before {
        assert!(Instant::now() < deadline, "the old certificate is still served: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.log().contains("TLS certificate reloaded"), "{}", server.log());
    // A broken file keeps the certificate in use.
    let now_served = served(dir);
    std::fs::write(dir.join("data/tls/server.crt"), "not a certificate").unwrap();
    std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served(dir), now_served);
    assert!(server.log().contains("the previous certificate stays"), "{}", server.log());
}

#[test]
fn metrics_need_a_credential_unless_served_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let server = plain_server(dir, &["--metrics-listen", &metrics_address]);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    assert_eq!(get(&agent, &format!("{}/metrics", server.url), None).0, 401);
    let (status, text) = get(&agent, &format!("{}/metrics", server.url), Some(&server.officer_authorization()));
    assert_eq!(status, 200, "{text}");
    let (status, text) = get(&agent, &format!("http://{metrics_address}/metrics"), None);
    assert_eq!(status, 200);
    assert!(text.contains("prereg_http_requests_total"), "{text}");
    // Only /metrics there.
    assert_eq!(get(&agent, &format!("http://{metrics_address}/v1/registrations"), None).0, 404);
}

#[test]
fn the_enrollment_endpoints_are_rate_limited_per_client_address() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["ca", "init"]);
    run_local(dir, &["procedure", "add", "phones", "--domain", "corp", "--protocol", "scep"]);
    let args =
        ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--enroll-burst", "5", "--enroll-per-minute", "1"];
    let server = Server::start_with(dir, "server.log", &args);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let caps = format!("{}/scep/phones?operation=GetCACaps", server.url);
    let answers: Vec<(u16, Option<String>)> = (0..7)
        .map(|_| {
            let response = agent.get(&caps).call().unwrap();
            let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry)
        })
        .collect();
    assert!(answers[..5].iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert!(answers[5..].iter().all(|(status, retry)| *status == 429 && retry.is_some()), "{answers:?}");
    assert!(server.log().contains("enrollment request rate exceeded client=127.0.0.1"), "{}", server.log());
    // Reads and health are not enrollment requests.
    assert_eq!(agent.get(&format!("{}/healthz", server.url)).call().unwrap().status().as_u16(), 200);
}

#[test]
fn postgres_is_reached_over_verified_tls_and_a_wrong_root_or_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A CA for the database server, and another that did not issue its
    // certificate; the server's certificate names `localhost` only.
    let issuer = |name: &str| {
        for args in [&["init"][..], &["ca", "init"]] {
            let out = prereg_command(dir).args(["--data", name]).args(args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        prereg::pki::Ca::load(&prereg::DataDir::new(dir.join(name))).unwrap().unwrap()
    };
    let ca = issuer("db-ca");
    issuer("other-ca");
    let tls = dir.join("pg-tls");
    std::fs::create_dir_all(&tls).unwrap();
    let key = prereg_pki::keys::SigningKey::generate_p256();
    let cert =
        ca.issue_server(&["localhost"], &[], &key.spki_der().unwrap(), 30, prereg::registry::unix_now()).unwrap();
    std::fs::write(tls.join("server.crt"), prereg_pki::x509::pem("CERTIFICATE", &cert.der)).unwrap();
    std::fs::write(tls.join("server.key"), key.to_pem().unwrap()).unwrap();
    // Readable by the `postgres` user, which copies them under root.
    for entry in [&tls, &tls.join("server.crt"), &tls.join("server.key"), &dir.to_path_buf()] {
        use std::os::unix::fs::PermissionsExt;
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let Some(server) = crate::pg::PrivateServer::start_with_tls(Some(&tls)) else { return };
    let port = server.port;
    let url = |host: &str, params: &str| format!("postgres://prereg:prereg@{host}:{port}/postgres?{params}");
    let root = |ca: &str| dir.join(ca).join("ca/ca.crt").display().to_string();
    let try_init = |data: &str, database: &str| {
        let out = prereg_command(dir).args(["--data", data, "--database", database, "init"]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Without TLS the server refuses (so what follows did use it).
    let (code, err) = try_init("n0", &url("127.0.0.1", "sslmode=disable"));
    assert_ne!(code, Some(0));
    assert!(err.contains("no encryption") || err.contains("rejects connection"), "{err}");
    // A wrong root, then the right root with a wrong name: refused, saying why.
    let (code, err) =
        try_init("n1", &url("localhost", &format!("sslmode=verify-full&sslrootcert={}", root("other-ca"))));
    assert_ne!(code, Some(0));
    // (Both CAs bear the same name: the chain is built, and its signature fails.)
    assert!(err.contains("invalid peer certificate") && err.contains("is unavailable"), "{err}");
    let (code, err) = try_init("n2", &url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", root("db-ca"))));
    assert_ne!(code, Some(0));
    assert!(err.contains("certificate not valid for name \"127.0.0.1\""), "{err}");
    // verify-ca checks the chain only; verify-full with the right name connects.
    let (code, err) = try_init("n3", &url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", root("db-ca"))));
    assert_eq!(code, Some(0), "{err}");
    let full = url("localhost", &format!("sslmode=verify-full&sslrootcert={}", root("db-ca")));
    let out = prereg_command(dir).args(["--data", "n3", "--database", &full, "list"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // verify-full without a root to check against is refused before connecting.
    let (code, err) = try_init("n4", &url("localhost", "sslmode=verify-full"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sslrootcert"), "{err}");
}

#[test]
fn a_caller_authenticates_with_a_client_certificate_from_the_instance_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    two_domains(dir);
    let issued = run_local(dir, &["ca", "issue-client", "front", "--out", "front.crt"]);
    assert!(issued.contains("client certificate front.crt"), "{issued}");
    let added = run_local(
        dir,
        &["caller", "add", "front", "--procedures", "d-routers", "--client-cert", "front.crt", "--no-secret"],
    );
    assert!(!added.contains("secret"), "no secret was asked for: {added}");
    // A certificate of the same CA that names no caller (a device's, say).
    run_local(dir, &["ca", "issue-client", "device", "--out", "device.crt"]);
    let server = tls_server(dir, &[]);
    let enroll = |agent: &ureq::Agent, procedure: &str| {
        let response = agent
            .post(&format!("{}/v1/decisions/enroll", server.url))
            .send_json(serde_json::json!({"procedure": procedure, "fqdn": "router1.d.example.com"}))
            .unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    };
    let front = https_as(dir, Some("front.crt"));
    let (status, text) = enroll(&front, "d-routers");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"allowed\":true"), "{text}");
    assert_eq!(enroll(&front, "e-routers").0, 403);
    // No certificate, or one that names no caller: not a caller.
    assert_eq!(enroll(&https(dir), "d-routers").0, 401);
    assert_eq!(enroll(&https_as(dir, Some("device.crt")), "d-routers").0, 401);
    // A certificate from another CA does not get through the handshake.
    let out = prereg_command(dir).args(["--data", "other", "init"]).output().unwrap();
    assert!(out.status.success());
    let out = prereg_command(dir).args(["--data", "other", "ca", "init"]).output().unwrap();
    assert!(out.status.success());
    let out = prereg_command(dir)
        .args(["--data", "other", "ca", "issue-client", "front", "--out", "forged.crt"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let forged = https_as(dir, Some("forged.crt"))
        .post(&format!("{}/v1/decisions/enroll", server.url))
        .send_json(serde_json::json!({}));
    assert!(forged.is_err(), "{forged:?}");
    let records = crate::common::audit_records(dir);
    let decision = records.iter().rev().find(|r| r["action"] == "enroll").unwrap();
    assert_eq!(decision["actor"], "caller:front");
    // Disabled, its certificate is refused.
    run_local(dir, &["caller", "disable", "front"]);
    let (status, text) = enroll(&front, "d-routers");
    assert_eq!(status, 401, "{text}");
}

#[test]
fn an_idle_http2_connection_is_closed_with_goaway() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let server = plain_server(dir, &["--idle-timeout-seconds", "2", "--header-timeout-seconds", "2"]);
    let address = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    // An HTTP/2 client (prior knowledge) that opens, says its settings, and
    // then only listens, as one holding connections open would.
    let mut stream = TcpStream::connect(&address).unwrap();
    let started = Instant::now();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    let closed_after = started.elapsed();
    // Frames: 9-byte headers; type 7 is GOAWAY.
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 9 <= received.len() {
        let length =
            usize::from(received[at]) << 16 | usize::from(received[at + 1]) << 8 | usize::from(received[at + 2]);
        frames.push(received[at + 3]);
        at += 9 + length;
    }
    assert!(frames.contains(&7), "no GOAWAY among frames {frames:?}");
    assert!(closed_after >= Duration::from_millis(1500) && closed_after < Duration::from_secs(8), "{closed_after:?}");
}

#[test]
fn a_body_longer_than_its_route_takes_is_refused_before_it_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    let server = plain_server(dir, &[]);
    let address = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    for (path, length) in [("/v1/registrations", 10u64 << 20), ("/v1/imports", 4u64 << 30)] {
        // Only the headers: the answer must not wait for the body.
        let mut stream = TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = [0u8; 512];
        let read = stream.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
}

/// A caller's secret, once resolved, is remembered while nothing is
/// committed (no transaction per request). The attacker keeps using a
/// secret after the officer disabled its caller from another process (the
/// CLI on the same data folder): the very next request is refused, also
/// after enrollments, whose batches the remembered secret outlives.
#[test]
fn a_remembered_caller_secret_is_refused_as_soon_as_another_process_disables_it() {
    use prereg::registry::DecisionMode;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let local = |args: &[&str]| crate::common::run_local(dir.path(), args);
    local(&["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    let secret = server.add_caller("front", &["routers"]);
    let client = server.anonymous().with_caller_secret(&secret);
    let input = prereg::registry::EnrollmentInput {
        procedure: "routers".into(),
        fqdn: "a.example.com".into(),
        ..Default::default()
    };
    for mode in [DecisionMode::DryRun, DecisionMode::Enroll, DecisionMode::Enroll, DecisionMode::DryRun] {
        let report = client.decide(&input, mode).unwrap();
        assert_eq!(report.reason, "no-registration");
    }
    local(&["caller", "disable", "front"]);
    for mode in [DecisionMode::Enroll, DecisionMode::DryRun] {
        let refused = client.decide(&input, mode).unwrap_err();
        assert!(refused.to_string().contains("disabled"), "{refused}");
    }
}
