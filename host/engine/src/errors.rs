//! Errors of the engine module.

/// Why a policy could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine configuration was refused.
    #[error("wasmtime configuration refused: {0}")]
    Config(#[source] wasmtime::Error),
    /// The epoch ticker thread could not start.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[source] std::io::Error),
    /// The policy file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy file is larger than allowed.
    #[error("policy {path} is {size} bytes; at most {max} are accepted")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// Not a valid component, or not of the `prereg:policy` world.
    #[error("policy {path} is not a usable prereg:policy@0.1.x component: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What wasmtime said.
        message: String,
    },
    /// Imports an interface a policy may not use.
    #[error(
        "policy {path} imports {import}, which a policy may not use (it may import only {allowed}; its facts come from prereg:policy/host)"
    )]
    ForbiddenImport {
        /// The file.
        path: String,
        /// The import.
        import: String,
        /// What may be imported.
        allowed: String,
    },
    /// Built against a WIT version this host does not run.
    #[error(
        "policy {path} was built against prereg:policy@{found}; this prereg runs prereg:policy@{supported}: rebuild it with a matching prereg-sdk"
    )]
    WitVersion {
        /// The file.
        path: String,
        /// The version in its `prereg:wit-version` section.
        found: String,
        /// What this host runs.
        supported: String,
    },
    /// The policy failed while being asked for its metadata.
    #[error("policy {path} failed when asked for its metadata: {message}")]
    Metadata {
        /// The file.
        path: String,
        /// The failure.
        message: String,
    },
}
