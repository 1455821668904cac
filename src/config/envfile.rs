//! Reads env files the way the old tool's python-dotenv did. dotenvy rejects unquoted
//! values with spaces (`AGENT_GROUP_NAME=Торговые представители`), which existing
//! department files contain, so the format is parsed here.

use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses `KEY=value` lines: `export ` prefixes, single or double quotes (double quotes
/// understand `\n`, `\"` and `\\`), ` #` comments after unquoted values, blank and `#` lines.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<LineError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, value)) = body.split_once('=') else {
            errors.push(LineError {
                line,
                message: "expected KEY=value".into(),
            });
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(LineError {
                line,
                message: format!("{key:?} is not a variable name"),
            });
            continue;
        }
        match unquote(value.trim()) {
            Ok(value) => entries.push(Entry {
                key: key.to_string(),
                value,
                line,
            }),
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    (entries, errors)
}

fn unquote(v: &str) -> Result<String, String> {
    let mut chars = v.chars();
    match chars.next() {
        Some(q @ ('"' | '\'')) => {
            let rest = &v[1..];
            let Some(end) = rest.rfind(q) else {
                return Err(format!("unterminated {q} quote"));
            };
            let after = rest[end + 1..].trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(format!(
                    "unexpected text after the closing quote: {after:?}"
                ));
            }
            let inner = &rest[..end];
            if q == '\'' {
                Ok(inner.to_string())
            } else {
                Ok(unescape_double(inner))
            }
        }
        _ => {
            // An unquoted value ends at ` #`, like python-dotenv.
            let value = match v.find(" #") {
                Some(i) => &v[..i],
                None => v,
            };
            Ok(value.trim().to_string())
        }
    }
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn read(path: &Path) -> std::io::Result<(Vec<Entry>, Vec<LineError>)> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        let (e, errs) = parse(text);
        assert!(errs.is_empty(), "{errs:?}");
        e.into_iter().map(|e| (e.key, e.value)).collect()
    }

    #[test]
    fn values_quoted_unquoted_cyrillic_with_spaces() {
        let got = kv(
            "\u{feff}# header\nAGENT_GROUP_NAME=Торговые представители\n\
             SHEET=\"Чек-лист отдел 1\"\nP='a \"b\" c'\nexport X=1 # note\nE=\nURL=postgresql://u:p@h/db?x=1\n",
        );
        assert_eq!(
            got,
            vec![
                ("AGENT_GROUP_NAME".into(), "Торговые представители".into()),
                ("SHEET".into(), "Чек-лист отдел 1".into()),
                ("P".into(), "a \"b\" c".into()),
                ("X".into(), "1".into()),
                ("E".into(), "".into()),
                ("URL".into(), "postgresql://u:p@h/db?x=1".into()),
            ]
        );
    }

    #[test]
    fn double_quotes_unescape() {
        assert_eq!(
            kv("J=\"{\\\"a\\\": \\\"b\\nc\\\"}\""),
            vec![("J".into(), "{\"a\": \"b\nc\"}".into())]
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers() {
        let (entries, errors) = parse("A=1\nnot a line\nB=\"open\n1X-Y=2\n");
        assert_eq!(entries.len(), 1);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
    }
}
