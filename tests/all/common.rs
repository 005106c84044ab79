//! The test fixture: a fresh instance in a temporary folder, with the built-in
//! default policy compiled once per test binary.

use std::sync::{Arc, OnceLock};

use prereg::policy::Policy;
use prereg::registry::{DecisionMode, DecisionReport, EnrollmentInput, WriteOutcome};
use prereg::signing::{self, Algorithm, SigningKey, WriteRequest};
use prereg::store::SqliteStorage;
use prereg::{Limits, PolicyEngine, Registry, RegistryError, WasmPolicy};
use zeroize::Zeroizing;

/// A fixed clock for tests: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;

/// The engine shared by the tests of this binary.
pub fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PolicyEngine::new(Limits::default()).unwrap())
}

/// The built-in default policy component, compiled once.
pub fn default_policy() -> Arc<WasmPolicy> {
    static POLICY: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    POLICY.get_or_init(|| Arc::new(prereg::load_policy(engine(), None).unwrap())).clone()
}

/// The hostile test policy (`tests/guests/hostile`), compiled once.
pub fn hostile() -> Arc<WasmPolicy> {
    static POLICY: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            let path = std::path::Path::new(prereg_test_artifacts::HOSTILE_POLICY);
            Arc::new(prereg::load_policy(engine(), Some(path)).unwrap())
        })
        .clone()
}

/// The storage backends the core suite runs on (`tests/all/main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default, in a temporary folder.
    Sqlite,
    /// A database of its own on the test PostgreSQL server (`pg`).
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, whichever is this backend's.
    pub fn pick<'a>(self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }
}

/// A fresh instance.
pub struct Fixture {
    pub registry: Registry,
    pub admin: SigningKey,
    pub instance: String,
    pub backend: Backend,
    /// The PostgreSQL database, when on PostgreSQL (dropped after the registry).
    pub database: Option<crate::pg::TestDatabase>,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// With the built-in default policy (WebAssembly), on SQLite.
    pub fn new() -> Self {
        Self::with_policy(default_policy())
    }

    /// With any policy, on SQLite.
    pub fn with_policy(policy: Arc<dyn Policy>) -> Self {
        Self::with_policy_on(Backend::Sqlite, policy).unwrap()
    }

    /// With the built-in default policy on `backend`; `None`: skip (no PostgreSQL).
    pub fn on(backend: Backend) -> Option<Self> {
        Self::with_policy_on(backend, default_policy())
    }

