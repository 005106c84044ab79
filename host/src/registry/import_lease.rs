//! Who runs an import, so that another process marks it interrupted only
//! when that owner is gone (issue 17, item 4). Who a process is:
//! [`crate::process`].
//!
//! Any process may open the store: a service, the CLI beside it, a second
//! service starting. An import records its owner (this machine's boot, the
//! process id and the process's start time) and renews a heartbeat while it
//! runs (`LeaseClock`). Before another process marks a `running` import
//! interrupted ([`Registry::sweep_imports`]) it asks whether the owner is
//! gone:
//! - on the same boot of the same machine, the owner is gone when no process
//!   with its id and start time runs (at once, whatever the heartbeat), or
//!   when it stopped renewing for [`STALLED_AFTER_SECS`];
//! - anywhere else (another node of a cluster), when the heartbeat is older
//!   than [`EXPIRES_AFTER_SECS`].
//!
//! The sweep also deletes what imports that will never complete staged
//! (schema migration 13), in batches that each hold the write lock briefly.

use std::time::{Duration, Instant};

use super::{Registry, RegistryError};
pub use crate::process::this_process;
use crate::process::{boot_id, process_token_is_gone};
use crate::store::{ImportLease, Tx, TxKind};

/// How often a running import renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A lease of another machine expires this long after its last renewal.
pub const EXPIRES_AFTER_SECS: u64 = 30;
/// A live process of this machine that has not renewed for this long has
/// lost its import (its thread stopped without saying so).
pub const STALLED_AFTER_SECS: u64 = 300;
/// Staged rows deleted per transaction.
const PURGE_BATCH: u32 = 5_000;

/// Whether the import under `lease` has lost its owner, at `now`.
pub fn owner_is_gone(lease: &ImportLease, now: u64) -> bool {
    let Some(owner) = &lease.owner else {
        // Started by a prereg older than leases: its process is gone by the
        // time a newer one runs.
        return true;
    };
    let age = now.saturating_sub(lease.heartbeat_at.unwrap_or(0));
    let parts: Vec<&str> = owner.split('/').collect();
    match (parts.as_slice(), boot_id()) {
        ([_, boot, token], Some(ours)) if !boot.is_empty() && *boot == ours => {
            process_token_is_gone(token) || age > STALLED_AFTER_SECS
        }
        _ => age > EXPIRES_AFTER_SECS,
    }
}

/// Renews a running import's lease every [`RENEW_EVERY`].
pub(crate) struct LeaseClock {
    import: u64,
    last: Instant,
}

impl LeaseClock {
    /// A lease just taken.
    pub(crate) fn new(import: u64) -> Self {
        LeaseClock { import, last: Instant::now() }
    }

    /// Renews the lease in `tx` (a write transaction) if it is due.
    pub(crate) fn renew_in(&mut self, tx: &mut dyn Tx) -> Result<(), RegistryError> {
        if self.last.elapsed() >= RENEW_EVERY {
            tx.renew_import_lease(self.import, this_process(), super::unix_now())?;
            self.last = Instant::now();
        }
        Ok(())
    }

    /// Renews the lease in a transaction of its own if it is due (a pass
    /// that writes nothing else).
    pub(crate) fn renew(&mut self, registry: &Registry) -> Result<(), RegistryError> {
        if self.last.elapsed() >= RENEW_EVERY {
            let mut tx = registry.storage.begin(TxKind::Write)?;
            self.renew_in(tx.as_mut())?;
            tx.commit()?;
        }
        Ok(())
    }
}

/// What [`Registry::sweep_imports`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Imports whose owner was gone, now `interrupted`.
    pub interrupted: u64,
    /// Staged rows deleted (of imports that will never complete).
    pub purged: u64,
}

impl Registry {
    /// Marks `interrupted` the running imports whose owner is gone, then
    /// deletes the rows staged by imports that will never complete. Any
    /// process may run it at any time: a live import is left alone.
    pub fn sweep_imports(&self, now: u64) -> Result<Sweep, RegistryError> {
        let mut sweep = Sweep::default();
        let running = self.storage.begin(TxKind::Read)?.running_imports()?;
        let gone: Vec<&ImportLease> = running.iter().filter(|lease| owner_is_gone(lease, now)).collect();
        if !gone.is_empty() {
            let mut tx = self.storage.begin(TxKind::Write)?;
            for lease in gone {
                // Only under the lease seen: a renewal since means it lives.
                if tx.interrupt_import(lease, now)? {
                    tracing::warn!(import = lease.id, owner = ?lease.owner, "an import whose process is gone is marked interrupted");
                    sweep.interrupted += 1;
                }
            }
            tx.commit()?;
        }
        let abandoned = self.storage.begin(TxKind::Read)?.abandoned_staging()?;
        for import in abandoned {
            sweep.purged += self.purge_staged(import)?;
        }
        Ok(sweep)
    }

    /// Deletes every row `import` staged, a batch per transaction.
    pub(crate) fn purge_staged(&self, import: u64) -> Result<u64, RegistryError> {
        let mut purged = 0;
        loop {
            let mut tx = self.storage.begin(TxKind::Write)?;
            let n = tx.purge_staged(import, PURGE_BATCH)?;
            tx.commit()?;
            purged += n;
            if n < u64::from(PURGE_BATCH) {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(import, rows = purged, "rows staged by an import that did not complete are deleted");
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{process_token, start_time};

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_gone() {
        let now = 1_000;
        let mine = ImportLease { id: 1, owner: Some(this_process().into()), heartbeat_at: Some(now) };
        assert!(!owner_is_gone(&mine, now));
        // A stalled heartbeat of a live process: gone after STALLED_AFTER_SECS.
        assert!(!owner_is_gone(&mine, now + EXPIRES_AFTER_SECS + 1));
        if boot_id().is_some() {
            assert!(owner_is_gone(&mine, now + STALLED_AFTER_SECS + 1));
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            let start = start_time(pid).unwrap_or_default();
            child.wait().unwrap();
            let parts: Vec<&str> = this_process().split('/').collect();
            let dead = format!("{}/{}/{pid}.{start}", parts[0], parts[1]);
            let lease = ImportLease { id: 2, owner: Some(dead), heartbeat_at: Some(now) };
            assert!(owner_is_gone(&lease, now), "a process that exited");
            // The same pid with another start time is another process.
            let reused = format!("{}/{}/{}.1", parts[0], parts[1], std::process::id());
            let lease = ImportLease { id: 3, owner: Some(reused), heartbeat_at: Some(now) };
            assert!(owner_is_gone(&lease, now), "a reused pid");
        }
        // The same test for a file name's token.
        assert!(!process_token_is_gone(process_token()));
        assert!(process_token_is_gone(&format!("{}.1", std::process::id())));
        assert!(process_token_is_gone("not-a-token"));
        // Another machine: only the heartbeat tells.
        let remote = ImportLease { id: 4, owner: Some("elsewhere/other-boot/1.1".into()), heartbeat_at: Some(now) };
        assert!(!owner_is_gone(&remote, now + EXPIRES_AFTER_SECS));
        assert!(owner_is_gone(&remote, now + EXPIRES_AFTER_SECS + 1));
        // A lease-less import of an older prereg.
        assert!(owner_is_gone(&ImportLease { id: 5, owner: None, heartbeat_at: None }, now));
    }
}
