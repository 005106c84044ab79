//! The file guard: notices when the database file or its WAL is replaced,
//! removed or cut short under a running process, and refuses writes then
//! (issue 17).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::StoreError;

/// The identity (device, inode) of the database file and its WAL as this
/// process found them, and the fault it latched once they changed. A file
/// removed or replaced under open connections takes the writes made to it
/// with it: they would be acknowledged and lost at the next start. So every
/// write transaction checks, at its start and before its commit, that the
/// files are still the ones it opened; once they are not, no write is made
/// until a restart looks at the database anew.
#[derive(Default)]
pub(super) struct FileGuard {
    state: Mutex<GuardState>,
}

#[derive(Default)]
pub(super) struct GuardState {
    database: Option<(u64, u64)>,
    wal: Option<(u64, u64)>,
    /// The largest size the WAL was seen at. SQLite never makes it shorter
    /// while a connection is open (it is reused from its start, not cut;
    /// there is no `journal_size_limit` and no TRUNCATE checkpoint), and the
    /// anchor connection is always open: a shorter WAL was cut by someone
    /// else, and the writes it held are gone.
    wal_size: u64,
    fault: Option<String>,
    /// The WAL was just found removed: what it holds is still readable
    /// through the open connections, and is to be checkpointed into the
    /// database file before anything else.
    rescue: bool,
}

/// A file's identity (device, inode) and size, from one `stat`.
pub(super) fn stat(path: &Path) -> Option<((u64, u64), u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let identity = {
        use std::os::unix::fs::MetadataExt as _;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let identity = (0, meta.len());
    Some((identity, meta.len()))
}

pub(super) fn identity(path: &Path) -> Option<(u64, u64)> {
    stat(path).map(|(identity, _)| identity)
}

pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl FileGuard {
    pub(super) fn remember(&self, path: &Path) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.database = identity(path);
        let wal = stat(&wal_path(path));
        state.wal = wal.map(|(identity, _)| identity);
        state.wal_size = wal.map_or(0, |(_, size)| size);
    }

    /// Whether a rescue of the removed WAL is due (once).
    pub(super) fn take_rescue(&self) -> bool {
        std::mem::take(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rescue)
    }

    /// Whether the files are still the ones opened; latches a fault when not.
    pub(super) fn check(&self, path: &Path) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let damaged = |message: String| StoreError::Damaged { path: path.display().to_string(), message };
        if let Some(fault) = &state.fault {
            return Err(damaged(fault.clone()));
        }
        let Some(database) = state.database else { return Ok(()) };
        let fault = match identity(path) {
            None => Some("the database file was removed while the service ran".to_owned()),
            Some(now) if now != database => Some("the database file was replaced while the service ran".to_owned()),
            Some(_) => match (state.wal, stat(&wal_path(path))) {
                (Some(_), None) => {
                    state.rescue = true;
                    Some("its write-ahead log (-wal) was removed while the service ran".to_owned())
                }
                (Some(was), Some((now, _))) if was != now => {
                    Some("its write-ahead log (-wal) was replaced while the service ran".to_owned())
                }
                (None, now) => {
                    state.wal = now.map(|(identity, _)| identity);
                    state.wal_size = now.map_or(0, |(_, size)| size);
                    None
                }
                (Some(_), Some((_, now))) => {
                    if now < state.wal_size {
                        Some(format!(
                            "its write-ahead log (-wal) was cut from {} to {now} bytes while the service ran",
                            state.wal_size
                        ))
                    } else {
                        state.wal_size = now;
                        None
                    }
                }
            },
        };
        match fault {
            Some(fault) => {
                tracing::error!(database = %path.display(), "{fault}: no more writes until a restart checks the database");
                let message = format!("{fault}; no more writes until a restart checks the database");
                state.fault = Some(message.clone());
                Err(damaged(message))
            }
            None => Ok(()),
        }
    }
}
