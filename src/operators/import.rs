//! The operator directory as a CSV file (`callq operators import`): parsing and validation,
//! no I/O. The whole file is checked before anything is written, and every bad line is
//! reported by its line number.
//!
//! Layout: a header row naming the columns `id`, `full_name`, `department_id` (required) and
//! `office`, `supervisor` (optional, names), in any order; then one operator per row. The
//! delimiter is `,` or `;` (Russian Excel writes `;`), told from the header row; a UTF-8 byte
//! order mark is skipped. Rows whose cells are all empty are skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::csv_file::{CsvFile, Header};

pub const REQUIRED_COLUMNS: [&str; 3] = ["id", "full_name", "department_id"];
pub const OPTIONAL_COLUMNS: [&str; 2] = ["office", "supervisor"];

/// One valid line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    pub line: u64,
    pub id: i32,
    pub full_name: String,
    pub department_id: i32,
    /// The office's name; `None` when the column is absent or the cell empty.
    pub office: Option<String>,
    /// The supervisor's full name; `None` when the column is absent or the cell empty.
    pub supervisor: Option<String>,
}

/// Everything wrong with one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub problems: Vec<String>,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problems.join("; "))
    }
}

impl LineError {
    /// Bad lines as an error message lists them, one indented line each.
    pub fn list(lines: &[LineError]) -> String {
        lines
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A parsed file: its valid rows, which optional columns it has, and its bad lines.
#[derive(Debug, Clone, Default)]
pub struct ParsedOperators {
    pub rows: Vec<OperatorRow>,
    /// The file has an `office` column: an empty cell clears the operator's office.
    pub has_office: bool,
    /// The file has a `supervisor` column: an empty cell clears the operator's supervisor.
    pub has_supervisor: bool,
    pub delimiter: u8,
    /// Department ids named on each line that has a readable one, valid or not otherwise,
    /// so an unknown department is reported even on a line with other problems.
    departments: Vec<(u64, i32)>,
    errors: BTreeMap<u64, Vec<String>>,
}

impl ParsedOperators {
    /// Every bad line, in line order.
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

    /// The distinct department ids the file names.
    pub fn department_ids(&self) -> Vec<i32> {
        let ids: BTreeSet<i32> = self.departments.iter().map(|(_, d)| *d).collect();
        ids.into_iter().collect()
    }

    /// Reports every line naming a department that is not in `known` (the `departments` table).
    pub fn check_departments(&mut self, known: &BTreeSet<i32>) {
        let unknown: Vec<(u64, i32)> = self
            .departments
            .iter()
            .copied()
            .filter(|(_, d)| !known.contains(d))
            .collect();
        for (line, d) in unknown {
            self.problem(line, format!("department_id {d} is not in `departments`"));
        }
        let bad: BTreeSet<u64> = self.errors.keys().copied().collect();
        self.rows.retain(|r| !bad.contains(&r.line));
    }

    fn problem(&mut self, line: u64, message: impl Into<String>) {
        self.errors.entry(line).or_default().push(message.into());
    }
}

/// Parses and validates the file's bytes. Problems are collected in `ParsedOperators::errors`, never
/// returned early, so the user sees every bad line at once.
pub fn parse(bytes: &[u8]) -> ParsedOperators {
    let mut parsed = ParsedOperators {
        delimiter: b',',
        ..ParsedOperators::default()
    };
    let file = match CsvFile::decode(bytes) {
        Ok(f) => f,
        Err((line, problem)) => {
            parsed.problem(line, problem);
            return parsed;
        }
    };
    parsed.delimiter = file.delimiter;
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
    parsed.has_office = columns.office.is_some();
    parsed.has_supervisor = columns.supervisor.is_some();

    let mut first_line_of_id: HashMap<i32, u64> = HashMap::new();
    for row in file.rows(records, &header) {
        let (line, record) = match row {
            Ok(row) => row,
            Err((line, problem)) => {
                parsed.problem(line, problem);
                continue;
            }
        };
        let cell = |i: usize| record.get(i).map(str::trim).unwrap_or("");
        let optional = |i: Option<usize>| i.map(cell).filter(|v| !v.is_empty()).map(str::to_string);

        let id = match integer(cell(columns.id)) {
            Integer::Missing => {
                parsed.problem(line, "missing id");
                None
            }
            Integer::Bad(raw) => {
                parsed.problem(line, format!("id {raw:?} is not a positive integer"));
                None
            }
            Integer::Ok(id) => Some(id),
        };
        let full_name = cell(columns.full_name).to_string();
        if full_name.is_empty() {
            parsed.problem(line, "empty full_name");
        }
        let department_id = match integer(cell(columns.department_id)) {
            Integer::Missing => {
                parsed.problem(line, "missing department_id");
                None
            }
            Integer::Bad(raw) => {
                parsed.problem(
                    line,
                    format!("department_id {raw:?} is not a positive integer"),
                );
                None
            }
            Integer::Ok(d) => Some(d),
        };
        if let Some(d) = department_id {
            parsed.departments.push((line, d));
        }
        if let Some(id) = id {
            match first_line_of_id.get(&id) {
                Some(first) => {
                    parsed.problem(line, format!("duplicate id {id} (first on line {first})"))
                }
                None => {
                    first_line_of_id.insert(id, line);
                }
            }
        }
        if let (Some(id), Some(department_id), false) =
            (id, department_id, parsed.errors.contains_key(&line))
        {
            parsed.rows.push(OperatorRow {
                line,
                id,
                full_name,
                department_id,
                office: optional(columns.office),
                supervisor: optional(columns.supervisor),
            });
        }
    }
    parsed
}

/// Where each column is in a row.
struct Columns {
    id: usize,
    full_name: usize,
    department_id: usize,
    office: Option<usize>,
    supervisor: Option<usize>,
}

impl Columns {
    fn of(header: &Header) -> Columns {
        let at = &header.at;
        Columns {
            id: at["id"],
            full_name: at["full_name"],
            department_id: at["department_id"],
            office: at.get("office").copied(),
            supervisor: at.get("supervisor").copied(),
        }
    }
}

enum Integer<'a> {
    Missing,
    Bad(&'a str),
    Ok(i32),
}

fn integer(raw: &str) -> Integer<'_> {
    if raw.is_empty() {
        return Integer::Missing;
    }
    match raw.parse::<i32>() {
        Ok(n) if n > 0 => Integer::Ok(n),
        _ => Integer::Bad(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &ParsedOperators) -> Vec<u64> {
        p.errors().iter().map(|e| e.line).collect()
    }

    fn messages(p: &ParsedOperators) -> String {
        p.errors()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_plain_file_with_commas() {
        let p = parse(
            "id,full_name,department_id\n\
             5512,Иванова Анна Сергеевна,1\n\
             5513, ПЕТРОВ ИВАН ,2\n"
                .as_bytes(),
        );
        assert!(p.is_valid(), "{}", messages(&p));
        assert_eq!(p.delimiter, b',');
        assert!(!p.has_office && !p.has_supervisor);
        assert_eq!(
            p.rows,
            vec![
                OperatorRow {
                    line: 2,
                    id: 5512,
                    full_name: "Иванова Анна Сергеевна".into(),
                    department_id: 1,
                    office: None,
                    supervisor: None,
                },
                OperatorRow {
                    line: 3,
                    id: 5513,
                    full_name: "ПЕТРОВ ИВАН".into(),
                    department_id: 2,
                    office: None,
                    supervisor: None,
                },
            ]
        );
        assert_eq!(p.department_ids(), vec![1, 2]);
    }

    #[test]
    fn russian_excel_semicolons_and_a_bom() {
        let text = "\u{feff}id;full_name;department_id;office;supervisor\r\n\
                    5512;Иванова, Анна;1;Москва, Тверская;Орлова Ирина\r\n\
                    5513;\"Петров; Иван\";1;;\r\n";
        let p = parse(text.as_bytes());
        assert!(p.is_valid(), "{}", messages(&p));
        assert_eq!(p.delimiter, b';');
        assert!(p.has_office && p.has_supervisor);
        assert_eq!(
            p.rows[0].id, 5512,
            "the BOM is not part of the first column"
        );
        assert_eq!(p.rows[0].full_name, "Иванова, Анна");
        assert_eq!(p.rows[0].office.as_deref(), Some("Москва, Тверская"));
        assert_eq!(p.rows[0].supervisor.as_deref(), Some("Орлова Ирина"));
        assert_eq!(p.rows[1].full_name, "Петров; Иван");
        assert_eq!(p.rows[1].office, None);
        assert_eq!(p.rows[1].supervisor, None);
    }

    #[test]
    fn columns_may_come_in_any_order_and_any_case() {
        let p =
            parse(" Full_Name , SUPERVISOR,Department_ID,ID\nИванова Анна,Орлова,3,7\n".as_bytes());
        assert!(p.is_valid(), "{}", messages(&p));
        assert!(!p.has_office && p.has_supervisor);
        assert_eq!(p.rows[0].id, 7);
        assert_eq!(p.rows[0].department_id, 3);
        assert_eq!(p.rows[0].supervisor.as_deref(), Some("Орлова"));
    }

    #[test]
    fn every_kind_of_bad_line_is_reported_with_its_number() {
        let text = "id,full_name,department_id\n\
                    1,Иванова Анна,1\n\
                    ,Петров Иван,1\n\
                    abc,Сидорова Елена,1\n\
                    4,,1\n\
                    5,Орлов Игорь,один\n\
                    1,Иванова Анна (дубль),1\n\
                    7,Кузнецова Ольга,\n\
                    -8,Белов Андрей,1\n\
                    \n\
                    9,Смирнова Елена,1,лишнее\n\
                    10,Волков Павел,1\n";
        let p = parse(text.as_bytes());
        assert_eq!(lines(&p), vec![3, 4, 5, 6, 7, 8, 9, 11], "{}", messages(&p));
        let m = messages(&p);
        for expected in [
            "line 3: missing id",
            "line 4: id \"abc\" is not a positive integer",
            "line 5: empty full_name",
            "line 6: department_id \"один\" is not a positive integer",
            "line 7: duplicate id 1 (first on line 2)",
            "line 8: missing department_id",
            "line 9: id \"-8\" is not a positive integer",
            "line 11: 4 cells, but the header has 3 columns",
        ] {
            assert!(m.contains(expected), "{expected:?} not in:\n{m}");
        }
        let ids: Vec<i32> = p.rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 10], "only valid rows are kept");
    }

    #[test]
    fn several_problems_on_one_line_are_listed_together() {
        let p = parse("id;full_name;department_id\n;;x\n".as_bytes());
        assert_eq!(
            messages(&p),
            "line 2: missing id; empty full_name; department_id \"x\" is not a positive integer"
        );
    }

    #[test]
    fn unknown_departments_are_reported_per_line() {
        let mut p = parse(
            "id,full_name,department_id\n\
             1,Иванова Анна,1\n\
             2,Петров Иван,9\n\
             ,Сидорова Елена,9\n\
             4,Орлов Игорь,1\n"
                .as_bytes(),
        );
        assert_eq!(p.department_ids(), vec![1, 9]);
        p.check_departments(&BTreeSet::from([1]));
        assert_eq!(lines(&p), vec![3, 4]);
        let m = messages(&p);
        assert!(
            m.contains("line 3: department_id 9 is not in `departments`"),
            "{m}"
        );
        assert!(
            m.contains("line 4: missing id; department_id 9 is not in `departments`"),
            "{m}"
        );
        let ids: Vec<i32> = p.rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 4]);
    }

    #[test]
    fn header_problems() {
        let p = parse("id,name,department_id,office\n1,Иванова Анна,1,\n".as_bytes());
        assert_eq!(lines(&p), vec![1]);
        let m = messages(&p);
        assert!(m.contains("unknown column \"name\""), "{m}");
        assert!(m.contains("missing column \"full_name\""), "{m}");

        let p = parse("id,full_name,department_id,id\n".as_bytes());
        assert!(messages(&p).contains("column \"id\" appears twice"));

        let p = parse(b"");
        assert!(messages(&p).starts_with("line 1: the file is empty"));
        let p = parse("\u{feff}\n\n".as_bytes());
        assert!(messages(&p).starts_with("line 1: the file is empty"));
    }

    #[test]
    fn a_trailing_delimiter_and_empty_rows_are_tolerated() {
        let p = parse(
            "id;full_name;department_id;\n1;Иванова Анна;1;\n;;;\n\n2;Петров Иван;1;\n".as_bytes(),
        );
        assert!(p.is_valid(), "{}", messages(&p));
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[1].line, 5);
    }

    #[test]
    fn cp1251_is_refused_with_a_hint() {
        // "Иванова" in Windows-1251.
        let mut bytes = b"id,full_name,department_id\n1,".to_vec();
        bytes.extend_from_slice(&[0xC8, 0xE2, 0xE0, 0xED, 0xEE, 0xE2, 0xE0]);
        bytes.extend_from_slice(b",1\n");
        let p = parse(&bytes);
        assert_eq!(lines(&p), vec![2]);
        assert!(messages(&p).contains("CSV UTF-8"), "{}", messages(&p));
        assert!(p.rows.is_empty());
    }

    #[test]
    fn line_numbers_count_blank_lines_and_crlf() {
        let p = parse("\r\n\r\nid;full_name;department_id\r\n\r\n1;Иванова Анна;1\r\n\r\n\r\n;Петров Иван;1\r\n".as_bytes());
        assert_eq!(lines(&p), vec![8], "{}", messages(&p));
        let p = parse("id,full_name\n".as_bytes());
        assert_eq!(lines(&p), vec![1]);
        let p = parse("\n\nid,full_name\n".as_bytes());
        assert_eq!(lines(&p), vec![3]);
    }

    #[test]
    fn line_numbers_count_quoted_line_breaks() {
        let p =
            parse("id,full_name,department_id\n1,\"Иванова\nАнна\",1\n,Петров Иван,1\n".as_bytes());
        assert_eq!(lines(&p), vec![4], "{}", messages(&p));
    }
}
