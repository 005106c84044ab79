//! `prereg policy new NAME`: a new policy crate that builds with `cargo
//! build --release --target wasm32-wasip2` as it is, and passes its own test
//! cases: Cargo.toml (the SDK and SPEC.md's rules as path dependencies on a
//! prereg source tree), rust-toolchain.toml (the toolchain and the target),
//! src/lib.rs (about thirty lines), cases.toml, and prereg's Cargo.lock, so the
//! policy builds with the dependency versions prereg was tested with.

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../scaffold/Cargo.toml.in");
const TOOLCHAIN: &str = include_str!("../scaffold/rust-toolchain.toml.in");
const LIB_RS: &str = include_str!("../scaffold/lib.rs.in");
const CASES: &str = include_str!("../scaffold/cases.toml.in");
const GITIGNORE: &str = include_str!("../scaffold/gitignore.in");

/// The toolchain prereg is built with (`rust-toolchain.toml`).
const CHANNEL: &str = "1.95.0";

/// Why a policy crate could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a crate name.
    #[error("{0:?} is not a usable policy name: 1 to 64 lowercase letters, digits and '-', starting with a letter")]
    Name(String),
    /// The folder exists.
    #[error("{0} already exists; choose another --dir")]
    Exists(String),
    /// No prereg source tree.
    #[error("{0} is not a prereg source tree (no guest/sdk/Cargo.toml); pass --prereg PATH")]
    NoSource(String),
    /// Writing.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// The prereg source tree this binary was built from, if it is still there.
pub fn default_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Writes a new policy crate `name` into `dir`, depending on the SDK of the
/// prereg tree at `source`. Returns the files written.
pub fn scaffold(name: &str, dir: &Path, source: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::Name(name.into()));
    }
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.display().to_string()));
    }
    let source = source.canonicalize().unwrap_or_else(|_| source.to_path_buf());
    if !source.join("guest/sdk/Cargo.toml").is_file() {
        return Err(ScaffoldError::NoSource(source.display().to_string()));
    }
    let crate_name = name.replace('-', "_");
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<String>()
        + "Policy";
    let fill = |template: &str| {
        template
            .replace("{{", "\u{1}")
            .replace("}}", "\u{2}")
            .replace("{name}", name)
            .replace("{crate_name}", &crate_name)
            .replace("{type_name}", &type_name)
            .replace("{prereg}", &source.display().to_string())
            .replace("{channel}", CHANNEL)
            .replace('\u{1}', "{")
            .replace('\u{2}', "}")
    };
    let mut files = vec![
        (dir.join("Cargo.toml"), fill(CARGO_TOML)),
        (dir.join("rust-toolchain.toml"), fill(TOOLCHAIN)),
        (dir.join("src/lib.rs"), fill(LIB_RS)),
        (dir.join("cases.toml"), fill(CASES)),
        (dir.join(".gitignore"), fill(GITIGNORE)),
    ];
    if let Ok(lock) = std::fs::read_to_string(source.join("Cargo.lock")) {
        files.push((dir.join("Cargo.lock"), lock));
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let io = |error| ScaffoldError::Io { path: path.display().to_string(), error };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
        written.push(path);
    }
    Ok(written)
}
