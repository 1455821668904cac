//! How a variable's text becomes a typed value: one [`Kind`] per shape of value, each with
//! the message saying why a text is not one. Messages name neither the variable nor where it
//! was set; the reader adds both.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::config::database::{DbSettings, parse_database_url};
use crate::config::{LlmMode, ReportLang};
use crate::llm::PromptLayout;
use crate::pii::TranscriptStore;

pub trait Kind {
    type Value;

    /// `raw` has its surrounding whitespace removed and is never empty (an empty value is
    /// an unset one).
    fn parse(raw: &str) -> Result<Self::Value, String>;

    /// What `redact` must mask when the variable holds a secret: the whole value, unless
    /// the secret is a part of it.
    fn secrets(raw: &str) -> Vec<String> {
        vec![raw.to_string()]
    }
}

/// Any text.
pub struct Text;

impl Kind for Text {
    type Value = String;
    fn parse(raw: &str) -> Result<String, String> {
        Ok(raw.to_string())
    }
}

/// A file or folder; whether it must exist is the command's business.
pub struct FilePath;

impl Kind for FilePath {
    type Value = PathBuf;
    fn parse(raw: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(raw))
    }
}

/// Anything `FromStr` reads, with its own error.
pub struct Parsed<T>(PhantomData<T>);

impl<T: FromStr> Kind for Parsed<T>
where
    T::Err: fmt::Display,
{
    type Value = T;
    fn parse(raw: &str) -> Result<T, String> {
        raw.parse()
            .map_err(|e| format!("{raw:?} is not valid: {e}"))
    }
}

/// A number of at least `min`; `why` is the message below it.
fn at_least<T: FromStr + PartialOrd>(raw: &str, min: T, why: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    let v = Parsed::<T>::parse(raw)?;
    if v < min {
        return Err(why.to_string());
    }
    Ok(v)
}

/// A count of at least 1 (concurrency, breaker thresholds).
pub struct Positive;

impl Kind for Positive {
    type Value = usize;
    fn parse(raw: &str) -> Result<usize, String> {
        at_least(raw, 1, "must be at least 1")
    }
}

/// RETRY_MAX_ATTEMPTS.
pub struct RetryAttempts;

impl Kind for RetryAttempts {
    type Value = usize;
    fn parse(raw: &str) -> Result<usize, String> {
        // Fewer attempts would not survive an upstream failing a third of its requests.
        at_least(raw, 6, "must be at least 6")
    }
}

/// RETRY_BASE_DELAY_MS.
pub struct RetryDelay;

impl Kind for RetryDelay {
    type Value = Duration;
    fn parse(raw: &str) -> Result<Duration, String> {
        at_least(
            raw,
            1,
            "must be at least 1 (retries without a pause hammer a struggling server)",
        )
        .map(Duration::from_millis)
    }
}

/// DB_TIMEOUT_S.
pub struct DbTimeout;

impl Kind for DbTimeout {
    type Value = Duration;
    fn parse(raw: &str) -> Result<Duration, String> {
        at_least(raw, 1, "must be at least 1 (seconds)").map(Duration::from_secs)
    }
}

/// A request timeout in whole seconds, at least 1: a zero timeout fails every request.
pub struct Timeout;

impl Kind for Timeout {
    type Value = Duration;
    fn parse(raw: &str) -> Result<Duration, String> {
        match raw.parse::<u64>() {
            Ok(s) if s >= 1 => Ok(Duration::from_secs(s)),
            _ => Err(format!(
                "{raw:?} is not a timeout: use whole seconds, at least 1"
            )),
        }
    }
}

/// true/false, as the old tool's Python read it (1/0, yes/no, on/off too).
pub struct Flag;

impl Kind for Flag {
    type Value = bool;
    fn parse(raw: &str) -> Result<bool, String> {
        match raw.to_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            v => Err(format!("{v:?} is not true/false")),
        }
    }
}

/// The LOGGING_LEVEL values accepted, case aside: Python's names and tracing's.
const LOGGING_LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL",
];

/// LOGGING_LEVEL: the old tool's Python level names (and tracing's), as written.
pub struct Level;

