//! The PKI and enrollment-protocol messages of prereg, apart from storage and
//! policy (the host's `enroll` module puts them in front of the registry):
//!
//! - [`asn1`]: a lenient BER reader (stock clients send BER) and a strict DER
//!   writer;
//! - [`keys`], [`x509`]: requesters' keys and signatures, the CA's signing
//!   keys, names, alternative names, certificates read and written;
//! - [`csr`]: PKCS#10 requests;
//! - [`cmp`]: CMP messages and their MAC protection (PBM, PBMAC1);
//! - [`scep`]: the CMS (PKCS#7) SCEP wraps its messages in.
//!
//! Every reader takes untrusted bytes and returns an error naming the
//! structure and offset at fault, never a panic (`fuzz/` exercises them).

pub mod asn1;
pub mod cmp;
pub mod csr;
pub mod errors;
pub mod keys;
pub mod oid;
pub mod scep;
pub mod x509;

use std::net::IpAddr;

pub use errors::PkiError;

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
    /// Every dNSName of the subjectAltName, as requested.
    pub dns_names: Vec<String>,
    /// The kinds of the subjectAltName's other entries (`rfc822Name`, ...).
    pub other_names: Vec<&'static str>,
}

impl DeviceFacts {
    /// From a subject and its alternative names.
    pub fn from_parts(name: x509::NameInfo, alt_names: x509::AltNames) -> Self {
        DeviceFacts {
            fqdn: name.common_name.or_else(|| alt_names.dns.first().cloned()),
            ip: alt_names.ip.into_iter().next(),
            serial: name.serial_number,
            dns_names: alt_names.dns,
            other_names: alt_names.other,
        }
    }
}

/// Bytes from hex (either letter case); `None` if `text` is not an even
/// number of hex digits. The inverse of [`hex`].
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trips() {
        assert_eq!(super::unhex(&super::hex(&[0, 0xab, 0x7f])), Some(vec![0, 0xab, 0x7f]));
        assert_eq!(super::unhex("AB"), Some(vec![0xab]));
        assert_eq!(super::unhex("abc"), None);
        assert_eq!(super::unhex("zz"), None);
    }
}
