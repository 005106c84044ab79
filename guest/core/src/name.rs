//! Canonical FQDNs.
//!
//! The canonical form of SPEC.md, applied to registrations and requests alike:
//! trim, IDNA UTS-46 to A-labels, ASCII-lowercase, drop one trailing dot; each
//! label 1..=63 octets of letters, digits and hyphens with no leading or trailing
//! hyphen; the whole name at most 253 octets.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Longest canonical name, in octets (RFC 1035 presentation form without the root dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label, in octets.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name is not a valid FQDN. Every variant names the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after trimming.
    #[error("the name is empty")]
    Empty,
    /// IDNA processing failed (bad punycode, disallowed code points, ...).
    #[error("the name is not a valid internationalized domain name (IDNA UTS-46)")]
    Idna,
    /// Two dots in a row, a leading dot, or more than one trailing dot.
    #[error("label {position} is empty (two dots in a row, a leading dot, or more than one trailing dot)")]
    EmptyLabel {
        /// 1-based position of the label, from the left.
        position: usize,
    },
    /// A label longer than 63 octets.
    #[error("label {position} is {len} octets long; at most 63 are allowed")]
    LabelTooLong {
        /// 1-based position of the label.
        position: usize,
        /// Its length in octets.
        len: usize,
    },
    /// A character outside letters, digits and hyphens.
    #[error("label {position} ({label:?}) contains {ch:?}; only letters, digits and hyphens are allowed")]
    BadCharacter {
        /// 1-based position of the label.
        position: usize,
        /// The label, canonicalized so far.
        label: String,
        /// The offending character.
        ch: char,
    },
    /// A label that starts or ends with a hyphen.
    #[error("label {position} ({label:?}) starts or ends with a hyphen")]
    Hyphen {
        /// 1-based position of the label.
        position: usize,
        /// The label.
        label: String,
    },
    /// The whole name is longer than 253 octets.
    #[error("the name is {len} octets long; at most 253 are allowed")]
    TooLong {
        /// Its length in octets.
        len: usize,
    },
    /// A wildcard in a request name.
    #[error("a device name may not contain '*'")]
    Wildcard,
}

/// A canonical, valid FQDN (never contains `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fqdn(String);

impl Fqdn {
    /// Canonicalizes and validates `input`.
    ///
    /// ```
    /// # use prereg_core::Fqdn;
    /// let a = Fqdn::parse(" Router5.Dept.Example.COM. ").unwrap();
    /// assert_eq!(a.as_str(), "router5.dept.example.com");
    /// ```
    pub fn parse(input: &str) -> Result<Self, NameError> {
        match plain_name(input) {
            Some(plain) => Ok(Fqdn(plain)),
            None => full_name(input).map(Fqdn),
        }
    }

    /// The canonical name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its labels, left to right.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.0.split('.')
    }

    /// Number of labels.
    pub fn label_count(&self) -> usize {
        label_count(&self.0)
    }

    /// Whether this name equals `domain` or lies below it on a label boundary
    /// (`a.example.com` is within `example.com`; `badexample.com` is not).
    /// `domain` must be canonical.
    pub fn is_within(&self, domain: &str) -> bool {
        is_within(&self.0, domain)
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Fqdn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A name or pattern in double quotes, as `{:?}` writes it, without
/// `{:?}`'s cost where nothing needs escaping (a canonical name or pattern:
/// letters, digits, `-`, `.`, `*`); anything else is written by `{:?}`.
///
/// ```
/// # use prereg_core::name::Quoted;
/// assert_eq!(Quoted("*.example.com").to_string(), "\"*.example.com\"");
/// assert_eq!(Quoted("a\"b\n").to_string(), format!("{:?}", "a\"b\n"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*')) {
            f.write_str("\"")?;
            f.write_str(self.0)?;
            f.write_str("\"")
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// Number of labels of a canonical name or pattern.
pub(crate) fn label_count(name: impl AsRef<[u8]>) -> usize {
    name.as_ref().iter().filter(|&&b| b == b'.').count() + 1
}

/// Whether canonical `name` equals canonical `domain` or ends in `.` + `domain`.
/// An empty `name` is within nothing.
pub fn is_within(name: &str, domain: &str) -> bool {
    if name.is_empty() || domain.is_empty() {
        return false;
    }
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// The canonical form of a plain name in one pass, or `None` for anything
/// else: the common case of a request, ASCII letters, digits, hyphens and
/// dots, already a valid name, no label starting `xn--` (an A-label, whose
/// punycode only IDNA can check), with at most one trailing dot and no
/// space around it. Whatever this accepts, [`to_ascii`] and [`check_label`]
/// accept and canonicalize alike (lowercase, the trailing dot dropped);
/// whatever it refuses goes their way, which names the fault.
fn plain_name(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let name = bytes.strip_suffix(b".").unwrap_or(bytes);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let mut canonical = Vec::with_capacity(name.len());
    let mut label_start = 0;
    for (at, &b) in name.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => canonical.push(b),
            b'A'..=b'Z' => canonical.push(b.to_ascii_lowercase()),
            b'.' => {
                if !plain_label(&name[label_start..at]) {
                    return None;
                }
                canonical.push(b);
                label_start = at + 1;
            }
            _ => return None,
        }
    }
    if !plain_label(&name[label_start..]) {
        return None;
    }
    String::from_utf8(canonical).ok()
}

