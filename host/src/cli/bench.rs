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
    /// Drive a running `prereg serve` at this URL (`http://HOST:PORT`) as a
    /// CA caller instead of a generated dataset in this process: dry runs
    /// and, with --enroll-percent, real enrollment decisions. The caller's
    /// secret is read from PREREG_CALLER_SECRET.
    #[arg(long, value_name = "URL", requires_all = ["procedure", "names"])]
    pub http: Option<String>,
    /// With --http: the token procedure every request names.
    #[arg(long, requires = "http")]
    pub procedure: Option<String>,
    /// With --http: a file of the names to ask for, one per line (drawn at
    /// random; `#` starts a comment).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub names: Option<PathBuf>,
    /// With --http: the share of real enrollment decisions (counted,
    /// audited, durable) among the requests, in percent.
    #[arg(long, default_value_t = 0, requires = "http", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub enroll_percent: u32,
    /// With --http: keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 16, requires = "http")]
    pub connections: usize,
}

/// How policy instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocationArg {
    /// A mapping per evaluation, unmapped after it.
    OnDemand,
    /// Slots reserved once and reused (wasmtime's pooling allocator).
    Pooling,
}
