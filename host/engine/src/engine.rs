//! The wasmtime engine: one per process, with its limits, its instance
//! allocation and the epoch ticker that enforces deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::EngineError;

/// Limits applied to every evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one evaluation (policy code, not host imports).
    pub deadline: Duration,
    /// Largest linear memory a policy may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Largest component file accepted, in bytes.
    pub max_component_bytes: usize,
    /// Host-import calls one evaluation may make, all imports together (an
    /// import storm is stopped here, not only by the deadline).
    pub max_import_calls: u32,
    /// Longest string that may cross the boundary, either way: an import's
    /// argument, or a string in the policy's answer.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(200),
            max_memory_bytes: 32 << 20,
            max_component_bytes: 16 << 20,
            max_import_calls: 10_000,
            max_string_bytes: 4096,
        }
    }
}

/// How stores get their instances' memories and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Mapped for each store and unmapped after it (wasmtime's default).
    #[default]
    OnDemand,
    /// Taken from pools reserved once per engine and reset between stores
    /// (wasmtime's pooling allocator), for up to this many evaluations at once.
    Pooling {
        /// Evaluations that may run at the same time.
        concurrent: u32,
    },
}

/// Bytes of each pooled memory kept resident between evaluations (a policy
/// that dirties more gets the rest reset by madvise).
const KEEP_RESIDENT: usize = 2 << 20;

/// How often the epoch ticker advances the engine's epoch.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A wasmtime engine configured for prereg policies, with its epoch ticker.
/// Clone it freely: clones share the engine and the ticker.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    limits: Limits,
    /// With the pooling allocator: the free instance slots. An evaluation
    /// waits for one rather than fail when all are in use.
    slots: Option<Slots>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl PolicyEngine {
    /// An engine with the given limits and its ticker thread.
    pub fn new(limits: Limits) -> Result<Self, EngineError> {
        Self::with_allocation(limits, Allocation::OnDemand)
    }

    /// An engine with the given limits and instance allocation.
    pub fn with_allocation(limits: Limits, allocation: Allocation) -> Result<Self, EngineError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Policies are small: a small stack bounds deep recursion early.
        config.max_wasm_stack(512 << 10);
        if let Allocation::Pooling { concurrent } = allocation {
            let concurrent = concurrent.max(1);
            // A Rust wasm32-wasip2 component has a few core instances (its
            // module and the WASI adapter's), each with a memory or tables.
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(concurrent)
                .total_core_instances(concurrent.saturating_mul(8))
                .total_memories(concurrent.saturating_mul(4))
                .total_tables(concurrent.saturating_mul(8))
                .max_memory_size(limits.max_memory_bytes)
                // Reset a slot by rewriting the pages the evaluation dirtied
                // (found with Linux's PAGEMAP_SCAN where the kernel has it),
                // instead of madvise: no page faults on the next use, and no
                // TLB shootdown interrupting the other deciding threads.
                .pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT / 16);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            // Reserve what the memory cap allows, not wasmtime's 4 GiB per slot.
            config.memory_reservation(limits.max_memory_bytes as u64);
            config.memory_guard_size(64 << 10);
        }
        let engine = Engine::new(&config).map_err(EngineError::Config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("prereg-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(EngineError::Ticker)?
        };
        let slots = match allocation {
            Allocation::Pooling { concurrent } => Some(Slots::new(concurrent.max(1))),
            Allocation::OnDemand => None,
        };
        Ok(PolicyEngine { inner: Arc::new(EngineInner { engine, limits, slots, stop, ticker: Some(ticker) }) })
    }

    /// Waits for a free instance slot (pooling allocator only); the slot is
    /// free again when the permit drops.
    pub(crate) fn permit(&self) -> Option<SlotPermit<'_>> {
        self.inner.slots.as_ref().map(Slots::acquire)
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The limits of every evaluation.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Epoch ticks that make up the deadline (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        (self.inner.limits.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64
    }
}

/// A counting semaphore over the pooling allocator's instance slots.
struct Slots {
    free: std::sync::Mutex<u32>,
    freed: std::sync::Condvar,
}

/// One slot in use, until dropped.
pub(crate) struct SlotPermit<'a>(&'a Slots);

impl Slots {
    fn new(count: u32) -> Self {
        Slots { free: std::sync::Mutex::new(count), freed: std::sync::Condvar::new() }
    }

    fn acquire(&self) -> SlotPermit<'_> {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        SlotPermit(self)
    }
}

impl Drop for SlotPermit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}
