//! A node of a cluster: several `prereg serve` processes sharing one store
//! (PostgreSQL). Each node follows the store in a thread of its own
//! ([`Follower`]):
//!
//! - registrations written through any node reach this node's in-memory
//!   index as soon as the store notifies it ([`crate::store::StoreListener`]),
//!   and at least every second; the change log is the truth, so a node that
//!   missed notifications (a lost connection) catches up from it, and every
//!   enrollment decision applies what its index has not seen anyway;
//! - a policy activated on any node is swapped in here, atomically, as a
//!   local activation is; policy versions loaded anywhere are compiled here
//!   ahead of time, so an activation only has to load them;
//! - the node reports itself every second ([`NodeRecord`]), which is what
//!   `prereg cluster status` reads;
//! - every second it revokes the CMP certificates whose confirmation window
//!   closed without a certConf, and gives their counts back
//!   ([`Registry::sweep_unconfirmed`]): every node sweeps, and each
//!   certificate is revoked once, whichever node gets there first;
//! - every [`IMPORT_SWEEP_EVERY`] it marks interrupted the imports whose
//!   process is gone, and deletes what they staged
//!   ([`Registry::sweep_imports`]).
//!
//! With SQLite (one machine) the same thread polls every second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::registry::{Registry, unix_now};
use crate::store::{NodeRecord, Storage, StoreError, StoreEvent, TxKind};

/// How often a node looks at the store without being told, and reports itself.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How often a node looks for imports whose process is gone.
pub const IMPORT_SWEEP_EVERY: Duration = Duration::from_secs(10);
/// A node not heard from for this long is shown as down.
pub const NODE_TIMEOUT_SECS: u64 = 5;
/// The longest wait between two checks of the stop flag.
const WAIT_SLICE: Duration = Duration::from_millis(250);
/// Pause after a failure to listen before trying again.
const RETRY: Duration = Duration::from_millis(250);

/// Who this node is.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Its name.
    pub node_id: String,
    /// The address it serves on.
    pub address: String,
    /// When it started, Unix seconds.
    pub started_at: u64,
}

impl NodeIdentity {
    /// The default name of a node serving on `address`: host name and port.
    pub fn default_name(address: &std::net::SocketAddr) -> String {
        format!("{}:{}", crate::process::host_name(), address.port())
    }
}

/// The thread that keeps a node in step with the store.
pub struct Follower {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following. With `follow_active` false (a policy file given on
    /// the command line), the active policy is not followed, only the shadow.
    pub fn start(registry: Registry, follow_active: bool, node: NodeIdentity) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("store-follower".into())
            .spawn(move || follow(&registry, follow_active, &node, &flag))?;
        Ok(Follower { stop, handle: Some(handle) })
    }

