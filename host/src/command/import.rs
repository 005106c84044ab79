//! `prereg import FILE --procedure NAME [--dry-run] [--partial]`, locally or
//! against a service.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use prereg::import::{self, ImportProgress, Phase, ProgressSnapshot, RowError, RowSink};
use prereg::registry::{ImportFile, MAX_BAD_ROWS_SHOWN, unix_now};
use prereg::signing::{self, MAX_LIFETIME_SECS, WriteRequest};
use prereg::store::{ImportRecord, ImportStatus};

use super::backend::Backend;
use super::{Context, InputError, print_json};
use crate::cli::ImportArgs;

pub fn run(context: &Context, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let name = args.file.file_name().map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
    let backend = context.backend()?;
    let Some(instance_public) = backend.sealing_key()? else {
        return Err(InputError("the instance publishes no key to key the file's digest with".into()).into());
    };
    // Keyed, so that the digest kept in the audit log cannot test guesses of
    // a password in the file.
    let (sha256, digest_key) =
        import::signed_digest(&args.file, &instance_public).map_err(|e| InputError(format!("{shown}: {e}")))?;
    let key = context.signing_key()?;
    let request = WriteRequest::ImportCsv {
        procedure: args.procedure.clone(),
        sha256,
        digest_key: Some(digest_key),
        partial: args.partial,
        dry_run: args.dry_run,
    };
    let jws = signing::sign(&key, &backend.instance_id()?, request, unix_now(), MAX_LIFETIME_SECS)?;
    let bar = progress_bar();
    let mut report = Report { json: args.json, bar: bar.clone(), rows: Vec::new(), shown: 0 };
    let record = match &backend {
        Backend::Local(registry) => {
            let progress = Arc::new(ImportProgress::new());
            let watcher = watch(bar.clone(), progress.clone());
            let result =
                registry.import(&jws, ImportFile { path: &args.file, name: &name }, unix_now(), progress, &mut report);
            watcher.stop();
            result?
        }
        Backend::Remote(client) => {
            let started = client.import(&jws, &args.file, &name)?;
            let id = started.import.id;
            let mut view = started;
            while view.import.status == ImportStatus::Running {
                if let Some(p) = view.progress {
                    show(&bar, &p);
                }
                std::thread::sleep(Duration::from_millis(200));
                view = client.import_status(id)?;
            }
            let mut after = 0;
            loop {
                let page = client.import_report(id, after)?;
                for row in &page.items {
                    report.bad_row(row)?;
                }
                match page.next_after {
                    Some(next) => after = next,
                    None => break,
                }
            }
            view.import
        }
    };
    bar.finish_and_clear();
    finish(&report, &record)?;
    Ok(exit_code(&record))
}

fn exit_code(record: &ImportRecord) -> ExitCode {
    match record.status {
        ImportStatus::Completed if record.errors == 0 => ExitCode::SUCCESS,
        ImportStatus::Completed | ImportStatus::Rejected => ExitCode::from(1),
        ImportStatus::Interrupted | ImportStatus::Failed | ImportStatus::Running => ExitCode::from(3),
    }
}

fn finish(report: &Report, record: &ImportRecord) -> anyhow::Result<()> {
    if report.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            import: &'a ImportRecord,
            bad_rows: &'a [RowError],
        }
        return print_json(&Out { import: record, bad_rows: &report.rows });
    }
    if report.shown < record.errors {
        println!("... and {} more bad rows", record.errors - report.shown);
    }
    println!("import {} {}: {}", record.id, record.status.as_str(), record.message);
    Ok(())
}

/// Prints bad rows as they come (up to a limit), or keeps them for JSON.
struct Report {
    json: bool,
    bar: ProgressBar,
    rows: Vec<RowError>,
    shown: u64,
}

impl RowSink for Report {
    fn bad_row(&mut self, error: &RowError) -> std::io::Result<()> {
        if self.json {
            self.rows.push(error.clone());
        } else if self.shown < MAX_BAD_ROWS_SHOWN {
            self.shown += 1;
            self.bar.suspend(|| println!("{error}"));
        }
        Ok(())
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn show(bar: &ProgressBar, p: &ProgressSnapshot) {
    bar.set_length(p.total);
    bar.set_position(p.done);
    bar.set_message(match p.phase {
        Phase::Scanning => "reading",
        Phase::Validating => "checking",
        Phase::Writing => "writing",
        Phase::Done => "done",
    });
}

/// Updates the bar from the progress until stopped.
struct Watcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(bar: ProgressBar, progress: Arc<ImportProgress>) -> Watcher {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = if bar.is_hidden() {
        None
    } else {
        std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    show(&bar, &progress.snapshot());
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .ok()
    };
    Watcher { stop, thread }
}
