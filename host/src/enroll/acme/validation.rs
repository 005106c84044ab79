//! Challenge validation (RFC 8555 §8): the server reaches the device's name
//! itself. `http-01` fetches `http://NAME/.well-known/acme-challenge/TOKEN`
//! (port 80) and expects the key authorization; `dns-01` asks the resolver
//! for the TXT records of `_acme-challenge.NAME` and expects the key
//! authorization's SHA-256 among them.
//!
//! Names resolve through the system's resolver, except those the operator
//! points elsewhere (`prereg serve --acme-resolve NAME=ADDRESS`, for tests
//! on one machine, taken only when the service listens on loopback). A
//! name that resolves to a loopback, unspecified, link-local, multicast or
//! broadcast address is refused unless the operator pointed it there: a
//! device cannot make the server probe its own host or a cloud metadata
//! service, and an answer that is wrong is never repeated to the client.
//! Every step is bounded: one connection, 10 seconds, a 4 KiB response, no
//! redirects.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs as _, UdpSocket};
use std::time::{Duration, Instant};

use super::problem::AcmeProblem;

/// How long a validation may take in all.
pub const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a challenge response read.
const MAX_RESPONSE_BYTES: usize = 4096;

/// Where validations reach devices.
#[derive(Debug, Clone)]
pub struct Reach {
    /// Names pointed at an address by the operator (canonical names).
    pub resolve: HashMap<String, IpAddr>,
    /// The port of `http-01` (80; another only with `resolve`, for tests).
    pub http_port: u16,
    /// The DNS resolver `dns-01` asks (`None`: the first nameserver of
    /// `/etc/resolv.conf`).
    pub dns_server: Option<SocketAddr>,
}

impl Default for Reach {
    fn default() -> Self {
        Reach { resolve: HashMap::new(), http_port: 80, dns_server: None }
    }
}

/// The first nameserver of `/etc/resolv.conf`.
fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()?.parse::<IpAddr>().ok()).flatten()
        })
        .map(|ip| SocketAddr::new(ip, 53))
}

