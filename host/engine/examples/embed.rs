//! Embedding prereg-engine: decide enrollments with the built-in default
//! policy over an in-memory host, no data folder and no database.
//!
//! ```text
//! cargo run --release -p prereg-engine --example embed
//! ```
//!
//! A CA keeps its registrations where it likes; here they are a vector. The
//! host answers the policy's questions (the token procedure, the candidate
//! registrations for a name, the password check); the engine runs the policy
//! in its sandbox and checks its answer against what the host handed out.

use prereg_core::{
    EnrollmentRequest, Fqdn, IndexKey, PasswordCheck, Procedure, Protocol, Registration, RegistrationState,
};
use prereg_engine::{Candidate, HostCalls, HostError, Limits, PolicyEngine, PolicyHost, WasmPolicy, decide};

/// One preregistered device, as this CA keeps it.
pub struct Device {
    /// The domain it is registered under.
    pub domain: &'static str,
    /// What the policy sees of it.
    pub registration: Registration,
    /// Its password (a real CA keeps a slow hash).
    pub password: Option<&'static str>,
}

/// The facts of one decision: the CA's tables, and the password the
/// enrolling device presented (which never reaches the policy).
pub struct MemoryHost {
    /// The token procedures.
    pub procedures: Vec<Procedure>,
    /// The preregistered devices.
    pub devices: Vec<Device>,
    /// The password the enrolling device presented.
    pub presented_password: Option<String>,
    /// The time of the decision (Unix seconds).
    pub now: u64,
}

impl PolicyHost for MemoryHost {
    fn procedure(&mut self, name: &str) -> Result<Option<Procedure>, HostError> {
        Ok(self.procedures.iter().find(|p| p.name == name).cloned())
    }

    fn candidates(&mut self, domain: &str, fqdn: &Fqdn, limit: usize) -> Result<Vec<Candidate>, HostError> {
        // The registrations whose pattern could match: the same index keys a
        // database would use (the engine checks the patterns itself).
        let probes = IndexKey::probes(fqdn);
        let found: Vec<Candidate> = self
            .devices
            .iter()
            .filter(|d| d.domain == domain && probes.contains(&IndexKey::of_canonical(&d.registration.pattern)))
            .map(|d| Candidate { registration: d.registration.clone(), domain: d.domain.into() })
            .collect();
        if found.len() > limit {
            return Err(HostError::TooMany);
        }
        Ok(found)
    }

    fn check_password(&mut self, registration: u64) -> Result<PasswordCheck, HostError> {
        let device = self.devices.iter().find(|d| d.registration.id == registration);
        Ok(match (device.and_then(|d| d.password), &self.presented_password) {
            (None, _) => PasswordCheck::NotSet,
            (Some(_), None) => PasswordCheck::NotProvided,
            // A real host compares slow hashes, in constant time.
            (Some(expected), Some(given)) if expected == given => PasswordCheck::Match,
            (Some(_), Some(_)) => PasswordCheck::Mismatch,
        })
    }

    fn now(&self) -> u64 {
        self.now
    }
}

/// This CA's tables, and the password a device presented.
pub fn host(presented_password: Option<&str>) -> MemoryHost {
    MemoryHost {
        procedures: vec![Procedure {
            name: "routers".into(),
            domain: "corp".into(),
            protocol: Protocol::Scep,
            require_preregistration: true,
            allowed_domains: vec!["example.com".into()],
        }],
        devices: vec![Device {
            domain: "corp",
            registration: Registration {
                id: 1,
                pattern: "router*.dept.example.com".into(),
                ip: None,
                serial: None,
                has_password: true,
                state: RegistrationState::Open,
                expires_at: None,
                max_enrollments: None,
                enrollments: 0,
            },
            password: Some("s3cret-enough"),
        }],
        presented_password: presented_password.map(String::from),
        now: 1_767_225_600,
    }
}

/// The example's three requests: (name, presented password).
pub const REQUESTS: [(&str, Option<&str>); 3] = [
    ("router5.dept.example.com", Some("s3cret-enough")),
    ("router5.dept.example.com", Some("guessed")),
    ("printer1.dept.example.com", None),
];

/// Decides `fqdn` for a device presenting `password`, over the in-memory host.
pub fn decide_one(policy: &WasmPolicy, fqdn: &str, password: Option<&str>) -> prereg_core::Decision {
    let request = EnrollmentRequest {
        procedure: "routers".into(),
        fqdn: fqdn.into(),
        ip: None,
        serial: None,
        has_password: password.is_some(),
    };
    decide(policy, Box::new(host(password)), &request, HostCalls::Live).decision
}

fn main() -> Result<(), prereg_engine::EngineError> {
    // One engine per process; the policy is compiled once and decides many times.
    let engine = PolicyEngine::new(Limits::default())?;
    let policy = WasmPolicy::builtin(&engine)?;
    let info = prereg_engine::Policy::info(&policy);
    println!("policy: {} {} (sha256 {})", info.name, info.version, &info.sha256[..16]);
    for (fqdn, password) in REQUESTS {
        let d = decide_one(&policy, fqdn, password);
        println!(
            "{fqdn} (password {}): {} ({}) {}",
            password.map_or("none".to_owned(), |p| format!("{p:?}")),
            if d.allowed { "ALLOW" } else { "DENY" },
            d.reason.code(),
            d.explanation
        );
    }
    Ok(())
}
