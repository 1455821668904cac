//! The scoring checklist: sheet layout parsing and its two sources (Google Sheets, CSV).
//!
//! A checklist that breaks the layout stops the run before any LLM spend, with every
//! problem listed by sheet (or file), row and cell.

pub mod file;
pub mod layout;
pub mod sheets;

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::domain::{Checklist, format_score};
use crate::retry::RetryPolicy;
use crate::severity::{Severe, Severity};

pub use file::load_file;
pub use layout::{LayoutProblem, Origin, custom_instructions, parse_checklist};
pub use sheets::{SheetsClient, SheetsError};

/// Where a department's checklist comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Sheets(SheetsSource),
    /// `CRITERIA_FILE`: a CSV with the sheet's layout; no custom instructions.
    File(PathBuf),
}

/// The Google Sheets source, as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct SheetsSource {
    /// `JSON_AUTH`: a service-account key file's path, or the key's JSON text.
    pub json_auth: String,
    /// `REQUIREMENTS_SHEET_ID`.
    pub sheet_id: String,
    /// `REQUIREMENTS_SHEET_NAME_CHECK_LIST`.
    pub checklist_sheet: String,
    /// `REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI`: extra instructions, when set.
    pub prompt_sheet: Option<String>,
    /// `GOOGLE_SHEETS_BASE_URL`, with or without a trailing slash; empty means Google's.
    pub base_url: String,
    /// `RETRY_MAX_ATTEMPTS` and `RETRY_BASE_DELAY_MS`, as for the other clients.
    pub retry: RetryPolicy,
}

/// Debug without `json_auth`, which may hold the private key itself.
impl std::fmt::Debug for SheetsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json_auth = if self.json_auth.trim_start().starts_with('{') {
            "<key JSON>"
        } else {
            self.json_auth.as_str()
        };
        f.debug_struct("SheetsSource")
            .field("json_auth", &json_auth)
            .field("sheet_id", &self.sheet_id)
            .field("checklist_sheet", &self.checklist_sheet)
            .field("prompt_sheet", &self.prompt_sheet)
            .field("base_url", &self.base_url)
            .field("retry", &self.retry)
            .finish()
    }
}