impl Kind for Level {
    type Value = String;
    fn parse(raw: &str) -> Result<String, String> {
        if LOGGING_LEVELS.contains(&raw.to_ascii_uppercase().as_str()) {
            Ok(raw.to_string())
        } else {
            Err(format!(
                "{raw:?} is not a level: use DEBUG, INFO, WARNING or ERROR"
            ))
        }
    }
}

/// USD per 1M tokens; a decimal comma is read as a point.
pub struct Price;

impl Kind for Price {
    type Value = f64;
    fn parse(raw: &str) -> Result<f64, String> {
        match raw.replace(',', ".").parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
            _ => Err(format!(
                "{raw:?} is not a price (a number ≥ 0, USD per 1M tokens)"
            )),
        }
    }
}

/// A share from 0 to 1 (CANARY_MARGIN): `0.05`, `0,05` or `5%`.
pub struct Share;

impl Kind for Share {
    type Value = f64;
    fn parse(raw: &str) -> Result<f64, String> {
        let text = raw.replace(',', ".");
        let value = match text.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
            None => text.parse::<f64>(),
        };
        match value {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
            _ => Err(format!(
                "{raw:?} is not a share: expected a number from 0 to 1 (0.05) or a percentage (5%)"
            )),
        }
    }
}

/// A share of a price: a number above 0 (LLM_PRICE_BATCH_FACTOR); a decimal comma is read
/// as a point.
pub struct Factor;

impl Kind for Factor {
    type Value = f64;
    fn parse(raw: &str) -> Result<f64, String> {
        match raw.replace(',', ".").parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
            _ => Err(format!(
                "{raw:?} is not a factor (a number above 0, e.g. 0.5)"
            )),
        }
    }
}

/// An http(s) base URL, without its trailing slash.
pub struct HttpUrl;

impl Kind for HttpUrl {
    type Value = String;
    fn parse(raw: &str) -> Result<String, String> {
        match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                Ok(raw.trim_end_matches('/').to_string())
            }
            _ => Err(format!("{raw:?} is not an http(s) URL")),
        }
    }
}

/// REVIEW_BELOW_PERCENT: a whole percentage, `%` allowed.
pub struct Percent;

impl Kind for Percent {
    type Value = u8;
    fn parse(raw: &str) -> Result<u8, String> {
        match raw.trim_end_matches('%').trim().parse::<u8>() {
            Ok(p) if p <= 100 => Ok(p),
            _ => Err(format!(
                "{raw:?} is not a percentage (a whole number from 0 to 100)"
            )),
        }
    }
}

/// RETENTION_DAYS.
pub struct Days;

impl Kind for Days {
    type Value = u32;
    fn parse(raw: &str) -> Result<u32, String> {
        match raw.parse::<u32>() {
            Ok(days) if days >= 1 => Ok(days),
            _ => Err(format!(
                "{raw:?} is not a number of days: expected a whole number of at least 1 \
                 (leave it unset to keep transcripts and phone numbers)"
            )),
        }
    }
}

/// DEPARTAMENT_ID.
pub struct DepartmentId;

impl Kind for DepartmentId {
    type Value = i32;
    fn parse(raw: &str) -> Result<i32, String> {
        raw.parse::<i32>()
            .map_err(|_| format!("{raw:?} is not a department id (an integer)"))
    }
}

/// DATA_BASE; its secret is the password in it.
pub struct Database;

impl Kind for Database {
    type Value = DbSettings;
    fn parse(raw: &str) -> Result<DbSettings, String> {
        parse_database_url(raw)
    }
    fn secrets(raw: &str) -> Vec<String> {
        parse_database_url(raw)
            .ok()
            .and_then(|db| {
                db.config
                    .get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
            })
            .into_iter()
            .collect()
    }
}

/// JSON_AUTH: a key file's path or the key's JSON text; its secret is the private key.
/// Whether the file is there is checked with the command's settings.
pub struct GoogleKey;

impl Kind for GoogleKey {
    type Value = String;
    fn parse(raw: &str) -> Result<String, String> {
        Ok(raw.to_string())
    }
    fn secrets(raw: &str) -> Vec<String> {
        let text = if raw.trim_start().starts_with('{') {
            Some(raw.to_string())
        } else {
            std::fs::read_to_string(raw.trim()).ok()
        };
        text.as_deref()
            .and_then(private_key_of)
            .into_iter()
            .collect()
    }
}

