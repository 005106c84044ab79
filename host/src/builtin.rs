//! The guests built by `host/build.rs`.

mod paths {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The default policy component, embedded in the binary.
pub const DEFAULT_POLICY_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default-policy.wasm"));

/// Path of the hostile test policy component (a test fixture, not embedded).
pub const HOSTILE_POLICY_PATH: &str = paths::HOSTILE_POLICY;

/// Path of the default policy component as built.
pub const DEFAULT_POLICY_PATH: &str = paths::DEFAULT_POLICY;
