//! `prereg ca`: create, import and show the issuing CA.

use std::process::ExitCode;

use prereg::pki::Ca;
use prereg::pki::x509::Certificate;
use prereg::registry::unix_now;

use super::{Context, InputError};
use crate::cli::CaCommand;

pub fn run(context: &Context, command: CaCommand) -> anyhow::Result<ExitCode> {
    context.local_only("ca")?;
    let data = context.data();
    let ca = match command {
        CaCommand::Init { name } => {
            let ca = Ca::init(&data, &name, unix_now()).map_err(|e| InputError(e.to_string()))?;
            println!("created a CA in {}", data.root().join("ca").display());
            ca
        }
        CaCommand::Import { cert, key } => {
            let ca = Ca::import(&data, &cert, &key, unix_now()).map_err(|e| InputError(e.to_string()))?;
            println!("imported the CA into {}", data.root().join("ca").display());
            ca
        }
        CaCommand::Show => match Ca::load(&data)? {
            Some(ca) => ca,
            None => {
                return Err(InputError(format!(
                    "{} has no CA: run `prereg ca init` or `prereg ca import`",
                    data.root().display()
                ))
                .into());
            }
        },
    };
    describe("CA", ca.certificate())?;
    describe("SCEP RA", ca.ra_certificate())?;
    Ok(ExitCode::SUCCESS)
}

fn describe(role: &str, cert: &Certificate) -> anyhow::Result<()> {
    let subject = cert.subject_info()?.common_name.unwrap_or_default();
    println!("{role:<8} CN={subject}");
    println!("         valid {} to {}", day(cert.not_before), day(cert.not_after));
    println!("         sha256 {}", cert.fingerprint());
    Ok(())
}

/// A Unix time as YYYY-MM-DD.
fn day(unix: u64) -> String {
    let text = prereg::pki::asn1::generalized_time(unix);
    let digits = String::from_utf8_lossy(&text[2..10]).into_owned();
    format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8])
}