    /// With any policy on `backend`; `None`: skip (no PostgreSQL).
    pub fn with_policy_on(backend: Backend, policy: Arc<dyn Policy>) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (storage, database): (Arc<dyn prereg::store::Storage>, _) = match backend {
            Backend::Sqlite => (Arc::new(SqliteStorage::open(&dir.path().join("prereg.sqlite3")).unwrap()), None),
            Backend::Postgres => {
                let database = crate::pg::TestDatabase::create()?;
                (Arc::new(prereg::store::PostgresStorage::open(&database.url).unwrap()), Some(database))
            }
        };
        let admin = SigningKey::generate(Algorithm::EdDsa);
        let instance = prereg::registry::initialise(storage.as_ref(), "admin", &admin, NOW).unwrap();
        let loader: Arc<prereg::registry::PolicyLoader> = Arc::new(|bytes: &[u8], source: &str| {
            WasmPolicy::new(engine(), bytes, source).map(|p| Arc::new(p) as Arc<dyn Policy>).map_err(|e| e.to_string())
        });
        let sealing = prereg::sealing::SealingKey::load_or_create(&prereg::DataDir::new(dir.path())).unwrap();
        let registry = Registry::new(storage, policy).with_loader(loader).with_sealing_key(Arc::new(sealing));
        Some(Fixture { registry, admin, instance, backend, database, dir })
    }

    /// The SQLite database file (SQLite only).
    pub fn database(&self) -> std::path::PathBuf {
        assert_eq!(self.backend, Backend::Sqlite, "a database file exists on SQLite only");
        self.dir.path().join("prereg.sqlite3")
    }

    /// Runs raw SQL on the store, behind the registry's back (tampering,
    /// fault injection).
    pub fn execute_sql(&self, sql: &str) {
        match &self.database {
            None => rusqlite::Connection::open(self.database()).unwrap().execute_batch(sql).unwrap(),
            Some(db) => db.client().batch_execute(sql).unwrap(),
        }
    }

    /// Every byte the store holds of its data, as far as a reader of the
    /// database sees it: the SQLite file and its WAL, or every row of every
    /// PostgreSQL table as text.
    pub fn stored_bytes(&self) -> Vec<u8> {
        match &self.database {
            None => {
                drop(self.registry.storage().begin(prereg::store::TxKind::Read).unwrap());
                let mut bytes = std::fs::read(self.database()).unwrap();
                let wal = self.database().with_extension("sqlite3-wal");
                if wal.exists() {
                    bytes.extend(std::fs::read(wal).unwrap());
                }
                bytes
            }
            Some(db) => {
                let mut client = db.client();
                let tables: Vec<String> = client
                    .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let mut bytes = Vec::new();
                for table in tables {
                    for row in client.query(&format!("SELECT t::text FROM {table} t"), &[]).unwrap() {
                        bytes.extend(row.get::<_, String>(0).into_bytes());
                    }
                }
                bytes
            }
        }
    }

    /// The same storage, with another policy.
    pub fn with_other_policy(&self, policy: Arc<dyn Policy>) -> Registry {
        Registry::new(self.registry.storage().clone(), policy)
    }

    /// Signs with `key` and submits at time `now`.
    pub fn submit_as(&self, key: &SigningKey, request: WriteRequest, now: u64) -> Result<WriteOutcome, RegistryError> {
        let jws = signing::sign(key, &self.instance, request, now, 300).unwrap();
        self.registry.submit(&jws, now)
    }

    /// Signs as the first officer and submits.
    pub fn submit(&self, request: WriteRequest) -> Result<WriteOutcome, RegistryError> {
        self.submit_as(&self.admin, request, NOW)
    }

    /// Creates a token procedure.
    pub fn procedure(&self, name: &str, domain: &str, protocol: &str, allowed: &[&str]) {
        self.submit(WriteRequest::CreateProcedure {
            certificate_days: None,
            name: name.into(),
            domain: domain.into(),
            protocol: protocol.into(),
            allowed_domains: allowed.iter().map(|s| s.to_string()).collect(),
            require_preregistration: None,
        })
        .unwrap();
    }

    /// Registers a pattern with defaults.
    pub fn register(&self, procedure: &str, fqdn: &str) -> Result<u64, RegistryError> {
        self.register_with(Reg { procedure, fqdn, ..Default::default() })
    }

    /// Registers with options.
    pub fn register_with(&self, reg: Reg<'_>) -> Result<u64, RegistryError> {
        let sealing = self.registry.sealing_key().unwrap().public_text();
        let outcome = self.submit(WriteRequest::CreateRegistration {
            password_sealed: reg.password.map(|p| prereg::sealing::seal(&sealing, p).unwrap()),
            procedure: reg.procedure.into(),
            fqdn: reg.fqdn.into(),
            ip: reg.ip.map(Into::into),
            serial: reg.serial.map(Into::into),
            password_hash: None,
            valid_days: reg.valid_days,
            max_enrollments: reg.max_enrollments,
        })?;
        Ok(outcome.id.unwrap())
    }

    /// A dry-run decision.
    pub fn check(&self, req: Req<'_>) -> DecisionReport {
        self.decide(req, DecisionMode::DryRun, NOW)
    }

    /// A real decision.
    pub fn enroll(&self, req: Req<'_>) -> DecisionReport {
        self.decide(req, DecisionMode::Enroll, NOW)
    }

    /// A decision at time `now`.
    pub fn decide(&self, req: Req<'_>, mode: DecisionMode, now: u64) -> DecisionReport {
        self.registry.decide(req.input(), mode, now).unwrap()
    }
}

/// A registration to create.
#[derive(Default, Clone, Copy)]
pub struct Reg<'a> {
    pub procedure: &'a str,
    pub fqdn: &'a str,
    pub ip: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub password: Option<&'a str>,
    pub valid_days: Option<u32>,
    pub max_enrollments: Option<u32>,
}

/// An enrollment request.
#[derive(Default, Clone, Copy)]
pub struct Req<'a> {
    pub procedure: &'a str,
    pub fqdn: &'a str,
    pub ip: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub password: Option<&'a str>,
}

