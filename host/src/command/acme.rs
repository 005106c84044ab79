//! `prereg acme`: external account binding keys.

use std::process::ExitCode;

use prereg::signing::WriteRequest;

use super::{Context, InputError};
use crate::cli::{AcmeCommand, EabCommand};

/// Bytes of a new HMAC key.
const HMAC_KEY_BYTES: usize = 32;

pub fn run(context: &Context, command: AcmeCommand) -> anyhow::Result<ExitCode> {
    match command {
        AcmeCommand::Eab(EabCommand::Add { procedure, domains, key_id }) => {
            let key_id = key_id.unwrap_or_else(|| prereg::enroll::acme::random_token(12).to_string());
            let hmac_key = prereg::enroll::acme::random_token(HMAC_KEY_BYTES);
            let backend = context.backend()?;
            let Some(public) = backend.sealing_key()? else {
                return Err(InputError("the instance publishes no sealing key to seal the HMAC key to".into()).into());
            };
            let hmac_key_sealed = prereg::sealing::seal(&public, &hmac_key)?;
            let request = WriteRequest::AddEabKey { key_id: key_id.clone(), procedure, domains, hmac_key_sealed };
            let outcome = backend.submit(&context.signing_key()?, request)?;
            println!("added {} (audit #{})", outcome.object, outcome.audit_seq);
            println!("key id   {key_id}");
            println!("hmac key {} (shown once: kept sealed to the instance's key)", hmac_key.as_str());
        }
        AcmeCommand::Eab(EabCommand::List { json }) => {
            let keys = context.backend()?.eab_keys()?;
            if json {
                super::print_json(&keys)?;
            } else {
                println!("{:<24} {:<16} {:<24} NAMES", "KEY ID", "PROCEDURE", "ACCOUNT");
                for key in keys {
                    let names = if key.domains.is_empty() { "*".to_owned() } else { key.domains.join(",") };
                    let account = key.account.unwrap_or_else(|| "(unused)".into());
                    println!("{:<24} {:<16} {:<24} {names}", key.key_id, key.procedure, account);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