impl Reach {
    /// The addresses of `name`.
    fn addresses(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, AcmeProblem> {
        if let Some(ip) = self.resolve.get(name) {
            return Ok(vec![SocketAddr::new(*ip, port)]);
        }
        let found: Vec<SocketAddr> = (name, port)
            .to_socket_addrs()
            .map_err(|e| AcmeProblem::dns(format!("{name} does not resolve: {e}")))?
            .filter(|a| reachable(a.ip()))
            .collect();
        if found.is_empty() {
            return Err(AcmeProblem::dns(format!("{name} resolves to no address this server validates at")));
        }
        Ok(found)
    }

    /// Validates an `http-01` challenge: true if `name` answers `token`
    /// with `expected` (the key authorization).
    pub fn http01(&self, name: &str, token: &str, expected: &str) -> Result<(), AcmeProblem> {
        let started = Instant::now();
        let addresses = self.addresses(name, self.http_port)?;
        let mut last = None;
        for address in addresses {
            let left = VALIDATION_TIMEOUT.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match fetch(address, name, token, left) {
                Ok((status, body)) => {
                    if status != 200 {
                        return Err(AcmeProblem::incorrect_response(format!(
                            "http://{name}/.well-known/acme-challenge/{token} answered HTTP {status}"
                        )));
                    }
                    let text = String::from_utf8_lossy(&body);
                    let got = text.trim_end();
                    if got != expected {
                        // What was answered is not repeated: the client
                        // must not read through the server what it fetched.
                        return Err(AcmeProblem::incorrect_response(format!(
                            "http://{name}/.well-known/acme-challenge/{token} answered {} bytes that are not the \
                             key authorization",
                            body.len()
                        )));
                    }
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| AcmeProblem::connection(format!("{name}: no address answered in time"))))
    }
}

impl Reach {
    /// Validates a `dns-01` challenge: a TXT record of
    /// `_acme-challenge.NAME` holds `expected` (the key authorization's
    /// SHA-256, base64url).
    pub fn dns01(&self, name: &str, expected: &str) -> Result<(), AcmeProblem> {
        let server = self
            .dns_server
            .or_else(system_resolver)
            .ok_or_else(|| AcmeProblem::dns("no DNS resolver is configured (serve --acme-dns-server)"))?;
        let query_name = format!("_acme-challenge.{name}");
        let records = txt_records(server, &query_name, VALIDATION_TIMEOUT)?;
        if records.iter().any(|r| r == expected) {
            return Ok(());
        }
        Err(AcmeProblem::incorrect_response(if records.is_empty() {
            format!("{query_name} has no TXT record")
        } else {
            format!("no TXT record of {query_name} is the key authorization's digest ({} found)", records.len())
        }))
    }
}

/// The TXT records of `name`, asked of `server` over UDP (three tries
/// within `timeout`).
fn txt_records(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<String>, AcmeProblem> {
    let failed = |e: std::io::Error| AcmeProblem::dns(format!("asking {server} for {name}: {e}"));
    let bind: SocketAddr =
        if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(bind).map_err(failed)?;
    socket.connect(server).map_err(failed)?;
    let mut id = [0u8; 2];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let query = dns_query(u16::from_be_bytes(id), name)
        .ok_or_else(|| AcmeProblem::dns(format!("{name:?} cannot be asked in DNS")))?;
    let started = Instant::now();
    let mut answer = [0u8; 4096];
    for _ in 0..3 {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        socket.send(&query).map_err(failed)?;
        socket.set_read_timeout(Some((left / 2).max(Duration::from_millis(100)))).map_err(failed)?;
        loop {
            match socket.recv(&mut answer) {
                Ok(n) => match parse_txt_answer(&answer[..n], u16::from_be_bytes(id)) {
                    Some(Ok(records)) => return Ok(records),
                    Some(Err(rcode)) => {
                        return Err(AcmeProblem::dns(format!("{server} answered {name} with DNS error {rcode}")));
                    }
                    // Not the answer to this query: wait for it.
                    None => continue,
                },
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(failed(e)),
            }
        }
    }
    Err(AcmeProblem::dns(format!("{server} did not answer for {name} in time")))
}

/// A DNS query (recursion desired) for the TXT records of `name`.
fn dns_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut query = Vec::with_capacity(32 + name.len());
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&[0, 16, 0, 1]);
    (query.len() <= 512).then_some(query)
}

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// The TXT records of a DNS answer to query `id`: `None` if it is not one
/// (another id, not a response), `Some(Err(rcode))` for an error other than
/// NXDOMAIN (which has no records).
fn parse_txt_answer(message: &[u8], id: u16) -> Option<Result<Vec<String>, u8>> {
    let header = message.get(..12)?;
    if u16::from_be_bytes([header[0], header[1]]) != id || header[2] & 0x80 == 0 {
        return None;
    }
    let rcode = header[3] & 0x0f;
    if rcode == 3 {
        return Some(Ok(Vec::new()));
    }
    if rcode != 0 {
        return Some(Err(rcode));
    }
    let questions = u16::from_be_bytes([header[4], header[5]]);
    let answers = u16::from_be_bytes([header[6], header[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        at = skip_name(message, at)?;
        let fixed = message.get(at..at + 10)?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = message.get(at + 10..at + 10 + length)?;
        at += 10 + length;
        if kind != 16 {
            continue;
        }
        let mut text = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let n = usize::from(data[i]);
            text.extend_from_slice(data.get(i + 1..i + 1 + n)?);
            i += 1 + n;
        }
        records.push(String::from_utf8_lossy(&text).into_owned());
    }
    Some(Ok(records))
}

/// Whether a validation may connect to `ip` found in DNS: not this host
/// (loopback, unspecified), not link-local (where cloud metadata services
/// answer), not multicast or broadcast. Private networks are reachable:
/// devices live there.
fn reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_unspecified() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            let mapped = v6.to_ipv4_mapped().is_some_and(|v4| !reachable(IpAddr::V4(v4)));
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || link_local || mapped)
        }
    }
}

