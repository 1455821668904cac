//! Env file + environment + flags → validated settings, one struct per command so each
//! command asks only for what it uses. Every problem is collected and reported at once,
//! naming the variable and where its value came from.

mod envfile;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;

use crate::checklist::{SheetsSource, Source};
use crate::llm::{LlmSettings, PromptLayout};
use crate::pii;
use crate::retry::RetryPolicy;
use crate::tbank::TbankSettings;

/// Every variable callq reads, in the old env file's order where the old names exist.
pub const KNOWN_VARS: &[&str] = &[
    "LOGGING_NAME",
    "LOGGING_LEVEL",
    "LOGGING_DIR",
    "LOGGING_ON_CONSOLE",
    "LOGGING_ON_FILE",
    "LOGIN",
    "PASSWORD",
    "AUTH_TYPE",
    "AUTH_SYSTEM",
    "AGENT_GROUP_NAME",
    "JSON_AUTH",
    "REQUIREMENTS_SHEET_ID",
    "REQUIREMENTS_SHEET_NAME_CHECK_LIST",
    "REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI",
    "TOKEN_LLM",
    "MODEL",
    "DATA_BASE",
    "DEPARTAMENT_ID",
    "DEPARTMENT_ID",
    "CHECK_DAY_AGO",
    "PROMPT_FILE",
    "TBANK_BASE_URL",
    "GOOGLE_SHEETS_BASE_URL",
    "LLM_BASE_URL",
    "CRITERIA_FILE",
    "MIN_CALL_DURATION_S",
    "CALLS_TIMEZONE",
    "LLM_CONCURRENCY",
    "TBANK_CONCURRENCY",
    "LLM_TIMEOUT_S",
    "LLM_PRICE_INPUT_PER_1M",
    "LLM_PRICE_CACHED_INPUT_PER_1M",
    "LLM_PRICE_OUTPUT_PER_1M",
    "LLM_BREAKER_THRESHOLD",
    "TBANK_BREAKER_THRESHOLD",
    "TBANK_TIMEOUT_S",
    "TQM_VERSION",
    "RETRY_MAX_ATTEMPTS",
    "RETRY_BASE_DELAY_MS",
    "PROMPT_LAYOUT",
    "METRICS_TEXTFILE",
    "PUSHGATEWAY_URL",
    "DB_TIMEOUT_S",
    "SHUTDOWN_GRACE_S",
    "REVIEW_BELOW_PERCENT",
    "PII_MASKING",
    "TRANSCRIPT_STORE",
    "PHONE_STORE",
    "PHONE_HASH_KEY",
    "RETENTION_DAYS",
    "REPORT_LANG",
];

/// Names the old tool read that callq has no use for: accepted, ignored, warned about once.
pub const IGNORED_OLD_VARS: &[&str] = &[
    "LOGGING_ON_DB",
    "RESULTS_SHEET_NAME",
    "RESULTS_SHEET_ID",
    "APPS_SCRIPT_URL",
    "LOGGING_FORMAT",
    "LOGGING_TABLE",
];

pub const DEFAULT_DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DB_TIMEOUT: Duration = Duration::from_secs(30);
/// The LOGGING_LEVEL values accepted, case aside: Python's names and tracing's.
const LOGGING_LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL",
];

pub const DEFAULT_TBANK_BASE_URL: &str = "https://tqm-cloud.tbank.ru";
pub const DEFAULT_SHEETS_BASE_URL: &str = "https://sheets.googleapis.com/";
pub const DEFAULT_LLM_BASE_URL: &str = "http://localhost:4000/v1";

#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    File(PathBuf),
    Environment,
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Environment => write!(f, "the environment"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub var: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.var, p.message)?;
        }
        Ok(())
    }
}

/// The merged variables: env file, then the real environment, then flags.
#[derive(Debug, Clone)]
pub struct Env {
    file: PathBuf,
    file_found: bool,
    vars: HashMap<String, (String, Origin)>,
    /// Problems found while reading (bad lines, a missing --env-file), reported with the rest.
    read_problems: Vec<Problem>,
    ignored: Vec<String>,
    unknown: Vec<String>,
}

impl Env {
    /// `explicit`: the user named the file, so its absence is an error; the default
    /// `.env` may be missing (everything then comes from the environment).
    pub fn load(file: &Path, explicit: bool) -> Env {
        Self::load_with(file, explicit, std::env::vars())
    }