impl Req<'_> {
    pub fn input(&self) -> EnrollmentInput {
        EnrollmentInput {
            procedure: self.procedure.into(),
            fqdn: self.fqdn.into(),
            ip: self.ip.map(Into::into),
            serial: self.serial.map(Into::into),
            password: self.password.map(|p| Zeroizing::new(p.to_owned())),
            ..Default::default()
        }
    }
}

/// Shorthand for a request by procedure and name.
pub fn req<'a>(procedure: &'a str, fqdn: &'a str) -> Req<'a> {
    Req { procedure, fqdn, ..Default::default() }
}

/// A plain registration request (no IP, serial, password or limits).
pub fn create_registration(procedure: &str, fqdn: &str) -> WriteRequest {
    WriteRequest::CreateRegistration {
        password_sealed: None,
        procedure: procedure.into(),
        fqdn: fqdn.into(),
        ip: None,
        serial: None,
        password_hash: None,
        valid_days: None,
        max_enrollments: None,
    }
}

/// A token procedure `name` of `domain` for `protocol` that requires
/// preregistration, with the defaults otherwise.
pub fn create_procedure(name: &str, domain: &str, protocol: &str) -> WriteRequest {
    WriteRequest::CreateProcedure {
        certificate_days: None,
        name: name.into(),
        domain: domain.into(),
        protocol: protocol.into(),
        allowed_domains: vec![],
        require_preregistration: Some(true),
    }
}

