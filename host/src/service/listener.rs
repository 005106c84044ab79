//! The service's own accept loop: what every connection is held to before
//! a request reaches the application.
//!
//! - **TLS** when configured ([`super::tls`]): the handshake must finish
//!   within the header timeout; ALPN picks HTTP/2 or HTTP/1.1.
//! - **Header timeout**: a client has this long to send a request's headers,
//!   from the moment the connection opens or the previous response ends
//!   (hyper's `header_read_timeout`, which also bounds an idle keep-alive
//!   connection): a slowloris client is closed, not waited for.
//! - **A connection limit**: past it, a new connection is closed at once
//!   (and counted), so the process keeps its file descriptors and memory for
//!   the connections it serves; `/healthz` keeps answering on them.
//! - **The client address**: the peer, or, behind a trusted proxy
//!   (`--plain-http-behind-proxy --trusted-proxy`), the last address in
//!   `X-Forwarded-For` that is not itself a trusted proxy. Handlers read it
//!   as `ConnectInfo<SocketAddr>`.
//!
//! Shutdown stops accepting, lets requests in flight finish (at most 30 s),
//! and returns.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::tls::TlsConfig;

/// Limits on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to finish the TLS handshake and send a request's headers (also
    /// the longest an idle keep-alive connection is kept).
    pub header_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// HTTP/2 streams per connection.
    pub max_streams: u32,
}

impl Default for ConnectionLimits {
    /// Sized for a 2-core machine: each connection costs a task and its
    /// buffers (tens of KiB), so 512 stay well inside the default file
    /// descriptor limit and a few tens of MiB.
    fn default() -> Self {
        ConnectionLimits { header_timeout: Duration::from_secs(20), max_connections: 512, max_streams: 64 }
    }
}

/// How the service listens.
#[derive(Clone, Default)]
pub struct ListenOptions {
    /// TLS, if served.
    pub tls: Option<Arc<TlsConfig>>,
    /// The limits.
    pub limits: ConnectionLimits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

/// Connections refused because the limit was reached (for the metrics).
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ListenOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.limits.header_timeout).max_buf_size(256 << 10);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.limits.max_streams)
        .max_header_list_size(64 << 10)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(options.limits.header_timeout);
    let trusted: Arc<[IpAddr]> = options.trusted_proxies.clone().into();
    tokio::pin!(shutdown);
    let mut last_refusal_log = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            if last_refusal_log.elapsed() > Duration::from_secs(10) {
                last_refusal_log = std::time::Instant::now();
                tracing::warn!(client = %peer.ip(), limit = options.limits.max_connections, "connection limit reached: new connections are closed");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let trusted = trusted.clone();
        // Each request knows its client's address and, on TLS, the client
        // certificate of its connection.
        let service = move |certificate: Option<ClientCertificate>| {
            let (app, trusted) = (app.clone(), trusted.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                let client = client_address(peer, request.headers(), &trusted);
                request.extensions_mut().insert(ConnectInfo(client));
                if let Some(certificate) = &certificate {
                    request.extensions_mut().insert(certificate.clone());
                }
                app.clone().oneshot(request.map(axum::body::Body::new))
            })
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = options.tls.clone();
        let header_timeout = options.limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    let stream = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer.ip(), error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer.ip(), "TLS handshake timed out");
                            return;
                        }
                    };
                    // ALPN said which protocol: no sniffing.
                    // A client certificate (verified against the instance
                    // CA in the handshake) may name a CA caller.
                    let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| {
                        use sha2::Digest as _;
                        ClientCertificate(prereg_pki::hex(&sha2::Sha256::digest(c.as_ref())))
                    });
                    let service = service(certificate);
                    let builder = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => builder.http2_only(),
                        _ => builder.http1_only(),
                    };
                    // hyper's timer starts with the first bytes: a client
                    // that sends none is closed here.
                    let mut stream = tokio::io::BufReader::new(stream);
                    let first = tokio::io::AsyncBufReadExt::fill_buf(&mut stream);
                    if !matches!(tokio::time::timeout(header_timeout, first).await, Ok(Ok(bytes)) if !bytes.is_empty())
                    {
                        tracing::debug!(client = %peer.ip(), "no request within the header timeout");
                        return;
                    }
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(client = %peer.ip(), error = %e, "connection ended");
                    }
                }
                None => {
                    // The protocol is sniffed from the first bytes, which
                    // no timer of hyper's covers: a client that sends
                    // nothing is closed here.
                    let mut first = [0u8; 1];
                    if !matches!(tokio::time::timeout(header_timeout, stream.peek(&mut first)).await, Ok(Ok(1..))) {
                        tracing::debug!(client = %peer.ip(), "no request within the header timeout");
                        return;
                    }
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service(None));
                    if let Err(e) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(client = %peer.ip(), error = %e, "connection ended");
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still running 30 s after shutdown began are dropped");
        }
    }
    Ok(())
}

/// The SHA-256 (hex) of the client certificate a TLS connection presented,
/// in every request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(pub String);

/// The client of a request: the peer, unless the peer is a trusted proxy;
/// then the last `X-Forwarded-For` address that is not a trusted proxy
/// (addresses to its left were written by the client and prove nothing).
pub fn client_address(peer: SocketAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> SocketAddr {
    if !trusted.contains(&peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return SocketAddr::new(ip, 0),
            // Garbage where an address should be: stop believing the header.
            Err(_) => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let proxy: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let trusted = ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let mut headers = axum::http::HeaderMap::new();
        headers.append("x-forwarded-for", "198.51.100.1, 192.0.2.7, 10.0.0.2".parse().unwrap());
        assert_eq!(client_address(proxy, &headers, &trusted).ip().to_string(), "192.0.2.7");
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        assert_eq!(client_address(proxy, &axum::http::HeaderMap::new(), &trusted), proxy);
        let mut junk = axum::http::HeaderMap::new();
        junk.append("x-forwarded-for", "not-an-address".parse().unwrap());
        assert_eq!(client_address(proxy, &junk, &trusted), proxy);
    }
}
