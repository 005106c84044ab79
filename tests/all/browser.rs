//! The RA web page in a real browser: Debian's headless Chromium driven
//! through ChromeDriver (W3C WebDriver, spoken here over HTTP), against a
//! real `prereg serve`. An officer loads an ES256 key into the page, which
//! signs every write with WebCrypto. Each step saves a screenshot to
//! `target/tmp/screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/run` installs
//! them and sets `PREREG_REQUIRE_BROWSER=1`, so that CI cannot skip this).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use prereg::signing::{Algorithm, SigningKey, WriteRequest};
use prereg::store::RegistrationFilter;
use serde_json::{Value, json};

use crate::common::{Server, sign_for};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session.
struct Browser {
    driver: Child,
    agent: ureq::Agent,
    session: String,
    shots: PathBuf,
}

impl Browser {
    fn start() -> Option<Browser> {
        Self::start_with(&[])
    }

    /// [`Browser::start`] with more Chromium arguments.
    fn start_with(extra: &[String]) -> Option<Browser> {
        let (chromium, chromedriver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
        if !Path::new(chromium).exists() || !Path::new(chromedriver).exists() {
            assert!(
                std::env::var("PREREG_REQUIRE_BROWSER").is_err(),
                "PREREG_REQUIRE_BROWSER is set but {chromium} or {chromedriver} is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: the browser test needs {chromium} and {chromedriver} (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().cloned());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args }
        }}});
        let mut response = agent.post(format!("{base}/session")).send_json(&capabilities).unwrap();
        let value: Value = response.body_mut().read_json().unwrap();
        let session = value["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {value}")).to_owned();
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser { driver, agent, session: format!("{base}/session/{session}"), shots })
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            _ => self.agent.post(&url).send_json(&body),
        }
        .unwrap();
        let value: Value = response.body_mut().read_json().unwrap();
        if value["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", value["value"]);
        }
        value["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
        self.wait_js("return document.body && document.body.dataset.ready === 'true'", "the page script to start");
    }

    fn find(&self, css: &str) -> String {
        let found = self.call("POST", "/element", json!({"using": "css selector", "value": css}));
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call("POST", &format!("/element/{id}/value"), json!({ "text": text }));
    }

    fn choose_file(&self, css: &str, path: &Path) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/value"), json!({ "text": path.display().to_string() }));
    }

    fn js(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    fn text(&self, css: &str) -> String {
        let script = format!("const e = document.querySelector({}); return e ? e.innerText : '';", json!(css));
        self.js(&script).as_str().unwrap_or("").to_owned()
    }

    fn wait_js(&self, script: &str, what: &str) {
        let started = Instant::now();
        while self.js(script) != Value::Bool(true) {
            assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the element's text contains `needle`; returns the text.
    fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css);
            if text.contains(needle) {
                return text;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{css} never showed {needle:?}; it shows {text:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).unwrap();
    }

    fn tab(&self, name: &str) {
        self.click(&format!("nav button[data-tab={name}]"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.session).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn an_officer_works_in_the_ra_page_with_a_key_that_never_leaves_it() {
    let Some(browser) = Browser::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client();
    let admin = server.admin_key();
    for request in [
        WriteRequest::CreateProcedure {
            certificate_days: None,
            name: "routers".into(),
            domain: "corp".into(),
            protocol: "scep".into(),
            allowed_domains: vec![],
            require_preregistration: None,
        },
        WriteRequest::AddOfficer {
            name: "alice".into(),
            public_key_pem: {
                let key = SigningKey::generate(Algorithm::Es256);
                std::fs::write(dir.path().join("alice.key"), key.to_pem().unwrap().as_bytes()).unwrap();
                key.public_key().to_pem().unwrap()
            },
            domains: vec!["corp".into()],
        },
    ] {
        client.submit(&sign_for(&client, &admin, request.clone()), &request).unwrap();
    }

    browser.open(&server.url);
    browser.choose_file("#key-file", &dir.path().join("alice.key"));
    browser.wait_text("#key-status", "Signing as alice (ES256, domains corp)");
    browser.screenshot("01-key-loaded");

    // Register one device with a password, one pattern without, and a bad name.
    browser.tab("register");
    browser.type_into("#reg-fqdn", "Router7.Dept.Example.com");
    browser.type_into("#reg-ip", "10.1.2.3");
    browser.type_into("#reg-password", "s3cret pass");
    browser.click("#register-form button[type=submit]");
    browser.wait_text(
        "#register-result",
        "Registered router7.dept.example.com as registration 1 in domain corp, with a password",
    );
    browser.type_into("#reg-fqdn", "*.lab.example.com");
    browser.type_into("#reg-ip", "");
    browser.click("#register-form button[type=submit]");
    browser.wait_text("#register-result", "Registered *.lab.example.com as registration 2");
    browser.type_into("#reg-fqdn", "bad..name");
    browser.click("#register-form button[type=submit]");
    browser.wait_text("#register-result", "label 2 is empty");
    assert_eq!(browser.js("return document.querySelector('#reg-fqdn').classList.contains('field-error')"), json!(true));
    browser.screenshot("02-register");

    // Import a file with errors (dry run), then a clean one.
    browser.tab("import");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "fqdn,ip,serial\nh1.fleet.example.com,10.9.0.1,\nh2.fleet.example.com,not-an-ip,\nrouter7.dept.example.com,,\n",
    )
    .unwrap();
    browser.choose_file("#imp-file", &bad);
    browser.click("#imp-dry-run");
    browser.wait_text("#import-result", "dry run: 1 of 3 rows would be created");
    let errors = browser.wait_text("#import-errors", "not-an-ip");
    assert!(errors.contains("3\t3\tip\tinvalid"), "{errors}");
    assert!(errors.contains("duplicate-existing"), "{errors}");
    browser.screenshot("03-import-dry-run");
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "fqdn,ip,serial,password\nh1.fleet.example.com,10.9.0.1,,pw1\nh2.fleet.example.com,,SN-2,\n")
        .unwrap();
    browser.choose_file("#imp-file", &good);
    browser.click("#imp-run");
    browser.wait_text("#import-result", "completed: 2 registrations created");
    browser.screenshot("04-import");

    // Search the list, then disable a registration from it.
    browser.tab("registrations");
    browser.type_into("#search-q", "router7");
    browser.click("#search-form button[type=submit]");
    browser.wait_js(
        "const t = document.querySelector('#registrations').innerText; \
         return t.includes('router7.dept.example.com') && !t.includes('h1.fleet.example.com')",
        "the search to show router7 only",
    );
    let table = browser.text("#registrations");
    assert!(table.contains("Common Name"), "{table}");
    browser.click("#registrations button.disable");
    browser.wait_text("#list-message", "registration.disable registration:1");
    browser.wait_text("#registrations", "disabled");
    browser.screenshot("05-registrations");

    // The audit log: alice, an officer of corp, reads corp's records; the
    // whole chain is verified by an officer of every domain.
    browser.tab("audit");
    browser.wait_text("#chain-status", "Records of your domains (corp)");
    browser.click("#audit-refresh");
    let audit = browser.wait_text("#audit", "registration.disable");
    assert!(audit.contains("import.csv"), "{audit}");
    assert!(audit.contains("officer:alice"), "her own creation belongs to corp: {audit}");
    assert!(!audit.contains("instance.init"), "instance-wide records are for officers of every domain: {audit}");
    browser.screenshot("06-audit");

    // A decision and its explanation.
    browser.tab("check");
    browser.type_into("#chk-fqdn", "h1.fleet.example.com");
    browser.type_into("#chk-ip", "10.9.0.1");
    browser.type_into("#chk-password", "pw1");
    browser.click("#check-form button[type=submit]");
    // A dry run never checks a password: it says an enrollment would.
    browser.wait_text("#check-verdict", "DENY password-required (registration 3, h1.fleet.example.com)");
    browser.screenshot("07-check");
    browser.tab("policy");
    browser.wait_text("#policy", "prereg:policy@0.1.1");
    browser.screenshot("08-policy");

    // What the page did, seen through the API.
    let all = client.registrations(&RegistrationFilter::default()).unwrap();
    let patterns: Vec<(&str, &str)> = all.iter().map(|r| (r.pattern.as_str(), r.state.as_str())).collect();
    assert_eq!(
        patterns,
        vec![
            ("router7.dept.example.com", "disabled"),
            ("*.lab.example.com", "open"),
            ("h1.fleet.example.com", "open"),
            ("h2.fleet.example.com", "open")
        ]
    );
    assert!(all[0].has_password && all[2].has_password);
    let alice = client.officers().unwrap().into_iter().find(|o| o.name == "alice").unwrap();
    assert_eq!(all[1].created_by, alice.kid, "signed in the browser by alice's key");
    // The key never reached the server: not in its log, not in its database.
    let pem = std::fs::read_to_string(dir.path().join("alice.key")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!server.log().contains(&body));
    let db = std::fs::read(dir.path().join("data/prereg.sqlite3")).unwrap();
    assert!(!crate::common::contains(&db, body.as_bytes()));
    assert!(!crate::common::contains(&db, b"s3cret pass"));
}

#[test]
fn over_https_an_officer_of_one_domain_sees_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| crate::common::run_local(dir.path(), args);
    run(&["init"]);
    run(&["ca", "init"]);
    for domain in ["d", "e"] {
        let procedure = format!("{domain}-routers");
        run(&["procedure", "add", &procedure, "--domain", domain, "--protocol", "scep"]);
        run(&["register", "--procedure", &procedure, "--fqdn", &format!("router1.{domain}.example.com")]);
    }
    run(&["officer", "keygen", "--out", "eve.key", "--algorithm", "es256"]);
    run(&["officer", "add", "eve", "--public-key", "eve.key.pub", "--domains", "e"]);
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--tls-self"];
    let server = Server::start_with(dir.path(), "server.log", &args);
    // Chromium trusts exactly the service's key (the instance CA is not in
    // its store): the page is a secure context, as on an officer's desk.
    let chain = std::fs::read(dir.path().join("data/tls/server.crt")).unwrap();
    let leaf = prereg_pki::x509::pem_blocks(&String::from_utf8(chain).unwrap(), "CERTIFICATE").unwrap().remove(0);
    let spki = prereg_pki::x509::Certificate::from_der(&leaf).unwrap().spki;
    let pin = base64::engine::general_purpose::STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(&spki));
    let Some(browser) = Browser::start_with(&[format!("--ignore-certificate-errors-spki-list={pin}")]) else { return };

    browser.open(&server.url);
    assert_eq!(browser.js("return window.isSecureContext"), json!(true));
    let before = browser.text("main");
    assert!(!before.contains("router1") && before.contains("Load your officer key"), "{before}");
    browser.choose_file("#key-file", &dir.path().join("eve.key"));
    browser.wait_text("#key-status", "Signing as eve (ES256, domains e)");
    let rows = browser.wait_text("#registrations", "router1.e.example.com");
    assert!(!rows.contains("router1.d.example.com"), "{rows}");
    browser.tab("register");
    let options = browser.text("#reg-procedure");
    assert!(options.contains("e-routers") && !options.contains("d-routers"), "{options}");
    browser.screenshot("09-https-domain-e");
    // What the page fetched carried eve's token, never a cookie.
    assert!(server.log().contains("principal=officer:eve"), "{}", server.log());
    assert!(!server.log().to_ascii_lowercase().contains("cookie"));
}
