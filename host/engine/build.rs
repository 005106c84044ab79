//! Builds the default policy, the guest that `prereg-engine` embeds (and
//! with it the `prereg` binary), so that `cargo build` from a clean checkout
//! has it. The test guests and the example policies are built by the
//! dev-only `prereg-test-artifacts` crate (`tests/artifacts`), as
//! `wasm32-wasip2` components.
//!
//! The default policy is built for `wasm32-unknown-unknown` and made a
//! component here (`wit-component`, what `wasm-tools component new` does),
//! not for `wasm32-wasip2`: Rust's standard library for WASI imports 19
//! functions of `wasi:cli` and `wasi:io` that no policy calls, and a fresh
//! instance pays for each import it links (a third of the instructions of an
//! instantiation). Its linear memory is laid out small: a 128 KiB shadow
//! stack and an initial memory of 512 KiB, whose heap the SDK's allocator
//! uses before it grows the memory (growing a pooled memory costs two
//! `mprotect` calls per instance).

// A build script reports failure by panicking with a message: that is its error path.
#![allow(clippy::expect_used)]

// Shared with tests/artifacts/build.rs, which builds wasm32-wasip2 components.
#[path = "build/guests.rs"]
#[allow(dead_code)]
mod guests;

use std::path::PathBuf;

/// The default policy's package.
const PACKAGE: &str = "prereg-policy-default";
/// The core target it is built for, before it is made a component.
const CORE_TARGET: &str = "wasm32-unknown-unknown";
/// Linker arguments: the shadow stack's size (wasm-ld puts it first, so an
/// overflow traps) and the initial memory (stack, data, then the heap).
const LINK_ARGS: &[&str] = &["-zstack-size=131072", "--initial-memory=524288"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.ancestors().nth(2).expect("host/engine sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let built = guests::compile(&workspace, &[PACKAGE], CORE_TARGET, LINK_ARGS);
    let core = std::fs::read(&built[0]).expect("read the default policy's core module");
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("making the default policy a component failed: {e:#}"));
    // A fixed name, for `include_bytes!` and for the tests that load the file.
    let file = out_dir.join("default-policy.wasm");
    std::fs::write(&file, component).expect("write the default policy component");
    guests::write_paths(&[(PACKAGE, "DEFAULT_POLICY", file)], "host/engine/build.rs");
}
