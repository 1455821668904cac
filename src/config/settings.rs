//! The high stage: each command's settings, built from the variables it uses (read through
//! the low stage), with the rules between variables and the checks of the files they name.
//! Every problem is collected and reported at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;

use super::database::DbSettings;
use super::kinds::{Kind, PhoneMode};
use super::low::{Env, Read};
use super::vars::{Defaulted, Var, var};
use super::{ConfigError, Problem};
use crate::checklist::{SheetsSource, Source};
use crate::llm::{LlmSettings, PromptLayout};
use crate::pii::{MIN_PHONE_HASH_KEY_LEN, PhoneHashKey, PhoneStore, PrivacySettings};
use crate::retry::RetryPolicy;
use crate::tbank::TbankSettings;

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

/// How the run asks the LLM (LLM_MODE, `--batch` / `--sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LlmMode {
    /// One request per call, answers by the end of the run.
    #[default]
    Sync,
    /// Calls go into the gateway's Batch API; a later run collects the answers.
    Batch,
}

/// Batch mode's settings.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub mode: LlmMode,
    /// Lines per input file at most (LLM_BATCH_MAX_REQUESTS).
    pub max_requests: usize,
    /// Bytes per input file at most (LLM_BATCH_MAX_BYTES).
    pub max_bytes: usize,
    /// Batch answers cost this share of the prices (LLM_PRICE_BATCH_FACTOR).
    pub price_factor: f64,
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

/// The nightly canary (CANARY_CALLS, CANARY_MARGIN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanarySettings {
    /// Calls in the set; 0: the canary is off.
    pub calls: u32,
    /// How far below its trailing median agreement may fall before the night warns.
    pub margin: f64,
}

/// What `callq canary report` and `callq canary reset` read.
#[derive(Debug, Clone)]
pub struct CanaryCommandSettings {
    pub db: DbSettings,
    pub department_id: i32,
    pub canary: CanarySettings,
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
    pub canary: CanarySettings,
    pub batch: BatchSettings,
}

impl Env {
    fn checker(&self) -> Checker<'_> {
        let mut c = Checker {
            env: self,
            problems: self.read_problems().to_vec(),
            warnings: Vec::new(),
        };
        // Logging is set up from these before any command validates, falling back to
        // defaults; every command then refuses the bad values.
        c.get(var::LOGGING_LEVEL);
        c.get(var::LOGGING_ON_CONSOLE);
        c.get(var::LOGGING_ON_FILE);
        c
    }

    pub fn logging(&self) -> LoggingSettings {
        // Logging must come up even when the rest is broken, so bad values fall back
        // to defaults here and are reported by the command's own validation.
        let mut c = self.checker();
        LoggingSettings {
            name: c.get(var::LOGGING_NAME),
            level: c.get(var::LOGGING_LEVEL),
            dir: c.get(var::LOGGING_DIR),
            on_console: c.get(var::LOGGING_ON_CONSOLE),
            on_file: c.get(var::LOGGING_ON_FILE),
        }
    }

    /// What `callq migrate` needs: the database only.
    pub fn database(&self) -> Result<DbSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        c.finish(db)
    }

    /// What `callq operators unknown` needs: the database; the department (a filter) and
    /// the time zone of "today" are optional.
    pub fn unknown_operators(&self) -> Result<UnknownOperatorsSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let department_id = c.optional(var::DEPARTAMENT_ID);
        let timezone = c.get(var::CALLS_TIMEZONE);
        let built = db.map(|db| UnknownOperatorsSettings {
            db,
            department_id,
            timezone,
        });
        c.finish(built)
    }

    /// What `callq report` needs: the database and the report's language.
    pub fn report(&self) -> Result<ReportSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let lang = c.get(var::REPORT_LANG);
        c.finish(db.map(|db| ReportSettings { db, lang }))
    }

    /// What `callq batch status` needs: the database; the department is a filter.
    pub fn batch_status(&self) -> Result<(DbSettings, Option<i32>), ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let department_id = c.optional(var::DEPARTAMENT_ID);
        c.finish(db.map(|db| (db, department_id)))
    }

    /// What `callq criteria` needs: the checklist source only.
    pub fn checklist_source(&self) -> Result<Source, ConfigError> {
        let mut c = self.checker();
        let retry = c.retry();
        let source = c.checklist_source(retry);
        c.finish(source)
    }

    /// What `callq calibrate import` needs: the database, and the checklist to match the
    /// file's criteria against.
    pub fn calibration_import(&self) -> Result<(DbSettings, Source), ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let retry = c.retry();
        let checklist = c.checklist_source(retry);
        let built = db.and_then(|db| Ok((db, checklist?)));
        c.finish(built)
    }

    /// Where metrics go, read without failing: a run that stops on bad configuration
    /// still publishes its exit code where it can.
    pub fn metrics_best_effort(&self) -> MetricsSettings {
        self.checker().metrics()
    }

    /// The department, when it is set and valid.
    pub fn department_best_effort(&self) -> Option<i32> {
        self.checker().optional(var::DEPARTAMENT_ID)
    }

    /// What `callq canary report` and `reset` need: the database and the department.
    pub fn canary(&self) -> Result<CanaryCommandSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let department_id = c.required(var::DEPARTAMENT_ID);
        let canary = c.canary();
        let built = db.and_then(|db| {
            Ok(CanaryCommandSettings {
                db,
                department_id: department_id?,
                canary,
            })
        });
        c.finish(built)
    }

    pub fn run(&self) -> Result<RunSettings, ConfigError> {
        let mut c = self.checker();
        let built = c.run();
        c.finish(built)
    }

    /// What `callq purge` needs: the database; the department (a filter), the time zone of
    /// "today" and RETENTION_DAYS (the default age) are optional.
    pub fn purge(&self) -> Result<PurgeSettings, ConfigError> {
        let mut c = self.checker();
        let db = c.database();
        let department_id = c.optional(var::DEPARTAMENT_ID);
        let timezone = c.get(var::CALLS_TIMEZONE);
        let retention_days = c.optional(var::RETENTION_DAYS);
        let built = db.map(|db| PurgeSettings {
            db,
            department_id,
            timezone,
            retention_days,
        });
        c.finish(built)
    }
}

