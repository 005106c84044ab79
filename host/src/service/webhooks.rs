//! prereg as another CA's webhook: step-ca calls the webhooks configured on
//! a provisioner, and prereg answers from the same registry, decisions and
//! audit log as its own enrollment fronts. The contract is smallstep's
//! (`certificates/webhook/types.go`, `authority/provisioner/webhook.go`):
//!
//! - `POST /webhooks/step-ca/{procedure}`, one URL per token procedure;
//! - the JSON body (`webhook.RequestBody`), within the service's body limit
//!   (256 KiB by default) and never over 1 MiB;
//! - `X-Smallstep-Signature`: hex HMAC-SHA256 of the body, keyed by the
//!   webhook secret's bytes (`ca.json` holds it in base64, step-ca decodes
//!   it); the caller is the one CA caller of the procedure whose sealed
//!   webhook secret verifies it (`prereg caller add --webhook`);
//!   `X-Smallstep-Webhook-ID` is logged;
//! - a `timestamp` more than five minutes from this clock, or a body seen
//!   before (kept a day), is refused;
//! - the answer is `{"allow": true|false}` (`webhook.ResponseBody`).
//!
//! What is asked depends on the body: an `x509Certificate` is an
//! AUTHORIZING call (the certificate step-ca is about to sign: its common
//! name or first DNS name is the device, decided for real, counted and
//! audited as the caller's; every other DNS name must be covered by the
//! same registration; `attestationData.permanentIdentifier`, else the
//! subject's serialNumber, is the serial); a `scepChallenge` is a
//! SCEPCHALLENGE call (the challenge is the registration's password, checked
//! by a real decision, lockout included); anything else with a
//! `scepTransactionID` is a NOTIFYING call, recorded in the audit log.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use prereg_core::{Fqdn, Reason};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AppState;
use super::problem::ApiError;
use super::routes::blocking;
use crate::registry::{DecisionMode, EnrollmentInput, Registry, unix_now};
use crate::store::{CallerRecord, TxKind};

/// The largest body taken.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How far a call's timestamp may be from this clock, in seconds.
pub const TIMESTAMP_WINDOW_SECONDS: u64 = 300;

/// A new webhook secret: 32 random bytes, in the base64 form step-ca's
/// `ca.json` takes.
pub fn new_secret() -> Zeroizing<String> {
    use base64::Engine;
    use rand_core::RngCore;
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()))
}

/// Shortest imported webhook secret accepted, in bytes (prereg makes 32,
/// step-ca 64).
pub const MIN_SECRET_BYTES: usize = 32;

/// A webhook secret another CA made (step-ca's `step ca provisioner webhook
/// add` prints it as its "Signing Secret"), as read from a file: standard
/// base64, as step-ca decodes it, of at least [`MIN_SECRET_BYTES`] bytes.
/// Returns it trimmed; otherwise what is wrong with it.
pub fn imported_secret(text: &str) -> Result<Zeroizing<String>, String> {
    use base64::Engine;
    let text = text.trim();
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("not standard base64, as step-ca writes its secrets ({e})"))?,
    );
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{} bytes once decoded; at least {MIN_SECRET_BYTES} are needed (step-ca makes 64)",
            bytes.len()
        ));
    }
    Ok(Zeroizing::new(text.to_owned()))
}

/// The HMAC step-ca sends for `body` under `key` (hex).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    match <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            crate::audit::hex(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A subject, as x509util writes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subject {
    #[serde(default)]
    common_name: String,
    #[serde(default)]
    serial_number: String,
}

/// The parts of a certificate or certificate request prereg decides on.
/// Go writes an empty list as `null`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Names {
    #[serde(default, deserialize_with = "null_as_default")]
    subject: Subject,
    #[serde(default, deserialize_with = "null_as_default")]
    dns_names: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    ip_addresses: Vec<String>,
}

/// `null` (Go's nil slice or pointer) as the type's default.
fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attestation {
    #[serde(default)]
    permanent_identifier: String,
}

/// `webhook.RequestBody`, as far as prereg reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestBody {
    timestamp: String,
    #[serde(default)]
    provisioner_name: Option<String>,
    #[serde(default)]
    attestation_data: Option<Attestation>,
    /// Before step-ca's attestationData: the same identifier at the top level.
    #[serde(default)]
    permanent_identifier: Option<String>,
    #[serde(default)]
    x509_certificate: Option<Names>,
    #[serde(default)]
    x509_certificate_request: Option<Names>,
    #[serde(default, rename = "scepChallenge")]
    scep_challenge: Option<String>,
    #[serde(default, rename = "scepTransactionID")]
    scep_transaction_id: Option<String>,
    #[serde(default)]
    scep_error_code: Option<i64>,
    #[serde(default)]
    scep_error_description: Option<String>,
}

