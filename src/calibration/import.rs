//! Human QA scores as a CSV file (`callq calibrate import`): parsing and validation against
//! the checklist, no I/O. The whole file is checked before anything is written, every bad
//! line reported by its line number, as for the operator directory.
//!
//! Layout: a header row naming `call_id`, `criterion`, `score` (required) and `category`,
//! `reviewer`, `reviewed_at` (optional), in any order; `,` or `;`; UTF-8 with or without a
//! byte order mark. Criteria are matched to the checklist's spelling the way the model's
//! answers are; a score must lie within the criterion's 0..max.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use crate::csv_file::{CsvFile, Header};
use crate::domain::Checklist;
use crate::llm::match_criterion;
use crate::operators::import::LineError;

pub const REQUIRED_COLUMNS: [&str; 3] = ["call_id", "criterion", "score"];
pub const OPTIONAL_COLUMNS: [&str; 3] = ["category", "reviewer", "reviewed_at"];

/// One valid line: a person's score of one criterion of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct HumanScore {
    pub line: u64,
    pub call_id: i64,
    /// The checklist's spelling.
    pub category: String,
    pub criterion: String,
    /// Empty when the file has no reviewer column or the cell is empty.
    pub reviewer: String,
    pub score: f64,
    pub reviewed_at: Option<NaiveDate>,
}

#[derive(Debug, Clone, Default)]
pub struct ParsedHumanScores {
    pub rows: Vec<HumanScore>,
    errors: BTreeMap<u64, Vec<String>>,
}

impl ParsedHumanScores {
    pub fn errors(&self) -> Vec<LineError> {
        self.errors
            .iter()
            .map(|(line, problems)| LineError {
                line: *line,
                problems: problems.clone(),
            })
            .collect()
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    fn problem(&mut self, line: u64, message: impl Into<String>) {
        self.errors.entry(line).or_default().push(message.into());
    }
}

struct Columns {
    call_id: usize,
    criterion: usize,
    score: usize,
    category: Option<usize>,
    reviewer: Option<usize>,
    reviewed_at: Option<usize>,
}

impl Columns {
    fn of(header: &Header) -> Columns {
        let at = &header.at;
        Columns {
            call_id: at["call_id"],
            criterion: at["criterion"],
            score: at["score"],
            category: at.get("category").copied(),
            reviewer: at.get("reviewer").copied(),
            reviewed_at: at.get("reviewed_at").copied(),
        }
    }
}

/// Parses and validates the file against `checklist`; every problem is collected.
pub fn parse(bytes: &[u8], checklist: &Checklist) -> ParsedHumanScores {
    let mut parsed = ParsedHumanScores::default();
    let file = match CsvFile::decode(bytes) {
        Ok(f) => f,
        Err((line, problem)) => {
            parsed.problem(line, problem);
            return parsed;
        }
    };
    let mut records = file.records();
    let header = match file.header(&mut records, &REQUIRED_COLUMNS, &OPTIONAL_COLUMNS) {
        Ok(h) => h,
        Err(problems) => {
            for (line, problem) in problems {
                parsed.problem(line, problem);
            }
            return parsed;
        }
    };
    let columns = Columns::of(&header);

    let mut first_line: HashMap<(i64, usize, String), u64> = HashMap::new();
    for row in file.rows(records, &header) {
        let (line, record) = match row {
            Ok(row) => row,
            Err((line, problem)) => {
                parsed.problem(line, problem);
                continue;
            }
        };
        let cell = |i: usize| record.get(i).map(str::trim).unwrap_or("");
        let optional = |i: Option<usize>| i.map(cell).unwrap_or("");

        let call_id = match cell(columns.call_id) {
            "" => {
                parsed.problem(line, "missing call_id");
                None
            }
            raw => match raw.parse::<i64>() {
                Ok(id) if id > 0 => Some(id),
                _ => {
                    parsed.problem(line, format!("call_id {raw:?} is not a positive integer"));
                    None
                }
            },
        };
        let category = optional(columns.category);
        let criterion = match cell(columns.criterion) {
            "" => {
                parsed.problem(line, "missing criterion");
                None
            }
            name => match match_criterion(checklist, category, name) {
                Some(i) => Some(i),
                None => {
                    parsed.problem(
                        line,
                        format!("criterion {name:?} matches no criterion of the checklist"),
                    );
                    None
                }
            },
        };
        let score = match cell(columns.score) {
            "" => {
                parsed.problem(line, "missing score");
                None
            }
            raw => match raw.replace(',', ".").parse::<f64>() {
                Ok(s) if s.is_finite() => Some(s),
                _ => {
                    parsed.problem(line, format!("score {raw:?} is not a number"));
                    None
                }
            },
        };
        if let (Some(s), Some(i)) = (score, criterion) {
            let max = checklist.criteria[i].max_score;
            if s < 0.0 || s > max + 1e-9 {
                parsed.problem(
                    line,
                    format!(
                        "score {s} is outside 0..{} of criterion {:?}",
                        crate::domain::format_score(max),
                        checklist.criteria[i].indicator
                    ),
                );
            }
        }
        let reviewed_at = match optional(columns.reviewed_at) {
            "" => None,
            raw => match date(raw) {
                Some(d) => Some(d),
                None => {
                    parsed.problem(
                        line,
                        format!("reviewed_at {raw:?} is not a date (YYYY-MM-DD or DD.MM.YYYY)"),
                    );
                    None
                }
            },
        };
        let reviewer = optional(columns.reviewer).to_string();
        if let (Some(call_id), Some(i)) = (call_id, criterion) {
            match first_line.get(&(call_id, i, reviewer.clone())) {
                Some(first) => parsed.problem(
                    line,
                    format!(
                        "call {call_id}, criterion {:?}{} scored twice (first on line {first})",
                        checklist.criteria[i].indicator,
                        if reviewer.is_empty() {
                            String::new()
                        } else {
                            format!(", reviewer {reviewer:?}")
                        }
                    ),
                ),
                None => {
                    first_line.insert((call_id, i, reviewer.clone()), line);
                }
            }
        }
        if let (Some(call_id), Some(i), Some(score), false) =
            (call_id, criterion, score, parsed.errors.contains_key(&line))
        {
            let c = &checklist.criteria[i];
            parsed.rows.push(HumanScore {
                line,
                call_id,
                category: c.category.clone(),
                criterion: c.indicator.clone(),
                reviewer,
                score,
                reviewed_at,
            });
        }
    }
    parsed
}

/// `2025-08-07`, or `07.08.2025` as Russian Excel writes dates.
fn date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%d.%m.%Y"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Criterion;

