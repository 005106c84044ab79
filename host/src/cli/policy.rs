//! `prereg policy ...`: load, activate, roll back, shadow, test and bench policies.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `prereg policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Name, version, WIT version and SHA-256 of the active policy.
    Info {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Load a policy component (signed; needs an officer of every domain). It is
    /// checked, compiled and its own test cases run before it is stored; a
    /// refused file changes nothing.
    #[command(disable_version_flag = true)]
    Load {
        /// The component (.wasm).
        file: PathBuf,
        /// Make it the active policy at once.
        #[arg(long)]
        activate: bool,
        /// List it under this name instead of the one in its metadata.
        #[arg(long)]
        name: Option<String>,
        /// List it under this version instead of the one in its metadata.
        #[arg(long)]
        version: Option<String>,
    },
    /// Every loaded policy version, and which is active.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Make a loaded version the active policy (roll back or forward): `built-in`,
    /// a SHA-256 (8 hex digits or more) or NAME@VERSION.
    Activate {
        /// Which version.
        #[arg(value_name = "VERSION")]
        selector: String,
    },
    /// Shadow mode: `shadow FILE.wasm` (or a loaded VERSION) decides every
    /// enrollment beside the active policy, without effect; `shadow report`
    /// lists where they disagreed; `shadow stop` ends it.
    #[command(args_conflicts_with_subcommands = true)]
    Shadow {
        /// The candidate: a component file (loaded first), or a loaded version.
        #[arg(value_name = "FILE|VERSION")]
        candidate: Option<String>,
        /// Report or stop.
        #[command(subcommand)]
        action: Option<ShadowCommand>,
    },
    /// Run table-driven test cases against a policy in a throwaway store (a
    /// readable report; exit code 0 only when all pass).
    Test(PolicyTestArgs),
    /// Compile time, instantiation time and decision latency of a policy on a
    /// generated dataset.
    Bench(PolicyBenchArgs),
    /// Scaffold a new policy crate (Cargo.toml, src/lib.rs, cases.toml) that
    /// builds with `cargo build --release --target wasm32-wasip2`.
    New {
        /// The policy's name (a crate name: letters, digits, `-`).
        name: String,
        /// Folder to create [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The prereg source tree whose SDK the crate depends on [default: the
        /// one this binary was built from].
        #[arg(long)]
        prereg: Option<PathBuf>,
    },
}

/// `prereg policy shadow ...`
#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// The enrollments where the shadow policy and the active one disagreed.
    Report {
        /// Only disagreements after this id.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Stop shadow mode.
    Stop,
}

/// `prereg policy test` arguments.
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The policy component (.wasm).
    pub file: PathBuf,
    /// The case file (TOML) [default: the cases the policy ships].
    pub cases: Option<PathBuf>,
    /// JSON output (for CI).
    #[arg(long)]
    pub json: bool,
    /// Record the host calls the policy makes into this file (JSON).
    #[arg(long, conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer the policy's host calls from this recording only (no store).
    #[arg(long)]
    pub replay: Option<PathBuf>,
}

/// `prereg policy bench` arguments.
#[derive(Debug, Args)]
pub struct PolicyBenchArgs {
    /// The policy component (.wasm).
    pub file: PathBuf,
    /// Registrations in the generated dataset.
    #[arg(long, default_value_t = 10_000)]
    pub registrations: u32,
    /// Decisions to time.
    #[arg(long, default_value_t = 2_000)]
    pub decisions: u32,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}
