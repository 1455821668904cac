//! Env file + environment + flags → validated settings, one struct per command so each
//! command asks only for what it uses. Every problem is collected and reported at once,
//! naming the variable and where its value came from.

mod envfile;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;

use crate::checklist::{SheetsSource, Source};
use crate::llm::{LlmSettings, PromptLayout};
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
    "LLM_PRICE_OUTPUT_PER_1M",
    "TBANK_TIMEOUT_S",
    "TQM_VERSION",
    "RETRY_MAX_ATTEMPTS",
    "RETRY_BASE_DELAY_MS",
    "PROMPT_LAYOUT",
    "METRICS_TEXTFILE",
    "PUSHGATEWAY_URL",
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
                        var: format!("line {}", e.line),
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
        env
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
        Checker {
            env: self,
            problems: self.read_problems.clone(),
        }
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
        let department_id =
            if c.optional("DEPARTAMENT_ID").is_some() || c.optional("DEPARTMENT_ID").is_some() {
                c.department()
            } else {
                None
            };
        let timezone: Tz = c.parsed("CALLS_TIMEZONE", "Europe/Moscow".parse().expect("valid tz"));
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
        let s = c.checklist_source();
        c.finish()?;
        Ok(s.expect("checked"))
    }

    /// Everything `callq run` needs.
    pub fn run(&self) -> Result<RunSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let checklist = c.checklist_source();
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
        let timezone: Tz = c.parsed("CALLS_TIMEZONE", "Europe/Moscow".parse().expect("valid tz"));
        let check_day_ago: u32 = c.parsed("CHECK_DAY_AGO", 2);
        let min_call_duration_s: u32 = c.parsed("MIN_CALL_DURATION_S", 30);
        let retry = c.retry();
        let tbank = c.tbank(retry);
        let llm = c.llm(retry);
        let prompt_layout = c.prompt_layout();
        let metrics = MetricsSettings {
            textfile: c.optional("METRICS_TEXTFILE").map(PathBuf::from),
            pushgateway: match c.optional("PUSHGATEWAY_URL") {
                Some(_) => c.base_url("PUSHGATEWAY_URL", ""),
                None => None,
            },
        };
        c.finish()?;
        Ok(RunSettings {
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
        })
    }
}

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
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[derive(Debug, Clone)]
pub struct RunSettings {
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
}

struct Checker<'a> {
    env: &'a Env,
    problems: Vec<Problem>,
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
        match parse_database_url(&raw) {
            Ok(db) => Some(db),
            Err(e) => {
                self.problem("DATA_BASE", e);
                None
            }
        }
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

    fn checklist_source(&mut self) -> Option<Source> {
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
        let timeout_s: u64 = self.parsed("TBANK_TIMEOUT_S", 60);
        let concurrency = self.positive("TBANK_CONCURRENCY", 8);
        Some(TbankSettings {
            base_url: base_url?,
            login: login?,
            password: password?,
            auth_type: self.or_default("AUTH_TYPE", "tqm".into()),
            auth_system: self.or_default("AUTH_SYSTEM", "tqm".into()),
            group_name: group?,
            tqm_version: self.or_default("TQM_VERSION", "26551fa4".into()),
            timeout: Duration::from_secs(timeout_s.max(1)),
            concurrency,
            retry,
        })
    }

    fn llm(&mut self, retry: RetryPolicy) -> Option<LlmSettings> {
        let base_url = self.base_url("LLM_BASE_URL", DEFAULT_LLM_BASE_URL);
        let token = self.required("TOKEN_LLM");
        let model = self.required("MODEL");
        let timeout_s: u64 = self.parsed("LLM_TIMEOUT_S", 180);
        let price_in = self.price("LLM_PRICE_INPUT_PER_1M");
        let price_out = self.price("LLM_PRICE_OUTPUT_PER_1M");
        let max_concurrency = self.positive("LLM_CONCURRENCY", 8);
        Some(LlmSettings {
            base_url: base_url?,
            token: token?,
            model: model?,
            timeout: Duration::from_secs(timeout_s.max(1)),
            retry,
            price_input_per_1m: price_in,
            price_output_per_1m: price_out,
            max_concurrency,
        })
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
    Ok(DbSettings { config, display })
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
}
