//! `prereg policy ...`: the operator's commands (info, load, list, activate,
//! shadow), locally or with `--server`, and the policy author's (test, bench,
//! new), which need no data folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use prereg::PolicyEngine;
use prereg::cases::{self, CaseFile, Facts, Recording};
use prereg::policy::Policy;

use super::{Context, InputError, print_json};
use crate::cli::{PolicyBenchArgs, PolicyCommand, PolicyTestArgs, ShadowCommand};

pub fn run(context: &Context, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Test(args) => return test(context, args),
        PolicyCommand::Bench(args) => return bench(context, args),
        PolicyCommand::New { name, dir, prereg } => return new(&name, dir, prereg),
        _ => {}
    }
    let backend = context.backend()?;
    match command {
        PolicyCommand::Info { json } => {
            let info = backend.policy()?;
            if json {
                print_json(&info)?;
            } else {
                println!("name        {}", info.name);
                println!("version     {}", info.version);
                println!("wit version prereg:policy@{}", info.wit_version);
                println!("sha256      {}", info.sha256);
                println!("source      {}", info.source);
            }
        }
        PolicyCommand::Load { file, activate, name, version } => {
            let change = backend.load_policy(&context.signing_key()?, &file, activate, name, version)?;
            let p = change.policy.as_ref();
            println!(
                "loaded {} {} sha256:{}{}{} (audit #{})",
                p.map_or("?", |p| p.name.as_str()),
                p.map_or("?", |p| p.version.as_str()),
                p.map_or("?", |p| p.sha256.as_str()),
                change.self_test_cases.map(|n| format!(", its {n} test cases pass")).unwrap_or_default(),
                if change.active { ", active" } else { "" },
                change.outcome.audit_seq
            );
        }
        PolicyCommand::Activate { selector } => {
            let change = backend.activate_policy(&context.signing_key()?, &selector)?;
            let what = change.policy.as_ref().map_or_else(
                || prereg::registry::BUILT_IN.to_owned(),
                |p| format!("{} {} sha256:{}", p.name, p.version, p.sha256),
            );
            println!("active: {what} (audit #{})", change.outcome.audit_seq);
        }
        PolicyCommand::List { json } => {
            let versions = backend.policy_versions()?;
            if json {
                print_json(&versions)?;
            } else {
                let shadow = backend.shadow_report(0, 1)?.shadow.map(|s| s.sha256);
                let builtin_active = !versions.iter().any(|p| p.active);
                println!(
                    "{:<7} {:<16} {:<10} {:<8} {:<24} {:<12} SHA-256",
                    "ACTIVE", "NAME", "VERSION", "WIT", "LOADED", "BY"
                );
                println!(
                    "{:<7} {:<16} {:<10} {:<8} {:<24} {:<12} -",
                    if builtin_active { "*" } else { "" },
                    "built-in",
                    "-",
                    prereg_core::WIT_VERSION,
                    "-",
                    "-"
                );
                for p in versions {
                    let by: String = p.loaded_by.chars().take(12).collect();
                    let mark = match (p.active, shadow.as_deref() == Some(p.sha256.as_str())) {
                        (true, _) => "*",
                        (false, true) => "shadow",
                        _ => "",
                    };
                    println!(
                        "{:<7} {:<16} {:<10} {:<8} {:<24} {:<12} {}",
                        mark,
                        p.name,
                        p.version,
                        p.wit_version,
                        prereg::service::web::utc(p.loaded_at),
                        by,
                        p.sha256
                    );
                }
            }
        }
        PolicyCommand::Shadow { candidate, action } => match (candidate, action) {
            (Some(candidate), _) => {
                let key = context.signing_key()?;
                // A file is loaded first (its own signed, audited request);
                // anything else names a loaded version.
                let selector = if Path::new(&candidate).is_file() {
                    let change = backend.load_policy(&key, Path::new(&candidate), false, None, None)?;
                    let p = change.policy.ok_or_else(|| anyhow::anyhow!("the loaded policy is not listed"))?;
                    let cases =
                        change.self_test_cases.map(|n| format!(", its {n} test cases pass")).unwrap_or_default();
                    println!(
                        "loaded {} {} sha256:{}{cases} (audit #{})",
                        p.name, p.version, p.sha256, change.outcome.audit_seq
                    );
                    p.sha256
                } else {
                    candidate
                };
                let change = backend.shadow_policy(&key, Some(selector))?;
                let p = change.shadow.ok_or_else(|| anyhow::anyhow!("no shadow version in the answer"))?;
                println!(
                    "shadow: {} {} sha256:{} decides beside the active policy (audit #{})",
                    p.name, p.version, p.sha256, change.outcome.audit_seq
                );
            }
            (None, Some(ShadowCommand::Stop)) => {
                let change = backend.shadow_policy(&context.signing_key()?, None)?;
                println!("shadow mode stopped (audit #{})", change.outcome.audit_seq);
            }
            (None, Some(ShadowCommand::Report { after, limit, json })) => {
                let report = backend.shadow_report(after, limit)?;
                if json {
                    print_json(&report)?;
                } else {
                    print_shadow_report(&report);
                }
            }
            (None, None) => {
                return Err(InputError(
                    "say `prereg policy shadow FILE.wasm|VERSION`, `shadow report` or `shadow stop`".into(),
                )
                .into());
            }
        },
        PolicyCommand::Test(_) | PolicyCommand::Bench(_) | PolicyCommand::New { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn print_shadow_report(report: &prereg::registry::ShadowReport) {
    let Some(shadow) = &report.shadow else {
        println!("no shadow policy (start one with `prereg policy shadow FILE.wasm`)");
        return;
    };
    println!(
        "shadow {} {} sha256:{}: {} enrollments compared, {} disagreements",
        report.name.as_deref().unwrap_or("?"),
        report.version.as_deref().unwrap_or("?"),
        &shadow.sha256[..12.min(shadow.sha256.len())],
        shadow.compared,
        shadow.disagreed
    );
    for d in &report.disagreements {
        let request = &d.request;
        let field = |k: &str| request.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        println!(
            "#{} audit #{} {} {}{}",
            d.id,
            d.audit_seq,
            field("procedure").unwrap_or_default(),
            field("fqdn").unwrap_or_default(),
            field("ip").map(|ip| format!(" ip={ip}")).unwrap_or_default(),
        );
        for (who, side) in [("active", &d.active), ("shadow", &d.shadow)] {
            println!(
                "    {who}: {} {:<18} {}",
                if side.allowed { "ALLOW" } else { "DENY " },
                side.reason,
                side.explanation
            );
        }
    }
}

fn engine(context: &Context) -> anyhow::Result<PolicyEngine> {
    Ok(PolicyEngine::new(context.global.limits())?)
}

fn compile(engine: &PolicyEngine, file: &Path) -> anyhow::Result<Arc<dyn Policy>> {
    Ok(Arc::new(prereg::load_policy(engine, Some(file)).map_err(|e| InputError(e.to_string()))?))
}

/// `prereg policy test FILE [CASES]`: exit 0 when every case passes, 1 when
/// one fails, 2 when the files are unusable.
fn test(context: &Context, args: PolicyTestArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(context)?;
    let policy = compile(&engine, &args.file)?;
    let (file, shown) = match &args.cases {
        Some(path) => (CaseFile::read(path).map_err(|e| InputError(e.to_string()))?, path.display().to_string()),
        None => {
            let bytes = policy.test_cases().ok_or_else(|| {
                InputError(format!(
                    "{} ships no test cases: give a case file (prereg policy test POLICY.wasm CASES.toml)",
                    args.file.display()
                ))
            })?;
            let source = args.file.display().to_string();
            (
                CaseFile::parse_embedded(bytes, &source).map_err(|e| InputError(e.to_string()))?,
                "embedded test cases".into(),
            )
        }
    };
    let facts = match &args.replay {
        Some(path) => Facts::Replay(read_recording(path)?),
        None if args.record.is_some() => Facts::Record,
        None => Facts::Live,
    };
    let (report, recording) = cases::run(policy, &file, &shown, facts).map_err(|e| InputError(e.to_string()))?;
    if let (Some(path), Some(recording)) = (&args.record, recording) {
        let text = serde_json::to_string_pretty(&recording)?;
        std::fs::write(path, text + "\n").map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    }
    if args.json {
        print_json(&report)?;
    } else {
        println!("{report}");
    }
    Ok(if report.all_passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn read_recording(path: &Path) -> anyhow::Result<Recording> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    let recording: Recording = serde_json::from_str(&text)
        .map_err(|e| InputError(format!("{}: not a prereg recording: {e}", path.display())))?;
    Ok(recording)
}

/// `prereg policy bench FILE`.
fn bench(context: &Context, args: PolicyBenchArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(context)?;
    let bytes = std::fs::read(&args.file).map_err(|e| InputError(format!("{}: {e}", args.file.display())))?;
    let options = prereg::policy_bench::BenchOptions { registrations: args.registrations, decisions: args.decisions };
    let report = prereg::policy_bench::run(&engine, &bytes, &args.file.display().to_string(), options)?;
    if args.json {
        print_json(&report)?;
    } else {
        let p = &report.policy;
        println!("policy        {} {} sha256:{}", p.name, p.version, &p.sha256[..12.min(p.sha256.len())]);
        println!("compile       {:.1} ms", report.compile_ms);
        println!("instantiate   p50 {:.1} µs   p99 {:.1} µs", report.instantiate_us.p50, report.instantiate_us.p99);
        println!("dataset       {} registrations ({} rows refused)", report.registrations, report.refused_rows);
        println!(
            "decision      p50 {:.1} µs   p90 {:.1} µs   p99 {:.1} µs   ({:.0}/s on one thread)",
            report.decision_us.p50, report.decision_us.p90, report.decision_us.p99, report.decisions_per_second
        );
        println!(
            "outcomes      {} decisions, {} allowed, {} policy errors",
            report.decisions, report.allowed, report.policy_errors
        );
        println!(
            "memory grows  {:.2} per decision (each costs the pooling allocator two mprotect calls)",
            report.memory_grows_per_decision
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `prereg policy new NAME`.
fn new(name: &str, dir: Option<PathBuf>, source: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let source = source.unwrap_or_else(prereg::scaffold::default_source);
    let files = prereg::scaffold::scaffold(name, &dir, &source).map_err(|e| InputError(e.to_string()))?;
    for f in &files {
        println!("created {}", f.display());
    }
    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
    println!();
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo build --release --target wasm32-wasip2");
    println!("  prereg policy test {wasm} cases.toml");
    println!("  prereg policy load {wasm}");
    Ok(ExitCode::SUCCESS)
}
