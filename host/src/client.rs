//! A blocking client of the REST API (`prereg serve`), for `prereg --server
//! URL ...` and for hosts that embed prereg remotely. Writes are signed by the
//! caller with its own key ([`crate::signing::sign`]) and sent as flattened
//! JSON JWS: private keys never leave the caller.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::api::{
    AuditPage, AuditVerificationView, Created, DecisionRequest, FlattenedJws, ImportView, InstanceInfo, Problem,
    RegistrationPage, ReportPage,
};
use crate::policy::PolicyInfo;
use crate::registry::{DecisionMode, DecisionReport, EnrollmentInput, WriteOutcome};
use crate::signing::SigningKey;
use crate::signing::WriteRequest;
use crate::store::{CallerRecord, OfficerRecord, ProcedureRecord, RegistrationFilter, RegistrationRecord};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a problem document.
    #[error("{} ({}): {}", .0.title, .0.kind, .0.detail)]
    Problem(Problem),
    /// The server could not be reached, or the exchange failed.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A local file.
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether the caller's input is at fault (a 4xx problem).
    pub fn is_input_error(&self) -> bool {
        match self {
            ClientError::Problem(p) => (400..500).contains(&p.status),
            ClientError::File { .. } => true,
            _ => false,
        }
    }
}

/// A client of one prereg service.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    credential: Credential,
}

/// What a client presents as `Authorization: Bearer`.
#[derive(Clone)]
enum Credential {
    /// Nothing: writes (each signed) and the open routes only.
    None,
    /// An officer's key: an access token made with it, renewed before it ends.
    Officer { key: Arc<SigningKey>, token: Arc<Mutex<Option<(String, u64)>>> },
    /// A CA caller's secret.
    Caller(Arc<Zeroizing<String>>),
}

impl Client {
    /// A client of the service at `base` (`http://127.0.0.1:8080`); an
    /// `https` service is trusted by the Mozilla roots.
    pub fn new(base: &str) -> Self {
        Self::build(base, ureq::tls::RootCerts::WebPki)
    }

