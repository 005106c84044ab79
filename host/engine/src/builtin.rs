//! The guest built by `host/engine/build.rs`: the default policy. (The test guests
//! and the example policies: the dev-only `prereg-test-artifacts` crate.)

mod paths {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// How the built-in policy is named as a source (`PolicyInfo::source`).
pub const SOURCE: &str = "built-in";

/// The default policy component, embedded in the binary.
pub const DEFAULT_POLICY_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default-policy.wasm"));

/// Path of the default policy component as built.
pub const DEFAULT_POLICY_PATH: &str = paths::DEFAULT_POLICY;

/// SHA-256 (hex) of the embedded default policy component.
pub static DEFAULT_POLICY_SHA256: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::sha256_hex(DEFAULT_POLICY_COMPONENT));
