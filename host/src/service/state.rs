//! What every request handler shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::metrics::Metrics;
use crate::DataDir;
use crate::Registry;
use crate::import::{ImportProgress, ProgressSnapshot};
use crate::service::problem::ApiError;

/// Limits of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Largest import upload, in bytes.
    pub max_upload_bytes: u64,
    /// Largest JSON body, in bytes.
    pub max_body_bytes: usize,
    /// The CMP server's confirmation window, iteration bound and messageTime window.
    pub cmp: crate::enroll::cmp::CmpLimits,
    /// Failed enrollments allowed per client address.
    pub failures: super::failures::FailureLimits,
    /// Requests to the enrollment endpoints (SCEP, CMP) allowed per client
    /// address.
    pub requests: super::failures::FailureLimits,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_upload_bytes: 1 << 30,
            max_body_bytes: 256 << 10,
            cmp: crate::enroll::cmp::CmpLimits::default(),
            failures: super::failures::FailureLimits::default(),
            requests: super::failures::FailureLimits { burst: 120, per_minute: 600 },
        }
    }
}

/// An import running in the background.
pub struct RunningImport {
    /// Its progress (and its cancel switch).
    pub progress: Arc<ImportProgress>,
    /// The thread running it.
    pub thread: Option<JoinHandle<()>>,
}

/// The CMP and SCEP servers, over the data folder's CA.
#[derive(Clone)]
pub struct Enrollment {
    /// CMP.
    pub cmp: Arc<crate::enroll::cmp::CmpServer>,
    /// SCEP.
    pub scep: Arc<crate::enroll::scep::ScepServer>,
    /// EST.
    pub est: Arc<crate::enroll::est::EstServer>,
    /// ACME.
    pub acme: Arc<crate::enroll::acme::AcmeServer>,
    /// The CA (for its CRL).
    pub ca: Arc<crate::pki::Ca>,
}

/// The service's shared state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    data: DataDir,
    metrics: Metrics,
    limits: ServiceLimits,
    imports: Mutex<HashMap<u64, RunningImport>>,
    shutting_down: AtomicBool,
    /// The enrollment endpoints, made when the data folder first has a CA.
    enrollment: Mutex<Option<Enrollment>>,
    /// The CRL URL issued certificates name when `ca/ca.toml` sets none.
    default_crl_url: Option<String>,
    /// Failed enrollments per client address.
    failures: super::failures::FailureLimiter,
    /// Refused credentials per client address.
    auth_failures: super::failures::FailureLimiter,
    /// CA callers resolved while the store stood still.
    resolved_callers: Arc<super::auth::ResolvedCallers>,
    /// Enrollment requests per client address.
    requests: super::failures::FailureLimiter,
    /// How the service faces its clients.
    front: super::front::Front,
    /// How ACME validations reach devices.
    acme_reach: crate::enroll::acme::validation::Reach,
    /// Imports of this process that failed, and why (their record may not
    /// have been writable).
    failed_imports: Mutex<HashMap<u64, String>>,
}

impl AppState {
    /// The state of a service over `registry`, keeping uploads and reports in
    /// `data`.
    pub fn new(registry: Registry, data: DataDir, limits: ServiceLimits) -> Self {
        Self::with_crl_url(registry, data, limits, None)
    }

