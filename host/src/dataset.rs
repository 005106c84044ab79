//! Seeded synthetic registrations and enrollment requests, for `prereg
//! policy bench` (and the benchmarks): exact FQDNs, `*.zone` patterns,
//! in-label wildcards, some with IP addresses or serial numbers; requests
//! that hit exact names, hit patterns, or miss. Same seed, same data.

use std::io::Write;
use std::path::Path;

use prereg_core::{Pattern, Protocol};

use crate::registry::RegistryError;
use crate::signing::{Algorithm, SigningKey};
use crate::store::{NewRegistration, ProcedureRecord, Storage, StoreError, Tx, TxKind};

/// The token procedure (and domain) of the generated data.
pub const PROCEDURE: &str = "bench";

/// A small, fast, seeded generator (SplitMix64): reproducible data, no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What kind of registration row `i` is: 70% exact, 20% `*.zone`, 5%
/// in-label wildcard, 5% exact with an IP address and a serial number.
fn kind(i: u64) -> u64 {
    i % 20
}

/// Zones of the dataset: about one per 50 registrations.
fn zones(n: u64) -> u64 {
    (n / 50).max(1)
}

/// The pattern of row `i` of an `n`-row dataset.
pub fn pattern(i: u64, n: u64) -> String {
    let zone = i % zones(n);
    match kind(i) {
        0..=13 => format!("host{i}.z{zone}.bench.example"),
        14..=17 => format!("*.w{i}.bench.example"),
        18 => format!("dev{i}-*.z{zone}.bench.example"),
        _ => format!("node{i}.z{zone}.bench.example"),
    }
}

/// Row `i` of an `n`-row dataset: pattern, IP address, serial number.
pub fn registration(i: u64, n: u64) -> (String, Option<String>, Option<String>) {
    if kind(i) == 19 { (pattern(i, n), Some(ip(i)), Some(format!("SN-{i}"))) } else { (pattern(i, n), None, None) }
}

fn ip(i: u64) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// Writes an `n`-row CSV (`fqdn,ip,serial`) for `prereg import`.
pub fn write_csv(path: &Path, n: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "fqdn,ip,serial")?;
    for i in 0..n {
        let (pattern, ip, serial) = registration(i, n);
        writeln!(out, "{pattern},{},{}", ip.unwrap_or_default(), serial.unwrap_or_default())?;
    }
    out.flush()
}

/// `count` enrollment inputs of the query mix ([`request`]) over a dataset
/// of `n`, always the same ones (the benchmarks' queries).
pub fn enrollment_inputs(n: u64, count: usize) -> Vec<crate::registry::EnrollmentInput> {
    let mut rng = SplitMix64::new(0x0062_656e_6368);
    (0..count)
        .map(|_| {
            let (fqdn, ip, serial, _) = request(&mut rng, n);
            crate::registry::EnrollmentInput { procedure: PROCEDURE.into(), fqdn, ip, serial, ..Default::default() }
        })
        .collect()
}

/// An enrollment request of the query mix, and whether it should be allowed
/// by the default policy: 50% exact hits, 25% pattern hits, 25% misses
/// (names beside registered ones, sharing their zones' suffixes).
pub fn request(rng: &mut SplitMix64, n: u64) -> (String, Option<String>, Option<String>, bool) {
    let i = rng.below(n);
    let roll = rng.below(4);
    match (roll, kind(i)) {
        (0 | 1, 0..=13) => (pattern(i, n), None, None, true),
        (0 | 1, 19) => {
            let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            (pattern(i, n), Some(ip), Some(format!("SN-{i}")), true)
        }
        (2, 14..=17) => (format!("d{}.w{i}.bench.example", rng.below(1000)), None, None, true),
        (2, 18) => (format!("dev{i}-{}.z{}.bench.example", rng.below(1000), i % zones(n)), None, None, true),
        _ => (format!("absent{i}.z{}.bench.example", i % zones(n)), None, None, false),
    }
}

/// Initialises an empty `storage` for measurements (officer `bench`, with a
/// fresh key) and [`populate`]s it with `n` registrations in one
/// transaction. Returns the officer's key and the instance id.
pub fn initialise_populated(storage: &dyn Storage, n: u64, now: u64) -> Result<(SigningKey, String), RegistryError> {
    let key = SigningKey::generate(Algorithm::EdDsa);
    let instance = crate::registry::initialise(storage, "bench", &key, now)?;
    let mut tx = storage.begin(TxKind::Write)?;
    populate(tx.as_mut(), n, &key.public_key().kid(), now)?;
    tx.commit()?;
    Ok((key, instance))
}

/// Writes the token procedure [`PROCEDURE`] (EST, preregistration required)
/// and `n` registrations straight into `tx`, as an import would store them
/// (canonical patterns and index keys), without the policy or the audit log:
/// a fixture for measurements, not a way to register devices.
pub fn populate(tx: &mut dyn Tx, n: u64, created_by: &str, now: u64) -> Result<(), StoreError> {
    tx.insert_procedure(&ProcedureRecord {
        certificate_days: 365,
        name: PROCEDURE.into(),
        domain: PROCEDURE.into(),
        protocol: Protocol::Est,
        require_preregistration: true,
        allowed_domains: vec![],
        created_by: created_by.into(),
        created_at: now,
    })?;
    for i in 0..n {
        let (text, ip, serial) = registration(i, n);
        let Ok(pattern) = Pattern::parse(&text) else { continue };
        tx.insert_registration(&NewRegistration {
            password_sealed: None,
            domain: PROCEDURE.into(),
            procedure: PROCEDURE.into(),
            index_key: pattern.index_key().encode(),
            pattern: pattern.into_string(),
            ip,
            serial,
            password_hash: None,
            expires_at: None,
            max_enrollments: None,
            created_by: created_by.into(),
            created_at: now,
            import: None,
            staged: false,
        })?;
    }
    Ok(())
}
