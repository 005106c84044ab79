//! `prereg bench`: decisions under load (see `prereg::bench`).

use std::process::ExitCode;
use std::time::Duration;

use prereg::PolicyEngine;
use prereg::bench::{BenchOptions, Latency};
use prereg::engine::Allocation;

use super::{Context, InputError};
use crate::cli::{AllocationArg, BenchArgs};

pub fn run(context: &Context, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let seconds = |what: &str, s: f64| {
        if s.is_finite() && (0.01..=86_400.0).contains(&s) {
            Ok(Duration::from_secs_f64(s))
        } else {
            Err(InputError(format!("{what} {s}: give seconds between 0.01 and 86400")))
        }
    };
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
    let line = |label: &str, l: &Latency| {
        println!(
            "{label:<14} p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  p999 {:>8.1} µs  ({} decisions)",
            l.p50, l.p90, l.p99, l.p999, l.count
        );
    };
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
    line("latency", &report.latency);
    if let (Some(inside), Some(outside)) = (&report.in_swap_windows, &report.outside_swap_windows) {
        println!("swaps          {}", report.swaps);
        line("in swaps", inside);
        line("outside swaps", outside);
    }
    if let Some(rss) = report.peak_rss_bytes {
        println!("peak memory    {:.1} MiB", rss as f64 / f64::from(1 << 20));
    }
    if let Some(path) = &args.plot {
        prereg::bench::plot::write(&report, path)?;
        println!("chart          {}", path.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| InputError(format!("--json {}: {e}", path.display())))?;
    }
    Ok(if report.failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
