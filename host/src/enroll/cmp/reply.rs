//! Writing the server's messages: `ip`/`cp`/`kup`, `rp`, `genp`, `pkiConf`
//! and `error`, with the header that answers the request (its transactionID,
//! its senderNonce as the recipNonce, a fresh senderNonce) and, once the
//! request is authenticated, protected in kind: a MAC request's answer with
//! the same algorithm under a fresh salt and the same secret; a signed
//! request's answer signed by the instance's RA key (its certificate and the
//! CA's in extraCerts).

use super::CmpServer;
use super::message::{self, FailInfo, Header, Request};
use super::protection::MacAlgorithm;
use crate::pki::x509;

/// How an answer is protected.
#[derive(Clone, Copy)]
pub(super) enum Protect<'a> {
    /// Not at all (the request is not authenticated, or asked for public information unprotected).
    Unprotected,
    /// With this MAC algorithm (a fresh salt) and secret.
    Mac(&'a MacAlgorithm, &'a str),
    /// Signed by the RA key.
    Signed,
}

/// How to answer one request: protected how, with which senderNonce.
#[derive(Clone, Copy)]
pub(super) struct Reply<'a> {
    pub request: &'a Request,
    pub protect: Protect<'a>,
    pub now: u64,
    /// The server's senderNonce: a certConf must answer it as its recipNonce.
    pub nonce: &'a [u8],
}

impl CmpServer {
    fn header(
        &self,
        request: Option<&Request>,
        protect: Option<&MacAlgorithm>,
        now: u64,
        implicit: bool,
        nonce: Option<&[u8]>,
    ) -> Header {
        Header {
            pvno: request.map_or(2, |r| if r.pvno == 3 { 3 } else { 2 }),
            sender: message::directory_name(&self.ca.certificate().subject),
            recipient: request.map_or_else(|| message::directory_name(&x509::write_name(&[])), |r| r.sender.clone()),
            protection_alg: protect.map(MacAlgorithm::encode),
            sender_kid: request.and_then(|r| r.sender_kid.clone()),
            transaction_id: request.and_then(|r| r.transaction_id.clone()),
            sender_nonce: nonce.map(<[u8]>::to_vec),
            recip_nonce: request.and_then(|r| r.sender_nonce.clone()),
            implicit_confirm: implicit,
            now,
        }
    }

    pub(super) fn respond(&self, reply: &Reply<'_>, body: &[u8], implicit: bool) -> Vec<u8> {
        match reply.protect {
            Protect::Unprotected => {
                let header = self.header(Some(reply.request), None, reply.now, implicit, Some(reply.nonce)).encode();
                message::encode(&header, body, None)
            }
            Protect::Mac(alg, secret) => {
                let fresh = alg.fresh();
                let header =
                    self.header(Some(reply.request), Some(&fresh), reply.now, implicit, Some(reply.nonce)).encode();
                let mac = |part: &[u8]| fresh.mac(secret.as_bytes(), part);
                message::encode(&header, body, Some(&mac))
            }
            Protect::Signed => {
                let ra = self.ca.ra_certificate();
                let key = self.ca.ra_key();
                let mut header = self.header(Some(reply.request), None, reply.now, implicit, Some(reply.nonce));
                header.sender = message::directory_name(&ra.subject);
                header.protection_alg = Some(key.signature_algorithm());
                header.sender_kid = x509::key_identifier(&ra.spki).ok();
                let sign = |part: &[u8]| key.sign(part).unwrap_or_default();
                let extra: [&[u8]; 2] = [&ra.der, &self.ca.certificate().der];
                message::encode_with_certs(&header.encode(), body, Some(&sign), &extra)
            }
        }
    }

    /// An `ip`/`cp` (`body_tag`) carrying `cert` for request `cert_req_id`.
    pub(super) fn issued(
        &self,
        reply: &Reply<'_>,
        body_tag: u8,
        cert_req_id: i64,
        cert: &[u8],
        implicit: bool,
    ) -> Vec<u8> {
        let status = message::status_info(0, None, None);
        let body = message::cert_rep(body_tag, cert_req_id, &status, Some((cert, &self.ca.certificate().der)));
        self.respond(reply, &body, implicit)
    }

    /// An `ip`/`cp` rejecting request `cert_req_id`.
    pub(super) fn rejection(
        &self,
        reply: &Reply<'_>,
        body_tag: u8,
        cert_req_id: i64,
        fail: FailInfo,
        text: &str,
    ) -> Vec<u8> {
        let status = message::status_info(2, Some(text), Some(fail));
        let body = message::cert_rep(body_tag, cert_req_id, &status, None);
        self.respond(reply, &body, false)
    }

    /// An `error`, protected as `reply` says.
    pub(super) fn error(&self, reply: &Reply<'_>, fail: FailInfo, text: &str) -> Vec<u8> {
        let protected = !matches!(reply.protect, Protect::Unprotected);
        tracing::info!(fail = fail.name(), protected, "CMP: error: {text}");
        let status = message::status_info(2, Some(text), Some(fail));
        self.respond(reply, &message::error_body(&status), false)
    }

    pub(super) fn pki_conf(&self, reply: &Reply<'_>) -> Vec<u8> {
        self.respond(reply, &message::pki_conf_body(), false)
    }

    /// An `error` that cannot be protected (the request is not authenticated,
    /// or not even readable).
    pub(super) fn unprotected_error(&self, request: Option<&Request>, now: u64, fail: FailInfo, text: &str) -> Vec<u8> {
        let status = message::status_info(2, Some(text), Some(fail));
        let header = self.header(request, None, now, false, None).encode();
        message::encode(&header, &message::error_body(&status), None)
    }
}
