//! Issue 19: a property-based test generated from the served OpenAPI
//! document. For every operation, requests are generated from its declared
//! parameters and body (values in their declared types, ranges and sets,
//! and values outside them: the wrong type, out of range, beyond 64 bits,
//! not in the set, strange text), with and without a credential, and each
//! answer must be declared for the operation, in a declared content type,
//! valid against the declared schema, and never a 5xx.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::common::{Server, create_registration, sign_for};

/// A generated request: its path (template filled), query, body and whether it carries the officer's credential.
#[derive(Debug, Clone)]
struct Generated {
    path: String,
    query: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
    authorized: bool,
}

/// Values outside any declared schema: the wrong type, out of 64 bits, odd text.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof![
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("1e3".to_owned()),
        Just(String::new()),
        Just("%00".to_owned()),
        Just("../../etc/passwd".to_owned()),
        "\\PC{0,40}",
    ]
    .boxed()
}

/// Values of a parameter's schema, mostly inside it, sometimes outside.
fn value(schema: &Value) -> BoxedStrategy<String> {
    let valid: BoxedStrategy<String> = match schema["type"].as_str() {
        Some("integer") => {
            let min = schema["minimum"].as_u64().unwrap_or(0);
            let max = schema["maximum"].as_u64().unwrap_or(u64::from(u32::MAX));
            let edges = vec![min, max, min.saturating_add(1), max / 2];
            prop_oneof![proptest::sample::select(edges), min..=max.min(min + 5000)].prop_map(|n| n.to_string()).boxed()
        }
        Some("boolean") => proptest::bool::ANY.prop_map(|b| b.to_string()).boxed(),
        _ => match schema["enum"].as_array() {
            Some(values) => {
                let values: Vec<String> = values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                proptest::sample::select(values).boxed()
            }
            None => "[a-z0-9.*-]{0,24}".boxed(),
        },
    };
    let beyond = match (schema["type"].as_str(), schema["maximum"].as_u64(), schema["minimum"].as_u64()) {
        (Some("integer"), Some(max), min) => {
            let mut outside = vec![max.saturating_add(1).to_string(), format!("{max}0")];
            if let Some(min) = min.filter(|m| *m > 0) {
                outside.push((min - 1).to_string());
            }
            proptest::sample::select(outside).boxed()
        }
        _ => hostile(),
    };
    prop_oneof![6 => valid, 2 => beyond, 1 => hostile()].boxed()
}