    /// A client of the `https` service at `base` whose certificate chains to
    /// one of the PEM certificates in `roots` (the instance CA's
    /// `ca/ca.crt`, for a service started with `--tls-self`).
    pub fn with_roots(base: &str, roots: &[u8]) -> Result<Self, ClientError> {
        let certs = ureq::tls::parse_pem(roots)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Decode { url: base.to_owned(), message: format!("the trusted roots: {e}") })?;
        if certs.is_empty() {
            return Err(ClientError::Decode {
                url: base.to_owned(),
                message: "no PEM certificate among the trusted roots".into(),
            });
        }
        Ok(Self::build(base, ureq::tls::RootCerts::Specific(Arc::new(certs))))
    }

    fn build(base: &str, roots: ureq::tls::RootCerts) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build();
        Client { base: base.trim_end_matches('/').to_owned(), agent: config.into(), credential: Credential::None }
    }

    /// The same client, reading as the officer whose key is `key`: every
    /// call carries an access token signed by it
    /// ([`crate::signing::access`]), made again before it ends.
    pub fn with_officer(mut self, key: Arc<SigningKey>) -> Self {
        self.credential = Credential::Officer { key, token: Arc::new(Mutex::new(None)) };
        self
    }

    /// The same client, calling as the CA caller whose secret is `secret`
    /// (enrollment decisions).
    pub fn with_caller_secret(mut self, secret: &str) -> Self {
        self.credential = Credential::Caller(Arc::new(Zeroizing::new(secret.trim().to_owned())));
        self
    }

    /// The `Authorization` value of the next call, if the client has a credential.
    fn authorization(&self) -> Result<Option<String>, ClientError> {
        match &self.credential {
            Credential::None => Ok(None),
            Credential::Caller(secret) => Ok(Some(format!("Bearer {}", secret.as_str()))),
            Credential::Officer { key, token } => {
                let now = crate::registry::unix_now();
                let mut slot = token.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((value, exp)) = slot.as_ref()
                    && *exp > now + 60
                {
                    return Ok(Some(format!("Bearer {value}")));
                }
                let instance = self.instance()?.instance_id;
                let lifetime = crate::signing::access::ACCESS_LIFETIME_SECS;
                let value = crate::signing::access::sign_access(key, &instance, now, lifetime)
                    .map_err(|e| ClientError::Decode { url: self.base.clone(), message: e.to_string() })?;
                *slot = Some((value.clone(), now + lifetime));
                Ok(Some(format!("Bearer {value}")))
            }
        }
    }

    /// The service's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer<T: DeserializeOwned>(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response =
            result.map_err(|e| ClientError::Transport { url: url.to_owned(), message: e.to_string() })?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| ClientError::Transport { url: url.to_owned(), message: e.to_string() })?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ClientError::Decode { url: url.to_owned(), message: e.to_string() });
        }
        match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => Err(ClientError::Problem(problem)),
            Err(_) => Err(ClientError::Decode {
                url: url.to_owned(),
                message: format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
                ),
            }),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        for (k, v) in query {
            request = request.query(k, v);
        }
        if let Some(value) = self.authorization()? {
            request = request.header("authorization", value);
        }
        self.answer(&url, request.call())
    }

    /// Sends a signed write: its signature is its credential, so no token
    /// or secret goes with it.
    fn send<T: DeserializeOwned>(&self, method: &str, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        self.send_as(method, path, body, false)
    }

    /// Sends `body` as JSON, with the client's credential when `credential`.
    fn send_as<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &impl Serialize,
        credential: bool,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let json =
            serde_json::to_vec(body).map_err(|e| ClientError::Decode { url: url.clone(), message: e.to_string() })?;
        let mut request = match method {
            "DELETE" => self.agent.delete(&url).force_send_body(),
            _ => self.agent.post(&url),
        }
        .header("content-type", "application/json");
        if credential && let Some(value) = self.authorization()? {
            request = request.header("authorization", value);
        }
        let result = request.send(&json[..]);
        self.answer(&url, result)
    }

    /// The instance (its id is the audience of signed requests): open to
    /// anyone, so it is asked without a credential.
    pub fn instance(&self) -> Result<InstanceInfo, ClientError> {
        let url = self.url("/v1/instance");
        self.answer(&url, self.agent.get(&url).call())
    }

    /// Sends a signed write (compact JWS) to the route of its action.
    pub fn submit(&self, jws: &str, request: &WriteRequest) -> Result<WriteOutcome, ClientError> {
        let body = FlattenedJws::from_compact(jws)
            .ok_or_else(|| ClientError::Decode { url: self.base.clone(), message: "not a compact JWS".into() })?;
        match request {
            WriteRequest::CreateProcedure { .. } => self.send("POST", "/v1/procedures", &body),
            WriteRequest::AddOfficer { .. } => self.send("POST", "/v1/officers", &body),
            WriteRequest::DisableOfficer { name } => {
                self.send("POST", &format!("/v1/officers/{}/disable", path_segment(name)), &body)
            }
            WriteRequest::AddCaller { .. } => self.send("POST", "/v1/callers", &body),
            WriteRequest::AddEabKey { .. } => self.send("POST", "/v1/acme/eab-keys", &body),
            WriteRequest::DisableCaller { name } => {
                self.send("POST", &format!("/v1/callers/{}/disable", path_segment(name)), &body)
            }
            WriteRequest::CreateRegistration { .. } => {
                let created: Created = self.send("POST", "/v1/registrations", &body)?;
                Ok(created.outcome)
            }
            WriteRequest::DisableRegistration { id } => {
                self.send("POST", &format!("/v1/registrations/{id}/disable"), &body)
            }
            WriteRequest::ReopenRegistration { id } => {
                self.send("POST", &format!("/v1/registrations/{id}/reopen"), &body)
            }
            WriteRequest::DeleteRegistration { id } => self.send("DELETE", &format!("/v1/registrations/{id}"), &body),
            WriteRequest::ActivatePolicy { .. } => Ok(self.activate_policy(&body)?.outcome),
            WriteRequest::ShadowPolicy { .. } => Ok(self.shadow_policy(&body)?.outcome),
            WriteRequest::RevokeCertificate { .. } => Err(ClientError::Decode {
                url: self.base.clone(),
                message: "certificates are revoked where the CA is: `prereg ca revoke` on a node's data folder".into(),
            }),
            WriteRequest::ImportCsv { .. } | WriteRequest::LoadPolicy { .. } => Err(ClientError::Decode {
                url: self.base.clone(),
                message: "imports and policies are sent with their file: use Client::import or Client::load_policy"
                    .into(),
            }),
        }
    }

    /// Every token procedure.
    pub fn procedures(&self) -> Result<Vec<ProcedureRecord>, ClientError> {
        self.get("/v1/procedures", &[])
    }

    /// Every officer.
    pub fn officers(&self) -> Result<Vec<OfficerRecord>, ClientError> {
        self.get("/v1/officers", &[])
    }

    /// The CA callers the reading officer may see.
    pub fn callers(&self) -> Result<Vec<CallerRecord>, ClientError> {
        self.get("/v1/callers", &[])
    }

    /// The ACME binding keys of the officer's domains.
    pub fn eab_keys(&self) -> Result<Vec<crate::registry::acme::EabKeyView>, ClientError> {
        self.get("/v1/acme/eab-keys", &[])
    }

    /// One page of registrations.
    pub fn registrations_page(&self, filter: &RegistrationFilter) -> Result<RegistrationPage, ClientError> {
        let mut query = Vec::new();
        if let Some(d) = &filter.domain {
            query.push(("domain", d.clone()));
        }
        if let Some(p) = &filter.procedure {
            query.push(("procedure", p.clone()));
        }
        if let Some(s) = filter.state {
            query.push(("state", s.as_str().to_owned()));
        }
        if let Some(q) = &filter.search {
            query.push(("q", q.clone()));
        }
        if let Some(a) = filter.after_id {
            query.push(("after", a.to_string()));
        }
        query.push(("limit", filter.limit.unwrap_or(1000).min(1000).to_string()));
        self.get("/v1/registrations", &query)
    }

    /// Every registration matching `filter` (following pages).
    pub fn registrations(&self, filter: &RegistrationFilter) -> Result<Vec<RegistrationRecord>, ClientError> {
        let mut all = Vec::new();
        let mut page_filter = filter.clone();
        loop {
            let page = self.registrations_page(&page_filter)?;
            all.extend(page.items);
            if filter.limit.is_some_and(|l| all.len() >= l as usize) {
                all.truncate(filter.limit.unwrap_or(0) as usize);
                return Ok(all);
            }
            match page.next_after {
                Some(after) => page_filter.after_id = Some(after),
                None => return Ok(all),
            }
        }
    }

    /// One registration.
    pub fn registration(&self, id: u64) -> Result<RegistrationRecord, ClientError> {
        self.get(&format!("/v1/registrations/{id}"), &[])
    }

    /// An enrollment decision.
    pub fn decide(&self, input: &EnrollmentInput, mode: DecisionMode) -> Result<DecisionReport, ClientError> {
        let body = DecisionRequest {
            procedure: input.procedure.clone(),
            fqdn: input.fqdn.clone(),
            ip: input.ip.clone(),
            serial: input.serial.clone(),
            password: input.password.as_ref().map(|p| p.to_string()),
        };
        let path = match mode {
            DecisionMode::DryRun => "/v1/decisions/check",
            DecisionMode::Enroll => "/v1/decisions/enroll",
        };
        self.send_as("POST", path, &body, true)
    }

    /// A page of the audit log.
    pub fn audit(&self, after: u64, limit: u32) -> Result<AuditPage, ClientError> {
        self.get("/v1/audit", &[("after", after.to_string()), ("limit", limit.clamp(1, 1000).to_string())])
    }

    /// Checks the audit chain.
    pub fn verify_audit(&self) -> Result<AuditVerificationView, ClientError> {
        self.get("/v1/audit/verify", &[])
    }

    /// The active policy.
    pub fn policy(&self) -> Result<PolicyInfo, ClientError> {
        self.get("/v1/policy", &[])
    }

    /// Starts an import: the signed `import.csv` request, then the file,
    /// streamed (multipart/form-data).
    pub fn import(&self, jws: &str, path: &Path, file_name: &str) -> Result<ImportView, ClientError> {
        self.upload_named("/v1/imports", jws, path, file_name, "text/csv")
    }

    fn upload<T: DeserializeOwned>(&self, route: &str, jws: &str, path: &Path, media: &str) -> Result<T, ClientError> {
        let name = path.file_name().map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned());
        self.upload_named(route, jws, path, &name, media)
    }

    /// A multipart upload: the signed request (`request`), then the file (`file`).
    fn upload_named<T: DeserializeOwned>(
        &self,
        route: &str,
        jws: &str,
        path: &Path,
        file_name: &str,
        media: &str,
    ) -> Result<T, ClientError> {
        let url = self.url(route);
        let request = FlattenedJws::from_compact(jws)
            .ok_or_else(|| ClientError::Decode { url: url.clone(), message: "not a compact JWS".into() })?;
        let request = serde_json::to_string(&request)
            .map_err(|e| ClientError::Decode { url: url.clone(), message: e.to_string() })?;
        let file = std::fs::File::open(path)
            .map_err(|source| ClientError::File { path: path.display().to_string(), source })?;
        let mut nonce = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let boundary = format!("prereg-{}", crate::audit::hex(&nonce));
        let safe_name: String = file_name.chars().filter(|c| !c.is_control() && *c != '"').collect();
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{request}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\nContent-Type: {media}\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let mut body =
            std::io::Cursor::new(head.into_bytes()).chain(file).chain(std::io::Cursor::new(tail.into_bytes()));
        // The signed request in the form is the upload's credential.
        let result = self
            .agent
            .post(&url)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .send(ureq::SendBody::from_reader(&mut body));
        self.answer(&url, result)
    }

    /// Loads a policy component (the signed `policy.load` request, then the
    /// file).
    pub fn load_policy(&self, jws: &str, path: &Path) -> Result<crate::registry::PolicyChange, ClientError> {
        self.upload("/v1/policies", jws, path, "application/wasm")
    }

    /// Activates a loaded policy version (a signed `policy.activate`).
    pub fn activate_policy(&self, body: &FlattenedJws) -> Result<crate::registry::PolicyChange, ClientError> {
        self.send("POST", "/v1/policies/activate", body)
    }

    /// Starts or stops shadow mode (a signed `policy.shadow`).
    pub fn shadow_policy(&self, body: &FlattenedJws) -> Result<crate::registry::ShadowChange, ClientError> {
        self.send("POST", "/v1/policies/shadow", body)
    }

    /// The shadow policy and the decisions where it disagreed, after `after`.
    pub fn shadow_report(&self, after: u64, limit: u32) -> Result<crate::registry::ShadowReport, ClientError> {
        self.get("/v1/policies/shadow", &[("after", after.to_string()), ("limit", limit.to_string())])
    }

    /// Every loaded policy version.
    pub fn policy_versions(&self) -> Result<Vec<crate::store::PolicyVersionRecord>, ClientError> {
        self.get("/v1/policies", &[])
    }

    /// An import's status.
    pub fn import_status(&self, id: u64) -> Result<ImportView, ClientError> {
        self.get(&format!("/v1/imports/{id}"), &[])
    }

    /// A page of an import's bad rows.
    pub fn import_report(&self, id: u64, after: u64) -> Result<ReportPage, ClientError> {
        self.get(&format!("/v1/imports/{id}/report"), &[("after", after.to_string()), ("limit", "1000".into())])
    }
}

/// `text` as one URL path segment (percent-encoded).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
