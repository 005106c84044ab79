//! A streaming CSV reader (RFC 4180) with hard limits, for files that come
//! from anyone: memory stays bounded by the limits whatever the input, and
//! every refusal names the line, the row and the column.
//!
//! Accepted: UTF-8 with or without a byte-order mark, CRLF or LF line ends,
//! quoted fields holding commas, doubled quotes and line breaks. Blank lines
//! are skipped. Refused: UTF-16 (and any NUL byte), invalid UTF-8, a field
//! over [`MAX_FIELD_BYTES`], a record over [`MAX_ROW_BYTES`], a quote that is
//! never closed, text after a closing quote, a quote inside an unquoted field.

use std::io::{self, BufRead};

/// Longest field, in bytes (after unquoting).
pub const MAX_FIELD_BYTES: usize = 1024;
/// Longest record, in bytes as found in the file.
pub const MAX_ROW_BYTES: usize = 8 * 1024;

/// Where a record starts: its row number (the header is row 1, as in a
/// spreadsheet) and the line it starts on (they differ when quoted fields
/// hold line breaks, or blank lines are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Position {
    /// Row number; the header is row 1.
    pub row: u64,
    /// Line number in the file, from 1.
    pub line: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {} (line {})", self.row, self.line)
    }
}

/// Why a file cannot be read as CSV at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// No header.
    #[error("the file is empty: it needs at least a header line naming the columns")]
    Empty,
    /// A UTF-16 byte-order mark.
    #[error("the file is UTF-16; save it as UTF-8 (with or without a byte-order mark)")]
    Utf16,
    /// A NUL byte.
    #[error("line {line}: a NUL byte; this is not a text file (UTF-16 files are refused: save it as UTF-8)")]
    Nul {
        /// Line.
        line: u64,
    },
    /// Invalid UTF-8.
    #[error("{at}, column {column}: not valid UTF-8 text")]
    InvalidUtf8 {
        /// Where.
        at: Position,
        /// Column number from 1.
        column: usize,
    },
    /// A field over the limit.
    #[error("{at}, column {column}: a field longer than {MAX_FIELD_BYTES} bytes{hint}")]
    FieldTooLong {
        /// Where.
        at: Position,
        /// Column number from 1.
        column: usize,
        /// A hint when the field is quoted.
        hint: &'static str,
    },
    /// A record over the limit.
    #[error("{at}: a row longer than {MAX_ROW_BYTES} bytes{hint}")]
    RowTooLong {
        /// Where.
        at: Position,
        /// A hint when the row is inside a quoted field.
        hint: &'static str,
    },
    /// End of file inside quotes.
    #[error("{at}, column {column}: a quoted field is never closed (a closing quote is missing)")]
    UnterminatedQuote {
        /// Where.
        at: Position,
        /// Column number from 1.
        column: usize,
    },
    /// Text after a closing quote, or a quote inside an unquoted field.
    #[error("{at}, column {column}: {what}")]
    BadQuote {
        /// Where.
        at: Position,
        /// Column number from 1.
        column: usize,
        /// What was found.
        what: &'static str,
    },
    /// Reading failed.
    #[error("reading the file: {0}")]
    Io(#[from] io::Error),
}

/// One record: its position and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it starts.
    pub at: Position,
    /// The fields, unquoted.
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// In an unquoted field.
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: a second quote is a literal
    /// quote, anything else ends the field.
    QuoteInQuoted,
    /// After a CR that ends a record: an LF right after belongs to it.
    AfterCr,
}

/// Reads records one at a time from a byte stream.
pub struct CsvReader<R> {
    input: R,
    /// Lines seen so far (the current line number is `line + 1`).
    line: u64,
    /// Records returned so far.
    rows: u64,
    started: bool,
    /// A CR ended the last record; skip one LF.
    pending_lf: bool,
}

