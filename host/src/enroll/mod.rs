//! The enrollment front: CMP ([`cmp`]) and SCEP ([`scep`]) endpoints that stock
//! clients use, in front of the registry's decision. Every enrollment goes
//! through the active policy exactly as `prereg enroll` does, is audited with
//! the protocol's transaction id, and counts against the registration only
//! when a certificate is really issued. Certificates come from the data
//! folder's CA ([`crate::pki::Ca`]).

pub mod cmp;
pub mod scep;

pub use prereg_pki::{DeviceFacts, csr};

/// Lower-case hex of a protocol's transaction id, as the audit log keeps it.
pub fn transaction_text(protocol: &str, id: &[u8]) -> String {
    format!("{protocol}:{}", crate::audit::hex(id))
}
