//! The ACME server (RFC 8555) for token procedures of protocol `acme`, one
//! directory per procedure at `/acme/<procedure>/directory`.
//!
//! What makes it prereg's:
//!
//! - **Orders are gated at new-order.** Every identifier is decided by the
//!   active policy (a dry run, exactly as `POST /v1/decisions/check`) before
//!   any authorization or challenge exists; a name that is not
//!   preregistered gets `rejectedIdentifier` naming it, the refusal is
//!   audited, and nothing is stored for the order.
//! - **The count is taken at issuance.** Finalize decides for real through
//!   [`Registry::enroll_issuing`]: the decision, its count, the certificate
//!   and the audit record (actor `acme:<account>`, transaction
//!   `acme:<order>`) are one transaction. A one-time registration is
//!   allowed once; a second order for it is refused at new-order.
//! - **External account binding is required** (RFC 8555 §7.3.4): an account
//!   is made only with a key an officer made (`prereg acme eab add`,
//!   signed and audited), which binds one account, once, and limits the
//!   names it may order.
//! - **Renewals say so** (RFC 9773): an order whose `replaces` names a
//!   certificate the same account ordered for the same name is decided by
//!   the policy's `decide-renewal` ([`Registry::renew_issuing`]) and counts
//!   nothing; `renewal-info` suggests when.
//! - The certificate carries the identity the registration grants
//!   ([`crate::enroll::issue_granted`]), as on every other channel: one
//!   device per certificate, so an order names one DNS identifier.
//!
//! Accounts sign with ES256, EdDSA or RS256. Challenges: `http-01` and
//! `dns-01` ([`validation`]). Revocation (by the account that ordered the
//! certificate, or signed with the certificate's key) puts the serial on
//! the CRL; key rollover and account deactivation are audited.

pub mod jws;
pub mod nonces;
pub mod problem;
pub mod validation;

use std::sync::Arc;

use base64::Engine as _;
use prereg_core::{Fqdn, Protocol};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::enroll::{IssueRequest, Told, csr, issue_granted, names_beyond_the_device};
use crate::pki::{Ca, x509};
use crate::registry::acme::{Account, Authorization, Challenge, Identifier, NewAccount, Order};
use crate::registry::{
    CrlReason, DecisionMode, EnrollmentInput, FrontRefusal, Grant, Registry, RegistryError, Renewal,
};
use crate::store::{CertificateState, StoreError};
use jws::{AccountKey, Parsed};
pub use problem::AcmeProblem;
use validation::Reach;

/// How long an order and its authorizations stay usable, in seconds.
pub const ORDER_SECONDS: u64 = 24 * 3600;

/// How long a finalize may take before its order is taken as abandoned (a
/// process that stopped between taking the order and issuing), in seconds.
pub const FINALIZE_SECONDS: u64 = 120;

/// The ACME media types.
pub const JOSE_JSON: &str = "application/jose+json";

/// What an ACME request is answered with (the HTTP layer adds the
/// `Replay-Nonce`, `Link: index` and `Cache-Control` headers).
#[derive(Debug)]
pub struct AcmeReply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: ReplyBody,
    /// The `Location` header.
    pub location: Option<String>,
    /// `Link` headers besides the directory's (`<url>;rel="up"`).
    pub links: Vec<String>,
    /// Work to run once the answer is sent: a challenge to validate.
    pub validate: Option<(String, String)>,
}

/// The body of an [`AcmeReply`].
#[derive(Debug)]
pub enum ReplyBody {
    /// `application/json`.
    Json(Value),
    /// `application/problem+json`.
    Problem(AcmeProblem),
    /// `application/pem-certificate-chain`.
    Pem(String),
    /// Nothing.
    Empty,
}

impl AcmeReply {
    fn json(status: u16, body: Value) -> Self {
        AcmeReply { status, body: ReplyBody::Json(body), location: None, links: Vec::new(), validate: None }
    }

    fn at(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    /// A problem document.
    pub fn problem(problem: AcmeProblem) -> Self {
        AcmeReply {
            status: problem.status,
            body: ReplyBody::Problem(problem),
            location: None,
            links: Vec::new(),
            validate: None,
        }
    }
}

/// One ACME request as the HTTP layer read it.
#[derive(Debug)]
pub struct AcmeRequest<'a> {
    /// The procedure (the directory).
    pub procedure: &'a str,
    /// What follows `/acme/<procedure>/` in the path.
    pub resource: &'a str,
    /// The base URL the client reached this service at (`https://host:port`).
    pub base: &'a str,
    /// The request body.
    pub body: &'a [u8],
    /// Unix seconds.
    pub now: u64,
}

impl AcmeRequest<'_> {
    fn directory_url(&self) -> String {
        format!("{}/acme/{}", self.base, self.procedure)
    }

    fn url(&self, resource: &str) -> String {
        format!("{}/{resource}", self.directory_url())
    }
}

/// The ACME endpoint of one instance.
pub struct AcmeServer {
    registry: Registry,
    ca: Arc<Ca>,
    nonces: nonces::Nonces,
    reach: Reach,
}

/// A request whose signature, nonce and URL checked out.
struct Verified {
    parsed: Parsed,
    key: AccountKey,
    /// The account, for requests signed with `kid`.
    account: Option<Account>,
}

fn unavailable(e: RegistryError) -> AcmeProblem {
    tracing::error!(error = %e, "ACME: the registry failed");
    AcmeProblem::server_internal("the server cannot answer now; try again").with_status(503)
}

/// What an order's decision is asked about `name`: the account asks, the
/// order is the transaction.
fn order_input(request: &AcmeRequest<'_>, account: &Account, order: &str, name: &str) -> EnrollmentInput {
    EnrollmentInput {
        procedure: request.procedure.to_owned(),
        fqdn: name.to_owned(),
        transaction: Some(format!("acme:{order}")),
        account: Some(account.id.clone()),
        ..Default::default()
    }
}

