//! `prereg check` and `prereg enroll`.

use std::process::ExitCode;

use prereg::registry::{DecisionMode, EnrollmentInput};

use super::{Context, print_json, read_secret};
use crate::cli::DecisionArgs;

pub fn run(context: &Context, args: DecisionArgs, mode: DecisionMode) -> anyhow::Result<ExitCode> {
    let password = args.password_file.as_deref().map(read_secret).transpose()?;
    let backend = context.backend()?;
    let report = backend.decide(
        EnrollmentInput {
            procedure: args.procedure,
            fqdn: args.fqdn,
            ip: args.ip,
            serial: args.serial,
            password,
            ..Default::default()
        },
        mode,
    )?;
    if args.json {
        print_json(&report)?;
    } else {
        let verdict = if report.allowed { "ALLOW" } else { "DENY" };
        let dry = if report.dry_run { " (dry run)" } else { "" };
        println!("{verdict} {}{dry}", report.reason);
        if let Some(id) = report.registration {
            println!("  registration {id} ({})", report.pattern.as_deref().unwrap_or("?"));
        }
        println!("  {}", report.explanation);
        println!("  policy {} {} sha256:{}", report.policy.name, report.policy.version, report.policy.sha256);
        if let Some(seq) = report.audit_seq {
            println!("  audit #{seq}");
        }
    }
    Ok(if report.allowed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
