//! `prereg ca`: create, import, show and configure the issuing CA; revoke a
//! certificate (a signed, audited write); write the current CRL.

use std::process::ExitCode;

use std::io::Write as _;

use prereg::pki::Ca;
use prereg::pki::x509::{self, Certificate};
use prereg::registry::unix_now;
use prereg::signing::WriteRequest;

use super::{Context, InputError};
use crate::cli::CaCommand;

pub fn run(context: &Context, command: CaCommand) -> anyhow::Result<ExitCode> {
    context.local_only("ca")?;
    let data = context.data();
    let loaded = || -> anyhow::Result<Ca> {
        match Ca::load(&data)? {
            Some(ca) => Ok(ca),
            None => Err(InputError(format!(
                "{} has no CA: run `prereg ca init` or `prereg ca import`",
                data.root().display()
            ))
            .into()),
        }
    };
    let ca = match command {
        CaCommand::Init { name, crl_url } => {
            if let Some(url) = &crl_url {
                prereg::pki::ca::check_crl_url(url).map_err(InputError)?;
            }
            Ca::init(&data, &name, unix_now()).map_err(|e| InputError(e.to_string()))?;
            if let Some(url) = &crl_url {
                Ca::set_crl_url(&data, Some(url)).map_err(|e| InputError(e.to_string()))?;
            }
            println!("created a CA in {}", data.root().join("ca").display());
            loaded()?
        }
        CaCommand::Set { crl_url, est_procedure, est_trust_anchor, est_auth, est_reenroll_revokes } => {
            if let Some(setting) = &est_reenroll_revokes {
                let revokes = match setting.split_once('=') {
                    Some((name, "yes")) => (name, true),
                    Some((name, "no")) => (name, false),
                    _ => {
                        return Err(
                            InputError("--est-reenroll-revokes takes PROCEDURE=yes or PROCEDURE=no".into()).into()
                        );
                    }
                };
                est_procedure_named(context, revokes.0)?;
                Ca::set_est_reenroll_revokes(&data, revokes.0, revokes.1).map_err(|e| InputError(e.to_string()))?;
            }
            if let Some(setting) = &est_trust_anchor {
                let Some((name, file)) = setting.split_once('=') else {
                    return Err(InputError("--est-trust-anchor takes PROCEDURE=FILE".into()).into());
                };
                est_procedure_named(context, name)?;
                let added = Ca::add_est_anchor(&data, name, std::path::Path::new(file))
                    .map_err(|e| InputError(e.to_string()))?;
                println!("{name} trusts {added} more manufacturer CA certificate(s) from {file}");
            }
            if let Some(setting) = &est_auth {
                let Some((name, ways)) = setting.split_once('=') else {
                    return Err(InputError("--est-auth takes PROCEDURE=WAYS".into()).into());
                };
                est_procedure_named(context, name)?;
                let ways = if ways == "all" {
                    Vec::new()
                } else {
                    ways.split(',')
                        .map(|w| {
                            prereg::pki::ca::EstAuth::parse(w.trim()).ok_or_else(|| {
                                InputError(format!("--est-auth: {w:?} is not one of basic, challenge, idevid, all"))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?
                };
                Ca::set_est_auth(&data, name, &ways).map_err(|e| InputError(e.to_string()))?;
            }
            if let Some(crl_url) = &crl_url {
                let url = (crl_url != "default").then_some(crl_url.as_str());
                Ca::set_crl_url(&data, url).map_err(|e| InputError(e.to_string()))?;
            }
            if let Some(name) = &est_procedure {
                let name = (name != "none").then_some(name.as_str());
                if let Some(name) = name {
                    est_procedure_named(context, name)?;
                }
                Ca::set_est_procedure(&data, name).map_err(|e| InputError(e.to_string()))?;
            }
            loaded()?
        }
        CaCommand::Revoke { serial, reason } => {
            let outcome = context
                .backend()?
                .submit(&context.signing_key()?, WriteRequest::RevokeCertificate { serial, reason: Some(reason) })?;
            println!("revoked {} (audit #{})", outcome.object, outcome.audit_seq);
            return Ok(ExitCode::SUCCESS);
        }
        CaCommand::Crl { out, pem } => {
            let ca = loaded()?;
            let der = context.registry()?.crl(&ca, unix_now())?;
            let bytes = if pem { x509::pem("X509 CRL", &der).into_bytes() } else { der };
            match out {
                Some(path) => {
                    std::fs::write(&path, bytes).map_err(|e| InputError(format!("--out {}: {e}", path.display())))?
                }
                None => std::io::stdout().write_all(&bytes)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        CaCommand::IssueClient { name, out, days } => {
            let ca = loaded()?;
            let key = prereg::pki::keys::SigningKey::generate_p256();
            let cert = ca.issue_client(&name, &key.spki_der()?, days, unix_now())?;
            let key_path = out.with_extension("key");
            let key_pem = zeroize::Zeroizing::new(key.to_pem()?);
            prereg::data_dir::write_new_file(&key_path, key_pem.as_bytes(), true)
                .map_err(|e| InputError(format!("{}: {e}", key_path.display())))?;
            prereg::data_dir::write_new_file(&out, x509::pem("CERTIFICATE", &cert.der).as_bytes(), false)
                .map_err(|e| InputError(format!("--out {}: {e}", out.display())))?;
            println!("client certificate {} (key {}, mode 0600)", out.display(), key_path.display());
            println!("sha256 {}", cert.fingerprint());
            return Ok(ExitCode::SUCCESS);
        }
        CaCommand::Import { cert, key } => {
            let ca = Ca::import(&data, &cert, &key, unix_now()).map_err(|e| InputError(e.to_string()))?;
            println!("imported the CA into {}", data.root().join("ca").display());
            ca
        }
        CaCommand::Show => loaded()?,
    };
    describe("CA", ca.certificate())?;
    describe("SCEP RA", ca.ra_certificate())?;
    match ca.crl_url() {
        Some(url) => println!("CRL URL  {url}"),
        None => println!("CRL URL  (default) http://<serve's listen address>/ca/crl"),
    }
    if let Some(procedure) = ca.est_procedure() {
        println!("EST      {procedure} also at /.well-known/est/ without a label");
    }
    // (Without an instance yet, no procedures to show.)
    let procedures = context.backend().ok().and_then(|b| b.procedures().ok()).unwrap_or_default();
    for procedure in procedures.into_iter().filter(|p| p.protocol == prereg_core::Protocol::Est) {
        let ways: Vec<&str> = ca.est_ways(&procedure.name).into_iter().map(|w| w.name()).collect();
        let anchors = ca.est_anchors(&procedure.name).len();
        let revokes = if ca.est_reenroll_revokes(&procedure.name) { "; re-enrollment revokes the old" } else { "" };
        println!("EST      {}: {} (manufacturer anchors: {anchors}){revokes}", procedure.name, ways.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a name that is not a token procedure of protocol est.
fn est_procedure_named(context: &Context, name: &str) -> anyhow::Result<()> {
    let protocol = context.backend()?.procedures()?.into_iter().find(|p| p.name == name).map(|p| p.protocol);
    if protocol != Some(prereg_core::Protocol::Est) {
        return Err(InputError(format!("{name:?} is not a token procedure of protocol est")).into());
    }
    Ok(())
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
