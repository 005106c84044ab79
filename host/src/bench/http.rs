//! `prereg bench --http URL`: drives a running `prereg serve` as a CA front
//! does, over keep-alive HTTP/1.1 connections, with a mix of dry runs
//! (`POST /v1/decisions/check`) and real enrollment decisions
//! (`POST /v1/decisions/enroll`: counted, audited, durable) for names drawn
//! at random from a list, as a CA caller. What it measures is what the CA
//! sees: the service's queueing, its group commit and the network stack
//! included.
//!
//! The client is a small HTTP/1.1 writer and reader of its own (a request
//! with `Content-Length`, a response with `Content-Length`): enough for the
//! service's answers, and cheap enough not to be what is measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BenchError, BenchReport, Latency, Sample};
use crate::dataset::SplitMix64;

/// What to drive.
#[derive(Debug, Clone)]
pub struct HttpBenchOptions {
    /// The service, `http://HOST:PORT`.
    pub url: String,
    /// The token procedure every request names.
    pub procedure: String,
    /// The names to ask for, drawn at random.
    pub names: Vec<String>,
    /// The CA caller's bearer secret.
    pub secret: String,
    /// Keep-alive connections, each with one request in flight.
    pub connections: usize,
    /// Threads of the load generator.
    pub threads: usize,
    /// How long to drive.
    pub duration: Duration,
    /// Share of enrollments among the requests, 0 to 100.
    pub enroll_percent: u32,
}

/// The mix as measured (in [`BenchReport::http`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpMix {
    /// The service driven.
    pub url: String,
    /// Connections.
    pub connections: usize,
    /// Dry runs answered (HTTP 200).
    pub checks: u64,
    /// Enrollment decisions answered (HTTP 200).
    pub enrolls: u64,
    /// Answers that allowed.
    pub allowed: u64,
    /// Latency of the dry runs.
    pub check_latency: Latency,
    /// Latency of the enrollments.
    pub enroll_latency: Latency,
    /// Responses by HTTP status (`0`: the connection failed).
    pub statuses: BTreeMap<u16, u64>,
    /// The first answer that was not 200, to say why.
    pub first_refusal: Option<String>,
}

/// One connection's measurements.
#[derive(Default)]
struct Measured {
    /// (start from the beginning of the run, latency, enroll?) of each 200.
    answered: Vec<(Duration, Duration, bool)>,
    allowed: u64,
    statuses: BTreeMap<u16, u64>,
    first_refusal: Option<String>,
}

impl Measured {
    /// Counts a response with `status` (0: none came); the first that is
    /// not 200 says why.
    fn count(&mut self, status: u16, why: impl FnOnce() -> String) {
        *self.statuses.entry(status).or_default() += 1;
        if status != 200 && self.first_refusal.is_none() {
            self.first_refusal = Some(why());
        }
    }
}

