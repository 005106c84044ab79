//! `prereg bench`: decisions under load (see `prereg::bench`).

use std::process::ExitCode;
use std::time::Duration;

use prereg::PolicyEngine;
use prereg::bench::{BenchOptions, Latency};
use prereg::engine::Allocation;

use super::{Context, InputError};
use crate::cli::{AllocationArg, BenchArgs};

fn seconds(what: &str, s: f64) -> Result<Duration, InputError> {
    if s.is_finite() && (0.01..=86_400.0).contains(&s) {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(InputError(format!("{what} {s}: give seconds between 0.01 and 86400")))
    }
}

pub fn run(context: &Context, args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.http {
        return run_http(url, &args);
    }
    let options = BenchOptions {
        registrations: args.registrations.max(1),
        threads: args.threads.clamp(1, 256),
        duration: seconds("--seconds", args.seconds)?,
        swap_every: args.swap_every.map(|s| seconds("--swap-every", s)).transpose()?,
        memory_index: !args.store_lookups,
        scaling: args.scaling,
        // Only an explicit --database (never the data folder's settings): a
        // scratch SQLite file otherwise. The database must be empty.
        database: match &context.global.database {
            Some(url) if prereg::store::is_postgres_url(url) => Some(url.clone()),
            Some(url) => return Err(InputError(format!("--database {url:?}: not a postgres:// URL")).into()),
            None => None,
        },
    };
    let allocation = match args.allocation {
        AllocationArg::OnDemand => Allocation::OnDemand,
        // Every decider, the swapper's preparation, and room to spare.
        AllocationArg::Pooling => Allocation::Pooling { concurrent: options.threads as u32 * 2 + 2 },
    };
    let engine = PolicyEngine::with_allocation(context.global.limits(), allocation)?;
    eprintln!("generating {} registrations ...", options.registrations);
    let report = prereg::bench::run(&engine, &options).map_err(|e| match e {
        e @ prereg::bench::BenchError::NotEmpty(_) => anyhow::Error::from(InputError(e.to_string())),
        e => e.into(),
    })?;
    println!(
        "dataset        {} registrations, stored in {:.1} s ({})",
        report.registrations, report.setup_seconds, report.store
    );
    match &report.index {
        Some(index) => {
            println!(
                "restart        {:.3} s (open the store, prepare the policy from the cache, build the index)",
                report.restart_seconds
            );
            println!(
                "index          {} registrations in {:.3} s; {:.1} MiB resident ({:.0} B per registration), {:.1} MiB of tables",
                index.registrations,
                index.build_seconds,
                index.rss_bytes as f64 / f64::from(1 << 20),
                index.rss_bytes_per_registration,
                index.heap_bytes as f64 / f64::from(1 << 20),
            );
        }
        None => println!(
            "restart        {:.3} s (open the store, prepare the policy from the cache; storage-index lookups)",
            report.restart_seconds
        ),
    }
    println!(
        "decisions      {} in {:.1} s on {} threads: {:.0}/s, {} failures",
        report.decisions, report.seconds, report.threads, report.decisions_per_second, report.failures
    );
    if let (Some(one), Some(ratio)) = (report.one_thread_decisions_per_second, report.scaling) {
        println!("scaling        {ratio:.2}x the throughput of one thread ({one:.0}/s, the same run just before)");
    }
    latency_line("latency", &report.latency);
    if let (Some(inside), Some(outside)) = (&report.in_swap_windows, &report.outside_swap_windows) {
        println!("swaps          {}", report.swaps);
        latency_line("in swaps", inside);
        latency_line("outside swaps", outside);
    }
    if let Some(rss) = report.peak_rss_bytes {
        println!("peak memory    {:.1} MiB", rss as f64 / f64::from(1 << 20));
    }
    finish(&report, &args)
}

/// Writes the chart and the JSON report if asked; fails if any decision did.
fn finish(report: &prereg::bench::BenchReport, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.plot {
        prereg::bench::plot::write(report, path)?;
        println!("chart          {}", path.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| InputError(format!("--json {}: {e}", path.display())))?;
    }
    Ok(if report.failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn latency_line(label: &str, l: &Latency) {
    println!(
        "{label:<14} p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  p999 {:>8.1} µs  ({} decisions)",
        l.p50, l.p90, l.p99, l.p999, l.count
    );
}

/// `prereg bench --http URL`: drives a running service.
fn run_http(url: &str, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let (Some(procedure), Some(names_file)) = (&args.procedure, &args.names) else {
        return Err(InputError("--http needs --procedure and --names".into()).into());
    };
    let text = std::fs::read_to_string(names_file)
        .map_err(|e| InputError(format!("--names {}: {e}", names_file.display())))?;
    let names: Vec<String> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(InputError(format!("--names {}: no names in it (one per line)", names_file.display())).into());
    }
    let secret = std::env::var("PREREG_CALLER_SECRET")
        .map_err(|_| InputError("--http: set PREREG_CALLER_SECRET to the CA caller's secret".into()))?;
    let options = prereg::bench::http::HttpBenchOptions {
        url: url.to_owned(),
        procedure: procedure.clone(),
        names,
        secret: secret.trim().to_owned(),
        connections: args.connections.clamp(1, 4096),
        threads: args.threads.clamp(1, 256),
        duration: seconds("--seconds", args.seconds)?,
        enroll_percent: args.enroll_percent,
    };
    let report = prereg::bench::http::run(&options).map_err(|e| InputError(e.to_string()))?;
    let Some(mix) = &report.http else { return Err(anyhow::anyhow!("the HTTP run reported no mix")) };
    println!(
        "target         {url} (procedure {procedure}, {} names, {} connections on {} threads, {}% enrollments)",
        report.registrations, mix.connections, report.threads, args.enroll_percent
    );
    println!(
        "decisions      {} in {:.1} s: {:.0}/s ({} dry runs, {} enrollments; {} allowed), {} failures",
        report.decisions,
        report.seconds,
        report.decisions_per_second,
        mix.checks,
        mix.enrolls,
        mix.allowed,
        report.failures
    );
    let statuses: Vec<String> = mix
        .statuses
        .iter()
        .map(|(status, n)| if *status == 0 { format!("no answer {n}") } else { format!("HTTP {status} {n}") })
        .collect();
    println!("answers        {}", statuses.join(", "));
    latency_line("latency", &report.latency);
    if mix.checks > 0 && mix.enrolls > 0 {
        latency_line("dry runs", &mix.check_latency);
        latency_line("enrollments", &mix.enroll_latency);
    }
    if let Some(why) = &mix.first_refusal {
        eprintln!("first failure: {why}");
    }
    if report.decisions == 0 {
        return Err(InputError(format!(
            "{url}: no request was answered ({})",
            mix.first_refusal.as_deref().unwrap_or("no answer")
        ))
        .into());
    }
    finish(&report, args)
}