/// The serial (lower-case hex of the INTEGER's content octets) of an RFC
/// 9773 certificate identifier, `base64url(AKI) "." base64url(serial)`.
fn ari_serial(cert_id: &str) -> Result<String, AcmeProblem> {
    let malformed = || {
        AcmeProblem::malformed(format!(
            "{:?} is no ARI certificate identifier (base64url(AKI).base64url(serial))",
            cert_id.chars().take(100).collect::<String>()
        ))
    };
    let (aki, serial) = cert_id.split_once('.').ok_or_else(malformed)?;
    let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed());
    let (aki, serial) = (decode(aki)?, decode(serial)?);
    if aki.is_empty() || serial.is_empty() || serial.len() > 20 {
        return Err(malformed());
    }
    Ok(crate::pki::hex(&serial))
}

/// An RFC 3339 timestamp (UTC).
fn rfc3339(unix: u64) -> String {
    let (year, month, day, hour, minute, second) = crate::pki::asn1::civil(unix);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// `bytes` random bytes in base64url, drawn again until the text begins
/// with a letter or a digit: binding key ids and HMAC keys are given to
/// clients on their command line, where a leading '-' reads as an option
/// (certbot, lego).
pub fn random_token(bytes: usize) -> zeroize::Zeroizing<String> {
    loop {
        let mut raw = zeroize::Zeroizing::new(vec![0u8; bytes]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let text = zeroize::Zeroizing::new(jws::encode(&raw));
        if text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return text;
        }
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    jws::encode(&bytes)
}

/// `new-account`'s payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccountPayload {
    #[serde(default)]
    contact: Vec<String>,
    #[serde(default)]
    only_return_existing: bool,
    #[serde(default)]
    external_account_binding: Option<Value>,
}

/// `new-order`'s payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrderPayload {
    identifiers: Vec<Identifier>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    /// RFC 9773: the ARI identifier of the certificate this order renews.
    #[serde(default)]
    replaces: Option<String>,
}

impl AcmeServer {
    /// An ACME server deciding with `registry`, issuing from `ca`, reaching
    /// devices through `reach`.
    pub fn new(registry: Registry, ca: Arc<Ca>, reach: Reach) -> Self {
        AcmeServer { registry, ca, nonces: nonces::Nonces::default(), reach }
    }

    /// A fresh nonce.
    pub fn nonce(&self) -> String {
        self.nonces.issue()
    }

