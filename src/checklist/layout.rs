//! The checklist's layout, parsed from rows of cells the way the Sheets
//! values API returns them: rows of different lengths, trailing empty cells omitted, an
//! empty row as `[]`. No I/O here; the Sheets and CSV sources both hand their rows in.
//!
//! | row | cells | meaning |
//! |---|---|---|
//! | first | anything | header, skipped |
//! | exactly one non-empty cell, in column A | `[category]` | starts a category |
//! | 2-5 cells | `[indicator, comment, max score, scoring conditions, critical]` | one criterion |
//! | the first empty row | `[]` | end of the checklist; rows after it are ignored |
//!
//! Column E (`Критичный`) is optional: да/нет, yes/no, 1/0, true/false, empty = no. Old
//! four-column sheets therefore read as before. A row is a category when column A is its
//! only non-empty cell among A-D (column E is not looked at there). Only columns A-E are
//! read, as the Sheets source asks for `A:E`: whatever a CSV export carries beyond column E
//! is ignored the same way.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use crate::domain::Criterion;

/// Columns of the layout: indicator, comment, max score, conditions, critical.
const COLUMNS: usize = 5;
/// Columns that decide whether a row is a category (A alone) or a criterion.
const SHAPE_COLUMNS: usize = 4;

/// Where rows came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A Google Sheets tab, by name.
    Sheet(String),
    /// A CSV file (`CRITERIA_FILE`).
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Sheet(name) => write!(f, "sheet \"{name}\""),
            Origin::File(path) => write!(f, "file \"{}\"", path.display()),
        }
    }
}

/// One way a checklist breaks the layout, located as precisely as the problem allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutProblem {
    pub origin: Origin,
    /// 1-based row number as the spreadsheet shows it; `None` for the checklist as a whole.
    pub row: Option<usize>,
    /// A1 notation of the offending cell, e.g. `C7`.
    pub cell: Option<String>,
    pub message: String,
}

