//! Registration patterns.
//!
//! A pattern is an exact FQDN, a name with `*` inside one or more labels (each `*`
//! matches one or more characters of its label, never a dot), or `*` alone, the
//! catch-all. See SPEC.md, "Patterns".

use std::cmp::Ordering;
use std::fmt;

use crate::name::{self, Fqdn, NameError, label_count};

/// Why a pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is not a valid name (with `*` allowed in labels).
    #[error(transparent)]
    Name(#[from] NameError),
    /// `**` in a label.
    #[error("label {position} ({label:?}) has two wildcards in a row")]
    ConsecutiveWildcards {
        /// 1-based position of the label.
        position: usize,
        /// The label.
        label: String,
    },
    /// A wildcard in an internationalized (non-ASCII) label.
    #[error("label {position} mixes a wildcard with non-ASCII characters; wildcard labels must be ASCII")]
    NonAsciiWildcard {
        /// 1-based position of the label.
        position: usize,
    },
    /// A wildcard in the top-level label (`example.*`).
    #[error("the top-level label may not contain a wildcard (only the catch-all '*' may stand alone)")]
    WildcardTopLabel,
    /// A wildcard label directly above a public suffix (`*.com`, `*.co.uk`).
    #[error("a wildcard label may not stand directly above the public suffix {suffix:?}")]
    AbovePublicSuffix {
        /// The public suffix.
        suffix: String,
    },
}

/// A canonical registration pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
    wildcards: u32,
}

impl Pattern {
    /// Parses and canonicalizes a pattern (syntax only; see
    /// [`Pattern::check_public_suffix`] for the public-suffix rule).
    ///
    /// ```
    /// # use prereg_core::Pattern;
    /// let p = Pattern::parse("*.Dept.Example.com.").unwrap();
    /// assert_eq!(p.as_str(), "*.dept.example.com");
    /// assert_eq!(p.wildcards(), 1);
    /// ```
    pub fn parse(input: &str) -> Result<Self, PatternError> {
        if input.trim() == "*" {
            return Ok(Pattern { text: "*".into(), wildcards: 1 });
        }
        let ascii = name::to_ascii(input, true)?;
        let mut wildcards = 0u32;
        let count = ascii.split('.').count();
        for (i, label) in ascii.split('.').enumerate() {
            let position = i + 1;
            let stars = label.bytes().filter(|&b| b == b'*').count() as u32;
            if stars > 0 {
                if label.starts_with("xn--") {
                    return Err(PatternError::NonAsciiWildcard { position });
                }
                if label.contains("**") {
                    return Err(PatternError::ConsecutiveWildcards { position, label: label.into() });
                }
                if position == count {
                    return Err(PatternError::WildcardTopLabel);
                }
            }
            name::check_label(position, label, true)?;
            wildcards += stars;
        }
        Ok(Pattern { text: ascii, wildcards })
    }

    /// The rule "a wildcard label directly above a public suffix is rejected":
    /// for every label with a wildcard, the name right of it must not be a public
    /// suffix. `is_public_suffix` answers for a canonical name.
    pub fn check_public_suffix(&self, is_public_suffix: impl Fn(&str) -> bool) -> Result<(), PatternError> {
        if self.is_catch_all() {
            return Ok(());
        }
        let mut rest = self.text.as_str();
        while let Some((label, tail)) = rest.split_once('.') {
            if label.contains('*') && is_public_suffix(tail) {
                return Err(PatternError::AbovePublicSuffix { suffix: tail.into() });
            }
            rest = tail;
        }
        Ok(())
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of `*` in the pattern (0: an exact FQDN).
    pub fn wildcards(&self) -> u32 {
        self.wildcards
    }

    /// Whether this is an exact FQDN.
    pub fn is_exact(&self) -> bool {
        self.wildcards == 0
    }

    /// Whether this is the catch-all `*`.
    pub fn is_catch_all(&self) -> bool {
        self.text == "*"
    }

    /// The literal part right of the last wildcard label (the whole name for an
    /// exact pattern, empty for the catch-all). `allowed_domains` are checked
    /// against it.
    pub fn literal_suffix(&self) -> &str {
        literal_suffix(&self.text)
    }

    /// Whether the pattern matches a canonical FQDN.
    pub fn matches(&self, fqdn: &Fqdn) -> bool {
        matches(&self.text, fqdn.as_str())
    }

    /// How specific the pattern is; greater is more specific.
    pub fn specificity(&self) -> Specificity {
        Specificity::of(&self.text)
    }

    /// The key under which a host indexes this pattern; see [`IndexKey`].
    pub fn index_key(&self) -> IndexKey {
        IndexKey::of_canonical(&self.text)
    }

    /// The pattern as an owned string.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn literal_suffix(pattern: &str) -> &str {
    match pattern.rfind('*') {
        None => pattern,
        Some(star) => match pattern[star..].find('.') {
            Some(dot) => &pattern[star + dot + 1..],
            None => "",
        },
    }
}

/// Whether canonical `pattern` matches canonical `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some(first_star) = pattern.bytes().position(|b| b == b'*') else {
        return pattern == name;
    };
    // The labels left of the first wildcard label are literal: compare
    // them whole, then the rest label by label.
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let literal_head = p[..first_star].iter().rposition(|&b| b == b'.').map_or(0, |dot| dot + 1);
    if n.len() < literal_head || p[..literal_head] != n[..literal_head] {
        return false;
    }
    let mut p = p[literal_head..].split(|&b| b == b'.');
    let mut n = n[literal_head..].split(|&b| b == b'.');
    loop {
        match (p.next(), n.next()) {
            (None, None) => return true,
            (Some(pl), Some(nl)) if label_bytes_match(pl, nl) => {}
            _ => return false,
        }
    }
}