    pub fn load_with(
        file: &Path,
        explicit: bool,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Env {
        let mut env = Env {
            file: file.to_path_buf(),
            file_found: false,
            vars: HashMap::new(),
            read_problems: Vec::new(),
            ignored: Vec::new(),
            unknown: Vec::new(),
        };
        match envfile::read(file) {
            Ok((entries, errors)) => {
                env.file_found = true;
                for e in errors {
                    env.read_problems.push(Problem {
                        var: match e.key {
                            Some(key) => format!("{key} (line {})", e.line),
                            None => format!("line {}", e.line),
                        },
                        message: format!("{} ({})", e.message, file.display()),
                    });
                }
                let mut seen = BTreeSet::new();
                for e in entries {
                    if IGNORED_OLD_VARS.contains(&e.key.as_str()) {
                        env.ignored.push(e.key.clone());
                    } else if !KNOWN_VARS.contains(&e.key.as_str()) && seen.insert(e.key.clone()) {
                        env.unknown.push(e.key.clone());
                    }
                    env.vars
                        .insert(e.key, (e.value, Origin::File(file.to_path_buf())));
                }
            }
            Err(err) if explicit || err.kind() != std::io::ErrorKind::NotFound => {
                env.read_problems.push(Problem {
                    var: "--env-file".into(),
                    message: format!("cannot read {}: {err}", file.display()),
                });
            }
            Err(_) => {}
        }
        for (k, v) in environment {
            if KNOWN_VARS.contains(&k.as_str()) {
                env.vars.insert(k, (v, Origin::Environment));
            } else if IGNORED_OLD_VARS.contains(&k.as_str()) && !env.ignored.contains(&k) {
                // docker compose passes the old file's variables through the environment.
                env.ignored.push(k);
            }
        }
        env.register_secrets();
        env
    }

    /// Hands every secret value to `redact`, before anything can log or print it: the
    /// T-Bank password, the LLM key, the database password and the Google private key.
    fn register_secrets(&self) {
        for var in ["PASSWORD", "TOKEN_LLM"] {
            if let Some((v, _)) = self.get(var) {
                crate::redact::register(v);
            }
        }
        if let Some((raw, _)) = self.get("DATA_BASE")
            && let Ok(db) = parse_database_url(raw)
            && let Some(password) = db.config.get_password()
        {
            crate::redact::register(&String::from_utf8_lossy(password));
        }
        if let Some((json_auth, _)) = self.get("JSON_AUTH") {
            let text = if json_auth.trim_start().starts_with('{') {
                Some(json_auth.to_string())
            } else {
                std::fs::read_to_string(json_auth.trim()).ok()
            };
            if let Some(key) = text.as_deref().and_then(private_key_of) {
                crate::redact::register(&key);
            }
        }
    }

    /// A flag's value wins over file and environment.
    pub fn set_flag(&mut self, var: &str, flag: &'static str, value: impl ToString) {
        self.vars
            .insert(var.to_string(), (value.to_string(), Origin::Flag(flag)));
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn file_found(&self) -> bool {
        self.file_found
    }

    /// Old variables callq ignores and names it does not know, for one warning each kind.
    pub fn ignored_vars(&self) -> (&[String], &[String]) {
        (&self.ignored, &self.unknown)
    }

    fn get(&self, var: &str) -> Option<(&str, &Origin)> {
        self.vars
            .get(var)
            .map(|(v, o)| (v.as_str(), o))
            .filter(|(v, _)| !v.trim().is_empty())
    }

    fn checker(&self) -> Checker<'_> {
        let mut c = Checker {
            env: self,
            problems: self.read_problems.clone(),
            warnings: Vec::new(),
        };
        // Logging is set up from these before any command validates, falling back to
        // defaults; every command then refuses the bad values.
        c.logging_level();
        c.flag("LOGGING_ON_CONSOLE", true);
        c.flag("LOGGING_ON_FILE", true);
        c
    }

    pub fn logging(&self) -> LoggingSettings {
        // Logging must come up even when the rest is broken, so bad values fall back
        // to defaults here and are reported by the command's own validation.
        let mut c = self.checker();
        LoggingSettings {
            name: c.or_default("LOGGING_NAME", "callq".to_string()),
            level: c.optional("LOGGING_LEVEL").unwrap_or_else(|| "INFO".into()),
            dir: PathBuf::from(c.or_default("LOGGING_DIR", "logs".to_string())),
            on_console: c.flag("LOGGING_ON_CONSOLE", true),
            on_file: c.flag("LOGGING_ON_FILE", true),
        }
    }

    /// What `callq migrate` needs: the database only.
    pub fn database(&self) -> Result<DbSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        c.finish()?;
        Ok(db.expect("checked"))
    }

    /// What `callq operators unknown` needs: the database; the department (a filter) and
    /// the time zone of "today" are optional.
    pub fn unknown_operators(&self) -> Result<UnknownOperatorsSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let department_id = c.optional_department();
        let timezone = c.timezone();
        c.finish()?;
        Ok(UnknownOperatorsSettings {
            db: db.expect("checked"),
            department_id,
            timezone,
        })
    }

    /// What `callq report` needs: the database and the report's language.
    pub fn report(&self) -> Result<ReportSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let lang = c.report_lang();
        c.finish()?;
        Ok(ReportSettings {
            db: db.expect("checked"),
            lang,
        })
    }

    /// What `callq criteria` needs: the checklist source only.
    pub fn checklist_source(&self) -> Result<Source, ConfigError> {
        let mut c = self.checker();
        let retry = c.retry();
        let s = c.checklist_source(retry);
        c.finish()?;
        Ok(s.expect("checked"))
    }

    /// What `callq calibrate import` needs: the database, and the checklist to match the
    /// file's criteria against.
    pub fn calibration_import(&self) -> Result<(DbSettings, Source), ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let retry = c.retry();
        let checklist = c.checklist_source(retry);
        c.finish()?;
        Ok((db.expect("checked"), checklist.expect("checked")))
    }

    /// Where metrics go, read without failing: a run that stops on bad configuration
    /// still publishes its exit code where it can.
    pub fn metrics_best_effort(&self) -> MetricsSettings {
        let mut c = self.checker();
        MetricsSettings {
            textfile: c.optional("METRICS_TEXTFILE").map(PathBuf::from),
            pushgateway: match c.optional("PUSHGATEWAY_URL") {
                Some(_) => c.base_url("PUSHGATEWAY_URL", ""),
                None => None,
            },
        }
    }

    /// The department, when it is set and valid.
    pub fn department_best_effort(&self) -> Option<i32> {
        self.checker().department()
    }

    pub fn run(&self) -> Result<RunSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let retry = c.retry();
        let checklist = c.checklist_source(retry);
        let department_id = c.department();
        let prompt_file = c.required("PROMPT_FILE").map(PathBuf::from);
        if let Some(p) = &prompt_file
            && !p.is_file()
        {
            c.problem(
                "PROMPT_FILE",
                format!("{} is not a readable file", p.display()),
            );
        }
        let timezone = c.timezone();
        let check_day_ago: u32 = c.parsed("CHECK_DAY_AGO", 2);
        let min_call_duration_s: u32 = c.parsed("MIN_CALL_DURATION_S", 30);
        let tbank = c.tbank(retry);
        let llm = c.llm(retry);
        let prompt_layout = c.prompt_layout();
        let review_below_percent = c.review_below_percent();
        let metrics = MetricsSettings {
            textfile: c.optional("METRICS_TEXTFILE").map(PathBuf::from),
            pushgateway: match c.optional("PUSHGATEWAY_URL") {
                Some(_) => c.base_url("PUSHGATEWAY_URL", ""),
                None => None,
            },
        };
        let shutdown_grace = Duration::from_secs(c.parsed("SHUTDOWN_GRACE_S", 30u64));
        let warnings = std::mem::take(&mut c.warnings);
        let privacy = c.privacy();
        c.finish()?;
        Ok(RunSettings {
            warnings,
            db: db.expect("checked"),
            checklist: checklist.expect("checked"),
            tbank: tbank.expect("checked"),
            llm: llm.expect("checked"),
            department_id: department_id.expect("checked"),
            prompt_file: prompt_file.expect("checked"),
            timezone,
            check_day_ago,
            min_call_duration_s,
            prompt_layout,
            metrics,
            shutdown_grace,
            review_below_percent,
            privacy,
        })
    }

    /// What `callq purge` needs: the database; the department (a filter), the time zone of
    /// "today" and RETENTION_DAYS (the default age) are optional.
    pub fn purge(&self) -> Result<PurgeSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let department_id = c.optional_department();
        let timezone = c.timezone();
        let retention_days = c.retention_days();
        c.finish()?;
        Ok(PurgeSettings {
            db: db.expect("checked"),
            department_id,
            timezone,
            retention_days,
        })
    }
}

