//! `prereg bench`, the load harness, through the binary: it decides from
//! several threads while swapping the policy, and reports what it measured
//! (as text, JSON and an SVG chart).

use crate::common::prereg_command;

#[test]
fn the_bench_harness_decides_under_swaps_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = prereg_command(dir.path())
        .args(["bench", "--registrations", "3000", "--threads", "2", "--seconds", "1.5", "--swap-every", "0.3"])
        .args(["--scaling", "--json", "report.json", "--plot", "chart.svg"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in [
        "dataset        3000 registrations",
        "restart ",
        "index          3000 registrations",
        "scaling ",
        "in swaps ",
        "outside swaps ",
        "peak memory",
        "chart          chart.svg",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from {stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(report["threads"], 2);
    let decisions = report["decisions"].as_u64().unwrap();
    assert!(decisions > 100, "{report}");
    let swaps = report["swaps"].as_u64().unwrap();
    assert!((3..=5).contains(&swaps), "{report}");
    let (inside, outside) = (&report["in_swap_windows"], &report["outside_swap_windows"]);
    assert_eq!(inside["count"].as_u64().unwrap() + outside["count"].as_u64().unwrap(), decisions);
    assert!(inside["count"].as_u64().unwrap() > 0, "decisions ran during swaps: {report}");
    let latency = &report["latency"];
    assert!(latency["p50"].as_f64().unwrap() > 0.0);
    assert!(latency["p50"].as_f64() <= latency["p99"].as_f64() && latency["p99"].as_f64() <= latency["p999"].as_f64());
    assert!(report["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    // The in-memory index, as the service uses it: its size and build time.
    let index = &report["index"];
    assert_eq!(index["registrations"], 3000, "{report}");
    assert!(index["heap_bytes"].as_u64().unwrap() > 3000 * 64, "{report}");
    assert!(index["build_seconds"].as_f64().unwrap() > 0.0);
    // --scaling ran one thread first, on the same data.
    let one = report["one_thread_decisions_per_second"].as_f64().unwrap();
    let ratio = report["scaling"].as_f64().unwrap();
    assert!(one > 0.0 && (ratio - report["decisions_per_second"].as_f64().unwrap() / one).abs() < 1e-6, "{report}");
    // The chart: latency over time with the swaps marked, and a histogram.
    let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("policy swap") && svg.contains("latency: p50"), "{svg:.300}");
    assert!(svg.matches("<rect").count() > 10, "histogram bars");
    // Without the index: the storage index answers, and the report says so.
    let out = prereg_command(dir.path())
        .args(["bench", "--registrations", "500", "--threads", "1", "--seconds", "0.3", "--store-lookups"])
        .args(["--allocation", "on-demand", "--json", "plain.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let plain: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plain.json")).unwrap()).unwrap();
    assert!(plain["index"].is_null() && plain["failures"] == 0 && plain["decisions"].as_u64() > Some(10), "{plain}");
    // Bad input names the option.
    let out = prereg_command(dir.path()).args(["bench", "--seconds", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seconds 0"));
}

/// `prereg bench --database postgres://...`: the same harness with the
/// dataset in PostgreSQL; a database that holds an instance is refused.
#[test]
fn the_bench_harness_runs_on_postgres() {
    let Some(db) = crate::pg::TestDatabase::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bench = |registrations: &str| {
        prereg_command(dir.path())
            .args(["--database", &db.url, "bench", "--registrations", registrations, "--threads", "2"])
            .args(["--seconds", "1", "--json", "report.json"])
            .output()
            .unwrap()
    };
    let out = bench("2000");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("dataset        2000 registrations") && stdout.contains("(postgres://"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["failures"], 0, "{report}");
    assert!(report["decisions"].as_u64().unwrap() > 100, "{report}");
    assert_eq!(report["index"]["registrations"], 2000);

    let again = bench("10");
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

/// Issue 21: `prereg bench --http` drives a running service as a CA caller,
/// dry runs and real enrollments mixed, and what it reports is what the
/// service did: as many `enroll` audit records as enrollments answered.
#[test]
fn the_bench_harness_drives_a_running_service_over_http() {
    let dir = tempfile::tempdir().unwrap();
    // Half the enrollments are denied: the per-address failure limit would
    // answer 429 (as it should for a device) before the bench is through.
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--failure-burst", "100000000"];
    let server = crate::common::Server::start_with(dir.path(), "server.log", &args);
    let (key, client) = (server.admin_key(), server.client());
    let procedure = crate::common::create_procedure("routers", "corp", "scep");
    client.submit(&crate::common::sign_for(&client, &key, procedure.clone()), &procedure).unwrap();
    let wildcard = crate::common::create_registration("routers", "*.fleet.example.com");
    client.submit(&crate::common::sign_for(&client, &key, wildcard.clone()), &wildcard).unwrap();
    let mut names = String::from("# half registered\n");
    for i in 0..200 {
        names.push_str(&format!("d{i}.fleet.example.com\nd{i}.elsewhere.example.com\n"));
    }
    std::fs::write(dir.path().join("names.txt"), names).unwrap();
    let secret = server.add_caller("bench", &["routers"]);
    let bench = |secret: &str, extra: &[&str]| {
        prereg_command(dir.path())
            .env("PREREG_CALLER_SECRET", secret)
            .args(["bench", "--http", &server.url, "--procedure", "routers", "--names", "names.txt"])
            .args(["--connections", "4", "--threads", "1", "--seconds", "1.5"])
            .args(extra)
            .output()
            .unwrap()
    };
    let audited = || crate::common::audit_log(&client).iter().filter(|r| r.action == "enroll").count();
    let before = audited();
    let out = bench(&secret, &["--enroll-percent", "25", "--json", "http.json", "--plot", "http.svg"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in
        ["target         ", "25% enrollments", "decisions ", "answers        HTTP 200 ", "dry runs ", "enrollments "]
    {
        assert!(stdout.contains(line), "{line:?} missing from {stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("http.json")).unwrap()).unwrap();
    let mix = &report["http"];
    let (checks, enrolls) = (mix["checks"].as_u64().unwrap(), mix["enrolls"].as_u64().unwrap());
    assert!(checks > 50 && enrolls > 10, "{report}");
    assert_eq!(report["decisions"].as_u64().unwrap(), checks + enrolls);
    assert_eq!(report["failures"], 0, "{report}");
    // About half the names are registered, and every answer says which.
    let allowed = mix["allowed"].as_u64().unwrap();
    assert!(allowed > (checks + enrolls) / 4 && allowed < (checks + enrolls) * 3 / 4, "{report}");
    // The enrollments were real: each left its audit record.
    assert_eq!(audited() - before, enrolls as usize);
    assert!(std::fs::read_to_string(dir.path().join("http.svg")).unwrap().starts_with("<svg"));

    // The attacker's side: a wrong secret is answered 401 every time; the
    // bench says so, fails, and nothing was decided or audited.
    let before = audited();
    let out = bench("not-the-secret", &["--enroll-percent", "100"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("no request was answered") && stderr.contains("HTTP 401"), "{stderr}");
    assert_eq!(audited(), before);
    // What it cannot drive is refused, naming the option.
    let https = prereg_command(dir.path())
        .env("PREREG_CALLER_SECRET", &secret)
        .args(["bench", "--http", "https://127.0.0.1:1", "--procedure", "routers", "--names", "names.txt"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&https.stderr).contains("--http \"https://127.0.0.1:1\""), "{https:?}");
}
