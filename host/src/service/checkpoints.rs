//! Signed checkpoints of the audit log, written by `prereg serve` to a folder
//! outside the database (`--checkpoint-dir`, default the data folder's
//! `checkpoints/`) every `--checkpoint-seconds` when the log grew:
//! `<size>.note`, and `latest.note`, which `prereg audit verify` checks the
//! log against by default. A copy kept elsewhere (a backup, another machine)
//! is what catches a log cut short by someone who controls the data folder too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Registry;

/// The longest wait between two checks of the stop flag.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// The thread that writes checkpoints.
pub struct CheckpointWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CheckpointWriter {
    /// Starts writing checkpoints of `registry`'s log to `dir` every `every`
    /// (the first at once).
    pub fn start(registry: Registry, dir: PathBuf, every: Duration) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("prereg-checkpoints".into()).spawn(move || {
            let mut written: Option<u64> = None;
            let mut last: Option<Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                if last.is_none_or(|t| t.elapsed() >= every) {
                    last = Some(Instant::now());
                    match write_checkpoint(&registry, &dir, written) {
                        Ok(Some(size)) => written = Some(size),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(dir = %dir.display(), "cannot write an audit checkpoint: {e}"),
                    }
                }
                std::thread::sleep(WAIT_SLICE);
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

/// Writes a checkpoint unless the log has not grown since `written`;
/// returns the size written.
fn write_checkpoint(registry: &Registry, dir: &Path, written: Option<u64>) -> Result<Option<u64>, String> {
    let (size, note) = registry.audit_checkpoint().map_err(|e| e.to_string())?;
    if written == Some(size) {
        return Ok(None);
    }
    let io = |e: std::io::Error| e.to_string();
    std::fs::write(dir.join(format!("{size}.note")), &note).map_err(io)?;
    let temporary = dir.join("latest.note.new");
    std::fs::write(&temporary, &note).map_err(io)?;
    std::fs::rename(&temporary, dir.join("latest.note")).map_err(io)?;
    tracing::debug!(size, "audit checkpoint written");
    Ok(Some(size))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