    /// The procedure, if it is an ACME one.
    fn procedure(&self, name: &str) -> Result<crate::store::ProcedureRecord, AcmeProblem> {
        match self.registry.procedure(name) {
            Ok(Some(p)) if p.protocol == Protocol::Acme => Ok(p),
            Ok(Some(p)) => {
                Err(AcmeProblem::malformed(format!("token procedure {name} is for {}, not ACME", p.protocol))
                    .with_status(404))
            }
            Ok(None) => Err(AcmeProblem::malformed(format!("no ACME directory {name}")).with_status(404)),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// `GET directory`.
    pub fn directory(&self, request: &AcmeRequest<'_>) -> AcmeReply {
        if let Err(problem) = self.procedure(request.procedure) {
            return AcmeReply::problem(problem);
        }
        AcmeReply::json(
            200,
            json!({
                "newNonce": request.url("new-nonce"),
                "newAccount": request.url("new-account"),
                "newOrder": request.url("new-order"),
                "revokeCert": request.url("revoke-cert"),
                "keyChange": request.url("key-change"),
                "renewalInfo": request.url("renewal-info"),
                "meta": {
                    "externalAccountRequired": true,
                    "website": request.base,
                },
            }),
        )
    }

    /// Whether `procedure` is served (for `new-nonce`).
    pub fn serves(&self, procedure: &str) -> Result<(), AcmeProblem> {
        self.procedure(procedure).map(|_| ())
    }

    /// A POST to `request.resource`.
    pub fn post(&self, request: &AcmeRequest<'_>) -> AcmeReply {
        match self.dispatch(request) {
            Ok(reply) => reply,
            Err(problem) => AcmeReply::problem(problem),
        }
    }

    fn dispatch(&self, request: &AcmeRequest<'_>) -> Result<AcmeReply, AcmeProblem> {
        let procedure = self.procedure(request.procedure)?;
        let segments: Vec<&str> = request.resource.split('/').collect();
        match segments.as_slice() {
            ["new-account"] => self.new_account(request),
            ["new-order"] => self.new_order(request),
            ["revoke-cert"] => self.revoke(request),
            ["key-change"] => self.key_change(request),
            ["account", id] => self.account(request, id),
            ["account", id, "orders"] => self.orders(request, id),
            ["order", id] => self.order(request, id),
            ["order", id, "finalize"] => self.finalize(request, &procedure, id),
            ["authz", id] => self.authorization(request, id),
            ["challenge", authz, kind] => self.challenge(request, authz, kind),
            ["certificate", serial] => self.certificate(request, serial),
            _ => Err(AcmeProblem::malformed(format!("no ACME resource {:?}", request.resource)).with_status(404)),
        }
    }

    /// Checks the JWS of a request: its URL, its nonce, its key (`jwk` only
    /// where `jwk_allowed`, else the `kid` of a valid account of this
    /// directory) and its signature.
    fn verify(&self, request: &AcmeRequest<'_>, jwk_allowed: bool) -> Result<Verified, AcmeProblem> {
        let parsed = Parsed::from_body(request.body)?;
        let expected_url = request.url(request.resource);
        match parsed.header.url.as_deref() {
            Some(url) if url == expected_url => {}
            Some(url) => {
                return Err(AcmeProblem::unauthorized(format!(
                    "the JWS is for {url:?}, not this request's URL {expected_url:?}"
                )));
            }
            None => return Err(AcmeProblem::malformed("the JWS protected header has no url")),
        }
        let Some(nonce) = parsed.header.nonce.as_deref() else {
            return Err(AcmeProblem::bad_nonce("the JWS protected header has no nonce"));
        };
        if !self.nonces.redeem(nonce) {
            return Err(AcmeProblem::bad_nonce("the nonce is unknown, used or expired: take the fresh one"));
        }
        match (&parsed.header.jwk, &parsed.header.kid) {
            (Some(_), Some(_)) => Err(AcmeProblem::malformed("the JWS header has both jwk and kid")),
            (None, None) => Err(AcmeProblem::malformed("the JWS header has neither jwk nor kid")),
            (Some(jwk), None) => {
                if !jwk_allowed {
                    return Err(AcmeProblem::malformed("this request is signed by an account: use kid, not jwk"));
                }
                let key = AccountKey::from_jwk(jwk)?;
                parsed.verify(&key)?;
                Ok(Verified { parsed, key, account: None })
            }
            (None, Some(kid)) => {
                let prefix = request.url("account/");
                let id =
                    kid.strip_prefix(&prefix).filter(|id| !id.is_empty() && !id.contains('/')).ok_or_else(|| {
                        AcmeProblem::account_does_not_exist(format!("{kid:?} is no account of this directory"))
                    })?;
                let account = self
                    .registry
                    .acme_get::<Account>(id)
                    .map_err(unavailable)?
                    .filter(|a| a.procedure == request.procedure)
                    .ok_or_else(|| AcmeProblem::account_does_not_exist(format!("no account {kid:?}")))?;
                let key = AccountKey::from_jwk(&account.jwk)?;
                parsed.verify(&key)?;
                if account.status != "valid" {
                    return Err(AcmeProblem::unauthorized(format!("the account is {}", account.status)));
                }
                Ok(Verified { parsed, key, account: Some(account) })
            }
        }
    }

    fn account_json(&self, request: &AcmeRequest<'_>, account: &Account) -> Value {
        let mut body = json!({
            "status": account.status,
            "contact": account.contact,
            "orders": request.url(&format!("account/{}/orders", account.id)),
        });
        if let (Some(key), Some(map)) = (&account.eab_key, body.as_object_mut()) {
            map.insert("externalAccountBinding".into(), json!({ "kid": key }));
        }
        body
    }

    fn new_account(&self, request: &AcmeRequest<'_>) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, true)?;
        let payload: NewAccountPayload = verified.parsed.json()?;
        let existing = self.registry.acme_account_by_thumbprint(&verified.key.thumbprint).map_err(unavailable)?;
        if let Some(account) = existing {
            if account.procedure != request.procedure {
                return Err(AcmeProblem::unauthorized(
                    "this key belongs to an account of another directory; use another key here",
                ));
            }
            let location = request.url(&format!("account/{}", account.id));
            return Ok(AcmeReply::json(200, self.account_json(request, &account)).at(location));
        }
        if payload.only_return_existing {
            return Err(AcmeProblem::account_does_not_exist("no account has this key"));
        }
        for contact in &payload.contact {
            if !contact.starts_with("mailto:") || contact.len() > 254 {
                return Err(AcmeProblem::malformed(format!("contact {contact:?} is not a mailto: URL")));
            }
        }
        let Some(binding) = &payload.external_account_binding else {
            return Err(AcmeProblem::external_account_required(
                "this directory makes accounts only with an external account binding: ask an officer for a key \
                 (prereg acme eab add)",
            ));
        };
        let key_id = self.check_binding(request, binding, &verified.key)?;
        let account = Account {
            id: random_id(),
            procedure: request.procedure.to_owned(),
            status: "valid".into(),
            jwk: verified.key.jwk.clone(),
            thumbprint: verified.key.thumbprint.clone(),
            contact: payload.contact,
            eab_key: None,
            domains: Vec::new(),
            created_at: request.now,
        };
        match self.registry.acme_create_account(account, Some(&key_id), request.now).map_err(unavailable)? {
            NewAccount::Created(account) => {
                let location = request.url(&format!("account/{}", account.id));
                Ok(AcmeReply::json(201, self.account_json(request, &account)).at(location))
            }
            NewAccount::Existing(account) => {
                let location = request.url(&format!("account/{}", account.id));
                Ok(AcmeReply::json(200, self.account_json(request, &account)).at(location))
            }
            NewAccount::KeyRefused(why) => Err(AcmeProblem::unauthorized(why)),
        }
    }

    /// Checks an external account binding (RFC 8555 §7.3.4): an HS256 JWS,
    /// for the new-account URL, by a key of this directory, over the
    /// account's key. Returns the key id.
    fn check_binding(
        &self,
        request: &AcmeRequest<'_>,
        binding: &Value,
        account_key: &AccountKey,
    ) -> Result<String, AcmeProblem> {
        let inner = Parsed::from_value(binding)?;
        if inner.header.nonce.is_some() {
            return Err(AcmeProblem::malformed("the external account binding must not carry a nonce"));
        }
        if inner.header.url.as_deref() != Some(request.url("new-account").as_str()) {
            return Err(AcmeProblem::malformed("the external account binding is not for this new-account URL"));
        }
        let key_id = inner
            .header
            .kid
            .clone()
            .ok_or_else(|| AcmeProblem::malformed("the external account binding names no key (kid)"))?;
        let bound: Value = inner.json()?;
        let bound_key = AccountKey::from_jwk(&bound)?;
        if bound_key.thumbprint != account_key.thumbprint {
            return Err(AcmeProblem::unauthorized("the external account binding is over another key"));
        }
        let refused = || AcmeProblem::unauthorized(format!("the external account binding key {key_id:?} is refused"));
        let key = self
            .registry
            .acme_get::<crate::registry::acme::EabKey>(&key_id)
            .map_err(unavailable)?
            .filter(|k| k.procedure == request.procedure)
            .ok_or_else(refused)?;
        let hmac = self.registry.eab_hmac_key(&key.hmac_key_sealed).map_err(|why| {
            tracing::error!(key = %key_id, %why, "ACME: an external account binding key cannot be opened");
            AcmeProblem::server_internal("the binding key cannot be used")
        })?;
        inner.verify_hs256(&hmac)?;
        if key.account.is_some() {
            return Err(AcmeProblem::unauthorized(format!(
                "the external account binding key {key_id:?} is bound to another account already"
            )));
        }
        Ok(key_id)
    }

    /// The account of a request signed with `kid` (every request but
    /// new-account and revocation by certificate key).
    fn signed_account(verified: &Verified) -> Result<&Account, AcmeProblem> {
        verified.account.as_ref().ok_or_else(|| AcmeProblem::malformed("this request needs kid"))
    }

    fn account(&self, request: &AcmeRequest<'_>, id: &str) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        if account.id != id {
            return Err(AcmeProblem::unauthorized("an account may read and change only itself"));
        }
        let location = request.url(&format!("account/{id}"));
        if verified.parsed.is_post_as_get() {
            return Ok(AcmeReply::json(200, self.account_json(request, account)).at(location));
        }
        let update: Value = verified.parsed.json()?;
        let mut changed = account.clone();
        if let Some(contact) = update.get("contact") {
            let contact: Vec<String> = serde_json::from_value(contact.clone())
                .map_err(|_| AcmeProblem::malformed("contact must be a list of URLs"))?;
            if contact.iter().any(|c| !c.starts_with("mailto:") || c.len() > 254) {
                return Err(AcmeProblem::malformed("contacts are mailto: URLs"));
            }
            changed.contact = contact;
        }
        let (action, detail) = match update.get("status").and_then(Value::as_str) {
            Some("deactivated") => {
                changed.status = "deactivated".into();
                ("acme.account.deactivate", "deactivated by its own key".to_owned())
            }
            Some(other) => return Err(AcmeProblem::malformed(format!("an account cannot be set to {other:?}"))),
            None => ("acme.account.update", format!("contact {}", changed.contact.join(","))),
        };
        if !self.registry.acme_change_account(&changed, "valid", action, &detail, request.now).map_err(unavailable)? {
            return Err(AcmeProblem::unauthorized("the account changed meanwhile; try again"));
        }
        Ok(AcmeReply::json(200, self.account_json(request, &changed)).at(location))
    }

    fn orders(&self, request: &AcmeRequest<'_>, id: &str) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        if account.id != id {
            return Err(AcmeProblem::unauthorized("an account may list only its own orders"));
        }
        let orders = self.registry.acme_orders_of(id, 1000).map_err(unavailable)?;
        let urls: Vec<String> = orders
            .iter()
            .filter(|o| matches!(o.status.as_str(), "pending" | "ready" | "processing"))
            .map(|o| request.url(&format!("order/{}", o.id)))
            .collect();
        Ok(AcmeReply::json(200, json!({ "orders": urls })))
    }

