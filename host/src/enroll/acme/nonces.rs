//! Replay nonces (RFC 8555 §6.5): each is given out once, taken back once,
//! within [`NONCE_SECONDS`]. They live in this process's memory: a node of a
//! cluster refuses another node's nonce with `badNonce`, which clients
//! answer by retrying with the fresh nonce that refusal carries.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a nonce may wait to be used.
pub const NONCE_SECONDS: u64 = 600;
/// The most nonces waiting at once; past it the oldest are forgotten.
pub const MAX_NONCES: usize = 100_000;

/// The nonces given out and not yet used.
#[derive(Default)]
pub struct Nonces {
    inner: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    live: HashMap<String, Instant>,
    order: VecDeque<String>,
}

impl Nonces {
    /// A fresh nonce (128 random bits, base64url).
    pub fn issue(&self) -> String {
        let mut bytes = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        let nonce = super::jws::encode(&bytes);
        let mut waiting = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while waiting.live.len() >= MAX_NONCES {
            match waiting.order.pop_front() {
                Some(old) => {
                    waiting.live.remove(&old);
                }
                None => break,
            }
        }
        waiting.live.insert(nonce.clone(), Instant::now());
        waiting.order.push_back(nonce.clone());
        // The queue may hold nonces used already: keep it bounded too.
        if waiting.order.len() > 2 * MAX_NONCES {
            let Waiting { live, order } = &mut *waiting;
            order.retain(|n| live.contains_key(n));
        }
        nonce
    }

    /// Takes `nonce` back: true once for a nonce given out within
    /// [`NONCE_SECONDS`], false for any other.
    pub fn redeem(&self, nonce: &str) -> bool {
        let mut waiting = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        waiting.live.remove(nonce).is_some_and(|at| at.elapsed() <= Duration::from_secs(NONCE_SECONDS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_once_and_an_unknown_one_never() {
        let nonces = Nonces::default();
        let a = nonces.issue();
        let b = nonces.issue();
        assert_ne!(a, b);
        assert!(nonces.redeem(&a));
        assert!(!nonces.redeem(&a), "a replayed nonce");
        assert!(!nonces.redeem("made-up"));
        assert!(nonces.redeem(&b));
    }
}
