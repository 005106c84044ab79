//! `prereg serve`, through the real binary on loopback: the REST API against
//! its own OpenAPI document, signed writes, problem documents, the CLI in
//! `--server` mode, metrics, and shutdown.

use std::collections::BTreeSet;

use prereg::service::signed::FlattenedJws;
use prereg::signing::{Algorithm, SigningKey, WriteRequest};
use serde_json::{Value, json};

use crate::common::{Server, create_registration, prereg_command, serving_url, sign_for};

/// Raw HTTP calls, each checked against the OpenAPI document: the status is
/// documented for the operation, the content type is the documented one, and
/// the body validates against the documented schema.
pub struct Checked {
    agent: ureq::Agent,
    base: String,
    /// The served OpenAPI document.
    pub doc: Value,
    seen: BTreeSet<(String, String)>,
    /// The `Authorization` value calls carry, if any.
    pub authorization: Option<String>,
}

impl Checked {
    pub fn new(base: &str) -> Self {
        // A fresh connection per call: a pooled one that the server closes
        // as idle just as it is reused fails the call (seen under load).
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        let doc: Value = agent.get(format!("{base}/v1/openapi.json")).call().unwrap().body_mut().read_json().unwrap();
        Checked { agent, base: base.into(), doc, seen: BTreeSet::new(), authorization: None }
    }

    pub fn call(&mut self, method: &str, template: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let authorization = self.authorization.clone().unwrap_or_default();
        let result = match (method, body) {
            ("GET", _) if authorization.is_empty() => self.agent.get(&url).call(),
            ("GET", _) => self.agent.get(&url).header("authorization", authorization).call(),
            ("DELETE", Some((ct, bytes))) => {
                self.agent.delete(&url).force_send_body().header("content-type", ct).send(&bytes[..])
            }
            ("POST", Some((ct, bytes))) if authorization.is_empty() => {
                self.agent.post(&url).header("content-type", ct).send(&bytes[..])
            }
            ("POST", Some((ct, bytes))) => {
                self.agent.post(&url).header("content-type", ct).header("authorization", authorization).send(&bytes[..])
            }
            other => panic!("{other:?}"),
        };
        let mut response = result.unwrap();
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = response.body_mut().read_to_string().unwrap();
        let operation = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not in the OpenAPI document");
        let documented = &operation["responses"][status.to_string()];
        assert!(documented.is_object(), "{method} {template} answered {status}, which is not documented: {text}");
        self.seen.insert((template.to_owned(), method.to_ascii_lowercase()));
        let content = documented["content"].as_object().cloned().unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or("").trim().to_owned();
        let Some((_, spec)) = content.iter().find(|(k, _)| k.split(';').next().unwrap().trim() == media) else {
            panic!("{method} {template} {status}: content type {content_type:?} is not one of {:?}", content.keys());
        };
        if !media.ends_with("json") {
            return (status, Value::String(text));
        }
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut schema = spec["schema"].clone();
        schema["components"] = self.doc["components"].clone();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the body does not match the schema: {errors:?}\n{text}"
        );
        (status, value)
    }

    pub fn get(&mut self, template: &str, path: &str) -> (u16, Value) {
        self.call("GET", template, path, None)
    }

    fn post_json(&mut self, template: &str, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", template, path, Some(("application/json", serde_json::to_vec(body).unwrap())))
    }

    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut all = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                all.insert((path.clone(), method.clone()));
            }
        }
        all
    }
}

fn flattened(jws: &str) -> Value {
    serde_json::to_value(FlattenedJws::from_compact(jws).unwrap()).unwrap()
}

fn multipart(request: &str, name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "test-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{request}\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn problem_type(value: &Value) -> &str {
    value["type"].as_str().unwrap_or("")
}

