//! The instance itself: its id, its sealing key's public half, the single-use request ids of signed
//! writes, and the answers kept for CA callers' Idempotency-Keys.

use super::StoreError;

/// The answer to a CA caller's Idempotency-Key, as kept.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentAnswer<'a> {
    /// The caller.
    pub caller: &'a str,
    /// Its key.
    pub key: &'a str,
    /// SHA-256 (hex) of the request it answered.
    pub request_sha256: &'a str,
    /// The answer (JSON).
    pub answer: &'a str,
    /// When, Unix seconds.
    pub at: u64,
}

/// The instance itself: its id, its sealing key's public half, the single-use request ids of signed
/// writes, and the answers kept for CA callers' Idempotency-Keys.
pub trait Instance {
    /// The instance id (the `aud` of signed requests), if initialised.
    fn instance_id(&mut self) -> Result<Option<String>, StoreError>;

    /// Records the instance id (once).
    fn set_instance_id(&mut self, id: &str, now: u64) -> Result<(), StoreError>;

    /// The public half of the instance's sealing key, once recorded.
    fn sealing_key(&mut self) -> Result<Option<String>, StoreError>;

    /// Records the public half of the instance's sealing key.
    fn set_sealing_key(&mut self, public: &str) -> Result<(), StoreError>;

    /// Records a single-use request id; [`StoreError::Replayed`] if seen before.
    /// Ids more than `margin` seconds past their expiry are forgotten (by
    /// `now` on SQLite, one machine; on PostgreSQL by the earlier of `now`
    /// and the database's clock, so a node whose clock runs ahead forgets
    /// nothing early). The registry passes the signing rules' margin (the
    /// longest token lifetime and the clock skew tolerated).
    fn consume_request_id(
        &mut self,
        jti: &str,
        kid: &str,
        expires_at: u64,
        now: u64,
        margin: u64,
    ) -> Result<(), StoreError>;

    /// The single-use request ids remembered: (id, key id, expiry).
    fn request_ids(&mut self) -> Result<Vec<(String, String, u64)>, StoreError>;

    /// The answer kept for a CA caller's Idempotency-Key: the SHA-256 of the
    /// request it answered and the answer (JSON).
    fn idempotent_answer(&mut self, caller: &str, key: &str) -> Result<Option<(String, String)>, StoreError>;

    /// Keeps the answer to a CA caller's Idempotency-Key, and forgets those
    /// recorded before `forget_before`.
    fn record_idempotent_answer(&mut self, kept: &IdempotentAnswer<'_>, forget_before: u64) -> Result<(), StoreError>;
}
