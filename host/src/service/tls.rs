//! The service's TLS: a rustls server configuration from PEM files,
//! reloaded without a restart when the files change or on SIGHUP, and the
//! `--tls-self` certificate the instance CA issues for the service's own
//! names.
//!
//! ALPN offers HTTP/2 and HTTP/1.1. A reload that fails (a half-written
//! file, a key that does not match) keeps the configuration in use and says
//! why in the log; the next change tries again.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::DataDir;
pub use crate::pem::{provider, read_certificates};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The certificate and key do not make a configuration.
    #[error("{0}")]
    Config(String),
    /// `--tls-self` needs the instance CA.
    #[error("--tls-self issues the service's certificate from the instance CA: run `prereg ca init` first ({0})")]
    NoCa(String),
}

impl From<crate::pem::PemError> for TlsError {
    fn from(e: crate::pem::PemError) -> Self {
        TlsError::File { path: e.path, message: e.message }
    }
}

/// The certificate chain and key files of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM: the server's certificate first).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The roots client certificates must chain to (the instance CA, and
    /// any `serve --tls-client-ca`), if clients may present one: a CA
    /// caller's certificate ([`crate::service::auth`]), a device's for EST
    /// re-enrollment, step-ca's own when it calls a webhook. A client without
    /// one is served as well; none: no client certificates.
    pub client_roots: Vec<PathBuf>,
}

/// The current server configuration, swapped whole on reload.
pub struct TlsConfig {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    /// The files' modification times at the last (attempted) load.
    seen: std::sync::Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl TlsConfig {
    /// Loads `files`; refuses what cannot serve.
    pub fn load(files: TlsFiles) -> Result<Arc<TlsConfig>, TlsError> {
        let config = server_config(&files)?;
        let seen = (modified(&files.cert), modified(&files.key));
        Ok(Arc::new(TlsConfig { files, current: ArcSwap::from_pointee(config), seen: std::sync::Mutex::new(seen) }))
    }

    /// The configuration to accept the next connection with.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// The files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Loads the files again; on failure the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let seen = (modified(&self.files.cert), modified(&self.files.key));
        *self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = seen;
        let config = server_config(&self.files)?;
        self.current.store(Arc::new(config));
        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// Reloads if either file changed since the last load.
    pub fn reload_if_changed(&self) {
        let now = (modified(&self.files.cert), modified(&self.files.key));
        let changed = *self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) != now;
        if changed && let Err(e) = self.reload() {
            tracing::error!(error = %e, "the TLS files changed but cannot be loaded: the previous certificate stays");
        }
    }

    /// Watches the files (every `every`) and SIGHUP, reloading on either,
    /// until the runtime stops.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let config = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                config.reload_if_changed();
            }
        });
        #[cfg(unix)]
        {
            let config = self.clone();
            tokio::spawn(async move {
                let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                    tracing::error!("cannot listen for SIGHUP: the TLS files are still watched");
                    return;
                };
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    if let Err(e) = config.reload() {
                        tracing::error!(error = %e, "the TLS files cannot be loaded: the previous certificate stays");
                    }
                }
            });
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The fingerprint ([`prereg_pki::x509::fingerprint`]) of the first
/// certificate of a PEM file: how a CA caller's client certificate is known.
pub fn certificate_sha256(path: &Path) -> Result<String, TlsError> {
    Ok(prereg_pki::x509::fingerprint(read_certificates(path)?[0].as_ref()))
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = read_certificates(&files.cert)?;
    let key_file = |message: String| TlsError::File { path: files.key.display().to_string(), message };
    let pem = zeroize::Zeroizing::new(std::fs::read(&files.key).map_err(|e| key_file(e.to_string()))?);
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| key_file(format!("no PEM private key: {e}")))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match files.client_roots.as_slice() {
        [] => builder.with_no_client_auth(),
        paths => {
            let mut roots = rustls::RootCertStore::empty();
            for path in paths {
                for cert in read_certificates(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::File { path: path.display().to_string(), message: e.to_string() })?;
                }
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("{} and {}: {e}", files.cert.display(), files.key.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Days the `--tls-self` certificate is valid.
const SELF_DAYS: u32 = 90;
/// It is issued again when fewer days than this are left.
const SELF_RENEW_DAYS: u64 = 30;

/// The `--tls-self` files: a certificate for `names` (DNS names and IP
/// addresses) issued by the instance CA, with a new P-256 key, kept in the
/// data folder's `tls/` (the key owner-only). Issued again when the names
/// differ or it is within 30 days of its end.
pub fn self_issued(data: &DataDir, names: &[String], now: u64) -> Result<TlsFiles, TlsError> {
    let ca = crate::pki::Ca::load(data)
        .map_err(|e| TlsError::NoCa(e.to_string()))?
        .ok_or_else(|| TlsError::NoCa(format!("{} has no CA", data.root().display())))?;
    let dir = data.root().join("tls");
    let files = TlsFiles { cert: dir.join("server.crt"), key: dir.join("server.key"), client_roots: Vec::new() };
    let wanted = names_line(names);
    let names_file = dir.join("server.names");
    if let (Ok(existing), Ok(recorded)) = (std::fs::read(&files.cert), std::fs::read_to_string(&names_file))
        && recorded.trim() == wanted
        && let Some(der) = CertificateDer::pem_slice_iter(&existing).next().and_then(Result::ok)
        && let Ok(cert) = prereg_pki::x509::Certificate::from_der(der.as_ref())
        && cert.not_after > now + SELF_RENEW_DAYS * 86_400
        && files.key.exists()
    {
        return Ok(files);
    }
    let (dns, ips): (Vec<&String>, Vec<&String>) = names.iter().partition(|n| n.parse::<IpAddr>().is_err());
    let dns: Vec<&str> = dns.into_iter().map(String::as_str).collect();
    let ips: Vec<IpAddr> = ips.into_iter().filter_map(|n| n.parse().ok()).collect();
    let key = prereg_pki::keys::SigningKey::generate_p256();
    let spki = key.spki_der().map_err(|e| TlsError::Config(e.to_string()))?;
    let cert = ca.issue_server(&dns, &ips, &spki, SELF_DAYS, now).map_err(|e| TlsError::Config(e.to_string()))?;
    let io =
        |path: &Path, e: std::io::Error| TlsError::File { path: path.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let key_pem = zeroize::Zeroizing::new(key.to_pem().map_err(|e| TlsError::Config(e.to_string()))?);
    crate::data_dir::write_private_file(&files.key, key_pem.as_bytes()).map_err(|e| io(&files.key, e))?;
    let chain = format!(
        "{}{}",
        prereg_pki::x509::pem("CERTIFICATE", &cert.der),
        prereg_pki::x509::pem("CERTIFICATE", &ca.certificate().der)
    );
    std::fs::write(&files.cert, chain).map_err(|e| io(&files.cert, e))?;
    std::fs::write(&names_file, &wanted).map_err(|e| io(&names_file, e))?;
    tracing::info!(names = %wanted, cert = %files.cert.display(), "issued the service's TLS certificate from the instance CA");
    Ok(files)
}

fn names_line(names: &[String]) -> String {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}
