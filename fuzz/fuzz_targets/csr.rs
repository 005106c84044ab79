//! A PKCS#10 request (CMP p10cr, SCEP PKCSReq): read and its signature checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = prereg_pki::csr::read(data);
});
