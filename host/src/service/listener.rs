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
//! - **An idle timeout**: a connection that has served nothing for a
//!   minute is closed (an HTTP/2 client could otherwise hold one open by
//!   answering pings).
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
use hyper_util::server::graceful::GracefulConnection;
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
    /// A connection that has served nothing for this long is closed (HTTP/1
    /// idle keep-alive is closed sooner, by the header timeout; an HTTP/2
    /// connection would otherwise be held as long as it answers pings).
    pub idle_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub max_streams: u32,
}

impl Default for ConnectionLimits {
    /// Sized for a 2-core machine: each connection costs a task and its
    /// buffers (tens of KiB), so 512 stay well inside the default file
    /// descriptor limit and a few tens of MiB.
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(20),
            max_connections: 512,
            idle_timeout: Duration::from_secs(60),
            max_streams: 64,
        }
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
    // Set at shutdown: every connection finishes what it serves and closes.
    let (stopping, stop) = tokio::sync::watch::channel(false);
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
        // certificate of its connection; the connection knows whether it is
        // serving one.
        let activity = Arc::new(Activity::new());
        let serving = activity.clone();
        // `tls`: `None` on plain HTTP; on TLS, the client certificate if any.
        let service = move |tls: Option<Option<ClientCertificate>>| {
            let (app, trusted, activity) = (app.clone(), trusted.clone(), serving.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                let client = client_address(peer, request.headers(), &trusted);
                request.extensions_mut().insert(ConnectInfo(client));
                if let Some(certificate) = &tls {
                    request.extensions_mut().insert(OverTls);
                    if let Some(certificate) = certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                }
                let serving = activity.enter();
                let response = app.clone().oneshot(request.map(axum::body::Body::new));
                async move {
                    let response = response.await;
                    drop(serving);
                    response
                }
            })
        };
        let builder = builder.clone();
        let stop = stop.clone();
        let limits = options.limits;
        let tls = options.tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    let stream = match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
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
                    let certificate = stream.get_ref().1.peer_certificates().and_then(|chain| {
                        let first = chain.first()?;
                        let ders: Vec<Vec<u8>> = chain.iter().map(|c| c.as_ref().to_vec()).collect();
                        Some(ClientCertificate(prereg_pki::x509::fingerprint(first.as_ref()), Arc::from(ders)))
                    });
                    let service = service(Some(certificate));
                    let builder = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => builder.http2_only(),
                        _ => builder.http1_only(),
                    };
                    // hyper's timer starts with the first bytes: a client
                    // that sends none is closed here.
                    let mut stream = tokio::io::BufReader::new(stream);
                    let first = tokio::io::AsyncBufReadExt::fill_buf(&mut stream);
                    if !matches!(tokio::time::timeout(limits.header_timeout, first).await, Ok(Ok(bytes)) if !bytes.is_empty())
                    {
                        tracing::debug!(client = %peer.ip(), "no request within the header timeout");
                        return;
                    }
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    drive(connection.into_owned(), &activity, limits, stop, peer).await;
                }
                None => {
                    // The protocol is sniffed from the first bytes, which
                    // no timer of hyper's covers: a client that sends
                    // nothing is closed here.
                    let mut first = [0u8; 1];
                    if !matches!(
                        tokio::time::timeout(limits.header_timeout, stream.peek(&mut first)).await,
                        Ok(Ok(1..))
                    ) {
                        tracing::debug!(client = %peer.ip(), "no request within the header timeout");
                        return;
                    }
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service(None));
                    drive(connection.into_owned(), &activity, limits, stop, peer).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a permit until it ends: all of them back means
    // all ended.
    let all = u32::try_from(options.limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(30), permits.acquire_many(all)).await.is_err() {
        tracing::warn!("requests still running 30 s after shutdown began are dropped");
    }
    Ok(())
}

/// Drives one connection to its end: closed gracefully (what is in flight
/// finishes) when it has served nothing for `timeouts.idle_timeout` (an
/// HTTP/2 connection answers pings forever otherwise) or when the service
/// stops; a client that does not let it close within the header timeout
/// (HTTP/2's graceful close waits for the client's answer to a ping) is cut
/// off.
async fn drive<C: GracefulConnection>(
    connection: C,
    activity: &Activity,
    timeouts: ConnectionLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    peer: SocketAddr,
) where
    C::Error: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(timeouts.idle_timeout));
    // Far away until the connection is asked to close.
    let cut_off = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    let mut cut_off = std::pin::pin!(cut_off);
    let mut closing = false;
    loop {
        let close = tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(client = %peer.ip(), error = %e, "connection ended");
                }
                return;
            }
            () = &mut cut_off => {
                tracing::debug!(client = %peer.ip(), "connection cut off: it did not close when asked");
                return;
            }
            changed = stop.changed(), if !closing => changed.is_err() || *stop.borrow(),
            _ = tick.tick(), if !closing => {
                let idle = activity.idle_for().is_some_and(|quiet| quiet >= timeouts.idle_timeout);
                if idle {
                    tracing::debug!(client = %peer.ip(), "idle connection closed");
                }
                idle
            }
        };
        if close {
            closing = true;
            connection.as_mut().graceful_shutdown();
            cut_off.as_mut().reset(tokio::time::Instant::now() + timeouts.header_timeout);
        }
    }
}

/// Whether a connection is serving a request, and since when it is not.
struct Activity {
    running: std::sync::atomic::AtomicUsize,
    /// Milliseconds from `start` to when the last request ended (or the
    /// connection opened).
    last: AtomicU64,
    start: std::time::Instant,
}

impl Activity {
    fn new() -> Self {
        Activity { running: Default::default(), last: AtomicU64::new(0), start: std::time::Instant::now() }
    }

    /// Marks a request as running until the guard is dropped.
    fn enter(self: &Arc<Self>) -> ActivityGuard {
        self.running.fetch_add(1, Ordering::SeqCst);
        ActivityGuard(self.clone())
    }

    /// How long nothing has run; `None` while something does.
    fn idle_for(&self) -> Option<Duration> {
        if self.running.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last.load(Ordering::SeqCst));
        Some(self.start.elapsed().saturating_sub(since))
    }
}

struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last.store(now, Ordering::SeqCst);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The client certificate a TLS connection presented (verified in the
/// handshake against the client roots), in every request's extensions: its
/// SHA-256 (hex), and the chain as presented (DER, the client's own first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(pub String, pub Arc<[Vec<u8>]>);

/// In every request's extensions when its connection is TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

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
