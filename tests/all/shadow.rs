//! Shadow mode (a candidate decides beside the active policy, without
//! effect), and policy changes reaching a running service: over REST, and
//! from another process through the store.

use std::time::{Duration, Instant};

use prereg::signing::WriteRequest;

use crate::common::{Fixture, Req, Server, prereg_command, req, sign_for};

fn sha(bytes: &[u8]) -> String {
    prereg::audit::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// Loads the component at `path` into the fixture's registry (not active).
fn load(f: &Fixture, path: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    let sha256 = sha(&bytes);
    let request = WriteRequest::LoadPolicy { sha256: sha256.clone(), activate: false, name: None, version: None };
    let jws = prereg::signing::sign(&f.admin, &f.instance, request, crate::common::NOW, 300).unwrap();
    f.registry.load_policy(&jws, &bytes, crate::common::NOW).unwrap();
    sha256
}

fn set_shadow(f: &Fixture, policy: Option<&str>) -> prereg::registry::ShadowChange {
    let request = WriteRequest::ShadowPolicy { policy: policy.map(Into::into) };
    let jws = prereg::signing::sign(&f.admin, &f.instance, request, crate::common::NOW, 300).unwrap();
    f.registry.set_shadow(&jws, crate::common::NOW).unwrap()
}

#[test]
fn the_shadow_decides_beside_the_active_policy_and_never_changes_the_outcome() {
    let f = Fixture::new();
    f.procedure("routers", "corp", "scep", &[]);
    f.register("routers", "*.dept.example.com").unwrap();
    f.register("routers", "exact.example.com").unwrap();
    let multi = load(&f, prereg_test_artifacts::MULTI_LABEL_POLICY);
    let change = set_shadow(&f, Some(&multi[..12]));
    assert_eq!(change.shadow.as_ref().map(|p| p.name.as_str()), Some("multi-label"));

    // Deep name: the default denies, multi-label would allow. One-label name:
    // both allow. The deny stands, and the pattern keeps its enrollments.
    let deep = f.enroll(req("routers", "a.b.dept.example.com"));
    assert_eq!((deep.allowed, deep.reason.as_str()), (false, "no-registration"));
    let shallow = f.enroll(req("routers", "r.dept.example.com"));
    assert_eq!((shallow.allowed, shallow.policy.name.as_str()), (true, "default"));
    let exact = f.enroll(req("routers", "exact.example.com"));
    assert!(exact.allowed);
    let used = f.enroll(Req { fqdn: "exact.example.com", ..req("routers", "") });
    assert!(!used.allowed, "the exact registration was used once, by the active decision only");
    // Dry runs are not live decisions: not compared.
    f.check(req("routers", "x.y.dept.example.com"));

    let report = f.registry.shadow_report(0, 100).unwrap();
    let shadow = report.shadow.unwrap();
    assert_eq!((shadow.compared, shadow.disagreed), (4, 1));
    assert_eq!(report.name.as_deref(), Some("multi-label"));
    let [d] = report.disagreements.as_slice() else { panic!("one disagreement: {:?}", report.disagreements) };
    assert_eq!(d.request["fqdn"], "a.b.dept.example.com");
    assert_eq!((d.active.allowed, d.active.reason.as_str()), (false, "no-registration"));
    assert_eq!((d.shadow.allowed, d.shadow.reason.as_str(), d.shadow.registration), (true, "matched", Some(1)));
    assert_eq!(d.shadow.sha256, multi);
    assert_eq!(d.audit_seq, deep.audit_seq.unwrap());
    assert!(d.shadow.explanation.contains("matched \"*.dept.example.com\""), "{}", d.shadow.explanation);

    // A failing shadow is the shadow's problem: the hostile policy loops on
    // `loop.*` names, and the enrollment is decided as usual.
    let hostile = load(&f, prereg_test_artifacts::HOSTILE_POLICY);
    set_shadow(&f, Some(&hostile));
    f.register("routers", "loop.example.com").unwrap();
    let report = f.enroll(req("routers", "loop.example.com"));
    assert_eq!((report.allowed, report.policy.name.as_str()), (true, "default"));
    let shadow = f.registry.shadow_report(0, 100).unwrap();
    assert_eq!(shadow.shadow.as_ref().map(|s| (s.compared, s.disagreed)), Some((1, 1)), "counts reset per shadow");
    assert_eq!(shadow.disagreements[0].shadow.reason, "policy-error");
    // Shadowing multi-label again starts a new period: earlier disagreements are not in it.
    set_shadow(&f, Some(&multi));
    let again = f.registry.shadow_report(0, 100).unwrap();
    assert_eq!(again.shadow.map(|s| (s.compared, s.disagreed)), Some((0, 0)));
    assert!(again.disagreements.is_empty(), "{:?}", again.disagreements);

    // Stopping: no more comparisons; every change is audited.
    assert!(set_shadow(&f, None).shadow.is_none());
    assert!(f.registry.shadow().is_none());
    f.enroll(req("routers", "z.dept.example.com"));
    assert!(f.registry.shadow_report(0, 10).unwrap().shadow.is_none());
    let actions: Vec<String> =
        f.registry.audit_records(0, 1000).unwrap().into_iter().map(|r| format!("{} {}", r.action, r.object)).collect();
    assert_eq!(actions.iter().filter(|a| a.starts_with("policy.shadow")).count(), 4, "{actions:?}");
    assert!(f.registry.verify_audit().unwrap().fault.is_none());
}

/// Checks `fqdn` on the service; (allowed, reason, policy name).
fn check(client: &prereg::client::Client, fqdn: &str) -> (bool, String, String) {
    let input =
        prereg::registry::EnrollmentInput { procedure: "routers".into(), fqdn: fqdn.into(), ..Default::default() };
    let report = client.decide(&input, prereg::registry::DecisionMode::DryRun).unwrap();
    (report.allowed, report.reason.to_string(), report.policy.name)
}

#[test]
fn swapping_default_and_multi_label_on_a_running_service_changes_what_matches() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client();
    let key = server.admin_key();
    let cli = |args: &[&str]| {
        let out = prereg_command(dir.path())
            .args(["--server", &server.url, "--key", "data/officer.key"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    cli(&["register", "--procedure", "routers", "--fqdn", "*.dept.example.com"]);
    let names = ["r1.dept.example.com", "a.r1.dept.example.com", "x.y.z.dept.example.com", "dept.example.com"];
    let before: Vec<_> = names.iter().map(|n| check(&client, n)).collect();
    assert_eq!(before.iter().map(|c| c.0).collect::<Vec<_>>(), [true, false, false, false]);

    let out = cli(&["policy", "load", prereg_test_artifacts::MULTI_LABEL_POLICY, "--activate"]);
    assert!(out.contains("its 7 test cases pass, active"), "{out}");
    let after: Vec<_> = names.iter().map(|n| check(&client, n)).collect();
    assert_eq!(after.iter().map(|c| c.0).collect::<Vec<_>>(), [true, true, true, false], "{after:?}");
    assert!(after.iter().all(|c| c.2 == "multi-label"));

    cli(&["policy", "activate", "built-in"]);
    let back: Vec<_> = names.iter().map(|n| check(&client, n)).collect();
    assert_eq!(back, before, "rolled back");

    // The REST calls themselves, with the instance's signature.
    let jws = sign_for(&client, &key, WriteRequest::ActivatePolicy { policy: "multi-label@0.1.0".into() });
    let body = prereg::service::signed::FlattenedJws::from_compact(&jws).unwrap();
    client.activate_policy(&body).unwrap();
    assert!(check(&client, "a.r1.dept.example.com").0);
}

/// Polls `f` until it is true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_change_made_by_another_process_reaches_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client();
    // Another process on the same data folder, without --server.
    let local = |args: &[&str]| crate::common::run_local(dir.path(), args);
    local(&["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    local(&["register", "--procedure", "routers", "--fqdn", "*.dept.example.com"]);
    assert!(!check(&client, "a.b.dept.example.com").0);
    local(&["policy", "load", prereg_test_artifacts::MULTI_LABEL_POLICY, "--activate"]);
    assert!(
        eventually(Duration::from_secs(10), || client.policy().unwrap().name == "multi-label"),
        "the service still runs {:?}",
        client.policy().unwrap().name
    );
    assert!(check(&client, "a.b.dept.example.com").0);
    // The shadow follows too, and the service compares its enrollments.
    local(&["policy", "shadow", prereg_test_artifacts::EXACT_ONLY_POLICY]);
    assert!(eventually(Duration::from_secs(10), || server.log().contains("shadow policy is now exact-only")));
    let input = prereg::registry::EnrollmentInput {
        procedure: "routers".into(),
        fqdn: "a.b.dept.example.com".into(),
        ..Default::default()
    };
    let front = server.caller_client(&["routers"]);
    assert!(front.decide(&input, prereg::registry::DecisionMode::Enroll).unwrap().allowed);
    let out = local(&["policy", "shadow", "report"]);
    assert!(out.contains("1 enrollments compared, 1 disagreements"), "{out}");
    assert!(out.contains("active: ALLOW matched") && out.contains("shadow: DENY  no-registration"), "{out}");
    // The RA page's policy tab shows the versions and the disagreements
    // (the page's data, read with an officer's access token).
    let page = server.read_as_officer("/ui/main");
    assert!(page.contains("<td>exact-only</td><td>0.1.0</td>") && page.contains("<td>shadow</td>"), "{page}");
    assert!(page.contains("1 enrollments compared, 1 disagreements"), "{page}");
    assert!(page.contains("<td>routers a.b.dept.example.com</td>"), "{page}");
    local(&["policy", "activate", "built-in"]);
    assert!(eventually(Duration::from_secs(10), || client.policy().unwrap().name == "default"));
    assert!(server.log().contains("active policy is now default"), "{}", server.log());
}

/// Issue 19: a reader of one domain pages through its own disagreements:
/// the domain filter runs before the page is cut, so `limit` disagreements
/// come back while more follow, whatever the other domains' in between.
#[test]
fn a_readers_page_of_disagreements_is_cut_after_its_domains_filter() {
    let f = Fixture::new();
    f.procedure("routers", "corp", "scep", &[]);
    f.procedure("lab", "lab", "scep", &[]);
    f.register("routers", "*.dept.example.com").unwrap();
    f.register("lab", "*.lab.example.com").unwrap();
    let multi = load(&f, prereg_test_artifacts::MULTI_LABEL_POLICY);
    set_shadow(&f, Some(&multi));
    // Deep names disagree: three of the lab's first, then two of corp's.
    for name in ["a.b.lab.example.com", "c.d.lab.example.com", "e.f.lab.example.com"] {
        f.enroll(req("lab", name));
    }
    for name in ["a.b.dept.example.com", "c.d.dept.example.com"] {
        f.enroll(req("routers", name));
    }
    let corp = ["corp".to_owned()];
    let page = f.registry.shadow_report_for(Some(&corp), 0, 1).unwrap();
    let fqdns: Vec<&str> = page.disagreements.iter().map(|d| d.request["fqdn"].as_str().unwrap()).collect();
    assert_eq!(fqdns, ["a.b.dept.example.com"], "one of corp's, though three of lab's come first");
    let next = f.registry.shadow_report_for(Some(&corp), page.disagreements[0].id, 1).unwrap();
    let fqdns: Vec<&str> = next.disagreements.iter().map(|d| d.request["fqdn"].as_str().unwrap()).collect();
    assert_eq!(fqdns, ["c.d.dept.example.com"]);
    let all = f.registry.shadow_report_for(None, 0, 1000).unwrap();
    assert_eq!(all.disagreements.len(), 5);
}
