//! A SCEP pkiMessage as `prereg serve` reads it: the SignedData, its
//! signature and attributes, then the EnvelopedData inside, decrypted with an
//! RA key (never a panic, whatever the bytes).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prereg_pki::keys::SigningKey;
use prereg_pki::scep::{attr, cms};

fn ra_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(SigningKey::generate_rsa)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = cms::read_signed(data) {
        let _ = signed.verify();
        let _ = signed.attribute_text(attr::TRANSACTION_ID);
        let _ = signed.attribute_octets(attr::SENDER_NONCE);
        if let Some(content) = &signed.content {
            let _ = cms::decrypt_enveloped(content, ra_key());
        }
    }
    let _ = cms::decrypt_enveloped(data, ra_key());
});