/// What `callq purge` reads.
#[derive(Debug, Clone)]
pub struct PurgeSettings {
    pub db: DbSettings,
    /// Only this department's calls, when DEPARTAMENT_ID is set.
    pub department_id: Option<i32>,
    /// The time zone of "today" and of the calls' start times (CALLS_TIMEZONE).
    pub timezone: Tz,
    /// RETENTION_DAYS: the age `--older-than` defaults to.
    pub retention_days: Option<u32>,
}

/// What becomes of the personal data in calls: PII_MASKING, TRANSCRIPT_STORE, PHONE_STORE
/// (with PHONE_HASH_KEY) and RETENTION_DAYS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacySettings {
    /// PII_MASKING: transcripts are masked ([`pii::mask`]) before they are sent to the model.
    pub pii_masking: bool,
    /// TRANSCRIPT_STORE: what `call_transcripts` receives.
    pub transcript_store: TranscriptStore,
    /// PHONE_STORE: what `calls.phone_number` receives.
    pub phone_store: PhoneStore,
    /// RETENTION_DAYS: transcripts and phone numbers of calls older than this many days are
    /// removed by `callq purge`; `None` keeps them.
    pub retention_days: Option<u32>,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            pii_masking: true,
            transcript_store: TranscriptStore::Masked,
            phone_store: PhoneStore::Plain,
            retention_days: None,
        }
    }
}

impl PrivacySettings {
    /// The transcript as the model gets it and as it is stored (`None`: not stored),
    /// masking it at most once.
    pub fn apply<'a>(&self, transcript: &'a str) -> (Cow<'a, str>, Option<Cow<'a, str>>) {
        let masked = (self.pii_masking || self.transcript_store == TranscriptStore::Masked)
            .then(|| pii::mask(transcript));
        let for_llm = match (&masked, self.pii_masking) {
            (Some(m), true) => m.clone(),
            _ => Cow::Borrowed(transcript),
        };
        let stored = match self.transcript_store {
            TranscriptStore::Masked => masked,
            TranscriptStore::Raw => Some(Cow::Borrowed(transcript)),
            TranscriptStore::None => None,
        };
        (for_llm, stored)
    }

    /// The transcript as the model gets it.
    pub fn for_llm<'a>(&self, transcript: &'a str) -> Cow<'a, str> {
        if self.pii_masking {
            pii::mask(transcript)
        } else {
            Cow::Borrowed(transcript)
        }
    }

    /// The transcript as it is stored, or `None` when none is stored.
    pub fn transcript_to_store<'a>(&self, transcript: &'a str) -> Option<Cow<'a, str>> {
        match self.transcript_store {
            TranscriptStore::Masked => Some(pii::mask(transcript)),
            TranscriptStore::Raw => Some(Cow::Borrowed(transcript)),
            TranscriptStore::None => None,
        }
    }

    /// The phone number as it is stored, or `None` when none is stored.
    pub fn phone_to_store(&self, phone: &str) -> Option<String> {
        match &self.phone_store {
            PhoneStore::Plain => Some(phone.to_string()),
            PhoneStore::Hash(key) => Some(pii::hash_phone(key.as_bytes(), phone)),
            PhoneStore::None => None,
        }
    }
}

/// TRANSCRIPT_STORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptStore {
    /// With personal data replaced by placeholders (the default).
    Masked,
    /// As T-Bank returned it.
    Raw,
    /// Not stored at all.
    None,
}

/// PHONE_STORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneStore {
    /// As T-Bank lists it (the default, as the old tool stored it).
    Plain,
    /// HMAC-SHA256 under PHONE_HASH_KEY, hex: the same caller, the same value.
    Hash(PhoneHashKey),
    /// Not stored.
    None,
}

/// PHONE_HASH_KEY: a secret, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneHashKey(Vec<u8>);

impl PhoneHashKey {
    pub fn new(key: impl Into<Vec<u8>>) -> PhoneHashKey {
        PhoneHashKey(key.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PhoneHashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneHashKey(***)")
    }
}

/// Shorter keys make the hashes of the few billion possible phone numbers guessable.
const MIN_PHONE_HASH_KEY_LEN: usize = 16;

/// What `callq operators unknown` reads.
#[derive(Debug, Clone)]
pub struct UnknownOperatorsSettings {
    pub db: DbSettings,
    /// Only this department's names, when DEPARTAMENT_ID is set.
    pub department_id: Option<i32>,
    /// The time zone of "today" (CALLS_TIMEZONE).
    pub timezone: Tz,
}

/// The language of `callq report`'s page (REPORT_LANG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportLang {
    #[default]
    Ru,
    En,
}

/// What `callq report` reads.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub db: DbSettings,
    pub lang: ReportLang,
}

/// Where a run's metrics go at its end, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    /// Prometheus textfile-collector file, replaced atomically.
    pub textfile: Option<PathBuf>,
    /// Pushgateway base URL.
    pub pushgateway: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub name: String,
    pub level: String,
    pub dir: PathBuf,
    pub on_console: bool,
    pub on_file: bool,
}

#[derive(Clone)]
pub struct DbSettings {
    pub config: tokio_postgres::Config,
    /// The URL with its password replaced, safe to log.
    pub display: String,
    /// Opening a connection, the startup and login included (`connect_timeout` in the
    /// URL; tokio-postgres itself bounds only the TCP connect with it).
    pub connect_timeout: Duration,
    /// The longest one of callq's own database operations may take, waiting for a pooled
    /// connection included (DB_TIMEOUT_S): a database that stops answering ends the run
    /// instead of hanging it.
    pub op_timeout: Duration,
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Values accepted after a correction the user should know about, one line each.
    pub warnings: Vec<String>,
    pub db: DbSettings,
    pub checklist: Source,
    pub tbank: TbankSettings,
    pub llm: LlmSettings,
    pub department_id: i32,
    pub prompt_file: PathBuf,
    pub timezone: Tz,
    pub check_day_ago: u32,
    pub min_call_duration_s: u32,
    pub prompt_layout: PromptLayout,
    pub metrics: MetricsSettings,
    /// After SIGTERM/SIGINT, how long calls in flight may take to finish and save.
    pub shutdown_grace: Duration,
    /// Scored calls below this percentage go to the review queue (REVIEW_BELOW_PERCENT).
    pub review_below_percent: u8,
    pub privacy: PrivacySettings,
}

