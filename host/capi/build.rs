//! Generates the C header, `OUT_DIR/prereg.h`, from `src/lib.rs` with
//! cbindgen. The header committed as `include/prereg.h` is checked against
//! it by `tests/c_abi.rs` (`PREREG_BLESS=1` rewrites it).

// A build script reports failure by panicking with a message: that is its error path.
#![allow(clippy::expect_used)]

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("generate the C header from src/lib.rs")
        .write_to_file(out_dir.join("prereg.h"));
}
