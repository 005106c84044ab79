//! Registration passwords: only a salted, slow hash (argon2id, PHC string) is
//! kept; comparison is constant-time inside the argon2 verifier.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;

/// Bounds on the argon2id parameters accepted in a signed request, so that a
/// hash can neither be weak nor make every check slow.
const M_COST_KIB: std::ops::RangeInclusive<u32> = 19_456..=65_536;
const T_COST: std::ops::RangeInclusive<u32> = 2..=8;
const P_COST: std::ops::RangeInclusive<u32> = 1..=4;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes a password with argon2id (OWASP's minimum: 19 MiB, 2 passes).
pub fn hash(password: &str) -> Result<String, String> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("a password must be 1 to {MAX_PASSWORD_BYTES} bytes long"));
    }
    let params = Params::new(*M_COST_KIB.start(), *T_COST.start(), 1, None).map_err(|e| e.to_string())?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks that a PHC string is an argon2id hash with parameters in bounds.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC password hash: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!("password hashes must be argon2id, not {}", parsed.algorithm));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if !M_COST_KIB.contains(&params.m_cost())
        || !T_COST.contains(&params.t_cost())
        || !P_COST.contains(&params.p_cost())
    {
        return Err(format!(
            "argon2id parameters m={} t={} p={} are outside m={:?} t={:?} p={:?}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            M_COST_KIB,
            T_COST,
            P_COST
        ));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the password hash has no salt or no hash".into());
    }
    Ok(())
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
        assert_eq!(check_hash(&h), Ok(()));
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
        assert!(check_hash("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_err());
        assert!(check_hash("plain").is_err());
        assert!(hash("").is_err());
    }
}
