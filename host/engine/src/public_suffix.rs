//! The public suffix list (compiled into the `psl` crate).

/// Whether a canonical name is a public suffix: a single label (a top-level
/// domain, by the list's default rule `*`) or a name the list knows as a suffix
/// (`co.uk`, `github.io`).
pub fn is_public_suffix(name: &str) -> bool {
    if name.is_empty() {
        return true;
    }
    if !name.contains('.') {
        return true;
    }
    psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::is_public_suffix;

    #[test]
    fn known_suffixes() {
        for s in ["com", "uk", "co.uk", "github.io", "internal"] {
            assert!(is_public_suffix(s), "{s}");
        }
        for s in ["example.com", "dept.example.com", "example.co.uk"] {
            assert!(!is_public_suffix(s), "{s}");
        }
    }
}
