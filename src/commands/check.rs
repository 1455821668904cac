//! `callq check`: a preflight before going live. One line per outside system, ✓ or ✗ with
//! what to fix; one tiny LLM request is spent (two when the gateway refuses structured
//! output), asking with the real response schema of a one-criterion checklist.

use std::fmt::Display;

use crate::config::{ConfigError, Env, RunSettings};
use crate::domain::{Checklist, Criterion};
use crate::llm::{LlmClient, StructuredOutput, criteria_list, response_schema};
use crate::operators::Directory;
use crate::run;
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::Store;
use crate::tbank::TbankClient;

/// The lines printed so far and whether any failed.
#[derive(Default)]
struct Report {
    input_failed: bool,
    service_failed: bool,
    lines: Vec<String>,
}

impl Report {
    fn line(&mut self, text: String) {
        crate::redact::println(&text);
        self.lines.push(text);
    }

    fn ok(&mut self, what: &str, detail: impl Display) {
        self.line(format!("✓ {what}: {detail}"));
    }

    /// A problem the user fixes in configuration or input (exit 2).
    fn bad_input(&mut self, what: &str, detail: impl Display, fix: &str) {
        self.input_failed = true;
        self.line(format!("✗ {what}: {detail}\n    fix: {fix}"));
    }

    /// A service that does not answer as it should (exit 3).
    fn unavailable(&mut self, what: &str, detail: impl Display, fix: &str) {
        self.service_failed = true;
        self.line(format!("✗ {what}: {detail}\n    fix: {fix}"));
    }

    /// A failure judged by its error's severity: the user's to fix (`Input`), or a
    /// service's.
    fn failed(&mut self, what: &str, error: impl Severe + Display, fix: &str) {
        if error.severity() == Severity::Input {
            self.bad_input(what, error, fix)
        } else {
            self.unavailable(what, error, fix)
        }
    }

    /// Works, but not as well as it could; does not fail the check.
    fn warn(&mut self, what: &str, detail: impl Display) {
        self.line(format!("! {what}: {detail}"));
    }

    fn skipped(&mut self, what: &str, why: &str) {
        self.line(format!("– {what}: not checked ({why})"));
    }

    /// An input problem comes first: it must be fixed before a service can be judged.
    fn exit(&self) -> ExitCode {
        if self.input_failed {
            ExitCode::from(Severity::Input)
        } else if self.service_failed {
            ExitCode::from(Severity::Unavailable)
        } else {
            ExitCode::Ok
        }
    }
}

pub async fn check(env: &Env) -> ExitCode {
    check_lines(env).await.0
}

/// The check, with the lines it printed (for tests).
pub async fn check_lines(env: &Env) -> (ExitCode, Vec<String>) {
    let mut r = Report::default();
    let settings = match env.run() {
        Ok(s) => {
            r.ok(
                "configuration",
                format!("{} (department {})", env.file().display(), s.department_id),
            );
            for w in &s.warnings {
                r.warn("configuration", w);
            }
            Some(s)
        }
        Err(e) => {
            config_problems(&mut r, env, &e);
            None
        }
    };

    match env.database() {
        Ok(db) => database(&mut r, &db, settings.as_ref().map(|s| s.department_id)).await,
        Err(_) => r.skipped("database", "DATA_BASE is not usable"),
    }
    match env.checklist_source() {
        Ok(source) => match run::load_checklist(&source).await {
            Ok(list) => r.ok(
                "checklist",
                format!(
                    "{} criteria in {} categories, max {}, version {}",
                    list.criteria.len(),
                    list.categories().len(),
                    list.total_max(),
                    list.version()
                ),
            ),
            Err(e) if e.severity() == Severity::Input => r.bad_input(
                "checklist",
                e,
                "correct the sheet (or CRITERIA_FILE) where the message points",
            ),
            Err(e) => r.unavailable(
                "checklist",
                e,
                "check JSON_AUTH, the sheet's sharing and GOOGLE_SHEETS_BASE_URL",
            ),
        },
        Err(_) => r.skipped("checklist", "its source is not configured"),
    }

    match &settings {
        Some(s) => {
            prompt(&mut r, s);
            tbank(&mut r, s).await;
            llm(&mut r, s).await;
            if s.batch.mode == crate::config::LlmMode::Batch {
                batches(&mut r, s).await;
            }
        }
        None => {
            for what in ["prompt template", "T-Bank", "LLM gateway"] {
                r.skipped(what, "configuration incomplete");
            }
        }
    }
    (r.exit(), r.lines)
}

fn config_problems(r: &mut Report, env: &Env, e: &ConfigError) {
    let detail = e
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.var, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    r.bad_input(
        "configuration",
        detail,
        &format!("set these in {} (see .env.example)", env.file().display()),
    );
}