/// `webhook.ResponseBody`.
#[derive(Debug, Clone, Serialize)]
struct ResponseBody {
    allow: bool,
}

/// `POST /webhooks/step-ca/{procedure}`.
pub async fn step_ca(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(procedure): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.failures().check(peer.ip()).map_err(ApiError::too_many_failures)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The request is too large",
            format!("a webhook body of at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let signature = headers
        .get("x-smallstep-signature")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let webhook_id = headers.get("x-smallstep-webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let registry = state.registry().clone();
    let answer = blocking(move || answer(&registry, &procedure, &signature, &webhook_id, &body, unix_now())).await;
    if let Err(e) = &answer
        && matches!(e.status().as_u16(), 401 | 409)
    {
        state.failures().failed(peer.ip());
    }
    Ok(axum::Json(ResponseBody { allow: answer? }).into_response())
}

/// The caller whose webhook secret signed `body`, among the enabled callers
/// of `procedure`.
fn signer(registry: &Registry, procedure: &str, signature: &str, body: &[u8]) -> Result<CallerRecord, ApiError> {
    let refused = || {
        ApiError::unauthenticated(
            "X-Smallstep-Signature is not the HMAC of the body under a webhook secret of this procedure's callers",
        )
    };
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused());
    }
    let callers = registry.storage().begin(TxKind::Read)?.callers()?;
    for caller in callers {
        if caller.disabled_at.is_some() || !caller.procedures.iter().any(|p| p == procedure) {
            continue;
        }
        let Some(sealed) = &caller.webhook_secret_sealed else { continue };
        let key = match registry.webhook_key(sealed) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(caller = %caller.name, error = %e, "step-ca webhook: a caller's webhook secret cannot be opened");
                continue;
            }
        };
        let expected = self::signature(&key, body);
        if expected.len() == signature.len()
            && expected.bytes().zip(signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        {
            return Ok(caller);
        }
    }
    Err(refused())
}

/// Unix seconds of an RFC 3339 time (`2026-12-01T20:00:00.123Z`, or with an
/// offset), as Go's `time.Time` marshals.
fn rfc3339(text: &str) -> Option<u64> {
    let (date_time, offset) = match text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        Some(rest) => (rest, 0i64),
        None => {
            let at = text.len().checked_sub(6)?;
            let (rest, zone) = text.split_at(at);
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = zone.get(1..3)?.parse().ok()?;
            let minutes: i64 = zone.get(4..6)?.parse().ok()?;
            (rest, sign * (hours * 3600 + minutes * 60))
        }
    };
    let whole = date_time.split('.').next()?;
    let digits: String = whole.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 14 || whole.len() != 19 {
        return None;
    }
    let der = crate::pki::asn1::tlv(crate::pki::asn1::tag::GENERALIZED_TIME, format!("{digits}Z").as_bytes());
    let value = crate::pki::asn1::parse(&der).ok()?;
    let utc = crate::pki::asn1::parse_time(&value).ok()? as i64 - offset;
    u64::try_from(utc).ok()
}

