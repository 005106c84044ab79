//! The audit log's commands, and a decision (`prereg decide`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `prereg audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole log: the hash chain, every officer's signed request
    /// against the officer's key, and a signed checkpoint (--checkpoint FILE,
    /// or else the newest one `serve` wrote to the data folder's
    /// `checkpoints/`). Exit 0 when intact; otherwise 1, naming the first bad
    /// record.
    Verify {
        /// A checkpoint (`prereg audit checkpoint`, or one `serve` wrote): the
        /// log must still hold what it counts.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Write a checkpoint of the log as it is now: its origin, record count
    /// and root hash, signed by the instance key (C2SP tlog-checkpoint,
    /// signed-note form). Keep it outside the database.
    Checkpoint {
        /// Output file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List audit records.
    List {
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// JSON output (one array).
        #[arg(long)]
        json: bool,
    },
}

/// `prereg check` / `prereg enroll` arguments.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// Token procedure the request came through.
    #[arg(long)]
    pub procedure: String,
    /// Device FQDN (the request's CN or first DNS SAN).
    #[arg(long)]
    pub fqdn: String,
    /// IP address in the request.
    #[arg(long)]
    pub ip: Option<String>,
    /// Subject serialNumber in the request.
    #[arg(long)]
    pub serial: Option<String>,
    /// File holding the request's password (`-`: standard input).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// JSON output (one object).
    #[arg(long)]
    pub json: bool,
}
