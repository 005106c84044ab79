//! `prereg serve`.

use std::process::ExitCode;

use anyhow::Context as _;
use prereg::registry::unix_now;
use prereg::service::{self, AppState, ServiceLimits};
use prereg::store::TxKind;

use super::{Context, InputError, init};

/// How often the service looks for policy changes made by other processes.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub fn run(context: &Context, listen: &str) -> anyhow::Result<ExitCode> {
    context.local_only("serve")?;
    let data = context.data();
    if !data.database().exists() {
        if data.officer_key().exists() {
            return Err(InputError(format!(
                "{} holds an officer key but no database; move the key away or use another --data",
                data.root().display()
            ))
            .into());
        }
        init::initialise(&data, "admin")?;
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
        // Another process may change the active or shadow policy in the store
        // (`prereg policy activate` without --server): follow it.
        let follower = registry.clone();
        let follow_active = context.global.policy.is_none();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FOLLOW_EVERY);
            loop {
                tick.tick().await;
                let registry = follower.clone();
                let followed = tokio::task::spawn_blocking(move || {
                    // Registrations written by other processes reach the index
                    // here, so that decisions seldom have changes to apply.
                    if let Err(e) = registry.refresh_index() {
                        tracing::warn!(error = %e, "cannot bring the candidate index up to the store");
                    }
                    registry.follow_store(follow_active)
                });
                match followed.await {
                    Ok(Ok(changes)) => {
                        for change in changes {
                            tracing::info!("{change} (changed in the store by another process)");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot follow the policy recorded in the store"),
                    Err(e) => tracing::warn!(error = %e, "policy follower failed"),
                }
            }
        });
        let state = AppState::new(registry, data, ServiceLimits::default());
        service::serve(listener, state, service::shutdown_signal()).await?;
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
