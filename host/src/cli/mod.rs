//! Command-line arguments: parsing only. What each command does is in
//! `command/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod acme;
mod bench;
mod ca;
mod cluster;
mod policy;
mod reads;
mod serve;
mod writes;

pub use acme::{AcmeCommand, EabCommand};
pub use bench::{AllocationArg, BenchArgs};
pub use ca::CaCommand;
pub use cluster::ClusterCommand;
pub use policy::{PolicyBenchArgs, PolicyCommand, PolicyTestArgs, ShadowCommand};
pub use reads::{AuditCommand, DecisionArgs};
pub use serve::ServeArgs;
pub use writes::{CallerCommand, ImportArgs, OfficerCommand, ProcedureCommand, RegisterArgs};

/// prereg: preregister devices for SCEP/CMP certificate enrollment, and decide
/// enrollments with a WebAssembly matching policy.
#[derive(Debug, Parser)]
#[command(name = "prereg", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data folder (SQLite database, first officer's key).
    #[arg(long, global = true, env = "PREREG_DATA", default_value = prereg::data_dir::DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// The store: a `postgres://user:password@host/db` URL for a cluster of
    /// nodes sharing one PostgreSQL database [default: `database` in
    /// DATA/prereg.toml, else the SQLite file in the data folder].
    #[arg(long, global = true, env = "PREREG_DATABASE")]
    pub database: Option<String>,
    /// Policy component (.wasm) to use instead of the built-in default policy.
    #[arg(long, global = true, env = "PREREG_POLICY")]
    pub policy: Option<PathBuf>,
    /// Officer private key (PKCS#8 PEM) that signs writes [default: DATA/officer.key].
    #[arg(long, global = true, env = "PREREG_KEY")]
    pub key: Option<PathBuf>,
    /// Work against a running `prereg serve` at this URL instead of the local
    /// data folder: writes are signed here, with --key, and sent to its REST API.
    #[arg(long, global = true, env = "PREREG_SERVER")]
    pub server: Option<String>,
    /// With --server: ask for enrollment decisions as this CA caller (its
    /// secret, from `prereg caller add`); reads are made as the officer of
    /// --key otherwise.
    #[arg(long, global = true, env = "PREREG_CALLER_SECRET", hide_env_values = true)]
    pub caller_secret: Option<String>,
    /// With an https --server: trust the certificates that chain to these
    /// PEM roots (the instance CA's DATA/ca/ca.crt for `serve --tls-self`)
    /// instead of the Mozilla roots.
    #[arg(long, global = true, env = "PREREG_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace), or a tracing filter
    /// [default: warn; info for `serve`].
    #[arg(long, global = true, env = "PREREG_LOG")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "PREREG_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Wall-clock deadline of one policy evaluation, in milliseconds.
    #[arg(
        long,
        global = true,
        env = "PREREG_POLICY_DEADLINE_MS",
        default_value_t = 200,
        help_heading = "Policy sandbox"
    )]
    pub policy_deadline_ms: u64,
    /// Memory one policy evaluation may use, in MiB.
    #[arg(
        long,
        global = true,
        env = "PREREG_POLICY_MEMORY_MIB",
        default_value_t = 32,
        help_heading = "Policy sandbox"
    )]
    pub policy_memory_mib: usize,
    /// Host-import calls one policy evaluation may make.
    #[arg(
        long,
        global = true,
        env = "PREREG_POLICY_IMPORT_CALLS",
        default_value_t = 10_000,
        help_heading = "Policy sandbox"
    )]
    pub policy_import_calls: u32,
    /// Longest string that may cross the policy boundary, in bytes.
    #[arg(
        long,
        global = true,
        env = "PREREG_POLICY_STRING_BYTES",
        default_value_t = 4096,
        help_heading = "Policy sandbox"
    )]
    pub policy_string_bytes: usize,
}

impl GlobalArgs {
    /// The policy sandbox's limits.
    pub fn limits(&self) -> prereg::Limits {
        prereg::Limits {
            deadline: std::time::Duration::from_millis(self.policy_deadline_ms.clamp(1, 60_000)),
            max_memory_bytes: self.policy_memory_mib.clamp(1, 4096) << 20,
            max_import_calls: self.policy_import_calls.max(1),
            max_string_bytes: self.policy_string_bytes.clamp(256, 1 << 20),
            ..prereg::Limits::default()
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data folder, the database, the instance id and the first officer.
    Init {
        /// Name of the first officer.
        #[arg(long, default_value = "admin")]
        officer: String,
    },
    /// Run the service: the REST API, the RA web page, health and metrics, on
    /// the data folder (initialised on first run).
    Serve(ServeArgs),
    /// Import registrations from a CSV file (columns by header name: fqdn,
    /// ip, serial, password, valid_days, max_enrollments). Exit code 0: every
    /// row good; 1: some rows bad (listed); 2: the file or request refused.
    Import(ImportArgs),
    /// Decisions under load on a generated dataset in a scratch folder (or,
    /// with --database, in an empty PostgreSQL database): throughput, latency
    /// percentiles, failures, memory; with --swap-every, the latency inside
    /// and outside policy swaps.
    Bench(BenchArgs),
    /// Token procedures.
    #[command(subcommand)]
    Procedure(ProcedureCommand),
    /// RA officers.
    #[command(subcommand)]
    Officer(OfficerCommand),
    /// CA callers: the systems that ask for enrollment decisions (a CA front,
    /// another CA's webhook, a script).
    #[command(subcommand)]
    Caller(CallerCommand),
    /// ACME: external account binding keys for ACME token procedures.
    #[command(subcommand)]
    Acme(AcmeCommand),
    /// The CA that issues certificates to devices enrolling over CMP and SCEP
    /// (files in the data folder's `ca/`).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Preregister a device (prints the new registration id).
    Register(RegisterArgs),
    /// List registrations.
    List {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// JSON output (one array).
        #[arg(long)]
        json: bool,
    },
    /// Show one registration.
    Show {
        /// Registration id.
        id: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Disable a registration.
    Disable {
        /// Registration id.
        id: u64,
    },
    /// Reopen a disabled, locked or used registration.
    Reopen {
        /// Registration id.
        id: u64,
    },
    /// Delete a registration.
    Delete {
        /// Registration id.
        id: u64,
    },
    /// Dry run of an enrollment decision: explains it and changes nothing.
    /// Exit code 0: allowed, 1: denied, 2: usage or input error.
    Check(DecisionArgs),
    /// The real enrollment decision: counts against max-enrollments, applies the
    /// lockout rule, and is audited. Exit code 0: allowed, 1: denied, 2: usage or
    /// input error.
    Enroll(DecisionArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The active policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The nodes sharing this store (a PostgreSQL cluster).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Copy an embedded (SQLite) instance into an empty PostgreSQL database:
    /// procedures, officers, registrations, imports, policies, certificates
    /// and the audit log, whose chain is verified on arrival.
    Migrate {
        /// The data folder of the embedded instance.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database (`postgres://user:password@host/db`), empty.
        #[arg(long)]
        to: String,
    },
}

/// Protocols, for clap.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(missing_docs)]
pub enum ProtocolArg {
    Scep,
    Cmp,
    Est,
    Acme,
    Other,
}

/// Registration states, for clap.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(missing_docs)]
pub enum StateArg {
    Open,
    Used,
    Disabled,
    Locked,
}

/// Key algorithms, for clap.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(missing_docs)]
pub enum AlgorithmArg {
    Ed25519,
    Es256,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
