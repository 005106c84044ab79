//! Property tests: the matcher agrees with a straightforward reference on
//! random patterns and names; the index probes of a name always include the
//! key of every pattern that matches it; canonicalization is stable.

#![allow(clippy::unwrap_used, missing_docs)]

use prereg_core::{Fqdn, IndexKey, Pattern};
use proptest::prelude::*;

/// Backtracking reference: `*` takes one or more characters, anything else
/// must be equal.
fn reference_label(pattern: &[u8], label: &[u8]) -> bool {
    match pattern.split_first() {
        None => label.is_empty(),
        Some((b'*', rest)) => (1..=label.len()).any(|k| reference_label(rest, &label[k..])),
        Some((c, rest)) => label.first() == Some(c) && reference_label(rest, &label[1..]),
    }
}

fn reference(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| reference_label(p.as_bytes(), n.as_bytes()))
}

/// Labels over a tiny alphabet, so that random patterns often match.
fn name_label() -> impl Strategy<Value = String> {
    "[ab1][ab1-]{0,4}[ab1]|[ab1]"
}

fn pattern_label() -> impl Strategy<Value = String> {
    "[ab1*]{1,6}".prop_filter("no two wildcards in a row", |l| !l.contains("**"))
}

fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(name_label(), 1..4), prop::sample::select(vec!["com", "example.com", "ab.net"]))
        .prop_map(|(labels, tail)| format!("{}.{tail}", labels.join(".")))
}

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (prop::collection::vec(pattern_label(), 1..4), prop::sample::select(vec!["com", "example.com", "ab.net"]))
            .prop_map(|(labels, tail)| format!("{}.{tail}", labels.join("."))),
        1 => Just("*".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn matcher_agrees_with_the_reference(p in pattern(), n in name()) {
        let pattern = Pattern::parse(&p).unwrap();
        let fqdn = Fqdn::parse(&n).unwrap();
        prop_assert_eq!(pattern.matches(&fqdn), reference(pattern.as_str(), fqdn.as_str()), "{} vs {}", p, n);
    }

    #[test]
    fn probes_find_every_matching_pattern(p in pattern(), n in name()) {
        let pattern = Pattern::parse(&p).unwrap();
        let fqdn = Fqdn::parse(&n).unwrap();
        if pattern.matches(&fqdn) {
            prop_assert!(IndexKey::probes(&fqdn).contains(&pattern.index_key()), "{} not probed for {}", p, n);
        }
    }

    #[test]
    fn a_name_built_from_a_pattern_matches_it(p in pattern(), fill in "[ab1]{1,3}") {
        let pattern = Pattern::parse(&p).unwrap();
        let name = if pattern.is_catch_all() { format!("{fill}.example.com") } else { pattern.as_str().replace('*', &fill) };
        let fqdn = Fqdn::parse(&name).unwrap();
        prop_assert!(pattern.matches(&fqdn));
    }

    #[test]
    fn canonicalization_is_stable(n in name(), upper in any::<bool>(), dot in any::<bool>(), pad in any::<bool>()) {
        let canonical = Fqdn::parse(&n).unwrap();
        let mut variant = if upper { n.to_ascii_uppercase() } else { n.clone() };
        if dot { variant.push('.'); }
        if pad { variant = format!("  {variant}\t"); }
        prop_assert_eq!(Fqdn::parse(&variant).unwrap(), canonical.clone());
        prop_assert_eq!(Fqdn::parse(canonical.as_str()).unwrap(), canonical);
    }

    #[test]
    fn canonical_names_obey_the_label_rules(s in "\\PC{0,80}") {
        if let Ok(fqdn) = Fqdn::parse(&s) {
            let text = fqdn.as_str();
            prop_assert!(text.len() <= 253);
            for label in text.split('.') {
                prop_assert!(!label.is_empty() && label.len() <= 63);
                prop_assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(!label.starts_with('-') && !label.ends_with('-'));
            }
        }
    }
}
