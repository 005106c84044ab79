//! The signed writes: procedures, officers, CA callers, registrations and imports.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{AlgorithmArg, ProtocolArg};

/// `prereg procedure ...`
#[derive(Debug, Subcommand)]
pub enum ProcedureCommand {
    /// Create a token procedure.
    Add {
        /// Unique name.
        name: String,
        /// Domain that scopes its registrations.
        #[arg(long)]
        domain: String,
        /// Enrollment protocol.
        #[arg(long, value_enum)]
        protocol: ProtocolArg,
        /// Allowed DNS names, comma-separated (empty: any).
        #[arg(long, value_delimiter = ',')]
        allowed_domains: Vec<String>,
        /// Whether devices must be preregistered (always true for scep and cmp).
        #[arg(long)]
        require_preregistration: Option<bool>,
        /// Validity of the certificates issued through it, in days (default 365).
        #[arg(long)]
        certificate_days: Option<u32>,
    },
    /// List token procedures.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// `prereg officer ...`
#[derive(Debug, Subcommand)]
pub enum OfficerCommand {
    /// Add an officer with its public key.
    Add {
        /// Unique name.
        name: String,
        /// SPKI PEM public key (Ed25519 or P-256).
        #[arg(long)]
        public_key: PathBuf,
        /// Domains it may act in, comma-separated; `*` for all (say so: there
        /// is no default).
        #[arg(long, value_delimiter = ',', required = true)]
        domains: Vec<String>,
    },
    /// Disable an officer's key (signed, audited): requests it signs are
    /// refused from then on; what it signed before stays valid.
    Disable {
        /// The officer's name.
        name: String,
    },
    /// List officers.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Generate a key pair: FILE (private, mode 0600) and FILE.pub.
    Keygen {
        /// Private key file to create.
        #[arg(long)]
        out: PathBuf,
        /// Algorithm (ES256 keys also sign in the RA web page).
        #[arg(long, alias = "alg", value_enum, default_value = "ed25519")]
        algorithm: AlgorithmArg,
    },
}

/// `prereg caller ...`
#[derive(Debug, Subcommand)]
pub enum CallerCommand {
    /// Add a CA caller (signed, audited) and print its bearer secret, once:
    /// only its SHA-256 is kept.
    Add {
        /// Unique name (it names the caller in the audit records of its decisions).
        name: String,
        /// The token procedures it may ask decisions for, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        procedures: Vec<String>,
        /// Its TLS client certificate (PEM, from `prereg ca issue-client`):
        /// it may authenticate with it (mutual TLS) as well.
        #[arg(long)]
        client_cert: Option<PathBuf>,
        /// No bearer secret: the client certificate (or the webhook secret) only.
        #[arg(long)]
        no_secret: bool,
        /// Also make a webhook secret, for another CA that asks prereg
        /// through its webhooks (step-ca): printed once, in the base64 form
        /// step-ca's ca.json takes, and kept sealed to the instance's key.
        #[arg(long)]
        webhook: bool,
        /// Import the webhook secret another CA made instead (step-ca's
        /// `step ca provisioner webhook add` prints its "Signing Secret"):
        /// the file holds it in base64, at least 32 bytes once decoded.
        #[arg(long, value_name = "FILE", conflicts_with = "webhook")]
        webhook_secret_file: Option<PathBuf>,
    },
    /// Disable a CA caller (signed, audited): its secret is refused from then on.
    Disable {
        /// The caller's name.
        name: String,
    },
    /// List CA callers.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// `prereg register` arguments.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Token procedure (gives the domain).
    #[arg(long)]
    pub procedure: String,
    /// FQDN or pattern (`*.dept.example.com`, `serial-*.example.com`, `*`).
    #[arg(long)]
    pub fqdn: String,
    /// IP address the device must present.
    #[arg(long)]
    pub ip: Option<String>,
    /// Serial number the device must present.
    #[arg(long)]
    pub serial: Option<String>,
    /// File holding the password (`-`: standard input). Only a salted argon2id
    /// hash leaves this machine.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Days of validity (default: always valid).
    #[arg(long)]
    pub valid_days: Option<u32>,
    /// Enrollments allowed (default: 1 for an exact FQDN, unlimited for a pattern).
    #[arg(long)]
    pub max_enrollments: Option<u32>,
}

/// `prereg import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Token procedure of every row (gives the domain).
    #[arg(long)]
    pub procedure: String,
    /// Check every row and report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the good rows even if some are bad (default: all or nothing).
    #[arg(long)]
    pub partial: bool,
    /// JSON output: the import and its bad rows.
    #[arg(long)]
    pub json: bool,
}
