//! A CMP request as `prereg serve` reads it: the PKIMessage, then its
//! protection algorithm and a MAC check (never a panic, whatever the bytes).
//! Iteration counts are bounded low here, so that the fuzzer spends its time
//! on the parsers rather than on PBKDF2.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prereg_pki::cmp::{message, protection::MacAlgorithm};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = message::read(data)
        && let Some(alg) = request.protection_alg.as_deref()
        && let Ok(value) = prereg_pki::asn1::parse(alg)
        && let Ok(mac) = MacAlgorithm::read(&value, 1000)
    {
        let _ = mac.verify(b"secret", &request.protected_part, request.protection.as_deref().unwrap_or_default());
    }
});
