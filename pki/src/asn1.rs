//! ASN.1 for the enrollment protocols: a lenient BER reader and a strict DER
//! writer.
//!
//! Stock clients do not all send DER: micromdm's `scepclient` sends an
//! indefinite-length, constructed `[0] encryptedContent`. So the reader
//! accepts what BER allows (indefinite lengths, constructed strings, long-form
//! lengths that are not minimal) and everything prereg writes is DER. The
//! reader never allocates for a definite-length value, bounds its nesting,
//! and reports the offset of the first fault.

use std::borrow::Cow;

/// Deepest nesting accepted (a certificate is about 8 deep, a SCEP message 15).
pub const MAX_DEPTH: usize = 40;

/// Universal tags (the class and constructed bits included where they are fixed).
pub mod tag {
    /// BOOLEAN
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// ENUMERATED
    pub const ENUMERATED: u8 = 0x0a;
    /// UTF8String
    pub const UTF8_STRING: u8 = 0x0c;
    /// PrintableString
    pub const PRINTABLE_STRING: u8 = 0x13;
    /// IA5String
    pub const IA5_STRING: u8 = 0x16;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed)
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed)
    pub const SET: u8 = 0x31;
    /// Context-specific `[n]`, constructed.
    pub const fn explicit(n: u8) -> u8 {
        0xa0 | n
    }
    /// Context-specific `[n]`, primitive.
    pub const fn implicit(n: u8) -> u8 {
        0x80 | n
    }
}

/// Why bytes are not the ASN.1 that was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ASN.1 at byte {offset}: {message}")]
pub struct Asn1Error {
    /// Offset from the start of the outermost value read.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// One BER value: its identifier octet, its content, and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    /// The identifier octet (class, constructed bit, tag number below 31).
    pub tag: u8,
    /// The content octets (for an indefinite length: up to the end-of-contents).
    pub content: &'a [u8],
    /// The whole encoding, identifier and length included.
    pub raw: &'a [u8],
    /// Offset of `raw` in the outermost input (for error messages).
    pub offset: usize,
    depth: usize,
}

fn fault<T>(offset: usize, message: impl Into<String>) -> Result<T, Asn1Error> {
    Err(Asn1Error { offset, message: message.into() })
}

/// Reads exactly one value from `input` (nothing may follow it).
pub fn parse(input: &[u8]) -> Result<Value<'_>, Asn1Error> {
    let (value, rest) = read_one(input, 0, 0)?;
    if !rest.is_empty() {
        return fault(value.raw.len(), format!("{} bytes after the value", rest.len()));
    }
    Ok(value)
}

/// Reads one value from the front of `input`, returning it and what follows.
fn read_one(input: &[u8], offset: usize, depth: usize) -> Result<(Value<'_>, &[u8]), Asn1Error> {
    if depth > MAX_DEPTH {
        return fault(offset, format!("nested deeper than {MAX_DEPTH}"));
    }
    let Some(&tag) = input.first() else { return fault(offset, "expected a value, found the end") };
    if tag & 0x1f == 0x1f {
        return fault(offset, "multi-byte tag numbers are not used by these protocols");
    }
    let Some(&first) = input.get(1) else { return fault(offset + 1, "missing length") };
    let constructed = tag & 0x20 != 0;
    let (header, length) = match first {
        0x80 => {
            if !constructed {
                return fault(offset + 1, "indefinite length on a primitive value");
            }
            (2, None)
        }
        n if n < 0x80 => (2, Some(usize::from(n))),
        n => {
            let count = usize::from(n & 0x7f);
            if count > 4 {
                return fault(offset + 1, "length longer than 4 octets");
            }
            let Some(bytes) = input.get(2..2 + count) else { return fault(offset + 2, "truncated length") };
            let length = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + count, Some(length))
        }
    };
    match length {
        Some(length) => {
            let end = header.checked_add(length).filter(|end| *end <= input.len());
            let Some(end) = end else {
                return fault(offset, format!("length {length} runs past the end ({} bytes left)", input.len()));
            };
            let value = Value { tag, content: &input[header..end], raw: &input[..end], offset, depth };
            Ok((value, &input[end..]))
        }
        None => {
            // Indefinite: children up to the end-of-contents octets 00 00.
            let mut rest = &input[header..];
            loop {
                if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                    let content_end = input.len() - rest.len();
                    let end = content_end + 2;
                    let value = Value { tag, content: &input[header..content_end], raw: &input[..end], offset, depth };
                    return Ok((value, &input[end..]));
                }
                let at = offset + input.len() - rest.len();
                let (_, after) = read_one(rest, at, depth + 1)?;
                rest = after;
            }
        }
    }
}

