//! `prereg init`.

use std::process::ExitCode;

use prereg::DataDir;
use prereg::data_dir::write_new_file;
use prereg::registry::unix_now;
use prereg::signing::{Algorithm, SigningKey};

use super::{Context, InputError};

pub fn run(context: &Context, officer: &str) -> anyhow::Result<ExitCode> {
    context.local_only("init")?;
    let data = context.data();
    if data.database().exists() || data.officer_key().exists() {
        return Err(InputError(format!("{} is already initialised", data.root().display())).into());
    }
    initialise(&data, officer)?;
    Ok(ExitCode::SUCCESS)
}

/// Creates the data folder, the first officer's key pair and the database,
/// and says where the key is.
pub fn initialise(data: &DataDir, officer: &str) -> anyhow::Result<()> {
    data.ensure()?;
    let key = SigningKey::generate(Algorithm::EdDsa);
    write_new_file(&data.officer_key(), key.to_pem()?.as_bytes(), true)?;
    write_new_file(&data.officer_public_key(), key.public_key().to_pem()?.as_bytes(), false)?;
    let storage = prereg::store::SqliteStorage::open(&data.database())?;
    let instance = prereg::registry::initialise(&storage, officer, &key, unix_now())?;
    println!("initialised prereg instance {instance} in {}", data.root().display());
    println!("first officer {officer:?} (all domains), key id {}", key.public_key().kid());
    println!("officer private key: {} (mode 0600; keep it safe)", data.officer_key().display());
    Ok(())
}
