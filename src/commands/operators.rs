//! `callq operators import` and `callq operators unknown`: the operator directory. Both need
//! only DATA_BASE. The `*_report` / `import_file` functions return data for tests; the
//! command functions print it and map it to an exit code.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;

use crate::cli::{OperatorsImportArgs, OperatorsUnknownArgs};
use crate::config::{ConfigError, Env};
use crate::operators::Directory;
use crate::operators::import::{self as operators_import, LineError};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{ImportCounts, Store, StoreError, UnknownOperator};

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Config(ConfigError),
    #[error("{path}: cannot read: {error}")]
    File { path: String, error: std::io::Error },
    /// Bad lines, in line order; nothing was written.
    #[error("{path}: {} bad line(s), nothing imported:\n{}", .lines.len(), LineError::list(.lines))]
    Invalid { path: String, lines: Vec<LineError> },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Severe for ImportError {
    fn severity(&self) -> Severity {
        match self {
            ImportError::Config(_) | ImportError::File { .. } | ImportError::Invalid { .. } => {
                Severity::Input
            }
            ImportError::Store(e) => e.severity(),
        }
    }
}

pub async fn import(args: &OperatorsImportArgs, env: &Env) -> ExitCode {
    match import_file(&args.file, env).await {
        Ok(counts) => {
            let line = describe_import(&args.file, &counts);
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

/// "operators.csv: 3 inserted, 1 updated, 5 unchanged (created 1 office)".
pub fn describe_import(path: &Path, c: &ImportCounts) -> String {
    let mut line = format!(
        "{}: {} inserted, {} updated, {} unchanged",
        path.display(),
        c.inserted,
        c.updated,
        c.unchanged
    );
    let mut created = Vec::new();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if c.offices_created > 0 {
        created.push(plural(c.offices_created, "office", "offices"));
    }
    if c.supervisors_created > 0 {
        created.push(plural(c.supervisors_created, "supervisor", "supervisors"));
    }
    if !created.is_empty() {
        line.push_str(&format!(" (created {})", created.join(" and ")));
    }
    line
}

/// Validates the whole file (its lines, then its department ids against `departments`) and,
/// when every line is good, imports it in one transaction.
pub async fn import_file(path: &Path, env: &Env) -> Result<ImportCounts, ImportError> {
    let db = env.database().map_err(ImportError::Config)?;
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| ImportError::File {
        path: shown.clone(),
        error,
    })?;
    let mut parsed = operators_import::parse(&bytes);
    let invalid = |parsed: &operators_import::ParsedOperators| ImportError::Invalid {
        path: shown.clone(),
        lines: parsed.errors(),
    };

    let store = match Store::connect(&db, 2).await {
        Ok(s) => s,
        // The file's own problems are worth reporting even without a database.
        Err(e) if !parsed.is_valid() => {
            tracing::warn!("department ids not checked: {e}");
            return Err(invalid(&parsed));
        }
        Err(e) => return Err(e.into()),
    };
    store
        .require_tables(&["departments", "offices", "supervisors", "operators"])
        .await?;
    let known = store.known_departments(&parsed.department_ids()).await?;
    parsed.check_departments(&known);
    if !parsed.is_valid() {
        return Err(invalid(&parsed));
    }
    if parsed.rows.is_empty() {
        tracing::warn!("{shown} lists no operators");
    }
    Ok(store
        .import_operators(&parsed.rows, parsed.has_office, parsed.has_supervisor)
        .await?)
}

/// What `callq operators unknown` prints.
#[derive(Debug, Clone)]
pub struct UnknownReport {
    pub since: NaiveDate,
    pub today: NaiveDate,
    pub department_id: Option<i32>,
    /// Most calls first.
    pub rows: Vec<UnknownOperator>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Config(ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Severe for ReportError {
    fn severity(&self) -> Severity {
        match self {
            ReportError::Config(_) => Severity::Input,
            ReportError::Store(e) => e.severity(),
        }
    }
}

pub async fn unknown(args: &OperatorsUnknownArgs, env: &Env) -> ExitCode {
    match unknown_report(args.days, env).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

/// Unknown operator names on call days from `days` days before today (in CALLS_TIMEZONE) up
/// to today, less the names the directory knows by now.
pub async fn unknown_report(days: u32, env: &Env) -> Result<UnknownReport, ReportError> {
    let settings = env.unknown_operators().map_err(ReportError::Config)?;
    let today = chrono::Utc::now()
        .with_timezone(&settings.timezone)
        .date_naive();
    let since = today - chrono::Days::new(u64::from(days));
    let store = Store::connect(&settings.db, 2).await?;
    store
        .require_tables(&["operators", "unknown_operators"])
        .await?;
    let seen = store
        .unknown_operators_since(since, settings.department_id)
        .await?;
    let directory = store.operators().await?;
    Ok(UnknownReport {
        since,
        today,
        department_id: settings.department_id,
        rows: still_unknown(seen, &directory),
    })
}

/// Leaves out the names the directory knows now (matched as a run matches them, preferring
/// the name's own department), keeping the order.
pub fn still_unknown(
    rows: Vec<UnknownOperator>,
    directory: &[(i64, String, Option<i64>)],
) -> Vec<UnknownOperator> {
    let mut by_department: HashMap<i32, Directory> = HashMap::new();
    rows.into_iter()
        .filter(|r| {
            let dir = by_department.entry(r.department_id).or_insert_with(|| {
                Directory::new(
                    directory
                        .iter()
                        .map(|(id, name, d)| (*id, name.as_str(), *d)),
                    i64::from(r.department_id),
                )
            });
            dir.lookup(&r.operator_name).is_none()
        })
        .collect()
}

impl fmt::Display for UnknownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.department_id {
            Some(d) => format!(", department {d}"),
            None => String::new(),
        };
        if self.rows.is_empty() {
            return writeln!(
                f,
                "No unknown operators on call days {} to {}{scope}.",
                self.since, self.today
            );
        }
        writeln!(
            f,
            "Operators not in the directory, call days {} to {}{scope}:",
            self.since, self.today
        )?;
        let header = ["department", "calls", "last day", "operator"];
        let cells: Vec<[String; 3]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.department_id.to_string(),
                    r.calls.to_string(),
                    r.last_day.to_string(),
                ]
            })
            .collect();
        let width = |i: usize| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        writeln!(
            f,
            "{:<w0$}  {:>w1$}  {:<w2$}  {}",
            header[0], header[1], header[2], header[3]
        )?;
        for (c, r) in cells.iter().zip(&self.rows) {
            writeln!(
                f,
                "{:>w0$}  {:>w1$}  {:<w2$}  {}",
                c[0], c[1], c[2], r.operator_name
            )?;
        }
        let calls: i64 = self.rows.iter().map(|r| r.calls).sum();
        writeln!(
            f,
            "{} name(s), {calls} call(s) not scored. Add them with `callq operators import FILE.csv`.",
            self.rows.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn row(department_id: i32, name: &str, calls: i64, day: u32) -> UnknownOperator {
        UnknownOperator {
            department_id,
            operator_name: name.into(),
            calls,
            last_day: NaiveDate::from_ymd_opt(2025, 8, day).unwrap(),
            last_seen_at: Utc.with_ymd_and_hms(2025, 8, 9, 3, 0, 0).unwrap(),
        }
    }

    #[test]
    fn names_the_directory_knows_now_are_left_out() {
        let rows = vec![
            row(1, "Оператор Смирнова Ольга", 5, 7),
            row(1, "Кузнецов Павел", 3, 6),
            row(2, "Смирнова Ольга", 2, 7),
        ];
        let directory = vec![(7, "Смирнова Ольга Ивановна".to_string(), Some(1))];
        let left: Vec<String> = still_unknown(rows, &directory)
            .into_iter()
            .map(|r| r.operator_name)
            .collect();
        // The directory's rows count for every department, as they do in a run.
        assert_eq!(left, vec!["Кузнецов Павел"]);
    }

    #[test]
    fn the_table_lists_department_calls_day_and_name() {
        let report = UnknownReport {
            since: NaiveDate::from_ymd_opt(2025, 7, 10).unwrap(),
            today: NaiveDate::from_ymd_opt(2025, 8, 9).unwrap(),
            department_id: None,
            rows: vec![
                row(1, "Смирнова Ольга", 12, 7),
                row(12, "Кузнецов Павел", 3, 6),
            ],
        };
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "Operators not in the directory, call days 2025-07-10 to 2025-08-09:",
                "department  calls  last day    operator",
                "         1     12  2025-08-07  Смирнова Ольга",
                "        12      3  2025-08-06  Кузнецов Павел",
                "2 name(s), 15 call(s) not scored. Add them with `callq operators import FILE.csv`.",
            ],
            "{text}"
        );
        let empty = UnknownReport {
            rows: Vec::new(),
            department_id: Some(3),
            ..report
        };
        assert_eq!(
            empty.to_string(),
            "No unknown operators on call days 2025-07-10 to 2025-08-09, department 3.\n"
        );
    }

    #[test]
    fn import_summary_line() {
        let c = ImportCounts {
            inserted: 3,
            updated: 1,
            unchanged: 5,
            offices_created: 1,
            supervisors_created: 2,
        };
        assert_eq!(
            describe_import(Path::new("ops.csv"), &c),
            "ops.csv: 3 inserted, 1 updated, 5 unchanged (created 1 office and 2 supervisors)"
        );
        assert_eq!(
            describe_import(Path::new("ops.csv"), &ImportCounts::default()),
            "ops.csv: 0 inserted, 0 updated, 0 unchanged"
        );
    }
}
