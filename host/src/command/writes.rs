//! Commands that sign a write: `procedure add`, `officer add`, `register`,
//! `disable`, `reopen`, `delete`; and `officer keygen`.

use std::process::ExitCode;

use prereg::data_dir::write_new_file;
use prereg::registry::WriteOutcome;
use prereg::signing::{Algorithm, SigningKey, WriteRequest};

use super::{Context, InputError, print_json, public_key_path, read_secret};
use crate::cli::{AlgorithmArg, CallerCommand, OfficerCommand, ProcedureCommand, ProtocolArg, RegisterArgs};

/// Signs `request` with the officer key and submits it.
fn submit(context: &Context, request: WriteRequest) -> anyhow::Result<WriteOutcome> {
    let backend = context.backend()?;
    backend.submit(&context.signing_key()?, request)
}

pub fn procedure(context: &Context, command: ProcedureCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProcedureCommand::Add {
            name,
            domain,
            protocol,
            allowed_domains,
            require_preregistration,
            certificate_days,
        } => {
            let protocol = match protocol {
                ProtocolArg::Scep => "scep",
                ProtocolArg::Cmp => "cmp",
                ProtocolArg::Est => "est",
                ProtocolArg::Acme => "acme",
                ProtocolArg::Other => "other",
            };
            let allowed_domains = allowed_domains.into_iter().filter(|d| !d.trim().is_empty()).collect();
            let outcome = submit(
                context,
                WriteRequest::CreateProcedure {
                    certificate_days,
                    name,
                    domain,
                    protocol: protocol.into(),
                    allowed_domains,
                    require_preregistration,
                },
            )?;
            println!("created {} (audit #{})", outcome.object, outcome.audit_seq);
        }
        ProcedureCommand::List { json } => {
            let procedures = context.backend()?.procedures()?;
            if json {
                print_json(&procedures)?;
            } else {
                println!("{:<20} {:<16} {:<8} {:<8} ALLOWED DOMAINS", "NAME", "DOMAIN", "PROTOCOL", "PREREG");
                for p in procedures {
                    let allowed =
                        if p.allowed_domains.is_empty() { "(any)".into() } else { p.allowed_domains.join(",") };
                    let prereg = if p.require_preregistration { "required" } else { "optional" };
                    println!("{:<20} {:<16} {:<8} {:<8} {allowed}", p.name, p.domain, p.protocol.as_str(), prereg);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn officer(context: &Context, command: OfficerCommand) -> anyhow::Result<ExitCode> {
    match command {
        OfficerCommand::Add { name, public_key, domains } => {
            let pem = std::fs::read_to_string(&public_key)
                .map_err(|e| InputError(format!("--public-key {}: {e}", public_key.display())))?;
            let outcome = submit(context, WriteRequest::AddOfficer { name, public_key_pem: pem, domains })?;
            println!("added {} (audit #{})", outcome.object, outcome.audit_seq);
        }
        OfficerCommand::Disable { name } => {
            let outcome = submit(context, WriteRequest::DisableOfficer { name })?;
            println!("disabled {} (audit #{})", outcome.object, outcome.audit_seq);
        }
        OfficerCommand::List { json } => {
            let officers = context.backend()?.officers()?;
            if json {
                print_json(&officers)?;
            } else {
                println!("{:<16} {:<6} {:<44} DOMAINS", "NAME", "ALG", "KEY ID");
                for o in officers {
                    println!("{:<16} {:<6} {:<44} {}", o.name, o.algorithm, o.kid, o.domains.join(","));
                }
            }
        }
        OfficerCommand::Keygen { out, algorithm } => {
            let key = SigningKey::generate(match algorithm {
                AlgorithmArg::Ed25519 => Algorithm::EdDsa,
                AlgorithmArg::Es256 => Algorithm::Es256,
            });
            let public = public_key_path(&out);
            write_new_file(&out, key.to_pem()?.as_bytes(), true)
                .map_err(|e| InputError(format!("--out {}: {e}", out.display())))?;
            write_new_file(&public, key.public_key().to_pem()?.as_bytes(), false)
                .map_err(|e| InputError(format!("{}: {e}", public.display())))?;
            println!("private key {} (mode 0600), public key {}", out.display(), public.display());
            println!("key id {}", key.public_key().kid());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn caller(context: &Context, command: CallerCommand) -> anyhow::Result<ExitCode> {
    match command {
        CallerCommand::Add { name, procedures, client_cert, no_secret, webhook, webhook_secret_file } => {
            let certificate_sha256 = client_cert
                .map(|path| {
                    prereg::service::tls::certificate_sha256(&path)
                        .map_err(|e| InputError(format!("--client-cert {e}")))
                })
                .transpose()?;
            let secret = (!no_secret).then(|| zeroize::Zeroizing::new(prereg::service::auth::new_caller_secret()));
            // A webhook secret: 32 random bytes in the base64 form step-ca's
            // ca.json takes, or the one step-ca made; sealed to the
            // instance's key for the service.
            let imported = match &webhook_secret_file {
                None => None,
                Some(path) => {
                    let shown = path.display();
                    let text = zeroize::Zeroizing::new(
                        std::fs::read_to_string(path)
                            .map_err(|e| InputError(format!("--webhook-secret-file {shown}: {e}")))?,
                    );
                    let secret = prereg::service::webhooks::imported_secret(&text)
                        .map_err(|why| InputError(format!("--webhook-secret-file {shown}: {why}")))?;
                    Some(secret)
                }
            };
            let webhook_secret = webhook.then(prereg::service::webhooks::new_secret);
            let webhook_secret_sealed = match webhook_secret.as_ref().or(imported.as_ref()) {
                None => None,
                Some(text) => {
                    let Some(public) = context.backend()?.sealing_key()? else {
                        return Err(
                            InputError("the instance publishes no sealing key to seal the secret to".into()).into()
                        );
                    };
                    Some(prereg::sealing::seal(&public, text)?)
                }
            };
            let request = WriteRequest::AddCaller {
                name,
                procedures,
                secret_sha256: secret.as_ref().map(|s| prereg::service::auth::caller_secret_sha256(s)),
                certificate_sha256,
                webhook_secret_sealed,
            };
            let outcome = submit(context, request)?;
            println!("added {} (audit #{})", outcome.object, outcome.audit_seq);
            if let Some(secret) = secret {
                println!("secret {} (shown once: only its SHA-256 is kept)", secret.as_str());
            }
            if let Some(secret) = webhook_secret {
                println!(
                    "webhook secret {} (shown once: step-ca's ca.json takes it as the webhook's \"secret\")",
                    secret.as_str()
                );
            }
            if imported.is_some() {
                println!("webhook secret imported, kept sealed to the instance's key");
            }
        }
        CallerCommand::Disable { name } => {
            let outcome = submit(context, WriteRequest::DisableCaller { name })?;
            println!("disabled {} (audit #{})", outcome.object, outcome.audit_seq);
        }
        CallerCommand::List { json } => {
            let callers = context.backend()?.callers()?;
            if json {
                print_json(&callers)?;
            } else {
                println!("{:<20} {:<9} PROCEDURES", "NAME", "STATE");
                for c in callers {
                    let state = if c.disabled_at.is_some() { "disabled" } else { "enabled" };
                    println!("{:<20} {:<9} {}", c.name, state, c.procedures.join(","));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn register(context: &Context, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let backend = context.backend()?;
    // The password travels sealed to the instance key only: the server
    // hashes it, and the signed request (kept in the audit log) holds nothing
    // a guess could be tested against.
    let password_sealed = match &args.password_file {
        None => None,
        Some(path) => {
            let secret = read_secret(path)?;
            let Some(public) = backend.sealing_key()? else {
                return Err(InputError("the instance publishes no sealing key to seal the password to".into()).into());
            };
            Some(prereg::sealing::seal(&public, &secret)?)
        }
    };
    let outcome = backend.submit(
        &context.signing_key()?,
        WriteRequest::CreateRegistration {
            password_sealed,
            procedure: args.procedure,
            fqdn: args.fqdn,
            ip: args.ip,
            serial: args.serial,
            password_hash: None,
            valid_days: args.valid_days,
            max_enrollments: args.max_enrollments,
        },
    )?;
    match outcome.id {
        Some(id) => println!("{id}"),
        None => anyhow::bail!("the registry created no registration id"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A change of a registration's state.
pub enum StateChange {
    Disable,
    Reopen,
    Delete,
}

pub fn registration_state(context: &Context, change: StateChange, id: u64) -> anyhow::Result<ExitCode> {
    let request = match change {
        StateChange::Disable => WriteRequest::DisableRegistration { id },
        StateChange::Reopen => WriteRequest::ReopenRegistration { id },
        StateChange::Delete => WriteRequest::DeleteRegistration { id },
    };
    let action = request.action();
    let outcome = submit(context, request)?;
    println!("{action} {} (audit #{})", outcome.object, outcome.audit_seq);
    Ok(ExitCode::SUCCESS)
}
