//! `prereg serve`.

use std::process::ExitCode;

use anyhow::Context as _;
use prereg::cluster::{Follower, NodeIdentity};
use prereg::data_dir::StoreLocation;
use prereg::registry::unix_now;
use prereg::service::checkpoints::CheckpointWriter;
use prereg::service::{self, AppState, ServiceLimits};
use prereg::store::TxKind;

use super::{Context, InputError, init};

/// Where and how often `serve` writes signed checkpoints of the audit log.
pub struct Checkpoints {
    /// The folder [default: the data folder's `checkpoints/`].
    pub dir: Option<std::path::PathBuf>,
    /// Seconds between two checkpoints (when the log grew).
    pub every: u64,
}

pub fn run(
    context: &Context,
    listen: &str,
    node: Option<String>,
    limits: ServiceLimits,
    checkpoints: Checkpoints,
) -> anyhow::Result<ExitCode> {
    context.local_only("serve")?;
    let data = context.data();
    // The embedded default initialises itself on first run; a cluster's
    // database is initialised once, by `prereg init --database`.
    if let StoreLocation::Sqlite(file) = context.store_location()?
        && !file.exists()
    {
        if data.officer_key().exists() {
            return Err(InputError(format!(
                "{} holds an officer key but no database; move the key away or use another --data",
                data.root().display()
            ))
            .into());
        }
        init::initialise(&data, "admin")?;
    }
    // Modes tightened and leftover uploads (which may hold passwords) removed
    // on every start, before anything is served.
    for change in data.tighten().with_context(|| format!("tightening {}", data.root().display()))? {
        tracing::warn!("{change}: the data folder holds keys, password hashes and uploads");
    }

    // A service decides many times: candidates come from the in-memory
    // index, and policy instances from wasmtime's pooling allocator.
    let registry = context.registry_with(service_allocation())?.with_memory_index()?;
    {
        let mut tx = registry.storage().begin(TxKind::Write)?;
        let interrupted = tx.interrupt_running_imports(unix_now())?;
        tx.commit()?;
        if interrupted > 0 {
            tracing::warn!(imports = interrupted, "imports left running by a stopped process are marked interrupted");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| InputError(format!("--listen {listen}: {e}")))?;
        let address = listener.local_addr()?;
        let info = registry.policy().info().clone();
        println!("prereg serving on http://{address} (RA page: http://{address}/)");
        println!("data {}, policy {} {} sha256:{}", data.root().display(), info.name, info.version, info.sha256);
        tracing::info!(%address, data = %data.root().display(), policy = %info.name, "listening");
        // Other processes and nodes change registrations and the active or
        // shadow policy in the store: follow them (prereg::cluster).
        let node = NodeIdentity {
            node_id: node.unwrap_or_else(|| NodeIdentity::default_name(&address)),
            address: address.to_string(),
            started_at: unix_now(),
        };
        println!("node {} on store {}", node.node_id, registry.storage().describe());
        let follower = Follower::start(registry.clone(), context.global.policy.is_none(), node)?;
        let checkpoint_dir = checkpoints.dir.unwrap_or_else(|| data.checkpoints());
        let writer = CheckpointWriter::start(
            registry.clone(),
            checkpoint_dir.clone(),
            std::time::Duration::from_secs(checkpoints.every),
        )
        .with_context(|| format!("--checkpoint-dir {}", checkpoint_dir.display()))?;
        // Without a CRL URL in ca/ca.toml, certificates name this service's.
        let crl_url = format!("http://{address}{}", service::enrollment::CRL_PATH);
        let state = AppState::with_crl_url(registry, data, limits, Some(crl_url));
        service::serve(listener, state, service::shutdown_signal()).await?;
        tokio::task::spawn_blocking(move || {
            follower.stop();
            writer.stop();
        })
        .await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The pooling allocator, sized for the evaluations a service runs at once
/// (more wait for a slot; see `PolicyEngine::with_allocation`).
fn service_allocation() -> prereg::engine::Allocation {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u32;
    prereg::engine::Allocation::Pooling { concurrent: (cores * 4).max(8) }
}