fn answer(
    registry: &Registry,
    procedure: &str,
    signature: &str,
    webhook_id: &str,
    body: &[u8],
    now: u64,
) -> Result<bool, ApiError> {
    let caller = signer(registry, procedure, signature, body)?;
    let request: RequestBody =
        serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("not a step-ca webhook body: {e}")))?;
    let at = rfc3339(&request.timestamp)
        .ok_or_else(|| ApiError::invalid("timestamp", format!("{:?} is not an RFC 3339 time", request.timestamp)))?;
    if at.abs_diff(now) > TIMESTAMP_WINDOW_SECONDS {
        return Err(ApiError::invalid(
            "timestamp",
            format!("{} seconds from this server's clock; at most {TIMESTAMP_WINDOW_SECONDS}", at.abs_diff(now)),
        ));
    }
    // A body is answered once: the same signed body again is a replay.
    let seen = format!("step-ca:{}", &signature[..32]);
    if !registry.claim_transaction(&seen, now)? {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "replayed-request",
            "The request was used before",
            "this webhook call was answered before",
        ));
    }
    let provisioner = request.provisioner_name.clone().unwrap_or_default();
    tracing::info!(caller = %caller.name, webhook = webhook_id, provisioner = %provisioner, procedure, "step-ca webhook");
    let transaction = |id: &str| Some(format!("step-ca:{provisioner}:{id}"));
    if let Some(certificate) = &request.x509_certificate {
        return authorize(registry, procedure, &caller, &request, certificate, transaction(webhook_id), now);
    }
    if let Some(challenge) = &request.scep_challenge {
        let names = request.x509_certificate_request.clone().unwrap_or_default();
        let (fqdn, ip) = device(&names);
        let input = EnrollmentInput {
            procedure: procedure.to_owned(),
            fqdn,
            ip,
            serial: Some(names.subject.serial_number.clone()).filter(|s| !s.is_empty()),
            password: Some(Zeroizing::new(challenge.clone())),
            transaction: transaction(request.scep_transaction_id.as_deref().unwrap_or(webhook_id)),
            caller: Some(caller.name.clone()),
            ..Default::default()
        };
        let report = registry.decide(input, DecisionMode::Enroll, now)?;
        tracing::info!(reason = %report.reason, audit = ?report.audit_seq, "step-ca SCEPCHALLENGE decided");
        return Ok(report.allowed);
    }
    if let Some(id) = &request.scep_transaction_id {
        let detail = match (&request.scep_error_code, &request.scep_error_description) {
            (Some(code), description) => {
                format!("step-ca reports SCEP transaction {id} failed: {code} {}", description.as_deref().unwrap_or(""))
            }
            (None, _) => format!("step-ca reports SCEP transaction {id} issued"),
        };
        registry.audit_webhook_notice(&caller.name, procedure, &provisioner, &detail, now)?;
        return Ok(true);
    }
    Err(ApiError::malformed(
        "the body has neither an x509Certificate (AUTHORIZING), a scepChallenge (SCEPCHALLENGE) nor a \
         scepTransactionID (NOTIFYING)",
    ))
}

/// The device a certificate or request names: its common name, else its
/// first DNS name; and its first IP address.
fn device(names: &Names) -> (String, Option<String>) {
    let fqdn = Some(names.subject.common_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| names.dns_names.first().cloned())
        .unwrap_or_default();
    (fqdn, names.ip_addresses.first().cloned())
}

/// AUTHORIZING an X.509 certificate.
fn authorize(
    registry: &Registry,
    procedure: &str,
    caller: &CallerRecord,
    request: &RequestBody,
    certificate: &Names,
    transaction: Option<String>,
    now: u64,
) -> Result<bool, ApiError> {
    let (fqdn, ip) = device(certificate);
    let serial = request
        .attestation_data
        .as_ref()
        .map(|a| a.permanent_identifier.clone())
        .or_else(|| request.permanent_identifier.clone())
        .or_else(|| Some(certificate.subject.serial_number.clone()))
        .filter(|s| !s.is_empty());
    let input = EnrollmentInput {
        procedure: procedure.to_owned(),
        fqdn: fqdn.clone(),
        ip,
        serial,
        transaction,
        caller: Some(caller.name.clone()),
        ..Default::default()
    };
    // Every other DNS name must be covered by the registration that decides
    // for the device (asked without effect first: nothing is counted for a
    // certificate that is refused).
    let dry = registry.decide(input.clone(), DecisionMode::DryRun, now)?;
    let device = Fqdn::parse(&fqdn).ok();
    for name in &certificate.dns_names {
        if Fqdn::parse(name).ok().is_some_and(|n| Some(&n) == device.as_ref()) {
            continue;
        }
        let other =
            registry.decide(EnrollmentInput { fqdn: name.clone(), ..input.clone() }, DecisionMode::DryRun, now)?;
        let covered = dry.allowed && other.allowed && other.registration == dry.registration;
        if !covered {
            let refusal = crate::registry::FrontRefusal {
                input: &input,
                registration: dry.registration,
                reason: Some(Reason::NoRegistration),
                detail: format!(
                    "step-ca AUTHORIZING: the certificate names {:?}, which the registration deciding for {fqdn:?} \
                     does not cover",
                    name.chars().take(80).collect::<String>()
                ),
            };
            registry.audit_refusal(&refusal, now)?;
            return Ok(false);
        }
    }
    let report = registry.decide(input, DecisionMode::Enroll, now)?;
    tracing::info!(reason = %report.reason, audit = ?report.audit_seq, "step-ca AUTHORIZING decided");
    Ok(report.allowed)
}
