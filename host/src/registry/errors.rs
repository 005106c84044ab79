//! Errors of the registry service.

use prereg_core::ValidationError;

use crate::signing::SigningError;
use crate::store::StoreError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The data folder has not been initialised (`prereg init`).
    #[error("this prereg instance is not initialised: run `prereg init` first")]
    NotInitialised,
    /// The signed request was refused.
    #[error("signed request refused: {0}")]
    Signature(#[from] SigningError),
    /// The officer may not act in that domain.
    #[error("officer {officer:?} may not act in domain {domain:?}")]
    Forbidden {
        /// Officer name.
        officer: String,
        /// Domain.
        domain: String,
    },
    /// The request is invalid; names the field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field (`fqdn`, `ip`, `domain`, ...).
        field: String,
        /// Why.
        message: String,
    },
    /// The signed request is for another action or object than the one it
    /// was sent to.
    #[error("the signed request does not match this call: {0}")]
    Mismatch(String),
    /// A policy component was refused (not a component, wrong world or WIT
    /// version, forbidden imports, failing metadata).
    #[error("policy refused: {0}")]
    PolicyRefused(String),
    /// No such object.
    #[error("{0} not found")]
    NotFound(String),
    /// The policy could not validate the registration (trap, timeout...).
    #[error("the policy failed while validating the registration: {0}")]
    Policy(String),
    /// The certificate of an allowed enrollment could not be issued; nothing
    /// was counted.
    #[error("the certificate could not be issued: {0}")]
    Issuance(String),
    /// Too many password checks at once: nothing was decided; try again.
    #[error("the server is checking too many passwords at once; nothing was decided, try again shortly")]
    Busy,
    /// A storage failure, a duplicate or a replayed request id.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ValidationError> for RegistryError {
    fn from(e: ValidationError) -> Self {
        RegistryError::Invalid { field: e.field.as_str().into(), message: e.message }
    }
}

impl RegistryError {
    /// Whether the caller's input is at fault (as opposed to the system).
    pub fn is_input_error(&self) -> bool {
        !matches!(
            self,
            RegistryError::Policy(_)
                | RegistryError::Issuance(_)
                | RegistryError::Busy
                | RegistryError::Store(
                    StoreError::Database(_)
                        | StoreError::Postgres(_)
                        | StoreError::Unavailable { .. }
                        | StoreError::Open { .. }
                        | StoreError::Damaged { .. }
                        | StoreError::ReadOnly { .. }
                        | StoreError::Full { .. }
                        | StoreError::Corrupt(_)
                        | StoreError::SchemaTooNew { .. }
                )
        )
    }
}
