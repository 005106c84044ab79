//! The `prereg` binary, end to end: the README walkthrough, exit codes, JSON
//! output, and errors as one clear line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::prereg_command;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Cli { dir: tempfile::tempdir().unwrap() }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = prereg_command(self.dir.path());
        cmd.args(args).env("PREREG_DATA", self.data());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and expects exit code `code`; returns standard output.
    fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "prereg {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn stderr(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "prereg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    }

    fn initialised() -> Self {
        let cli = Cli::new();
        let out = cli.expect(&["init"], 0);
        assert!(out.contains("first officer \"admin\""), "{out}");
        cli.expect(&["procedure", "add", "routers", "--domain", "D", "--protocol", "scep"], 0);
        cli.expect(&["procedure", "add", "routers-e", "--domain", "E", "--protocol", "scep"], 0);
        cli
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn walkthrough_and_spec_examples() {
    let cli = Cli::initialised();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.data().join("officer.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let id = cli.expect(&["register", "--procedure", "routers", "--fqdn", "*.dept.example.com"], 0);
    assert_eq!(id.trim(), "1");
    cli.expect(&["register", "--procedure", "routers", "--fqdn", "serial-*.example.com"], 0);
    cli.expect(&["register", "--procedure", "routers", "--fqdn", "router1.example.com"], 0);

    let check = |args: &[&str], code: i32| json(&cli.expect(&[&["check", "--json"], args].concat(), code));
    let r = check(&["--procedure", "routers", "--fqdn", "router5.dept.example.com"], 0);
    assert_eq!(
        (r["allowed"].as_bool(), r["reason"].as_str(), r["registration"].as_u64()),
        (Some(true), Some("matched"), Some(1))
    );
    assert_eq!(r["pattern"], "*.dept.example.com");
    assert_eq!(r["policy"]["name"], "default");
    assert_eq!(r["policy"]["sha256"].as_str().unwrap().len(), 64);
    let r = check(&["--procedure", "routers", "--fqdn", "serial-1234.example.com"], 0);
    assert_eq!(r["pattern"], "serial-*.example.com");
    let r =
        check(&["--procedure", "routers", "--fqdn", "router1.example.com", "--ip", "10.1.2.3", "--serial", "FTX1"], 0);
    assert_eq!(r["pattern"], "router1.example.com");
    let r = check(&["--procedure", "routers-e", "--fqdn", "router1.example.com"], 1);
    assert_eq!((r["allowed"].as_bool(), r["reason"].as_str()), (Some(false), Some("no-registration")));
    assert!(r["registration"].is_null() && r["pattern"].is_null());

    // enroll counts: the exact registration is one-time.
    cli.expect(&["enroll", "--procedure", "routers", "--fqdn", "router1.example.com"], 0);
    let out = cli.expect(&["enroll", "--procedure", "routers", "--fqdn", "router1.example.com"], 1);
    assert!(out.starts_with("DENY no-registration"), "{out}");
    let shown = json(&cli.expect(&["show", "3", "--json"], 0));
    assert_eq!((shown["state"].as_str(), shown["enrollments"].as_u64()), (Some("used"), Some(1)));
    let listed = json(&cli.expect(&["list", "--domain", "D", "--json"], 0));
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert!(cli.expect(&["list"], 0).contains("serial-*.example.com"));

    let out = cli.expect(&["audit", "verify"], 0);
    assert!(out.contains("intact"), "{out}");
    let audit = json(&cli.expect(&["audit", "list", "--json"], 0));
    assert!(audit.as_array().unwrap().iter().any(|r| r["action"] == "enroll" && r["outcome"] == "denied"));
    let info = cli.expect(&["policy", "info"], 0);
    assert!(info.contains("prereg:policy@0.1.1") && info.contains("built-in"), "{info}");
}

#[test]
fn usage_and_input_errors_exit_2_with_one_clear_line() {
    let cli = Cli::initialised();
    for (args, needle) in [
        (vec!["register", "--procedure", "routers", "--fqdn", "*.com"], "invalid fqdn: \"*.com\""),
        (vec!["register", "--procedure", "nope", "--fqdn", "a.example.com"], "unknown token procedure \"nope\""),
        (vec!["register", "--procedure", "routers", "--fqdn", "a.example.com", "--ip", "300.1.1.1"], "invalid ip"),
        (
            vec!["register", "--procedure", "routers", "--fqdn", "a.example.com", "--valid-days", "0"],
            "invalid valid-days",
        ),
        (vec!["check", "--procedure", "routers"], "--fqdn"),
        (vec!["show", "abc"], "invalid value 'abc'"),
        (vec!["show", "42"], "registration 42 not found"),
        (
            vec!["procedure", "add", "x", "--domain", "D", "--protocol", "cmp", "--require-preregistration", "false"],
            "always require",
        ),
        (
            vec!["register", "--procedure", "routers", "--fqdn", "a.example.com", "--password-file", "/nonexistent"],
            "--password-file /nonexistent",
        ),
        (vec!["--key", "/nonexistent.key", "disable", "1"], "officer key /nonexistent.key"),
    ] {
        let err = cli.stderr(&args, 2);
        assert!(err.contains(needle), "prereg {args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
        if !err.starts_with("error:") {
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        }
    }
    // A duplicate, through another procedure of the same domain... (exit 2)
    cli.expect(&["register", "--procedure", "routers", "--fqdn", "dup.example.com"], 0);
    let err = cli.stderr(&["register", "--procedure", "routers", "--fqdn", "DUP.example.com."], 2);
    assert!(err.contains("already exists"), "{err}");
    // No data folder.
    let fresh = Cli::new();
    let err = fresh.stderr(&["list"], 2);
    assert!(err.contains("prereg init"), "{err}");
    // A second init refuses.
    let err = cli.stderr(&["init"], 2);
    assert!(err.contains("already initialised"), "{err}");
}

#[test]
fn passwords_from_stdin_and_files() {
    let cli = Cli::initialised();
    let out = cli.run_with_stdin(
        &["register", "--procedure", "routers", "--fqdn", "pw.example.com", "--password-file", "-"],
        "hunter2\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A dry run never checks a password: the same answer for a right and a
    // wrong one (no online oracle), saying that an enrollment would check it.
    let right = cli.run_with_stdin(
        &["check", "--procedure", "routers", "--fqdn", "pw.example.com", "--password-file", "-"],
        "hunter2\n",
    );
    assert_eq!(right.status.code(), Some(1), "{}", String::from_utf8_lossy(&right.stdout));
    let right = String::from_utf8_lossy(&right.stdout).into_owned();
    assert!(right.starts_with("DENY password-required") && right.contains("an enrollment would check it"), "{right}");
    let wrong = cli.dir.path().join("wrong.txt");
    std::fs::write(&wrong, "hunter3\n").unwrap();
    let wrong_file = wrong.to_str().unwrap();
    for _ in 0..10 {
        let out = cli
            .expect(&["check", "--procedure", "routers", "--fqdn", "pw.example.com", "--password-file", wrong_file], 1);
        assert_eq!(out, right);
    }
    let out = cli.expect(&["check", "--procedure", "routers", "--fqdn", "pw.example.com"], 1);
    assert!(out.starts_with("DENY password-required"), "{out}");
    // Only an enrollment checks it, and a failure counts toward the lockout.
    let out =
        cli.expect(&["enroll", "--procedure", "routers", "--fqdn", "pw.example.com", "--password-file", wrong_file], 1);
    assert!(out.starts_with("DENY bad-password"), "{out}");
    let shown = cli.expect(&["show", "1", "--json"], 0);
    assert!(shown.contains("\"failed_attempts\": 1"), "{shown}");
    let out = cli.run_with_stdin(
        &["enroll", "--procedure", "routers", "--fqdn", "pw.example.com", "--password-file", "-"],
        "hunter2\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn policy_flag_replaces_the_built_in_policy() {
    let cli = Cli::initialised();
    cli.expect(&["register", "--procedure", "routers", "--fqdn", "trap.example.com"], 0);
    let hostile = prereg_test_artifacts::HOSTILE_POLICY;
    let info = json(&cli.expect(&["--policy", hostile, "policy", "info", "--json"], 0));
    assert_eq!((info["name"].as_str(), info["source"].as_str()), (Some("hostile"), Some(hostile)));
    let r =
        json(&cli.expect(
            &["--policy", hostile, "check", "--procedure", "routers", "--fqdn", "trap.example.com", "--json"],
            1,
        ));
    assert_eq!(
        (r["allowed"].as_bool(), r["reason"].as_str(), r["policy"]["name"].as_str()),
        (Some(false), Some("policy-error"), Some("hostile"))
    );
    // PREREG_POLICY does the same.
    let out = cli.command(&["policy", "info"]).env("PREREG_POLICY", hostile).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("hostile"));
    // Without it, the default policy allows.
    cli.expect(&["check", "--procedure", "routers", "--fqdn", "trap.example.com"], 0);
    // A file that is not a policy component: exit 2, naming the file.
    let bogus = cli.dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap();
    let err = cli.stderr(&["--policy", bogus.to_str().unwrap(), "policy", "info"], 2);
    assert!(err.contains("bogus.wasm") && err.contains("not a usable prereg:policy@0.1.x component"), "{err}");
    let err = cli.stderr(&["--policy", "/nonexistent.wasm", "policy", "info"], 2);
    assert!(err.contains("cannot read policy /nonexistent.wasm"), "{err}");
}

#[test]
fn a_second_officer_signs_with_its_own_key() {
    let cli = Cli::initialised();
    let key = cli.dir.path().join("alice.key");
    cli.expect(&["officer", "keygen", "--out", key.to_str().unwrap(), "--algorithm", "es256"], 0);
    let public = cli.dir.path().join("alice.key.pub");
    cli.expect(&["officer", "add", "alice", "--public-key", public.to_str().unwrap(), "--domains", "D"], 0);
    let k = key.to_str().unwrap();
    cli.expect(&["--key", k, "register", "--procedure", "routers", "--fqdn", "alice.example.com"], 0);
    let err = cli.stderr(&["--key", k, "register", "--procedure", "routers-e", "--fqdn", "alice.example.com"], 2);
    assert!(err.contains("may not act in domain \"E\""), "{err}");
    assert!(cli.expect(&["officer", "list"], 0).contains("ES256"));
}

#[test]
fn audit_verify_names_the_first_bad_record() {
    let cli = Cli::initialised();
    cli.expect(&["register", "--procedure", "routers", "--fqdn", "a.example.com"], 0);
    cli.expect(&["register", "--procedure", "routers", "--fqdn", "b.example.com"], 0);
    cli.expect(&["enroll", "--procedure", "routers", "--fqdn", "a.example.com"], 0);
    cli.expect(&["audit", "verify"], 0);
    flip_a_byte(&cli.data().join("prereg.sqlite3"), 4);
    let err = cli.stderr(&["audit", "verify"], 1);
    assert!(err.contains("audit chain broken at record 4"), "{err}");
}

/// Changes one byte of the `object` column of audit record `seq`, as an
/// attacker with write access to the file would.
fn flip_a_byte(db: &Path, seq: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let object: String = conn.query_row("SELECT object FROM audit WHERE seq = ?1", [seq], |r| r.get(0)).unwrap();
    let mut bytes = object.into_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    conn.execute(
        "UPDATE audit SET object = ?2 WHERE seq = ?1",
        rusqlite::params![seq, String::from_utf8(bytes).unwrap()],
    )
    .unwrap();
}
