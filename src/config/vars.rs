//! Every variable callq reads, in one table: its names, the kind of value, the default,
//! whether it is a secret, the commands that read it and what it means. [`KNOWN_VARS`],
//! secret registration and the typed keys ([`var`]) the settings are built with all come
//! from it; a test keeps it in step with the README's table of variables.

use std::marker::PhantomData;

use super::kinds::*;
use crate::llm::PromptLayout;
use crate::pii::TranscriptStore;
use chrono_tz::Tz;

use super::{LlmMode, ReportLang};

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// Other spellings read when `name` is not set.
    pub aliases: &'static [&'static str],
    /// The kind of value, as the table names it.
    pub kind: &'static str,
    /// The value when it is not set, as a user would write it.
    pub default: Option<&'static str>,
    /// Its value is handed to `redact` as soon as it is read.
    pub secret: bool,
    /// The commands that read it, as the README's table says.
    pub used_by: &'static str,
    pub meaning: &'static str,
    /// Reads a value of this variable's kind (for checking the defaults).
    pub check: fn(&str) -> Result<(), String>,
    /// The secret texts in a value, for a secret variable.
    pub secrets: fn(&str) -> Vec<String>,
}

/// A variable read as a value of kind `K`.
pub struct Var<K> {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Var<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Var<K> {}

/// A variable with a default, so reading it always gives a value.
pub struct Defaulted<K> {
    pub var: Var<K>,
    pub default: &'static str,
}

impl<K> Clone for Defaulted<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Defaulted<K> {}

impl<K: Kind> Defaulted<K> {
    pub fn default_value(&self) -> K::Value {
        K::parse(self.default).unwrap_or_else(|e| {
            panic!(
                "the table's default of {} does not read: {e}",
                self.var.name
            )
        })
    }
}

fn check<K: Kind>(raw: &str) -> Result<(), String> {
    K::parse(raw).map(drop)
}

macro_rules! is_secret {
    () => {
        false
    };
    (secret) => {
        true
    };
}

macro_rules! opt {
    () => {
        None
    };
    ($default:literal) => {
        Some($default)
    };
}

macro_rules! key_type {
    ($kind:ty) => { Var<$kind> };
    ($kind:ty, $default:literal) => { Defaulted<$kind> };
}

macro_rules! key {
    ($name:ident [$($alias:ident)*]) => {
        Var {
            name: stringify!($name),
            aliases: &[$(stringify!($alias)),*],
            kind: PhantomData,
        }
    };
    ($name:ident [$($alias:ident)*] $default:literal) => {
        Defaulted {
            var: key!($name [$($alias)*]),
            default: $default,
        }
    };
}

macro_rules! vars {
    ($(
        $name:ident $(| $alias:ident)* : $kind:ty $(= $default:literal)? $(, $secret:ident)?
            { $used_by:literal, $meaning:literal }
    )*) => {
        /// The table.
        pub const VARS: &[Spec] = &[$(
            Spec {
                name: stringify!($name),
                aliases: &[$(stringify!($alias)),*],
                kind: stringify!($kind),
                default: opt!($($default)?),
                secret: is_secret!($($secret)?),
                used_by: $used_by,
                meaning: $meaning,
                check: check::<$kind>,
                secrets: <$kind as Kind>::secrets,
            },
        )*];

        /// Every name callq reads, aliases included, in the old env file's order where the
        /// old names exist.
        pub const KNOWN_VARS: &[&str] = &[$(stringify!($name), $(stringify!($alias),)*)*];

        /// The typed keys the settings read the variables with.
        pub mod var {
            use super::*;
            $(
                pub const $name: key_type!($kind $(, $default)?) =
                    key!($name [$($alias)*] $($default)?);
            )*
        }
    };
}

vars! {
    LOGGING_NAME: Text = "callq" { "all", "log file name: LOGGING_DIR/<name>.log.YYYY-MM-DD" }
    LOGGING_LEVEL: Level = "INFO" { "all", "DEBUG, INFO, WARNING or ERROR" }
    LOGGING_DIR: FilePath = "logs" { "all", "folder of the daily-rotating log files" }
    LOGGING_ON_CONSOLE: Flag = "True" { "all", "log to stderr" }
    LOGGING_ON_FILE: Flag = "True" { "all", "log to files in LOGGING_DIR" }
    LOGIN: Text { "run", "T-Bank TQM login" }
    PASSWORD: Text, secret { "run", "T-Bank TQM password" }
    AUTH_TYPE: Text = "tqm" { "run", "TQM authentificationType" }
    AUTH_SYSTEM: Text = "tqm" { "run", "TQM authSystem" }
    AGENT_GROUP_NAME: Text { "run", "the operators' work group in TQM" }
    JSON_AUTH: GoogleKey, secret {
        "run, criteria", "Google service-account key: a file path or the key's JSON text"
    }
    REQUIREMENTS_SHEET_ID: Text { "run, criteria", "the checklist's spreadsheet id" }
    REQUIREMENTS_SHEET_NAME_CHECK_LIST: Text { "run, criteria", "the checklist sheet" }
    REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI: Text {
        "run, criteria", "optional sheet of extra instructions for the prompt"
    }
    TOKEN_LLM: Text, secret { "run", "the LLM gateway's API key" }
    MODEL: Text { "run", "model name as the gateway knows it" }
    DATA_BASE: Database, secret { "run, migrate, operators, purge", "PostgreSQL URL" }
    DEPARTAMENT_ID | DEPARTMENT_ID: DepartmentId {
        "run, operators unknown, purge", "department id in departments"
    }
    CHECK_DAY_AGO: Parsed<u32> = "2" { "run", "which day run scores by default" }
    PROMPT_FILE: FilePath { "run", "the department's prompt template" }
    TBANK_BASE_URL: HttpUrl = "https://tqm-cloud.tbank.ru" { "run", "TQM base URL" }
    GOOGLE_SHEETS_BASE_URL: HttpUrl = "https://sheets.googleapis.com/" {
        "run, criteria", "Sheets API base URL"
    }
    LLM_BASE_URL: HttpUrl = "http://localhost:4000/v1" {
        "run", "gateway URL including the version segment"
    }
    CRITERIA_FILE: FilePath { "run, criteria", "a checklist CSV replacing the Sheets source" }
    MIN_CALL_DURATION_S: Parsed<u32> = "30" { "run", "shorter calls are skipped" }
    CALLS_TIMEZONE: Parsed<Tz> = "Europe/Moscow" {
        "run, operators unknown, purge", "time zone of T-Bank's wall-clock times and of today"
    }
    LLM_CONCURRENCY: Positive = "8" { "run", "LLM requests in flight at most" }
    TBANK_CONCURRENCY: Positive = "8" { "run", "transcript requests in flight at most" }
    LLM_TIMEOUT_S: Timeout = "180" { "run", "timeout of one LLM request, in seconds" }
    LLM_PRICE_INPUT_PER_1M: Price { "run", "USD per 1M prompt tokens" }
    LLM_PRICE_CACHED_INPUT_PER_1M: Price { "run", "USD per 1M cached prompt tokens" }
    LLM_PRICE_OUTPUT_PER_1M: Price { "run", "USD per 1M completion tokens" }
    LLM_MODE: OneOf<LlmMode> = "sync" {
        "run", "sync: one request per call; batch: the gateway's Batch API, half the price"
    }
    LLM_BATCH_MAX_REQUESTS: Positive = "50000" { "run", "calls per batch input file at most" }
    LLM_BATCH_MAX_BYTES: Positive = "190000000" {
        "run", "bytes per batch input file at most"
    }
    LLM_PRICE_BATCH_FACTOR: Factor = "0.5" {
        "run", "batch answers cost this share of LLM_PRICE_*"
    }
    LLM_BREAKER_THRESHOLD: Positive = "5" {
        "run", "LLM requests in a row refused alike that stop the run"
    }
    TBANK_BREAKER_THRESHOLD: Positive = "5" {
        "run", "transcript requests in a row failing alike that stop the run"
    }
    TBANK_TIMEOUT_S: Timeout = "60" { "run", "timeout of one T-Bank request, in seconds" }
    TQM_VERSION: Text = "26551fa4" { "run", "the X-TQM-Version header" }
    RETRY_MAX_ATTEMPTS: RetryAttempts = "8" { "run, criteria", "attempts per HTTP request" }
    RETRY_BASE_DELAY_MS: RetryDelay = "500" { "run, criteria", "first backoff delay" }
    PROMPT_LAYOUT: OneOf<PromptLayout> = "cached" {
        "run", "cached: shared prompt text first; inline: the old tool's layout"
    }
    METRICS_TEXTFILE: FilePath { "run", "Prometheus textfile for the run's metrics" }
    PUSHGATEWAY_URL: HttpUrl { "run", "Prometheus Pushgateway for the run's metrics" }
    DB_TIMEOUT_S: DbTimeout = "30" {
        "all with `DATA_BASE`", "the longest one database operation may take"
    }
    SHUTDOWN_GRACE_S: Parsed<u64> = "30" {
        "run", "after SIGTERM/SIGINT, how long calls in flight may take"
    }
    REVIEW_BELOW_PERCENT: Percent = "50" {
        "run", "scored calls below this percentage go to the review queue"
    }
    PII_MASKING: OnOff = "on" { "run", "mask personal data before the model sees it" }
    TRANSCRIPT_STORE: OneOf<TranscriptStore> = "masked" {
        "run", "what call_transcripts keeps: masked, raw or none"
    }
    PHONE_STORE: OneOf<PhoneMode> = "plain" {
        "run", "what calls.phone_number keeps: plain, hash or none"
    }
    PHONE_HASH_KEY: Text, secret { "run", "the secret key of PHONE_STORE=hash" }
    RETENTION_DAYS: Days { "run, purge", "age in days purge removes personal data from" }
    REPORT_LANG: OneOf<ReportLang> = "ru" { "report", "the report's language: ru or en" }
    CANARY_CALLS: Parsed<u32> = "0" {
        "run, canary", "calls with human scores scored again after every nightly run; 0: off"
    }
    CANARY_MARGIN: Share = "0.06" {
        "run, canary", "how far the canary's agreement may fall below its trailing median"
    }
}

/// Names the old tool read that callq has no use for: accepted, ignored, warned about once.
pub const IGNORED_OLD_VARS: &[&str] = &[
    "LOGGING_ON_DB",
    "RESULTS_SHEET_NAME",
    "RESULTS_SHEET_ID",
    "APPS_SCRIPT_URL",
    "LOGGING_FORMAT",
    "LOGGING_TABLE",
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::retry::RetryPolicy;

    #[test]
    fn every_default_is_a_value_of_its_kind() {
        for spec in VARS {
            if let Some(d) = spec.default {
                (spec.check)(d).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            }
        }
    }

    #[test]
    fn the_defaults_are_the_ones_the_code_assumes() {
        let retry = RetryPolicy::default();
        assert_eq!(var::RETRY_MAX_ATTEMPTS.default_value(), retry.max_attempts);
        assert_eq!(var::RETRY_BASE_DELAY_MS.default_value(), retry.min_delay);
        assert_eq!(
            var::DB_TIMEOUT_S.default_value(),
            super::super::database::DEFAULT_DB_TIMEOUT
        );
        assert_eq!(var::SHUTDOWN_GRACE_S.default_value(), 30);
        assert_eq!(var::LLM_TIMEOUT_S.default_value(), Duration::from_secs(180));
        let privacy = crate::pii::PrivacySettings::default();
        assert_eq!(var::PII_MASKING.default_value(), privacy.pii_masking);
        assert_eq!(
            var::TRANSCRIPT_STORE.default_value(),
            privacy.transcript_store
        );
        assert_eq!(var::PHONE_STORE.default_value(), PhoneMode::Plain);
        assert_eq!(var::PROMPT_LAYOUT.default_value(), PromptLayout::default());
        assert_eq!(var::REPORT_LANG.default_value(), ReportLang::default());
    }

    #[test]
    fn names_are_unique_and_not_ignored() {
        let mut seen = std::collections::BTreeSet::new();
        for name in KNOWN_VARS {
            assert!(seen.insert(name), "{name} twice");
            assert!(!IGNORED_OLD_VARS.contains(name), "{name}");
        }
    }

    /// The README's table of variables has one row per variable of the table (aliases are
    /// mentioned in their variable's row), with the same commands and default.
    #[test]
    fn the_readme_lists_every_variable_with_its_commands_and_default() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .filter(|cells: &Vec<&str>| cells.len() == 4)
            .filter(|cells| {
                let name = cells[0].trim_matches('`');
                KNOWN_VARS.contains(&name)
            })
            .collect();
        for spec in VARS {
            let row = rows
                .iter()
                .find(|cells| cells[0] == format!("`{}`", spec.name))
                .unwrap_or_else(|| panic!("README.md has no row for {}", spec.name));
            assert_eq!(row[1], spec.used_by, "{}: used by", spec.name);
            match spec.default {
                Some(d) => assert_eq!(row[2], format!("`{d}`"), "{}: default", spec.name),
                // Either none, or another variable's value.
                None => assert!(
                    row[2] == "—" || KNOWN_VARS.contains(&row[2].trim_matches('`')),
                    "{}: README says the default is {}",
                    spec.name,
                    row[2]
                ),
            }
        }
        assert_eq!(rows.len(), VARS.len(), "README rows: {rows:?}");
    }
}
