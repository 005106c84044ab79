//! Builds the test guests (`tests/guests`: the hostile, probe and legacy policies)
//! and the example policies other than the default (`policies/`) as
//! `wasm32-wasip2` components, with the build code `host/engine/build.rs` uses
//! (`host/engine/build/guests.rs`): a dev-only crate, as wasmtime's
//! `test-programs-artifacts` is, so the production build builds none of them.

// A build script reports failure by panicking with a message: that is its error path.
#![allow(clippy::expect_used)]

#[path = "../../host/engine/build/guests.rs"]
mod guests;

use std::path::PathBuf;

const GUESTS: &[(&str, &str)] = &[
    ("prereg-policy-exact-only", "EXACT_ONLY_POLICY"),
    ("prereg-policy-multi-label", "MULTI_LABEL_POLICY"),
    ("prereg-policy-serial-required", "SERIAL_REQUIRED_POLICY"),
    ("prereg-policy-hostile", "HOSTILE_POLICY"),
    ("prereg-policy-probe", "PROBE_POLICY"),
    ("prereg-policy-legacy", "LEGACY_POLICY"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.ancestors().nth(2).expect("tests/artifacts sits in the workspace").to_path_buf();
    guests::build(&workspace, GUESTS, "tests/artifacts/build.rs");
}