    fn checklist() -> Checklist {
        Checklist {
            criteria: vec![
                Criterion::new("Приветствие", "Назвал имя и банк", 5.0),
                Criterion::new("Презентация", "Озвучил кредитный лимит", 2.5),
                Criterion::new("Завершение", "Назвал имя и банк", 1.0),
            ],
            custom_instructions: String::new(),
        }
    }

    fn messages(p: &ParsedHumanScores) -> String {
        p.errors()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn semicolons_a_bom_and_the_checklist_spelling() {
        let text = "\u{feff}call_id;category;criterion;score;reviewer;reviewed_at\r\n\
                    101;приветствие;назвал ИМЯ и банк.;4;Орлова;2025-08-08\r\n\
                    101;;Озвучил кредитный лемит;2,5;Орлова;08.08.2025\r\n\
                    101;Завершение;Назвал имя и банк;1;;\r\n";
        let p = parse(text.as_bytes(), &checklist());
        assert!(p.is_valid(), "{}", messages(&p));
        let got: Vec<(i64, &str, &str, &str, f64)> = p
            .rows
            .iter()
            .map(|r| {
                (
                    r.call_id,
                    r.category.as_str(),
                    r.criterion.as_str(),
                    r.reviewer.as_str(),
                    r.score,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (101, "Приветствие", "Назвал имя и банк", "Орлова", 4.0),
                (101, "Презентация", "Озвучил кредитный лимит", "Орлова", 2.5),
                (101, "Завершение", "Назвал имя и банк", "", 1.0),
            ]
        );
        let d = NaiveDate::from_ymd_opt(2025, 8, 8);
        assert_eq!(p.rows[0].reviewed_at, d);
        assert_eq!(p.rows[1].reviewed_at, d);
    }

    #[test]
    fn every_bad_line_is_named_with_its_number() {
        let text = "call_id,criterion,score,reviewer\n\
                    1,Назвал имя и банк,5,А\n\
                    ,Назвал имя и банк,5,А\n\
                    x,Назвал имя и банк,5,А\n\
                    2,Улыбался голосом,5,А\n\
                    3,Назвал имя и банк,пять,А\n\
                    4,Озвучил кредитный лимит,3,А\n\
                    1,Назвал имя и банк,4,А\n\
                    1,Назвал имя и банк,4,Б\n\
                    5,,,\n\
                    6,Назвал имя и банк,1,А,лишнее\n";
        let p = parse(text.as_bytes(), &checklist());
        let m = messages(&p);
        for expected in [
            "line 3: missing call_id",
            "line 4: call_id \"x\" is not a positive integer",
            "line 5: criterion \"Улыбался голосом\" matches no criterion of the checklist",
            "line 6: score \"пять\" is not a number",
            "line 7: score 3 is outside 0..2.5 of criterion \"Озвучил кредитный лимит\"",
            "line 8: call 1, criterion \"Назвал имя и банк\", reviewer \"А\" scored twice (first on line 2)",
            "line 10: missing criterion; missing score",
            "line 11: 5 cells, but the header has 4 columns",
        ] {
            assert!(m.contains(expected), "{expected:?} not in:\n{m}");
        }
        let lines: Vec<u64> = p.errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 10, 11], "{m}");
        let kept: Vec<u64> = p.rows.iter().map(|r| r.line).collect();
        assert_eq!(
            kept,
            [2, 9],
            "another reviewer may score the same criterion"
        );
    }

    #[test]
    fn header_problems_and_empty_files() {
        let p = parse(b"call,criterion,score\n", &checklist());
        let m = messages(&p);
        assert!(m.contains("line 1: unknown column \"call\""), "{m}");
        assert!(m.contains("missing column \"call_id\""), "{m}");
        assert!(messages(&parse(b"", &checklist())).starts_with("line 1: the file is empty"));
        let p = parse(
            "call_id,criterion,score,reviewed_at\n1,Назвал имя и банк,1,вчера\n".as_bytes(),
            &checklist(),
        );
        assert!(messages(&p).contains("line 2: reviewed_at \"вчера\" is not a date"));
    }
}
