//! `prereg ca ...`: the instance CA, certificates, revocation, the CRL.

use std::path::PathBuf;

use clap::Subcommand;

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
    #[command(group = clap::ArgGroup::new("setting").required(true).multiple(true))]
    Set {
        /// The URL of the CRL named in certificates issued from now on
        /// (plain http://); "default" names serve's own address.
        #[arg(long, group = "setting")]
        crl_url: Option<String>,
        /// The token procedure (of protocol est) that EST serves without a
        /// label, at /.well-known/est/simpleenroll and the like, for clients
        /// that cannot name one; "none" serves none.
        #[arg(long, group = "setting")]
        est_procedure: Option<String>,
        /// PROCEDURE=FILE: trust the CA certificates of FILE (PEM) as
        /// manufacturers of the devices of EST procedure PROCEDURE: a device
        /// presenting its manufacturer certificate (IDevID) in the TLS
        /// handshake enrolls without a password, its subject serialNumber
        /// checked against the registration's serial (which must be set).
        /// `prereg serve` takes these roots in the handshake when it starts.
        #[arg(long, group = "setting", value_name = "PROCEDURE=FILE")]
        est_trust_anchor: Option<String>,
        /// PROCEDURE=WAYS: how EST procedure PROCEDURE's devices may
        /// authenticate a first enrollment, comma-separated among basic
        /// (HTTP Basic), challenge (the CSR's challengePassword) and idevid
        /// (a manufacturer certificate); "all" allows every way (the default).
        #[arg(long, group = "setting", value_name = "PROCEDURE=WAYS")]
        est_auth: Option<String>,
        /// PROCEDURE=yes|no: whether EST procedure PROCEDURE's
        /// re-enrollment (simplereenroll) revokes the certificate it
        /// replaces (reason superseded). Default no.
        #[arg(long, group = "setting", value_name = "PROCEDURE=yes|no")]
        est_reenroll_revokes: Option<String>,
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
