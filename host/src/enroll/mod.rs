//! The enrollment front: CMP ([`cmp`]) and SCEP ([`scep`]) endpoints that stock
//! clients use, in front of the registry's decision. Every enrollment goes
//! through the active policy exactly as `prereg enroll` does, is audited with
//! the protocol's transaction id, and counts against the registration only
//! when a certificate is really issued. Certificates come from the data
//! folder's CA ([`crate::pki::Ca`]).

pub mod cmp;
pub mod csr;
pub mod scep;

use std::net::IpAddr;

use crate::pki::x509::{AltNames, NameInfo};

/// What a certificate request says about the device (SPEC "Deciding an
/// enrollment": the FQDN is the CN, or the first DNS SAN without a CN).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The device name.
    pub fqdn: Option<String>,
    /// The first IP address SAN.
    pub ip: Option<IpAddr>,
    /// The subject serialNumber.
    pub serial: Option<String>,
}

impl DeviceFacts {
    /// From a subject and its alternative names.
    pub fn from_parts(name: NameInfo, alt_names: AltNames) -> Self {
        DeviceFacts {
            fqdn: name.common_name.or_else(|| alt_names.dns.into_iter().next()),
            ip: alt_names.ip.into_iter().next(),
            serial: name.serial_number,
        }
    }
}

/// Lower-case hex of a protocol's transaction id, as the audit log keeps it.
pub fn transaction_text(protocol: &str, id: &[u8]) -> String {
    format!("{protocol}:{}", crate::audit::hex(id))
}
