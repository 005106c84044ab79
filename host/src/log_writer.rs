//! Log lines reach standard error through a thread of their own.
//!
//! `prereg serve` logs a line for every request. Written where it is made,
//! each line cost the serving thread a `write` system call, and a reader of
//! standard error that stalls (a full pipe to a log collector, a terminal
//! scrolled back) stalled every request behind it. Here the serving thread
//! only formats the line and appends it to a buffer; every
//! [`WRITE_EVERY`] the writer thread writes what has accumulated in one call
//! (and `main` writes the rest when the command ends, waiting at most
//! [`LAST_WRITE_WAIT`] for it). No thread is woken per
//! line: on two cores, a wake-up per request cost more than the write it
//! saved. When standard error is not read fast enough, lines past
//! [`PENDING_BYTES`] are dropped rather than waited for, and the writer says
//! how many when it next writes. The audit log is in the store, not here:
//! nothing a decision needs is ever dropped.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How often the writer thread writes what has accumulated.
const WRITE_EVERY: Duration = Duration::from_millis(20);
/// Bytes of lines waiting for the writer, at most; lines past it are
/// dropped and counted.
pub const PENDING_BYTES: usize = 4 << 20;

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    text: Vec<u8>,
    dropped: u64,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Held while writing, so that what is written keeps its order.
    writing: Mutex<()>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes what has accumulated, with one call.
    fn write_pending(&self, to: &mut dyn Write) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut text, dropped) = {
            let mut pending = self.pending();
            (std::mem::take(&mut pending.text), std::mem::take(&mut pending.dropped))
        };
        if dropped > 0 {
            let _ = writeln!(
                text,
                "prereg: {dropped} log line(s) dropped: standard error was not read as fast as lines were logged"
            );
        }
        if !text.is_empty() {
            // Nowhere to report a failure to write the log: the lines are lost.
            let _ = to.write_all(&text);
        }
    }
}

/// The [`MakeWriter`] of the log: lines accumulate for the writer thread.
#[derive(Clone)]
pub struct BufferedStderr {
    shared: Arc<Shared>,
    /// No writer thread could be started: lines are written where made.
    direct: bool,
}

/// Held by `main`: dropping it writes the lines still waiting.
pub struct Flush {
    shared: Arc<Shared>,
}

/// Starts the writer thread. If none can be started, lines are written where
/// they are made, as before.
pub fn start() -> (BufferedStderr, Flush) {
    let shared = Arc::new(Shared::default());
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new().name("prereg-log".into()).spawn(move || {
            loop {
                std::thread::sleep(WRITE_EVERY);
                shared.write_pending(&mut std::io::stderr().lock());
            }
        })
    };
    (BufferedStderr { shared: shared.clone(), direct: writer.is_err() }, Flush { shared })
}

/// How long the end of a command waits for its last lines to be written (a
/// standard error nobody reads would hold it forever).
const LAST_WRITE_WAIT: Duration = Duration::from_secs(2);

impl Drop for Flush {
    fn drop(&mut self) {
        let shared = self.shared.clone();
        let (written, done) = std::sync::mpsc::sync_channel(1);
        let writer = std::thread::Builder::new().name("prereg-log-end".into()).spawn(move || {
            shared.write_pending(&mut std::io::stderr().lock());
            let _ = written.send(());
        });
        if writer.is_ok() {
            let _ = done.recv_timeout(LAST_WRITE_WAIT);
        } else {
            self.shared.write_pending(&mut std::io::stderr().lock());
        }
    }
}

/// One log line being formatted; handed over when dropped.
pub struct Line<'a> {
    text: Vec<u8>,
    to: &'a BufferedStderr,
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line { text: Vec::new(), to: self }
    }
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        if self.to.direct {
            let _ = std::io::stderr().lock().write_all(&self.text);
            return;
        }
        let mut pending = self.to.shared.pending();
        if pending.text.len() + self.text.len() > PENDING_BYTES {
            pending.dropped += 1;
        } else {
            pending.text.extend_from_slice(&self.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> BufferedStderr {
        BufferedStderr { shared: Arc::new(Shared::default()), direct: false }
    }

    #[test]
    fn lines_keep_their_order_and_are_written_with_one_call() {
        let stderr = queued();
        for i in 0..100 {
            let mut line = stderr.make_writer();
            // A line may come in several writes: it stays whole.
            write!(line, "line ").unwrap_or_default();
            writeln!(line, "{i}").unwrap_or_default();
        }
        let mut written = Vec::new();
        stderr.shared.write_pending(&mut written);
        let text = String::from_utf8_lossy(&written);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[99], "line 99");
        // Written once: nothing is left.
        let mut again = Vec::new();
        stderr.shared.write_pending(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn past_the_limit_lines_are_dropped_counted_and_reported_rather_than_waited_for() {
        let stderr = queued();
        let long = vec![b'x'; PENDING_BYTES / 2];
        for _ in 0..5 {
            let mut line = stderr.make_writer();
            line.write_all(&long).unwrap_or_default();
        }
        assert_eq!(stderr.shared.pending().dropped, 3);
        let mut written = Vec::new();
        stderr.shared.write_pending(&mut written);
        // The two lines that fitted, then the report.
        assert_eq!(written.iter().filter(|b| **b == b'x').count(), PENDING_BYTES);
        assert!(
            String::from_utf8_lossy(&written)
                .ends_with("prereg: 3 log line(s) dropped: standard error was not read as fast as lines were logged\n")
        );
        // After a report, the count starts again.
        assert_eq!(stderr.shared.pending().dropped, 0);
    }
}