    fn order_json(&self, request: &AcmeRequest<'_>, order: &Order) -> Value {
        let mut body = json!({
            "status": order.status,
            "expires": rfc3339(order.expires),
            "identifiers": order.identifiers,
            "authorizations": order.authorizations.iter().map(|a| request.url(&format!("authz/{a}"))).collect::<Vec<_>>(),
            "finalize": request.url(&format!("order/{}/finalize", order.id)),
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(serial) = &order.certificate {
                map.insert("certificate".into(), json!(request.url(&format!("certificate/{serial}"))));
            }
            if let Some(error) = &order.error {
                map.insert("error".into(), error.clone());
            }
        }
        body
    }

    /// The decision that gates an order: the policy's, on `name`, as a dry
    /// run; a refusal is audited and told as `rejectedIdentifier`.
    fn gate(&self, request: &AcmeRequest<'_>, account: &Account, order: &str, name: &str) -> Result<(), AcmeProblem> {
        let input = order_input(request, account, order, name);
        let scoped = account.domains.is_empty()
            || Fqdn::parse(name).is_ok_and(|fqdn| account.domains.iter().any(|d| fqdn.is_within(d)));
        let (refusal, told) = if !scoped {
            let why = format!(
                "{name} is outside the names this account's external account binding allows ({})",
                account.domains.join(", ")
            );
            (FrontRefusal { input: &input, registration: None, reason: None, detail: format!("ACME: {why}") }, why)
        } else {
            let report = self.registry.decide(input.clone(), DecisionMode::DryRun, request.now).map_err(|e| {
                if e.is_input_error() {
                    AcmeProblem::rejected_identifier(format!("{name}: {e}"))
                } else {
                    unavailable(e)
                }
            })?;
            if report.allowed {
                return Ok(());
            }
            let told = match Told::of(report.reason) {
                Told::BadRequest => format!("{name} is not a device name prereg issues for"),
                Told::UnknownProcedure => format!("no token procedure {}", request.procedure),
                Told::DomainNotAllowed => format!("{name} is outside the domains of this directory"),
                Told::PolicyError => return Err(AcmeProblem::server_internal("the policy failed").with_status(503)),
                Told::NotAuthorized => format!("{name} is not preregistered for enrollment through this directory"),
            };
            let detail = format!("ACME new-order refused: {} ({})", report.reason.code(), report.explanation);
            (
                FrontRefusal { input: &input, registration: report.registration, reason: Some(report.reason), detail },
                told,
            )
        };
        Err(self.refuse_order(request, &refusal, told))
    }

    /// Audits a refusal at new-order and tells it as `rejectedIdentifier`,
    /// with a subproblem naming the identifier.
    fn refuse_order(&self, request: &AcmeRequest<'_>, refusal: &FrontRefusal<'_>, told: String) -> AcmeProblem {
        let audit = match self.registry.audit_refusal(refusal, request.now) {
            Ok(audit) => audit,
            Err(e) => return unavailable(e),
        };
        let (name, account) = (&refusal.input.fqdn, refusal.input.account.as_deref().unwrap_or_default());
        tracing::info!(%name, %account, audit, "ACME: order refused at new-order");
        let problem = AcmeProblem::rejected_identifier(told);
        let sub = problem.subproblem(name);
        problem.with_subproblems(vec![sub])
    }

    fn new_order(&self, request: &AcmeRequest<'_>) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        let payload: NewOrderPayload = verified.parsed.json()?;
        if payload.not_before.is_some() || payload.not_after.is_some() {
            return Err(AcmeProblem::malformed(
                "notBefore and notAfter are not taken: the token procedure sets the validity",
            ));
        }
        let [identifier] = payload.identifiers.as_slice() else {
            return Err(if payload.identifiers.is_empty() {
                AcmeProblem::malformed("an order names its identifier")
            } else {
                AcmeProblem::rejected_identifier(
                    "an order names one DNS identifier: one certificate covers one registered device",
                )
            });
        };
        if identifier.kind != "dns" {
            return Err(AcmeProblem::unsupported_identifier(format!(
                "identifiers of type {:?} are not served (dns is)",
                identifier.kind
            )));
        }
        let name = Fqdn::parse(&identifier.value)
            .map_err(|e| AcmeProblem::rejected_identifier(format!("{:?}: {e}", identifier.value)))?;
        let id = random_id();
        let replaces = match &payload.replaces {
            None => {
                self.gate(request, account, &id, &identifier.value)?;
                None
            }
            Some(cert_id) => Some(self.renewal_gate(request, account, &id, name.as_str(), cert_id)?),
        };
        // One live order per account and name: the live one is handed back.
        if let Some(live) = self.live_order(account, name.as_str(), request.now)? {
            return Ok(self.order_reply(request, &live, 200));
        }
        let identifier = Identifier { kind: "dns".into(), value: name.as_str().to_owned() };
        let expires = request.now + ORDER_SECONDS;
        let authorization = Authorization {
            id: random_id(),
            order: id.clone(),
            account: account.id.clone(),
            identifier: identifier.clone(),
            status: "pending".into(),
            expires,
            challenges: ["http-01", "dns-01"]
                .into_iter()
                .map(|kind| Challenge {
                    kind: kind.into(),
                    token: random_id(),
                    status: "pending".into(),
                    validated: None,
                    error: None,
                })
                .collect(),
        };
        let order = Order {
            id: id.clone(),
            account: account.id.clone(),
            procedure: request.procedure.to_owned(),
            status: "pending".into(),
            expires,
            identifiers: vec![identifier],
            authorizations: vec![authorization.id.clone()],
            error: None,
            certificate: None,
            replaces,
            finalizing_since: None,
            created_at: request.now,
        };
        match self.registry.acme_create_order(&order, std::slice::from_ref(&authorization)) {
            Ok(()) => {}
            // Another request of the account made it first.
            Err(RegistryError::Store(StoreError::Duplicate { .. })) => {
                let live = self.live_order(account, name.as_str(), request.now)?.ok_or_else(|| {
                    AcmeProblem::server_internal("the order changed meanwhile; try again").with_status(503)
                })?;
                return Ok(self.order_reply(request, &live, 200));
            }
            Err(e) => return Err(unavailable(e)),
        }
        tracing::info!(order = %id, account = %account.id, name = %name, "ACME: order admitted");
        Ok(self.order_reply(request, &order, 201))
    }

    /// An order as an answer with its `Location`.
    fn order_reply(&self, request: &AcmeRequest<'_>, order: &Order, status: u16) -> AcmeReply {
        AcmeReply::json(status, self.order_json(request, order)).at(request.url(&format!("order/{}", order.id)))
    }

    /// Marks an order left `processing` by a finalize that issued nothing
    /// invalid, with `problem` as its error; returns the problem to tell.
    fn fail_order(&self, order: &mut Order, problem: AcmeProblem) -> AcmeProblem {
        order.status = "invalid".into();
        order.error = Some(problem.document());
        match self.registry.acme_update(order, "processing") {
            Ok(_) => problem,
            Err(e) => unavailable(e),
        }
    }

    /// The certificate an order with RFC 9773's `replaces` renews: one this
    /// CA issued to `account` for `name` through this directory, neither
    /// revoked nor expired. `cert_id` is its ARI identifier,
    /// `base64url(AKI keyIdentifier) "." base64url(serial)`.
    fn replaced(
        &self,
        request: &AcmeRequest<'_>,
        account: &Account,
        name: &str,
        cert_id: &str,
    ) -> Result<crate::store::CertificateRecord, AcmeProblem> {
        let serial = ari_serial(cert_id)?;
        let not_renewable = |why: String| AcmeProblem::malformed(format!("replaces: {why}; order it anew"));
        let record = self
            .registry
            .certificate_by_serial(&serial)
            .map_err(unavailable)?
            .ok_or_else(|| not_renewable("no certificate of this CA has that serial".into()))?;
        let order = record
            .transaction
            .strip_prefix("acme:")
            .and_then(|order| self.registry.acme_get::<Order>(order).ok().flatten())
            .filter(|o| o.account == account.id && o.procedure == request.procedure)
            .ok_or_else(|| AcmeProblem::unauthorized("only the account that ordered a certificate renews it"))?;
        if order.identifiers.first().map(|i| i.value.as_str()) != Some(name) {
            return Err(not_renewable(format!("that certificate is not for {name}")));
        }
        if record.revoked_at.is_some() {
            return Err(not_renewable("that certificate is revoked".into()));
        }
        if record.expires_at < request.now {
            return Err(not_renewable("that certificate has expired".into()));
        }
        Ok(record)
    }

    /// The gate of a renewal order: the policy's `decide-renewal` (a dry
    /// run), on the registration the replaced certificate was issued under.
    /// Returns the replaced certificate's serial.
    fn renewal_gate(
        &self,
        request: &AcmeRequest<'_>,
        account: &Account,
        order: &str,
        name: &str,
        cert_id: &str,
    ) -> Result<String, AcmeProblem> {
        let record = self.replaced(request, account, name, cert_id)?;
        let registration = record
            .registration
            .ok_or_else(|| AcmeProblem::rejected_identifier(format!("{name}: its certificate has no registration")))?;
        let transaction = format!("acme:{order}");
        let actor = format!("acme:{}", account.id);
        let renewal = Renewal {
            registration,
            fqdn: name,
            ip: None,
            serial: None,
            procedure: request.procedure,
            transaction: &transaction,
            replaces: &record.serial,
            replaces_expires_at: record.expires_at,
            actor: Some(&actor),
        };
        let (report, _) = self
            .registry
            .check_renewal(&renewal, request.now, crate::host_calls::HostCalls::Live)
            .map_err(unavailable)?;
        if report.allowed {
            return Ok(record.serial);
        }
        let input = order_input(request, account, order, name);
        let detail = format!("ACME renewal refused at new-order: {} ({})", report.reason.code(), report.explanation);
        let refusal =
            FrontRefusal { input: &input, registration: Some(registration), reason: Some(report.reason), detail };
        Err(self.refuse_order(request, &refusal, format!("{name} may not renew through this directory")))
    }

    /// `GET renewal-info/<certID>` (RFC 9773): when to renew. The window is
    /// the last third of the certificate's validity, the sixth before its end
    /// left as margin; a revoked certificate is to be renewed now.
    pub fn renewal_info(&self, request: &AcmeRequest<'_>, cert_id: &str) -> AcmeReply {
        let answer = || -> Result<AcmeReply, AcmeProblem> {
            self.procedure(request.procedure)?;
            let serial = ari_serial(cert_id)?;
            let not_found = || AcmeProblem::malformed("no certificate of this CA has that serial").with_status(404);
            let record = self.registry.certificate_by_serial(&serial).map_err(unavailable)?.ok_or_else(not_found)?;
            let certificate =
                x509::Certificate::from_der(&record.der).map_err(|e| AcmeProblem::server_internal(e.to_string()))?;
            let (start, end) = if record.revoked_at.is_some() {
                (request.now.saturating_sub(3600), request.now)
            } else {
                let life = certificate.not_after.saturating_sub(certificate.not_before);
                (certificate.not_after - life / 3, certificate.not_after - life / 6)
            };
            Ok(AcmeReply::json(200, json!({ "suggestedWindow": { "start": rfc3339(start), "end": rfc3339(end) } })))
        };
        answer().unwrap_or_else(AcmeReply::problem)
    }

    /// The account's live order for `name`, if it has one.
    fn live_order(&self, account: &Account, name: &str, now: u64) -> Result<Option<Order>, AcmeProblem> {
        let key = Order::live_key(&account.id, name);
        match self.registry.acme_get_by_lookup::<Order>(&key).map_err(unavailable)? {
            Some(order) => Ok(Some(self.current_order(order, now)?).filter(Order::is_live)),
            None => Ok(None),
        }
    }

    /// An object of the signing account (anyone else's is `unauthorized`,
    /// told alike whether it exists or not).
    fn owned<T: crate::registry::acme::AcmeRecord>(
        &self,
        id: &str,
        account: &Account,
        owner: impl Fn(&T) -> &str,
    ) -> Result<T, AcmeProblem> {
        self.registry
            .acme_get::<T>(id)
            .map_err(unavailable)?
            .filter(|o| owner(o) == account.id)
            .ok_or_else(|| AcmeProblem::unauthorized("no such object of this account").with_status(404))
    }

    fn order(&self, request: &AcmeRequest<'_>, id: &str) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        let order = self.current_order(self.owned::<Order>(id, account, |o| &o.account)?, request.now)?;
        Ok(AcmeReply::json(200, self.order_json(request, &order)))
    }

    /// An order as it stands: one past its expiry is invalid; one left
    /// `processing` by a process that stopped after issuing is completed
    /// from its certificate record.
    fn current_order(&self, mut order: Order, now: u64) -> Result<Order, AcmeProblem> {
        if matches!(order.status.as_str(), "pending" | "ready") && order.expires < now {
            let from = order.status.clone();
            order.status = "invalid".into();
            order.error = Some(AcmeProblem::malformed("the order expired").document());
            self.registry.acme_update(&order, &from).map_err(unavailable)?;
        }
        if order.status == "processing" {
            let issued =
                self.registry.certificate_by_transaction(&format!("acme:{}", order.id)).map_err(unavailable)?;
            if let Some(certificate) = issued {
                order.status = "valid".into();
                order.certificate = Some(certificate.serial);
                self.registry.acme_update(&order, "processing").map_err(unavailable)?;
            } else if order.finalizing_since.is_some_and(|since| now > since + FINALIZE_SECONDS) {
                // Its finalize stopped before anything was counted (the
                // certificate would be recorded): it may be finalized again.
                order.status = "ready".into();
                order.finalizing_since = None;
                self.registry.acme_update(&order, "processing").map_err(unavailable)?;
            }
        }
        Ok(order)
    }

    fn authorization_json(&self, request: &AcmeRequest<'_>, authorization: &Authorization) -> Value {
        json!({
            "identifier": authorization.identifier,
            "status": authorization.status,
            "expires": rfc3339(authorization.expires),
            "challenges": authorization
                .challenges
                .iter()
                .map(|c| self.challenge_json(request, authorization, c))
                .collect::<Vec<_>>(),
        })
    }

    fn challenge_json(&self, request: &AcmeRequest<'_>, authorization: &Authorization, challenge: &Challenge) -> Value {
        let mut body = json!({
            "type": challenge.kind,
            "url": request.url(&format!("challenge/{}/{}", authorization.id, challenge.kind)),
            "status": challenge.status,
            "token": challenge.token,
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(at) = challenge.validated {
                map.insert("validated".into(), json!(rfc3339(at)));
            }
            if let Some(error) = &challenge.error {
                map.insert("error".into(), error.clone());
            }
        }
        body
    }

    fn authorization(&self, request: &AcmeRequest<'_>, id: &str) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        let mut authorization = self.owned::<Authorization>(id, account, |a| &a.account)?;
        if !verified.parsed.is_post_as_get() {
            let update: Value = verified.parsed.json()?;
            if update.get("status").and_then(Value::as_str) != Some("deactivated") {
                return Err(AcmeProblem::malformed("an authorization can only be deactivated"));
            }
            let from = authorization.status.clone();
            if !matches!(from.as_str(), "pending" | "valid") {
                return Err(AcmeProblem::malformed(format!("a {from} authorization cannot be deactivated")));
            }
            authorization.status = "deactivated".into();
            self.registry.acme_settle_authorization(&authorization, &from).map_err(unavailable)?;
        }
        Ok(AcmeReply::json(200, self.authorization_json(request, &authorization)))
    }

    fn challenge(&self, request: &AcmeRequest<'_>, authz: &str, kind: &str) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        let mut authorization = self.owned::<Authorization>(authz, account, |a| &a.account)?;
        let index = authorization
            .challenges
            .iter()
            .position(|c| c.kind == kind)
            .ok_or_else(|| AcmeProblem::malformed(format!("no {kind} challenge")).with_status(404))?;
        let up = format!("<{}>;rel=\"up\"", request.url(&format!("authz/{authz}")));
        let mut validate = None;
        if !verified.parsed.is_post_as_get() && authorization.challenges[index].status == "pending" {
            if authorization.status != "pending" || authorization.expires < request.now {
                return Err(AcmeProblem::malformed(format!("the authorization is {}", authorization.status)));
            }
            authorization.challenges[index].status = "processing".into();
            // The authorization stays pending; the challenge is validated
            // once this answer is sent.
            if self.registry.acme_update(&authorization, "pending").map_err(unavailable)? {
                validate = Some((authz.to_owned(), kind.to_owned()));
            }
        }
        let mut reply =
            AcmeReply::json(200, self.challenge_json(request, &authorization, &authorization.challenges[index]));
        reply.links.push(up);
        reply.validate = validate;
        Ok(reply)
    }

    /// Validates a challenge a client said is ready (after the answer to
    /// that request is sent), and settles its authorization and order.
    pub fn validate(&self, authz: &str, kind: &str, now: u64) {
        let Ok(Some(mut authorization)) = self.registry.acme_get::<Authorization>(authz) else { return };
        let Some(index) = authorization.challenges.iter().position(|c| c.kind == kind && c.status == "processing")
        else {
            return;
        };
        let account = match self.registry.acme_get::<Account>(&authorization.account) {
            Ok(Some(account)) => account,
            _ => return,
        };
        let token = authorization.challenges[index].token.clone();
        let expected = jws::key_authorization(&token, &account.thumbprint);
        let name = authorization.identifier.value.clone();
        let started = std::time::Instant::now();
        let outcome = match kind {
            "http-01" => self.reach.http01(&name, &token, &expected),
            "dns-01" => self.reach.dns01(&name, &jws::dns_txt(&expected)),
            other => Err(AcmeProblem::malformed(format!("{other} is not validated here"))),
        };
        let challenge = &mut authorization.challenges[index];
        match &outcome {
            Ok(()) => {
                challenge.status = "valid".into();
                challenge.validated = Some(now);
                authorization.status = "valid".into();
            }
            Err(problem) => {
                challenge.status = "invalid".into();
                challenge.error = Some(problem.document());
                authorization.status = "invalid".into();
            }
        }
        match self.registry.acme_settle_authorization(&authorization, "pending") {
            Ok(_) => {
                let micros = started.elapsed().as_micros() as u64;
                let error = outcome.err().map(|p| p.detail);
                tracing::info!(%name, %kind, valid = error.is_none(), ?error, micros, "ACME: challenge validated")
            }
            Err(e) => tracing::error!(error = %e, "ACME: a validation could not be recorded"),
        }
    }

    fn finalize(
        &self,
        request: &AcmeRequest<'_>,
        procedure: &crate::store::ProcedureRecord,
        id: &str,
    ) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?.clone();
        let mut order = self.owned::<Order>(id, &account, |o| &o.account)?;
        if order.status != "ready" {
            return Err(AcmeProblem::order_not_ready(format!("the order is {}, not ready", order.status)));
        }
        if order.expires < request.now {
            return Err(AcmeProblem::order_not_ready("the order expired"));
        }
        #[derive(Deserialize)]
        struct Finalize {
            csr: String,
        }
        let payload: Finalize = verified.parsed.json()?;
        let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.csr.trim_end_matches('='))
            .map_err(|_| AcmeProblem::bad_csr("the csr is not base64url"))?;
        let csr = csr::read(&der).map_err(|e| AcmeProblem::bad_csr(format!("the CSR: {e}")))?;
        let name = &order.identifiers[0].value;
        if let Some(why) = names_beyond_the_device(&csr.facts) {
            return Err(AcmeProblem::bad_csr(why));
        }
        let asked = csr.facts.fqdn.as_deref().map(Fqdn::parse);
        if !matches!(asked, Some(Ok(ref fqdn)) if fqdn.as_str() == name) {
            return Err(AcmeProblem::bad_csr(format!("the CSR must name {name}, the order's identifier")));
        }
        let ready = order.clone();
        order.status = "processing".into();
        order.finalizing_since = Some(request.now);
        if !self.registry.acme_update(&order, "ready").map_err(unavailable)? {
            return Err(AcmeProblem::order_not_ready("the order is being finalized already"));
        }
        let input = EnrollmentInput {
            ip: csr.facts.ip.map(|ip| ip.to_string()),
            serial: csr.facts.serial.clone(),
            ..order_input(request, &account, id, name)
        };
        let transaction = input.transaction.clone().unwrap_or_default();
        let issue_request = IssueRequest {
            ca: self.ca.clone(),
            spki: csr.spki.clone(),
            days: procedure.certificate_days,
            now: request.now,
            transaction: transaction.clone(),
            state: CertificateState::Issued,
            expires_at: None,
            request: json!({ "procedure": request.procedure, "fqdn": name, "account": account.id, "order": id }),
        };
        let outcome = match &order.replaces {
            None => {
                let issue = move |grant: &Grant<'_>| issue_granted(grant, &issue_request);
                self.registry.enroll_issuing(input, request.now, issue)
            }
            Some(serial) => match self.registry.certificate_by_serial(serial) {
                Ok(Some(replaced)) if replaced.revoked_at.is_none() && replaced.registration.is_some() => {
                    let actor = format!("acme:{}", account.id);
                    let renewal = Renewal {
                        registration: replaced.registration.unwrap_or_default(),
                        fqdn: name,
                        ip: input.ip.clone(),
                        serial: input.serial.as_deref(),
                        procedure: request.procedure,
                        transaction: input.transaction.as_deref().unwrap_or_default(),
                        replaces: serial,
                        replaces_expires_at: replaced.expires_at,
                        actor: Some(&actor),
                    };
                    let mut issue = |grant: &Grant<'_>| issue_granted(grant, &issue_request);
                    self.registry.renew_issuing(&renewal, request.now, &mut issue)
                }
                Ok(_) => {
                    let problem =
                        AcmeProblem::rejected_identifier(format!("{name}: the certificate it renews was revoked"))
                            .with_status(403);
                    return Err(self.fail_order(&mut order, problem));
                }
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok((report, Some(certificate))) if report.allowed => {
                order.status = "valid".into();
                order.certificate = Some(certificate.serial.clone());
                self.registry.acme_update(&order, "processing").map_err(unavailable)?;
                let what = if order.replaces.is_some() { "renewed (not counted)" } else { "issued and counted" };
                tracing::info!(order = %id, account = %account.id, %name, serial = %certificate.serial, audit = ?report.audit_seq, "ACME: certificate {what}");
                Ok(self.order_reply(request, &order, 200))
            }
            Ok((report, _)) => {
                tracing::info!(order = %id, reason = %report.reason, audit = ?report.audit_seq, "ACME: finalize denied");
                let problem =
                    AcmeProblem::rejected_identifier(format!("{name} may no longer enroll through this directory"))
                        .with_status(403);
                Err(self.fail_order(&mut order, problem))
            }
            Err(e) => {
                // Nothing was counted: the order may be finalized again.
                let _ = self.registry.acme_update(&ready, "processing");
                if e.is_input_error() { Err(AcmeProblem::bad_csr(e.to_string())) } else { Err(unavailable(e)) }
            }
        }
    }

    /// The certificate of an order of the signing account, its chain
    /// following (PEM).
    fn certificate(&self, request: &AcmeRequest<'_>, serial: &str) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        let not_found = || AcmeProblem::unauthorized("no such certificate of this account").with_status(404);
        let record = self.registry.certificate_by_serial(serial).map_err(unavailable)?.ok_or_else(not_found)?;
        let order = record.transaction.strip_prefix("acme:").ok_or_else(not_found)?;
        self.owned::<Order>(order, account, |o| &o.account).map_err(|_| not_found())?;
        let chain = format!(
            "{}{}",
            x509::pem("CERTIFICATE", &record.der),
            x509::pem("CERTIFICATE", &self.ca.certificate().der)
        );
        Ok(AcmeReply { status: 200, body: ReplyBody::Pem(chain), location: None, links: Vec::new(), validate: None })
    }

    fn revoke(&self, request: &AcmeRequest<'_>) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, true)?;
        #[derive(Deserialize)]
        struct Revoke {
            certificate: String,
            #[serde(default)]
            reason: Option<u8>,
        }
        let payload: Revoke = verified.parsed.json()?;
        let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.certificate.trim_end_matches('='))
            .map_err(|_| AcmeProblem::malformed("the certificate is not base64url"))?;
        let certificate =
            x509::Certificate::from_der(&der).map_err(|e| AcmeProblem::malformed(format!("the certificate: {e}")))?;
        let not_ours = || AcmeProblem::unauthorized("this CA did not issue that certificate through this directory");
        let ca_key = self.ca.certificate().public_key().map_err(|_| not_ours())?;
        certificate.verify_signed_by(&ca_key).map_err(|_| not_ours())?;
        let record = self
            .registry
            .certificate_by_serial(&certificate.serial_hex())
            .map_err(unavailable)?
            .ok_or_else(not_ours)?;
        if record.der != der {
            return Err(not_ours());
        }
        let order_id = record.transaction.strip_prefix("acme:").ok_or_else(not_ours)?;
        let order = self.registry.acme_get::<Order>(order_id).map_err(unavailable)?.ok_or_else(not_ours)?;
        if order.procedure != request.procedure {
            return Err(not_ours());
        }
        let actor = match &verified.account {
            Some(account) => format!("acme:{}", account.id),
            None => "device".to_owned(),
        };
        let by = match &verified.account {
            Some(account) if account.id == order.account => format!("at the request of ACME account {}", account.id),
            Some(_) => return Err(AcmeProblem::unauthorized("only the account that ordered a certificate revokes it")),
            None if verified.key.is_key_of(&certificate.spki) => "signed with the certificate's own key".to_owned(),
            None => return Err(AcmeProblem::unauthorized("the request is not signed with the certificate's key")),
        };
        let reason = match payload.reason {
            None => CrlReason::Unspecified,
            Some(code) => CrlReason::from_code(code)
                .ok_or_else(|| AcmeProblem::bad_revocation_reason(format!("reason {code} is not taken")))?,
        };
        if record.revoked_at.is_some() {
            return Err(AcmeProblem::already_revoked("the certificate is revoked already"));
        }
        match self.registry.revoke_as(&actor, &record.serial, reason, &by, request.now) {
            Ok(true) => Ok(AcmeReply::json(200, json!({}))),
            Ok(false) => Err(AcmeProblem::already_revoked("the certificate is revoked already")),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn key_change(&self, request: &AcmeRequest<'_>) -> Result<AcmeReply, AcmeProblem> {
        let verified = self.verify(request, false)?;
        let account = Self::signed_account(&verified)?;
        let outer: Value = verified.parsed.json()?;
        let inner = Parsed::from_value(&outer)?;
        if inner.header.url != verified.parsed.header.url {
            return Err(AcmeProblem::malformed("the inner JWS is for another URL"));
        }
        if inner.header.nonce.is_some() || inner.header.kid.is_some() {
            return Err(AcmeProblem::malformed("the inner JWS carries only jwk, alg and url"));
        }
        let new_key = AccountKey::from_jwk(
            inner.header.jwk.as_ref().ok_or_else(|| AcmeProblem::malformed("the inner JWS has no jwk"))?,
        )?;
        inner.verify(&new_key)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyChange {
            account: String,
            old_key: Value,
        }
        let change: KeyChange = inner.json()?;
        let location = request.url(&format!("account/{}", account.id));
        if change.account != location {
            return Err(AcmeProblem::unauthorized("the key change is for another account"));
        }
        if AccountKey::from_jwk(&change.old_key)?.thumbprint != verified.key.thumbprint {
            return Err(AcmeProblem::unauthorized("oldKey is not the account's key"));
        }
        if let Some(other) = self.registry.acme_account_by_thumbprint(&new_key.thumbprint).map_err(unavailable)? {
            let mut reply =
                AcmeReply::problem(AcmeProblem::malformed("another account has the new key").with_status(409));
            reply.location = Some(request.url(&format!("account/{}", other.id)));
            return Ok(reply);
        }
        let mut changed = account.clone();
        changed.jwk = new_key.jwk.clone();
        changed.thumbprint = new_key.thumbprint.clone();
        let detail = format!("key {} replaced by {}", verified.key.thumbprint, new_key.thumbprint);
        match self.registry.acme_change_account(&changed, "valid", "acme.account.key-change", &detail, request.now) {
            Ok(true) => Ok(AcmeReply::json(200, self.account_json(request, &changed)).at(location)),
            Ok(false) => Err(AcmeProblem::unauthorized("the account changed meanwhile; try again")),
            Err(RegistryError::Store(StoreError::Duplicate { .. })) => {
                Err(AcmeProblem::malformed("another account has the new key").with_status(409))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_for_a_command_line_never_begin_like_an_option() {
        for _ in 0..2000 {
            let token = random_token(12);
            assert!(token.starts_with(|c: char| c.is_ascii_alphanumeric()), "{}", token.as_str());
            assert_eq!(token.len(), 16);
        }
    }

    #[test]
    fn times_are_rfc_3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_155_306), "2026-12-01T20:01:46Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
