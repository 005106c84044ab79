//! The `prereg` command. Parsing is in `cli`, execution in `command`; errors
//! become one line on standard error and an exit code: 2 for a fault in the
//! input, 3 for a failure of the system.

mod cli;
mod command;
mod log_writer;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let default_level = if matches!(cli.command, cli::Command::Serve { .. }) { "info" } else { "warn" };
    let level = cli.global.log_level.as_deref().unwrap_or(default_level);
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Lines are written by a thread of their own (see `log_writer`).
    let (stderr, flush) = log_writer::start();
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(stderr).with_ansi(ansi);
    match cli.global.log_format {
        cli::LogFormat::Json => logs.json().init(),
        cli::LogFormat::Text => logs.init(),
    }
    let outcome = command::run(cli);
    // The lines logged so far come before the error line.
    drop(flush);
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("prereg: {}", one_line(&error));
            if is_input_error(&error) { ExitCode::from(2) } else { ExitCode::from(3) }
        }
    }
}

/// The error and its causes on one line, without repeats.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn is_input_error(error: &anyhow::Error) -> bool {
    if let Some(e) = error.downcast_ref::<prereg::client::ClientError>() {
        return e.is_input_error();
    }
    if let Some(e) = error.downcast_ref::<prereg::registry::ImportError>() {
        return e.is_input_error();
    }
    if let Some(prereg::store::StoreError::BadUrl { .. }) = error.downcast_ref::<prereg::store::StoreError>() {
        return true;
    }
    if error.downcast_ref::<command::InputError>().is_some()
        || error.downcast_ref::<prereg::signing::SigningError>().is_some()
    {
        return true;
    }
    match error.downcast_ref::<prereg::RegistryError>() {
        Some(e) => e.is_input_error(),
        None => matches!(
            error.downcast_ref::<prereg::OpenError>(),
            Some(prereg::OpenError::Engine(_) | prereg::OpenError::Store(prereg::store::StoreError::BadUrl { .. }))
        ),
    }
}
