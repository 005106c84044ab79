//! `prereg bench`: decisions under load on a generated dataset, through the
//! registry the service runs (`Registry::decide`, dry runs: the store, the
//! built-in policy component, the guard), from several threads for a while,
//! optionally swapping the policy every few seconds. It reports throughput,
//! latency percentiles, failures and memory, and for swaps the latency inside
//! and outside the swap windows. With `--http URL` it drives a running
//! service instead ([`http`]).

#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "cli")]
pub mod plot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dataset::{self, SplitMix64};
use crate::engine::cache::{MemoryLedger, PrecompiledCache};
use crate::engine::{EngineError, PolicyEngine};
use crate::policy::Policy;
use crate::registry::{DecisionMode, EnrollmentInput, Registry, RegistryError};
use crate::store::{SqliteStorage, Storage, StoreError, TxKind};

/// How long after a swap a decision counts as "inside the swap window".
pub const SWAP_WINDOW: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Registrations in the dataset.
    pub registrations: u64,
    /// Deciding threads.
    pub threads: usize,
    /// How long to decide.
    pub duration: Duration,
    /// Swap the policy this often.
    pub swap_every: Option<Duration>,
    /// Run on one thread first, and report the throughput ratio.
    pub scaling: bool,
    /// Answer candidate lookups from the in-memory index (as `prereg serve`
    /// does); false: from the storage index.
    pub memory_index: bool,
    /// Store the dataset in this empty PostgreSQL database instead of a
    /// scratch SQLite file.
    pub database: Option<String>,
}

/// The in-memory candidate index as the bench found it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IndexReport {
    /// Registrations it holds.
    pub registrations: usize,
    /// Seconds to build it from the store (part of the restart).
    pub build_seconds: f64,
    /// Heap bytes, from the capacities of its tables and strings.
    pub heap_bytes: usize,
    /// Resident memory the build added, bytes (allocator overhead included).
    pub rss_bytes: u64,
    /// `rss_bytes` per registration.
    pub rss_bytes_per_registration: f64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Decisions measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Latency {
    /// Of `samples` (sorted here).
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let Some(last) = samples.len().checked_sub(1) else { return 0.0 };
            samples[((last as f64) * q).round() as usize].as_secs_f64() * 1e6
        };
        Latency { count: samples.len() as u64, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999) }
    }
}

/// One decision as measured: when it started (from the start of the run) and
/// how long it took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Start, seconds from the start of the run.
    pub at: f64,
    /// Latency, microseconds.
    pub micros: f64,
}

/// What `prereg bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The store the dataset was in.
    pub store: String,
    /// Registrations in the dataset.
    pub registrations: u64,
    /// Seconds to generate and store the dataset.
    pub setup_seconds: f64,
    /// Seconds to open the store, prepare the policy and build the in-memory
    /// index afterwards (a restart).
    pub restart_seconds: f64,
    /// The in-memory index, when used.
    pub index: Option<IndexReport>,
    /// Deciding threads.
    pub threads: usize,
    /// Seconds of deciding.
    pub seconds: f64,
    /// Decisions made.
    pub decisions: u64,
    /// Decisions that failed (an error, or `policy-error`).
    pub failures: u64,
    /// Decisions per second, all threads.
    pub decisions_per_second: f64,
    /// With `scaling`: decisions per second of the same run on one thread,
    /// just before.
    pub one_thread_decisions_per_second: Option<f64>,
    /// With `scaling`: `decisions_per_second` / `one_thread_decisions_per_second`.
    pub scaling: Option<f64>,
    /// Latency of every decision.
    pub latency: Latency,
    /// Swaps made.
    pub swaps: u64,
    /// Latency of decisions that started within [`SWAP_WINDOW`] after a swap.
    pub in_swap_windows: Option<Latency>,
    /// Latency of the others.
    pub outside_swap_windows: Option<Latency>,
    /// Peak resident memory of the process, bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// Every decision, for plots (not in the JSON report).
    #[serde(skip)]
    pub samples: Vec<Sample>,
    /// When each swap happened, seconds from the start.
    pub swap_times: Vec<f64>,
    /// Driving a running service (`--http`): the mix of dry runs and
    /// enrollments as answered.
    #[cfg(feature = "service")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<http::HttpMix>,
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The policy engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The scratch folder.
    #[error("scratch folder: {0}")]
    Io(#[from] std::io::Error),
    /// The database given holds an instance already: the bench writes a
    /// generated dataset, so it needs an empty one.
    #[error("the database {0} is not empty: the bench needs an empty database for its generated dataset")]
    NotEmpty(String),
    /// Driving a service over HTTP (`--http`) failed.
    #[error("{0}")]
    Http(String),
}

