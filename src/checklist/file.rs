//! The `CRITERIA_FILE` source: a CSV file with the checklist sheet's layout, e.g. the sheet
//! exported as CSV (`examples/criteria.sample.csv` shows one).
//!
//! UTF-8, with or without a byte-order mark. The delimiter is `,`, or `;` when the header
//! line has more semicolons than commas (a Russian-locale spreadsheet saves CSV that way).
//! Rows may have any number of fields. The first empty row ends the checklist, whether it
//! is a blank line or a line of empty fields (`,,,`), as spreadsheets export it.

use std::path::Path;

use super::ChecklistError;
use super::layout::{self, Origin};
use crate::domain::Checklist;

/// Loads the checklist from a CSV file; the file source has no custom instructions.
pub fn load_file(path: &Path) -> Result<Checklist, ChecklistError> {
    let bytes = std::fs::read(path).map_err(|source| ChecklistError::FileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ChecklistError::FileFormat {
        path: path.to_path_buf(),
        message: format!(
            "not UTF-8 text (invalid byte at offset {}); save it as \"CSV UTF-8\"",
            e.utf8_error().valid_up_to()
        ),
    })?;
    let rows = csv_rows(&text).map_err(|message| ChecklistError::FileFormat {
        path: path.to_path_buf(),
        message,
    })?;
    let criteria = layout::parse_checklist(&Origin::File(path.to_path_buf()), &rows)
        .map_err(ChecklistError::Layout)?;
    Ok(Checklist {
        criteria,
        custom_instructions: String::new(),
    })
}

/// Rows of the CSV text as the Sheets API would give them, up to and including the first
/// blank line, which comes back as an empty row so the layout parser sees the end.
/// Blank lines before the header are ignored.
pub fn csv_rows(text: &str) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bytes = text.as_bytes();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(crate::csv_file::sniff_delimiter(text))
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let start = reader.position().byte() as usize;
        let more = reader
            .read_record(&mut record)
            .map_err(|e| match e.position() {
                Some(pos) => describe_csv_error(&e, pos),
                None => e.to_string(),
            })?;
        if !more {
            break;
        }
        if !rows.is_empty() && blank_line_before(bytes, start) {
            rows.push(Vec::new());
            break;
        }
        rows.push(
            record
                .iter()
                .map(|cell| crate::text::clean(cell).into_owned())
                .collect(),
        );
    }
    Ok(rows)
}

/// The csv crate skips blank lines silently, counting them into the next record: what it
/// consumed for that record starts with line terminators. The first of them may be the
/// `\n` finishing the previous record's `\r\n`; any other is a blank line.
fn blank_line_before(bytes: &[u8], start: usize) -> bool {
    let mut at = start;
    if bytes.get(at) == Some(&b'\n') && at > 0 && bytes[at - 1] == b'\r' {
        at += 1;
    }
    matches!(bytes.get(at), Some(b'\n' | b'\r'))
}