/// Whether one pattern label matches one name label: literal characters must
/// be equal, each `*` stands for one or more characters.
pub fn label_matches(pattern: &str, label: &str) -> bool {
    label_bytes_match(pattern.as_bytes(), label.as_bytes())
}

fn label_bytes_match(pattern: &[u8], label: &[u8]) -> bool {
    let (Some(first), Some(last)) = (pattern.iter().position(|&b| b == b'*'), pattern.iter().rposition(|&b| b == b'*'))
    else {
        return pattern == label;
    };
    let (prefix, suffix) = (&pattern[..first], &pattern[last + 1..]);
    if label.len() < prefix.len() + suffix.len() || !label.starts_with(prefix) || !label.ends_with(suffix) {
        return false;
    }
    // The part of the label the wildcards and the middle pieces must cover.
    let mut pos = prefix.len();
    let end = label.len() - suffix.len();
    if first != last {
        for piece in pattern[first + 1..last].split(|&b| b == b'*') {
            // The `*` before this piece takes at least one character; the
            // leftmost placement of every piece leaves the most room for the rest.
            let from = pos + 1;
            if from > end {
                return false;
            }
            match find(&label[from..end], piece) {
                Some(i) => pos = from + i + piece.len(),
                None => return false,
            }
        }
    }
    // The last `*` takes at least one character.
    end > pos
}

/// The first place `needle` occurs in `haystack` (a label: at most 63 bytes).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The order of SPEC.md step 7: an exact pattern beats a wildcard one, then fewer
/// wildcards, then more literal characters. Greater is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specificity {
    /// Number of `*`.
    pub wildcards: u32,
    /// Number of characters that are not `*`.
    pub literal_chars: u32,
}

impl Specificity {
    /// The specificity of a canonical pattern.
    pub fn of(pattern: &str) -> Self {
        let wildcards = pattern.bytes().filter(|&b| b == b'*').count() as u32;
        Specificity { wildcards, literal_chars: pattern.len() as u32 - wildcards }
    }
}

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        other.wildcards.cmp(&self.wildcards).then(self.literal_chars.cmp(&other.literal_chars))
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a host files a pattern so that a lookup by name finds every pattern
/// that may match it, with a handful of exact probes and no scan.
///
/// Since `*` never matches a dot, a wildcard pattern can only match names with
/// as many labels as it has, and only names that end in its literal suffix (the
/// labels right of its last wildcard label). [`IndexKey::probes`] lists the keys
/// to look up for a name: its exact key, one suffix key per label, and the
/// catch-all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKey {
    /// An exact FQDN.
    Exact(String),
    /// A wildcard pattern of `labels` labels whose literal suffix is `suffix`.
    Suffix {
        /// Number of labels of the pattern.
        labels: usize,
        /// Literal labels right of the last wildcard label (may be empty).
        suffix: String,
    },
    /// The catch-all `*`.
    CatchAll,
}

/// An [`IndexKey`] borrowed from a name or a pattern: what a host probes
/// and compares without allocating ([`IndexKey::as_key_ref`] borrows an
/// owned one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKeyRef<'a> {
    /// An exact FQDN.
    Exact(&'a str),
    /// A wildcard pattern of `labels` labels whose literal suffix is `suffix`.
    Suffix {
        /// Number of labels of the pattern.
        labels: usize,
        /// Literal labels right of the last wildcard label (may be empty).
        suffix: &'a str,
    },
    /// The catch-all `*`.
    CatchAll,
}