/// Bodies for an operation that takes one: JSON of any shape, a flattened
/// JWS with garbage in it, bytes that are not JSON, and for multipart forms
/// the parts in either order.
fn body(content_types: Vec<String>) -> BoxedStrategy<Option<(String, Vec<u8>)>> {
    if content_types.is_empty() {
        return Just(None).boxed();
    }
    let json = prop_oneof![
        Just(b"{}".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"not json".to_vec()),
        Just(br#"{"protected":"e30","payload":"e30","signature":"AAAA"}"#.to_vec()),
        Just(br#"{"protected":"!!","payload":1,"signature":null}"#.to_vec()),
        Just(br#"{"procedure":"routers","fqdn":"a.example.com"}"#.to_vec()),
        "\\PC{0,80}".prop_map(String::into_bytes),
    ];
    let boundary = "p7rop3rty";
    let part = |name: &str, content: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\n\r\n{content}\r\n")
    };
    let forms = vec![
        format!("{}{}--{boundary}--\r\n", part("request", "{}"), part("file", "fqdn\r\na.example.com")),
        format!("{}{}--{boundary}--\r\n", part("file", "fqdn"), part("request", "{}")),
        format!("{}--{boundary}--\r\n", part("request", r#"{"protected":"e30","payload":"e30","signature":"AA"}"#)),
        "garbage".to_owned(),
    ];
    let multipart = proptest::sample::select(forms).prop_map(String::into_bytes);
    let chosen = proptest::sample::select(content_types);
    (chosen, json, multipart)
        .prop_map(move |(ct, json, form)| {
            if ct.starts_with("multipart/") {
                Some((format!("multipart/form-data; boundary={boundary}"), form))
            } else {
                Some((ct, json))
            }
        })
        .boxed()
}

/// The requests of one operation.
fn requests(path: &str, operation: &Value) -> BoxedStrategy<Generated> {
    let mut path_params = Vec::new();
    let mut query_params = Vec::new();
    for p in operation["parameters"].as_array().cloned().unwrap_or_default() {
        let name = p["name"].as_str().unwrap().to_owned();
        let schema = p["schema"].clone();
        match p["in"].as_str() {
            Some("path") => path_params.push((name, value(&schema))),
            Some("query") => query_params.push((name, proptest::option::of(value(&schema)).boxed())),
            _ => {}
        }
    }
    let content_types: Vec<String> =
        operation["requestBody"]["content"].as_object().map(|c| c.keys().cloned().collect()).unwrap_or_default();
    let template = path.to_owned();
    let path_names: Vec<String> = path_params.iter().map(|(n, _)| n.clone()).collect();
    let query_names: Vec<String> = query_params.iter().map(|(n, _)| n.clone()).collect();
    let path_values: Vec<BoxedStrategy<String>> = path_params.into_iter().map(|(_, s)| s).collect();
    let query_values: Vec<BoxedStrategy<Option<String>>> = query_params.into_iter().map(|(_, s)| s).collect();
    (path_values, query_values, body(content_types), proptest::bool::weighted(0.85))
        .prop_map(move |(path_values, query_values, body, authorized)| {
            let mut path = template.clone();
            for (name, value) in path_names.iter().zip(path_values) {
                path = path.replace(&format!("{{{name}}}"), &encode(&value));
            }
            let query = query_names
                .iter()
                .zip(query_values)
                .filter_map(|(name, value)| value.map(|v| (name.clone(), v)))
                .collect();
            Generated { path, query, body, authorized }
        })
        .boxed()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn generated_requests_get_only_documented_answers_and_never_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        "server.log",
        &["--data", "data", "serve", "--listen", "127.0.0.1:0", "--failure-burst", "100000"],
    );
    // Something to read: a procedure and a registration.
    let client = server.client();
    let key = server.admin_key();
    let procedure = prereg::signing::WriteRequest::CreateProcedure {
        name: "routers".into(),
        domain: "corp".into(),
        protocol: "cmp".into(),
        require_preregistration: None,
        allowed_domains: vec![],
        certificate_days: None,
    };
    for request in [procedure, create_registration("routers", "a.example.com")] {
        client.submit(&sign_for(&client, &key, request.clone()), &request).unwrap();
    }
    let api = std::cell::RefCell::new(crate::service::Checked::new(&server.url));
    let officer = server.officer_authorization();
    let doc = api.borrow().doc.clone();
    let calls = std::cell::Cell::new(0);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let strategy = requests(path, operation);
            // A runner per operation, seeded alike: each gets its 40 cases, reproducibly.
            let mut runner = TestRunner::new_with_rng(
                Config { cases: 40, failure_persistence: None, ..Config::default() },
                proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
            );
            let result = runner.run(&strategy, |generated| {
                let mut url = generated.path.clone();
                if !generated.query.is_empty() {
                    let pairs: Vec<String> =
                        generated.query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
                    url = format!("{url}?{}", pairs.join("&"));
                }
                let mut api = api.borrow_mut();
                api.authorization = generated.authorized.then(|| officer.clone());
                let body = generated
                    .body
                    .clone()
                    .or_else(|| (method != "get").then(|| ("application/json".into(), b"{}".to_vec())));
                let (status, answer) = api.call(
                    &method.to_ascii_uppercase(),
                    path,
                    &url,
                    body.as_ref().map(|(c, b)| (c.as_str(), b.clone())),
                );
                calls.set(calls.get() + 1);
                if std::env::var_os("SHOW").is_some() {
                    eprintln!("{method} {url} -> {status}");
                }
                prop_assert!(status < 500, "{method} {url} answered {status}: {answer}");
                Ok(())
            });
            if let Err(e) = result {
                panic!("{method} {path}: {e}");
            }
        }
    }
    assert!(calls.get() > 30 * 40, "{} calls", calls.get());
}

/// Issue 19: what the document says is what the server does: unique
/// operationIds, the real bounds of `limit` and `after` (a cursor past
/// 2^63-1 used to wrap around to the first page), closed sets as enums, the
/// order of multipart parts.
#[test]
fn the_document_states_the_real_bounds_sets_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut api = crate::service::Checked::new(&server.url);
    api.authorization = Some(server.officer_authorization());
    let doc = api.doc.clone();
    let mut ids = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            if let Some(other) = ids.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id} names both {other} and {method} {path}");
            }
        }
    }
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
            .clone()
    };
    for path in ["/v1/registrations", "/v1/audit", "/v1/policies/shadow", "/v1/imports/{id}/report"] {
        let limit = param(path, "limit");
        assert_eq!((limit["minimum"].as_u64(), limit["maximum"].as_u64()), (Some(1), Some(1000)), "{path}");
        assert_eq!(param(path, "after")["maximum"].as_u64(), Some(i64::MAX as u64), "{path}");
        let get = &doc["paths"][path]["get"]["responses"];
        assert!(get["400"].is_object() && get["422"].is_object(), "{path} declares its parameter refusals");
    }
    let state = param("/v1/registrations", "state");
    let states: Vec<&str> = state["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(states, ["open", "used", "disabled", "locked"]);
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["RegistrationRecord"]["properties"]["state"]["enum"].is_array());
    assert!(schemas["ProcedureRecord"]["properties"]["protocol"]["enum"].as_array().unwrap().contains(&"cmp".into()));
    let reasons = schemas["DecisionReport"]["properties"]["reason"]["enum"].as_array().unwrap();
    assert!(reasons.contains(&"no-registration".into()) && reasons.len() == prereg_core::Reason::ALL.len());
    for path in ["/v1/imports", "/v1/policies"] {
        let body = doc["paths"][path]["post"]["requestBody"]["description"].as_str().unwrap_or_default();
        assert!(body.contains("in this order: `request`"), "{path}: {body}");
    }

    // The server keeps to them.
    for (query, status) in [
        ("after=9223372036854775808", 422),
        ("after=18446744073709551616", 400),
        ("limit=0", 422),
        ("limit=1001", 422),
        ("limit=1", 200),
        ("after=9223372036854775807", 200),
    ] {
        for path in ["/v1/registrations", "/v1/audit", "/v1/policies/shadow"] {
            let (got, body) = api.get(path, &format!("{path}?{query}"));
            assert_eq!(got, status, "{path}?{query}: {body}");
            if status == 422 {
                let field = if query.starts_with("after") { "after" } else { "limit" };
                assert_eq!(body["field"], field, "{path}?{query}: {body}");
            }
        }
    }
}

/// Issue 19: the served document passes a standard OpenAPI 3.1 validator,
/// the PyPI `openapi-spec-validator` (`.ci/run` installs it in a virtual
/// environment and names it in `PREREG_OPENAPI_VALIDATOR`, with
/// `PREREG_REQUIRE_OPENAPI_VALIDATOR=1`; elsewhere the test runs it if it is
/// on the PATH and says so if it is not).
#[test]
fn the_served_document_passes_openapi_spec_validator() {
    let validator = std::env::var("PREREG_OPENAPI_VALIDATOR").unwrap_or_else(|_| "openapi-spec-validator".into());
    let required = std::env::var_os("PREREG_REQUIRE_OPENAPI_VALIDATOR").is_some();
    if std::process::Command::new(&validator).arg("--help").output().is_err() {
        assert!(!required, "{validator} is required (PREREG_REQUIRE_OPENAPI_VALIDATOR) but cannot be run");
        eprintln!("skipped: {validator} is not installed (pip install openapi-spec-validator)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let api = crate::service::Checked::new(&server.url);
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&api.doc).unwrap()).unwrap();
    let out = std::process::Command::new(&validator).arg(&file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("OK"), "{validator}: {text}");
}
