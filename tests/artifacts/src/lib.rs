//! Paths of the WebAssembly components the tests, benches and policy authors
//! use beside the embedded default policy: the hostile, probe and legacy (WIT 0.1.0) test guests
//! (`tests/guests`) and the example policies (`policies/`), built by this
//! crate's build script. A dev-dependency of `prereg`: `cargo build` of the
//! binary builds none of them; `cargo test`, or
//! `cargo build -p prereg-test-artifacts`, does.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
