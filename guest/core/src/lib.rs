//! The matching core of prereg.
//!
//! Plain Rust with no WebAssembly in it, so that the host (tests, the native
//! baseline of the benchmarks) and every guest policy run the very same code:
//!
//! - [`name`]: canonical FQDNs (trim, IDNA UTS-46, lowercase, one trailing dot,
//!   label and length rules).
//! - [`pattern`]: registration patterns (`*` inside labels, the catch-all `*`),
//!   matching, specificity order, and the index keys that let a host find
//!   candidates without scanning.
//! - [`model`]: the domain types of the `prereg:policy` WIT world, as Rust.
//! - [`host`]: [`PolicyHost`], the host facts a policy may ask for. Guests
//!   implement it over the WIT imports; the host implements it natively.

pub mod host;
pub mod model;
pub mod name;
pub mod pattern;

pub use host::PolicyHost;
pub use model::*;
pub use name::{Fqdn, NameError};
pub use pattern::{IndexKey, IndexKeyRef, Pattern, PatternError, Specificity};

/// The version of the `prereg:policy` WIT package this crate implements.
pub const WIT_VERSION: &str = "0.1.1";
