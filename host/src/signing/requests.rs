//! The writes an officer can sign.

use serde::{Deserialize, Serialize};

/// A write request: the `request` claim of a signed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", deny_unknown_fields)]
pub enum WriteRequest {
    /// Create a token procedure.
    #[serde(rename = "procedure.create")]
    CreateProcedure {
        /// Unique name.
        name: String,
        /// Domain.
        domain: String,
        /// `scep`, `cmp`, `est`, `acme` or `other`.
        protocol: String,
        /// Allowed DNS names (canonicalized by the host).
        #[serde(default)]
        allowed_domains: Vec<String>,
        /// Override of the protocol's default (must stay true for SCEP and CMP).
        #[serde(default)]
        require_preregistration: Option<bool>,
        /// Validity of the certificates issued through it, in days (1 to 3650;
        /// absent: 365).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate_days: Option<u32>,
    },
    /// Add an officer.
    #[serde(rename = "officer.create")]
    AddOfficer {
        /// Unique name.
        name: String,
        /// SPKI PEM public key.
        public_key_pem: String,
        /// Domains; `["*"]` for all.
        domains: Vec<String>,
    },
    /// Disable an officer's key: requests it signs are refused from then on
    /// (what it signed before stays valid). Needs an officer of every domain
    /// the target has.
    #[serde(rename = "officer.disable")]
    DisableOfficer {
        /// The officer's name.
        name: String,
    },
    /// Add an ACME external account binding key (RFC 8555 §7.3.4) to an
    /// ACME token procedure: an ACME client proves it holds the key when it
    /// creates its account, and the account may then order only names
    /// within `domains`. Needs an officer of the procedure's domain.
    #[serde(rename = "acme.eab.create")]
    AddEabKey {
        /// The key id ACME clients send (`--eab-kid`): 1 to 64 letters,
        /// digits, '_' or '-', beginning with a letter or a digit.
        key_id: String,
        /// The ACME token procedure.
        procedure: String,
        /// The DNS names (and the names below them) accounts bound with it
        /// may order; empty: any the procedure allows.
        #[serde(default)]
        domains: Vec<String>,
        /// The HMAC key (base64url, as ACME clients take it), sealed to the
        /// instance's key by the signer: the service needs the key itself
        /// to check the binding's HMAC, and only it can open it.
        hmac_key_sealed: String,
    },
    /// Add a CA caller: a system that asks for enrollment decisions for the
    /// token procedures it lists. Needs an officer of every domain those
    /// procedures are in.
    #[serde(rename = "caller.create")]
    AddCaller {
        /// Unique name.
        name: String,
        /// The token procedures it may ask decisions for.
        procedures: Vec<String>,
        /// SHA-256 (lowercase hex) of its bearer secret, made by the signer:
        /// the secret itself never reaches the service or the audit log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_sha256: Option<String>,
        /// SHA-256 fingerprint (lowercase hex) of its TLS client certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate_sha256: Option<String>,
        /// Its webhook secret (the base64 text step-ca's `ca.json` takes),
        /// sealed to the instance's key by the signer: the service needs the
        /// secret itself to check each call's HMAC, and only it can open it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook_secret_sealed: Option<String>,
    },
    /// Disable a CA caller: its credentials are refused from then on. Needs
    /// an officer of every domain its procedures are in.
    #[serde(rename = "caller.disable")]
    DisableCaller {
        /// Its name.
        name: String,
    },
    /// Create a registration.
    #[serde(rename = "registration.create")]
    CreateRegistration {
        /// Token procedure.
        procedure: String,
        /// FQDN or pattern.
        fqdn: String,
        /// IP address.
        #[serde(default)]
        ip: Option<String>,
        /// Serial number.
        #[serde(default)]
        serial: Option<String>,
        /// Refused: requests signed by earlier versions carried the argon2id
        /// hash of the password here, which the audit log (keeping the request)
        /// exposed to offline guessing. Kept so that those records still read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_hash: Option<String>,
        /// The password sealed to the instance's public key
        /// ([`crate::sealing`], `GET /v1/instance`): the server opens it, hashes
        /// it (argon2id) and keeps it sealed for protocols that need the secret
        /// itself (CMP's MAC). Nothing in the request can test a guess.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_sealed: Option<String>,
        /// Days of validity from creation; absent: always valid.
        #[serde(default)]
        valid_days: Option<u32>,
        /// Enrollment limit; absent: 1 for an exact FQDN, unlimited for a pattern.
        #[serde(default)]
        max_enrollments: Option<u32>,
    },
    /// Disable a registration.
    #[serde(rename = "registration.disable")]
    DisableRegistration {
        /// Its id.
        id: u64,
    },
    /// Reopen a disabled, locked or used registration (resets the failure count).
    #[serde(rename = "registration.reopen")]
    ReopenRegistration {
        /// Its id.
        id: u64,
    },
    /// Delete a registration.
    #[serde(rename = "registration.delete")]
    DeleteRegistration {
        /// Its id.
        id: u64,
    },
    /// Revoke a certificate the CA issued (listed on the CRL from then on).
    /// Needs an officer of the domain of the registration it was issued
    /// under.
    #[serde(rename = "certificate.revoke")]
    RevokeCertificate {
        /// Its serial number, hex.
        serial: String,
        /// RFC 5280 CRLReason name (`keyCompromise`, ...); absent: unspecified.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Load a policy component (it travels beside the request; the signature
    /// covers its SHA-256). Needs an officer of every domain.
    #[serde(rename = "policy.load")]
    LoadPolicy {
        /// SHA-256 of the component, lowercase hex.
        sha256: String,
        /// Make it the active policy once it is loaded.
        #[serde(default)]
        activate: bool,
        /// A name to list it under instead of the one in its metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// A version to list it under instead of the one in its metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// Make a loaded policy version the active one (roll back or forward).
    /// Needs an officer of every domain.
    #[serde(rename = "policy.activate")]
    ActivatePolicy {
        /// `built-in`, a SHA-256 (or a unique prefix of 8 or more hex digits),
        /// or `name@version`.
        policy: String,
    },
    /// Run a loaded policy version in shadow mode beside the active one (or
    /// stop). Needs an officer of every domain.
    #[serde(rename = "policy.shadow")]
    ShadowPolicy {
        /// A SHA-256 (or a unique prefix of 8 or more hex digits) or
        /// `name@version` of a loaded version; absent: stop shadowing.
        #[serde(default)]
        policy: Option<String>,
    },
    /// Import a CSV file of registrations. The file travels beside the
    /// request; the signature covers its SHA-256, the procedure and the options.
    #[serde(rename = "import.csv")]
    ImportCsv {
        /// Token procedure of every row.
        procedure: String,
        /// HMAC-SHA256 of the file, lowercase hex, keyed by the key agreed with
        /// the instance under `digest_key` ([`crate::import::signed_digest`]):
        /// a plain SHA-256 of a file holding a password would let whoever
        /// reads the audit log test guesses of it, so one is refused.
        sha256: String,
        /// The ephemeral X25519 public key (base64url) the digest's key was
        /// agreed with the instance key under.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest_key: Option<String>,
        /// Write the good rows even if some are bad.
        #[serde(default)]
        partial: bool,
        /// Validate only; write nothing.
        #[serde(default)]
        dry_run: bool,
    },
}

impl WriteRequest {
    /// The action name, as in the audit log.
    pub fn action(&self) -> &'static str {
        match self {
            WriteRequest::CreateProcedure { .. } => "procedure.create",
            WriteRequest::AddOfficer { .. } => "officer.create",
            WriteRequest::DisableOfficer { .. } => "officer.disable",
            WriteRequest::AddEabKey { .. } => "acme.eab.create",
            WriteRequest::AddCaller { .. } => "caller.create",
            WriteRequest::DisableCaller { .. } => "caller.disable",
            WriteRequest::CreateRegistration { .. } => "registration.create",
            WriteRequest::DisableRegistration { .. } => "registration.disable",
            WriteRequest::ReopenRegistration { .. } => "registration.reopen",
            WriteRequest::DeleteRegistration { .. } => "registration.delete",
            WriteRequest::RevokeCertificate { .. } => "certificate.revoke",
            WriteRequest::ImportCsv { .. } => "import.csv",
            WriteRequest::LoadPolicy { .. } => "policy.load",
            WriteRequest::ActivatePolicy { .. } => "policy.activate",
            WriteRequest::ShadowPolicy { .. } => "policy.shadow",
        }
    }
}
