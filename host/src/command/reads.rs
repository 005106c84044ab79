//! Commands that only read: `list`, `show`, `audit`.

use std::process::ExitCode;

use prereg::store::{RegistrationFilter, RegistrationRecord};
use prereg_core::RegistrationState;

use super::{Context, InputError, print_json};
use crate::cli::{AuditCommand, StateArg};

fn state(arg: StateArg) -> RegistrationState {
    match arg {
        StateArg::Open => RegistrationState::Open,
        StateArg::Used => RegistrationState::Used,
        StateArg::Disabled => RegistrationState::Disabled,
        StateArg::Locked => RegistrationState::Locked,
    }
}

fn uses(r: &RegistrationRecord) -> String {
    match r.max_enrollments {
        Some(max) => format!("{}/{max}", r.enrollments),
        None => format!("{}/-", r.enrollments),
    }
}

pub fn list(
    context: &Context,
    domain: Option<String>,
    state_arg: Option<StateArg>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let filter = RegistrationFilter { domain, state: state_arg.map(state), ..Default::default() };
    let registrations = context.backend()?.registrations(&filter)?;
    if json {
        print_json(&registrations)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6} {:<12} {:<32} {:<16} {:<10} {:<4} {:<8} USES",
        "ID", "DOMAIN", "PATTERN", "IP", "SERIAL", "PW", "STATE"
    );
    for r in &registrations {
        println!(
            "{:>6} {:<12} {:<32} {:<16} {:<10} {:<4} {:<8} {}",
            r.id,
            r.domain,
            r.pattern,
            r.ip.as_deref().unwrap_or("-"),
            r.serial.as_deref().unwrap_or("-"),
            if r.has_password { "yes" } else { "no" },
            r.state.as_str(),
            uses(r)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(context: &Context, id: u64, json: bool) -> anyhow::Result<ExitCode> {
    let r = context.backend()?.registration(id)?;
    if json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("registration {}", r.id);
    println!("  pattern          {}", r.pattern);
    println!("  domain           {} (procedure {})", r.domain, r.procedure);
    println!("  ip               {}", r.ip.as_deref().unwrap_or("(any)"));
    println!("  serial           {}", r.serial.as_deref().unwrap_or("(any)"));
    println!("  password         {}", if r.has_password { "set" } else { "none" });
    println!("  state            {}", r.state.as_str());
    println!("  enrollments      {}", uses(&r));
    println!("  failed passwords {}", r.failed_attempts);
    println!("  expires at       {}", r.expires_at.map_or("never".into(), |t| t.to_string()));
    println!("  created          {} by {}", r.created_at, r.created_by);
    Ok(ExitCode::SUCCESS)
}

pub fn audit(context: &Context, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let registry = context.backend()?;
    match command {
        AuditCommand::Checkpoint { out } => {
            context.local_only("audit checkpoint")?;
            let (size, note) = context.registry()?.audit_checkpoint()?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &note).map_err(|e| InputError(format!("--out {}: {e}", path.display())))?;
                    println!("checkpoint of {size} records written to {}", path.display());
                }
                None => print!("{note}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { checkpoint } => {
            // Locally, against a checkpoint: the one named, or the newest `serve` wrote.
            let newest = context.data().checkpoints().join("latest.note");
            let note_file = match checkpoint {
                Some(path) => Some(path),
                None if context.global.server.is_none() && newest.exists() => Some(newest),
                None => None,
            };
            let result = match &note_file {
                Some(path) => {
                    context.local_only("audit verify --checkpoint")?;
                    let note = std::fs::read_to_string(path)
                        .map_err(|e| InputError(format!("--checkpoint {}: {e}", path.display())))?;
                    let v = context.registry()?.verify_audit_against(&note)?;
                    super::backend::ChainCheck {
                        checked: v.checked,
                        signatures: Some(v.signatures),
                        checkpoint: v.checkpoint,
                        fault: v.fault.map(|f| (f.seq(), f.to_string())),
                    }
                }
                None => registry.verify_audit()?,
            };
            match result.fault {
                None => {
                    print!("audit chain intact: {} records", result.checked);
                    if let Some(n) = result.signatures {
                        print!(", {n} signed requests verified");
                    }
                    if let (Some(size), Some(path)) = (result.checkpoint, &note_file) {
                        print!(", holds the {size} records of checkpoint {}", path.display());
                    }
                    println!();
                    Ok(ExitCode::SUCCESS)
                }
                Some((seq, fault)) => {
                    eprintln!("prereg: audit chain broken at record {seq}: {fault}");
                    eprintln!("prereg: records 1 to {} are intact", result.checked);
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::List { after, limit, json } => {
            let records = registry.audit_records(after, limit)?;
            if json {
                print_json(&records)?;
            } else {
                for r in records {
                    let reason = r.reason.as_deref().map(|x| format!(" {x}")).unwrap_or_default();
                    // Officers' key ids are cut; a CA caller is named whole.
                    let actor: String = if r.actor.starts_with("caller:") {
                        r.actor.clone()
                    } else {
                        r.actor.chars().take(12).collect()
                    };
                    println!(
                        "#{:<5} {} {:<12} {:<20} {:<24} {}{reason}",
                        r.seq, r.time, actor, r.action, r.object, r.outcome
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
