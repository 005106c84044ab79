//! `prereg bench`, the load harness.

use std::path::PathBuf;

use clap::Args;

/// `prereg bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Registrations in the generated dataset.
    #[arg(long, default_value_t = 100_000)]
    pub registrations: u64,
    /// Deciding threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seconds of deciding.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Swap the policy every this many seconds.
    #[arg(long)]
    pub swap_every: Option<f64>,
    /// Instance allocation: wasmtime's pooling allocator (as `prereg serve`
    /// uses), or a mapping per evaluation (on-demand).
    #[arg(long, value_enum, default_value_t = AllocationArg::Pooling)]
    pub allocation: AllocationArg,
    /// Also run on one thread first, and report the throughput of --threads
    /// threads against it.
    #[arg(long)]
    pub scaling: bool,
    /// Write latency over time and a latency histogram as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Look candidates up in the storage index instead of the in-memory
    /// index that `prereg serve` uses (to compare the two).
    #[arg(long)]
    pub store_lookups: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How policy instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocationArg {
    /// A mapping per evaluation, unmapped after it.
    OnDemand,
    /// Slots reserved once and reused (wasmtime's pooling allocator).
    Pooling,
}
