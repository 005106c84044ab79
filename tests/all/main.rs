//! Integration tests of prereg: one binary, a module per feature. Everything
//! goes through the real path: the default policy as a WebAssembly component
//! in wasmtime, SQLite in a temporary data folder, and (in `cli`) the real
//! `prereg` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod pg;

/// The core suite: the rules through the library, on both storage backends.
/// The same files are compiled once per backend (`BACKEND`), so the suite
/// cannot drift between them. On PostgreSQL each test has a database of its
/// own on the server `.ci/run` starts (see `pg`).
macro_rules! core_suite {
    ($backend:ident) => {
        use crate::common::Backend;
        const BACKEND: Backend = Backend::$backend;
        #[path = "core_suite/acme_state.rs"]
        mod acme_state;
        #[path = "core_suite/audit_chain.rs"]
        mod audit_chain;
        #[path = "core_suite/certificates.rs"]
        mod certificates;
        #[path = "core_suite/group_commit.rs"]
        mod group_commit;
        #[path = "core_suite/hot_swap.rs"]
        mod hot_swap;
        #[path = "core_suite/imports.rs"]
        mod imports;
        #[path = "core_suite/lifecycle.rs"]
        mod lifecycle;
        #[path = "core_suite/memory_index.rs"]
        mod memory_index;
        #[path = "core_suite/signed_writes.rs"]
        mod signed_writes;
        #[path = "core_suite/spec_rules.rs"]
        mod spec_rules;
        #[path = "core_suite/uniqueness.rs"]
        mod uniqueness;
    };
}

#[allow(clippy::duplicate_mod, reason = "the core suite is compiled once per backend, on purpose")]
mod postgres;
#[allow(clippy::duplicate_mod, reason = "the core suite is compiled once per backend, on purpose")]
mod sqlite;

mod acme;
mod api_properties;
mod audit_log;
mod bench;
mod browser;
mod cli;
mod cluster;
mod cmp;
mod cmp_conformance;
mod components;
mod est;
mod faults;
mod integrity;
mod memory_index_service;
mod network;
mod policy_author;
mod policy_versions;
mod precompiled;
mod readme;
mod renewal;
mod sandbox;
mod scep;
mod service;
mod shadow;
mod webhooks;
