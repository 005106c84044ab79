//! The host facts a policy may ask for.

use crate::model::{LogLevel, LookupError, PasswordCheck, Procedure, Registration};
use crate::name::Fqdn;

/// What a host gives a policy: the `host` interface of the `prereg:policy` WIT
/// world, as a Rust trait.
///
/// Guests get an implementation over the WIT imports from the SDK; the prereg
/// host implements it natively over its storage, which is how the native
/// baseline runs the very same policy code as the WebAssembly guest.
pub trait PolicyHost {
    /// The token procedure of that name, if any.
    fn procedure(&self, name: &str) -> Option<Procedure>;

    /// Registrations of `domain` whose pattern may match `fqdn`, from the host's
    /// index (see `find-candidates` in the WIT for the exact set).
    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError>;

    /// Compares the current request's password with the registration's, in the host.
    fn check_password(&self, registration: u64) -> PasswordCheck;

    /// Whether a canonical name is a public suffix.
    fn is_public_suffix(&self, name: &str) -> bool;

    /// The evaluation time, in Unix seconds.
    fn now(&self) -> u64;

    /// A log line for the host's log.
    fn log(&self, level: LogLevel, message: &str);
}