impl<'a> Value<'a> {
    /// Whether the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Whether it was sent with an indefinite length (BER).
    pub fn indefinite(&self) -> bool {
        self.raw.get(1) == Some(&0x80)
    }

    /// A reader over the children of a constructed value.
    pub fn children(&self) -> Result<Reader<'a>, Asn1Error> {
        if !self.constructed() {
            return fault(self.offset, format!("tag {:#04x} is not constructed", self.tag));
        }
        let header = self.raw.len() - self.content.len() - if self.indefinite() { 2 } else { 0 };
        Ok(Reader { rest: self.content, offset: self.offset + header, depth: self.depth + 1 })
    }

    /// Checks the tag.
    pub fn expect(self, tag: u8, what: &str) -> Result<Self, Asn1Error> {
        if self.tag == tag {
            Ok(self)
        } else {
            fault(self.offset, format!("{what}: expected tag {tag:#04x}, found {:#04x}", self.tag))
        }
    }

    /// The octets of a string type, joined if it is sent constructed (BER).
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if !self.constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut joined = Vec::new();
        let mut children = self.children()?;
        while let Some(child) = children.next_value()? {
            joined.extend_from_slice(&child.octets()?);
        }
        Ok(Cow::Owned(joined))
    }

    /// The content of an OCTET STRING, in either tag form.
    pub fn octet_string(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if self.tag & !0x20 != tag::OCTET_STRING {
            return fault(self.offset, format!("expected an OCTET STRING, found tag {:#04x}", self.tag));
        }
        self.octets()
    }

    /// The bits of a BIT STRING with no unused bits (keys, signatures).
    pub fn bit_string_bytes(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if self.tag & !0x20 != tag::BIT_STRING {
            return fault(self.offset, format!("expected a BIT STRING, found tag {:#04x}", self.tag));
        }
        let all = self.octets()?;
        match all.first() {
            Some(0) => Ok(match all {
                Cow::Borrowed(b) => Cow::Borrowed(&b[1..]),
                Cow::Owned(v) => Cow::Owned(v[1..].to_vec()),
            }),
            _ => fault(self.offset, "a BIT STRING with unused bits where whole octets were expected"),
        }
    }

    /// A non-negative INTEGER that fits in a u64.
    pub fn small_uint(&self) -> Result<u64, Asn1Error> {
        let bytes = self.expect(tag::INTEGER, "INTEGER")?.content;
        if bytes.is_empty() || bytes[0] & 0x80 != 0 {
            return fault(self.offset, "expected a non-negative INTEGER");
        }
        let bytes = if bytes[0] == 0 { &bytes[1..] } else { bytes };
        if bytes.len() > 8 {
            return fault(self.offset, "INTEGER too large");
        }
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// An OBJECT IDENTIFIER in dotted form.
    pub fn oid(&self) -> Result<String, Asn1Error> {
        let bytes = self.expect(tag::OID, "OBJECT IDENTIFIER")?.content;
        oid_to_string(bytes)
            .ok_or_else(|| Asn1Error { offset: self.offset, message: "malformed OBJECT IDENTIFIER".into() })
    }

    /// A character string (UTF8String, PrintableString, IA5String, …) as text.
    pub fn text(&self) -> Result<String, Asn1Error> {
        let bytes = self.octets()?;
        match self.tag & !0x20 {
            tag::UTF8_STRING | tag::PRINTABLE_STRING | tag::IA5_STRING | 0x14 | 0x1a => {
                String::from_utf8(bytes.into_owned())
                    .map_err(|_| Asn1Error { offset: self.offset, message: "string is not UTF-8".into() })
            }
            0x1e => {
                // BMPString: UTF-16BE.
                let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                String::from_utf16(&units)
                    .map_err(|_| Asn1Error { offset: self.offset, message: "BMPString is not UTF-16".into() })
            }
            other => fault(self.offset, format!("tag {other:#04x} is not a character string")),
        }
    }
}

