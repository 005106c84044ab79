//! `prereg init`.

use std::process::ExitCode;

use prereg::DataDir;
use prereg::data_dir::{StoreLocation, write_new_file};
use prereg::registry::unix_now;
use prereg::signing::{Algorithm, SigningKey};

use super::{Context, InputError};

pub fn run(context: &Context, officer: &str) -> anyhow::Result<ExitCode> {
    context.local_only("init")?;
    let data = context.data();
    let location = context.store_location()?;
    let sqlite_exists = matches!(&location, StoreLocation::Sqlite(file) if file.exists());
    if sqlite_exists || data.officer_key().exists() {
        return Err(InputError(format!("{} is already initialised", data.root().display())).into());
    }
    if let StoreLocation::Postgres(url) = &location {
        let storage = location.open()?;
        if storage.begin(prereg::store::TxKind::Read)?.instance_id()?.is_some() {
            return Err(InputError(format!(
                "the database {} is already initialised: to add a node, copy sealing.key (and ca/) from the data \
                 folder of a node and run `prereg serve --database ...` with that folder",
                location.shown()
            ))
            .into());
        }
        // Later commands on this folder find the database without --database.
        if context.global.database.is_some() && !data.settings().exists() {
            data.ensure()?;
            data.record_database(url)?;
        }
    }
    initialise(&data, officer)?;
    Ok(ExitCode::SUCCESS)
}

/// Creates the data folder, the first officer's key pair and the store's
/// instance, and says where the key is.
pub fn initialise(data: &DataDir, officer: &str) -> anyhow::Result<()> {
    data.ensure()?;
    let location = data.store_location()?;
    let storage = location.open()?;
    let key = SigningKey::generate(Algorithm::EdDsa);
    write_new_file(&data.officer_key(), key.to_pem()?.as_bytes(), true)?;
    write_new_file(&data.officer_public_key(), key.public_key().to_pem()?.as_bytes(), false)?;
    let instance = prereg::registry::initialise(storage.as_ref(), officer, &key, unix_now())?;
    // The instance's sealing key, made now and recorded in the store: every
    // node must hold this one.
    let sealing = prereg::sealing::SealingKey::load_or_create(data)?;
    let mut tx = storage.begin(prereg::store::TxKind::Write)?;
    tx.set_sealing_key(&sealing.public_text())?;
    tx.commit()?;
    match &location {
        StoreLocation::Sqlite(_) => println!("initialised prereg instance {instance} in {}", data.root().display()),
        StoreLocation::Postgres(_) => {
            println!("initialised prereg instance {instance} in {} on {}", data.root().display(), location.shown())
        }
    }
    println!("first officer {officer:?} (all domains), key id {}", key.public_key().kid());
    println!("officer private key: {} (mode 0600; keep it safe)", data.officer_key().display());
    Ok(())
}