struct Checker<'a> {
    env: &'a Env,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, var: &str, message: impl Into<String>) {
        let message = message.into();
        let message = match self.env.vars.get(var) {
            Some((_, origin)) => format!("{message} (set in {origin})"),
            None => message,
        };
        self.problems.push(Problem {
            var: var.to_string(),
            message,
        });
    }

    fn optional(&self, var: &str) -> Option<String> {
        self.env.get(var).map(|(v, _)| v.trim().to_string())
    }

    fn or_default(&self, var: &str, default: String) -> String {
        self.optional(var).unwrap_or(default)
    }

    fn required(&mut self, var: &str) -> Option<String> {
        let v = self.optional(var);
        if v.is_none() {
            let hint = if self.env.file_found {
                format!(
                    "is not set (not in {} nor in the environment)",
                    self.env.file.display()
                )
            } else {
                format!(
                    "is not set ({} not found; not in the environment)",
                    self.env.file.display()
                )
            };
            self.problems.push(Problem {
                var: var.to_string(),
                message: hint,
            });
        }
        v
    }

    fn parsed<T: FromStr>(&mut self, var: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.optional(var) {
            None => default,
            Some(v) => match v.parse() {
                Ok(t) => t,
                Err(e) => {
                    self.problem(var, format!("{v:?} is not valid: {e}"));
                    default
                }
            },
        }
    }

    fn positive(&mut self, var: &str, default: usize) -> usize {
        let v: usize = self.parsed(var, default);
        if v == 0 {
            self.problem(var, "must be at least 1");
            return default;
        }
        v
    }

    /// A timeout in whole seconds, at least 1: a zero timeout fails every request.
    fn seconds(&mut self, var: &str, default: u64) -> u64 {
        match self.optional(var) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(s) if s >= 1 => s,
                _ => {
                    self.problem(
                        var,
                        format!("{v:?} is not a timeout: use whole seconds, at least 1"),
                    );
                    default
                }
            },
        }
    }

    /// LOGGING_LEVEL: the old tool's Python level names (and tracing's).
    fn logging_level(&mut self) {
        if let Some(v) = self.optional("LOGGING_LEVEL")
            && !LOGGING_LEVELS.contains(&v.to_ascii_uppercase().as_str())
        {
            self.problem(
                "LOGGING_LEVEL",
                format!("{v:?} is not a level: use DEBUG, INFO, WARNING or ERROR"),
            );
        }
    }

    fn price(&mut self, var: &str) -> Option<f64> {
        let raw = self.optional(var)?;
        match raw.replace(',', ".").parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => Some(p),
            _ => {
                self.problem(
                    var,
                    format!("{raw:?} is not a price (a number ≥ 0, USD per 1M tokens)"),
                );
                None
            }
        }
    }

    fn flag(&mut self, var: &str, default: bool) -> bool {
        match self.optional(var).map(|v| v.to_lowercase()) {
            None => default,
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    self.problem(var, format!("{v:?} is not true/false"));
                    default
                }
            },
        }
    }

    fn base_url(&mut self, var: &str, default: &str) -> Option<String> {
        let raw = self.or_default(var, default.to_string());
        match url::Url::parse(&raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                Some(raw.trim_end_matches('/').to_string())
            }
            _ => {
                self.problem(var, format!("{raw:?} is not an http(s) URL"));
                None
            }
        }
    }

    fn database(&mut self) -> Option<DbSettings> {
        let raw = self.required("DATA_BASE")?;
        let timeout_s: u64 = self.parsed("DB_TIMEOUT_S", 30);
        if timeout_s == 0 {
            self.problem("DB_TIMEOUT_S", "must be at least 1 (seconds)");
        }
        match parse_database_url(&raw) {
            Ok(mut db) => {
                db.op_timeout = Duration::from_secs(timeout_s.max(1));
                Some(db)
            }
            Err(e) => {
                self.problem("DATA_BASE", e);
                None
            }
        }
    }

    /// The department as a filter: none when neither spelling is set.
    fn optional_department(&mut self) -> Option<i32> {
        if self.optional("DEPARTAMENT_ID").is_some() || self.optional("DEPARTMENT_ID").is_some() {
            self.department()
        } else {
            None
        }
    }

    /// CALLS_TIMEZONE: the zone of TQM's wall-clock times and of "today".
    fn timezone(&mut self) -> Tz {
        self.parsed("CALLS_TIMEZONE", "Europe/Moscow".parse().expect("valid tz"))
    }

    fn department(&mut self) -> Option<i32> {
        let (var, raw) = match (
            self.optional("DEPARTAMENT_ID"),
            self.optional("DEPARTMENT_ID"),
        ) {
            (Some(v), _) => ("DEPARTAMENT_ID", v),
            (None, Some(v)) => ("DEPARTMENT_ID", v),
            (None, None) => {
                self.required("DEPARTAMENT_ID");
                return None;
            }
        };
        match raw.parse::<i32>() {
            Ok(id) => Some(id),
            Err(_) => {
                self.problem(var, format!("{raw:?} is not a department id (an integer)"));
                None
            }
        }
    }

    fn checklist_source(&mut self, retry: RetryPolicy) -> Option<Source> {
        if let Some(path) = self.optional("CRITERIA_FILE") {
            let path = PathBuf::from(path);
            if !path.is_file() {
                self.problem(
                    "CRITERIA_FILE",
                    format!("{} is not a readable file", path.display()),
                );
                return None;
            }
            return Some(Source::File(path));
        }
        let json_auth = self.required("JSON_AUTH");
        if let Some(j) = &json_auth
            && !j.trim_start().starts_with('{')
            && !Path::new(j).is_file()
        {
            self.problem(
                "JSON_AUTH",
                format!("{j} is neither a key file nor the key's JSON text"),
            );
        }
        let sheet_id = self.required("REQUIREMENTS_SHEET_ID");
        let checklist_sheet = self.required("REQUIREMENTS_SHEET_NAME_CHECK_LIST");
        let prompt_sheet = self.optional("REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI");
        let base_url = self.base_url("GOOGLE_SHEETS_BASE_URL", DEFAULT_SHEETS_BASE_URL);
        Some(Source::Sheets(SheetsSource {
            json_auth: json_auth?,
            sheet_id: sheet_id?,
            checklist_sheet: checklist_sheet?,
            prompt_sheet,
            base_url: base_url?,
            retry,
        }))
    }

    fn prompt_layout(&mut self) -> PromptLayout {
        match self
            .optional("PROMPT_LAYOUT")
            .map(|v| v.to_lowercase())
            .as_deref()
        {
            None | Some("cached") => PromptLayout::Cached,
            Some("inline") => PromptLayout::Inline,
            Some(other) => {
                self.problem(
                    "PROMPT_LAYOUT",
                    format!("{other:?} is neither \"cached\" nor \"inline\""),
                );
                PromptLayout::Cached
            }
        }
    }

    fn review_below_percent(&mut self) -> u8 {
        let default = crate::review::DEFAULT_REVIEW_BELOW_PERCENT;
        let Some(raw) = self.optional("REVIEW_BELOW_PERCENT") else {
            return default;
        };
        match raw.trim_end_matches('%').trim().parse::<u8>() {
            Ok(p) if p <= 100 => p,
            _ => {
                self.problem(
                    "REVIEW_BELOW_PERCENT",
                    format!("{raw:?} is not a percentage (a whole number from 0 to 100)"),
                );
                default
            }
        }
    }

    fn report_lang(&mut self) -> ReportLang {
        match self
            .optional("REPORT_LANG")
            .map(|v| v.to_lowercase())
            .as_deref()
        {
            None | Some("ru") => ReportLang::Ru,
            Some("en") => ReportLang::En,
            Some(other) => {
                self.problem(
                    "REPORT_LANG",
                    format!("{other:?} is neither \"ru\" nor \"en\""),
                );
                ReportLang::Ru
            }
        }
    }

    fn retry(&mut self) -> RetryPolicy {
        let d = RetryPolicy::default();
        let attempts: usize = self.parsed("RETRY_MAX_ATTEMPTS", d.max_attempts);
        if attempts < 6 {
            // Fewer attempts would not survive an upstream failing a third of its requests.
            self.problem("RETRY_MAX_ATTEMPTS", "must be at least 6");
        }
        let base_ms: u64 = self.parsed("RETRY_BASE_DELAY_MS", d.min_delay.as_millis() as u64);
        if base_ms == 0 {
            self.problem(
                "RETRY_BASE_DELAY_MS",
                "must be at least 1 (retries without a pause hammer a struggling server)",
            );
        }
        RetryPolicy {
            max_attempts: attempts.max(6),
            min_delay: Duration::from_millis(base_ms.max(1)),
            ..d
        }
    }

    fn tbank(&mut self, retry: RetryPolicy) -> Option<TbankSettings> {
        let base_url = self.base_url("TBANK_BASE_URL", DEFAULT_TBANK_BASE_URL);
        let login = self.required("LOGIN");
        let password = self.required("PASSWORD");
        let group = self.required("AGENT_GROUP_NAME");
        let timeout_s = self.seconds("TBANK_TIMEOUT_S", 60);
        let concurrency = self.positive("TBANK_CONCURRENCY", 8);
        let breaker_threshold =
            self.positive("TBANK_BREAKER_THRESHOLD", crate::breaker::DEFAULT_THRESHOLD);
        Some(TbankSettings {
            base_url: base_url?,
            login: login?,
            password: password?,
            auth_type: self.or_default("AUTH_TYPE", "tqm".into()),
            auth_system: self.or_default("AUTH_SYSTEM", "tqm".into()),
            group_name: group?,
            tqm_version: self.or_default("TQM_VERSION", "26551fa4".into()),
            timeout: Duration::from_secs(timeout_s),
            concurrency,
            retry,
            breaker_threshold,
        })
    }

    fn llm(&mut self, retry: RetryPolicy) -> Option<LlmSettings> {
        let base_url = self.llm_base_url();
        let token = self.required("TOKEN_LLM");
        let model = self.required("MODEL");
        let timeout_s = self.seconds("LLM_TIMEOUT_S", 180);
        let price_in = self.price("LLM_PRICE_INPUT_PER_1M");
        let price_cached = self.price("LLM_PRICE_CACHED_INPUT_PER_1M");
        let price_out = self.price("LLM_PRICE_OUTPUT_PER_1M");
        let max_concurrency = self.positive("LLM_CONCURRENCY", 8);
        let breaker_threshold =
            self.positive("LLM_BREAKER_THRESHOLD", crate::breaker::DEFAULT_THRESHOLD);
        Some(LlmSettings {
            base_url: base_url?,
            token: token?,
            model: model?,
            timeout: Duration::from_secs(timeout_s),
            retry,
            price_input_per_1m: price_in,
            price_cached_input_per_1m: price_cached,
            price_output_per_1m: price_out,
            max_concurrency,
            breaker_threshold,
        })
    }

    /// LLM_BASE_URL, also when pasted as the whole endpoint (`…/v1/chat/completions`,
    /// as gateways' docs show it): trimmed to the base with a warning.
    fn llm_base_url(&mut self) -> Option<String> {
        let url = self.base_url("LLM_BASE_URL", DEFAULT_LLM_BASE_URL)?;
        let Some(base) = url.strip_suffix("/chat/completions") else {
            return Some(url);
        };
        let base = base.trim_end_matches('/').to_string();
        let origin = self
            .env
            .vars
            .get("LLM_BASE_URL")
            .map_or(String::new(), |(_, o)| format!(" (set in {o})"));
        self.warnings.push(format!(
            "LLM_BASE_URL {url} ends with /chat/completions, which callq adds itself; \
             using {base}{origin}"
        ));
        Some(base)
    }

    /// One of a few words (case does not matter); anything else is reported with the
    /// words allowed.
    fn choice<T: Clone>(&mut self, var: &str, options: &[(&str, T)], default: T) -> T {
        let Some(raw) = self.optional(var) else {
            return default;
        };
        let lower = raw.to_lowercase();
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == lower) {
            return value.clone();
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        self.problem(var, format!("{raw:?} is not one of: {}", allowed(&names)));
        default
    }

    fn retention_days(&mut self) -> Option<u32> {
        let raw = self.optional("RETENTION_DAYS")?;
        match raw.parse::<u32>() {
            Ok(days) if days >= 1 => Some(days),
            _ => {
                self.problem(
                    "RETENTION_DAYS",
                    format!(
                        "{raw:?} is not a number of days: expected a whole number of at least 1 \
                         (leave it unset to keep transcripts and phone numbers)"
                    ),
                );
                None
            }
        }
    }

    fn privacy(&mut self) -> PrivacySettings {
        let d = PrivacySettings::default();
        // on/off, and the true/false the old tool's variables use.
        let pii_masking = self.choice(
            "PII_MASKING",
            &[
                ("on", true),
                ("off", false),
                ("true", true),
                ("false", false),
            ],
            d.pii_masking,
        );
        let transcript_store = self.choice(
            "TRANSCRIPT_STORE",
            &[
                ("masked", TranscriptStore::Masked),
                ("raw", TranscriptStore::Raw),
                ("none", TranscriptStore::None),
            ],
            d.transcript_store,
        );
        #[derive(Clone)]
        enum Phone {
            Plain,
            Hash,
            None,
        }
        let phone = self.choice(
            "PHONE_STORE",
            &[
                ("plain", Phone::Plain),
                ("hash", Phone::Hash),
                ("none", Phone::None),
            ],
            Phone::Plain,
        );
        let phone_store = match phone {
            Phone::Plain => PhoneStore::Plain,
            Phone::None => PhoneStore::None,
            // The key's value never goes into a message.
            Phone::Hash => match self.optional("PHONE_HASH_KEY") {
                None => {
                    self.problem(
                        "PHONE_HASH_KEY",
                        "is not set; PHONE_STORE=hash needs it (a secret of at least 16 \
                         characters, e.g. from `openssl rand -hex 32`)",
                    );
                    PhoneStore::Plain
                }
                Some(key) if key.chars().count() < MIN_PHONE_HASH_KEY_LEN => {
                    self.problem(
                        "PHONE_HASH_KEY",
                        format!(
                            "is {} characters long; use at least {MIN_PHONE_HASH_KEY_LEN} \
                             (e.g. from `openssl rand -hex 32`)",
                            key.chars().count()
                        ),
                    );
                    PhoneStore::Plain
                }
                Some(key) => PhoneStore::Hash(PhoneHashKey::new(key)),
            },
        };
        PrivacySettings {
            pii_masking,
            transcript_store,
            phone_store,
            retention_days: self.retention_days(),
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// The `private_key` of a service-account key's JSON text, if it has one.
fn private_key_of(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("private_key")?.as_str().map(str::to_string)
}

/// "a, b or c".
fn allowed(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Accepts the old tool's SQLAlchemy URLs (`postgresql+psycopg2://…`) as well as plain
/// `postgres://` URLs and key=value strings.
pub fn parse_database_url(raw: &str) -> Result<DbSettings, String> {
    let mut url = raw.trim().to_string();
    if let Some(rest) = url.strip_prefix("postgresql+")
        && let Some(i) = rest.find("://")
    {
        url = format!("postgresql{}", &rest[i..]);
    }
    let config = tokio_postgres::Config::from_str(&url)
        .map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
    if config.get_dbname().is_none() && config.get_user().is_none() {
        return Err(
            "names no database (expected postgresql://user:password@host:5432/dbname)".into(),
        );
    }
    let display = redact_password(&url);
    let mut config = config;
    let connect_timeout = match config.get_connect_timeout() {
        Some(t) if !t.is_zero() => *t,
        _ => DEFAULT_DB_CONNECT_TIMEOUT,
    };
    config.connect_timeout(connect_timeout);
    // Keepalives find a connection whose peer vanished (a restarted server, a NAT or
    // pooler that dropped it) within about a minute, even while it sits idle.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    Ok(DbSettings {
        config,
        display,
        connect_timeout,
        op_timeout: DEFAULT_DB_TIMEOUT,
    })
}

fn redact_password(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    // key=value form: drop the password pair.
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env_from(text: &str, environment: &[(&str, &str)]) -> (tempfile::NamedTempFile, Env) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let env = Env::load_with(
            f.path(),
            true,
            environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        (f, env)
    }

    #[test]
    fn migrate_needs_only_the_database() {
        let (_f, env) = env_from(
            "DATA_BASE=postgresql+psycopg2://u:secret@db:5432/calls\n",
            &[],
        );
        let db = env.database().unwrap();
        assert_eq!(db.config.get_dbname(), Some("calls"));
        assert!(!db.display.contains("secret"), "{}", db.display);
        assert!(!format!("{db:?}").contains("secret"));
    }

    #[test]
    fn environment_overrides_file_and_flags_override_both() {
        let (_f, mut env) = env_from(
            "CHECK_DAY_AGO=2\nLLM_CONCURRENCY=3\n",
            &[("LLM_CONCURRENCY", "5")],
        );
        let mut c = env.checker();
        assert_eq!(c.positive("LLM_CONCURRENCY", 8), 5);
        env.set_flag("LLM_CONCURRENCY", "--concurrency", 9);
        let mut c = env.checker();
        assert_eq!(c.positive("LLM_CONCURRENCY", 8), 9);
        assert_eq!(c.parsed::<u32>("CHECK_DAY_AGO", 0), 2);
    }

    #[test]
    fn every_missing_variable_is_reported_at_once() {
        let (f, env) = env_from("LOGIN=bot\nMIN_CALL_DURATION_S=abc\n", &[]);
        let err = env.run().unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|p| p.var.as_str()).collect();
        for v in [
            "DATA_BASE",
            "JSON_AUTH",
            "REQUIREMENTS_SHEET_ID",
            "REQUIREMENTS_SHEET_NAME_CHECK_LIST",
            "DEPARTAMENT_ID",
            "PROMPT_FILE",
            "MIN_CALL_DURATION_S",
            "PASSWORD",
            "AGENT_GROUP_NAME",
            "TOKEN_LLM",
            "MODEL",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
        assert!(!vars.contains(&"LOGIN"));
        let text = err.to_string();
        assert!(text.contains(&f.path().display().to_string()), "{text}");
    }

    #[test]
    fn criteria_file_replaces_the_sheets_source() {
        let csv = tempfile::NamedTempFile::new().unwrap();
        let (_f, env) = env_from(&format!("CRITERIA_FILE={}\n", csv.path().display()), &[]);
        assert!(matches!(env.checklist_source().unwrap(), Source::File(_)));
    }

    #[test]
    fn base_urls_lose_their_trailing_slash_and_old_names_are_ignored() {
        let (_f, env) = env_from(
            "TBANK_BASE_URL=http://127.0.0.1:9/\nLOGGING_ON_DB=True\nSOMETHING_ELSE=1\nDEPARTMENT_ID=7\n",
            &[],
        );
        let mut c = env.checker();
        assert_eq!(
            c.base_url("TBANK_BASE_URL", "x").unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(c.department(), Some(7));
        let (ignored, unknown) = env.ignored_vars();
        assert_eq!(ignored, ["LOGGING_ON_DB".to_string()]);
        assert_eq!(unknown, ["SOMETHING_ELSE".to_string()]);
    }

    #[test]
    fn review_below_percent_is_a_percentage() {
        let (_f, env) = env_from("", &[]);
        assert_eq!(env.checker().review_below_percent(), 50);
        for (raw, want) in [
            ("0", Some(0)),
            ("65", Some(65)),
            ("70%", Some(70)),
            ("100", Some(100)),
        ] {
            let (_f, env) = env_from(&format!("REVIEW_BELOW_PERCENT={raw}\n"), &[]);
            let mut c = env.checker();
            assert_eq!(Some(c.review_below_percent()), want, "{raw}");
            assert!(c.problems.is_empty(), "{raw}");
        }
        for raw in ["101", "-1", "половина", "0.5"] {
            let (_f, env) = env_from(&format!("REVIEW_BELOW_PERCENT={raw}\n"), &[]);
            let mut c = env.checker();
            c.review_below_percent();
            assert_eq!(c.problems.len(), 1, "{raw}");
            assert_eq!(c.problems[0].var, "REVIEW_BELOW_PERCENT");
        }
    }

    #[test]
    fn a_loud_logging_level_and_zero_timeouts_are_refused() {
        let (_f, env) = env_from(
            "LOGGING_LEVEL=LOUD\nLLM_TIMEOUT_S=0\nTBANK_TIMEOUT_S=0\nLOGGING_ON_FILE=maybe\n",
            &[],
        );
        let problems = env.run().unwrap_err().problems;
        let about = |var: &str| {
            problems
                .iter()
                .find(|p| p.var == var)
                .map(|p| p.message.clone())
                .unwrap_or_else(|| panic!("{var} not reported: {problems:?}"))
        };
        assert!(about("LOGGING_LEVEL").contains("DEBUG, INFO, WARNING or ERROR"));
        assert!(about("LLM_TIMEOUT_S").contains("at least 1"));
        assert!(about("TBANK_TIMEOUT_S").contains("at least 1"));
        assert!(about("LOGGING_ON_FILE").contains("true/false"));
        // Every command refuses them, not only `run`.
        assert!(
            env.database()
                .unwrap_err()
                .problems
                .iter()
                .any(|p| p.var == "LOGGING_LEVEL")
        );
        // Logging itself still comes up, on defaults where a value is bad.
        assert!(env.logging().on_file);

        let (_f, env) = env_from("LOGGING_LEVEL=warning\nLLM_TIMEOUT_S=1\n", &[]);
        let problems = env.run().unwrap_err().problems;
        assert!(
            !problems
                .iter()
                .any(|p| p.var == "LOGGING_LEVEL" || p.var == "LLM_TIMEOUT_S"),
            "{problems:?}"
        );
    }

    #[test]
    fn retry_variables_apply_to_the_sheets_client() {
        let (_f, env) = env_from(
            "JSON_AUTH={}\nREQUIREMENTS_SHEET_ID=s\nREQUIREMENTS_SHEET_NAME_CHECK_LIST=c\n\
             RETRY_MAX_ATTEMPTS=11\nRETRY_BASE_DELAY_MS=7\n",
            &[],
        );
        let Source::Sheets(sheets) = env.checklist_source().unwrap() else {
            panic!("a Sheets source");
        };
        assert_eq!(sheets.retry.max_attempts, 11);
        assert_eq!(sheets.retry.min_delay, Duration::from_millis(7));
        assert_eq!(sheets.retry.max_delay, RetryPolicy::default().max_delay);
    }

    #[test]
    fn an_unterminated_quote_names_its_variable_and_line() {
        let (_f, env) = env_from("DATA_BASE='postgresql://u@h/db\nLOGIN=bot\n", &[]);
        let problems = env.database().unwrap_err().problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].var, "DATA_BASE (line 1)");
        assert!(
            problems[0].message.contains("unterminated ' quote"),
            "{problems:?}"
        );
        assert_eq!(problems[1].var, "DATA_BASE", "and so it is not set");
    }

    #[test]
    fn report_lang_is_ru_by_default_and_checked() {
        let (_f, env) = env_from("DATA_BASE=postgresql://u@h/calls\n", &[]);
        assert_eq!(env.report().unwrap().lang, ReportLang::Ru);
        let (_f, env) = env_from("DATA_BASE=postgresql://u@h/calls\nREPORT_LANG=EN\n", &[]);
        assert_eq!(env.report().unwrap().lang, ReportLang::En);
        let (_f, env) = env_from("DATA_BASE=postgresql://u@h/calls\nREPORT_LANG=de\n", &[]);
        let err = env.report().unwrap_err();
        assert_eq!(err.problems[0].var, "REPORT_LANG");
    }

    #[test]
    fn missing_explicit_env_file_is_an_error() {
        let env = Env::load_with(Path::new("/nonexistent/.env.department9"), true, Vec::new());
        let err = env.database().unwrap_err();
        assert!(err.problems.iter().any(|p| p.var == "--env-file"));
    }

    #[test]
    fn an_llm_base_url_pasted_with_the_endpoint_is_trimmed_with_a_warning() {
        for (raw, want) in [
            ("http://gw:4000/v1/chat/completions", "http://gw:4000/v1"),
            ("http://gw:4000/v1/chat/completions/", "http://gw:4000/v1"),
            ("http://gw:4000/v1/", "http://gw:4000/v1"),
        ] {
            let (_f, env) = env_from(&format!("LLM_BASE_URL={raw}\n"), &[]);
            let mut c = env.checker();
            assert_eq!(c.llm_base_url().as_deref(), Some(want), "{raw}");
            assert_eq!(
                c.warnings.len(),
                usize::from(raw.contains("chat")),
                "{raw}: {:?}",
                c.warnings
            );
            assert!(c.problems.is_empty(), "{:?}", c.problems);
        }
    }

    #[test]
    fn breaker_thresholds_and_the_cached_price_are_validated() {
        let (_f, env) = env_from(
            "LLM_BREAKER_THRESHOLD=0\nTBANK_BREAKER_THRESHOLD=x\nLLM_PRICE_CACHED_INPUT_PER_1M=-1\n",
            &[],
        );
        let err = env.run().unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|p| p.var.as_str()).collect();
        for v in [
            "LLM_BREAKER_THRESHOLD",
            "TBANK_BREAKER_THRESHOLD",
            "LLM_PRICE_CACHED_INPUT_PER_1M",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
    }

    #[test]
    fn privacy_defaults_mask_and_keep_phones() {
        let (_f, env) = env_from("", &[]);
        let mut c = env.checker();
        assert_eq!(c.privacy(), PrivacySettings::default());
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let d = PrivacySettings::default();
        assert!(d.pii_masking);
        assert_eq!(d.transcript_store, TranscriptStore::Masked);
        assert_eq!(d.phone_store, PhoneStore::Plain);
        assert_eq!(d.retention_days, None);
        assert_eq!(d.for_llm("тел. 89161234567"), "тел. [ТЕЛЕФОН]");
        assert_eq!(
            d.transcript_to_store("тел. 89161234567").as_deref(),
            Some("тел. [ТЕЛЕФОН]")
        );
        assert_eq!(
            d.phone_to_store("79161234567").as_deref(),
            Some("79161234567")
        );
    }

    #[test]
    fn privacy_values_are_read_case_insensitively() {
        let (_f, env) = env_from(
            "PII_MASKING=Off\nTRANSCRIPT_STORE=none\nPHONE_STORE=HASH\nPHONE_HASH_KEY='0123456789abcdef0123'\nRETENTION_DAYS=90\n",
            &[],
        );
        let mut c = env.checker();
        let p = c.privacy();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(!p.pii_masking);
        assert_eq!(p.for_llm("тел. 89161234567"), "тел. 89161234567");
        assert_eq!(p.transcript_to_store("тел. 89161234567"), None);
        assert_eq!(p.retention_days, Some(90));
        assert_eq!(
            p.phone_to_store("+7 916 123-45-67"),
            Some(pii::hash_phone(b"0123456789abcdef0123", "89161234567"))
        );
        // The key never shows in a debug print of the settings.
        assert!(!format!("{p:?}").contains("0123456789abcdef"), "{p:?}");
        let (_f, env) = env_from("TRANSCRIPT_STORE=raw\nPHONE_STORE=none\n", &[]);
        let p = env.checker().privacy();
        assert_eq!(
            p.transcript_to_store("89161234567").as_deref(),
            Some("89161234567")
        );
        assert_eq!(p.phone_to_store("89161234567"), None);
    }

    #[test]
    fn bad_privacy_values_are_all_reported_with_what_is_allowed() {
        let (f, env) = env_from(
            "PII_MASKING=maybe\nTRANSCRIPT_STORE=encrypted\nPHONE_STORE=hash\nRETENTION_DAYS=0\n",
            &[],
        );
        let mut c = env.checker();
        c.privacy();
        let text = ConfigError {
            problems: c.problems,
        }
        .to_string();
        for expected in [
            "PII_MASKING: \"maybe\" is not one of: on, off, true or false",
            "TRANSCRIPT_STORE: \"encrypted\" is not one of: masked, raw or none",
            "PHONE_HASH_KEY: is not set; PHONE_STORE=hash needs it",
            "RETENTION_DAYS: \"0\" is not a number of days",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert!(text.contains(&f.path().display().to_string()), "{text}");

        let (_f, env) = env_from(
            "PHONE_STORE=hashed\nPHONE_HASH_KEY=short-secret\nRETENTION_DAYS=90d\n",
            &[],
        );
        let mut c = env.checker();
        c.privacy();
        let text = ConfigError {
            problems: c.problems,
        }
        .to_string();
        assert!(
            text.contains("PHONE_STORE: \"hashed\" is not one of: plain, hash or none"),
            "{text}"
        );
        assert!(text.contains("RETENTION_DAYS: \"90d\""), "{text}");
        // Not PHONE_STORE=hash: the key is not looked at.
        assert!(!text.contains("PHONE_HASH_KEY"), "{text}");

        let (_f, env) = env_from("PHONE_STORE=hash\nPHONE_HASH_KEY=short-secret\n", &[]);
        let mut c = env.checker();
        c.privacy();
        let text = ConfigError {
            problems: c.problems,
        }
        .to_string();
        assert!(
            text.contains("PHONE_HASH_KEY: is 12 characters long"),
            "{text}"
        );
        assert!(
            !text.contains("short-secret"),
            "the key is never shown: {text}"
        );
    }

    #[test]
    fn the_run_reads_privacy_and_purge_needs_only_the_database() {
        let (_f, env) = env_from("RETENTION_DAYS=abc\n", &[]);
        let vars: Vec<String> = env
            .run()
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.var)
            .collect();
        assert!(vars.contains(&"RETENTION_DAYS".to_string()), "{vars:?}");

        let (_f, env) = env_from(
            "DATA_BASE=postgresql://u@db/calls\nRETENTION_DAYS=30\n",
            &[],
        );
        let p = env.purge().unwrap();
        assert_eq!((p.department_id, p.retention_days), (None, Some(30)));
        let (_f, env) = env_from(
            "DATA_BASE=postgresql://u@db/calls\nDEPARTAMENT_ID=2\nPHONE_STORE=bogus\n",
            &[],
        );
        // purge does not read PHONE_STORE, so its bad value does not stop it.
        assert_eq!(env.purge().unwrap().department_id, Some(2));
        let (_f, env) = env_from("RETENTION_DAYS=-5\n", &[]);
        let vars: Vec<String> = env
            .purge()
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.var)
            .collect();
        assert_eq!(vars, ["DATA_BASE", "RETENTION_DAYS"]);
    }
}
