//! Reads env files the way the old tool's python-dotenv did. dotenvy rejects unquoted
//! values with spaces (`AGENT_GROUP_NAME=Торговые представители`), which existing
//! department files contain, so the format is parsed here.
//!
//! Error messages name the line and never quote its text: a bad line may hold a password
//! or half a private key.

use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The line the variable starts on.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub line: usize,
    /// The variable the line sets, when it got that far.
    pub key: Option<String>,
    pub message: String,
}

/// Parses `KEY=value` lines: `export ` prefixes, single or double quotes (double quotes
/// understand `\n`, `\"` and `\\`), ` #` comments after unquoted values, blank and `#` lines.
/// A quoted value whose closing quote is not on its first line continues over the following
/// lines, newlines kept, like python-dotenv (how a service-account JSON is pasted in).
pub fn parse(text: &str) -> (Vec<Entry>, Vec<LineError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = i + 1;
        let raw = lines[i];
        i += 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let start = raw.trim_start();
        let body = start.strip_prefix("export ").unwrap_or(start);
        let Some((key, value)) = body.split_once('=') else {
            errors.push(LineError {
                line,
                key: None,
                message: "expected KEY=value".into(),
            });
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(LineError {
                line,
                key: None,
                message: "not a variable name".into(),
            });
            continue;
        }
        let value = value.trim_start();
        let parsed = match value.chars().next() {
            Some(q @ ('"' | '\'')) => match quoted(q, &value[1..], &lines[i..]) {
                Ok((value, taken)) => {
                    i += taken;
                    Ok(value)
                }
                // An unterminated value takes the lines up to the next one that sets a
                // variable (or the rest of the file): the lines of a pasted key are not
                // read as variables, and the variables after a forgotten quote are.
                Err((message, taken)) => {
                    i += taken;
                    if message.starts_with("unterminated") {
                        Err(format!("{message} (opened on line {line})"))
                    } else {
                        Err(message)
                    }
                }
            },
            _ => Ok(unquoted(value)),
        };
        match parsed {
            Ok(value) => entries.push(Entry {
                key: key.to_string(),
                value,
                line,
            }),
            Err(message) => errors.push(LineError {
                line,
                key: Some(key.to_string()),
                message,
            }),
        }
    }
    (entries, errors)
}

/// A value opened by quote `q`: `first` is the rest of its first line, `next` the lines
/// after. Returns the value, or the error, with how many of `next` it took.
fn quoted(q: char, first: &str, next: &[&str]) -> Result<(String, usize), (String, usize)> {
    let mut inner = String::new();
    let mut piece = first;
    let mut taken = 0;
    loop {
        if let Some(end) = closing_quote(q, piece) {
            let after = piece[end + 1..].trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(("unexpected text after the closing quote".into(), taken));
            }
            inner.push_str(&piece[..end]);
            let value = if q == '\'' {
                inner
            } else {
                unescape_double(&inner)
            };
            return Ok((value, taken));
        }
        let Some(line) = next.get(taken) else {
            return Err((
                format!("unterminated {q} quote: not closed by the end of the file"),
                taken,
            ));
        };
        if let Some(name) = sets_a_variable(line) {
            return Err((
                format!("unterminated {q} quote: not closed before {name} is set"),
                taken,
            ));
        }
        inner.push_str(piece);
        inner.push('\n');
        piece = line;
        taken += 1;
    }
}

/// The variable a line sets, if it plainly sets one: `NAME=` with a name callq knows, or
/// an upper-case name with an underscore. Such a line inside a quoted value means the
/// quote was never closed; lines of a pasted key or JSON do not look like that (base64
/// has no `_`, JSON lines start with a quote or a brace).
fn sets_a_variable(line: &str) -> Option<&str> {
    let start = line.trim_start();
    let body = start.strip_prefix("export ").unwrap_or(start);
    let (name, _) = body.split_once('=')?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    let known = super::KNOWN_VARS.contains(&name) || super::IGNORED_OLD_VARS.contains(&name);
    (plain && (known || name.contains('_'))).then_some(name)
}