impl fmt::Display for LayoutProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        match (self.row, &self.cell) {
            (Some(row), Some(cell)) => write!(f, ": row {row}, cell {cell}")?,
            (Some(row), None) => write!(f, ": row {row}")?,
            (None, Some(cell)) => write!(f, ": cell {cell}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// Parses a checklist sheet's rows into criteria, in sheet order.
///
/// Every problem of the sheet is collected, not just the first, so a user fixes the sheet
/// in one go. Cells are trimmed; the max score accepts a decimal comma (`2,5`).
pub fn parse_checklist(
    origin: &Origin,
    rows: &[Vec<String>],
) -> Result<Vec<Criterion>, Vec<LayoutProblem>> {
    let mut parser = Parser {
        origin,
        criteria: Vec::new(),
        problems: Vec::new(),
        category: None,
        seen: HashMap::new(),
    };
    let mut ended_at = None;
    // Row 1 is the header, whatever it holds.
    for (index, raw) in rows.iter().enumerate().skip(1) {
        let row = index + 1;
        let cells = trimmed_cells(raw);
        let shape = cells
            .iter()
            .take(SHAPE_COLUMNS)
            .rposition(|c| !c.is_empty())
            .map_or(0, |last| last + 1);
        match (cells.len(), shape) {
            (0, _) => {
                ended_at = Some(row);
                break;
            }
            (_, 1) => parser.start_category(row, &cells[0]),
            _ => parser.criterion(row, &cells),
        }
    }
    parser.close_category();

    let Parser {
        criteria,
        mut problems,
        ..
    } = parser;
    if criteria.is_empty() && problems.is_empty() {
        let where_it_ended = match ended_at {
            Some(2) => " (row 2 is empty, and an empty row ends the checklist)".to_string(),
            Some(row) => format!(" before row {row}, which is empty and ends the checklist"),
            None => String::new(),
        };
        problems.push(LayoutProblem {
            origin: origin.clone(),
            row: None,
            cell: None,
            message: format!(
                "the checklist has no criteria{where_it_ended}; expected a header row, then a \
                 category (a name alone in column A) followed by criterion rows \
                 [indicator, comment, max score, scoring conditions]"
            ),
        });
    }
    if problems.is_empty() {
        Ok(criteria)
    } else {
        Err(problems)
    }
}

/// The prompt sheet's extra instructions: column A of each row whose column A is not
/// blank, trimmed, joined with a blank line.
///
/// The old tool treated every non-empty row of that sheet as an instruction, with no
/// header row, and so does this: a title in row 1 becomes part of the instructions, as it
/// did before. Line breaks inside a cell are kept.
pub fn custom_instructions(rows: &[Vec<String>]) -> String {
    rows.iter()
        .filter_map(|row| row.first())
        .map(|cell| cell.trim())
        .filter(|cell| !cell.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The row's first five cells, trimmed, with trailing blank cells dropped, so that a
/// CSV's `Категория,,,` and the API's `["Категория"]` look alike.
fn trimmed_cells(raw: &[String]) -> Vec<String> {
    let mut cells: Vec<String> = raw
        .iter()
        .take(COLUMNS)
        .map(|c| c.trim().to_string())
        .collect();
    while cells.last().is_some_and(|c| c.is_empty()) {
        cells.pop();
    }
    cells
}

struct OpenCategory {
    name: String,
    row: usize,
    criteria: usize,
}

struct Parser<'a> {
    origin: &'a Origin,
    criteria: Vec<Criterion>,
    problems: Vec<LayoutProblem>,
    category: Option<OpenCategory>,
    /// (category key, criterion key) → row of the first occurrence.
    seen: HashMap<(String, String), usize>,
}

impl Parser<'_> {
    fn problem(&mut self, row: usize, column: usize, message: String) {
        self.problems.push(LayoutProblem {
            origin: self.origin.clone(),
            row: Some(row),
            cell: Some(cell_name(row, column)),
            message,
        });
    }

    fn start_category(&mut self, row: usize, name: &str) {
        self.close_category();
        self.category = Some(OpenCategory {
            name: name.to_string(),
            row,
            criteria: 0,
        });
    }

    fn close_category(&mut self) {
        if let Some(open) = self.category.take()
            && open.criteria == 0
        {
            self.problem(
                open.row,
                0,
                format!(
                    "category \"{}\" has no criteria; put its criteria in the rows below it \
                     (or delete the row if it is not a category)",
                    open.name
                ),
            );
        }
    }

    fn criterion(&mut self, row: usize, cells: &[String]) {
        let cell = |i: usize| cells.get(i).map(String::as_str).unwrap_or("");
        let indicator = cell(0);
        // A broken criterion still counts for its category, so that one bad cell does not
        // also report "category has no criteria".
        let category = self.category.as_mut().map(|open| {
            open.criteria += 1;
            open.name.clone()
        });
        let Some(category) = category else {
            let what = if indicator.is_empty() {
                "a criterion row".to_string()
            } else {
                format!("criterion \"{indicator}\"")
            };
            self.problem(
                row,
                0,
                format!(
                    "{what} comes before any category; put a category name alone in column A \
                     of a row above it"
                ),
            );
            return;
        };
        if indicator.is_empty() {
            self.problem(
                row,
                0,
                "the criterion's name (indicator) is missing; criterion rows are \
                 [indicator, comment, max score, scoring conditions]"
                    .to_string(),
            );
        }
        let max_score = match parse_score(cell(2)) {
            Ok(score) => Some(score),
            Err(why) => {
                self.problem(row, 2, why);
                None
            }
        };
        if !indicator.is_empty() {
            let key = (name_key(&category), name_key(indicator));
            if let Some(first) = self.seen.get(&key).copied() {
                self.problem(
                    row,
                    0,
                    format!(
                        "criterion \"{indicator}\" appears twice in category \"{category}\" \
                         (first in row {first})"
                    ),
                );
                return;
            }
            self.seen.insert(key, row);
        }
        let critical = match parse_critical(cell(4)) {
            Some(c) => c,
            None => {
                self.problem(
                    row,
                    4,
                    format!(
                        "critical mark \"{}\" is not да/нет, yes/no or 1/0; column E marks a \
                         critical criterion (empty means no)",
                        cell(4)
                    ),
                );
                false
            }
        };
        if let Some(max_score) = max_score
            && !indicator.is_empty()
        {
            self.criteria.push(Criterion {
                category,
                indicator: indicator.to_string(),
                comment: cell(1).to_string(),
                max_score,
                conditions: cell(3).to_string(),
                critical,
            });
        }
    }
}

/// A max score: a finite number above zero; `2,5` means 2.5.
fn parse_score(raw: &str) -> Result<f64, String> {
    if raw.is_empty() {
        return Err("max score is missing; column C holds the criterion's maximum score".into());
    }
    // Spreadsheets in a Russian locale format numbers with a decimal comma and may group
    // thousands with (non-breaking) spaces.
    let cleaned: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    let looks_numeric = cleaned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    match cleaned.parse::<f64>() {
        Ok(v) if looks_numeric && v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) if looks_numeric && v.is_finite() => {
            Err(format!("max score \"{raw}\" must be above zero"))
        }
        _ => Err(format!("max score \"{raw}\" is not a number")),
    }
}

/// Column E: whether the criterion is critical; `None` for a value that is not a yes or no.
fn parse_critical(raw: &str) -> Option<bool> {
    match raw.trim().to_lowercase().as_str() {
        "" | "нет" | "no" | "0" | "false" | "н" | "n" => Some(false),
        "да" | "yes" | "1" | "true" | "д" | "y" => Some(true),
        _ => None,
    }
}

/// Case- and space-insensitive identity of a name, for duplicate detection.
fn name_key(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A1 name of a cell: 0-based column, 1-based row.
fn cell_name(row: usize, column: usize) -> String {
    let letter = (b'A' + column as u8) as char;
    format!("{letter}{row}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[&[&str]]) -> Vec<Vec<String>> {
        data.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    fn sheet() -> Origin {
        Origin::Sheet("Чек-лист".into())
    }

    fn problems(data: &[&[&str]]) -> Vec<String> {
        parse_checklist(&sheet(), &rows(data))
            .expect_err("the layout should be rejected")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const HEADER: &[&str] = &["Показатель", "Комментарий", "Макс. балл", "Условия"];

    #[test]
    fn parses_categories_and_criteria_in_sheet_order() {
        let criteria = parse_checklist(
            &sheet(),
            &rows(&[
                HEADER,
                &["Приветствие"],
                &[
                    "Назвал своё имя",
                    "И компанию",
                    "5",
                    "5 — имя и компания; 0 — нет",
                ],
                &[" Уточнил имя клиента ", "", " 2,5 "],
                &["Выявление потребностей", "", "", ""],
                &[
                    "Задал открытые вопросы",
                    "Не менее двух",
                    "10",
                    "10 — два и больше",
                ],
            ]),
        )
        .unwrap();
        assert_eq!(criteria.len(), 3);
        assert_eq!(
            criteria[0],
            Criterion {
                category: "Приветствие".into(),
                indicator: "Назвал своё имя".into(),
                comment: "И компанию".into(),
                max_score: 5.0,
                conditions: "5 — имя и компания; 0 — нет".into(),
                critical: false,
            }
        );
        assert_eq!(criteria[1].indicator, "Уточнил имя клиента");
        assert_eq!(criteria[1].comment, "");
        assert_eq!(criteria[1].max_score, 2.5);
        assert_eq!(criteria[1].conditions, "");
        assert_eq!(criteria[2].category, "Выявление потребностей");
        assert_eq!(criteria[2].max_score, 10.0);
    }

    #[test]
    fn header_is_skipped_whatever_it_holds() {
        // A header that would itself be a category row, and one that would be a criterion.
        for header in [&["Чек-лист"][..], &["Показатель", "", "абв"][..]] {
            let criteria =
                parse_checklist(&sheet(), &rows(&[header, &["Кат"], &["Крит", "", "1"]])).unwrap();
            assert_eq!(criteria.len(), 1);
            assert_eq!(criteria[0].category, "Кат");
        }
    }

    #[test]
    fn first_empty_row_ends_the_checklist_and_junk_after_it_is_ignored() {
        let criteria = parse_checklist(
            &sheet(),
            &rows(&[
                HEADER,
                &["Кат"],
                &["Крит", "", "3"],
                &[],
                &["criterion before category", "", "десять"],
                &["Итого", "", "", "", "лишнее"],
            ]),
        )
        .unwrap();
        assert_eq!(criteria.len(), 1);
    }

    #[test]
    fn a_row_of_blank_cells_ends_the_checklist_too() {
        let criteria = parse_checklist(
            &sheet(),
            &rows(&[
                HEADER,
                &["Кат"],
                &["Крит", "", "3"],
                &["", " ", ""],
                &["Junk"],
            ]),
        )
        .unwrap();
        assert_eq!(criteria.len(), 1);
    }

    #[test]
    fn columns_beyond_e_are_ignored() {
        let criteria = parse_checklist(
            &sheet(),
            &rows(&[
                HEADER,
                &["Кат", "", "", "", "", "заметка"],
                &["Крит", "к", "4", "у", "", "заметка"],
            ]),
        )
        .unwrap();
        assert_eq!(criteria[0].category, "Кат");
        assert_eq!(criteria[0].conditions, "у");
        assert!(!criteria[0].critical);
    }

    #[test]
    fn column_e_marks_critical_criteria() {
        let criteria = parse_checklist(
            &sheet(),
            &rows(&[
                &[
                    "Показатель",
                    "Комментарий",
                    "Макс. балл",
                    "Условия",
                    "Критичный",
                ],
                // Column E of a category row is not looked at.
                &["Кат", "", "", "", "да"],
                &["А", "", "1", "", "да"],
                &["Б", "", "1", "", " Yes "],
                &["В", "", "1", "", "1"],
                &["Г", "", "1", "", "нет"],
                &["Д", "", "1", "", "0"],
                &["Е", "", "1", "", ""],
                &["Ж", "", "1"],
            ]),
        )
        .unwrap();
        let critical: Vec<bool> = criteria.iter().map(|c| c.critical).collect();
        assert_eq!(critical, [true, true, true, false, false, false, false]);
        assert_eq!(criteria[0].category, "Кат");

        let p = problems(&[HEADER, &["Кат"], &["А", "", "1", "", "важно"]]);
        assert_eq!(
            p,
            vec![
                "sheet \"Чек-лист\": row 3, cell E3: critical mark \"важно\" is not да/нет, yes/no \
                 or 1/0; column E marks a critical criterion (empty means no)"
            ]
        );
    }

    #[test]
    fn criterion_before_any_category_names_row_and_cell() {
        let p = problems(&[
            HEADER,
            &["Назвал имя", "", "5"],
            &["Кат"],
            &["Крит", "", "1"],
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("sheet \"Чек-лист\": row 2, cell A2: criterion \"Назвал имя\""),
            "{}",
            p[0]
        );
        assert!(p[0].contains("before any category"), "{}", p[0]);
    }

    #[test]
    fn bad_max_scores_are_each_reported() {
        let p = problems(&[
            HEADER,
            &["Кат"],
            &["Крит 1", "", "десять"],
            &["Крит 2", "комментарий"],
            &["Крит 3", "", "0"],
            &["Крит 4", "", "-2"],
            &["Крит 5", "", "NaN"],
            &["Крит 6", "", "inf"],
            &["Крит 7", "", "5"],
        ]);
        assert_eq!(
            p,
            vec![
                "sheet \"Чек-лист\": row 3, cell C3: max score \"десять\" is not a number",
                "sheet \"Чек-лист\": row 4, cell C4: max score is missing; column C holds the \
                 criterion's maximum score",
                "sheet \"Чек-лист\": row 5, cell C5: max score \"0\" must be above zero",
                "sheet \"Чек-лист\": row 6, cell C6: max score \"-2\" must be above zero",
                "sheet \"Чек-лист\": row 7, cell C7: max score \"NaN\" is not a number",
                "sheet \"Чек-лист\": row 8, cell C8: max score \"inf\" is not a number",
            ]
        );
    }

    #[test]
    fn duplicate_criterion_in_one_category_is_case_and_space_insensitive() {
        let p = problems(&[
            HEADER,
            &["Кат"],
            &["Назвал  имя", "", "5"],
            &["Другая"],
            &["назвал имя", "", "5"],
            &["Кат"],
            &[" НАЗВАЛ ИМЯ ", "", "5"],
        ]);
        assert_eq!(
            p,
            vec![
                "sheet \"Чек-лист\": row 7, cell A7: criterion \"НАЗВАЛ ИМЯ\" appears twice in \
                 category \"Кат\" (first in row 3)"
            ]
        );
    }

    #[test]
    fn empty_checklist_is_an_error() {
        for data in [
            &[][..],
            &[HEADER][..],
            &[HEADER, &[], &["Кат"], &["Крит", "", "1"]][..],
        ] {
            let p = problems(data);
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(
                p[0].starts_with("sheet \"Чек-лист\": the checklist has no criteria"),
                "{}",
                p[0]
            );
        }
        let p = problems(&[HEADER, &[], &["Кат"], &["Крит", "", "1"]]);
        assert!(p[0].contains("row 2 is empty"), "{}", p[0]);
    }

    #[test]
    fn category_without_criteria_is_an_error() {
        let p = problems(&[
            HEADER,
            &["Приветствие"],
            &["Выявление потребностей"],
            &["Задал вопросы", "", "5"],
            &["Завершение"],
            &[],
        ]);
        assert_eq!(
            p,
            vec![
                "sheet \"Чек-лист\": row 2, cell A2: category \"Приветствие\" has no criteria; \
                 put its criteria in the rows below it (or delete the row if it is not a category)",
                "sheet \"Чек-лист\": row 5, cell A5: category \"Завершение\" has no criteria; \
                 put its criteria in the rows below it (or delete the row if it is not a category)",
            ]
        );
    }

    #[test]
    fn criterion_without_a_name_is_an_error() {
        let p = problems(&[HEADER, &["Кат"], &["", "комментарий", "5"]]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("sheet \"Чек-лист\": row 3, cell A3: the criterion's name"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn all_problems_of_a_sheet_are_collected() {
        let p = problems(&[
            HEADER,
            &["Сирота", "", "1"],
            &["Кат"],
            &["Крит", "", "x"],
            &["Крит", "", "1"],
            &["Пустая"],
        ]);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("row 2, cell A2"));
        assert!(p[1].contains("row 4, cell C4"));
        assert!(p[2].contains("row 5, cell A5"));
        assert!(p[3].contains("row 6, cell A6"));
    }

    #[test]
    fn problems_in_a_file_name_the_file() {
        let origin = Origin::File(PathBuf::from("/etc/callq/criteria.csv"));
        let p = parse_checklist(&origin, &rows(&[HEADER, &["Кат"], &["Крит", "", "пять"]]))
            .unwrap_err();
        assert_eq!(
            p[0].to_string(),
            "file \"/etc/callq/criteria.csv\": row 3, cell C3: max score \"пять\" is not a number"
        );
    }

    #[test]
    fn scores_accept_decimal_comma_point_and_grouping_spaces() {
        assert_eq!(parse_score("2,5"), Ok(2.5));
        assert_eq!(parse_score("2.5"), Ok(2.5));
        assert_eq!(parse_score("1\u{a0}000"), Ok(1000.0));
        assert_eq!(parse_score("10"), Ok(10.0));
        assert!(parse_score("10 баллов").is_err());
        assert!(parse_score("1,2,3").is_err());
    }

    #[test]
    fn custom_instructions_join_column_a_of_non_empty_rows() {
        let text = custom_instructions(&rows(&[
            &["Оценивай строго."],
            &[],
            &["", "только B"],
            &["  Цитируй клиента.\nДословно.  ", "примечание"],
            &["   "],
            &["Пиши по-русски."],
        ]));
        assert_eq!(
            text,
            "Оценивай строго.\n\nЦитируй клиента.\nДословно.\n\nПиши по-русски."
        );
        assert_eq!(custom_instructions(&[]), "");
    }
}
