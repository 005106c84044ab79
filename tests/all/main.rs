//! Integration tests of prereg: one binary, a module per feature. Everything
//! goes through the real path: the default policy as a WebAssembly component
//! in wasmtime, SQLite in a temporary data folder, and (in `cli`) the real
//! `prereg` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

mod audit_chain;
mod bench;
mod browser;
mod cli;
mod cmp;
mod components;
mod faults;
mod hot_swap;
mod imports;
mod lifecycle;
mod memory_index;
mod policy_author;
mod policy_versions;
mod precompiled;
mod readme;
mod sandbox;
mod scep;
mod service;
mod shadow;
mod signed_writes;
mod spec_rules;
mod uniqueness;
