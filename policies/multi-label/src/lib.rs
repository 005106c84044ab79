//! `multi-label`: the rules of SPEC.md, except that a label that is exactly
//! `*` stands for one *or more* labels: `*.example.com` matches
//! `a.example.com` and `a.b.example.com`. A wildcard inside a label
//! (`serial-*`) still stays inside that label. Specificity is SPEC.md's, so
//! `*.b.example.com` still beats `*.example.com`.
//!
//! The host's index answers per label count, so the policy also asks for the
//! candidates of each parent name (`b.example.com`, `example.com`): a pattern
//! that matches with `*` spanning labels is among the candidates of the
//! parent with as many labels as the pattern.

#![allow(unsafe_code)] // the export macro's attributes

use prereg_sdk::core::pattern::label_matches;
use prereg_sdk::prelude::*;
use prereg_sdk::{LookupError, PasswordCheck, Procedure, Registration};

/// Most lookups one decision makes (the host allows 16).
const MAX_LOOKUPS: usize = 15;

/// The policy.
pub struct MultiLabel;

impl Policy for MultiLabel {
    fn metadata() -> PolicyMetadata {
        PolicyMetadata { name: "multi-label".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn decide(host: &impl PolicyHost, request: EnrollmentRequest) -> Decision {
        prereg_rules::decide_with(&WithParents(host), &request, |r, fqdn| matches(&r.pattern, fqdn.as_str()))
    }

    fn decide_renewal(host: &impl PolicyHost, request: RenewalRequest) -> Decision {
        prereg_rules::decide_renewal_with(&WithParents(host), &request, |r, fqdn| matches(&r.pattern, fqdn.as_str()))
    }
}

/// Whether `pattern` matches `name` when a `*` label may span several labels.
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    labels_match(&p, &n)
}

fn labels_match(p: &[&str], n: &[&str]) -> bool {
    match (p.split_first(), n.split_first()) {
        (None, None) => true,
        (Some((&"*", p_rest)), Some(_)) => (1..=n.len()).any(|take| labels_match(p_rest, &n[take..])),
        (Some((pl, p_rest)), Some((nl, n_rest))) => label_matches(pl, nl) && labels_match(p_rest, n_rest),
        _ => false,
    }
}

/// A host whose candidate lookup also gathers the candidates of every parent
/// name (down to two labels), without duplicates.
struct WithParents<'h, H>(&'h H);

impl<H: PolicyHost> PolicyHost for WithParents<'_, H> {
    fn procedure(&self, name: &str) -> Option<Procedure> {
        self.0.procedure(name)
    }

    fn candidates(&self, domain: &str, fqdn: &Fqdn) -> Result<Vec<Registration>, LookupError> {
        let mut all = self.0.candidates(domain, fqdn)?;
        let mut name = fqdn.as_str();
        let mut lookups = 1;
        while let Some((_, parent)) = name.split_once('.') {
            if !parent.contains('.') || lookups >= MAX_LOOKUPS {
                break;
            }
            lookups += 1;
            let Ok(parent_fqdn) = Fqdn::parse(parent) else { break };
            for r in self.0.candidates(domain, &parent_fqdn)? {
                if !all.iter().any(|seen| seen.id == r.id) {
                    all.push(r);
                }
            }
            name = parent;
        }
        Ok(all)
    }

    fn check_password(&self, registration: u64) -> PasswordCheck {
        self.0.check_password(registration)
    }

    fn is_public_suffix(&self, name: &str) -> bool {
        self.0.is_public_suffix(name)
    }

    fn now(&self) -> u64 {
        self.0.now()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.0.log(level, message);
    }
}

#[cfg(target_arch = "wasm32")]
prereg_sdk::export_policy!(MultiLabel, cases = "cases.toml");

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn a_star_label_spans_one_or_more_labels() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(matches("x.*.example.com", "x.a.b.example.com"));
        assert!(matches("*.*.example.com", "a.b.c.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.b.example.com", "a.c.example.com"));
        assert!(matches("serial-*.example.com", "serial-7.example.com"));
        assert!(!matches("serial-*.example.com", "serial-7.a.example.com"));
        assert!(matches("*", "any.name.example"));
    }
}