/// `http://HOST:PORT[/]` → (`HOST:PORT`, the Host header).
fn target(url: &str) -> Result<String, BenchError> {
    let refuse = |why: &str| BenchError::Http(format!("--http {url:?}: {why}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        refuse("give http://HOST:PORT (the load generator speaks plain HTTP/1.1: drive a plain listener)")
    })?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(refuse("give http://HOST:PORT, with no path"));
    }
    Ok(if authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// Drives the service for `options.duration` and reports what it saw.
pub fn run(options: &HttpBenchOptions) -> Result<BenchReport, BenchError> {
    let address = target(&options.url)?;
    if options.names.is_empty() {
        return Err(BenchError::Http("no names to ask for: give --names FILE with one name per line".into()));
    }
    if options.enroll_percent > 100 {
        return Err(BenchError::Http(format!("--enroll-percent {}: give 0 to 100", options.enroll_percent)));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| BenchError::Http(format!("the load generator's runtime: {e}")))?;
    let names = Arc::new(options.names.clone());
    let started = Instant::now();
    let deadline = started + options.duration;
    let measured: Vec<Measured> = runtime.block_on(async {
        let connections: Vec<_> = (0..options.connections.max(1))
            .map(|c| {
                let driver = Driver {
                    address: address.clone(),
                    procedure: options.procedure.clone(),
                    secret: options.secret.clone(),
                    names: names.clone(),
                    enroll_percent: options.enroll_percent,
                    started,
                    deadline,
                };
                tokio::spawn(async move { driver.drive(0x7072_6572_6567_0000 ^ c as u64).await })
            })
            .collect();
        let mut all = Vec::new();
        for connection in connections {
            all.push(connection.await.unwrap_or_default());
        }
        all
    });
    let seconds = started.elapsed().as_secs_f64().min(options.duration.as_secs_f64()).max(1e-9);
    let mut mix = HttpMix { url: options.url.clone(), connections: options.connections.max(1), ..Default::default() };
    let (mut all, mut checks, mut enrolls, mut samples) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in measured {
        mix.allowed += m.allowed;
        for (status, n) in m.statuses {
            *mix.statuses.entry(status).or_default() += n;
        }
        if mix.first_refusal.is_none() {
            mix.first_refusal = m.first_refusal;
        }
        for (at, took, enroll) in m.answered {
            all.push(took);
            if enroll {
                enrolls.push(took)
            } else {
                checks.push(took)
            }
            samples.push(Sample { at: at.as_secs_f64(), micros: took.as_secs_f64() * 1e6 });
        }
    }
    samples.sort_by(|a, b| a.at.total_cmp(&b.at));
    mix.checks = checks.len() as u64;
    mix.enrolls = enrolls.len() as u64;
    mix.check_latency = Latency::of(&mut checks);
    mix.enroll_latency = Latency::of(&mut enrolls);
    let failures = mix.statuses.iter().filter(|(status, _)| **status != 200).map(|(_, n)| n).sum();
    Ok(BenchReport {
        store: options.url.clone(),
        registrations: options.names.len() as u64,
        setup_seconds: 0.0,
        restart_seconds: 0.0,
        index: None,
        threads: options.threads.max(1),
        seconds,
        decisions: all.len() as u64,
        failures,
        decisions_per_second: all.len() as f64 / seconds,
        one_thread_decisions_per_second: None,
        scaling: None,
        latency: Latency::of(&mut all),
        swaps: 0,
        in_swap_windows: None,
        outside_swap_windows: None,
        peak_rss_bytes: None,
        samples,
        swap_times: Vec::new(),
        http: Some(mix),
    })
}

/// One keep-alive connection's requests.
struct Driver {
    address: String,
    procedure: String,
    secret: String,
    names: Arc<Vec<String>>,
    enroll_percent: u32,
    started: Instant,
    deadline: Instant,
}

/// A response: its status and body.
struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

impl Driver {
    async fn drive(self, seed: u64) -> Measured {
        let mut rng = SplitMix64::new(seed);
        let mut measured = Measured::default();
        let mut connection: Option<TcpStream> = None;
        let mut buffer = Vec::with_capacity(16 * 1024);
        while Instant::now() < self.deadline {
            let mut stream = match connection.take() {
                Some(stream) => stream,
                None => match TcpStream::connect(&self.address).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        stream
                    }
                    Err(e) => {
                        measured.count(0, || format!("cannot connect to {}: {e}", self.address));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let name = &self.names[rng.below(self.names.len() as u64) as usize];
            let enroll = rng.below(100) < u64::from(self.enroll_percent);
            let request = self.request(name, enroll);
            let one = Instant::now();
            match exchange(&mut stream, &request, &mut buffer).await {
                Ok(response) => {
                    let took = one.elapsed();
                    measured.count(response.status, || {
                        format!("HTTP {}: {}", response.status, String::from_utf8_lossy(&response.body).trim())
                    });
                    if response.status == 200 {
                        measured.answered.push((one.duration_since(self.started), took, enroll));
                        let allowed = serde_json::from_slice::<serde_json::Value>(&response.body)
                            .ok()
                            .and_then(|v| v.get("allowed").and_then(serde_json::Value::as_bool));
                        measured.allowed += u64::from(allowed == Some(true));
                    }
                    if !response.close {
                        connection = Some(stream);
                    }
                }
                Err(e) if Instant::now() < self.deadline => measured.count(0, || e),
                Err(_) => {}
            }
        }
        measured
    }

    fn request(&self, name: &str, enroll: bool) -> Vec<u8> {
        let body = serde_json::json!({ "procedure": self.procedure, "fqdn": name }).to_string();
        format!(
            "POST /v1/decisions/{} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            if enroll { "enroll" } else { "check" },
            self.address,
            self.secret,
            body.len()
        )
        .into_bytes()
    }
}

/// The longest response head read.
const MAX_HEAD: usize = 16 * 1024;
/// The longest response body read.
const MAX_BODY: usize = 1 << 20;

/// Writes `request` and reads one response.
async fn exchange(stream: &mut TcpStream, request: &[u8], buffer: &mut Vec<u8>) -> Result<Response, String> {
    stream.write_all(request).await.map_err(|e| format!("sending the request: {e}"))?;
    buffer.clear();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err("the response head is longer than 16 KiB".into());
        }
        read_more(stream, buffer).await?;
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| "the response head is not text".to_owned())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 ")))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {:?}", head.lines().next().unwrap_or("")))?;
    let (mut length, mut close) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("the response is {value} encoded; only Content-Length is read"));
        }
    }
    let length = length.ok_or("the response has no Content-Length")?;
    if length > MAX_BODY {
        return Err(format!("the response body is {length} bytes; at most 1 MiB is read"));
    }
    while buffer.len() < head_end + length {
        read_more(stream, buffer).await?;
    }
    let body = buffer[head_end..head_end + length].to_vec();
    Ok(Response { status, body, close })
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) => Err("the service closed the connection".into()),
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(format!("reading the response: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_authorities_are_driven() {
        assert_eq!(target("http://127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(target("http://127.0.0.1:8080/").unwrap(), "127.0.0.1:8080");
        assert_eq!(target("http://localhost").unwrap(), "localhost:80");
        for bad in ["https://127.0.0.1:8443", "127.0.0.1:8080", "http://", "http://h:1/v1", "http://u@h:1"] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
