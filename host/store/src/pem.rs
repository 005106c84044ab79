//! PEM certificate files and the TLS crypto provider (ring), shared by the
//! service's TLS (`prereg::service::tls`) and PostgreSQL's
//! (`store::postgres_tls`).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A PEM file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PemError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// The rustls provider prereg uses everywhere (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let file = |message: String| PemError { path: path.display().to_string(), message };
    let pem = std::fs::read(path).map_err(|e| file(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}
