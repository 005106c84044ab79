//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! - `prereg_decisions_total{mode, outcome, reason}`: decisions by SPEC reason.
//! - `prereg_decision_duration_seconds{mode}`: decision latency, including the
//!   policy and the storage transaction.
//! - `prereg_registrations{state}`: registrations by state (read at scrape).
//! - `prereg_import_progress_rows{import, count}`: progress of running imports
//!   (`total`, `done`, `created`, `errors`), read at scrape.
//! - `prereg_import_rows_total{outcome}`: rows of finished imports.
//! - `prereg_http_requests_total{method, route, status}`.
//! - `prereg_candidate_index_registrations`, `_bytes`, `_builds`: the
//!   in-memory candidate index (read at scrape).
//! - `prereg_credentials_refused_total`: refused access tokens and caller
//!   secrets.
//! - `prereg_connections_refused`: connections closed on accept because the
//!   connection limit was reached, since start (read at scrape).
//! - `prereg_dry_runs_from_memory`: dry runs answered from the memory index
//!   without a storage transaction, since start (read at scrape).
//! - `prereg_enroll_batches`, `prereg_enroll_batched_decisions`,
//!   `prereg_enroll_batch_largest`: the group commit's write transactions,
//!   the enrollment decisions they carried, and the most one carried, since
//!   start (read at scrape).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::import::ProgressSnapshot;
use crate::registry::DecisionReport;
use crate::store::ImportRecord;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    mode: &'static str,
    outcome: &'static str,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabels {
    import: String,
    count: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

