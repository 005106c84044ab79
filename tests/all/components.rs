//! The components built by `host/engine/build.rs`: reproducible, and versioned.

use prereg::builtin::DEFAULT_POLICY_COMPONENT;
use prereg_test_artifacts::HOSTILE_POLICY as HOSTILE_POLICY_PATH;

use crate::common::contains;

#[test]
fn the_built_in_policy_names_no_path_of_the_build_machine() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(!contains(DEFAULT_POLICY_COMPONENT, workspace.to_str().unwrap().as_bytes()));
    if let Some(home) = std::env::var_os("HOME") {
        let cargo_home = std::path::Path::new(&home).join(".cargo");
        assert!(!contains(DEFAULT_POLICY_COMPONENT, cargo_home.to_str().unwrap().as_bytes()));
    }
}

#[test]
fn every_guest_records_the_wit_version_it_was_built_against() {
    let hostile = std::fs::read(HOSTILE_POLICY_PATH).unwrap();
    for component in [DEFAULT_POLICY_COMPONENT, hostile.as_slice()] {
        assert!(contains(component, b"prereg:wit-version0.1.1"), "custom section missing");
    }
}