/// One bounded HTTP/1.1 GET: (status, body).
fn fetch(address: SocketAddr, name: &str, token: &str, timeout: Duration) -> Result<(u16, Vec<u8>), AcmeProblem> {
    let failed = |e: std::io::Error| AcmeProblem::connection(format!("{name} at {address}: {e}"));
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(failed)?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    let host = if address.port() == 80 { name.to_owned() } else { format!("{name}:{}", address.port()) };
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: prereg-acme\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut response = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 1024];
    while response.len() <= MAX_RESPONSE_BYTES + 1024 && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if response.is_empty() => return Err(failed(e)),
            Err(_) => break,
        }
    }
    parse_response(&response).ok_or_else(|| AcmeProblem::connection(format!("{name} at {address}: not an HTTP answer")))
}

/// The status and body of an HTTP/1.x response (chunked or not).
fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (key, value) = line.split_once(':')?;
        if key.trim().eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        if key.trim().eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let rest = &response[split + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut at = rest;
        loop {
            let end = at.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&at[..end]).ok()?.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            let data = at.get(end + 2..end + 2 + size)?;
            body.extend_from_slice(data);
            at = at.get(end + 2 + size + 2..)?;
        }
        body
    } else {
        let take = length.unwrap_or(rest.len()).min(rest.len()).min(MAX_RESPONSE_BYTES);
        rest[..take].to_vec()
    };
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcdeXYZ";
        assert_eq!(parse_response(plain), Some((200, b"abcde".to_vec())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, b"abcde".to_vec())));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"), Some((404, Vec::new())));
    }

    #[test]
    fn a_txt_answer_is_read_and_a_stranger_is_ignored() {
        let query = dns_query(0x1234, "_acme-challenge.dev1.example.com").unwrap();
        // The answer: the question echoed, one TXT record in two strings
        // under a compressed name, and a CNAME that is skipped.
        let mut answer = query.clone();
        answer[2] = 0x81;
        answer[3] = 0x80;
        answer[7] = 2;
        answer.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        answer.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 7, 3, b'a', b'b', b'c', 2, b'd', b'e']);
        assert_eq!(parse_txt_answer(&answer, 0x1234), Some(Ok(vec!["abcde".to_owned()])));
        assert_eq!(parse_txt_answer(&answer, 0x4321), None, "another query's answer");
        assert_eq!(parse_txt_answer(&query, 0x1234), None, "a query is no answer");
        let mut refused = query.clone();
        refused[2] = 0x81;
        refused[3] = 0x85;
        assert_eq!(parse_txt_answer(&refused, 0x1234), Some(Err(5)));
        // A truncated or lying length is refused, never read past.
        assert_eq!(parse_txt_answer(&answer[..answer.len() - 3], 0x1234), None);
    }

    #[test]
    fn validations_reach_devices_not_this_host_or_metadata_services() {
        for blocked in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!reachable(blocked.parse().unwrap()), "{blocked}");
        }
        for open in ["10.1.2.3", "192.168.1.10", "172.16.0.5", "93.184.216.34", "2001:db8::1", "fd00::5"] {
            assert!(reachable(open.parse().unwrap()), "{open}");
        }
    }

    /// An attacker's name that resolves to the server's own loopback is not
    /// fetched unless the operator pointed it there.
    #[test]
    fn loopback_is_reached_only_when_the_operator_points_a_name_there() {
        let reach = Reach::default();
        let err = reach.http01("localhost", "t", "t.x").unwrap_err();
        assert_eq!(err.kind, "dns", "{err}");
    }
}
