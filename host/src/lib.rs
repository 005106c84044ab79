//! prereg: device preregistration for automated certificate enrollment (SCEP,
//! CMP), with the matching policy as a hot-swappable WebAssembly component.
//!
//! - [`engine`], [`policy`], [`builtin`], [`host_calls`]: the policy engine,
//!   the `prereg-engine` crate (wasmtime, the sandbox, the guard), re-exported.
//! - [`instance`]: opening a data folder: store, sealing key, policy, registry.
//! - [`registry`]: the one place rules are applied: signed writes, decisions,
//!   imports, shadow mode, audit; [`evaluation`] is its `PolicyHost`, and
//!   [`index`] the in-memory candidate index.
//! - [`store`]: storage by role, on SQLite or PostgreSQL (feature `postgres`):
//!   the `prereg-store` crate, re-exported.
//! - [`signing`], [`audit`], [`password`], [`sealing`]: signed requests, the
//!   hash chain, password hashes, passwords sealed for CMP.
//! - [`import`]: bulk CSV import (the reader, columns, progress, report).
//! - [`data_dir`], [`process`], [`pem`], [`cluster`]: the data folder, who a
//!   process is, PEM files, a node following the store.
//! - Behind features (all on by default): `enroll` (the CMP and SCEP fronts,
//!   the instance CA), `service` (`prereg serve`), `client` (the REST client),
//!   with [`api`], the wire types they share.
//! - [`cases`], [`scratch`], [`dataset`], [`bench`](mod@bench), [`policy_bench`],
//!   [`scaffold`]: policy test cases, throwaway instances, synthetic data,
//!   the load harness, the policy author's tools.
//!
//! Opening an instance from a data folder:
//!
//! ```no_run
//! use prereg::{DataDir, Instance, registry::{DecisionMode, EnrollmentInput, unix_now}};
//! let instance = Instance::open(&DataDir::new("prereg-data"), None)?;
//! let report = instance.registry().decide(
//!     EnrollmentInput { procedure: "routers".into(), fqdn: "router5.dept.example.com".into(), ..Default::default() },
//!     DecisionMode::DryRun,
//!     unix_now(),
//! )?;
//! println!("{} ({})", report.allowed, report.reason);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod api;
pub mod audit;
pub mod bench;
pub mod cases;
#[cfg(feature = "client")]
pub mod client;
pub mod cluster;
pub mod data_dir;
pub mod dataset;
#[cfg(feature = "enroll")]
pub mod enroll;
pub mod evaluation;
pub mod import;
pub mod index;
pub mod instance;
pub mod password;
#[cfg(feature = "enroll")]
pub mod pki;
pub mod policy_bench;
pub mod process;
pub mod registry;
pub mod scaffold;
pub mod scratch;
pub mod sealing;
#[cfg(feature = "service")]
pub mod service;
pub mod signing;

/// The policy engine (the `prereg-engine` crate): wasmtime, one engine, policies
/// compiled once, a fresh store per evaluation, deny-all WASI, epoch deadline,
/// memory cap.
pub mod engine {
    pub use prereg_engine::{
        Allocation, Candidate, Decided, EPOCH_TICK, EngineError, HostError, Limits, PolicyEngine, PolicyHost,
        WasmPolicy, cache, decide, guard, inspect,
    };
}
pub use prereg_engine::{builtin, host_calls, policy, public_suffix};
/// Storage by role (the `prereg-store` crate), re-exported.
pub use prereg_store as store;
/// PEM files and the TLS provider (in `prereg-store`, which needs them for PostgreSQL).
pub use prereg_store::pem;

pub use data_dir::DataDir;
pub use engine::{Allocation, EngineError, Limits, PolicyEngine, WasmPolicy};
pub use registry::{Registry, RegistryError};

pub use instance::{Instance, OpenError, load_policy, open_registry, open_registry_with};