type HistogramFamily = Family<ModeLabels, Histogram, fn() -> Histogram>;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: HistogramFamily,
    registrations: Family<StateLabels, Gauge>,
    import_rows: Family<ImportLabels, Gauge>,
    import_rows_total: Family<OutcomeLabels, Counter>,
    http: Family<HttpLabels, Counter>,
    index_registrations: Gauge,
    index_bytes: Gauge,
    index_builds: Gauge,
    credentials_refused: Counter,
    connections_refused: Gauge,
    dry_runs_from_memory: Gauge,
    enroll_batches: Gauge,
    enroll_batched_decisions: Gauge,
    enroll_batch_largest: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("prereg");
        let decisions = Family::default();
        let decision_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let registrations = Family::default();
        let import_rows = Family::default();
        let import_rows_total = Family::default();
        let http = Family::default();
        registry.register("decisions", "Enrollment decisions by mode, outcome and SPEC reason", decisions.clone());
        registry.register(
            "decision_duration_seconds",
            "Enrollment decision latency (policy and storage)",
            decision_seconds.clone(),
        );
        registry.register("registrations", "Registrations by state", registrations.clone());
        registry.register(
            "import_progress_rows",
            "Rows of running imports (total, done, created, errors)",
            import_rows.clone(),
        );
        registry.register("import_rows", "Rows of finished imports by outcome", import_rows_total.clone());
        registry.register("http_requests", "HTTP requests by method, route and status", http.clone());
        let (index_registrations, index_bytes, index_builds) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "candidate_index_registrations",
            "Registrations held by the in-memory candidate index",
            index_registrations.clone(),
        );
        registry.register("candidate_index_bytes", "Heap bytes of the in-memory candidate index", index_bytes.clone());
        registry.register(
            "candidate_index_builds",
            "Full builds of the in-memory candidate index (start-up included)",
            index_builds.clone(),
        );
        let (credentials_refused, connections_refused) = (Counter::default(), Gauge::default());
        registry.register(
            "credentials_refused",
            "Refused credentials (officers' access tokens, CA callers' secrets)",
            credentials_refused.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed on accept because the connection limit was reached, since start",
            connections_refused.clone(),
        );
        let dry_runs_from_memory = Gauge::default();
        registry.register(
            "dry_runs_from_memory",
            "Dry runs answered from the memory index without a storage transaction, since start",
            dry_runs_from_memory.clone(),
        );
        let (enroll_batches, enroll_batched_decisions, enroll_batch_largest) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "enroll_batches",
            "Write transactions of the group commit (enrollment decisions, claims of transaction ids), since start",
            enroll_batches.clone(),
        );
        registry.register(
            "enroll_batched_decisions",
            "Enrollment decisions those transactions carried, since start",
            enroll_batched_decisions.clone(),
        );
        registry.register(
            "enroll_batch_largest",
            "The most enrollment decisions one write transaction carried, since start",
            enroll_batch_largest.clone(),
        );
        Metrics {
            enroll_batches,
            enroll_batched_decisions,
            enroll_batch_largest,
            credentials_refused,
            connections_refused,
            dry_runs_from_memory,
            registry,
            decisions,
            decision_seconds,
            registrations,
            import_rows,
            import_rows_total,
            http,
            index_registrations,
            index_bytes,
            index_builds,
        }
    }

    /// Counts a decision and its latency.
    pub fn decision(&self, report: &DecisionReport, seconds: f64) {
        let mode = if report.dry_run { "check" } else { "enroll" };
        let outcome = if report.allowed { "allowed" } else { "denied" };
        self.decisions.get_or_create(&DecisionLabels { mode, outcome, reason: report.reason.code().into() }).inc();
        self.decision_seconds.get_or_create(&ModeLabels { mode }).observe(seconds);
    }

    /// Counts a refused credential.
    pub fn credential_refused(&self) {
        self.credentials_refused.inc();
    }

    /// Counts an HTTP request.
    pub fn http(&self, method: &str, route: &str, status: u16) {
        self.http.get_or_create(&HttpLabels { method: method.into(), route: route.into(), status }).inc();
    }

    /// Counts the rows of a finished import.
    pub fn import_finished(&self, record: &ImportRecord) {
        if record.dry_run {
            return;
        }
        self.import_rows_total.get_or_create(&OutcomeLabels { outcome: "created" }).inc_by(record.created);
        self.import_rows_total.get_or_create(&OutcomeLabels { outcome: "unchanged" }).inc_by(record.unchanged);
        self.import_rows_total.get_or_create(&OutcomeLabels { outcome: "bad" }).inc_by(record.errors);
    }

    /// The text exposition, with the gauges read now.
    pub fn render(
        &self,
        registrations: &[(prereg_core::RegistrationState, u64)],
        imports: &[(u64, ProgressSnapshot)],
        index: Option<crate::index::IndexStats>,
        dry_runs_from_memory: u64,
        group_commit: crate::registry::GroupCommitStats,
    ) -> Result<String, std::fmt::Error> {
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.dry_runs_from_memory, dry_runs_from_memory);
        gauge(&self.enroll_batches, group_commit.batches);
        gauge(&self.enroll_batched_decisions, group_commit.decisions);
        gauge(&self.enroll_batch_largest, group_commit.largest);
        if let Some(index) = index {
            self.index_registrations.set(index.registrations as i64);
            self.index_bytes.set(index.heap_bytes as i64);
            self.index_builds.set(index.builds as i64);
        }
        let refused = super::listener::REFUSED_CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed);
        self.connections_refused.set(i64::try_from(refused).unwrap_or(i64::MAX));
        self.registrations.clear();
        for state in [
            prereg_core::RegistrationState::Open,
            prereg_core::RegistrationState::Used,
            prereg_core::RegistrationState::Disabled,
            prereg_core::RegistrationState::Locked,
        ] {
            let n = registrations.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            self.registrations.get_or_create(&StateLabels { state: state.as_str().into() }).set(n as i64);
        }
        self.import_rows.clear();
        for (id, p) in imports {
            for (count, value) in [("total", p.total), ("done", p.done), ("created", p.created), ("errors", p.errors)] {
                self.import_rows.get_or_create(&ImportLabels { import: id.to_string(), count }).set(value as i64);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
