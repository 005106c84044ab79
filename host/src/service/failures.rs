//! Failed enrollment attempts limited per client address: a token bucket per
//! address (IPv6 by /64 prefix, which one subscriber typically holds), spent
//! by every denied enrollment (REST, CMP, SCEP alike) and refilled over time.
//! An address whose bucket is empty is answered 429 with Retry-After before
//! anything is decided. This is beside each registration's own lockout (five
//! bad passwords in a row): an attacker trying many names, or many devices'
//! passwords, from one address is slowed as much as one trying one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked at most; full buckets are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

/// The limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failures an address may make in a burst.
    pub burst: u32,
    /// Failures an address regains per minute.
    pub per_minute: u32,
}

impl Default for FailureLimits {
    fn default() -> Self {
        FailureLimits { burst: 20, per_minute: 10 }
    }
}

/// The per-address buckets.
#[derive(Debug)]
pub struct FailureLimiter {
    limits: FailureLimits,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl FailureLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: FailureLimits) -> Self {
        FailureLimiter { limits, buckets: Mutex::new(HashMap::new()) }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let per_second = f64::from(self.limits.per_minute) / 60.0;
        let gained = now.saturating_duration_since(bucket.last).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + gained).min(f64::from(self.limits.burst));
        bucket.last = now;
    }

    /// Whether `address` may try now; otherwise the seconds until it may.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        let key = key(address);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(bucket) = buckets.get_mut(&key) else { return Ok(()) };
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let per_second = f64::from(self.limits.per_minute.max(1)) / 60.0;
        Err(((1.0 - bucket.tokens) / per_second).ceil() as u64)
    }

    /// Spends one token of `address` if it has one (a request counted as it
    /// comes, not as it fails); otherwise the seconds until it has.
    pub fn take(&self, address: IpAddr) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = self.bucket(&mut buckets, address);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let per_second = f64::from(self.limits.per_minute.max(1)) / 60.0;
        Err(((1.0 - bucket.tokens) / per_second).ceil() as u64)
    }

    /// Records a failed attempt by `address`.
    pub fn failed(&self, address: IpAddr) {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = self.bucket(&mut buckets, address);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// The bucket of `address`, refilled to now (made full if it had none;
    /// at the limit of addresses, the full ones are forgotten first).
    fn bucket<'a>(&self, buckets: &'a mut HashMap<IpAddr, Bucket>, address: IpAddr) -> &'a mut Bucket {
        let key = key(address);
        let now = Instant::now();
        let full = f64::from(self.limits.burst);
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&key) {
            for bucket in buckets.values_mut() {
                self.refill(bucket, now);
            }
            buckets.retain(|_, b| b.tokens < full);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: full, last: now });
        self.refill(bucket, now);
        bucket
    }
}

/// The bucket an address falls in: itself, or its /64 for IPv6 (an
/// IPv4-mapped address counts as the IPv4 address).
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refused_and_addresses_apart() {
        let limiter = FailureLimiter::new(FailureLimits { burst: 3, per_minute: 1 });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(a), Ok(()));
            limiter.failed(a);
        }
        let wait = limiter.check(a).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        // Another address is not affected; one of the same /64 is.
        assert_eq!(limiter.check("192.0.2.2".parse().unwrap()), Ok(()));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..3 {
            limiter.failed(v6);
        }
        assert!(limiter.check("2001:db8::ffff:1".parse().unwrap()).is_err());
        assert_eq!(limiter.check("2001:db8:0:1::1".parse().unwrap()), Ok(()));
    }
}
