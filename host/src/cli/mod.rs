//! Command-line arguments: parsing only. What each command does is in
//! `command/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// `prereg cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The nodes, whether they are up, their active policy, and how far each
    /// one's index lags behind the store.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

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

/// `prereg ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: an EC P-256 issuing CA and an RSA certificate for SCEP's
    /// key transport, signed by it.
    Init {
        /// The CA's common name.
        #[arg(long, default_value = "prereg CA")]
        name: String,
        /// The URL of the CRL named in every issued certificate (plain
        /// http://) [default: http://<serve's listen address>/ca/crl].
        #[arg(long)]
        crl_url: Option<String>,
    },
    /// Use an existing CA (EC P-256 or RSA): its certificate and private key,
    /// PEM. An RSA certificate for SCEP is made and signed by it.
    Import {
        /// CA certificate, PEM.
        #[arg(long)]
        cert: PathBuf,
        /// Its private key, PEM (PKCS#8, SEC1 or PKCS#1).
        #[arg(long)]
        key: PathBuf,
    },
    /// Show the CA and RA certificates: subject, validity, SHA-256 fingerprint.
    Show,
    /// Change the CA's settings.
    Set {
        /// The URL of the CRL named in certificates issued from now on
        /// (plain http://); "default" names serve's own address.
        #[arg(long)]
        crl_url: String,
    },
    /// Revoke a certificate this CA issued (a request signed by an officer
    /// of the certificate's domain, audited); it is listed on the CRL.
    Revoke {
        /// Its serial number, hex (as `openssl x509 -serial` prints it).
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise,
        /// affiliationChanged, superseded, cessationOfOperation,
        /// privilegeWithdrawn (kebab-case works too).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Issue a TLS client certificate for a CA caller (mutual TLS with
    /// `serve --tls-self` or `--tls-cert`): FILE (the certificate, PEM) and,
    /// beside it with the extension `.key`, its new private key (mode 0600). `prereg caller add
    /// --client-cert FILE` then lets it authenticate with it.
    IssueClient {
        /// The caller's name (the certificate's CN).
        name: String,
        /// Certificate file to create.
        #[arg(long)]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Write the CA's current CRL (DER, or PEM with --pem) to a file or stdout.
    Crl {
        /// Output file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
        /// PEM instead of DER.
        #[arg(long)]
        pem: bool,
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

/// `prereg serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PREREG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// This node's name in `prereg cluster status` [default: host name:port].
    #[arg(long, env = "PREREG_NODE")]
    pub node: Option<String>,
    /// How long a CMP certificate issued without implicit confirmation
    /// waits for the client's certConf before it is revoked and its
    /// enrollment given back, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub cmp_confirm_seconds: u64,
    /// Where signed checkpoints of the audit log are written
    /// [default: the data folder's checkpoints/].
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// How often a numbered checkpoint (`<size>.note`) is kept when the log
    /// grew, in seconds (`latest.note` follows every commit within 250 ms).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub checkpoint_seconds: u64,
    /// Denied enrollments (REST, CMP, SCEP) a client address may make in a
    /// burst before it is answered 429.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub failure_burst: u32,
    /// Denied enrollments a client address regains per minute.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub failures_per_minute: u32,
    /// TLS certificate chain (PEM, the server's certificate first); reloaded
    /// when the file changes or on SIGHUP.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self", help_heading = "Network")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", help_heading = "Network")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate the instance CA (`prereg ca init`)
    /// issues for the listen address, --public-url and --allow-host (kept in
    /// DATA/tls/, issued again before it ends).
    #[arg(long, help_heading = "Network")]
    pub tls_self: bool,
    /// The URL clients reach this service at (`https://ra.example.com`): its
    /// host may be named in requests, and certificates name its CRL.
    #[arg(long, env = "PREREG_PUBLIC_URL", help_heading = "Network")]
    pub public_url: Option<String>,
    /// More host names (or addresses) requests may name in Host,
    /// comma-separated; any other gets 421.
    #[arg(long, value_delimiter = ',', help_heading = "Network")]
    pub allow_host: Vec<String>,
    /// Listen without TLS on a non-loopback address, because a TLS proxy is
    /// in front (then say which hosts it forwards with --public-url or
    /// --allow-host).
    #[arg(long, help_heading = "Network")]
    pub plain_http_behind_proxy: bool,
    /// Proxies whose X-Forwarded-For names the client, comma-separated
    /// addresses (with --plain-http-behind-proxy).
    #[arg(long, value_delimiter = ',', requires = "plain_http_behind_proxy", help_heading = "Network")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Also serve /metrics, without a credential, on this address (keep it
    /// on a private network); on the main address /metrics needs an
    /// officer's token or a CA caller's secret.
    #[arg(long, help_heading = "Network")]
    pub metrics_listen: Option<String>,
    /// Seconds a client has to finish the TLS handshake and send a request's
    /// headers (also the longest an idle connection is kept).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=30), help_heading = "Network")]
    pub header_timeout_seconds: u64,
    /// Seconds a connection may serve nothing before it is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Network")]
    pub idle_timeout_seconds: u64,
    /// Connections served at once; more are closed on accept.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Network")]
    pub max_connections: u32,
    /// Requests to the enrollment endpoints (SCEP, CMP) a client address may
    /// make in a burst before it is answered 429.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Network")]
    pub enroll_burst: u32,
    /// Enrollment requests a client address regains per minute.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Network")]
    pub enroll_per_minute: u32,
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
        /// No bearer secret: the client certificate only.
        #[arg(long, requires = "client_cert")]
        no_secret: bool,
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
