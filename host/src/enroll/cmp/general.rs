//! `genm`/`genp` (RFC 9483 §4.3): the CA certificates (id-it-caCerts), a
//! root CA certificate update (id-it-rootCaCert; this CA has none to
//! offer), a certificate request template (id-it-certReqTemplate; none is
//! required) and CRL update retrieval (id-it-crlStatusList, answered with
//! id-it-crls); and from RFC 4210 §5.3.19, which clients before RFC 9483
//! ask (OpenSSL 3.0's `-infotype`), the key types accepted
//! (id-it-signKeyPairTypes) and the current CRL (id-it-currentCRL). All of it is public: a `genm` may come unprotected and is
//! then answered unprotected; a MAC-protected or signed one is
//! authenticated like an enrollment or a `kur` and answered in kind.

use super::checks::Checked;
use super::message::{self, ContentFault, FailInfo, InfoTypeAndValue, Request};
use super::protection::Protection;
use super::reply::{Protect, Reply};
use super::{CmpServer, Refusal, system};
use crate::enroll::transaction_text;
use crate::pki::{asn1, oid};
use crate::registry::EnrollmentInput;

/// id-it-signKeyPairTypes
pub const SIGN_KEY_PAIR_TYPES: &str = "1.3.6.1.5.5.7.4.2";
/// id-it-currentCRL
pub const CURRENT_CRL: &str = "1.3.6.1.5.5.7.4.6";
/// id-it-caCerts
pub const CA_CERTS: &str = "1.3.6.1.5.5.7.4.17";
/// id-it-rootCaKeyUpdate
pub const ROOT_CA_KEY_UPDATE: &str = "1.3.6.1.5.5.7.4.18";
/// id-it-certReqTemplate
pub const CERT_REQ_TEMPLATE: &str = "1.3.6.1.5.5.7.4.19";
/// id-it-rootCaCert
pub const ROOT_CA_CERT: &str = "1.3.6.1.5.5.7.4.20";
/// id-it-crlStatusList
pub const CRL_STATUS_LIST: &str = "1.3.6.1.5.5.7.4.22";
/// id-it-crls
pub const CRLS: &str = "1.3.6.1.5.5.7.4.23";

impl CmpServer {
    /// A `genm`; `checked` is `None` for an unprotected one.
    pub(super) fn general(
        &self,
        procedure: &str,
        request: &Request,
        checked: Option<&Checked<'_>>,
        infos: &Result<Vec<InfoTypeAndValue>, ContentFault>,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        let secret;
        let protect = match checked {
            None => Protect::Unprotected,
            Some(checked) => match &checked.protection {
                Protection::Signature(_) => {
                    self.signed_by(checked, now)?;
                    Protect::Signed
                }
                Protection::Mac(alg) => {
                    let (_, kid) = checked.mac()?;
                    let input = EnrollmentInput {
                        procedure: procedure.to_owned(),
                        fqdn: String::from_utf8_lossy(kid).into_owned(),
                        transaction: Some(transaction_text("cmp", checked.transaction_id)),
                        ..Default::default()
                    };
                    secret = self.authenticate(&input, checked, now)?.1;
                    Protect::Mac(alg, secret.as_str())
                }
            },
        };
        let nonce = message::fresh_nonce();
        let reply = Reply { request, protect, now, nonce: &nonce };
        let infos = match infos {
            Ok(list) if !list.is_empty() => list,
            Ok(_) => return Ok(self.error(&reply, FailInfo::BadRequest, "the genm asks for nothing")),
            Err(fault) => return Ok(self.error(&reply, fault.fail, &fault.text)),
        };
        let mut answers = Vec::new();
        for info in infos {
            let answer = match info.kind.as_str() {
                CA_CERTS => {
                    InfoTypeAndValue { kind: CA_CERTS.into(), value: Some(asn1::seq(&[&self.ca.certificate().der])) }
                }
                // One CA key, never updated: no update to offer.
                ROOT_CA_CERT => InfoTypeAndValue { kind: ROOT_CA_KEY_UPDATE.into(), value: None },
                // No template is required: any subject naming the device, a
                // P-256, RSA (2048 to 4096 bits) or Ed25519 key.
                CERT_REQ_TEMPLATE => InfoTypeAndValue { kind: CERT_REQ_TEMPLATE.into(), value: None },
                SIGN_KEY_PAIR_TYPES => InfoTypeAndValue {
                    kind: SIGN_KEY_PAIR_TYPES.into(),
                    value: Some(asn1::seq(&[
                        &asn1::seq(&[&asn1::oid(oid::EC_PUBLIC_KEY), &asn1::oid(oid::P256)]),
                        &asn1::algorithm_null(oid::RSA_ENCRYPTION),
                        &asn1::algorithm(oid::ED25519),
                    ])),
                },
                CURRENT_CRL => InfoTypeAndValue {
                    kind: CURRENT_CRL.into(),
                    value: Some(self.registry.crl(&self.ca, now).map_err(system)?),
                },
                CRL_STATUS_LIST => {
                    let crl = self.registry.crl(&self.ca, now).map_err(system)?;
                    let newer = match (crl_this_update(&crl), clients_this_update(info.value.as_deref())) {
                        (Some(ours), Some(theirs)) => ours > theirs,
                        _ => true,
                    };
                    InfoTypeAndValue { kind: CRLS.into(), value: newer.then(|| asn1::seq(&[&crl])) }
                }
                other => {
                    return Ok(self.error(
                        &reply,
                        FailInfo::BadRequest,
                        &format!(
                            "infoType {other} is not served (caCerts, rootCaCert, certReqTemplate, crlStatusList, \
                             signKeyPairTypes and currentCRL are)"
                        ),
                    ));
                }
            };
            answers.push(answer);
        }
        tracing::info!(asked = infos.len(), protected = checked.is_some(), "CMP: genm answered");
        Ok(self.respond(&reply, &message::genp_body(&answers), false))
    }
}

/// A CRL's thisUpdate.
fn crl_this_update(crl: &[u8]) -> Option<u64> {
    let list = asn1::parse(crl).ok()?;
    let tbs = list.children().ok()?.required("tbsCertList").ok()?;
    let mut fields = tbs.children().ok()?;
    let mut field = fields.required("version").ok()?;
    if field.tag == asn1::tag::INTEGER {
        field = fields.required("signature").ok()?;
    }
    let _signature = field;
    fields.required("issuer").ok()?;
    asn1::parse_time(&fields.required("thisUpdate").ok()?).ok()
}

/// The newest thisUpdate of a CRLStatusListValue (the CRLs the client has).
fn clients_this_update(value: Option<&[u8]>) -> Option<u64> {
    let list = asn1::parse(value?).ok()?;
    let mut statuses = list.children().ok()?;
    let mut newest = None;
    while let Ok(Some(status)) = statuses.next_value() {
        let mut parts = status.children().ok()?;
        parts.required("source").ok()?;
        if let Ok(Some(time)) = parts.next_value()
            && let Ok(t) = asn1::parse_time(&time)
        {
            newest = newest.max(Some(t));
        }
    }
    newest
}