async fn database(r: &mut Report, db: &crate::config::DbSettings, department: Option<i32>) {
    let store = match Store::connect(db, 2).await {
        Ok(s) => s,
        Err(e) => {
            return r.failed(
                "database",
                e,
                "check DATA_BASE and that PostgreSQL is running",
            );
        }
    };
    match store.pending_migrations().await {
        Ok(p) if p.is_empty() => r.ok(
            "database",
            format!("{} reachable, migrations up to date", db.display),
        ),
        Ok(p) => {
            return r.bad_input(
                "database",
                format!("{} needs migrations {}", db.display, p.join(", ")),
                "run `callq migrate`",
            );
        }
        Err(e) => return r.failed("database", e, "check DATA_BASE"),
    }
    match store.operators().await {
        Ok(rows) => {
            let total = rows.len();
            let ours = rows
                .iter()
                .filter(|(_, _, d)| department.is_some_and(|dep| *d == Some(i64::from(dep))))
                .count();
            let dir = Directory::new(rows, department.map_or(0, i64::from));
            if dir.is_empty() {
                r.bad_input(
                    "operators",
                    "the directory is empty: no call would be scored",
                    "fill the `operators` table",
                );
            } else {
                r.ok(
                    "operators",
                    format!("{total} in the directory, {ours} in this department"),
                );
            }
        }
        Err(e) => r.failed("operators", e, "check DATA_BASE"),
    }
}

fn prompt(r: &mut Report, s: &RunSettings) {
    match run::load_template(&s.prompt_file) {
        Ok(_) => r.ok("prompt template", s.prompt_file.display()),
        Err(e) => r.failed(
            "prompt template",
            e,
            "fix PROMPT_FILE (placeholders: {transcription}, {criteria_list}, {custom_instructions}; {{ }} for braces)",
        ),
    }
}

async fn tbank(r: &mut Report, s: &RunSettings) {
    let client = match TbankClient::new(s.tbank.clone()) {
        Ok(c) => c,
        Err(e) => return r.failed("T-Bank", e, "check TBANK_BASE_URL"),
    };
    if let Err(e) = client.login().await {
        return r.failed(
            "T-Bank",
            e,
            "check LOGIN, PASSWORD, AUTH_TYPE, AUTH_SYSTEM and TBANK_BASE_URL",
        );
    }
    match client.find_group().await {
        Ok(g) => r.ok(
            "T-Bank",
            format!(
                "logged in as {}, work group {:?} (id {})",
                s.tbank.login, g.name, g.id
            ),
        ),
        Err(e) => r.failed(
            "T-Bank",
            e,
            "set AGENT_GROUP_NAME to one of the names found",
        ),
    }
}

/// The probe's checklist: one criterion, so the schema is the real one at its smallest.
fn probe_checklist() -> Checklist {
    Checklist {
        criteria: vec![Criterion::new(
            "Приветствие",
            "Поздоровался с клиентом",
            1.0,
        )],
        custom_instructions: String::new(),
    }
}

fn probe_prompt(checklist: &Checklist) -> String {
    format!(
        "Проверка связи. Оцени звонок по чек-листу и ответь только JSON по схеме ответа.\n\n\
         {}\n\nРасшифровка звонка:\noperator: Добрый день!\nclient: Здравствуйте.\n",
        criteria_list(checklist)
    )
}

async fn llm(r: &mut Report, s: &RunSettings) {
    let client = match LlmClient::new(s.llm.clone()) {
        Ok(c) => c,
        Err(e) => return r.bad_input("LLM gateway", e, "check LLM_BASE_URL and TOKEN_LLM"),
    };
    let url = &s.llm.base_url;
    let checklist = probe_checklist();
    let schema = response_schema(&checklist);
    match client
        .probe(&probe_prompt(&checklist), &schema, &checklist)
        .await
    {
        Ok(probe) => {
            r.ok(
                "LLM gateway",
                format!(
                    "{url} answers for model {} ({} tokens spent)",
                    s.llm.model,
                    probe.usage.prompt_tokens + probe.usage.completion_tokens
                ),
            );
            match probe.structured {
                StructuredOutput::Honoured => r.ok(
                    "structured output",
                    "the model answers with the response schema (response_format json_schema)",
                ),
                StructuredOutput::RefusedByGateway => r.warn(
                    "structured output",
                    "the gateway refuses response_format for this model: runs ask for JSON by \
                     the prompt alone (answers are validated either way, unusable ones asked \
                     for again)",
                ),
                StructuredOutput::NotFollowed(why) => r.warn(
                    "structured output",
                    format!(
                        "response_format was accepted but the answer did not follow the \
                         schema ({why}); runs validate answers and ask again"
                    ),
                ),
            }
        }
        Err(e) => r.unavailable("LLM gateway", format!("{url}: {e}"), e.fix()),
    }
}

/// With LLM_MODE=batch: does the gateway pass the Files and Batches API through?
async fn batches(r: &mut Report, s: &RunSettings) {
    let what = "LLM batches";
    let client = match crate::llm::batch::BatchClient::new(&s.llm, s.batch.price_factor) {
        Ok(c) => c,
        Err(e) => return r.bad_input(what, e, "check LLM_BASE_URL and TOKEN_LLM"),
    };
    match client.probe().await {
        Ok(_) => r.ok(
            what,
            format!(
                "{} lists batches (/v1/batches): LLM_MODE=batch can submit them",
                s.llm.base_url
            ),
        ),
        Err(e) => r.unavailable(
            what,
            e,
            "the gateway must pass /v1/files and /v1/batches through: with LiteLLM, add a \
             files_settings entry naming the provider (README, Batch mode), or set LLM_MODE=sync",
        ),
    }
}
