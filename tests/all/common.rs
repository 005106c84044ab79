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

/// A fresh instance.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub registry: Registry,
    pub admin: SigningKey,
    pub instance: String,
}

impl Fixture {
    /// With the built-in default policy (WebAssembly).
    pub fn new() -> Self {
        Self::with_policy(default_policy())
    }

    /// With any policy.
    pub fn with_policy(policy: Arc<dyn Policy>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("prereg.sqlite3")).unwrap();
        let admin = SigningKey::generate(Algorithm::EdDsa);
        let instance = prereg::registry::initialise(&storage, "admin", &admin, NOW).unwrap();
        let registry = Registry::new(Arc::new(storage), policy);
        Fixture { dir, registry, admin, instance }
    }

    /// The database file.
    pub fn database(&self) -> std::path::PathBuf {
        self.dir.path().join("prereg.sqlite3")
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
        let outcome = self.submit(WriteRequest::CreateRegistration {
            procedure: reg.procedure.into(),
            fqdn: reg.fqdn.into(),
            ip: reg.ip.map(Into::into),
            serial: reg.serial.map(Into::into),
            password_hash: reg.password.map(|p| prereg::password::hash(p).unwrap()),
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
        procedure: procedure.into(),
        fqdn: fqdn.into(),
        ip: None,
        serial: None,
        password_hash: None,
        valid_days: None,
        max_enrollments: None,
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