    /// [`AppState::new`], naming `default_crl_url` in issued certificates
    /// when the CA's settings name no CRL URL (`prereg serve` passes
    /// `http://<its address>/ca/crl`).
    pub fn with_crl_url(
        registry: Registry,
        data: DataDir,
        limits: ServiceLimits,
        default_crl_url: Option<String>,
    ) -> Self {
        // A CA caller resolved before this process's own enrollment batches
        // is still resolved after them: they change no caller.
        let resolved_callers = Arc::new(super::auth::ResolvedCallers::default());
        registry.carry_over_own_batches(resolved_callers.clone());
        AppState {
            inner: Arc::new(Inner {
                registry,
                data,
                metrics: Metrics::new(),
                limits,
                imports: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                enrollment: Mutex::new(None),
                default_crl_url,
                failures: super::failures::FailureLimiter::new(limits.failures),
                auth_failures: super::failures::FailureLimiter::new(limits.failures),
                resolved_callers,
                requests: super::failures::FailureLimiter::new(limits.requests),
                front: super::front::Front::default(),
                acme_reach: crate::enroll::acme::validation::Reach::default(),
                failed_imports: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The data folder.
    pub fn data(&self) -> &DataDir {
        &self.inner.data
    }

    /// The enrollment endpoints, or why there are none: the data folder has
    /// no CA yet (`prereg ca init` may run while the service does).
    pub fn enrollment(&self) -> Result<Enrollment, ApiError> {
        let mut slot = self.inner.enrollment.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(servers) = slot.as_ref() {
            return Ok(servers.clone());
        }
        match crate::pki::Ca::load(&self.inner.data) {
            Ok(Some(ca)) => {
                let ca = match &self.inner.default_crl_url {
                    Some(url) => ca.with_default_crl_url(url),
                    None => ca,
                };
                let ca = Arc::new(ca);
                let registry = self.inner.registry.clone();
                let cmp =
                    crate::enroll::cmp::CmpServer::new(registry.clone(), ca.clone()).with_limits(self.inner.limits.cmp);
                let servers = Enrollment {
                    cmp: Arc::new(cmp),
                    scep: Arc::new(crate::enroll::scep::ScepServer::new(registry.clone(), ca.clone())),
                    est: Arc::new(crate::enroll::est::EstServer::new(registry.clone(), ca.clone())),
                    acme: Arc::new(crate::enroll::acme::AcmeServer::new(
                        registry,
                        ca.clone(),
                        self.inner.acme_reach.clone(),
                    )),
                    ca,
                };
                *slot = Some(servers.clone());
                Ok(servers)
            }
            Ok(None) => Err(ApiError::unavailable(format!(
                "{} has no CA: run `prereg ca init` or `prereg ca import` to enroll devices",
                self.inner.data.root().display()
            ))),
            Err(e) => Err(ApiError::unavailable(format!("the CA cannot be loaded: {e}"))),
        }
    }

    /// Failed enrollments per client address.
    pub fn failures(&self) -> &super::failures::FailureLimiter {
        &self.inner.failures
    }

    /// Refused credentials per client address.
    pub fn auth_failures(&self) -> &super::failures::FailureLimiter {
        &self.inner.auth_failures
    }

    /// CA callers resolved while the store stood still.
    pub fn resolved_callers(&self) -> &super::auth::ResolvedCallers {
        &self.inner.resolved_callers
    }

    /// Enrollment requests per client address.
    pub fn requests(&self) -> &super::failures::FailureLimiter {
        &self.inner.requests
    }

    /// How the service faces its clients.
    pub fn front(&self) -> &super::front::Front {
        &self.inner.front
    }

    /// The same state, facing its clients as `front` says (set before
    /// serving: a state already shared is left as it is).
    pub fn with_front(mut self, front: super::front::Front) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.front = front,
            None => tracing::error!("the service's front is set after it was shared: ignored"),
        }
        self
    }

    /// The same state, its ACME validations reaching devices as `reach`
    /// says (set before serving, as [`AppState::with_front`]).
    pub fn with_acme_reach(mut self, reach: crate::enroll::acme::validation::Reach) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.acme_reach = reach,
            None => tracing::error!("the ACME reach is set after the state was shared: ignored"),
        }
        self
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The limits.
    pub fn limits(&self) -> ServiceLimits {
        self.inner.limits
    }

    /// Whether shutdown has begun (then `/readyz` fails and no new import
    /// starts).
    pub fn shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }

    /// Records a running import.
    pub fn add_import(&self, id: u64, running: RunningImport) {
        if let Ok(mut map) = self.inner.imports.lock() {
            map.insert(id, running);
        }
    }

    /// The progress of a running import.
    pub fn import_progress(&self, id: u64) -> Option<ProgressSnapshot> {
        let map = self.inner.imports.lock().ok()?;
        map.get(&id).map(|r| r.progress.snapshot())
    }

    /// Progress of every running import.
    pub fn running_imports(&self) -> Vec<(u64, ProgressSnapshot)> {
        let Ok(map) = self.inner.imports.lock() else { return Vec::new() };
        let mut list: Vec<_> = map.iter().map(|(id, r)| (*id, r.progress.snapshot())).collect();
        list.sort_by_key(|(id, _)| *id);
        list
    }

    /// Remembers that an import of this process failed, and why.
    pub fn import_failed(&self, id: u64, cause: String) {
        if let Ok(mut map) = self.inner.failed_imports.lock() {
            map.insert(id, cause);
        }
    }

    /// Why an import of this process failed, if it did.
    pub fn import_failure(&self, id: u64) -> Option<String> {
        self.inner.failed_imports.lock().ok()?.get(&id).cloned()
    }

    /// Forgets a finished import.
    pub fn remove_import(&self, id: u64) {
        if let Ok(mut map) = self.inner.imports.lock() {
            map.remove(&id);
        }
    }

    /// Begins shutdown: stops running imports at their next row (an
    /// all-or-nothing import then writes nothing, a partial one keeps whole
    /// batches) and waits for them to record how far they got.
    pub fn shut_down(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let threads: Vec<JoinHandle<()>> = match self.inner.imports.lock() {
            Ok(mut map) => map
                .values_mut()
                .filter_map(|r| {
                    r.progress.cancel();
                    r.thread.take()
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("an import thread panicked during shutdown");
            }
        }
    }
}
