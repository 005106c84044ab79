//! `prereg acme`'s arguments: external account binding keys.

use clap::Subcommand;

/// `prereg acme`.
#[derive(Debug, Subcommand)]
pub enum AcmeCommand {
    /// External account binding keys (RFC 8555 §7.3.4): an ACME client
    /// makes its account with one (`certbot --eab-kid --eab-hmac-key`,
    /// `lego --eab --kid --hmac`).
    #[command(subcommand)]
    Eab(EabCommand),
}

/// `prereg acme eab`.
#[derive(Debug, Subcommand)]
pub enum EabCommand {
    /// Make a binding key for an ACME token procedure (signed, audited) and
    /// print its key id and HMAC key, once: the HMAC key is kept sealed to
    /// the instance's key. It binds one account, once.
    Add {
        /// The ACME token procedure (`procedure add NAME --protocol acme`).
        #[arg(long)]
        procedure: String,
        /// The names the account may order (each and the names below it),
        /// comma-separated; absent: any name the procedure allows.
        #[arg(long, value_delimiter = ',')]
        domains: Vec<String>,
        /// The key id [default: a random one].
        #[arg(long)]
        key_id: Option<String>,
    },
    /// List binding keys (never their HMAC keys) and the accounts they bound.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}
