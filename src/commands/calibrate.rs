//! `callq calibrate import` and `callq calibrate report`: human QA scores in, agreement out.
//! `import_file` and `report_data` return data for tests; the command functions print it
//! and map it to an exit code.

use std::path::Path;

use crate::calibration::import as human_import;
use crate::calibration::report::{self, Report};
use crate::checklist::ChecklistError;
use crate::cli::{CalibrateImportArgs, CalibrateReportArgs};
use crate::config::{ConfigError, Env};
use crate::operators::import::LineError;
use crate::run;
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{HumanImportCounts, Store, StoreError};

/// Why a calibration command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("{0}")]
    Config(ConfigError),
    #[error("{path}: cannot read: {error}")]
    File { path: String, error: std::io::Error },
    #[error("{0}")]
    Checklist(ChecklistError),
    /// Bad lines, in line order; nothing was written.
    #[error("{path}: {} bad line(s), nothing imported:\n{}", .lines.len(), LineError::list(.lines))]
    Invalid { path: String, lines: Vec<LineError> },
    #[error("--from {from} is after --to {to}")]
    Range { from: String, to: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Severe for CalibrateError {
    fn severity(&self) -> Severity {
        match self {
            CalibrateError::Config(_)
            | CalibrateError::File { .. }
            | CalibrateError::Invalid { .. }
            | CalibrateError::Range { .. } => Severity::Input,
            CalibrateError::Checklist(e) => e.severity(),
            CalibrateError::Store(e) => e.severity(),
        }
    }
}

pub async fn import(args: &CalibrateImportArgs, env: &Env) -> ExitCode {
    match import_file(&args.file, env).await {
        Ok(c) => {
            let mut line = format!(
                "{}: {} inserted, {} updated, {} unchanged",
                args.file.display(),
                c.inserted,
                c.updated,
                c.unchanged
            );
            if c.calls_not_stored > 0 {
                line.push_str(&format!(
                    " ({} score(s) of calls callq has not stored yet: reported once they are)",
                    c.calls_not_stored
                ));
            }
            crate::redact::println(&line);
            tracing::info!("{line}");
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

/// Validates the whole file against the checklist and, when every line is good, imports it
/// in one transaction.
pub async fn import_file(path: &Path, env: &Env) -> Result<HumanImportCounts, CalibrateError> {
    let (db, source) = env.calibration_import().map_err(CalibrateError::Config)?;
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| CalibrateError::File {
        path: shown.clone(),
        error,
    })?;
    let checklist = run::load_checklist(&source)
        .await
        .map_err(CalibrateError::Checklist)?;
    let parsed = human_import::parse(&bytes, &checklist);
    if !parsed.is_valid() {
        return Err(CalibrateError::Invalid {
            path: shown,
            lines: parsed.errors(),
        });
    }
    let store = Store::connect(&db, 2).await?;
    store
        .require_tables(&["human_evaluations", "calls"])
        .await?;
    if parsed.rows.is_empty() {
        tracing::warn!("{shown} holds no scores");
    }
    Ok(store.import_human_scores(&parsed.rows).await?)
}

pub async fn report(args: &CalibrateReportArgs, env: &Env) -> ExitCode {
    match report_data(args, env).await {
        Ok(r) => {
            if args.json {
                crate::redact::println(r.to_json());
            } else {
                print!("{r}");
            }
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

pub async fn report_data(args: &CalibrateReportArgs, env: &Env) -> Result<Report, CalibrateError> {
    let db = env.database().map_err(CalibrateError::Config)?;
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(CalibrateError::Range {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    let store = Store::connect(&db, 2).await?;
    store
        .require_tables(&["human_evaluations", "call_evaluations"])
        .await?;
    let rows = store.calibration_pairs(args.from, args.to).await?;
    Ok(report::build(&rows))
}
