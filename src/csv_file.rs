//! The CSV files people write for callq (the operator directory, human QA scores): the
//! bytes made text (NUL bytes and a byte order mark dropped, UTF-8 required), the delimiter
//! told from the header row (`;` from Russian Excel, else `,`), and the header's columns.
//! Problems come with the line they are on.

use std::collections::HashMap;

use csv::StringRecord;

/// A problem and its 1-based line.
pub(crate) type LineProblem = (u64, String);

pub(crate) struct CsvFile {
    text: String,
    pub delimiter: u8,
}

/// The header row: where each known column is, how many cells it has, its line.
pub(crate) struct Header {
    pub at: HashMap<String, usize>,
    pub count: usize,
    pub line: u64,
}

impl CsvFile {
    pub fn decode(bytes: &[u8]) -> Result<CsvFile, LineProblem> {
        let cleaned = crate::text::clean_bytes(bytes);
        let bytes = cleaned.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&cleaned);
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            (
                line,
                "not UTF-8 text (in Excel, save as \"CSV UTF-8\"; with iconv: \
                 iconv -f cp1251 -t utf-8)"
                    .to_string(),
            )
        })?;
        Ok(CsvFile {
            delimiter: sniff_delimiter(text),
            text: text.to_string(),
        })
    }

    /// Every record, the header row included (blank lines are skipped by the reader).
    pub fn records(&self) -> csv::StringRecordsIntoIter<&[u8]> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(self.text.as_bytes())
            .into_records()
    }

    /// Reads the header row from `records`; every problem with it at once.
    pub fn header(
        &self,
        records: &mut impl Iterator<Item = csv::Result<StringRecord>>,
        required: &[&str],
        optional: &[&str],
    ) -> Result<Header, Vec<LineProblem>> {
        let header = match records.next() {
            None => {
                return Err(vec![(
                    1,
                    format!(
                        "the file is empty; expected a header row: {}",
                        required.join(",")
                    ),
                )]);
            }
            Some(Err(e)) => {
                let line = e.position().map_or(1, |p| line_at(&self.text, p.byte()));
                return Err(vec![(line, format!("unreadable: {e}"))]);
            }
            Some(Ok(h)) => h,
        };
        let line = header
            .position()
            .map_or(1, |p| line_at(&self.text, p.byte()));
        let at = header_columns(&header, required, optional)
            .map_err(|problems| problems.into_iter().map(|p| (line, p)).collect::<Vec<_>>())?;
        Ok(Header {
            at,
            count: header.len(),
            line,
        })
    }

    /// The rows after the header with their lines: blank rows skipped, an unreadable row
    /// or one with more cells than the header a problem of its line.
    pub fn rows<'a>(
        &'a self,
        records: impl Iterator<Item = csv::Result<StringRecord>> + 'a,
        header: &Header,
    ) -> impl Iterator<Item = Result<(u64, StringRecord), LineProblem>> + 'a {
        let (columns, delimiter) = (header.count, self.delimiter as char);
        let mut last_line = header.line;
        records.filter_map(move |record| {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e
                        .position()
                        .map_or(last_line + 1, |p| line_at(&self.text, p.byte()));
                    last_line = line;
                    return Some(Err((line, format!("unreadable: {e}"))));
                }
            };
            let line = record
                .position()
                .map_or(last_line + 1, |p| line_at(&self.text, p.byte()));
            last_line = line;
            if record.iter().all(|cell| cell.trim().is_empty()) {
                return None;
            }
            if record.len() > columns {
                return Some(Err((
                    line,
                    format!(
                        "{} cells, but the header has {columns} columns (a value with a {delimiter:?} in it must be quoted)",
                        record.len(),
                    ),
                )));
            }
            Some(Ok((line, record)))
        })
    }
}

/// Where each known column of a header row is (names compared trimmed and lower-cased),
/// or every problem with the header: unknown, repeated or missing columns.
fn header_columns(
    header: &StringRecord,
    required: &[&str],
    optional: &[&str],
) -> Result<HashMap<String, usize>, Vec<String>> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let name = raw.trim().to_lowercase();
        if name.is_empty() && i + 1 == header.len() && i > 0 {
            // A trailing delimiter, as some spreadsheets write.
            continue;
        }
        if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
            problems.push(format!("unknown column {raw:?}"));
        } else if at.insert(name.clone(), i).is_some() {
            problems.push(format!("column {name:?} appears twice"));
        }
    }
    for r in required {
        if !at.contains_key(*r) {
            problems.push(format!("missing column {r:?}"));
        }
    }
    if problems.is_empty() {
        Ok(at)
    } else {
        problems.push(format!(
            "expected the header {} with optional {}",
            required.join(","),
            optional.join(",")
        ));
        Err(problems)
    }
}

/// `;` when the header row has more semicolons than commas, else `,`.
pub(crate) fn sniff_delimiter(text: &str) -> u8 {
    let header = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let semicolons = header.matches(';').count();
    let commas = header.matches(',').count();
    if semicolons > commas { b';' } else { b',' }
}

/// The 1-based line of the record the reader says starts at `byte`. The reader's own line
/// numbers miss blank lines and CRLF endings, and its byte offset may point at the line
/// breaks (blank lines) before the record, which are skipped here.
pub(crate) fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut start = usize::try_from(byte)
        .unwrap_or(bytes.len())
        .min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
}
