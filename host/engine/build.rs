//! Builds the default policy, the guest that `prereg-engine` embeds (and
//! with it the `prereg` binary), as a `wasm32-wasip2` component (see
//! `build/guests.rs`), so that `cargo build` from a clean checkout has it. The test guests and the example policies
//! are built by the dev-only `prereg-test-artifacts` crate
//! (`tests/artifacts`).

// A build script reports failure by panicking with a message: that is its error path.
#![allow(clippy::expect_used)]

#[path = "build/guests.rs"]
mod guests;

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.ancestors().nth(2).expect("host/engine sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let components = guests::build(&workspace, &[("prereg-policy-default", "DEFAULT_POLICY")], "host/engine/build.rs");
    // A copy under a fixed name, for `include_bytes!`.
    std::fs::copy(components.join("prereg_policy_default.wasm"), out_dir.join("default-policy.wasm"))
        .expect("copy the default policy");
}