impl<R: BufRead> CsvReader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> Self {
        CsvReader { input, line: 0, rows: 0, started: false, pending_lf: false }
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.input
    }

    /// Checks the byte-order mark once, at the start.
    fn start(&mut self) -> Result<(), CsvError> {
        self.started = true;
        let buf = self.input.fill_buf()?;
        if buf.starts_with(&[0xFF, 0xFE]) || buf.starts_with(&[0xFE, 0xFF]) {
            return Err(CsvError::Utf16);
        }
        if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.input.consume(3);
        }
        Ok(())
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record>, CsvError> {
        if !self.started {
            self.start()?;
        }
        let mut fields: Vec<String> = Vec::new();
        let mut field: Vec<u8> = Vec::new();
        let mut state = State::FieldStart;
        let mut row_bytes = 0usize;
        let mut start_line = self.line + 1;
        // Whether this record has any content yet (blank lines are skipped).
        let mut content = false;
        if self.pending_lf {
            state = State::AfterCr;
        }
        loop {
            let at = Position { row: self.rows + 1, line: start_line };
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                // End of file.
                return match state {
                    State::Quoted => Err(CsvError::UnterminatedQuote { at, column: fields.len() + 1 }),
                    _ if !content => Ok(None),
                    _ => {
                        fields.push(finish_field(&mut field, at, fields.len() + 1)?);
                        self.rows += 1;
                        Ok(Some(Record { at, fields }))
                    }
                };
            }
            let mut used = 0;
            let mut done = false;
            for &byte in buf {
                used += 1;
                if byte == 0 {
                    return Err(CsvError::Nul { line: self.line + 1 });
                }
                if state == State::AfterCr {
                    self.pending_lf = false;
                    state = State::FieldStart;
                    if byte == b'\n' {
                        continue;
                    }
                }
                if content {
                    row_bytes += 1;
                    if row_bytes > MAX_ROW_BYTES {
                        let hint = if state == State::Quoted {
                            " inside a quoted field: is a closing quote missing?"
                        } else {
                            ""
                        };
                        return Err(CsvError::RowTooLong { at, hint });
                    }
                }
                let column = fields.len() + 1;
                match (state, byte) {
                    (State::Quoted, b'"') => state = State::QuoteInQuoted,
                    (State::Quoted, b) => {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        push(&mut field, b, at, column, true)?;
                    }
                    (State::QuoteInQuoted, b'"') => {
                        push(&mut field, b'"', at, column, true)?;
                        state = State::Quoted;
                    }
                    (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b',') => {
                        content = true;
                        fields.push(finish_field(&mut field, at, column)?);
                        state = State::FieldStart;
                    }
                    (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b'\n' | b'\r') => {
                        self.line += 1;
                        if !content {
                            // A blank line: skip it.
                            start_line = self.line + 1;
                            if byte == b'\r' {
                                state = State::AfterCr;
                                self.pending_lf = true;
                            }
                            continue;
                        }
                        fields.push(finish_field(&mut field, at, column)?);
                        self.pending_lf = byte == b'\r';
                        done = true;
                        break;
                    }
                    (State::QuoteInQuoted, _) => {
                        return Err(CsvError::BadQuote { at, column, what: "text after a closing quote" });
                    }
                    (State::FieldStart, b'"') => {
                        content = true;
                        row_bytes += 1;
                        state = State::Quoted;
                    }
                    (State::Unquoted, b'"') => {
                        return Err(CsvError::BadQuote {
                            at,
                            column,
                            what: "a quote inside an unquoted field (quote the whole field and double the quote)",
                        });
                    }
                    (State::FieldStart | State::Unquoted, b) => {
                        if !content {
                            content = true;
                            row_bytes += 1;
                        }
                        push(&mut field, b, at, column, false)?;
                        state = State::Unquoted;
                    }
                    // Resolved before the match.
                    (State::AfterCr, _) => {}
                }
            }
            self.input.consume(used);
            if done {
                self.rows += 1;
                return Ok(Some(Record { at: Position { row: self.rows, line: start_line }, fields }));
            }
        }
    }
}

fn push(field: &mut Vec<u8>, byte: u8, at: Position, column: usize, quoted: bool) -> Result<(), CsvError> {
    if field.len() >= MAX_FIELD_BYTES {
        let hint = if quoted { " (quoted: is a closing quote missing?)" } else { "" };
        return Err(CsvError::FieldTooLong { at, column, hint });
    }
    field.push(byte);
    Ok(())
}

fn finish_field(field: &mut Vec<u8>, at: Position, column: usize) -> Result<String, CsvError> {
    let bytes = std::mem::take(field);
    String::from_utf8(bytes).map_err(|_| CsvError::InvalidUtf8 { at, column })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Result<Vec<Vec<String>>, CsvError> {
        let mut reader = CsvReader::new(io::BufReader::with_capacity(7, input));
        let mut out = Vec::new();
        while let Some(r) = reader.next_record()? {
            out.push(r.fields);
        }
        Ok(out)
    }

    fn rows(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter().map(|r| r.iter().map(|f| f.to_string()).collect()).collect()
    }

    #[test]
    fn plain_crlf_bom_and_quotes() {
        let text = b"\xEF\xBB\xBFfqdn,ip\r\na.example.com,10.0.0.1\r\n\"b,\"\"x\"\"\nc\",\r\n\r\nlast,1";
        assert_eq!(
            read_all(text).unwrap(),
            rows(&[&["fqdn", "ip"], &["a.example.com", "10.0.0.1"], &["b,\"x\"\nc", ""], &["last", "1"]])
        );
    }

    #[test]
    fn positions_count_rows_and_lines() {
        let text = b"h\n\n\"a\nb\"\nc\n";
        let mut reader = CsvReader::new(&text[..]);
        let mut seen = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            seen.push((r.at.row, r.at.line));
        }
        assert_eq!(seen, vec![(1, 1), (2, 3), (3, 5)]);
    }

    #[test]
    fn refusals_name_the_place() {
        assert!(matches!(read_all(b"\xFF\xFEf\0q\0"), Err(CsvError::Utf16)));
        assert!(matches!(read_all(b"fqdn\na\0b\n"), Err(CsvError::Nul { line: 2 })));
        assert!(matches!(
            read_all(b"fqdn\n\"open\nstill open"),
            Err(CsvError::UnterminatedQuote { at: Position { row: 2, line: 2 }, column: 1 })
        ));
        assert!(matches!(read_all(b"fqdn\n\"a\"b\n"), Err(CsvError::BadQuote { .. })));
        assert!(matches!(read_all(b"fqdn\na\"b\n"), Err(CsvError::BadQuote { .. })));
        assert!(matches!(read_all(b"fqdn\n\xC3\x28\n"), Err(CsvError::InvalidUtf8 { .. })));
        let long_field = format!("fqdn,ip\nx,{}\n", "a".repeat(MAX_FIELD_BYTES + 1));
        assert!(matches!(read_all(long_field.as_bytes()), Err(CsvError::FieldTooLong { column: 2, .. })));
        let long_row = format!("fqdn\n{}\n", vec!["a".repeat(1000); 9].join(","));
        assert!(matches!(read_all(long_row.as_bytes()), Err(CsvError::RowTooLong { .. })));
        // An unterminated quote never reads past the row limit.
        let runaway = format!("fqdn\n\"{}", "a,\n".repeat(10_000));
        assert!(matches!(read_all(runaway.as_bytes()), Err(CsvError::FieldTooLong { hint, .. }) if !hint.is_empty()));
        assert_eq!(read_all(b"").unwrap(), Vec::<Vec<String>>::new());
    }
}