/// The canonical form of any name (IDNA, then the label rules), or the
/// first fault.
fn full_name(input: &str) -> Result<String, NameError> {
    let ascii = to_ascii(input, false)?;
    if ascii.contains('*') {
        return Err(NameError::Wildcard);
    }
    for (i, label) in ascii.split('.').enumerate() {
        check_label(i + 1, label, false)?;
    }
    Ok(ascii)
}

/// A label [`plain_name`] may take as it is: 1 to 63 octets, no hyphen at
/// either end, not an A-label (its characters are checked by the caller).
fn plain_label(label: &[u8]) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
        && !(label.len() >= 4 && label[..4].eq_ignore_ascii_case(b"xn--"))
}

/// Trim, IDNA to A-labels and lowercase, drop one trailing dot, check the total
/// length. `allow_star` lets `*` through (patterns); label rules are checked by
/// the caller.
pub(crate) fn to_ascii(input: &str, allow_star: bool) -> Result<String, NameError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    let needs_idna =
        !trimmed.is_ascii() || trimmed.split('.').any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"));
    let mut ascii = if !needs_idna {
        // Plain ASCII: lowercase only, so the label checks below can name the
        // exact character at fault.
        trimmed.to_ascii_lowercase()
    } else {
        if !allow_star && trimmed.contains('*') {
            return Err(NameError::Wildcard);
        }
        Uts46::new()
            .to_ascii(trimmed.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow, DnsLength::Ignore)
            .map_err(|_| NameError::Idna)?
            .into_owned()
    };
    if ascii.ends_with('.') {
        ascii.pop();
    }
    if ascii.is_empty() {
        return Err(NameError::Empty);
    }
    if ascii.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: ascii.len() });
    }
    Ok(ascii)
}

