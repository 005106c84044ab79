//! Signed checkpoints of the audit log, written by `prereg serve` to a folder
//! outside the database (`--checkpoint-dir`, default the data folder's
//! `checkpoints/`):
//! - `latest.note`, which `prereg audit verify` checks the log against by
//!   default, follows the log: it is written anew (synced, then renamed into
//!   place) within [`FOLLOW_EVERY`] of any commit that grew the log, by this
//!   process or any other, so a log later cut short (a lost WAL, a restored
//!   file, someone with write access to the database) is reported even for
//!   its newest records (issue 17, item 3);
//! - `<size>.note`, kept every `--checkpoint-seconds` when the log grew.
//!
//! A copy kept elsewhere (a backup, another machine) is what catches a log
//! cut short by someone who controls the data folder too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Registry;

/// How often the log's head is looked at (and the stop flag).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The thread that writes checkpoints.
pub struct CheckpointWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CheckpointWriter {
    /// Starts following `registry`'s log in `dir`: `latest.note` at once and
    /// whenever the log grew, `<size>.note` every `every` when it grew.
    pub fn start(registry: Registry, dir: PathBuf, every: Duration) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("prereg-checkpoints".into()).spawn(move || {
            let mut written = Written { latest: None, kept: None, kept_at: None, failing: None };
            while !flag.load(Ordering::Relaxed) {
                written.step(&registry, &dir, every);
                std::thread::sleep(FOLLOW_EVERY);
            }
        })?;
        Ok(CheckpointWriter { stop, thread: Some(thread) })
    }

    /// Stops the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the checkpoint thread has written.
struct Written {
    /// The size `latest.note` counts.
    latest: Option<u64>,
    /// The size of the newest `<size>.note`, and when it was written.
    kept: Option<u64>,
    kept_at: Option<Instant>,
    /// The last failure logged (each is logged once, not four times a second).
    failing: Option<String>,
}

impl Written {
    fn step(&mut self, registry: &Registry, dir: &Path, every: Duration) {
        match self.write(registry, dir, every) {
            Ok(()) => {
                if self.failing.take().is_some() {
                    tracing::info!(dir = %dir.display(), "audit checkpoints are written again");
                }
            }
            Err(e) => {
                if self.failing.as_deref() != Some(e.as_str()) {
                    tracing::warn!(dir = %dir.display(), "cannot write an audit checkpoint: {e}");
                    self.failing = Some(e);
                }
            }
        }
    }

    fn write(&mut self, registry: &Registry, dir: &Path, every: Duration) -> Result<(), String> {
        let (size, note) = registry.audit_checkpoint().map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| e.to_string();
        if self.latest != Some(size) {
            write_synced(&dir.join("latest.note"), &note).map_err(io)?;
            self.latest = Some(size);
            tracing::debug!(size, "audit checkpoint written");
        }
        if self.kept != Some(size) && self.kept_at.is_none_or(|t| t.elapsed() >= every) {
            write_synced(&dir.join(format!("{size}.note")), &note).map_err(io)?;
            self.kept = Some(size);
            self.kept_at = Some(Instant::now());
        }
        Ok(())
    }
}

/// Writes `path` whole: a synced file beside it, renamed over it.
fn write_synced(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".new");
    let temporary = path.with_file_name(name);
    {
        let mut file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut file, contents.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