impl<'a> IndexKeyRef<'a> {
    /// The keys to probe for a canonical name, most specific first: those
    /// of [`IndexKey::probes`], borrowed from the name.
    pub fn probes(fqdn: &'a Fqdn) -> impl Iterator<Item = IndexKeyRef<'a>> + 'a {
        let name = fqdn.as_str();
        let labels = fqdn.label_count();
        // Suffixes of 1..labels-1 labels, longest first, then the empty suffix
        // (a wildcard in the top label never parses, but a host may hold one).
        let suffixes = name.bytes().enumerate().filter(|&(_, b)| b == b'.').map(move |(dot, _)| &name[dot + 1..]);
        std::iter::once(IndexKeyRef::Exact(name))
            .chain(suffixes.map(move |suffix| IndexKeyRef::Suffix { labels, suffix }))
            .chain([IndexKeyRef::Suffix { labels, suffix: "" }, IndexKeyRef::CatchAll])
    }

    /// The key of a pattern already in canonical form (as stored).
    pub fn of_canonical(pattern: &'a str) -> Self {
        if pattern == "*" {
            return IndexKeyRef::CatchAll;
        }
        if !pattern.contains('*') {
            return IndexKeyRef::Exact(pattern);
        }
        IndexKeyRef::Suffix { labels: label_count(pattern), suffix: literal_suffix(pattern) }
    }

    /// Whether `pattern` (canonical) is filed under this key.
    pub fn files(self, pattern: &str) -> bool {
        self.files_bytes(pattern.as_bytes())
    }

    /// [`IndexKeyRef::files`] on the bytes of a pattern, for an index that
    /// keeps them without a `str` around them.
    pub fn files_bytes(self, p: &[u8]) -> bool {
        match self {
            IndexKeyRef::CatchAll => p == b"*",
            IndexKeyRef::Exact(name) => p == name.as_bytes(),
            IndexKeyRef::Suffix { labels, suffix } => {
                // literal_suffix(pattern) == suffix, in one pass over the
                // bytes: the pattern is `head.suffix` (or `head` for an
                // empty suffix) where the last label of `head` holds a `*`
                // and the suffix holds none.
                let s = suffix.as_bytes();
                let head = if s.is_empty() {
                    p
                } else if p.len() > s.len() + 1 && p.ends_with(s) && p[p.len() - s.len() - 1] == b'.' {
                    &p[..p.len() - s.len() - 1]
                } else {
                    return false;
                };
                let head_last_label = head.rsplit(|&b| b == b'.').next().unwrap_or(head);
                p != b"*" && head_last_label.contains(&b'*') && !s.contains(&b'*') && label_count(p) == labels
            }
        }
    }

    /// The owned key.
    pub fn to_key(self) -> IndexKey {
        match self {
            IndexKeyRef::Exact(name) => IndexKey::Exact(name.to_owned()),
            IndexKeyRef::Suffix { labels, suffix } => IndexKey::Suffix { labels, suffix: suffix.to_owned() },
            IndexKeyRef::CatchAll => IndexKey::CatchAll,
        }
    }
}

impl IndexKey {
    /// The keys to probe for a canonical name, most specific first.
    pub fn probes(fqdn: &Fqdn) -> Vec<IndexKey> {
        IndexKeyRef::probes(fqdn).map(IndexKeyRef::to_key).collect()
    }

