//! Policy versions: load, list, activate, roll back; through the library and
//! the binary (where the active version survives a restart).

use prereg::RegistryError;
use prereg::policy::Policy as _;
use prereg::signing::{self, Algorithm, SigningKey, WriteRequest};
use sha2::{Digest, Sha256};

use crate::common::{Fixture, NOW, default_policy, hostile, prereg_command, req};

fn hostile_bytes() -> Vec<u8> {
    std::fs::read(prereg_test_artifacts::HOSTILE_POLICY).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    prereg::audit::hex(&Sha256::digest(bytes))
}

fn sign(f: &Fixture, key: &SigningKey, request: WriteRequest) -> String {
    signing::sign(key, &f.instance, request, NOW, 300).unwrap()
}

fn activate(f: &Fixture, policy: &str) -> Result<prereg::registry::PolicyChange, RegistryError> {
    let jws = sign(f, &f.admin, WriteRequest::ActivatePolicy { policy: policy.into() });
    f.registry.activate_policy(&jws, NOW)
}

#[test]
fn load_list_activate_and_roll_back() {
    let f = Fixture::new();
    f.procedure("p", "D", "scep", &[]);
    f.register("p", "dev.example.com").unwrap();
    let bytes = hostile_bytes();
    let hostile_sha = sha(&bytes);
    assert_eq!(hostile_sha, hostile().info().sha256);

    // Loaded, not active: decisions do not change.
    let jws = sign(
        &f,
        &f.admin,
        WriteRequest::LoadPolicy { sha256: hostile_sha.clone(), activate: false, name: None, version: None },
    );
    let loaded = f.registry.load_policy(&jws, &bytes, NOW).unwrap();
    assert!(!loaded.active);
    assert_eq!(loaded.policy.as_ref().map(|p| (p.name.as_str(), p.version.as_str())), Some(("hostile", "0.0.1")));
    assert!(f.check(req("p", "dev.example.com")).allowed);
    // Replaying the request is refused.
    assert!(matches!(f.registry.load_policy(&jws, &bytes, NOW), Err(RegistryError::Store(_))));

    // Activated by name@version: the next decision is the new policy's.
    let change = activate(&f, "hostile@0.0.1").unwrap();
    assert_eq!(change.policy.unwrap().sha256, hostile_sha);
    let denied = f.check(req("p", "dev.example.com"));
    assert_eq!(
        (denied.allowed, denied.reason.as_str(), denied.policy.sha256.as_str()),
        (false, "no-registration", hostile_sha.as_str())
    );
    let versions = f.registry.policy_versions().unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions[0].active);

    // Rolled back to the built-in policy, then forward by SHA-256 prefix.
    assert!(activate(&f, "built-in").unwrap().policy.is_none());
    assert!(f.check(req("p", "dev.example.com")).allowed);
    assert!(!f.registry.policy_versions().unwrap()[0].active);
    activate(&f, &hostile_sha[..10]).unwrap();
    assert!(!f.check(req("p", "dev.example.com")).allowed);
    activate(&f, "built-in").unwrap();

    // Unknown and ambiguous selectors.
    assert!(matches!(activate(&f, "nobody@1.0"), Err(RegistryError::NotFound(_))));
    assert!(matches!(activate(&f, "xyz"), Err(RegistryError::Invalid { .. })));

    // Every change is audited, with the policy's hash.
    let audit = f.registry.audit_records(0, 1000).unwrap();
    let changes: Vec<(&str, Option<&str>)> = audit
        .iter()
        .filter(|r| r.action.starts_with("policy."))
        .map(|r| (r.action.as_str(), r.policy_sha256.as_deref()))
        .collect();
    let default_sha = default_policy().info().sha256.clone();
    assert_eq!(
        changes,
        vec![
            ("policy.load", Some(hostile_sha.as_str())),
            ("policy.activate", Some(hostile_sha.as_str())),
            ("policy.activate", Some(default_sha.as_str())),
            ("policy.activate", Some(hostile_sha.as_str())),
            ("policy.activate", Some(default_sha.as_str())),
        ]
    );
    assert_eq!(f.registry.verify_audit().unwrap().fault, None);
}

#[test]
fn refused_components_and_requests_change_nothing() {
    let f = Fixture::new();
    let core_module = wat::parse_str("(module)").unwrap();
    let jws = sign(
        &f,
        &f.admin,
        WriteRequest::LoadPolicy { sha256: sha(&core_module), activate: true, name: None, version: None },
    );
    let e = f.registry.load_policy(&jws, &core_module, NOW).unwrap_err();
    assert!(matches!(e, RegistryError::PolicyRefused(ref m) if m.contains("core WebAssembly module")), "{e}");
    assert!(f.registry.policy_versions().unwrap().is_empty());
    // The refused request's id was not consumed: the same request with the
    // right file goes through... but not with another file than the signed one.
    let e = f.registry.load_policy(&jws, &hostile_bytes(), NOW).unwrap_err();
    assert!(matches!(e, RegistryError::Invalid { ref field, .. } if field == "sha256"), "{e}");
    // Only an officer of every domain may change the policy.
    let bob = SigningKey::generate(Algorithm::EdDsa);
    f.submit(WriteRequest::AddOfficer {
        name: "bob".into(),
        public_key_pem: bob.public_key().to_pem().unwrap(),
        domains: vec!["D".into()],
    })
    .unwrap();
    let bytes = hostile_bytes();
    let jws =
        sign(&f, &bob, WriteRequest::LoadPolicy { sha256: sha(&bytes), activate: true, name: None, version: None });
    assert!(matches!(f.registry.load_policy(&jws, &bytes, NOW), Err(RegistryError::Forbidden { .. })));
    assert_eq!(f.registry.policy().info().sha256, default_policy().info().sha256);
}

#[test]
fn the_active_version_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hostile.wasm"), hostile_bytes()).unwrap();
    let run = |args: &[&str]| {
        let out = prereg_command(dir.path()).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    assert_eq!(run(&["init"]).0, Some(0));
    let (code, out) = run(&["policy", "load", "hostile.wasm", "--activate"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("loaded hostile 0.0.1 sha256:") && out.contains(", active"), "{out}");
    // A new process: the active version comes back from the store.
    let (_, out) = run(&["policy", "info"]);
    assert!(out.contains("name        hostile"), "{out}");
    let (_, out) = run(&["policy", "list"]);
    assert!(out.lines().any(|l| l.starts_with("*") && l.contains("hostile")), "{out}");
    let (code, out) = run(&["policy", "activate", "built-in"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("active: built-in"), "{out}");
    let (_, out) = run(&["policy", "info"]);
    assert!(out.contains("name        default"), "{out}");
    // A file that is not a policy is refused with its reason; nothing changes.
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let (code, out) = run(&["policy", "load", "junk.wasm", "--activate"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("policy refused") && out.contains("core WebAssembly module"), "{out}");
    let (_, out) = run(&["policy", "info"]);
    assert!(out.contains("name        default"), "{out}");
}