/// Every record of the audit log, through the REST API, page by page.
pub fn audit_log(client: &prereg::client::Client) -> Vec<prereg::store::AuditRecord> {
    let (mut records, mut after) = (Vec::new(), 0);
    loop {
        let page = client.audit(after, 1000).unwrap();
        records.extend(page.items);
        match page.next_after {
            Some(next) => after = next,
            None => return records,
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `prereg` binary, run in `dir`, with none of the caller's `PREREG_*`
/// settings.
pub fn prereg_command(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_prereg"));
    cmd.current_dir(dir).env_remove("PREREG_DATA").env_remove("PREREG_POLICY").env_remove("PREREG_KEY");
    cmd
}

/// Runs `prereg --data data ARGS` in `dir` without `--server` (another
/// process on the same data folder as a running service); its output.
pub fn run_local(dir: &std::path::Path, args: &[&str]) -> String {
    let out = prereg_command(dir).args(["--data", "data"]).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The URL a `prereg serve` child started with piped standard output says
/// it serves on, and that output (keep it open while the child runs: it may
/// print more); `None` if the child stopped first.
pub fn serving_url(child: &mut std::process::Child) -> Option<(String, std::io::BufReader<std::process::ChildStdout>)> {
    use std::io::BufRead;
    let mut stdout = std::io::BufReader::new(child.stdout.take()?);
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(rest) = line.strip_prefix("prereg serving on ") {
            return Some((rest.split_whitespace().next()?.to_owned(), stdout));
        }
    }
}

/// A `prereg serve` process on a free loopback port, over the data folder
/// `dir/data` (initialised on first start). Its logs go to `dir/server.log`.
pub struct Server {
    pub child: std::process::Child,
    pub url: String,
    pub dir: std::path::PathBuf,
    /// Its data folder (`--data`), under `dir`.
    data: String,
    log: std::path::PathBuf,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Starts it and waits until it listens.
    pub fn start(dir: &std::path::Path) -> Server {
        Server::start_with(dir, "server.log", &["--data", "data", "serve", "--listen", "127.0.0.1:0"])
    }

    /// A node of a cluster: the data folder `dir/NODE`, the store `database`,
    /// logging to `dir/NODE.log`.
    pub fn start_node(dir: &std::path::Path, node: &str, database: &str) -> Server {
        let log = format!("{node}.log");
        let args = ["--data", node, "--database", database, "serve", "--listen", "127.0.0.1:0", "--node", node];
        Server::start_with(dir, &log, &args)
    }

    /// `prereg ARGS` (a `serve`) in `dir`, logging to `dir/LOG`.
    pub fn start_with(dir: &std::path::Path, log: &str, args: &[&str]) -> Server {
        let mut command = prereg_command(dir);
        command.args(args);
        Server::start_command(dir, log, args, command)
    }

    /// [`Server::start_with`] as another user (`setpriv`, run as root): a
    /// service whose file permissions mean something.
    pub fn start_as_user(dir: &std::path::Path, uid: u32, args: &[&str]) -> Server {
        let mut command = std::process::Command::new("setpriv");
        command
            .current_dir(dir)
            .env_remove("PREREG_DATA")
            .env_remove("PREREG_POLICY")
            .env_remove("PREREG_KEY")
            .args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_prereg"))
            .args(args);
        Server::start_command(dir, "server.log", args, command)
    }

    /// [`Server::start_with`], with the service's clock `offset` ahead
    /// (libfaketime's `FAKETIME` syntax, e.g. `+2d`; `.ci/run` installs the
    /// `faketime` package): how a test sees what happens once something has
    /// expired. The library is preloaded into `prereg` itself rather than
    /// through the `faketime` program, which forks: killing it would leave
    /// the service running.
    pub fn start_later(dir: &std::path::Path, log: &str, offset: &str, args: &[&str]) -> Server {
        let library = std::fs::read_dir("/usr/lib")
            .unwrap()
            .filter_map(|entry| Some(entry.ok()?.path().join("faketime/libfaketime.so.1")))
            .find(|path| path.exists())
            .expect("libfaketime (the faketime package; .ci/run installs it)");
        let mut command = prereg_command(dir);
        command.env("LD_PRELOAD", library).env("FAKETIME", offset).env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        command.args(args);
        Server::start_command(dir, log, args, command)
    }

    #[allow(clippy::zombie_processes, reason = "Drop kills and waits")]
    fn start_command(dir: &std::path::Path, log: &str, args: &[&str], mut command: std::process::Command) -> Server {
        let log = dir.join(log);
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = command.stdout(std::process::Stdio::piped()).stderr(log_file).spawn().unwrap();
        let Some((url, stdout)) = serving_url(&mut child) else {
            panic!("the server stopped: {}", std::fs::read_to_string(&log).unwrap_or_default())
        };
        let data = args.iter().position(|a| *a == "--data").map_or("prereg-data", |i| args[i + 1]).to_owned();
        Server { child, url, dir: dir.to_owned(), data, log, _stdout: stdout }
    }

    /// Its log so far: what it logged until now (lines are written every
    /// 20 ms by a thread of their own, so this waits a little first).
    pub fn log(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(80));
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first officer's key.
    pub fn admin_key(&self) -> SigningKey {
        let pem = std::fs::read_to_string(self.dir.join(&self.data).join("officer.key")).unwrap();
        SigningKey::from_pem(&pem, "officer.key").unwrap()
    }

    /// A REST client that reads as the first officer (an officer of every
    /// domain).
    pub fn client(&self) -> prereg::client::Client {
        self.anonymous().with_officer(Arc::new(self.admin_key()))
    }

    /// An `Authorization` value for the first officer (a fresh access
    /// token), for raw HTTP calls.
    pub fn officer_authorization(&self) -> String {
        let instance = self.anonymous().instance().unwrap().instance_id;
        let token =
            signing::access::sign_access(&self.admin_key(), &instance, prereg::registry::unix_now(), 240).unwrap();
        format!("Bearer {token}")
    }

    /// The body of a GET of `path` by the first officer.
    pub fn read_as_officer(&self, path: &str) -> String {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let response = ureq::get(&url).header("authorization", self.officer_authorization()).call().unwrap();
        response.into_body().read_to_string().unwrap()
    }

    /// A REST client with no credential.
    pub fn anonymous(&self) -> prereg::client::Client {
        prereg::client::Client::new(&self.url)
    }

    /// Adds the CA caller `name` for `procedures` (signed by the first
    /// officer) and returns its secret.
    pub fn add_caller(&self, name: &str, procedures: &[&str]) -> String {
        let secret = prereg::service::auth::new_caller_secret();
        let request = WriteRequest::AddCaller {
            name: name.into(),
            procedures: procedures.iter().map(|p| (*p).to_owned()).collect(),
            secret_sha256: Some(prereg::service::auth::caller_secret_sha256(&secret)),
            certificate_sha256: None,
            webhook_secret_sealed: None,
        };
        let client = self.client();
        client.submit(&sign_for(&client, &self.admin_key(), request.clone()), &request).unwrap();
        secret
    }

    /// A REST client that asks for decisions as a new CA caller of `procedures`.
    pub fn caller_client(&self, procedures: &[&str]) -> prereg::client::Client {
        let name = format!("caller-{}", rand_name());
        self.anonymous().with_caller_secret(&self.add_caller(&name, procedures))
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// SIGKILL, then waits.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs `request` for the server's instance with `key`.
pub fn sign_for(client: &prereg::client::Client, key: &SigningKey, request: WriteRequest) -> String {
    let instance = client.instance().unwrap().instance_id;
    signing::sign(key, &instance, request, prereg::registry::unix_now(), 300).unwrap()
}

/// An `import.csv` request for `file` with its digest keyed for the server
/// behind `client`, as an officer's client signs it.
pub fn import_request(
    client: &prereg::client::Client,
    file: &[u8],
    procedure: &str,
    partial: bool,
    dry_run: bool,
) -> WriteRequest {
    let public = client.instance().unwrap().sealing_key.unwrap();
    let temporary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(temporary.path(), file).unwrap();
    let (sha256, digest_key) = prereg::import::signed_digest(temporary.path(), &public).unwrap();
    WriteRequest::ImportCsv { procedure: procedure.into(), sha256, digest_key: Some(digest_key), partial, dry_run }
}

/// One enrollment of the audit log: outcome, reason, and the protocol's
/// transaction id (empty when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedEnrollment {
    pub outcome: String,
    pub reason: String,
    pub transaction: String,
}

impl AuditedEnrollment {
    /// (outcome, reason), for comparing with a list of expectations.
    pub fn decision(&self) -> (&str, &str) {
        (&self.outcome, &self.reason)
    }
}

/// The enrollments in the audit log of `dir/data`, in order (`prereg audit list --json`).
pub fn audited_enrollments(dir: &std::path::Path) -> Vec<AuditedEnrollment> {
    audited_enrollments_in(dir, "data")
}

/// Every audit record of the data folder `dir/data`, as `prereg audit list --json` prints them.
pub fn audit_records(dir: &std::path::Path) -> Vec<serde_json::Value> {
    audit_records_in(dir, "data")
}

/// Every audit record of the data folder `dir/DATA`.
pub fn audit_records_in(dir: &std::path::Path, data: &str) -> Vec<serde_json::Value> {
    let out = prereg_command(dir).args(["--data", data, "audit", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    match serde_json::from_slice(&out.stdout).unwrap() {
        serde_json::Value::Array(records) => records,
        other => panic!("not a list of audit records: {other}"),
    }
}

/// The enrollments in the audit log of the data folder `dir/DATA`, in order.
pub fn audited_enrollments_in(dir: &std::path::Path, data: &str) -> Vec<AuditedEnrollment> {
    audit_records_in(dir, data)
        .iter()
        .filter(|r| r["action"] == "enroll")
        .map(|r| {
            let request: serde_json::Value = serde_json::from_str(r["request"].as_str().unwrap()).unwrap();
            AuditedEnrollment {
                outcome: r["outcome"].as_str().unwrap().to_owned(),
                // A front's refusal of a request's content has no reason code.
                reason: r["reason"].as_str().unwrap_or_default().to_owned(),
                transaction: request["transaction"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// A short random name.
pub fn rand_name() -> String {
    let mut bytes = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    prereg_pki::hex(&bytes)
}

/// A root CA made by openssl in `dir`: `NAME.key` and `NAME.crt` (P-256,
/// CA:TRUE, keyCertSign, two days), with `subject`.
pub fn openssl_root_ca(dir: &std::path::Path, name: &str, subject: &str) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    run(&[
        "req",
        "-x509",
        "-key",
        &key,
        "-subj",
        subject,
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-out",
        &crt,
    ]);
}

/// A certificate issued by openssl in `dir` from the CA `issuer` (`ISSUER.key`,
/// `ISSUER.crt`): `NAME.key` (P-256) and `NAME.crt` for `subject`, with the
/// extensions of the file `extensions`, valid one day.
pub fn openssl_issue(dir: &std::path::Path, name: &str, subject: &str, issuer: &str, extensions: &str) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
    let (ca_crt, ca_key) = (format!("{issuer}.crt"), format!("{issuer}.key"));
    run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    run(&["req", "-new", "-key", &key, "-subj", subject, "-out", &csr]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        extensions,
        "-out",
        &crt,
    ]);
}
