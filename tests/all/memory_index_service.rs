//! A running service decides on registrations another process just wrote
//! (the in-memory index catches up in the decision's own transaction), also
//! right after answering dry runs from memory (`prereg_dry_runs_from_memory`).

use prereg::registry::DecisionMode;

use crate::common::Server;

#[test]
fn a_running_service_decides_on_what_another_process_just_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client();
    let local = |args: &[&str]| crate::common::run_local(dir.path(), args).trim().to_owned();
    let check = |fqdn: &str| {
        let input =
            prereg::registry::EnrollmentInput { procedure: "routers".into(), fqdn: fqdn.into(), ..Default::default() };
        client.decide(&input, DecisionMode::DryRun).unwrap()
    };
    local(&["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    // No waiting anywhere below: the decision catches the index up in its
    // own transaction, before the service's background refresh runs.
    let id = local(&["register", "--procedure", "routers", "--fqdn", "*.dept.example.com"]);
    // Asked again, the service answers from memory (nothing was committed
    // since): what another process commits next must still be seen at once.
    for _ in 0..3 {
        let r = check("a.dept.example.com");
        assert_eq!((r.reason.as_str(), r.registration.map(|i| i.to_string())), ("matched", Some(id.clone())));
    }
    let from_memory = || {
        let metrics = server.read_as_officer("/metrics");
        let line = metrics.lines().find(|l| l.starts_with("prereg_dry_runs_from_memory ")).unwrap_or_default();
        line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or_else(|| panic!("{metrics}"))
    };
    assert!(from_memory() >= 1, "repeated dry runs are answered from memory");
    local(&["disable", &id]);
    assert_eq!(check("a.dept.example.com").reason, "no-registration");

    // A bulk import by another process, then decisions on its rows.
    let csv: String = std::iter::once("fqdn,ip,serial\n".to_owned())
        .chain((0..300).map(|i| format!("host{i}.fleet.example.com,,\n")))
        .collect();
    std::fs::write(dir.path().join("fleet.csv"), csv).unwrap();
    local(&["import", "fleet.csv", "--procedure", "routers"]);
    assert_eq!(check("host299.fleet.example.com").reason, "matched");
    assert_eq!(check("host300.fleet.example.com").reason, "no-registration");
    assert!(server.log().contains("in-memory candidate index built"), "{}", server.log());
}
