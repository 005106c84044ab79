//! Registration passwords: only a salted, slow hash (argon2id, PHC string) is
//! kept; comparison is constant-time inside the argon2 verifier.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;

/// The argon2id cost of every hash the server makes (OWASP's minimum): 19
/// MiB, 2 passes, one lane. Hashes are made only here (signed requests carry
/// the sealed password, never a hash), so every check costs the same.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes a password with argon2id (OWASP's minimum: 19 MiB, 2 passes).
pub fn hash(password: &str) -> Result<String, String> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("a password must be 1 to {MAX_PASSWORD_BYTES} bytes long"));
    }
    let params = Params::new(M_COST_KIB, T_COST, 1, None).map_err(|e| e.to_string())?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Password checks running at once in this process, at most: each is a slow
/// hash (19 MiB, 2 passes), so a flood of wrong passwords must queue rather
/// than starve every other decision of CPU and memory.
fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(1) * 2
}

/// The pool of password checks ([`verify_bounded`]).
static POOL: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static POOL_FREED: std::sync::Condvar = std::sync::Condvar::new();

/// The password-check pool was full for as long as a check may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once; try again shortly")]
pub struct Busy;

/// [`verify`] in the bounded pool of password checks: waits at most `wait`
/// for a place, then gives up with [`Busy`] (the caller answers "try again",
/// never a failed check).
pub fn verify_bounded(password: &str, phc: &str, wait: std::time::Duration) -> Result<bool, Busy> {
    let limit = pool_size();
    let deadline = std::time::Instant::now() + wait;
    {
        let mut running = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *running >= limit {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Busy);
            }
            running = POOL_FREED.wait_timeout(running, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        *running += 1;
    }
    let matched = verify(password, phc);
    let mut running = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *running = running.saturating_sub(1);
    POOL_FREED.notify_one();
    Ok(matched)
}

/// Whether `password` matches the PHC hash (constant-time comparison).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_bounds() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
        assert!(!verify("s3cret", "plain"));
        assert_eq!(verify_bounded("s3cret", &h, std::time::Duration::from_secs(5)), Ok(true));
        assert_eq!(verify_bounded("wrong", &h, std::time::Duration::from_secs(5)), Ok(false));
        assert!(hash("").is_err());
    }
}
