//! A small CMP load generator built on the project's own CMP message code
//! (issue 21): THREADS threads send `ir` requests with implicit confirmation,
//! MAC-protected (PBMAC1-SHA256, ITERATIONS iterations) with the password of
//! a wildcard registration, each for a new device name under it, for
//! SECONDS seconds, and count the certificates issued per second.
//!
//! ```sh
//! cargo run --release -p prereg --example cmp_load -- URL PASSWORD ZONE [THREADS] [SECONDS] [ITERATIONS]
//! ```
//!
//! URL is the procedure's CMP endpoint (`http://127.0.0.1:8080/.well-known/cmp/p/routers`),
//! ZONE the registration's zone (`dept.example.com` for `*.dept.example.com`).
//! `benches/http/cmp.sh` sets a data folder up and runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prereg::enroll::cmp::client::{self, Template};
use prereg::enroll::cmp::message::{self, Header, body_tag};
use prereg::enroll::cmp::protection::MacAlgorithm;
use prereg::pki::keys::SigningKey;
use prereg::pki::{oid, x509};

/// One `ir` for `fqdn`, with implicit confirmation, MAC-protected.
fn ir(fqdn: &str, password: &str, iterations: u64, key: &SigningKey) -> Vec<u8> {
    let alg = MacAlgorithm::pbmac1_sha256(iterations);
    let header = Header {
        pvno: 2,
        sender: message::directory_name(&x509::write_name(&[(oid::CN, fqdn)])),
        recipient: message::directory_name(&x509::write_name(&[])),
        protection_alg: Some(alg.encode()),
        sender_kid: Some(fqdn.as_bytes().to_vec()),
        transaction_id: Some(message::fresh_nonce()),
        sender_nonce: None,
        recip_nonce: None,
        implicit_confirm: true,
        now: prereg::registry::unix_now(),
    };
    let template = Template { id: 0, common_name: Some(fqdn), serial_number: None, dns: &[], ips: &[] };
    let body = client::cert_requests_body(body_tag::IR, &[client::cert_req_msg(&template, key).unwrap()]);
    client::protected(&header, &body, Some((&alg, password.as_bytes())))
}

/// Whether the answer is an `ip` whose first response is accepted (0) or
/// granted with modifications (1).
fn issued(der: &[u8]) -> bool {
    matches!(message::first_status(der), Some((body_tag::IP, Some(0 | 1))))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, password, zone, rest @ ..] = args.as_slice() else {
        eprintln!("usage: cmp_load URL PASSWORD ZONE [THREADS] [SECONDS] [ITERATIONS]");
        std::process::exit(2);
    };
    let number = |i: usize, default: u64| rest.get(i).map_or(default, |s| s.parse().expect("a number"));
    let (threads, seconds, iterations) = (number(0, 16), number(1, 10), number(2, 1000));
    let stop = Arc::new(AtomicBool::new(false));
    let (issued_count, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (url, password, zone) = (url.clone(), password.clone(), zone.clone());
            let (stop, issued_count, refused, latencies) =
                (stop.clone(), issued_count.clone(), refused.clone(), latencies.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let key = SigningKey::generate_p256();
                let mut mine = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let der = ir(&format!("load-{t}-{n}.{zone}"), &password, iterations, &key);
                    let sent = Instant::now();
                    let answer = agent
                        .post(&url)
                        .content_type("application/pkixcmp")
                        .send(&der[..])
                        .and_then(|mut r| r.body_mut().read_to_vec());
                    mine.push(sent.elapsed());
                    match answer {
                        Ok(bytes) if issued(&bytes) => issued_count.fetch_add(1, Ordering::Relaxed),
                        _ => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    let issued_total = issued_count.load(Ordering::Relaxed);
    println!(
        "{threads} clients, {iterations} PBMAC1 iterations, {seconds} s: {issued_total} certificates issued \
         ({:.0}/s), {} refused or failed; latency p50 {:.1} ms, p99 {:.1} ms",
        issued_total as f64 / elapsed,
        refused.load(Ordering::Relaxed),
        ms(at(0.5)),
        ms(at(0.99)),
    );
}
