//! The data folder: `prereg.sqlite3` (with its WAL files) and the first
//! officer's key pair, `officer.key` (mode 0600) and `officer.pub`.
//!
//! A node of a cluster keeps its data folder (officer key, sealing key, CA,
//! policy cache) but its store is a PostgreSQL database: `--database URL`,
//! or `database = "postgres://..."` in the folder's `prereg.toml`, which
//! `prereg init --database URL` writes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Default data folder, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "prereg-data";

/// A data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
    /// `--database`, overriding the folder's own setting.
    database_url: Option<String>,
}

/// Where an instance's store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (URL).
    Postgres(String),
}

impl StoreLocation {
    /// For messages: the file, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => crate::store::redact_url(url),
        }
    }

    /// Opens it (creating a SQLite file if needed) and runs pending migrations.
    pub fn open(&self) -> Result<std::sync::Arc<dyn crate::store::Storage>, crate::store::StoreError> {
        Ok(match self {
            StoreLocation::Sqlite(path) => std::sync::Arc::new(crate::store::SqliteStorage::open(path)?),
            StoreLocation::Postgres(url) => crate::store::open_postgres(url)?,
        })
    }
}

/// The folder's settings file.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The store: a `postgres://` URL.
    database: Option<String>,
}

impl DataDir {
    /// The data folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into(), database_url: None }
    }

    /// The same folder with its store at `url` (`--database`), whatever its
    /// settings say.
    pub fn with_database(mut self, url: Option<String>) -> Self {
        self.database_url = url;
        self
    }

    /// The settings file, `prereg.toml`.
    pub fn settings(&self) -> PathBuf {
        self.root.join("prereg.toml")
    }

    /// Where the store is: `--database`, else `database` in `prereg.toml`,
    /// else the folder's SQLite file.
    pub fn store_location(&self) -> io::Result<StoreLocation> {
        let url = match &self.database_url {
            Some(url) => Some(url.clone()),
            None => match fs::read_to_string(self.settings()) {
                Ok(text) => {
                    toml::from_str::<Settings>(&text)
                        .map_err(|e| {
                            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.settings().display()))
                        })?
                        .database
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", self.settings().display()))),
            },
        };
        Ok(match url {
            None => StoreLocation::Sqlite(self.database()),
            Some(url) if crate::store::is_postgres_url(&url) => StoreLocation::Postgres(url),
            Some(url) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("database {url:?}: not a postgres:// URL (the SQLite default needs no setting)"),
                ));
            }
        })
    }

    /// Records `url` as the folder's store in `prereg.toml` (mode 0600: the
    /// URL may hold a password).
    pub fn record_database(&self, url: &str) -> io::Result<()> {
        let text = toml::to_string(&Settings { database: Some(url.to_owned()) })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        write_new_file(&self.settings(), format!("# prereg settings\n{text}").as_bytes(), true)
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

    /// Signed checkpoints of the audit log that `serve` writes
    /// ([`crate::audit::checkpoint`]); `latest.note` is the newest.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
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

impl DataDir {
    /// Tightens the modes of an existing data folder: the folder, its
    /// `imports/` and `ca/` 0700; the database and its WAL, the officer,
    /// sealing and CA keys 0600 (a folder made by an older version, copied,
    /// or restored from a backup may be wider). Removes uploads left in
    /// `imports/` by a process that stopped (they may hold passwords), and
    /// leaves those of a live one.
    /// Returns what it changed, for the log.
    pub fn tighten(&self) -> io::Result<Vec<String>> {
        let mut changed = Vec::new();
        if !self.root.is_dir() {
            return Ok(changed);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mut set = |path: PathBuf, mode: u32| -> io::Result<()> {
                let Ok(meta) = fs::symlink_metadata(&path) else { return Ok(()) };
                if meta.file_type().is_symlink() {
                    return Ok(());
                }
                if meta.permissions().mode() & 0o777 & !mode != 0 {
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                    changed.push(format!("{} -> {mode:o}", path.display()));
                }
                Ok(())
            };
            set(self.root.clone(), 0o700)?;
            set(self.imports(), 0o700)?;
            set(self.root.join("ca"), 0o700)?;
            for file in
                [self.officer_key(), self.sealing_key(), self.root.join("ca/ca.key"), self.root.join("ca/ra.key")]
            {
                set(file, 0o600)?;
            }
            let database = self.database();
            for suffix in ["", "-wal", "-shm", "-journal"] {
                set(PathBuf::from(format!("{}{suffix}", database.display())), 0o600)?;
            }
        }
        if let Ok(entries) = fs::read_dir(self.imports()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix("upload-") else { continue };
                // `upload-<process>-<random>.csv`: another live process's
                // upload (an import it is receiving or running) stays.
                let process = rest.split_once('-').map_or("", |(token, _)| token);
                if crate::process::process_token_is_gone(process) {
                    fs::remove_file(entry.path())?;
                    changed.push(format!("removed {}", entry.path().display()));
                }
            }
        }
        Ok(changed)
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

/// Writes `path` anew, readable by its owner only: a fresh file beside it,
/// renamed over it, so a reader sees the old contents or the new, whole.
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".new");
    let fresh = path.with_file_name(name);
    let _ = fs::remove_file(&fresh);
    write_new_file(&fresh, contents, true)?;
    fs::rename(&fresh, path)
}
