//! The C ABI through a real C program: `tests/c/decide.c` is compiled with
//! `cc` against `include/prereg.h` and `libprereg_capi.so`, and decides
//! allows and denies through the built-in default policy with callbacks
//! over a static table, under valgrind where it is installed (`.ci/run`
//! installs it and sets `PREREG_REQUIRE_VALGRIND=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// The committed header is the one cbindgen generates from the source.
/// `PREREG_BLESS=1` rewrites it.
#[test]
fn the_committed_header_is_the_generated_one() {
    let generated = std::fs::read_to_string(Path::new(env!("OUT_DIR")).join("prereg.h")).unwrap();
    let committed_path = Path::new(CRATE).join("include/prereg.h");
    if std::env::var_os("PREREG_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/prereg.h differs from what cbindgen generates from src/lib.rs: run \
         `PREREG_BLESS=1 cargo test -p prereg-capi --test c_abi` and commit the header"
    );
}

/// Where cargo put `libprereg_capi.so`. `cargo test` builds it beside the
/// test binary in `deps/` (a dependency of the tests is not copied up to the
/// profile folder); `cargo build` puts it in the profile folder above.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let candidates = [deps.clone(), deps.parent().unwrap().to_path_buf()];
    candidates
        .iter()
        .find(|dir| dir.join("libprereg_capi.so").exists())
        .cloned()
        .unwrap_or_else(|| panic!("libprereg_capi.so is in neither {} nor its parent", deps.display()))
}

fn compile(out: &Path) -> PathBuf {
    let lib = library_dir();
    let program = out.join("decide");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(Path::new(CRATE).join("include"))
        .arg(Path::new(CRATE).join("tests/c/decide.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lprereg_capi", "-o"])
        .arg(&program)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed to build tests/c/decide.c against include/prereg.h");
    program
}

const EXPECTED: &[&str] = &[
    "router5 with its password: ALLOW matched (registration 1)",
    "router5 with a wrong password: DENY bad-password (registration 1)",
    "printer1 with its serial: ALLOW matched (registration 2)",
    "printer1 with another serial: DENY serial-mismatch",
    "laptop9, never registered: DENY no-registration (registration 0)",
    "router5 while storage fails: DENY policy-error (registration 0, host failed)",
    "router5 offered from another domain: DENY policy-error (registration 0)",
    "router5 offered in no known state: DENY policy-error (registration 0, host failed)",
    "garbage policy: refused",
    "NULL host: refused (host is NULL)",
    "0 unexpected",
];

fn check_output(stdout: &str) {
    for line in EXPECTED {
        assert!(stdout.lines().any(|l| l.starts_with(line)), "no line {line:?} in:\n{stdout}");
    }
}

#[test]
fn a_c_host_decides_through_the_default_policy() {
    let out = tempfile::tempdir().unwrap();
    let program = compile(out.path());
    let run = Command::new(&program).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    check_output(&stdout);
}

/// The same program under valgrind: no invalid read or write, no leak.
#[test]
fn the_c_host_runs_clean_under_valgrind() {
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("PREREG_REQUIRE_VALGRIND").is_none(),
            "PREREG_REQUIRE_VALGRIND is set but valgrind is not installed"
        );
        eprintln!("skipped: valgrind is not installed (apt-get install valgrind)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let program = compile(out.path());
    let log = out.path().join("valgrind.log");
    let run = Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
        ])
        // One documented false positive in wasmparser (see the file).
        .arg(format!("--suppressions={CRATE}/tests/valgrind.supp"))
        .arg(format!("--log-file={}", log.display()))
        .arg(&program)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(run.status.success(), "valgrind found errors:\n{report}\n{stdout}");
    check_output(&stdout);
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
}
