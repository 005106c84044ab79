//! A registration as the index holds it, laid out for the lookup.
//!
//! At a million registrations every entry a lookup reaches is a cache miss,
//! and so was the pattern it compares, which lived in a heap block of its
//! own: a profile of dry runs at 1M put a fifth of a decision in the
//! `memcmp` of that comparison. An entry is two aligned cache lines: the
//! first holds what a probe reads (the chain link, the domain and the
//! pattern itself, up to [`INLINE`] bytes), the second what a candidate's
//! view adds. A longer pattern lives beside the IP address and serial
//! number, which are rare.

use prereg_core::{Registration, RegistrationState};

/// Longest pattern kept inside the entry, in bytes: what is left of the
/// first cache line.
pub(super) const INLINE: usize = 53;

/// `pattern_len` of a pattern longer than [`INLINE`], kept in [`Extra`].
const LONG: u8 = u8::MAX;

/// No next entry in a chain.
pub(super) const END: u32 = u32::MAX;

/// What few registrations have: an IP address, a serial number, a pattern
/// too long to keep inline.
#[derive(Debug, Clone, Default)]
pub(super) struct Extra {
    ip: Option<Box<str>>,
    serial: Option<Box<str>>,
    pattern: Option<Box<str>>,
}

/// A registration as the index holds it. `repr(C)` keeps the fields of a
/// probe in the first line; `align(128)` keeps the two lines together (an
/// adjacent-line prefetcher fetches them as a pair).
#[derive(Debug, Clone)]
#[repr(C, align(128))]
pub(super) struct Entry {
    /// Next entry with the same key, or [`END`].
    pub(super) next: u32,
    pub(super) domain: u32,
    /// Bytes of `inline` used, or [`LONG`].
    pattern_len: u8,
    pub(super) state: RegistrationState,
    pub(super) has_password: bool,
    inline: [u8; INLINE],
    // The second line.
    pub(super) id: u64,
    /// Hash of (domain, index key): the chain it is in.
    pub(super) key: u64,
    pub(super) expires_at: Option<u64>,
    pub(super) max_enrollments: Option<u32>,
    pub(super) enrollments: u32,
    extra: Option<Box<Extra>>,
}

/// What an entry is made from.
pub(super) struct NewEntry<'a> {
    pub(super) id: u64,
    pub(super) key: u64,
    pub(super) domain: u32,
    pub(super) next: u32,
    pub(super) pattern: &'a str,
    pub(super) ip: Option<&'a str>,
    pub(super) serial: Option<&'a str>,
    pub(super) state: RegistrationState,
    pub(super) has_password: bool,
    pub(super) expires_at: Option<u64>,
    pub(super) max_enrollments: Option<u32>,
    pub(super) enrollments: u32,
}

impl Entry {
    pub(super) fn new(new: NewEntry<'_>) -> Self {
        let mut inline = [0; INLINE];
        let (pattern_len, long) = match inline.get_mut(..new.pattern.len()) {
            Some(room) => {
                room.copy_from_slice(new.pattern.as_bytes());
                (new.pattern.len() as u8, None)
            }
            None => (LONG, Some(new.pattern.into())),
        };
        let extra = (new.ip.is_some() || new.serial.is_some() || long.is_some())
            .then(|| Box::new(Extra { ip: new.ip.map(Into::into), serial: new.serial.map(Into::into), pattern: long }));
        Entry {
            next: new.next,
            domain: new.domain,
            pattern_len,
            state: new.state,
            has_password: new.has_password,
            inline,
            id: new.id,
            key: new.key,
            expires_at: new.expires_at,
            max_enrollments: new.max_enrollments,
            enrollments: new.enrollments,
            extra,
        }
    }

    /// The bytes of the canonical pattern: what a probe compares.
    pub(super) fn pattern_bytes(&self) -> &[u8] {
        match self.inline.get(..usize::from(self.pattern_len)) {
            Some(inline) => inline,
            None => self.extra.as_deref().and_then(|extra| extra.pattern.as_deref()).unwrap_or_default().as_bytes(),
        }
    }

    /// The canonical pattern.
    pub(super) fn pattern(&self) -> &str {
        // Copied from a `&str` whole, so always UTF-8 (canonical patterns
        // are ASCII, which this checks quickly).
        std::str::from_utf8(self.pattern_bytes()).unwrap_or_default()
    }

    /// What a policy sees of it.
    pub(super) fn view(&self) -> Registration {
        let (ip, serial) = match self.extra.as_deref() {
            Some(extra) => (extra.ip.as_deref().map(String::from), extra.serial.as_deref().map(String::from)),
            None => (None, None),
        };
        Registration {
            id: self.id,
            // Not `to_string()`, which goes through `Display` and the
            // formatting machinery: a sixth of a lookup.
            pattern: String::from(self.pattern()),
            ip,
            serial,
            has_password: self.has_password,
            state: self.state,
            expires_at: self.expires_at,
            max_enrollments: self.max_enrollments,
            enrollments: self.enrollments,
        }
    }

    /// Heap bytes held beside the entry itself.
    pub(super) fn heap_bytes(&self) -> usize {
        self.extra.as_deref().map_or(0, |extra| {
            let len = |s: &Option<Box<str>>| s.as_deref().map_or(0, str::len);
            std::mem::size_of::<Extra>() + len(&extra.ip) + len(&extra.serial) + len(&extra.pattern)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pattern: &str, ip: Option<&str>) -> Entry {
        Entry::new(NewEntry {
            id: 7,
            key: 1,
            domain: 0,
            next: END,
            pattern,
            ip,
            serial: None,
            state: RegistrationState::Open,
            has_password: true,
            expires_at: Some(9),
            max_enrollments: None,
            enrollments: 2,
        })
    }

    #[test]
    fn a_probe_reads_one_cache_line_and_an_entry_is_two() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 128);
        assert_eq!(std::mem::align_of::<Entry>(), 128);
        assert_eq!(std::mem::offset_of!(Entry, next), 0);
        assert_eq!(std::mem::offset_of!(Entry, domain), 4);
        assert_eq!(std::mem::offset_of!(Entry, inline) + INLINE, 64);
    }

    #[test]
    fn patterns_of_every_length_read_back_as_they_were() {
        let at_limit = format!("{}.example", "a".repeat(INLINE - ".example".len()));
        let over = format!("x{at_limit}");
        let long = format!("*.{}.example", ["b".repeat(63), "c".repeat(63), "d".repeat(60)].join("."));
        for pattern in ["", "*", "host1.z1.bench.example", &at_limit, &over, &long] {
            for ip in [None, Some("10.0.0.1")] {
                let e = entry(pattern, ip);
                assert_eq!(e.pattern(), pattern);
                let view = e.view();
                assert_eq!((view.pattern.as_str(), view.ip.as_deref()), (pattern, ip));
                assert_eq!((view.id, view.enrollments, view.expires_at), (7, 2, Some(9)));
            }
        }
        assert!(entry(&at_limit, None).extra.is_none(), "{INLINE} bytes fit inline");
        assert!(entry(&over, None).heap_bytes() > over.len(), "a longer one is kept apart");
    }
}