/// Runs the bench on a generated dataset in a scratch folder.
pub fn run(engine: &PolicyEngine, options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let folder = tempfile::Builder::new().prefix("prereg-bench-").tempdir()?;
    let database = folder.path().join("bench.sqlite3");
    let open = || -> Result<Arc<dyn Storage>, StoreError> {
        Ok(match &options.database {
            Some(url) => crate::store::open_postgres(url)?,
            None => Arc::new(SqliteStorage::open(&database)?),
        })
    };
    let started = Instant::now();
    let store = {
        let storage = open()?;
        if storage.begin(TxKind::Read)?.instance_id()?.is_some() {
            return Err(BenchError::NotEmpty(storage.describe()));
        }
        dataset::initialise_populated(storage.as_ref(), options.registrations, crate::registry::unix_now())?;
        storage.describe()
    };
    let setup_seconds = started.elapsed().as_secs_f64();

    // A restart: open the store, prepare the policy (compiled once into the
    // cache, then deserialized, as a service restart does).
    let cache = PrecompiledCache::new(folder.path().join("cache"), Box::new(MemoryLedger::default()));
    cache.load(engine, crate::builtin::DEFAULT_POLICY_COMPONENT, "built-in")?;
    let restarted = Instant::now();
    let storage = open()?;
    let (policy, _) = cache.load(engine, crate::builtin::DEFAULT_POLICY_COMPONENT, "built-in")?;
    let mut registry = Registry::new(storage, Arc::new(policy));
    registry.instance_id()?;
    let mut index = None;
    if options.memory_index {
        let rss_before = current_rss().unwrap_or(0);
        registry = registry.with_memory_index()?;
        let rss_bytes = current_rss().unwrap_or(0).saturating_sub(rss_before);
        if let Some(built) = registry.memory_index() {
            let stats = built.stats();
            index = Some(IndexReport {
                registrations: stats.registrations,
                build_seconds: stats.last_build.as_secs_f64(),
                heap_bytes: stats.heap_bytes,
                rss_bytes,
                rss_bytes_per_registration: rss_bytes as f64 / stats.registrations.max(1) as f64,
            });
        }
    }
    let restart_seconds = restarted.elapsed().as_secs_f64();

    let scaling = if options.scaling && options.threads > 1 {
        // The same run on one thread first, on the same data and registry,
        // swapping as often.
        let one =
            decide_for(&registry, engine, &cache, options.registrations, 1, options.duration, options.swap_every)?;
        Some(one.samples.len() as f64 / one.seconds.max(1e-9))
    } else {
        None
    };
    let run = decide_for(
        &registry,
        engine,
        &cache,
        options.registrations,
        options.threads.max(1),
        options.duration,
        options.swap_every,
    )?;
    let (all, swap_times, seconds) = (run.samples, run.swap_times, run.seconds);
    let in_window = |at: Duration| swap_times.iter().any(|s| at >= *s && at < *s + SWAP_WINDOW);
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for (at, took) in &all {
        if in_window(*at) { inside.push(*took) } else { outside.push(*took) }
    }
    let samples =
        all.iter().map(|(at, took)| Sample { at: at.as_secs_f64(), micros: took.as_secs_f64() * 1e6 }).collect();
    let mut latencies: Vec<Duration> = all.iter().map(|(_, took)| *took).collect();
    let swapping = options.swap_every.is_some();
    let decisions_per_second = all.len() as f64 / seconds.max(1e-9);
    Ok(BenchReport {
        store,
        registrations: options.registrations,
        setup_seconds,
        restart_seconds,
        index,
        threads: options.threads.max(1),
        seconds,
        decisions: all.len() as u64,
        failures: run.failures,
        decisions_per_second,
        one_thread_decisions_per_second: scaling,
        scaling: scaling.map(|one| decisions_per_second / one.max(1e-9)),
        latency: Latency::of(&mut latencies),
        swaps: swap_times.len() as u64,
        in_swap_windows: swapping.then(|| Latency::of(&mut inside)),
        outside_swap_windows: swapping.then(|| Latency::of(&mut outside)),
        peak_rss_bytes: peak_rss(),
        samples,
        swap_times: swap_times.iter().map(Duration::as_secs_f64).collect(),
        #[cfg(feature = "service")]
        http: None,
    })
}

/// What one run of deciding threads measured.
struct Run {
    /// (start from the beginning of the run, latency) of every decision.
    samples: Vec<(Duration, Duration)>,
    failures: u64,
    swap_times: Vec<Duration>,
    seconds: f64,
}

/// `threads` threads decide for `duration` while this one swaps the policy
/// every `swap_every`.
fn decide_for(
    registry: &Registry,
    engine: &PolicyEngine,
    cache: &PrecompiledCache,
    registrations: u64,
    threads: usize,
    duration: Duration,
    swap_every: Option<Duration>,
) -> Result<Run, BenchError> {
    let n = registrations.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let deciders: Vec<_> = (0..threads)
        .map(|t| {
            let (registry, stop) = (registry.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = SplitMix64::new(0x0070_7265_7265_6700 ^ t as u64);
                let (mut samples, mut failures) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let (fqdn, ip, serial, _) = dataset::request(&mut rng, n);
                    let input = EnrollmentInput {
                        procedure: dataset::PROCEDURE.into(),
                        fqdn,
                        ip,
                        serial,
                        ..Default::default()
                    };
                    let one = Instant::now();
                    let at = one.duration_since(t0);
                    let result = registry.decide(input, DecisionMode::DryRun, crate::registry::unix_now());
                    let took = one.elapsed();
                    if !matches!(&result, Ok(r) if r.reason != prereg_core::Reason::PolicyError) {
                        failures += 1;
                    }
                    samples.push((at, took));
                }
                (samples, failures)
            })
        })
        .collect();
    let mut swap_times = Vec::new();
    match swap_every {
        Some(every) => {
            while t0.elapsed() + every <= duration {
                std::thread::sleep(every);
                // A new version prepared from the cache, then swapped in.
                let (policy, _) = cache.load(engine, crate::builtin::DEFAULT_POLICY_COMPONENT, "built-in")?;
                swap_times.push(t0.elapsed());
                registry.swap_policy(Arc::new(policy) as Arc<dyn Policy>);
            }
            std::thread::sleep(duration.saturating_sub(t0.elapsed()));
        }
        None => std::thread::sleep(duration),
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let (mut samples, mut failures) = (Vec::new(), 0);
    for decider in deciders {
        let (mine, failed) = decider.join().unwrap_or_default();
        samples.extend(mine);
        failures += failed;
    }
    Ok(Run { samples, failures, swap_times, seconds })
}

/// The process's peak resident memory (`VmHWM`), on Linux.
pub fn peak_rss() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// The process's resident memory now (`VmRSS`), on Linux.
pub fn current_rss() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
