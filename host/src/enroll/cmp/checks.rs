//! What every request's header must be before anything else is looked at
//! (RFC 9483 §3.1 and §3.5), and the failInfo each fault is answered with.

use super::message::{FailInfo, Request};
use super::protection::{MacAlgorithm, Protection};
use super::{CmpLimits, Refusal, refuse};

/// The length of a transactionID and the least length of a senderNonce:
/// 128 bits (RFC 9483 §3.1).
pub const NONCE_BYTES: usize = 16;

/// The longest senderNonce accepted.
const MAX_NONCE_BYTES: usize = 64;

/// A request whose header passed: its protection read (not yet verified).
pub(super) struct Checked<'a> {
    pub request: &'a Request,
    pub protection: Protection,
    /// The protection bits (a MAC or a signature).
    pub bits: &'a [u8],
    /// senderKID (required with a MAC; a signer names its certificate's).
    pub kid: Option<&'a [u8]>,
    pub transaction_id: &'a [u8],
}

impl Checked<'_> {
    /// The MAC algorithm, for a message that must be MAC-protected (keyed by
    /// a registration's password) with the senderKID naming the device.
    pub fn mac(&self) -> Result<(&MacAlgorithm, &[u8]), Refusal> {
        let Protection::Mac(alg) = &self.protection else {
            return Err(refuse(
                FailInfo::WrongIntegrity,
                format!(
                    "{} must be MAC-protected with the registration's password (a signature is accepted for kur, \
                     rr and genm)",
                    self.request.body.name()
                ),
            ));
        };
        let kid = self.kid.ok_or_else(|| {
            refuse(FailInfo::BadMessageCheck, "no senderKID: the reference must be the device's FQDN")
        })?;
        Ok((alg, kid))
    }

    /// Whether `secret` verifies the MAC (false for a signed message).
    pub fn mac_verifies(&self, secret: &[u8]) -> bool {
        match &self.protection {
            Protection::Mac(alg) => alg.verify(secret, &self.request.protected_part, self.bits),
            Protection::Signature(_) => false,
        }
    }
}

/// Checks the header of `request` against the profile (all but its
/// protection); returns its transactionID.
pub(super) fn profile<'a>(request: &'a Request, limits: &CmpLimits, now: u64) -> Result<&'a [u8], Refusal> {
    if !(2..=3).contains(&request.pvno) {
        return Err(refuse(
            FailInfo::UnsupportedVersion,
            format!("pvno {} is not supported (2, cmp2000, and 3, cmp2021, are)", request.pvno),
        ));
    }
    let transaction_id = match request.transaction_id.as_deref() {
        Some(t) if t.len() == NONCE_BYTES => t,
        Some(t) => {
            return Err(refuse(
                FailInfo::BadDataFormat,
                format!("the transactionID is {} bytes; it must be 128 bits of random data (16 bytes)", t.len()),
            ));
        }
        None => return Err(refuse(FailInfo::BadDataFormat, "the header has no transactionID")),
    };
    match request.sender_nonce.as_deref() {
        Some(n) if (NONCE_BYTES..=MAX_NONCE_BYTES).contains(&n.len()) => {}
        Some(n) => {
            return Err(refuse(
                FailInfo::BadSenderNonce,
                format!(
                    "the senderNonce is {} bytes; it must be at least 128 bits of random data (16 to {MAX_NONCE_BYTES} bytes)",
                    n.len()
                ),
            ));
        }
        None => return Err(refuse(FailInfo::BadSenderNonce, "the header has no senderNonce")),
    }
    if request.body.is_first() && request.recip_nonce.is_some() {
        return Err(refuse(
            FailInfo::BadRecipientNonce,
            "a first message of a transaction carries no recipNonce (there is no server nonce to answer yet)",
        ));
    }
    if let Some(time) = request.message_time
        && limits.time_window_seconds > 0
        && time.abs_diff(now) > limits.time_window_seconds
    {
        return Err(refuse(
            FailInfo::BadTime,
            format!(
                "the messageTime is {} seconds from the server's clock; at most {} are accepted",
                time.abs_diff(now),
                limits.time_window_seconds
            ),
        ));
    }
    if let Some(fault) = &request.general_info_fault {
        return Err(refuse(FailInfo::BadDataFormat, fault.clone()));
    }
    Ok(transaction_id)
}

/// Reads the protection of a request whose header passed [`profile`].
pub(super) fn protection<'a>(
    request: &'a Request,
    limits: &CmpLimits,
    transaction_id: &'a [u8],
) -> Result<Checked<'a>, Refusal> {
    let alg_der = request.protection_alg.as_deref().ok_or_else(|| {
        refuse(
            FailInfo::BadMessageCheck,
            "the request is not protected: protect it with the registration's password (MAC) or sign it with the \
             device's certificate",
        )
    })?;
    let protection = crate::pki::asn1::parse(alg_der)
        .map_err(|e| refuse(FailInfo::BadDataFormat, format!("protectionAlg: {e}")))
        .and_then(|v| Protection::read(&v, limits.max_iterations).map_err(|e| refuse(e.fail, e.message)))?;
    let bits = request
        .protection
        .as_deref()
        .ok_or_else(|| refuse(FailInfo::BadMessageCheck, "the request has a protectionAlg but no protection"))?;
    if matches!(protection, Protection::Mac(_)) && request.sender_kid.is_none() {
        return Err(refuse(FailInfo::BadMessageCheck, "no senderKID: the reference must be the device's FQDN"));
    }
    Ok(Checked { request, protection, bits, kid: request.sender_kid.as_deref(), transaction_id })
}
