//! `prereg cluster status` and `prereg migrate`.

use std::path::Path;
use std::process::ExitCode;

use prereg::DataDir;
use prereg::cluster::{self, ClusterStatus};
use prereg::data_dir::StoreLocation;
use prereg::registry::unix_now;
use prereg::store::{SqliteStorage, copy};

use super::{Context, InputError, print_json};
use crate::cli::ClusterCommand;

pub fn run(context: &Context, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    context.local_only("cluster")?;
    match command {
        ClusterCommand::Status { json } => {
            let location = context.store_location()?;
            if let StoreLocation::Sqlite(file) = &location
                && !file.exists()
            {
                return Err(InputError(format!("no prereg data in {}", context.data().root().display())).into());
            }
            let status = cluster::status(location.open()?.as_ref(), unix_now())?;
            if json {
                print_json(&status)?;
            } else {
                print_status(&status, unix_now());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_status(status: &ClusterStatus, now: u64) {
    let active = status.active_policy.as_deref().map_or("built-in default".to_owned(), |s| short(s).to_owned());
    println!("store {}: registration change {}, active policy {active}", status.store, status.head);
    println!("{:<24} {:<22} {:<5} {:<34} {:>9} {:>9}", "NODE", "ADDRESS", "STATE", "POLICY", "INDEX LAG", "SEEN");
    for n in &status.nodes {
        let state = if n.up {
            "up"
        } else if n.node.stopped {
            "stop"
        } else {
            "down"
        };
        let policy = format!("{} ({})", n.node.policy_name, short(&n.node.policy_sha256));
        let seen = format!("{}s ago", now.saturating_sub(n.node.seen_at));
        println!("{:<24} {:<22} {:<5} {:<34} {:>9} {:>9}", n.node.node_id, n.node.address, state, policy, n.lag, seen);
    }
    if status.nodes.is_empty() {
        println!("(no node has served this store yet)");
    }
}

fn short(sha256: &str) -> &str {
    &sha256[..12.min(sha256.len())]
}

pub fn migrate(context: &Context, from: &Path, to: &str) -> anyhow::Result<ExitCode> {
    context.local_only("migrate")?;
    let source = DataDir::new(from);
    let file = source.database();
    if !file.exists() {
        return Err(InputError(format!("--from {}: no prereg.sqlite3 there", from.display())).into());
    }
    if !prereg::store::is_postgres_url(to) {
        return Err(InputError(format!("--to {to:?}: not a postgres:// URL")).into());
    }
    let from_store = SqliteStorage::open(&file)?;
    let to_store = prereg::store::open_postgres(to)?;
    let report = copy::copy_instance(&from_store, to_store.as_ref()).map_err(|e| match e {
        prereg::store::StoreError::Duplicate { what } => {
            anyhow::Error::from(InputError(format!("--to: the database is not empty: it holds {what}")))
        }
        other => other.into(),
    })?;
    let verified = prereg::registry::verify_audit_chain(to_store.as_ref(), None, None)?;
    if let Some(fault) = verified.fault {
        anyhow::bail!("the audit chain does not verify in the target: {fault}");
    }
    println!(
        "copied {} officers, {} procedures, {} registrations, {} imports, {} policy versions, {} certificates, \
         {} ACME objects, {} request ids and {} audit records to {}",
        report.officers,
        report.procedures,
        report.registrations,
        report.imports,
        report.policies,
        report.certificates,
        report.acme_objects,
        report.request_ids,
        report.audit_records,
        to_store.describe()
    );
    println!("audit chain intact: {} records", verified.checked);
    println!(
        "each node needs {} (and ca/, for enrollment) in its data folder, and --database (or prereg.toml)",
        source.sealing_key().display()
    );
    Ok(ExitCode::SUCCESS)
}