/// Byte offset of the last closing quote in `s`; in double quotes, `\"` does not close.
fn closing_quote(q: char, s: &str) -> Option<usize> {
    if q == '\'' {
        return s.rfind(q);
    }
    let mut last = None;
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                it.next();
            }
            '"' => last = Some(i),
            _ => {}
        }
    }
    last
}

/// An unquoted value ends at ` #`, like python-dotenv.
fn unquoted(v: &str) -> String {
    let value = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    value.trim().to_string()
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
        let (entries, errors) = parse("A=1\nnot a line\n1X-Y=2\nB=\"open\n");
        assert_eq!(entries.len(), 1);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
    }

    #[test]
    fn a_quoted_value_continues_over_lines_until_its_closing_quote() {
        let text = [
            "LOGIN=bot",
            "JSON_AUTH='{",
            r#"  "type": "service_account","#,
            r#"  "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n","#,
            r#"  "client_email": "bot@project.iam.gserviceaccount.com""#,
            "}'",
            "PEM=\"-----BEGIN PRIVATE KEY-----",
            "MIIEvQIBADANBg",
            "-----END PRIVATE KEY-----",
            "\" # pasted as is",
            "MODEL=gpt",
        ]
        .join("\n");
        let (entries, errors) = parse(&text);
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<(&str, &str, usize)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        let json = "{\n  \"type\": \"service_account\",\n  \"private_key\": \
                    \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n\",\n  \
                    \"client_email\": \"bot@project.iam.gserviceaccount.com\"\n}";
        assert_eq!(
            got,
            vec![
                ("LOGIN", "bot", 1),
                ("JSON_AUTH", json, 2),
                (
                    "PEM",
                    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
                    7
                ),
                ("MODEL", "gpt", 11),
            ]
        );
        // The JSON survives as JSON, its private key with the `\n`s JSON decodes.
        let key: serde_json::Value = serde_json::from_str(&entries[1].value).unwrap();
        assert_eq!(
            key["private_key"],
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn escaped_double_quotes_do_not_close_a_multi_line_value() {
        assert_eq!(
            kv("J=\"{\\\"a\\\":\n  \\\"b\\\"}\"\nK=1"),
            vec![
                ("J".into(), "{\"a\":\n  \"b\"}".into()),
                ("K".into(), "1".into())
            ]
        );
    }

    #[test]
    fn an_unterminated_quote_names_the_line_the_value_started_on() {
        let (entries, errors) = parse("A=1\nKEY='-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n");
        assert_eq!(entries.len(), 1);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("unterminated"), "{errors:?}");
    }

    #[test]
    fn an_unterminated_quote_is_blamed_on_its_own_variable_not_the_next_ones() {
        let text = "A=1\nJSON_AUTH='{\n  \"type\": \"service_account\",\n  \"key\": \"MIIE==\"\nLOGIN=bot\nexport PASSWORD='x'\nMY_VAR=2\n";
        let (entries, errors) = parse(text);
        let got: Vec<(&str, &str, usize)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A", "1", 1),
                ("LOGIN", "bot", 5),
                ("PASSWORD", "x", 6),
                ("MY_VAR", "2", 7)
            ]
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 2);
        assert_eq!(errors[0].key.as_deref(), Some("JSON_AUTH"));
        assert_eq!(
            errors[0].message,
            "unterminated ' quote: not closed before LOGIN is set (opened on line 2)"
        );
    }

    #[test]
    fn errors_do_not_echo_the_line() {
        let secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
        let text = format!(
            "{secret}\n{secret}-x={secret}\nK='{secret}' {secret}\nJ='{{\n{secret}'{secret}\n}}'\nZ=\"{secret}\n"
        );
        let (_, errors) = parse(&text);
        let messages: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert_eq!(messages[0], (1, "expected KEY=value"));
        assert_eq!(messages[1], (2, "not a variable name"));
        assert_eq!(messages[2], (3, "unexpected text after the closing quote"));
        assert_eq!(messages[3], (4, "unexpected text after the closing quote"));
        assert_eq!(messages[4], (6, "expected KEY=value"));
        assert_eq!(messages[5].0, 7);
        for (_, message) in &messages {
            assert!(!message.contains(secret), "{message}");
            assert!(!message.contains("MIIE"), "{message}");
        }
    }
}