/// Proof that a problem was recorded: what a part of the settings that could not be built
/// returns instead, so a command's settings are either complete or refused with reasons.
#[derive(Debug, Clone, Copy)]
struct Reported(());

type Checked<T> = Result<T, Reported>;

/// Reads one command's variables, collecting every problem.
struct Checker<'a> {
    env: &'a Env,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Checker<'_> {
    fn report(&mut self, problem: Problem) -> Reported {
        self.problems.push(problem);
        Reported(())
    }

    /// A problem with `var` found by a rule rather than by reading it.
    fn problem(&mut self, var: &str, message: impl Into<String>) -> Reported {
        let p = self.env.problem(var, message);
        self.report(p)
    }

    fn checked<K: Kind>(&mut self, var: Var<K>) -> Option<Checked<K::Value>> {
        match self.env.read(var) {
            Read::Unset => None,
            Read::Value(v) => Some(Ok(v)),
            Read::Bad(p) => Some(Err(self.report(p))),
        }
    }

    /// The value, or `None` when it is unset or (reported) bad.
    fn optional<K: Kind>(&mut self, var: Var<K>) -> Option<K::Value> {
        self.checked(var)?.ok()
    }

    /// The value, or the default when it is unset or (reported) bad.
    fn get<K: Kind>(&mut self, var: Defaulted<K>) -> K::Value {
        self.optional(var.var)
            .unwrap_or_else(|| var.default_value())
    }

    fn required<K: Kind>(&mut self, var: Var<K>) -> Checked<K::Value> {
        match self.checked(var) {
            Some(checked) => checked,
            None => {
                let p = self.env.missing(var.name);
                Err(self.report(p))
            }
        }
    }

    fn finish<T>(self, built: Checked<T>) -> Result<T, ConfigError> {
        match built {
            Ok(settings) if self.problems.is_empty() => Ok(settings),
            _ => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }

    fn database(&mut self) -> Checked<DbSettings> {
        // Without DATA_BASE, DB_TIMEOUT_S is not looked at.
        if !self.env.is_set(var::DATA_BASE) {
            return self.required(var::DATA_BASE);
        }
        let op_timeout = self.get(var::DB_TIMEOUT_S);
        let db = self.required(var::DATA_BASE)?;
        Ok(DbSettings { op_timeout, ..db })
    }

    fn retry(&mut self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.get(var::RETRY_MAX_ATTEMPTS),
            min_delay: self.get(var::RETRY_BASE_DELAY_MS),
            ..RetryPolicy::default()
        }
    }

    /// CRITERIA_FILE when it is set, else the Google sheet.
    fn checklist_source(&mut self, retry: RetryPolicy) -> Checked<Source> {
        if let Some(path) = self.optional(var::CRITERIA_FILE) {
            if !path.is_file() {
                return Err(self.problem(
                    "CRITERIA_FILE",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            return Ok(Source::File(path));
        }
        let json_auth = self.required(var::JSON_AUTH);
        if let Ok(j) = &json_auth
            && !j.trim_start().starts_with('{')
            && !Path::new(j).is_file()
        {
            let message = format!("{j} is neither a key file nor the key's JSON text");
            self.problem("JSON_AUTH", message);
        }
        let sheet_id = self.required(var::REQUIREMENTS_SHEET_ID);
        let checklist_sheet = self.required(var::REQUIREMENTS_SHEET_NAME_CHECK_LIST);
        let prompt_sheet = self.optional(var::REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI);
        let base_url = self.get(var::GOOGLE_SHEETS_BASE_URL);
        Ok(Source::Sheets(SheetsSource {
            json_auth: json_auth?,
            sheet_id: sheet_id?,
            checklist_sheet: checklist_sheet?,
            prompt_sheet,
            base_url,
            retry,
        }))
    }

    fn run(&mut self) -> Checked<RunSettings> {
        let db = self.database();
        let retry = self.retry();
        let checklist = self.checklist_source(retry);
        let department_id = self.required(var::DEPARTAMENT_ID);
        let prompt_file = self.required(var::PROMPT_FILE);
        if let Ok(p) = &prompt_file
            && !p.is_file()
        {
            let message = format!("{} is not a readable file", p.display());
            self.problem("PROMPT_FILE", message);
        }
        let timezone = self.get(var::CALLS_TIMEZONE);
        let check_day_ago = self.get(var::CHECK_DAY_AGO);
        let min_call_duration_s = self.get(var::MIN_CALL_DURATION_S);
        let tbank = self.tbank(retry);
        let llm = self.llm(retry);
        let prompt_layout = self.get(var::PROMPT_LAYOUT);
        let review_below_percent = self.get(var::REVIEW_BELOW_PERCENT);
        let metrics = self.metrics();
        let shutdown_grace = Duration::from_secs(self.get(var::SHUTDOWN_GRACE_S));
        let warnings = std::mem::take(&mut self.warnings);
        let privacy = self.privacy();
        let canary = self.canary();
        let batch = BatchSettings {
            mode: self.get(var::LLM_MODE),
            max_requests: self.get(var::LLM_BATCH_MAX_REQUESTS),
            max_bytes: self.get(var::LLM_BATCH_MAX_BYTES),
            price_factor: self.get(var::LLM_PRICE_BATCH_FACTOR),
        };
        Ok(RunSettings {
            warnings,
            db: db?,
            checklist: checklist?,
            tbank: tbank?,
            llm: llm?,
            department_id: department_id?,
            prompt_file: prompt_file?,
            timezone,
            check_day_ago,
            min_call_duration_s,
            prompt_layout,
            metrics,
            shutdown_grace,
            review_below_percent,
            privacy,
            canary,
            batch,
        })
    }

    fn canary(&mut self) -> CanarySettings {
        CanarySettings {
            calls: self.get(var::CANARY_CALLS),
            margin: self.get(var::CANARY_MARGIN),
        }
    }

    fn metrics(&mut self) -> MetricsSettings {
        MetricsSettings {
            textfile: self.optional(var::METRICS_TEXTFILE),
            pushgateway: self.optional(var::PUSHGATEWAY_URL),
        }
    }

    fn tbank(&mut self, retry: RetryPolicy) -> Checked<TbankSettings> {
        let base_url = self.get(var::TBANK_BASE_URL);
        let login = self.required(var::LOGIN);
        let password = self.required(var::PASSWORD);
        let group = self.required(var::AGENT_GROUP_NAME);
        let timeout = self.get(var::TBANK_TIMEOUT_S);
        let concurrency = self.get(var::TBANK_CONCURRENCY);
        let breaker_threshold = self.get(var::TBANK_BREAKER_THRESHOLD);
        Ok(TbankSettings {
            base_url,
            login: login?,
            password: password?,
            auth_type: self.get(var::AUTH_TYPE),
            auth_system: self.get(var::AUTH_SYSTEM),
            group_name: group?,
            tqm_version: self.get(var::TQM_VERSION),
            timeout,
            concurrency,
            retry,
            breaker_threshold,
        })
    }

    fn llm(&mut self, retry: RetryPolicy) -> Checked<LlmSettings> {
        let base_url = self.llm_base_url();
        let token = self.required(var::TOKEN_LLM);
        let model = self.required(var::MODEL);
        let timeout = self.get(var::LLM_TIMEOUT_S);
        let price_input_per_1m = self.optional(var::LLM_PRICE_INPUT_PER_1M);
        let price_cached_input_per_1m = self.optional(var::LLM_PRICE_CACHED_INPUT_PER_1M);
        let price_output_per_1m = self.optional(var::LLM_PRICE_OUTPUT_PER_1M);
        let max_concurrency = self.get(var::LLM_CONCURRENCY);
        let breaker_threshold = self.get(var::LLM_BREAKER_THRESHOLD);
        Ok(LlmSettings {
            base_url,
            token: token?,
            model: model?,
            timeout,
            retry,
            price_input_per_1m,
            price_cached_input_per_1m,
            price_output_per_1m,
            max_concurrency,
            breaker_threshold,
        })
    }

    /// LLM_BASE_URL, also when pasted as the whole endpoint (`…/v1/chat/completions`,
    /// as gateways' docs show it): trimmed to the base with a warning.
    fn llm_base_url(&mut self) -> String {
        let url = self.get(var::LLM_BASE_URL);
        let Some(base) = url.strip_suffix("/chat/completions") else {
            return url;
        };
        let base = base.trim_end_matches('/').to_string();
        let origin = self
            .env
            .origin("LLM_BASE_URL")
            .map_or(String::new(), |o| format!(" (set in {o})"));
        self.warnings.push(format!(
            "LLM_BASE_URL {url} ends with /chat/completions, which callq adds itself; \
             using {base}{origin}"
        ));
        base
    }

    fn privacy(&mut self) -> PrivacySettings {
        let pii_masking = self.get(var::PII_MASKING);
        let transcript_store = self.get(var::TRANSCRIPT_STORE);
        let phone_store = match self.get(var::PHONE_STORE) {
            PhoneMode::Plain => PhoneStore::Plain,
            PhoneMode::None => PhoneStore::None,
            // The key's value never goes into a message.
            PhoneMode::Hash => match self.optional(var::PHONE_HASH_KEY) {
                None => {
                    self.problem(
                        "PHONE_HASH_KEY",
                        "is not set; PHONE_STORE=hash needs it (a secret of at least 16 \
                         characters, e.g. from `openssl rand -hex 32`)",
                    );
                    PhoneStore::Plain
                }
                Some(key) if key.chars().count() < MIN_PHONE_HASH_KEY_LEN => {
                    let message = format!(
                        "is {} characters long; use at least {MIN_PHONE_HASH_KEY_LEN} \
                         (e.g. from `openssl rand -hex 32`)",
                        key.chars().count()
                    );
                    self.problem("PHONE_HASH_KEY", message);
                    PhoneStore::Plain
                }
                Some(key) => PhoneStore::Hash(PhoneHashKey::new(key)),
            },
        };
        PrivacySettings {
            pii_masking,
            transcript_store,
            phone_store,
            retention_days: self.optional(var::RETENTION_DAYS),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::low::tests::env_from;
    use crate::config::vars::var;
    use crate::pii;

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
    fn review_below_percent_is_a_percentage() {
        let (_f, env) = env_from("", &[]);
        assert_eq!(env.checker().get(var::REVIEW_BELOW_PERCENT), 50);
        for (raw, want) in [
            ("0", Some(0)),
            ("65", Some(65)),
            ("70%", Some(70)),
            ("100", Some(100)),
        ] {
            let (_f, env) = env_from(&format!("REVIEW_BELOW_PERCENT={raw}\n"), &[]);
            let mut c = env.checker();
            assert_eq!(Some(c.get(var::REVIEW_BELOW_PERCENT)), want, "{raw}");
            assert!(c.problems.is_empty(), "{raw}");
        }
        for raw in ["101", "-1", "половина", "0.5"] {
            let (_f, env) = env_from(&format!("REVIEW_BELOW_PERCENT={raw}\n"), &[]);
            let mut c = env.checker();
            c.get(var::REVIEW_BELOW_PERCENT);
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
            assert_eq!(c.llm_base_url(), want, "{raw}");
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
