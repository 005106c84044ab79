//! What each command does. Arguments come parsed from `cli`; every rule is
//! applied by the library's [`prereg::Registry`]: nothing here decides.

mod acme;
mod backend;
mod bench;
mod ca;
mod cluster;
mod decide;
mod import;
mod init;
mod policy;
mod reads;
mod serve;
mod writes;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use prereg::data_dir::StoreLocation;
use prereg::signing::SigningKey;
use prereg::{DataDir, Registry};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, GlobalArgs};

/// A fault in the user's input (exit code 2), as opposed to a failure of the
/// system (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let context = Context { global: cli.global };
    match cli.command {
        Command::Init { officer } => init::run(&context, &officer),
        Command::Serve(args) => serve::run(&context, args),
        Command::Import(args) => import::run(&context, args),
        Command::Procedure(cmd) => writes::procedure(&context, cmd),
        Command::Officer(cmd) => writes::officer(&context, cmd),
        Command::Caller(cmd) => writes::caller(&context, cmd),
        Command::Acme(cmd) => acme::run(&context, cmd),
        Command::Ca(cmd) => ca::run(&context, cmd),
        Command::Register(args) => writes::register(&context, args),
        Command::Disable { id } => writes::registration_state(&context, writes::StateChange::Disable, id),
        Command::Reopen { id } => writes::registration_state(&context, writes::StateChange::Reopen, id),
        Command::Delete { id } => writes::registration_state(&context, writes::StateChange::Delete, id),
        Command::List { domain, state, json } => reads::list(&context, domain, state, json),
        Command::Show { id, json } => reads::show(&context, id, json),
        Command::Check(args) => decide::run(&context, args, prereg::registry::DecisionMode::DryRun),
        Command::Enroll(args) => decide::run(&context, args, prereg::registry::DecisionMode::Enroll),
        Command::Audit(cmd) => reads::audit(&context, cmd),
        Command::Policy(cmd) => policy::run(&context, cmd),
        Command::Bench(args) => bench::run(&context, args),
        Command::Cluster(cmd) => cluster::run(&context, cmd),
        Command::Migrate { from, to } => cluster::migrate(&context, &from, &to),
    }
}

/// What every command may need.
pub struct Context {
    pub(crate) global: GlobalArgs,
}

impl Context {
    fn data(&self) -> DataDir {
        DataDir::new(&self.global.data).with_database(self.global.database.clone())
    }

    /// Where the store is.
    fn store_location(&self) -> anyhow::Result<StoreLocation> {
        Ok(self.data().store_location().map_err(|e| InputError(e.to_string()))?)
    }

    /// Where commands go: the running service given by `--server`, or the
    /// local data folder.
    fn backend(&self) -> anyhow::Result<backend::Backend> {
        match &self.global.server {
            Some(url) => {
                if self.global.policy.is_some() {
                    return Err(InputError(
                        "--policy applies to a local data folder; a server decides with its own policy".into(),
                    )
                    .into());
                }
                let client = match &self.global.ca_cert {
                    Some(path) => {
                        let roots = std::fs::read(path)
                            .map_err(|e| InputError(format!("--ca-cert {}: {e}", path.display())))?;
                        prereg::client::Client::with_roots(url, &roots)
                            .map_err(|e| InputError(format!("--ca-cert {}: {e}", path.display())))?
                    }
                    None => prereg::client::Client::new(url),
                };
                // Decisions are asked as a CA caller; everything else is read
                // as the officer of --key, when its key can be read.
                let client = match (&self.global.caller_secret, self.signing_key()) {
                    (Some(secret), _) => client.with_caller_secret(secret),
                    (None, Ok(key)) => client.with_officer(std::sync::Arc::new(key)),
                    (None, Err(_)) => client,
                };
                Ok(backend::Backend::Remote(client))
            }
            None => Ok(backend::Backend::Local(self.registry()?)),
        }
    }

    /// Refuses `--server` for a command that only works on a local data folder.
    fn local_only(&self, command: &str) -> anyhow::Result<()> {
        if self.global.server.is_some() {
            return Err(
                InputError(format!("`prereg {command}` works on a local data folder, not with --server")).into()
            );
        }
        Ok(())
    }

    /// The registry of an initialised data folder.
    fn registry(&self) -> anyhow::Result<Registry> {
        self.registry_with(prereg::engine::Allocation::OnDemand)
    }

    /// [`Context::registry`] with the given instance allocation.
    fn registry_with(&self, allocation: prereg::engine::Allocation) -> anyhow::Result<Registry> {
        let data = self.data();
        if let StoreLocation::Sqlite(file) = self.store_location()?
            && !file.exists()
        {
            return Err(InputError(format!(
                "no prereg data in {} (run `prereg init`, or pass --data DIR / PREREG_DATA)",
                data.root().display()
            ))
            .into());
        }
        let registry =
            prereg::open_registry_with(&data, self.global.policy.as_deref(), self.global.limits(), allocation)?;
        registry.instance_id()?;
        Ok(registry)
    }

    /// The officer key that signs writes.
    fn signing_key(&self) -> anyhow::Result<SigningKey> {
        let path = self.global.key.clone().unwrap_or_else(|| self.data().officer_key());
        let pem = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            InputError(format!("cannot read the officer key {} (--key / PREREG_KEY): {e}", path.display()))
        })?);
        Ok(SigningKey::from_pem(&pem, &path.display().to_string()).map_err(|e| InputError(e.to_string()))?)
    }
}

/// Reads a secret from a file or, for `-`, standard input; drops one trailing
/// newline.
fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("reading the password from standard input")?;
    } else {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| InputError(format!("--password-file {}: {e}", path.display())))?,
        );
        text.push_str(
            std::str::from_utf8(&bytes)
                .map_err(|_| InputError(format!("--password-file {}: not UTF-8 text", path.display())))?,
        );
    }
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(InputError(format!("--password-file {}: the password is empty", path.display())).into());
    }
    Ok(text)
}

/// The public half of a key file: FILE.pub.
fn public_key_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Prints a value as pretty JSON.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