/// The children of a constructed value, read in order.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
    offset: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// The next child, or `None` at the end.
    pub fn next_value(&mut self) -> Result<Option<Value<'a>>, Asn1Error> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (value, rest) = read_one(self.rest, self.offset, self.depth)?;
        self.offset += self.rest.len() - rest.len();
        self.rest = rest;
        Ok(Some(value))
    }

    /// The next child, which must be there.
    pub fn required(&mut self, what: &str) -> Result<Value<'a>, Asn1Error> {
        match self.next_value()? {
            Some(v) => Ok(v),
            None => fault(self.offset, format!("{what} is missing")),
        }
    }

    /// The next child if it has `tag` (an OPTIONAL or DEFAULT field).
    pub fn optional(&mut self, tag: u8) -> Result<Option<Value<'a>>, Asn1Error> {
        match self.peek_tag() {
            Some(t) if t == tag => self.next_value(),
            _ => Ok(None),
        }
    }

    /// The tag of the next child.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Every remaining child.
    pub fn remaining(mut self) -> Result<Vec<Value<'a>>, Asn1Error> {
        let mut all = Vec::new();
        while let Some(v) = self.next_value()? {
            all.push(v);
        }
        Ok(all)
    }
}

/// Dotted form of an OID's content octets.
pub fn oid_to_string(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in bytes {
        acc = acc.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let first = arcs[0];
    let (a, b) = if first < 40 {
        (0, first)
    } else if first < 80 {
        (1, first - 40)
    } else {
        (2, first - 80)
    };
    let mut text = format!("{a}.{b}");
    for arc in &arcs[1..] {
        text.push('.');
        text.push_str(&arc.to_string());
    }
    Some(text)
}

// ---------------------------------------------------------------- DER writer

/// One DER value from its tag and content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed value from already-encoded parts.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// SEQUENCE of already-encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    constructed(tag::SEQUENCE, parts)
}

/// SET OF already-encoded parts, sorted as DER requires.
pub fn set_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = parts.to_vec();
    sorted.sort();
    constructed(tag::SET, &sorted)
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = magnitude.iter().take_while(|b| **b == 0).count();
        &magnitude[skip.min(magnitude.len().saturating_sub(1))..]
    };
    if trimmed.is_empty() {
        return tlv(tag::INTEGER, &[0]);
    }
    if trimmed[0] & 0x80 != 0 {
        let mut c = vec![0];
        c.extend_from_slice(trimmed);
        tlv(tag::INTEGER, &c)
    } else {
        tlv(tag::INTEGER, trimmed)
    }
}

/// A small non-negative INTEGER.
pub fn small(n: u64) -> Vec<u8> {
    uint(&n.to_be_bytes())
}

/// An OBJECT IDENTIFIER from its dotted form (a programming error panics in tests).
pub fn oid(dotted: &str) -> Vec<u8> {
    tlv(tag::OID, &oid_content(dotted))
}

fn oid_content(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut out = Vec::new();
    let mut push = |mut v: u64| {
        let mut stack = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            stack.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(stack.iter().rev());
    };
    if arcs.len() >= 2 {
        push(arcs[0] * 40 + arcs[1]);
        for arc in &arcs[2..] {
            push(*arc);
        }
    }
    out
}

/// An OCTET STRING.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, bytes)
}

/// A BIT STRING of whole octets.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(bytes.len() + 1);
    c.push(0);
    c.extend_from_slice(bytes);
    tlv(tag::BIT_STRING, &c)
}

/// A UTF8String.
pub fn utf8(text: &str) -> Vec<u8> {
    tlv(tag::UTF8_STRING, text.as_bytes())
}

/// A PrintableString.
pub fn printable(text: &str) -> Vec<u8> {
    tlv(tag::PRINTABLE_STRING, text.as_bytes())
}

/// NULL.
pub fn null() -> Vec<u8> {
    vec![tag::NULL, 0]
}

/// An AlgorithmIdentifier with absent parameters.
pub fn algorithm(dotted: &str) -> Vec<u8> {
    seq(&[&oid(dotted)])
}

/// An AlgorithmIdentifier with NULL parameters (RSA, digests in PKCS#7).
pub fn algorithm_null(dotted: &str) -> Vec<u8> {
    seq(&[&oid(dotted), &null()])
}