/// Checks one label of a canonical name (`star`: `*` allowed, for pattern labels).
pub(crate) fn check_label(position: usize, label: &str, star: bool) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel { position });
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong { position, len: label.len() });
    }
    if let Some(ch) =
        label.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (star && c == '*')))
    {
        return Err(NameError::BadCharacter { position, label: label.to_owned(), ch });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::Hyphen { position, label: label.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        match Fqdn::parse(s) {
            Ok(f) => f.into_string(),
            Err(e) => panic!("{s:?} rejected: {e}"),
        }
    }

    #[test]
    fn case_and_trailing_dot_are_folded() {
        assert_eq!(ok("Router5.Dept.Example.COM."), "router5.dept.example.com");
        assert_eq!(ok("  router5.dept.example.com \t"), "router5.dept.example.com");
    }

    #[test]
    fn only_one_trailing_dot_is_dropped() {
        assert_eq!(Fqdn::parse("a.example.com.."), Err(NameError::EmptyLabel { position: 4 }));
        assert_eq!(Fqdn::parse("."), Err(NameError::Empty));
        assert_eq!(Fqdn::parse(".example.com"), Err(NameError::EmptyLabel { position: 1 }));
        assert_eq!(Fqdn::parse("a..com"), Err(NameError::EmptyLabel { position: 2 }));
    }

    #[test]
    fn idna_is_mapped_to_a_labels() {
        assert_eq!(ok("Bücher.Example"), "xn--bcher-kva.example");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
        // Ideographic full stop is a dot under UTS-46.
        assert_eq!(ok("a\u{3002}example\u{3002}com"), "a.example.com");
        assert_eq!(Fqdn::parse("xn--zz.example"), Err(NameError::Idna));
    }

    #[test]
    fn label_and_name_lengths() {
        let l63 = "a".repeat(63);
        assert_eq!(ok(&format!("{l63}.com")), format!("{l63}.com"));
        let l64 = "a".repeat(64);
        assert_eq!(Fqdn::parse(&format!("{l64}.com")), Err(NameError::LabelTooLong { position: 1, len: 64 }));
        // 4 labels of 63 + 3 dots = 255 > 253; 63*3 + 61 + 3 = 253 passes.
        let long = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
        assert_eq!(long.len(), 253);
        assert_eq!(ok(&long), long);
        assert_eq!(ok(&format!("{long}.")), long);
        let too_long = format!("{long}b");
        assert_eq!(Fqdn::parse(&too_long), Err(NameError::TooLong { len: 254 }));
    }

    #[test]
    fn bad_characters_and_hyphens() {
        assert!(matches!(Fqdn::parse("a_b.example.com"), Err(NameError::BadCharacter { position: 1, ch: '_', .. })));
        assert!(matches!(Fqdn::parse("a b.example.com"), Err(NameError::BadCharacter { ch: ' ', .. })));
        assert!(matches!(Fqdn::parse("-a.example.com"), Err(NameError::Hyphen { position: 1, .. })));
        assert!(matches!(Fqdn::parse("a.example-.com"), Err(NameError::Hyphen { position: 2, .. })));
        assert_eq!(Fqdn::parse("*.example.com"), Err(NameError::Wildcard));
        assert_eq!(Fqdn::parse("a*.bücher.example"), Err(NameError::Wildcard));
        assert_eq!(Fqdn::parse(""), Err(NameError::Empty));
        assert_eq!(Fqdn::parse("   "), Err(NameError::Empty));
    }

    /// The one-pass path agrees with the full one on every input it takes,
    /// and leaves every fault to it.
    #[test]
    fn the_plain_path_agrees_with_the_full_one() {
        let l63 = "a".repeat(63);
        let long = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
        for input in [
            "Router5.Dept.Example.COM.",
            "a.b",
            "a",
            "A-1.b-2.c",
            "xn--bcher-kva.example",
            "XN--bcher-kva.example",
            "xn--zz.example",
            "a.example.com..",
            ".",
            ".a",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            " a.b",
            "a.b ",
            "*.a.b",
            "",
            &long,
            &format!("{long}."),
            &format!("{long}b"),
            &format!("{}.com", "a".repeat(64)),
            "bücher.example",
        ] {
            let plain = plain_name(input);
            if let Some(plain) = &plain {
                assert_eq!(Ok(plain.clone()), full_name(input), "{input:?}");
            }
            assert_eq!(Fqdn::parse(input).map(Fqdn::into_string), full_name(input), "{input:?}");
        }
        assert!(plain_name("xn--bcher-kva.example").is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4000, .. Default::default() })]

        /// The same on random short inputs over an alphabet of every kind of
        /// fault (case, dots, hyphens, `_`, `*`, spaces, `xn--`, non-ASCII).
        #[test]
        fn the_plain_path_agrees_on_random_inputs(input in "([aZ9.\\-_* ü]|xn--|XN--){0,12}") {
            if let Some(plain) = plain_name(&input) {
                proptest::prop_assert_eq!(Ok(plain), full_name(&input));
            }
        }
    }

    #[test]
    fn within_is_on_label_boundaries() {
        let f = ok("a.example.com");
        assert!(is_within(&f, "example.com"));
        assert!(is_within(&f, "a.example.com"));
        assert!(!is_within("badexample.com", "example.com"));
        assert!(!is_within("example.com", "a.example.com"));
        assert!(!is_within("", "example.com"));
    }
}
