//! The floor of HTTP on this machine (issue 21): a bare hyper HTTP/1.1
//! server, on the same tokio runtime and hyper version as `prereg serve`,
//! answering every request with `{"status":"ok"}`, and nothing else: no
//! routing, middleware, logging, authentication or decision. What wrk
//! measures against it is the most any endpoint of `prereg serve` could
//! reach on the same cores.
//!
//! ```sh
//! cargo run --release -p prereg --example http_floor -- 127.0.0.1:18491 &
//! wrk -t2 -c16 -d10s http://127.0.0.1:18491/healthz
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18491".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&address).await.unwrap();
        println!("http_floor serving on http://{address}");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let answer = service_fn(|_request: hyper::Request<hyper::body::Incoming>| async {
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(r#"{"status":"ok"}"#))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), answer).await;
            });
        }
    });
}