fn describe_csv_error(error: &csv::Error, pos: &csv::Position) -> String {
    format!("line {}: {error}", pos.line())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::{Severe, Severity};
    use std::io::Write;
    use std::path::PathBuf;

    fn write_temp(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        f.write_all(content).unwrap();
        f
    }

    fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn rows_keep_their_lengths_and_stop_at_a_blank_line() {
        let rows = csv_rows(
            "Показатель,Комментарий,Балл,Условия\n\
             Приветствие\n\
             Назвал имя,,\"2,5\"\n\
             \n\
             Мусор,,x\n",
        )
        .unwrap();
        assert_eq!(
            rows,
            strings(&[
                &["Показатель", "Комментарий", "Балл", "Условия"],
                &["Приветствие"],
                &["Назвал имя", "", "2,5"],
                &[],
            ])
        );
    }

    #[test]
    fn blank_line_detection_survives_crlf_and_multiline_fields() {
        let rows = csv_rows(
            "H,,,\r\nКат,,,\r\n\"Крит\",\"строка 1\r\nстрока 2\",5,\"a\r\n\r\nb\"\r\nКрит 2,,1,\r\n\r\nМусор\r\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 5, "{rows:?}");
        assert_eq!(rows[2][1], "строка 1\r\nстрока 2");
        assert_eq!(rows[2][3], "a\r\n\r\nb");
        assert_eq!(rows[3][0], "Крит 2");
        assert!(rows[4].is_empty());
    }

    #[test]
    fn nul_characters_are_removed_from_cells() {
        let rows = csv_rows("H\nК\0ат\nКрит\0,к\0,1\n").unwrap();
        assert_eq!(rows, strings(&[&["H"], &["Кат"], &["Крит", "к", "1"]]));
    }

    #[test]
    fn no_blank_line_means_no_terminator_row() {
        let rows = csv_rows("H\nКат\nКрит,,1").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2], vec!["Крит", "", "1"]);
    }

    #[test]
    fn blank_lines_before_the_header_are_ignored() {
        let rows = csv_rows("\n\r\nH\nКат\n").unwrap();
        assert_eq!(rows, strings(&[&["H"], &["Кат"]]));
    }

    #[test]
    fn leading_blank_line_after_header_ends_the_checklist() {
        let rows = csv_rows("H\n\nКат\nКрит,,1\n").unwrap();
        assert_eq!(rows, strings(&[&["H"], &[]]));
    }

    #[test]
    fn bom_and_semicolons_are_handled() {
        let rows = csv_rows("\u{feff}Показатель;Комментарий;Балл;Условия\nКат;;;\nКрит;к;2,5;у\n")
            .unwrap();
        assert_eq!(rows[0][0], "Показатель");
        assert_eq!(rows[2], vec!["Крит", "к", "2,5", "у"]);
    }

    #[test]
    fn loads_a_checklist_from_a_temp_file() {
        let file = write_temp(
            "\u{feff}Показатель,Комментарий,Макс. балл,Условия оценки\n\
             Приветствие,,,\n\
             Поздоровался и представился,Имя и компания,5,5 — всё; 0 — нет\n\
             Уточнил имя клиента,,\"2,5\",\n\
             ,,,\n\
             Это,уже,не,чек-лист\n"
                .as_bytes(),
        );
        let checklist = load_file(file.path()).unwrap();
        assert_eq!(checklist.criteria.len(), 2);
        assert_eq!(checklist.criteria[0].category, "Приветствие");
        assert_eq!(checklist.criteria[0].conditions, "5 — всё; 0 — нет");
        assert_eq!(checklist.criteria[1].max_score, 2.5);
        assert_eq!(checklist.custom_instructions, "");
    }

    #[test]
    fn layout_problems_name_the_file_row_and_cell() {
        let file = write_temp("H\nКат\nКрит,,десять\nКрит 2,,1\n".as_bytes());
        let err = load_file(file.path()).unwrap_err();
        assert_eq!(err.severity(), Severity::Input);
        let text = err.to_string();
        let expected = format!(
            "file \"{}\": row 3, cell C3: max score \"десять\" is not a number",
            file.path().display()
        );
        assert!(text.contains(&expected), "{text}");
    }

    #[test]
    fn unreadable_and_non_utf8_files_are_input_errors() {
        let err = load_file(Path::new("/nonexistent/criteria.csv")).unwrap_err();
        assert_eq!(err.severity(), Severity::Input);
        assert!(
            err.to_string().contains("\"/nonexistent/criteria.csv\""),
            "{err}"
        );

        // "Кат" in Windows-1251.
        let file = write_temp(b"H\n\xca\xe0\xf2\n");
        let err = load_file(file.path()).unwrap_err();
        assert_eq!(err.severity(), Severity::Input);
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    fn repo_file(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    }

    #[test]
    fn committed_fixture_parses() {
        let checklist = load_file(&repo_file("tests/fixtures/criteria.csv")).unwrap();
        assert_eq!(
            checklist.categories(),
            vec!["Приветствие", "Выявление потребностей", "Завершение"]
        );
        assert_eq!(checklist.criteria.len(), 5);
        assert_eq!(checklist.total_max(), 32.5);
    }

    #[test]
    fn example_for_users_parses() {
        let checklist = load_file(&repo_file("examples/criteria.sample.csv")).unwrap();
        let categories = checklist.categories();
        assert!((4..=5).contains(&categories.len()), "{categories:?}");
        assert!(
            checklist.criteria.len() >= 10,
            "{}",
            checklist.criteria.len()
        );
        assert!(checklist.criteria.iter().any(|c| c.max_score == 2.5));
        assert!(
            checklist
                .criteria
                .iter()
                .all(|c| !c.comment.is_empty() && !c.conditions.is_empty()),
            "every example criterion shows a comment and scoring conditions"
        );
    }
}