#[derive(thiserror::Error, Debug)]
pub enum ChecklistError {
    /// Every problem of the sheet or file, each naming where it is.
    #[error("{}", layout_report(.0))]
    Layout(Vec<LayoutProblem>),
    #[error(transparent)]
    Sheets(#[from] SheetsError),
    #[error("cannot read the criteria file \"{}\" (CRITERIA_FILE): {source}", path.display())]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("criteria file \"{}\" (CRITERIA_FILE): {message}", path.display())]
    FileFormat { path: PathBuf, message: String },
}

/// A person must fix the checklist or its configuration (`Input`); trouble that may pass
/// on its own, such as the network, leaves the source `Unavailable`.
impl Severe for ChecklistError {
    fn severity(&self) -> Severity {
        match self {
            ChecklistError::Layout(_)
            | ChecklistError::FileUnreadable { .. }
            | ChecklistError::FileFormat { .. } => Severity::Input,
            ChecklistError::Sheets(e) => e.severity(),
        }
    }
}

fn layout_report(problems: &[LayoutProblem]) -> String {
    let mut out = match problems.len() {
        1 => "the checklist breaks the layout (1 problem):".to_string(),
        n => format!("the checklist breaks the layout ({n} problems):"),
    };
    for p in problems {
        out.push('\n');
        out.push_str(&p.to_string());
    }
    out
}

/// Loads the checklist, with the prompt sheet's instructions for the Sheets source.
pub async fn load(source: &Source) -> Result<Checklist, ChecklistError> {
    match source {
        Source::File(path) => load_file(path),
        Source::Sheets(sheets) => load_sheets(sheets, sheets.retry).await,
    }
}

/// The Sheets source with an explicit retry policy.
pub async fn load_sheets(
    source: &SheetsSource,
    retry: RetryPolicy,
) -> Result<Checklist, ChecklistError> {
    let client = SheetsClient::connect(source).await?.with_retry(retry);
    let rows = client
        .values(
            &source.checklist_sheet,
            "A:E",
            "REQUIREMENTS_SHEET_NAME_CHECK_LIST",
        )
        .await?;
    let criteria = parse_checklist(&Origin::Sheet(source.checklist_sheet.clone()), &rows)
        .map_err(ChecklistError::Layout)?;
    let custom_instructions = match &source.prompt_sheet {
        Some(sheet) if !sheet.trim().is_empty() => custom_instructions(
            &client
                .values(sheet, "A:B", "REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI")
                .await?,
        ),
        _ => String::new(),
    };
    let checklist = Checklist {
        criteria,
        custom_instructions,
    };
    tracing::info!(
        criteria = checklist.criteria.len(),
        version = %checklist.version(),
        "checklist loaded from sheet \"{}\"",
        source.checklist_sheet
    );
    Ok(checklist)
}

/// The listing `callq criteria` prints: each category with its criteria and their max
/// scores, the total, and the version hash that scores saved with it will carry.
pub fn describe(checklist: &Checklist) -> String {
    let mut out = String::new();
    let width = checklist
        .criteria
        .iter()
        .map(|c| format_score(c.max_score).chars().count())
        .max()
        .unwrap_or(0);
    for category in checklist.categories() {
        let _ = writeln!(out, "{category}");
        for c in checklist.criteria.iter().filter(|c| c.category == category) {
            let _ = writeln!(
                out,
                "  {:>width$}  {}",
                format_score(c.max_score),
                c.indicator
            );
        }
    }
    let categories = checklist.categories().len();
    let _ = writeln!(
        out,
        "\n{} {} in {} {}, total max score {}",
        checklist.criteria.len(),
        plural(checklist.criteria.len(), "criterion", "criteria"),
        categories,
        plural(categories, "category", "categories"),
        format_score(checklist.total_max())
    );
    let paragraphs = checklist
        .custom_instructions
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .count();
    let _ = writeln!(
        out,
        "custom instructions: {}",
        if paragraphs == 0 {
            "none".to_string()
        } else {
            format!(
                "{paragraphs} {} ({} characters)",
                plural(paragraphs, "paragraph", "paragraphs"),
                checklist.custom_instructions.chars().count()
            )
        }
    );
    let _ = writeln!(out, "checklist version: {}", checklist.version());
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Criterion;

    fn crit(category: &str, indicator: &str, max_score: f64) -> Criterion {
        Criterion::new(category, indicator, max_score)
    }

    #[test]
    fn describe_lists_categories_scores_total_and_version() {
        let checklist = Checklist {
            criteria: vec![
                crit("Приветствие", "Назвал имя", 5.0),
                crit("Приветствие", "Уточнил имя клиента", 2.5),
                crit("Завершение", "Договорился о следующем шаге", 10.0),
            ],
            custom_instructions: "Оценивай строго.\n\nЦитируй клиента.".into(),
        };
        let text = describe(&checklist);
        let expected = format!(
            "Приветствие\n\
             \x20\x20  5  Назвал имя\n\
             \x20\x202.5  Уточнил имя клиента\n\
             Завершение\n\
             \x20\x20 10  Договорился о следующем шаге\n\
             \n\
             3 criteria in 2 categories, total max score 17.5\n\
             custom instructions: 2 paragraphs (34 characters)\n\
             checklist version: {}\n",
            checklist.version()
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn describe_without_instructions() {
        let checklist = Checklist {
            criteria: vec![crit("Кат", "Крит", 1.0)],
            custom_instructions: String::new(),
        };
        let text = describe(&checklist);
        assert!(
            text.contains("1 criterion in 1 category, total max score 1\n"),
            "{text}"
        );
        assert!(text.contains("custom instructions: none\n"), "{text}");
    }

    #[test]
    fn layout_error_lists_every_problem_on_its_own_line() {
        let origin = Origin::Sheet("Чек-лист".into());
        let err = ChecklistError::Layout(vec![
            LayoutProblem {
                origin: origin.clone(),
                row: Some(3),
                cell: Some("C3".into()),
                message: "max score \"x\" is not a number".into(),
            },
            LayoutProblem {
                origin,
                row: Some(5),
                cell: Some("A5".into()),
                message: "category \"Б\" has no criteria".into(),
            },
        ]);
        assert_eq!(err.severity(), Severity::Input);
        assert_eq!(
            err.to_string(),
            "the checklist breaks the layout (2 problems):\n\
             sheet \"Чек-лист\": row 3, cell C3: max score \"x\" is not a number\n\
             sheet \"Чек-лист\": row 5, cell A5: category \"Б\" has no criteria"
        );
    }

    #[test]
    fn debug_of_a_sheets_source_hides_key_text() {
        let source = SheetsSource {
            json_auth: r#"{"private_key": "SECRET"}"#.into(),
            sheet_id: "id".into(),
            checklist_sheet: "Чек-лист".into(),
            prompt_sheet: None,
            base_url: String::new(),
            retry: RetryPolicy::default(),
        };
        let text = format!("{source:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("<key JSON>"), "{text}");
    }

    #[tokio::test]
    async fn load_reads_a_file_source() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/criteria.csv");
        let checklist = load(&Source::File(path)).await.unwrap();
        assert_eq!(checklist.criteria.len(), 5);
    }

    #[test]
    fn load_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let source = Source::File(PathBuf::from("x"));
        let future = load(&source);
        assert_send(&future);
    }
}