/// A time as X.509 wants it: UTCTime through 2049, GeneralizedTime after.
pub fn x509_time(unix: u64) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = civil(unix);
    if (1950..2050).contains(&y) {
        tlv(tag::UTC_TIME, format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes())
    } else {
        generalized_time(unix)
    }
}

/// A GeneralizedTime (CMP's messageTime).
pub fn generalized_time(unix: u64) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = civil(unix);
    tlv(tag::GENERALIZED_TIME, format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes())
}

/// Unix seconds to (year, month, day, hour, minute, second), UTC.
pub fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Parses a UTCTime or GeneralizedTime of the form `…Z` to Unix seconds.
pub fn parse_time(value: &Value<'_>) -> Result<u64, Asn1Error> {
    let text = std::str::from_utf8(value.content)
        .map_err(|_| Asn1Error { offset: value.offset, message: "time is not ASCII".into() })?;
    // A GeneralizedTime may carry fractions of a second (CMP's messageTime
    // from some clients): they are dropped.
    let whole = match (value.tag, text.split_once('.')) {
        (tag::GENERALIZED_TIME, Some((seconds, fraction)))
            if fraction.strip_suffix('Z').is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())) =>
        {
            std::borrow::Cow::Owned(format!("{seconds}Z"))
        }
        _ => std::borrow::Cow::Borrowed(text),
    };
    let digits = whole.strip_suffix('Z').filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let Some(digits) = digits else { return fault(value.offset, format!("unsupported time {text:?}")) };
    let (year, rest) = match (value.tag, digits.len()) {
        (tag::UTC_TIME, 12) => {
            let yy: u64 = digits[..2].parse().unwrap_or(0);
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (tag::GENERALIZED_TIME, 14) => (digits[..4].parse().unwrap_or(0), &digits[4..]),
        _ => return fault(value.offset, format!("unsupported time {text:?}")),
    };
    let field = |i: usize| rest[i..i + 2].parse::<u64>().unwrap_or(0);
    let (mo, d, h, mi, s) = (field(0), field(2), field(4), field(6), field(8));
    if year < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return fault(value.offset, format!("time out of range {text:?}"));
    }
    // days_from_civil
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_round_trip_and_ber_leniency() {
        let v = seq(&[&small(5), &oid("1.2.840.113549.1.7.2"), &octet_string(b"abc")]);
        let parsed = parse(&v).unwrap();
        let mut r = parsed.children().unwrap();
        assert_eq!(r.required("n").unwrap().small_uint().unwrap(), 5);
        assert_eq!(r.required("oid").unwrap().oid().unwrap(), "1.2.840.113549.1.7.2");
        assert_eq!(&*r.required("s").unwrap().octet_string().unwrap(), b"abc");
        assert!(r.next_value().unwrap().is_none());

        // Indefinite length, a constructed OCTET STRING in two pieces.
        let ber = [0x30, 0x80, 0x24, 0x80, 0x04, 0x01, b'a', 0x04, 0x02, b'b', b'c', 0, 0, 0, 0];
        let parsed = parse(&ber).unwrap();
        let s = parsed.children().unwrap().required("s").unwrap();
        assert_eq!(&*s.octet_string().unwrap(), b"abc");
        assert_eq!(parsed.raw.len(), ber.len());
    }

    #[test]
    fn faults_name_their_offset() {
        assert!(parse(&[0x30, 0x05, 0x02]).unwrap_err().message.contains("runs past"));
        assert!(parse(&[0x04, 0x80, 0, 0]).is_err());
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
        assert!(parse(&[0x02, 0x01, 0x01, 0x00]).unwrap_err().message.contains("after"));
    }

    #[test]
    fn times() {
        let t = 1_795_866_000; // 2026-11-28 ...
        let v = x509_time(t);
        assert_eq!(parse_time(&parse(&v).unwrap()).unwrap(), t);
        let g = generalized_time(4_102_444_800 + 86_400); // 2100-01-02
        assert_eq!(&g[2..], b"21000102000000Z");
        assert_eq!(parse_time(&parse(&g).unwrap()).unwrap(), 4_102_444_800 + 86_400);
    }

    #[test]
    fn integers_and_oids() {
        assert_eq!(uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(uint(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(small(0), vec![2, 1, 0]);
        assert_eq!(oid("2.5.4.3"), vec![6, 3, 0x55, 4, 3]);
        assert_eq!(oid_to_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]).unwrap(), "1.2.840.113549");
    }
}