/// The `private_key` of a service-account key's JSON text, if it has one.
fn private_key_of(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("private_key")?.as_str().map(str::to_string)
}

/// A value named by one of a few words, case aside.
pub trait Choice: Clone + 'static {
    const OPTIONS: &'static [(&'static str, Self)];
}

/// One of a [`Choice`]'s words.
pub struct OneOf<T>(PhantomData<T>);

impl<T: Choice> Kind for OneOf<T> {
    type Value = T;
    fn parse(raw: &str) -> Result<T, String> {
        choice(raw, T::OPTIONS)
    }
}

/// The value of the word `raw` is (case does not matter); anything else is refused with
/// the words allowed.
pub fn choice<T: Clone>(raw: &str, options: &[(&str, T)]) -> Result<T, String> {
    let lower = raw.to_lowercase();
    if let Some((_, value)) = options.iter().find(|(name, _)| *name == lower) {
        return Ok(value.clone());
    }
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    Err(match names.as_slice() {
        [a, b] => format!("{raw:?} is neither {a:?} nor {b:?}"),
        _ => format!("{raw:?} is not one of: {}", allowed(&names)),
    })
}

/// "a, b or c".
fn allowed(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// PII_MASKING: on/off, and the true/false the old tool's variables use.
pub struct OnOff;

impl Kind for OnOff {
    type Value = bool;
    fn parse(raw: &str) -> Result<bool, String> {
        choice(
            raw,
            &[
                ("on", true),
                ("off", false),
                ("true", true),
                ("false", false),
            ],
        )
    }
}

impl Choice for PromptLayout {
    const OPTIONS: &'static [(&'static str, Self)] = &[
        ("cached", PromptLayout::Cached),
        ("inline", PromptLayout::Inline),
    ];
}

impl Choice for ReportLang {
    const OPTIONS: &'static [(&'static str, Self)] =
        &[("ru", ReportLang::Ru), ("en", ReportLang::En)];
}

impl Choice for LlmMode {
    const OPTIONS: &'static [(&'static str, Self)] =
        &[("sync", LlmMode::Sync), ("batch", LlmMode::Batch)];
}

impl Choice for TranscriptStore {
    const OPTIONS: &'static [(&'static str, Self)] = &[
        ("masked", TranscriptStore::Masked),
        ("raw", TranscriptStore::Raw),
        ("none", TranscriptStore::None),
    ];
}

/// PHONE_STORE as written; `hash` needs PHONE_HASH_KEY besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneMode {
    Plain,
    Hash,
    None,
}

impl Choice for PhoneMode {
    const OPTIONS: &'static [(&'static str, Self)] = &[
        ("plain", PhoneMode::Plain),
        ("hash", PhoneMode::Hash),
        ("none", PhoneMode::None),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_names_the_words_allowed() {
        assert_eq!(
            OneOf::<PromptLayout>::parse("Inline"),
            Ok(PromptLayout::Inline)
        );
        assert_eq!(
            OneOf::<ReportLang>::parse("de"),
            Err("\"de\" is neither \"ru\" nor \"en\"".to_string())
        );
        assert_eq!(
            OneOf::<PhoneMode>::parse("hashed"),
            Err("\"hashed\" is not one of: plain, hash or none".to_string())
        );
        assert_eq!(OnOff::parse("TRUE"), Ok(true));
    }

    #[test]
    fn numbers_below_their_least_say_so() {
        assert_eq!(Positive::parse("0"), Err("must be at least 1".to_string()));
        assert!(
            Positive::parse("x")
                .unwrap_err()
                .starts_with("\"x\" is not valid: ")
        );
        assert_eq!(
            RetryAttempts::parse("5"),
            Err("must be at least 6".to_string())
        );
        assert_eq!(RetryDelay::parse("7"), Ok(Duration::from_millis(7)));
        assert_eq!(Price::parse("0,5"), Ok(0.5));
        assert_eq!(
            Flag::parse("MAYBE"),
            Err("\"maybe\" is not true/false".to_string())
        );
    }
}
