//! The one place secrets are kept out of what callq writes: configuration registers every
//! secret value here, and every log line (console and file) and every printed error passes
//! through [`redact`] on its way out. Call sites need not remember which values are secret.
//!
//! Secrets reach text in encoded forms too: a server that echoes a JSON request body
//! escapes quotes and backslashes, a URL percent-encodes, a form body writes `+` for a
//! space. Each registered secret is kept in all of those forms, and a multi-line secret
//! (a private key) also line by line, since a log line may carry one line of it.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shorter values are not treated as secrets: masking every `abc` in the logs would
/// mangle them and protect nothing.
pub const MIN_LEN: usize = 4;

/// The registered secrets, each in every form it may take in text.
#[derive(Default)]
pub struct Secrets {
    /// Longest first, so a secret that contains another is masked whole.
    forms: Vec<String>,
}

impl Secrets {
    /// Adds `secret` in all its encoded forms; values shorter than [`MIN_LEN`] are ignored.
    pub fn add(&mut self, secret: &str) {
        let trimmed = secret.trim();
        if trimmed.chars().count() < MIN_LEN {
            return;
        }
        let mut forms = encoded_forms(secret);
        forms.extend(encoded_forms(trimmed));
        if secret.contains('\n') {
            for line in secret.lines().map(str::trim) {
                // PEM armour lines (`-----BEGIN PRIVATE KEY-----`) are not secret; the
                // base64 lines between them are.
                if line.chars().count() >= 16 && !line.starts_with("-----") {
                    forms.extend(encoded_forms(line));
                }
            }
        }
        for form in forms {
            if form.chars().count() >= MIN_LEN && !self.forms.contains(&form) {
                self.forms.push(form);
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// `text` with every occurrence of every form replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), MASK));
            }
        }
        out
    }
}

/// The raw value, JSON-escaped, percent-encoded (strictly and as URL userinfo writes it)
/// and form-encoded.
fn encoded_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_string());
        // JSON writers that escape every non-ASCII character (`\u043a`).
        let ascii: String = json[1..json.len() - 1]
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    let mut buf = [0u16; 2];
                    c.encode_utf16(&mut buf)
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                }
            })
            .collect();
        forms.push(ascii);
    }
    let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    forms.push(percent.clone());
    forms.push(percent.replace("%20", "+"));
    forms.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>());
    let mut userinfo = url::Url::parse("http://host/").expect("a valid URL");
    if userinfo.set_password(Some(secret)).is_ok()
        && let Some(p) = userinfo.password()
    {
        forms.push(p.to_string());
    }
    forms.sort();
    forms.dedup();
    forms
}

fn registry() -> &'static RwLock<Secrets> {
    static SECRETS: OnceLock<RwLock<Secrets>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Secrets::default()))
}

/// Registers a secret for the rest of the process.
pub fn register(secret: &str) {
    if secret.trim().chars().count() < MIN_LEN {
        return;
    }
    if let Ok(mut s) = registry().write() {
        s.add(secret);
    }
}

/// `text` with every registered secret masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    match registry().read() {
        Ok(s) => match s.redact(text) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(o) => Cow::Owned(o),
        },
        // A writer panicked while registering: mask nothing rather than lose the line.
        Err(_) => Cow::Borrowed(text),
    }
}

/// [`redact`] for bytes on their way to a writer; invalid UTF-8 is passed as it is
/// outside the valid stretches, which are masked.
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(bytes) {
        Ok(text) => match redact(text) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(o) => Cow::Owned(o.into_bytes()),
        },
        Err(_) => {
            let lossy = String::from_utf8_lossy(bytes);
            match redact(&lossy) {
                Cow::Borrowed(_) => Cow::Borrowed(bytes),
                Cow::Owned(o) => Cow::Owned(o.into_bytes()),
            }
        }
    }
}

/// Prints a line to stdout, secrets masked: for output that bypasses tracing.
pub fn println(text: impl std::fmt::Display) {
    println!("{}", redact(&text.to_string()));
}

/// Prints a line to stderr, secrets masked: for errors that bypass tracing.
pub fn eprintln(text: impl std::fmt::Display) {
    eprintln!("{}", redact(&text.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_masked() {
        let mut s = Secrets::default();
        let secret = "s3cr\"et \\ключ/+&";
        s.add(secret);
        let json = serde_json::json!({ "password": secret }).to_string();
        assert_eq!(s.redact(&json), r#"{"password":"***"}"#);
        assert_eq!(s.redact(&format!("raw {secret} end")), "raw *** end");
        let url = format!(
            "https://u:{}@host/db",
            utf8_percent_encode(secret, NON_ALPHANUMERIC)
        );
        assert_eq!(s.redact(&url), "https://u:***@host/db");
        let form = format!(
            "password={}",
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        assert_eq!(s.redact(&form), "password=***");
        assert_eq!(s.redact("nothing here"), "nothing here");
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_ignored_and_key_lines_are_masked_one_by_one() {
        let mut s = Secrets::default();
        s.add("abc");
        assert_eq!(s.redact("abc abc"), "abc abc");
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
        s.add(key);
        assert_eq!(
            s.redact("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            "line: ***"
        );
        let escaped = serde_json::to_string(key).unwrap();
        assert_eq!(s.redact(&escaped), "\"***\"");
        assert_eq!(
            s.redact("-----BEGIN PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----"
        );
    }

    #[test]
    fn a_secret_inside_a_longer_one_does_not_leave_pieces() {
        let mut s = Secrets::default();
        s.add("token");
        s.add("long-token-value");
        assert_eq!(s.redact("x long-token-value y token"), "x *** y ***");
    }
}
