//! `prereg policy bench`: what a policy costs, measured on this machine with
//! the real engine: compiling it, instantiating it (the fixed cost of every
//! decision, since each gets a fresh store), and deciding enrollments on a
//! generated dataset in a throwaway store, through the same path as `prereg
//! check`. The full benchmarks are in `benches/` and `prereg bench`.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::bench::Latency;
use crate::dataset::{self, SplitMix64};
use crate::engine::{EngineError, PolicyEngine, WasmPolicy};
use crate::import::ImportProgress;
use crate::policy::{Policy, PolicyInfo};
use crate::registry::{DecisionMode, EnrollmentInput, ImportError, ImportFile, RegistryError};
use crate::scratch::{Scratch, ScratchError};
use crate::signing::WriteRequest;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Registrations in the dataset.
    pub registrations: u32,
    /// Decisions to time.
    pub decisions: u32,
}

/// What `prereg policy bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The policy.
    pub policy: PolicyInfo,
    /// Compiling the component (median of 3), milliseconds.
    pub compile_ms: f64,
    /// Instantiating it in a fresh store, microseconds.
    pub instantiate_us: Latency,
    /// Registrations in the dataset (rows the policy accepted).
    pub registrations: u64,
    /// Rows of the dataset the policy refused.
    pub refused_rows: u64,
    /// One decision (dry run: store read, instantiation, policy, guard), microseconds.
    pub decision_us: Latency,
    /// Decisions made.
    pub decisions: u32,
    /// Of which allowed.
    pub allowed: u32,
    /// Of which `policy-error`.
    pub policy_errors: u32,
    /// Decisions per second on one thread.
    pub decisions_per_second: f64,
    /// Times an instance grew its linear memory, per decision: each growth
    /// of a pooled memory costs two `mprotect` calls. 0 for a policy whose
    /// initial memory holds what a decision allocates (the built-in one).
    pub memory_grows_per_decision: f64,
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The policy.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The throwaway instance.
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    /// Setting up the dataset.
    #[error("setting up the dataset: {0}")]
    Registry(#[from] RegistryError),
    /// Importing the dataset.
    #[error("importing the dataset: {0}")]
    Import(#[from] ImportError),
    /// Writing the dataset.
    #[error("writing the dataset: {0}")]
    Io(#[from] std::io::Error),
}

/// Measures the policy in `bytes`.
pub fn run(
    engine: &PolicyEngine,
    bytes: &[u8],
    source: &str,
    options: BenchOptions,
) -> Result<BenchReport, BenchError> {
    let mut compile = Vec::new();
    let mut policy = None;
    for _ in 0..3 {
        let started = Instant::now();
        let compiled = WasmPolicy::new(engine, bytes, source)?;
        compile.push(started.elapsed());
        policy = Some(compiled);
    }
    compile.sort_unstable();
    let Some(policy) = policy else { unreachable!("three compilations ran") };
    let policy = Arc::new(policy);

    let mut instantiate = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        // A failure here shows in the decisions below as policy-error.
        let _ = policy.instantiate_only();
        instantiate.push(started.elapsed());
    }

    let scratch = Scratch::on_disk(policy.clone(), crate::registry::unix_now())?;
    scratch.submit(WriteRequest::CreateProcedure {
        certificate_days: None,
        name: "bench".into(),
        domain: "bench".into(),
        protocol: "est".into(),
        allowed_domains: Vec::new(),
        require_preregistration: Some(true),
    })?;
    let n = u64::from(options.registrations.max(1));
    let csv = scratch.folder().join("dataset.csv");
    dataset::write_csv(&csv, n)?;
    let jws = scratch.sign_import(&csv, "bench", true, false)?;
    let mut refused = Vec::new();
    let record = scratch.registry().import(
        &jws,
        ImportFile { path: &csv, name: "dataset.csv" },
        crate::registry::unix_now(),
        Arc::new(ImportProgress::new()),
        &mut refused,
    )?;

    let mut rng = SplitMix64::new(0x7072_6572_6567);
    let (mut allowed, mut policy_errors) = (0, 0);
    let mut timings = Vec::with_capacity(options.decisions as usize);
    let grows_before = policy.memory_grows();
    let started = Instant::now();
    for _ in 0..options.decisions {
        let (fqdn, ip, serial, _) = dataset::request(&mut rng, n);
        let input = EnrollmentInput { procedure: "bench".into(), fqdn, ip, serial, ..Default::default() };
        let one = Instant::now();
        let report = scratch.registry().decide(input, DecisionMode::DryRun, crate::registry::unix_now())?;
        timings.push(one.elapsed());
        allowed += u32::from(report.allowed);
        policy_errors += u32::from(report.reason == prereg_core::Reason::PolicyError);
    }
    let total = started.elapsed();
    let grows = policy.memory_grows() - grows_before;
    Ok(BenchReport {
        policy: policy.info().clone(),
        compile_ms: compile[compile.len() / 2].as_secs_f64() * 1e3,
        instantiate_us: Latency::of(&mut instantiate),
        registrations: record.created,
        refused_rows: refused.len() as u64,
        decision_us: Latency::of(&mut timings),
        decisions: options.decisions,
        allowed,
        policy_errors,
        decisions_per_second: f64::from(options.decisions) / total.as_secs_f64().max(1e-9),
        memory_grows_per_decision: grows as f64 / f64::from(options.decisions.max(1)),
    })
}