    /// The key, borrowed.
    pub fn as_key_ref(&self) -> IndexKeyRef<'_> {
        match self {
            IndexKey::Exact(name) => IndexKeyRef::Exact(name),
            IndexKey::Suffix { labels, suffix } => IndexKeyRef::Suffix { labels: *labels, suffix },
            IndexKey::CatchAll => IndexKeyRef::CatchAll,
        }
    }

    /// The key of a pattern already in canonical form (as stored), without
    /// parsing it again.
    pub fn of_canonical(pattern: &str) -> IndexKey {
        IndexKeyRef::of_canonical(pattern).to_key()
    }

    /// Whether `pattern` (canonical) is filed under this key; allocates nothing.
    pub fn files(&self, pattern: &str) -> bool {
        self.as_key_ref().files(pattern)
    }

    /// A compact text form for storage indexes: `=name`, `N|suffix` or `*`.
    pub fn encode(&self) -> String {
        match self {
            IndexKey::Exact(name) => format!("={name}"),
            IndexKey::Suffix { labels, suffix } => format!("{labels}|{suffix}"),
            IndexKey::CatchAll => "*".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        match Pattern::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s:?} rejected: {e}"),
        }
    }
    fn f(s: &str) -> Fqdn {
        match Fqdn::parse(s) {
            Ok(f) => f,
            Err(e) => panic!("{s:?} rejected: {e}"),
        }
    }
    fn is_ps(name: &str) -> bool {
        matches!(name, "com" | "co.uk" | "uk" | "example")
    }

    #[test]
    fn spec_wildcard_examples() {
        let star = p("*.dept.example.com");
        assert!(star.matches(&f("router5.dept.example.com")));
        assert!(!star.matches(&f("dept.example.com")));
        assert!(!star.matches(&f("a.b.dept.example.com")));
        let serial = p("serial-*.example.com");
        assert!(serial.matches(&f("serial-1234.example.com")));
        assert!(Fqdn::parse("serial-.example.com").is_err() || !serial.matches(&f("serial-.example.com")));
        assert!(!serial.matches(&f("serial-1.x.example.com")));
        assert!(!serial.matches(&f("serial.example.com")));
        assert!(p("*").matches(&f("anything.at.all")));
        assert!(p("a.*.example.com").matches(&f("a.b.example.com")));
        assert!(!p("a.*.example.com").matches(&f("b.b.example.com")));
        let exact = p("Router1.Example.COM.");
        assert!(exact.matches(&f("router1.example.com")));
        assert!(!exact.matches(&f("router2.example.com")));
    }

    #[test]
    fn several_wildcards_in_a_label() {
        let pat = p("a*b*c.example.com");
        assert!(pat.matches(&f("axbyc.example.com")));
        assert!(pat.matches(&f("abbbbc.example.com")));
        assert!(!pat.matches(&f("abc.example.com")));
        assert!(!pat.matches(&f("axbc.example.com")));
        assert!(p("*-*.example.com").matches(&f("a-b.example.com")));
        assert!(!p("*-*.example.com").matches(&f("ab.example.com")));
    }

    #[test]
    fn pattern_syntax_errors_name_the_fault() {
        assert!(matches!(
            Pattern::parse("a**.example.com"),
            Err(PatternError::ConsecutiveWildcards { position: 1, .. })
        ));
        assert_eq!(Pattern::parse("example.*"), Err(PatternError::WildcardTopLabel));
        assert!(matches!(Pattern::parse("bü*.example.com"), Err(PatternError::NonAsciiWildcard { position: 1 })));
        assert!(matches!(Pattern::parse("*-.example.com"), Err(PatternError::Name(NameError::Hyphen { .. }))));
        assert!(matches!(Pattern::parse("*..com"), Err(PatternError::Name(NameError::EmptyLabel { position: 2 }))));
        assert_eq!(p(" * ").as_str(), "*");
    }

    #[test]
    fn wildcards_directly_above_public_suffixes_are_rejected() {
        for bad in ["*.com", "*.co.uk", "ex*.com", "*.*.com", "a.*.co.uk"] {
            let pat = p(bad);
            assert!(matches!(pat.check_public_suffix(is_ps), Err(PatternError::AbovePublicSuffix { .. })), "{bad}");
        }
        for good in ["*.example.com", "*.example.co.uk", "*", "router.com", "*.a.b.com"] {
            assert_eq!(p(good).check_public_suffix(is_ps), Ok(()), "{good}");
        }
    }

    #[test]
    fn literal_suffix_and_index_key() {
        assert_eq!(p("*.dept.example.com").literal_suffix(), "dept.example.com");
        assert_eq!(p("a.*.example.com").literal_suffix(), "example.com");
        assert_eq!(p("router.example.com").literal_suffix(), "router.example.com");
        assert_eq!(p("*").literal_suffix(), "");
        assert_eq!(p("*.example.com").index_key().encode(), "3|example.com");
        assert_eq!(p("x.example.com").index_key().encode(), "=x.example.com");
        assert_eq!(p("*").index_key(), IndexKey::CatchAll);
        for text in ["*.dept.example.com", "a.*.example.com", "x.example.com", "*", "serial-*.example.com"] {
            let key = p(text).index_key();
            assert!(key.files(text), "{text} is filed under its own key");
            assert_eq!(IndexKey::of_canonical(text), key);
        }
        assert!(!p("*.example.com").index_key().files("*.example.org"));
        assert!(!p("*.example.com").index_key().files("a.*.example.com"));
        assert!(!p("x.example.com").index_key().files("*.example.com"));
    }

    #[test]
    fn probes_cover_every_pattern_that_matches() {
        let name = f("a.b.example.com");
        let probes = IndexKey::probes(&name);
        for pat in
            ["a.b.example.com", "*.b.example.com", "a.*.example.com", "*.*.example.com", "*.b.*.com", "a.*.*.com", "*"]
        {
            let key = p(pat).index_key();
            assert!(p(pat).matches(&name), "{pat}");
            assert!(probes.contains(&key), "{pat}: {key:?} not in {probes:?}");
        }
    }

    #[test]
    fn specificity_order() {
        let s = |x: &str| p(x).specificity();
        assert!(s("router5.dept.example.com") > s("*.dept.example.com"));
        assert!(s("r*.dept.example.com") > s("*.dept.example.com"));
        assert!(s("*.dept.example.com") > s("*.*.example.com"));
        assert!(s("*.dept.example.com") > s("*"));
        assert!(s("router*.example.com") > s("r*.example.com"));
    }
}
