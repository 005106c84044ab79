//! The policy author's tools, through the real binary: `prereg policy test`
//! (cases, diffs, exit codes, JSON, record and replay), the self-test at
//! load, `--name/--version` labels, `prereg policy bench` and `prereg policy
//! new` (a scaffolded crate built with cargo for wasm32-wasip2).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::prereg_command;

/// The example policies and their case files.
fn examples() -> [(&'static str, &'static str); 4] {
    [
        ("default", prereg::builtin::DEFAULT_POLICY_PATH),
        ("exact-only", prereg_test_artifacts::EXACT_ONLY_POLICY),
        ("multi-label", prereg_test_artifacts::MULTI_LABEL_POLICY),
        ("serial-required", prereg_test_artifacts::SERIAL_REQUIRED_POLICY),
    ]
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn prereg(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let Output { status, stdout, stderr } = prereg_command(dir).args(args).output().unwrap();
    (status.code(), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

#[test]
fn the_example_policies_pass_their_own_cases() {
    let dir = tempfile::tempdir().unwrap();
    for (name, wasm) in examples() {
        let cases = workspace().join("policies").join(name).join("cases.toml");
        let (code, out, err) = prereg(dir.path(), &["policy", "test", wasm, cases.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{name}: {out}{err}");
        assert!(out.lines().next().unwrap().starts_with(name), "{out}");
        assert!(out.trim_end().ends_with(" passed, 0 failed"), "{out}");
        assert!(!out.contains("FAIL"), "{out}");
        // The same cases are embedded in the component (export_policy!(P, cases = ...)).
        let (code, out, err) = prereg(dir.path(), &["policy", "test", wasm, "--json"]);
        assert_eq!(code, Some(0), "{name}: {out}{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["failed"], 0);
        assert!(report["passed"].as_u64().unwrap() >= 5, "{name}: {report}");
        assert_eq!(report["cases_file"], "embedded test cases");
    }
}

#[test]
fn a_failing_case_shows_its_difference_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // exact-only run against the default policy's cases: patterns never match.
    let cases = workspace().join("policies/default/cases.toml");
    let (code, out, _) =
        prereg(dir.path(), &["policy", "test", prereg_test_artifacts::EXACT_ONLY_POLICY, cases.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    let failure = out.split("FAIL  a pattern matches one label").nth(1).expect("the case fails");
    let block: Vec<&str> = failure.lines().skip(1).take(4).collect();
    assert_eq!(block[0].split_whitespace().collect::<Vec<_>>(), ["decision:", "expected", "allow,", "got", "deny"]);
    assert_eq!(
        block[1].split_whitespace().collect::<Vec<_>>(),
        ["reason:", "expected", "matched,", "got", "no-registration"]
    );
    assert!(block[2].contains("expected \"*.dept.example.com\", got none"), "{failure}");
    assert!(block[3].contains("policy:") && block[3].contains("no open registration"), "{failure}");
    assert!(out.contains("ok    the right password"), "exact names still match: {out}");
    let (code, out, _) = prereg(
        dir.path(),
        &["policy", "test", prereg_test_artifacts::EXACT_ONLY_POLICY, cases.to_str().unwrap(), "--json"],
    );
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed = report["cases"].as_array().unwrap().iter().filter(|c| c["passed"] == false).count();
    assert_eq!(report["failed"].as_u64(), Some(failed as u64));
    assert!(failed >= 5, "{report}");
}

#[test]
fn bad_case_files_are_refused_with_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = prereg::builtin::DEFAULT_POLICY_PATH;
    for (text, wanted) in [
        ("[[case]]\nname = \"x\"\nprocedure = \"p\"\nfqdn = \"a.example.com\"\n", "missing field `expect`"),
        ("[[case]]\nname = \"x\"\nprocedure = \"p\"\nfqdnn = \"a\"\nexpect = \"allow\"\n", "unknown field `fqdnn`"),
        ("[[case]]\nname = \"x\"\nprocedure = \"p\"\nfqdn = \"a\"\nexpect = \"maybe\"\n", "unknown variant `maybe`"),
        (
            "[[case]]\nname = \"x\"\nprocedure = \"p\"\nfqdn = \"a\"\nexpect = \"deny\"\nreason = \"nope\"\n",
            "case 1 (\"x\"): reason \"nope\" is not a SPEC.md reason code",
        ),
        (
            "[[procedure]]\nname = \"p\"\ndomain = \"d\"\nprotocol = \"smtp\"\n",
            "procedure 1 (\"p\"): protocol \"smtp\"",
        ),
        (
            "[[registration]]\nprocedure = \"p\"\nfqdn = \"a\"\ninvalid = \"colour\"\n",
            "registration 1 (\"a\"): invalid = \"colour\"",
        ),
        (
            "[[case]]\nname = \"x\"\nprocedure = \"p\"\nfqdn = \"a\"\nexpect = \"deny\"\nrenewal_of = \"ghost\"\n",
            "case 1 (\"x\"): renewal_of = \"ghost\" names no [[registration]] fqdn of this file",
        ),
        (
            "[[registration]]\nprocedure = \"p\"\nfqdn = \"a\"\n[[case]]\nname = \"x\"\nprocedure = \"p\"\nfqdn = \"a\"\n\
             expect = \"allow\"\nrenewal_of = \"a\"\npassword = \"guess\"\n",
            "case 1 (\"x\"): a renewal carries no password and is never enrolled",
        ),
        ("[[case]\n", "cases.toml"),
    ] {
        std::fs::write(dir.path().join("cases.toml"), text).unwrap();
        let (code, out, err) = prereg(dir.path(), &["policy", "test", wasm, "cases.toml"]);
        assert_eq!(code, Some(2), "{text}: {out}{err}");
        assert!(err.contains("cases.toml") && err.contains(wanted), "{text}: {err}");
    }
    // TOML errors say where.
    std::fs::write(dir.path().join("cases.toml"), "[[case]]\nname = \"x\"\nexpect = allow\n").unwrap();
    let (_, _, err) = prereg(dir.path(), &["policy", "test", wasm, "cases.toml"]);
    assert!(err.contains("line 3"), "{err}");
    // A procedure the policy refuses to set up names the entry.
    std::fs::write(
        dir.path().join("cases.toml"),
        "[[procedure]]\nname = \"bad name\"\ndomain = \"d\"\nprotocol = \"scep\"\n",
    )
    .unwrap();
    let (code, _, err) = prereg(dir.path(), &["policy", "test", wasm, "cases.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("procedure 1 (\"bad name\")"), "{err}");
}

#[test]
fn host_calls_are_recorded_and_replayed_without_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let cases = workspace().join("policies/default/cases.toml");
    let cases = cases.to_str().unwrap();
    let wasm = prereg::builtin::DEFAULT_POLICY_PATH;
    let (code, out, err) = prereg(dir.path(), &["policy", "test", wasm, cases, "--record", "calls.json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().next().unwrap().ends_with("[record]"), "{out}");
    let recording: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("calls.json")).unwrap()).unwrap();
    let first = &recording["cases"][0];
    assert_eq!(first["name"], "a pattern matches one label");
    let calls: Vec<&str> = first["calls"].as_array().unwrap().iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(calls, ["get-procedure", "find-candidates"], "{first}");
    assert_eq!(first["calls"][1]["answer"]["Ok"][0]["pattern"], "*.dept.example.com");
    let password = recording["cases"].as_array().unwrap().iter().find(|c| c["name"] == "the right password").unwrap();
    assert!(
        password["calls"].as_array().unwrap().iter().any(|c| c["call"] == "check-password" && c["answer"] == "match")
    );

    // A renewal case records the registration its certificate was issued
    // under, and its calls: no password is checked.
    let renewal = recording["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "a password registration renews with the certificate alone")
        .unwrap();
    assert!(renewal["renewal_of"].as_u64().is_some(), "{renewal}");
    let calls: Vec<&str> = renewal["calls"].as_array().unwrap().iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(calls, ["get-procedure", "find-candidates"], "{renewal}");

    // Replayed: the same verdicts, with no store at all.
    let (code, out, err) = prereg(dir.path(), &["policy", "test", wasm, cases, "--replay", "calls.json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().next().unwrap().ends_with("[replay]"), "{out}");
    // Another policy against the same recorded facts: multi-label asks for
    // parent names the recording cannot answer, and says so.
    let (code, out, _) = prereg(
        dir.path(),
        &["policy", "test", prereg_test_artifacts::MULTI_LABEL_POLICY, cases, "--replay", "calls.json"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("replay: the recording has no answer to find-candidates(\"corp\", \"dept.example.com\")"),
        "{out}"
    );
    // A recording whose facts were edited changes the verdict: the recording is the store.
    let edited = std::fs::read_to_string(dir.path().join("calls.json"))
        .unwrap()
        .replace("\"*.dept.example.com\"", "\"*.other.example.com\"");
    std::fs::write(dir.path().join("edited.json"), edited).unwrap();
    let (code, out, _) = prereg(dir.path(), &["policy", "test", wasm, cases, "--replay", "edited.json"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  a pattern matches one label"), "{out}");
    // A case without a recording is an input error.
    std::fs::write(
        dir.path().join("more.toml"),
        std::fs::read_to_string(cases).unwrap()
            + "\n[[case]]\nname = \"new\"\nprocedure = \"routers\"\nfqdn = \"n.example.com\"\nexpect = \"deny\"\n",
    )
    .unwrap();
    let (code, _, err) = prereg(dir.path(), &["policy", "test", wasm, "more.toml", "--replay", "calls.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no recorded host calls for case \"new\""), "{err}");
}

/// A component with a `prereg:test-cases` section appended (a custom
/// section may close a component).
fn with_cases(component: &[u8], cases: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"prereg:test-cases";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(cases.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

#[test]
fn a_policy_whose_own_cases_fail_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(prereg(dir.path(), &["--data", "data", "init"]).0, Some(0));
    let lying = "[[procedure]]\nname = \"routers\"\ndomain = \"corp\"\nprotocol = \"scep\"\n\n\
                 [[case]]\nname = \"an unregistered name is allowed\"\nprocedure = \"routers\"\nfqdn = \"x.example.com\"\nexpect = \"allow\"\n";
    let component = std::fs::read(prereg_test_artifacts::EXACT_ONLY_POLICY).unwrap();
    std::fs::write(dir.path().join("lying.wasm"), with_cases(&component, lying)).unwrap();
    let (code, out, err) = prereg(dir.path(), &["--data", "data", "policy", "load", "lying.wasm", "--activate"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains(
            "1 of its own 1 test cases fail: \"an unregistered name is allowed\": decision expected allow, got deny"
        ),
        "{err}"
    );
    let (_, list, _) = prereg(dir.path(), &["--data", "data", "policy", "list", "--json"]);
    assert_eq!(list.trim(), "[]", "a refused policy is not stored");
    let (_, info, _) = prereg(dir.path(), &["--data", "data", "policy", "info", "--json"]);
    assert!(info.contains("\"source\": \"built-in\""), "{info}");
    // Good embedded cases: they run, and the load says so.
    let (code, out, err) = prereg(
        dir.path(),
        &[
            "--data",
            "data",
            "policy",
            "load",
            prereg_test_artifacts::MULTI_LABEL_POLICY,
            "--name",
            "ml",
            "--version",
            "2026.11",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("loaded ml 2026.11 sha256:") && out.contains("its 7 test cases pass"), "{out}");
    // Labels list, select and name decisions.
    let (code, out, err) = prereg(dir.path(), &["--data", "data", "policy", "activate", "ml@2026.11"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("active: ml 2026.11"), "{out}");
    let (_, info, _) = prereg(dir.path(), &["--data", "data", "policy", "info"]);
    assert!(info.starts_with("name        ml\nversion     2026.11\n"), "{info}");
    // A label names one component only.
    let (code, _, err) = prereg(
        dir.path(),
        &[
            "--data",
            "data",
            "policy",
            "load",
            prereg::builtin::DEFAULT_POLICY_PATH,
            "--name",
            "ml",
            "--version",
            "2026.11",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("ml@2026.11 already names another component"), "{err}");
    let (code, _, err) = prereg(
        dir.path(),
        &["--data", "data", "policy", "load", prereg::builtin::DEFAULT_POLICY_PATH, "--name", "a b"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid name"), "{err}");
}

#[test]
fn policy_bench_measures_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = prereg(
        dir.path(),
        &[
            "policy",
            "bench",
            prereg::builtin::DEFAULT_POLICY_PATH,
            "--registrations",
            "400",
            "--decisions",
            "300",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["policy"]["name"], "default");
    assert_eq!((report["registrations"].as_u64(), report["refused_rows"].as_u64()), (Some(400), Some(0)), "{report}");
    assert_eq!(report["decisions"], 300);
    assert_eq!(report["policy_errors"], 0);
    // The built-in policy's initial memory holds what a decision allocates:
    // no instance grows it (each growth costs two mprotect calls).
    assert_eq!(report["memory_grows_per_decision"], 0.0, "{report}");
    let allowed = report["allowed"].as_u64().unwrap();
    assert!((60..=280).contains(&allowed), "the query mix hits and misses: {report}");
    for field in ["compile_ms", "decisions_per_second"] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
    }
    for field in ["instantiate_us", "decision_us"] {
        let p = &report[field];
        assert!(p["p50"].as_f64().unwrap() > 0.0 && p["p50"].as_f64() <= p["p99"].as_f64(), "{field}: {report}");
    }
    // serial-required refuses the dataset's rows without a serial number only
    // for SCEP and CMP; the bench procedure is EST, so it takes them all.
    let (code, out, err) = prereg(
        dir.path(),
        &[
            "policy",
            "bench",
            prereg_test_artifacts::SERIAL_REQUIRED_POLICY,
            "--registrations",
            "100",
            "--decisions",
            "50",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("dataset       100 registrations (0 rows refused)"), "{out}");
    assert!(out.contains("memory grows  "), "{out}");
}

#[test]
fn a_scaffolded_policy_builds_and_passes_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = prereg(dir.path(), &["policy", "new", "lab-policy"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("created lab-policy/src/lib.rs"), "{out}");
    let crate_dir = dir.path().join("lab-policy");
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("pub struct LabPolicyPolicy;"), "{lib}");
    let code_lines = lib.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).count();
    assert!(code_lines <= 35, "a policy is a small crate: {code_lines} lines of code");
    let (code, _, err) = prereg(dir.path(), &["policy", "new", "lab-policy"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = prereg(dir.path(), &["policy", "new", "Bad_Name"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a usable policy name"), "{err}");

    // Build it as its README says, with a target folder kept between runs.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffolded-policy");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&crate_dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap();
    assert!(status.success(), "the scaffolded policy does not build");
    let wasm = target.join("wasm32-wasip2/release/lab_policy.wasm");
    let (code, out, err) = prereg(&crate_dir, &["policy", "test", wasm.to_str().unwrap(), "cases.toml"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("lab-policy 0.1.0") && out.trim_end().ends_with("4 passed, 0 failed"), "{out}");
    // It ships its cases, and loads.
    let (code, out, err) = prereg(dir.path(), &["--data", "data", "init"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) =
        prereg(dir.path(), &["--data", "data", "policy", "load", wasm.to_str().unwrap(), "--activate"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("its 4 test cases pass, active"), "{out}");
}
