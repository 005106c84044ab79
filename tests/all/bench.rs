//! `prereg bench`, the load harness, through the binary: it decides from
//! several threads while swapping the policy, and reports what it measured.

use crate::common::prereg_command;

#[test]
fn the_bench_harness_decides_under_swaps_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = prereg_command(dir.path())
        .args(["bench", "--registrations", "3000", "--threads", "2", "--seconds", "1.5", "--swap-every", "0.3"])
        .args(["--json", "report.json"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in ["dataset        3000 registrations", "restart ", "in swaps ", "outside swaps ", "peak memory"] {
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
    // Bad input names the option.
    let out = prereg_command(dir.path()).args(["bench", "--seconds", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seconds 0"));
}
