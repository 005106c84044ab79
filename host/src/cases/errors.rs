//! Why a case file could not be run (a failing case is not an error: it is in
//! the report).

use crate::registry::RegistryError;
use crate::store::StoreError;

/// Why a case file could not be run.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// The file cannot be read.
    #[error("{file}: {error}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a valid case file.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong, with line and column where the parser gives them.
        message: String,
    },
    /// A recording cannot be read or written, or does not fit the cases.
    #[error("recording {path}: {message}")]
    Recording {
        /// The recording file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A procedure or registration of the file could not be set up.
    #[error("{what}: {error}")]
    Setup {
        /// Which entry of the file.
        what: String,
        /// Why.
        error: RegistryError,
    },
    /// The throwaway store.
    #[error("throwaway store: {0}")]
    Store(#[from] StoreError),
    /// The throwaway instance.
    #[error(transparent)]
    Scratch(#[from] crate::scratch::ScratchError),
    /// A decision could not be made (storage, not the policy: a failing policy
    /// gives `policy-error`, which is a case outcome).
    #[error("case {case:?}: {error}")]
    Decision {
        /// The case.
        case: String,
        /// Why.
        error: RegistryError,
    },
}
