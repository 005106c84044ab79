//! `prereg serve`'s arguments: listening, TLS, limits, the policy sandbox.

use std::path::PathBuf;

use clap::Args;

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
    /// The most PBM or PBMAC1 iterations a CMP client may ask for. The
    /// server computes them before it knows who asks (the per-client rate
    /// limits bound how often).
    #[arg(long, default_value_t = prereg::enroll::cmp::protection::DEFAULT_MAX_ITERATIONS,
          value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub cmp_max_iterations: u64,
    /// How far a CMP request's messageTime may be from this server's clock,
    /// in seconds; 0 does not check it (devices without a clock).
    #[arg(long, default_value_t = prereg::enroll::cmp::TIME_WINDOW_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=31_622_400))]
    pub cmp_time_window_seconds: u64,
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
    /// Another CA (PEM) whose certificates clients may present in the TLS
    /// handshake, beside the instance CA: step-ca's root, so that step-ca
    /// calls webhooks with its own client certificate. It names no caller by
    /// itself (callers are known by their secret or a registered
    /// certificate's fingerprint). Repeatable.
    #[arg(long, help_heading = "Network")]
    pub tls_client_ca: Vec<PathBuf>,
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
    /// ACME validations reach NAME at ADDRESS instead of what DNS says, for
    /// tests on one machine (`--acme-resolve dev1.example.com=127.0.0.1`);
    /// taken only when the service listens on loopback. Repeatable.
    #[arg(long, value_name = "NAME=ADDRESS", help_heading = "ACME")]
    pub acme_resolve: Vec<String>,
    /// The port ACME's http-01 validations connect to (80, as RFC 8555
    /// says; another only with --acme-resolve, for tests).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u16).range(1..), help_heading = "ACME")]
    pub acme_http_port: u16,
    /// The DNS resolver ACME's dns-01 validations ask (ADDRESS or
    /// ADDRESS:PORT) [default: the first nameserver of /etc/resolv.conf].
    #[arg(long, value_name = "ADDRESS", help_heading = "ACME")]
    pub acme_dns_server: Option<String>,
    /// Enrollment requests a client address regains per minute.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Network")]
    pub enroll_per_minute: u32,
}
