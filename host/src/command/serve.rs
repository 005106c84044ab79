//! `prereg serve`.

use prereg::enroll::acme::validation::Reach;
use std::process::ExitCode;

use anyhow::Context as _;
use prereg::cluster::{Follower, NodeIdentity};
use prereg::data_dir::StoreLocation;
use prereg::registry::unix_now;
use prereg::service::checkpoints::CheckpointWriter;
use std::net::{IpAddr, SocketAddr};

use prereg::enroll::cmp::CmpLimits;
use prereg::service::failures::FailureLimits;
use prereg::service::front::{self, Front};
use prereg::service::listener::{ConnectionLimits, ListenOptions};
use prereg::service::tls::{self, TlsConfig, TlsFiles};
use prereg::service::{self, AppState, ServiceLimits};

use super::{Context, InputError, init};
use crate::cli::ServeArgs;

pub fn run(context: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
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
    let limits = ServiceLimits {
        cmp: CmpLimits {
            confirm_wait_seconds: args.cmp_confirm_seconds,
            max_iterations: args.cmp_max_iterations,
            time_window_seconds: args.cmp_time_window_seconds,
        },
        failures: FailureLimits { burst: args.failure_burst, per_minute: args.failures_per_minute },
        requests: FailureLimits { burst: args.enroll_burst, per_minute: args.enroll_per_minute },
        ..Default::default()
    };

    // A service decides many times: candidates come from the in-memory
    // index, and policy instances from wasmtime's pooling allocator.
    let registry = context.registry_with(service_allocation())?;
    // A damaged database is refused before anything is served from it.
    registry.storage().check_integrity()?;
    let registry = registry.with_memory_index()?;
    // Imports left running by a process that is gone are interrupted (a live
    // one, of another process, is left alone), and what they staged deleted.
    // (Not fatal: on a full disk the service starts to serve reads, and the
    // follower thread sweeps again every few seconds.)
    match registry.sweep_imports(unix_now()) {
        Ok(sweep) if sweep.interrupted > 0 => {
            tracing::warn!(
                imports = sweep.interrupted,
                "imports left running by a stopped process are marked interrupted"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot look for imports left running by a stopped process yet"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let listen = &args.listen;
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| InputError(format!("--listen {listen}: {e}")))?;
        let address = listener.local_addr()?;
        let face = network_face(&args, &data, address)?;
        let scheme = if face.tls.is_some() { "https" } else { "http" };
        let info = registry.policy().info().clone();
        println!("prereg serving on {scheme}://{address} (RA page: {scheme}://{address}/)");
        println!("data {}, policy {} {} sha256:{}", data.root().display(), info.name, info.version, info.sha256);
        if let Some(tls) = &face.tls {
            println!("TLS certificate {}", tls.files().cert.display());
        }
        tracing::info!(%address, data = %data.root().display(), policy = %info.name, tls = face.tls.is_some(), "listening");
        // Other processes and nodes change registrations and the active or
        // shadow policy in the store: follow them (prereg::cluster).
        let node = NodeIdentity {
            node_id: args.node.clone().unwrap_or_else(|| NodeIdentity::default_name(&address)),
            address: address.to_string(),
            started_at: unix_now(),
        };
        println!("node {} on store {}", node.node_id, registry.storage().describe());
        let follower = Follower::start(registry.clone(), context.global.policy.is_none(), node)?;
        let checkpoint_dir = args.checkpoint_dir.clone().unwrap_or_else(|| data.checkpoints());
        let writer = CheckpointWriter::start(
            registry.clone(),
            checkpoint_dir.clone(),
            std::time::Duration::from_secs(args.checkpoint_seconds),
        )
        .with_context(|| format!("--checkpoint-dir {}", checkpoint_dir.display()))?;
        // Without a CRL URL in ca/ca.toml, certificates name this service's.
        let base = args.public_url.clone().unwrap_or_else(|| format!("{scheme}://{address}"));
        let crl_url = format!("{}{}", base.trim_end_matches('/'), service::enrollment::CRL_PATH);
        let reach = acme_reach(&args, address)?;
        let state =
            AppState::with_crl_url(registry, data, limits, Some(crl_url)).with_front(face.front).with_acme_reach(reach);
        if let Some(metrics) = &args.metrics_listen {
            let listener = tokio::net::TcpListener::bind(metrics)
                .await
                .map_err(|e| InputError(format!("--metrics-listen {metrics}: {e}")))?;
            println!("metrics on http://{}/metrics (no credential: keep this address private)", listener.local_addr()?);
            let app = service::metrics_app(state.clone());
            // The same connection limits as the main address; it ends with the process.
            tokio::spawn(async move {
                let options = ListenOptions::default();
                if let Err(e) = service::listener::serve(listener, app, options, std::future::pending()).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        if let Some(tls) = &face.tls {
            tls.watch(std::time::Duration::from_secs(5));
        }
        let options = ListenOptions {
            tls: face.tls,
            limits: ConnectionLimits {
                header_timeout: std::time::Duration::from_secs(args.header_timeout_seconds),
                max_connections: args.max_connections as usize,
                idle_timeout: std::time::Duration::from_secs(args.idle_timeout_seconds),
                ..Default::default()
            },
            trusted_proxies: args.trusted_proxy.clone(),
        };
        service::serve_with(listener, state, options, service::shutdown_signal()).await?;
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

/// How the service faces the network: its TLS, and the names requests may use.
struct NetworkFace {
    tls: Option<std::sync::Arc<TlsConfig>>,
    front: Front,
}

/// Decides TLS and the Host allow-list from the flags, and refuses plain
/// HTTP on a network address unless a TLS proxy is said to be in front.
fn network_face(args: &ServeArgs, data: &prereg::DataDir, address: SocketAddr) -> anyhow::Result<NetworkFace> {
    let loopback = address.ip().is_loopback();
    // The names requests may use: the listen host as given (a name or an
    // address), the loopback names where the service answers on loopback,
    // --public-url's host and --allow-host.
    let mut names: Vec<String> = Vec::new();
    let given = front::host_of(args.listen.rsplit_once(':').map_or(args.listen.as_str(), |(h, _)| h));
    let unspecified = address.ip().is_unspecified();
    // A name, or a specific address (0.0.0.0 and :: name nothing).
    let names_itself = match given.parse::<IpAddr>() {
        Ok(ip) => !ip.is_unspecified(),
        Err(_) => !given.is_empty(),
    };
    if names_itself {
        names.push(given);
    }
    if loopback || unspecified {
        names.extend(["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()]);
    }
    if let Some(url) = &args.public_url {
        let authority = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.split('/').next())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| InputError(format!("--public-url {url}: not a URL like https://ra.example.com")))?;
        names.push(front::host_of(authority));
    }
    names.extend(args.allow_host.iter().map(|h| front::host_of(h)));
    names.sort();
    names.dedup();

    // CA callers may authenticate with a client certificate from the
    // instance CA (`prereg ca issue-client`), and devices re-enroll over EST
    // with theirs; --tls-client-ca adds roots (step-ca's, to call webhooks
    // with its own certificate).
    let mut client_roots: Vec<std::path::PathBuf> =
        Some(prereg::pki::ca::CaFiles::of(data).ca_cert()).filter(|p| p.exists()).into_iter().collect();
    client_roots.extend(args.tls_client_ca.iter().cloned());
    // And devices' manufacturer certificates (IDevID) for EST procedures that
    // trust their manufacturer (`prereg ca set --est-trust-anchor`).
    client_roots.extend(prereg::pki::ca::CaFiles::of(data).anchor_files());
    let tls = match (&args.tls_cert, &args.tls_key, args.tls_self) {
        (Some(cert), Some(key), _) => Some(
            TlsConfig::load(TlsFiles { cert: cert.clone(), key: key.clone(), client_roots: client_roots.clone() })
                .map_err(|e| InputError(format!("--tls-cert/--tls-key: {e}")))?,
        ),
        (_, _, true) => {
            let mut certified: Vec<String> = names.iter().filter(|n| *n != "::1" || loopback).cloned().collect();
            if unspecified {
                certified.push(prereg::process::host_name());
            }
            certified.retain(|n| !n.is_empty());
            let files = tls::self_issued(data, &certified, unix_now()).map_err(|e| InputError(e.to_string()))?;
            Some(TlsConfig::load(TlsFiles { client_roots, ..files }).map_err(|e| InputError(e.to_string()))?)
        }
        _ => None,
    };
    if tls.is_none() && !loopback {
        if !args.plain_http_behind_proxy {
            return Err(InputError(format!(
                "--listen {}: plain HTTP on a network address would send officers' tokens, CA callers' secrets and \
                 the RA page in the clear. Serve HTTPS (--tls-self, with a certificate from the instance CA, or \
                 --tls-cert FILE --tls-key FILE), or, if a TLS proxy is in front, say --plain-http-behind-proxy \
                 with --public-url",
                args.listen
            ))
            .into());
        }
        if args.public_url.is_none() && args.allow_host.is_empty() {
            return Err(InputError(
                "--plain-http-behind-proxy: say which host the proxy forwards (--public-url https://NAME or \
                 --allow-host NAME)"
                    .into(),
            )
            .into());
        }
    }
    let behind_tls_proxy =
        args.plain_http_behind_proxy && args.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    Ok(NetworkFace { front: Front { allowed_hosts: Some(names), tls: tls.is_some() || behind_tls_proxy }, tls })
}

/// The pooling allocator, sized for the evaluations a service runs at once
/// (more wait for a slot; see `PolicyEngine::with_allocation`).
fn service_allocation() -> prereg::engine::Allocation {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u32;
    prereg::engine::Allocation::Pooling { concurrent: (cores * 4).max(8) }
}

/// Where ACME validations reach devices: DNS, port 80, unless the operator
/// points names elsewhere for tests (`--acme-resolve`, `--acme-http-port`),
/// which is refused unless the service listens on loopback.
fn acme_reach(args: &ServeArgs, address: std::net::SocketAddr) -> anyhow::Result<Reach> {
    let dns_server = match &args.acme_dns_server {
        None => None,
        Some(text) => Some(
            text.parse::<std::net::SocketAddr>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53)))
                .map_err(|_| InputError(format!("--acme-dns-server {text:?}: write ADDRESS or ADDRESS:PORT")))?,
        ),
    };
    let mut reach = Reach { resolve: std::collections::HashMap::new(), http_port: args.acme_http_port, dns_server };
    let testing = !args.acme_resolve.is_empty() || args.acme_http_port != 80;
    if testing && !address.ip().is_loopback() {
        return Err(InputError(format!(
            "--acme-resolve and --acme-http-port are for tests on one machine: the service must listen on loopback, \
             not {address}"
        ))
        .into());
    }
    for entry in &args.acme_resolve {
        let refused = |why: &str| InputError(format!("--acme-resolve {entry:?}: {why}"));
        let (name, ip) = entry.split_once('=').ok_or_else(|| refused("write NAME=ADDRESS"))?;
        let name = prereg_core::Fqdn::parse(name).map_err(|e| refused(&e.to_string()))?;
        let ip: std::net::IpAddr = ip.trim().parse().map_err(|_| refused("the address is not an IP address"))?;
        reach.resolve.insert(name.as_str().to_owned(), ip);
    }
    Ok(reach)
}