#[test]
fn every_route_is_documented_and_every_response_matches_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let key = server.admin_key();
    let client = server.client();
    let mut api = Checked::new(&server.url);
    assert_eq!(api.doc["openapi"], "3.1.0");
    let sign = |request: WriteRequest| flattened(&sign_for(&client, &key, request));

    // Without a credential, every read that names one in the document is
    // refused, as documented; health and the instance are open.
    for path in [
        "/metrics",
        "/v1/policy",
        "/v1/procedures",
        "/v1/officers",
        "/v1/callers",
        "/v1/registrations",
        "/v1/imports",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/audit/checkpoint",
        "/v1/policies",
        "/v1/policies/shadow",
    ] {
        assert!(api.doc["paths"][path]["get"]["security"].is_array(), "{path} names no credential");
        let (status, problem) = api.get(path, path);
        assert_eq!((status, problem_type(&problem)), (401, "urn:prereg:problem:unauthenticated"), "{path}");
    }
    for path in ["/healthz", "/readyz", "/v1/instance"] {
        assert_eq!(api.get(path, path).0, 200, "{path}");
    }
    let (_, instance) = api.get("/v1/instance", "/v1/instance");
    assert!(instance.get("storage").is_none(), "the storage is named to officers only: {instance}");
    let as_officer = server.officer_authorization();
    api.authorization = Some(as_officer.clone());
    for path in ["/metrics", "/v1/instance", "/v1/policy", "/v1/procedures", "/v1/officers"] {
        assert_eq!(api.get(path, path).0, 200, "{path}");
    }
    let (status, note) = api.get("/v1/audit/checkpoint", "/v1/audit/checkpoint");
    assert_eq!(status, 200);
    assert!(note.as_str().unwrap().contains("\n\n\u{2014} prereg/audit/"), "{note}");
    // Procedures.
    let procedure = WriteRequest::CreateProcedure {
        certificate_days: None,
        name: "routers".into(),
        domain: "corp".into(),
        protocol: "scep".into(),
        allowed_domains: vec![],
        require_preregistration: None,
    };
    let signed = sign(procedure.clone());
    assert_eq!(api.post_json("/v1/procedures", "/v1/procedures", &signed).0, 201);
    // A CA caller for it; its secret is made here and only its hash travels.
    let secret = prereg::service::auth::new_caller_secret();
    let caller = WriteRequest::AddCaller {
        name: "front".into(),
        procedures: vec!["routers".into()],
        secret_sha256: Some(prereg::service::auth::caller_secret_sha256(&secret)),
        certificate_sha256: None,
        webhook_secret_sealed: None,
    };
    assert_eq!(api.post_json("/v1/callers", "/v1/callers", &sign(caller)).0, 201);
    let (_, callers) = api.get("/v1/callers", "/v1/callers");
    assert_eq!(callers[0]["name"], "front");
    assert!(!callers.to_string().contains(&secret));
    // An ACME procedure and an external account binding key for it, its
    // HMAC key sealed to the instance's key by the signer.
    let acme = WriteRequest::CreateProcedure {
        certificate_days: None,
        name: "servers".into(),
        domain: "corp".into(),
        protocol: "acme".into(),
        allowed_domains: vec![],
        require_preregistration: Some(true),
    };
    assert_eq!(api.post_json("/v1/procedures", "/v1/procedures", &sign(acme)).0, 201);
    let sealing = instance["sealing_key"].as_str().unwrap();
    let hmac_key = "nbuuQe4YK84iPUH2EcnozjYklOmmwhVPoCxRwLZS-sY";
    let eab = WriteRequest::AddEabKey {
        key_id: "k1".into(),
        procedure: "servers".into(),
        domains: vec!["example.com".into()],
        hmac_key_sealed: prereg::sealing::seal(sealing, hmac_key).unwrap(),
    };
    let (status, made) = api.post_json("/v1/acme/eab-keys", "/v1/acme/eab-keys", &sign(eab.clone()));
    assert_eq!((status, made["object"].as_str()), (201, Some("acme-eab:k1")), "{made}");
    let (status, problem) = api.post_json("/v1/acme/eab-keys", "/v1/acme/eab-keys", &sign(eab));
    assert_eq!((status, problem_type(&problem)), (409, "urn:prereg:problem:duplicate"), "{problem}");
    let (_, keys) = api.get("/v1/acme/eab-keys", "/v1/acme/eab-keys");
    assert_eq!((keys[0]["key_id"].as_str(), keys[0]["account"].as_str()), (Some("k1"), None), "{keys}");
    assert!(!keys.to_string().contains("sealed") && !keys.to_string().contains(hmac_key), "{keys}");
    let as_caller = format!("Bearer {secret}");
    let (status, problem) = api.post_json("/v1/procedures", "/v1/procedures", &signed);
    assert_eq!((status, problem_type(&problem)), (409, "urn:prereg:problem:replayed-request"));
    let (status, problem) = api.post_json("/v1/procedures", "/v1/procedures", &sign(procedure));
    assert_eq!((status, problem_type(&problem)), (409, "urn:prereg:problem:duplicate"));
    let (status, problem) = api.post_json("/v1/procedures", "/v1/procedures", &json!({"hello": "world"}));
    assert_eq!((status, problem_type(&problem)), (400, "urn:prereg:problem:malformed-request"));
    // Signed by a key nobody registered.
    let stranger = SigningKey::generate(Algorithm::EdDsa);
    let forged = flattened(&sign_for(&client, &stranger, create_registration("routers", "x.example.com")));
    let (status, problem) = api.post_json("/v1/registrations", "/v1/registrations", &forged);
    assert_eq!((status, problem_type(&problem)), (401, "urn:prereg:problem:signature-refused"));
    // A registration signed, then sent to the procedures route.
    let (status, problem) =
        api.post_json("/v1/procedures", "/v1/procedures", &sign(create_registration("routers", "x.example.com")));
    assert_eq!((status, problem_type(&problem)), (400, "urn:prereg:problem:request-mismatch"));
    // Officers.
    let es256 = SigningKey::generate(Algorithm::Es256);
    let officer = WriteRequest::AddOfficer {
        name: "bob".into(),
        public_key_pem: es256.public_key().to_pem().unwrap(),
        domains: vec!["lab".into()],
    };
    assert_eq!(api.post_json("/v1/officers", "/v1/officers", &sign(officer)).0, 201);
    let bob = flattened(&sign_for(&client, &es256, create_registration("routers", "y.example.com")));
    let (status, problem) = api.post_json("/v1/registrations", "/v1/registrations", &bob);
    assert_eq!((status, problem_type(&problem)), (403, "urn:prereg:problem:forbidden"));
    // Bob's key is disabled: his next request is refused as a bad signature.
    let disable = sign(WriteRequest::DisableOfficer { name: "bob".into() });
    let (status, _) = api.post_json("/v1/officers/{name}/disable", "/v1/officers/bob/disable", &disable);
    assert_eq!(status, 200);
    let (status, problem) = api.post_json("/v1/officers/{name}/disable", "/v1/officers/carol/disable", &disable);
    assert_eq!((status, problem_type(&problem)), (400, "urn:prereg:problem:request-mismatch"));
    let bob = flattened(&sign_for(&client, &es256, create_registration("routers", "z.example.com")));
    let (status, problem) = api.post_json("/v1/registrations", "/v1/registrations", &bob);
    assert_eq!((status, problem_type(&problem)), (401, "urn:prereg:problem:signature-refused"), "{problem}");
    // Registrations.
    let (status, created) = api.post_json(
        "/v1/registrations",
        "/v1/registrations",
        &sign(create_registration("routers", "R1.Example.com")),
    );
    assert_eq!(status, 201);
    assert_eq!(created["registration"]["pattern"], "r1.example.com");
    let id = created["registration"]["id"].as_u64().unwrap();
    let (status, problem) = api.post_json(
        "/v1/registrations",
        "/v1/registrations",
        &sign(create_registration("routers", "r1.example.com")),
    );
    assert_eq!((status, problem_type(&problem)), (409, "urn:prereg:problem:duplicate"));
    let (status, problem) =
        api.post_json("/v1/registrations", "/v1/registrations", &sign(create_registration("routers", "a..b")));
    assert_eq!(
        (status, problem_type(&problem), problem["field"].as_str()),
        (422, "urn:prereg:problem:invalid-field", Some("fqdn"))
    );
    for i in 0..3 {
        let fqdn = format!("dev{i}.example.com");
        assert_eq!(
            api.post_json("/v1/registrations", "/v1/registrations", &sign(create_registration("routers", &fqdn))).0,
            201
        );
    }
    let (_, page) = api.get("/v1/registrations", "/v1/registrations?limit=2");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_u64().unwrap();
    let (_, page) = api.get("/v1/registrations", &format!("/v1/registrations?limit=2&after={next}"));
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_after"].is_null());
    let (_, found) = api.get("/v1/registrations", "/v1/registrations?q=dev1&state=open&domain=corp&procedure=routers");
    assert_eq!(found["items"][0]["pattern"], "dev1.example.com");
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (status, problem) = api.get("/v1/registrations", "/v1/registrations?state=sleeping");
    assert_eq!((status, problem["field"].as_str()), (422, Some("state")));
    assert_eq!(api.get("/v1/registrations/{id}", &format!("/v1/registrations/{id}")).0, 200);
    let (status, problem) = api.get("/v1/registrations/{id}", "/v1/registrations/999");
    assert_eq!((status, problem_type(&problem)), (404, "urn:prereg:problem:not-found"));
    // Disable with a request signed for another id.
    let other = sign(WriteRequest::DisableRegistration { id: id + 1 });
    let (status, problem) =
        api.post_json("/v1/registrations/{id}/disable", &format!("/v1/registrations/{id}/disable"), &other);
    assert_eq!((status, problem_type(&problem)), (400, "urn:prereg:problem:request-mismatch"));
    let disable = sign(WriteRequest::DisableRegistration { id });
    assert_eq!(
        api.post_json("/v1/registrations/{id}/disable", &format!("/v1/registrations/{id}/disable"), &disable).0,
        200
    );
    // Decisions.
    let (_, denied) = api.post_json(
        "/v1/decisions/check",
        "/v1/decisions/check",
        &json!({"procedure": "routers", "fqdn": "r1.example.com"}),
    );
    assert_eq!((denied["allowed"].as_bool(), denied["reason"].as_str()), (Some(false), Some("no-registration")));
    let reopen = sign(WriteRequest::ReopenRegistration { id });
    assert_eq!(
        api.post_json("/v1/registrations/{id}/reopen", &format!("/v1/registrations/{id}/reopen"), &reopen).0,
        200
    );
    // An officer does not enroll devices: a CA caller asks.
    let r1 = json!({"procedure": "routers", "fqdn": "r1.example.com"});
    let (status, problem) = api.post_json("/v1/decisions/enroll", "/v1/decisions/enroll", &r1);
    assert_eq!((status, problem_type(&problem)), (403, "urn:prereg:problem:forbidden"));
    api.authorization = None;
    let (status, problem) = api.post_json("/v1/decisions/enroll", "/v1/decisions/enroll", &r1);
    assert_eq!((status, problem_type(&problem)), (401, "urn:prereg:problem:unauthenticated"));
    api.authorization = Some(as_caller.clone());
    let (_, allowed) = api.post_json("/v1/decisions/enroll", "/v1/decisions/enroll", &r1);
    assert_eq!((allowed["allowed"].as_bool(), allowed["reason"].as_str()), (Some(true), Some("matched")));
    assert!(allowed["audit_seq"].as_u64().is_some());
    // A caller reads nothing of the registry.
    let (status, problem) = api.get("/v1/registrations", "/v1/registrations");
    assert_eq!((status, problem_type(&problem)), (403, "urn:prereg:problem:forbidden"));
    api.authorization = Some(as_officer.clone());
    let (status, problem) = api.post_json("/v1/decisions/check", "/v1/decisions/check", &json!({"fqdn": 7}));
    assert_eq!((status, problem_type(&problem)), (400, "urn:prereg:problem:malformed-request"));
    let delete = serde_json::to_vec(&sign(WriteRequest::DeleteRegistration { id })).unwrap();
    let path = format!("/v1/registrations/{id}");
    assert_eq!(api.call("DELETE", "/v1/registrations/{id}", &path, Some(("application/json", delete))).0, 200);
    // Imports.
    let file = b"fqdn,ip\nimp1.example.com,10.1.1.1\nimp2.example.com,nope\n".to_vec();
    let import = |partial: bool, file: &[u8]| {
        let request = crate::common::import_request(&client, file, "routers", partial, false);
        serde_json::to_string(&sign(request)).unwrap()
    };
    let (ct, body) = multipart(&import(true, &file), "hosts.csv", &file);
    let (status, started) = api.call("POST", "/v1/imports", "/v1/imports", Some((&ct, body)));
    assert_eq!(status, 202);
    let import_id = started["import"]["id"].as_u64().unwrap();
    let status_path = format!("/v1/imports/{import_id}");
    let done = loop {
        let (_, view) = api.get("/v1/imports/{id}", &status_path);
        if view["import"]["status"] != "running" {
            break view;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(done["import"]["status"], "completed");
    assert_eq!((done["import"]["created"].as_u64(), done["import"]["errors"].as_u64()), (Some(1), Some(1)));
    let (_, report) = api.get("/v1/imports/{id}/report", &format!("/v1/imports/{import_id}/report"));
    assert_eq!(report["items"][0]["row"], 3);
    assert_eq!(report["items"][0]["column"], "ip");
    let (_, list) = api.get("/v1/imports", "/v1/imports");
    assert_eq!(list[0]["import"]["id"].as_u64(), Some(import_id));
    let broken = b"fqdn,colour\nx.example.com,red\n".to_vec();
    let (ct, body) = multipart(&import(false, &broken), "broken.csv", &broken);
    let (status, problem) = api.call("POST", "/v1/imports", "/v1/imports", Some((&ct, body)));
    assert_eq!((status, problem_type(&problem)), (422, "urn:prereg:problem:invalid-file"));
    assert!(problem["detail"].as_str().unwrap().contains("broken.csv: header (row 1): unknown column \"colour\""));
    let (status, _) = api.get("/v1/imports/{id}", "/v1/imports/4242");
    assert_eq!(status, 404);
    // Policy versions: load, activate (the decisions change), roll back.
    let component = std::fs::read(prereg_test_artifacts::HOSTILE_POLICY).unwrap();
    let load = |bytes: &[u8]| {
        let sha = prereg::audit::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes));
        serde_json::to_string(&sign(WriteRequest::LoadPolicy {
            sha256: sha,
            activate: false,
            name: None,
            version: None,
        }))
        .unwrap()
    };
    let (ct, body) = multipart(&load(&component), "hostile.wasm", &component);
    let (status, loaded) = api.call("POST", "/v1/policies", "/v1/policies", Some((&ct, body)));
    assert_eq!((status, loaded["policy"]["name"].as_str()), (201, Some("hostile")));
    let core_module = wat::parse_str("(module)").unwrap();
    let (ct, body) = multipart(&load(&core_module), "core.wasm", &core_module);
    let (status, problem) = api.call("POST", "/v1/policies", "/v1/policies", Some((&ct, body)));
    assert_eq!((status, problem_type(&problem)), (422, "urn:prereg:problem:policy-refused"));
    let (_, versions) = api.get("/v1/policies", "/v1/policies");
    assert_eq!(versions.as_array().unwrap().len(), 1);
    let activate = |policy: &str| sign(WriteRequest::ActivatePolicy { policy: policy.into() });
    assert_eq!(api.post_json("/v1/policies/activate", "/v1/policies/activate", &activate("hostile@0.0.1")).0, 200);
    let decide = json!({"procedure": "routers", "fqdn": "dev1.example.com"});
    let (_, denied) = api.post_json("/v1/decisions/check", "/v1/decisions/check", &decide);
    assert_eq!((denied["allowed"].as_bool(), denied["policy"]["name"].as_str()), (Some(false), Some("hostile")));
    let (_, active) = api.get("/v1/policy", "/v1/policy");
    assert_eq!(active["name"], "hostile");
    let (status, problem) = api.post_json("/v1/policies/activate", "/v1/policies/activate", &activate("nobody@9"));
    assert_eq!((status, problem_type(&problem)), (404, "urn:prereg:problem:not-found"));
    assert_eq!(api.post_json("/v1/policies/activate", "/v1/policies/activate", &activate("built-in")).0, 200);
    let (_, allowed) = api.post_json("/v1/decisions/check", "/v1/decisions/check", &decide);
    assert_eq!(allowed["allowed"].as_bool(), Some(true));
    // Shadow mode: exact-only (its own test cases run at load) decides
    // beside the active policy; the report shows where they disagreed.
    let exact_only = std::fs::read(prereg_test_artifacts::EXACT_ONLY_POLICY).unwrap();
    let (ct, body) = multipart(&load(&exact_only), "exact-only.wasm", &exact_only);
    let (status, loaded) = api.call("POST", "/v1/policies", "/v1/policies", Some((&ct, body)));
    assert_eq!((status, loaded["self_test_cases"].as_u64()), (201, Some(6)), "{loaded}");
    let shadow = |policy: Option<&str>| sign(WriteRequest::ShadowPolicy { policy: policy.map(Into::into) });
    let (status, started) =
        api.post_json("/v1/policies/shadow", "/v1/policies/shadow", &shadow(Some("exact-only@0.1.0")));
    assert_eq!((status, started["shadow"]["name"].as_str()), (200, Some("exact-only")), "{started}");
    api.authorization = Some(as_caller.clone());
    let (_, enrolled) = api.post_json("/v1/decisions/enroll", "/v1/decisions/enroll", &decide);
    api.authorization = Some(as_officer.clone());
    assert_eq!(enrolled["allowed"].as_bool(), Some(true), "the shadow never changes the outcome: {enrolled}");
    let by_pattern = enrolled["pattern"].as_str().unwrap().contains('*');
    let (_, report) = api.get("/v1/policies/shadow", "/v1/policies/shadow?limit=10");
    assert_eq!(report["shadow"]["compared"].as_u64(), Some(1), "{report}");
    assert_eq!(report["disagreements"].as_array().unwrap().len(), usize::from(by_pattern), "{report}");
    assert_eq!(api.post_json("/v1/policies/shadow", "/v1/policies/shadow", &shadow(None)).0, 200);
    let (_, report) = api.get("/v1/policies/shadow", "/v1/policies/shadow");
    assert!(report["shadow"].is_null(), "{report}");
    // Audit.
    let (_, audit) = api.get("/v1/audit", "/v1/audit?limit=1000");
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    for action in [
        "procedure.create",
        "officer.create",
        "registration.create",
        "registration.disable",
        "registration.reopen",
        "enroll",
        "registration.delete",
        "import.csv",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    let (_, verified) = api.get("/v1/audit/verify", "/v1/audit/verify");
    assert_eq!(verified["intact"], true);
    // The caller's decisions name it.
    let enrolled_by: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "enroll")
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert_eq!(enrolled_by, ["caller:front", "caller:front"]);
    // Disabled, the caller's secret is refused.
    let disable = sign(WriteRequest::DisableCaller { name: "front".into() });
    assert_eq!(api.post_json("/v1/callers/{name}/disable", "/v1/callers/front/disable", &disable).0, 200);
    api.authorization = Some(as_caller.clone());
    let (status, problem) = api.post_json("/v1/decisions/enroll", "/v1/decisions/enroll", &decide);
    assert_eq!((status, problem_type(&problem)), (401, "urn:prereg:problem:unauthenticated"));
    api.authorization = Some(as_officer.clone());

    let missing: Vec<_> = api.operations().difference(&api.seen).cloned().collect();
    assert!(missing.is_empty(), "operations the test did not exercise: {missing:?}");
    // The document names the operations the API promises.
    for (path, method) in [
        ("/v1/registrations", "post"),
        ("/v1/registrations/{id}", "delete"),
        ("/v1/imports", "post"),
        ("/v1/imports/{id}/report", "get"),
        ("/v1/decisions/enroll", "post"),
        ("/v1/audit/verify", "get"),
    ] {
        assert!(api.operations().contains(&(path.to_owned(), method.to_owned())), "{method} {path}");
    }
    // Metrics count what happened.
    let (_, metrics) = api.get("/metrics", "/metrics");
    let metrics = metrics.as_str().unwrap();
    assert!(
        // One enrollment before the policy section, one in shadow mode.
        metrics.contains(r#"prereg_decisions_total{mode="enroll",outcome="allowed",reason="matched"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"prereg_decisions_total{mode="check",outcome="denied",reason="no-registration"} 2"#),
        "{metrics}"
    );
    // The shadow-mode enrollment used up the exact registration it matched.
    assert!(metrics.contains(r#"prereg_registrations{state="open"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"prereg_registrations{state="used"} 1"#), "{metrics}");
    // The service decides through its in-memory index, built once at start.
    assert!(metrics.contains("prereg_candidate_index_builds 1\n"), "{metrics}");
    assert!(metrics.contains("prereg_candidate_index_bytes "), "{metrics}");
    assert!(metrics.contains("prereg_decision_duration_seconds_bucket"));
    assert!(metrics.contains(r#"prereg_import_rows_total{outcome="created"} 1"#));
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn the_cli_signs_locally_and_works_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let run = |args: &[&str]| {
        let out = prereg_command(dir.path())
            .args(["--server", &server.url, "--key", "data/officer.key"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]).0, Some(0));
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let (code, out, err) =
        run(&["register", "--procedure", "routers", "--fqdn", "Router1.Example.com", "--password-file", "pw"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "1");
    let (code, _, err) = run(&["register", "--procedure", "routers", "--fqdn", "router1.example.com"]);
    assert_eq!(code, Some(2), "a duplicate is an input error");
    assert!(err.contains("already exists"), "{err}");
    let (_, out, _) = run(&["list"]);
    assert!(out.contains("router1.example.com"), "{out}");
    // A dry run through the server never checks the password either.
    let (code, out, _) =
        run(&["check", "--procedure", "routers", "--fqdn", "router1.example.com", "--password-file", "pw"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("DENY password-required") && out.contains("an enrollment would check it"), "{out}");
    // Enrollment decisions are asked by a CA caller: an officer's key is refused.
    let (code, _, err) =
        run(&["enroll", "--procedure", "routers", "--fqdn", "router1.example.com", "--password-file", "pw"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("CA caller"), "{err}");
    let (code, out, err) = run(&["caller", "add", "front", "--procedures", "routers"]);
    assert_eq!(code, Some(0), "{err}");
    let secret = out.lines().find_map(|l| l.strip_prefix("secret ")).unwrap().split(' ').next().unwrap().to_owned();
    let (_, out, _) = run(&["caller", "list"]);
    assert!(out.contains("front") && out.contains("enabled") && !out.contains(&secret), "{out}");
    let enroll = ["--caller-secret", &secret, "enroll", "--procedure", "routers", "--fqdn", "router1.example.com"];
    let (code, out, _) = run(&[&enroll[..], &["--password-file", "pw"]].concat());
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(&[&enroll[..], &["--password-file", "pw"]].concat());
    assert_eq!(code, Some(1));
    assert!(out.starts_with("DENY no-registration"), "{out}");
    std::fs::write(dir.path().join("hosts.csv"), "fqdn,serial\nh1.example.com,S1\nh2.example.com,\nbad name,\n")
        .unwrap();
    let (code, out, _) = run(&["import", "hosts.csv", "--procedure", "routers"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("row 4 (line 4), column fqdn:"), "{out}");
    assert!(out.contains("rejected: 1 of 3 rows are bad, so nothing was written"), "{out}");
    let (code, out, _) = run(&["import", "hosts.csv", "--procedure", "routers", "--partial"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("completed: 2 registrations created, 1 bad rows skipped"), "{out}");
    let (code, out, err) = run(&["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("audit chain intact"), "{out}");
    let (_, out, _) = run(&["policy", "info"]);
    assert!(out.contains("name        default"), "{out}");
    // The officer key never travelled: the server's log and database do not hold it.
    let key = std::fs::read_to_string(dir.path().join("data/officer.key")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!server.log().contains(&body));
    let (code, _, err) = run(&["init"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("works on a local data folder"), "{err}");
    // A server that is not there: a clear failure of the system, not a hang.
    let out = prereg_command(dir.path()).args(["--server", "http://127.0.0.1:9", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach http://127.0.0.1:9"));
}

#[test]
fn sigterm_stops_cleanly_and_the_service_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client();
    assert!(client.instance().is_ok());
    let ready = ureq::get(format!("{}/readyz", server.url)).call().unwrap().into_body().read_to_string().unwrap();
    assert_eq!(ready, r#"{"status":"ok"}"#);
    let log_dir = server.dir.clone();
    assert_eq!(server.stop().code(), Some(0));
    let log = std::fs::read_to_string(log_dir.join("server.log")).unwrap();
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // It starts again on the same data, with the same instance.
    let again = Server::start(dir.path());
    assert!(again.client().instance().is_ok());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("json.log")).unwrap();
    let mut child = prereg_command(dir.path())
        .args(["--data", "data", "--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let (url, _stdout) = serving_url(&mut child).expect("the service started");
    prereg::client::Client::new(&url).instance().unwrap();
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(dir.path().join("json.log")).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["fields"]["route"] == "/v1/instance" && l["fields"]["status"] == 200), "{text}");
}

/// A child process killed if the test ends early (a failed assertion).
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A log collector that stops reading (a full pipe on standard error) must
/// not stop the service: requests are answered while their log lines wait,
/// and the lines are all written once the pipe is read again.
#[test]
fn a_stalled_reader_of_the_log_does_not_stall_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KilledOnDrop(
        prereg_command(dir.path())
            .args(["--data", "data", "serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (url, _stdout) = serving_url(&mut child.0).expect("the service started");
    // Nobody reads standard error: its pipe (64 KiB) fills after a few
    // hundred request lines. 3,000 requests log about half a megabyte.
    let stderr = child.0.stderr.take().unwrap();
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(10))).build().into();
    let requests = 3000;
    for i in 0..requests {
        let answer = agent.get(format!("{url}/healthz?n={i}")).call();
        assert!(answer.is_ok_and(|a| a.status() == 200), "request {i} was not answered while the log was not read");
    }
    // Reading again: every line arrives, in order, and the service stops cleanly.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut text).unwrap();
        text
    });
    std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(child.0.wait().unwrap().success());
    let log = reader.join().unwrap();
    let answered: Vec<&str> = log.lines().filter(|l| l.contains("path=/healthz")).collect();
    assert_eq!(answered.len(), requests, "{}", &log[log.len().saturating_sub(2000)..]);
    assert!(!log.contains("dropped"), "nothing is dropped within the buffer's bound");
    assert!(log.contains("stopped"), "the last lines are written at the end");
}
