//! `callq report`: one self-contained HTML page (styles, script and SVG charts inline, no
//! request of any kind when opened) of a period's results, read from the BI views.

pub mod charts;
pub mod data;
pub mod i18n;
pub mod view;

use crate::severity::{Severe, Severity};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use minijinja::{AutoEscape, Environment};

use crate::config::{ReportLang, ReportSettings};
use crate::store::{Store, StoreError};

pub use data::{ReportData, Scope};

const TEMPLATE: &str = include_str!("../../templates/report.html");
const STYLE: &str = include_str!("../../templates/report.css");
const SCRIPT: &str = include_str!("../../templates/report.js");

/// Days a report covers when no range is given.
pub const DEFAULT_DAYS: u64 = 7;

#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub department: Option<i32>,
    pub operator: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("--from {from} is after --to {to}")]
    Range { from: NaiveDate, to: NaiveDate },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("report template: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("{path}: cannot write the report: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Severe for ReportError {
    fn severity(&self) -> Severity {
        match self {
            ReportError::Range { .. } | ReportError::Write { .. } => Severity::Input,
            // A database that is not migrated exits alike from every command.
            ReportError::Store(e) => e.severity(),
            ReportError::Template(_) => Severity::Unavailable,
        }
    }
}

/// What a written report covered, for the command's message.
#[derive(Debug, Clone)]
pub struct Written {
    pub scope: Scope,
    pub bytes: usize,
    pub calls_scored: i64,
    pub operators: usize,
}

/// Reads the views and writes the page to `out` (through a temporary file, so a reader
/// never sees half a report).
pub async fn write(
    settings: &ReportSettings,
    request: &ReportRequest,
    out: &Path,
) -> Result<Written, ReportError> {
    let store = Store::connect(&settings.db, 4).await?;
    // The views the page reads come with the migrations: an unmigrated database gets the hint.
    store
        .require_tables(&["v_scored_calls", "v_operator_daily", "v_criterion_daily"])
        .await?;
    let scope = resolve_scope(&store, request).await?;
    let data = load(&store, scope).await?;
    let html = render(&data, settings.lang)?;
    write_atomically(out, html.as_bytes()).map_err(|error| ReportError::Write {
        path: out.to_path_buf(),
        error,
    })?;
    Ok(Written {
        scope,
        bytes: html.len(),
        calls_scored: data.headline.calls_scored,
        operators: data.operators.len(),
    })
}

/// Reads everything the page shows. The two queries over every evaluation dominate on a
/// large database, so the independent groups run at once, each on its own connection.
pub async fn load(store: &Store, scope: Scope) -> Result<ReportData, ReportError> {
    let (summary, operators, by_operator, department) = tokio::try_join!(
        store.report_summary(&scope),
        store.report_operators(&scope),
        store.operator_criteria(&scope),
        store.department_criteria(&scope),
    )?;
    Ok(data::assemble(
        scope,
        summary,
        operators,
        by_operator,
        department,
    ))
}

/// The requested range, or the last [`DEFAULT_DAYS`] days up to the latest scored day
/// (today when nothing is scored yet).
pub async fn resolve_scope(store: &Store, request: &ReportRequest) -> Result<Scope, ReportError> {
    let (from, to) = match (request.from, request.to) {
        (Some(from), Some(to)) if from > to => return Err(ReportError::Range { from, to }),
        (Some(from), Some(to)) => (from, to),
        _ => {
            let last = store
                .latest_scored_day(request.department, request.operator)
                .await?
                .unwrap_or_else(|| chrono::Local::now().date_naive());
            (last - chrono::Days::new(DEFAULT_DAYS - 1), last)
        }
    };
    Ok(Scope {
        from,
        to,
        department: request.department,
        operator: request.operator,
    })
}

/// The page for `data`. Autoescaping is on for everything the template prints.
pub fn render(data: &ReportData, lang: ReportLang) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)?;
    let generated = chrono::Local::now().format("%Y-%m-%d %H:%M").to_string();
    let page = view::page(data, lang, generated);
    env.get_template("report.html")?
        .render(minijinja::context! {
            page => page,
            // Our own files, embedded at build time; no database text is in them.
            style => minijinja::Value::from_safe_string(STYLE.to_string()),
            script => minijinja::Value::from_safe_string(SCRIPT.to_string()),
        })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
