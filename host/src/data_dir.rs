//! The data folder: `prereg.sqlite3` (with its WAL files) and the first
//! officer's key pair, `officer.key` (mode 0600) and `officer.pub`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Default data folder, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "prereg-data";

/// A data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("prereg.sqlite3")
    }

    /// The first officer's private key.
    pub fn officer_key(&self) -> PathBuf {
        self.root.join("officer.key")
    }

    /// The first officer's public key.
    pub fn officer_public_key(&self) -> PathBuf {
        self.root.join("officer.pub")
    }

    /// Uploaded import files while they are imported, and the per-row
    /// reports of imports (`<id>.report.jsonl`).
    pub fn imports(&self) -> PathBuf {
        self.root.join("imports")
    }

    /// The instance's sealing key for passwords CMP needs ([`crate::sealing`]).
    pub fn sealing_key(&self) -> PathBuf {
        self.root.join("sealing.key")
    }

    /// Precompiled policies (see [`crate::engine::cache`]).
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Creates the folder (mode 0700) if it does not exist.
    pub fn ensure(&self) -> io::Result<()> {
        if self.root.is_dir() {
            return Ok(());
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.root)
    }
}

/// Writes a new file that must not exist yet, readable by its owner only when
/// `private`.
pub fn write_new_file(path: &Path, contents: &[u8], private: bool) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