    /// Stops the thread, and records the node as stopped.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn follow(registry: &Registry, follow_active: bool, node: &NodeIdentity, stop: &AtomicBool) {
    let storage = registry.storage().clone();
    let mut listener = match storage.listen() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for changes in the store; polling every second");
            None
        }
    };
    let mut last_poll: Option<Instant> = None;
    let mut last_report: Option<Instant> = None;
    let mut last_import_sweep = Instant::now();
    let mut listening = true;
    report(registry, node, false);
    while !stop.load(Ordering::Relaxed) {
        let events = match listener.as_mut() {
            Some(l) => match l.wait(WAIT_SLICE) {
                Ok(events) => {
                    if !listening {
                        tracing::info!("listening to the store's notifications again");
                        listening = true;
                    }
                    events
                }
                Err(e) => {
                    if listening {
                        tracing::warn!(error = %e, "lost the store's notifications; reconnecting");
                        listening = false;
                    }
                    std::thread::sleep(RETRY);
                    Vec::new()
                }
            },
            None => {
                std::thread::sleep(WAIT_SLICE);
                Vec::new()
            }
        };
        let poll = last_poll.is_none_or(|t| t.elapsed() >= FOLLOW_EVERY);
        let reconnected = events.contains(&StoreEvent::Reconnected);
        if (poll || reconnected || events.contains(&StoreEvent::Registrations))
            && let Err(e) = registry.refresh_index()
        {
            tracing::warn!(error = %e, "cannot bring the candidate index up to the store");
        }
        if poll || reconnected || events.contains(&StoreEvent::Policy) {
            match registry.follow_store(follow_active) {
                Ok(changes) => {
                    for change in changes {
                        tracing::info!("{change} (changed in the store by another process or node)");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot follow the policy recorded in the store"),
            }
            // Versions loaded anywhere are compiled here ahead of their
            // activation (a read when there is nothing new).
            registry.prepare_stored_policies();
        }
        if poll {
            last_poll = Some(Instant::now());
            match registry.sweep_unconfirmed(unix_now()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(revoked = n, "revoked certificates never confirmed by their clients"),
                Err(e) => tracing::warn!(error = %e, "cannot revoke unconfirmed certificates"),
            }
        }
        if last_import_sweep.elapsed() >= IMPORT_SWEEP_EVERY {
            last_import_sweep = Instant::now();
            match registry.sweep_imports(unix_now()) {
                Ok(sweep) if sweep.interrupted > 0 => {
                    tracing::warn!(imports = sweep.interrupted, "imports whose process is gone are marked interrupted")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for imports whose process is gone"),
            }
        }
        if last_report.is_none_or(|t| t.elapsed() >= FOLLOW_EVERY) {
            report(registry, node, false);
            last_report = Some(Instant::now());
        }
    }
    report(registry, node, true);
}

/// How the node stands now.
fn node_record(registry: &Registry, node: &NodeIdentity, stopped: bool) -> NodeRecord {
    let policy = registry.policy().info().clone();
    NodeRecord {
        node_id: node.node_id.clone(),
        address: node.address.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_at: node.started_at,
        seen_at: unix_now(),
        policy_sha256: policy.sha256.clone(),
        policy_name: format!("{} {}", policy.name, policy.version),
        index_seq: registry.memory_index().map_or(0, |i| i.version()),
        stopped,
    }
}

/// The heartbeat, which is also the write probe behind `/readyz`: a real
/// write, each second.
fn report(registry: &Registry, node: &NodeIdentity, stopped: bool) {
    match registry.storage().report_node(&node_record(registry, node, stopped)) {
        Ok(()) => registry.set_write_fault(None),
        Err(e) => registry.set_write_fault(Some(e.to_string())),
    }
}

/// A node as `prereg cluster status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeStatus {
    /// What it last reported.
    #[serde(flatten)]
    pub node: NodeRecord,
    /// Heard from within [`NODE_TIMEOUT_SECS`] and not stopped.
    pub up: bool,
    /// Registration changes its index had not applied when it last reported.
    pub lag: u64,
}

/// The nodes of a store.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    /// Where the store is.
    pub store: String,
    /// The newest registration change.
    pub head: u64,
    /// The active policy recorded in the store (`None`: the built-in default).
    pub active_policy: Option<String>,
    /// Every node that ever served it.
    pub nodes: Vec<NodeStatus>,
}

/// Reads the nodes of a store.
pub fn status(storage: &dyn Storage, now: u64) -> Result<ClusterStatus, StoreError> {
    let mut tx = storage.begin(TxKind::Read)?;
    let head = tx.registration_change_range()?.1;
    let active_policy = tx.active_policy()?;
    let nodes = tx
        .nodes()?
        .into_iter()
        .map(|node| NodeStatus {
            up: !node.stopped && now.saturating_sub(node.seen_at) <= NODE_TIMEOUT_SECS,
            lag: head.saturating_sub(node.index_seq),
            node,
        })
        .collect();
    Ok(ClusterStatus { store: storage.describe(), head, active_policy, nodes })
}
