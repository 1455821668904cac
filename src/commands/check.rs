//! `callq check`: a preflight before going live. One line per outside system, ✓ or ✗ with
//! what to fix; at most one tiny LLM request is spent.

use std::fmt::Display;

use crate::config::{ConfigError, Env, RunSettings};
use crate::error::{Severe, Severity};
use crate::exit::ExitCode;
use crate::llm::{LlmClient, LlmError};
use crate::operators::Directory;
use crate::run as pipeline;
use crate::store::Store;
use crate::tbank::TbankClient;

/// The lines printed so far and whether any failed.
#[derive(Default)]
struct Report {
    input_failed: bool,
    service_failed: bool,
}

impl Report {
    fn ok(&self, what: &str, detail: impl Display) {
        crate::redact::println(format_args!("✓ {what}: {detail}"));
    }

    /// A problem the user fixes in configuration or input (exit 2).
    fn bad_input(&mut self, what: &str, detail: impl Display, fix: &str) {
        self.input_failed = true;
        crate::redact::println(format_args!("✗ {what}: {detail}\n    fix: {fix}"));
    }

    /// A service that does not answer as it should (exit 3).
    fn unavailable(&mut self, what: &str, detail: impl Display, fix: &str) {
        self.service_failed = true;
        crate::redact::println(format_args!("✗ {what}: {detail}\n    fix: {fix}"));
    }

    fn skipped(&self, what: &str, why: &str) {
        crate::redact::println(format_args!("– {what}: not checked ({why})"));
    }

    fn exit(&self) -> ExitCode {
        if self.input_failed {
            ExitCode::BadInput
        } else if self.service_failed {
            ExitCode::Unavailable
        } else {
            ExitCode::Ok
        }
    }
}

pub async fn check(env: &Env) -> ExitCode {
    let mut r = Report::default();
    let settings = match env.run() {
        Ok(s) => {
            r.ok(
                "configuration",
                format!("{} (department {})", env.file().display(), s.department_id),
            );
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
        Ok(source) => match pipeline::load_checklist(&source).await {
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
        }
        None => {
            for what in ["prompt template", "T-Bank", "LLM gateway"] {
                r.skipped(what, "configuration incomplete");
            }
        }
    }
    r.exit()
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
            return r.unavailable(
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
        Err(e) => return r.unavailable("database", e, "check DATA_BASE"),
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
        Err(e) => r.unavailable("operators", e, "check DATA_BASE"),
    }
}

fn prompt(r: &mut Report, s: &RunSettings) {
    match pipeline::load_template(&s.prompt_file) {
        Ok(_) => r.ok("prompt template", s.prompt_file.display()),
        Err(e) => r.bad_input(
            "prompt template",
            e,
            "fix PROMPT_FILE (placeholders: {transcription}, {criteria_list}, {custom_instructions}; {{ }} for braces)",
        ),
    }
}

async fn tbank(r: &mut Report, s: &RunSettings) {
    let client = match TbankClient::new(s.tbank.clone()) {
        Ok(c) => c,
        Err(e) => return r.unavailable("T-Bank", e, "check TBANK_BASE_URL"),
    };
    if let Err(e) = client.login().await {
        return r.unavailable(
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
        Err(e) => r.bad_input(
            "T-Bank",
            e,
            "set AGENT_GROUP_NAME to one of the names found",
        ),
    }
}

async fn llm(r: &mut Report, s: &RunSettings) {
    let client = match LlmClient::new(s.llm.clone()) {
        Ok(c) => c,
        Err(e) => return r.bad_input("LLM gateway", e, "check LLM_BASE_URL and TOKEN_LLM"),
    };
    let url = &s.llm.base_url;
    match client.ping().await {
        Ok(usage) => r.ok(
            "LLM gateway",
            format!(
                "{url} answers for model {} ({} tokens spent)",
                s.llm.model,
                usage.prompt_tokens + usage.completion_tokens
            ),
        ),
        Err(LlmError::Fatal { status, message }) => {
            let fix = match status {
                401 | 403 => "check TOKEN_LLM",
                404 => "check MODEL: the gateway does not know it",
                _ => "check MODEL and LLM_BASE_URL",
            };
            r.unavailable(
                "LLM gateway",
                format!("{url}: HTTP {status}: {message}"),
                fix,
            )
        }
        Err(e) => r.unavailable(
            "LLM gateway",
            format!("{url}: {e}"),
            "check LLM_BASE_URL and that the gateway is up",
        ),
    }
}
