//! The guests built by `host/build.rs`.

mod paths {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The default policy component, embedded in the binary.
pub const DEFAULT_POLICY_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default-policy.wasm"));

/// Path of the hostile test policy component (a test fixture, not embedded).
pub const HOSTILE_POLICY_PATH: &str = paths::HOSTILE_POLICY;

/// Path of the probe policy component (a benchmark fixture, not embedded).
pub const PROBE_POLICY_PATH: &str = paths::PROBE_POLICY;

/// Path of the default policy component as built.
pub const DEFAULT_POLICY_PATH: &str = paths::DEFAULT_POLICY;

/// Path of the `exact-only` example policy as built.
pub const EXACT_ONLY_POLICY_PATH: &str = paths::EXACT_ONLY_POLICY;

/// Path of the `multi-label` example policy as built.
pub const MULTI_LABEL_POLICY_PATH: &str = paths::MULTI_LABEL_POLICY;

/// Path of the `serial-required` example policy as built.
pub const SERIAL_REQUIRED_POLICY_PATH: &str = paths::SERIAL_REQUIRED_POLICY;

/// SHA-256 (hex) of the embedded default policy component.
pub static DEFAULT_POLICY_SHA256: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::audit::hex(&<sha2::Sha256 as sha2::Digest>::digest(DEFAULT_POLICY_COMPONENT)));
