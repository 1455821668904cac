//! A1 ranges of the Sheets values API (`'Чек-лист отдел 1'!A:D`) and what Google
//! returns for them: the rectangle's rows with trailing empty cells and trailing empty
//! rows left out.

/// A parsed `[sheet!]cells` range. Columns are 0-based, rows 1-based; `None` = open end.
#[derive(Debug, PartialEq)]
pub(crate) struct A1Range {
    /// `None` when the range named no sheet (Google then reads the first one).
    pub(crate) sheet: Option<String>,
    pub(crate) first_col: Option<usize>,
    pub(crate) last_col: Option<usize>,
    pub(crate) first_row: Option<usize>,
    pub(crate) last_row: Option<usize>,
}

/// Splits a decoded range into its sheet name and cell part and parses the cells.
///
/// A sheet name may be quoted (`'It''s'!A1`, quotes doubled inside) or bare; a bare
/// name may contain spaces, as Google accepts. Without `!` the whole text is taken as a
/// sheet name when `is_sheet` says so, else as cells of the first sheet.
pub(crate) fn parse(range: &str, is_sheet: impl Fn(&str) -> bool) -> Option<A1Range> {
    let (sheet, cells) = if let Some(quoted) = range.strip_prefix('\'') {
        let (name, rest) = split_quoted(quoted)?;
        match rest {
            "" => (Some(name), None),
            _ => (Some(name), Some(rest.strip_prefix('!')?)),
        }
    } else if let Some((name, cells)) = range.rsplit_once('!') {
        (Some(name.to_string()), Some(cells))
    } else if is_sheet(range) {
        (Some(range.to_string()), None)
    } else {
        (None, Some(range))
    };
    let mut parsed = A1Range {
        sheet,
        first_col: None,
        last_col: None,
        first_row: None,
        last_row: None,
    };
    if let Some(cells) = cells {
        let (from, to) = cells.split_once(':').unwrap_or((cells, cells));
        (parsed.first_col, parsed.first_row) = parse_cell(from)?;
        (parsed.last_col, parsed.last_row) = parse_cell(to)?;
    }
    Some(parsed)
}

/// `It''s'!A1` (after the opening quote) → (`It's`, `!A1`).
fn split_quoted(s: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            name.push(c);
        } else if chars.peek().is_some_and(|(_, next)| *next == '\'') {
            chars.next();
            name.push('\'');
        } else {
            return Some((name, &s[i + 1..]));
        }
    }
    None
}

/// `B12` → (Some(1), Some(12)); `D` → (Some(3), None); `7` → (None, Some(7)).
fn parse_cell(cell: &str) -> Option<(Option<usize>, Option<usize>)> {
    let cell = cell.trim();
    let split = cell
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(cell.len());
    let (letters, digits) = cell.split_at(split);
    if letters.is_empty() && digits.is_empty() {
        return None;
    }
    let col = if letters.is_empty() {
        None
    } else {
        Some(column_index(letters)?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        Some(digits.parse::<usize>().ok().filter(|r| *r >= 1)?)
    };
    Some((col, row))
}

/// `A` → 0, `Z` → 25, `AA` → 26.
fn column_index(letters: &str) -> Option<usize> {
    letters
        .chars()
        .try_fold(0usize, |acc, c| {
            let digit = (c.to_ascii_uppercase() as usize).checked_sub('A' as usize)? + 1;
            acc.checked_mul(26)?.checked_add(digit)
        })?
        .checked_sub(1)
}

/// 0 → `A`, 26 → `AA`.
pub(crate) fn column_name(mut index: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).expect("ASCII letters")
}

/// What Google answers for `range` over `rows`: the echoed range (`'name'!A1:D7`, open
/// ends closed at the data's extent) and the values.
pub(crate) fn select(
    sheet: &str,
    rows: &[Vec<String>],
    range: &A1Range,
) -> (String, Vec<Vec<String>>) {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let first_col = range.first_col.unwrap_or(0);
    let last_col = range.last_col.unwrap_or(width - 1).max(first_col);
    let first_row = range.first_row.unwrap_or(1);
    let last_row = range.last_row.unwrap_or(rows.len().max(1)).max(first_row);
    let mut values: Vec<Vec<String>> = (first_row..=last_row)
        .map(|r| {
            let row = rows.get(r - 1).map(Vec::as_slice).unwrap_or_default();
            let mut cells: Vec<String> = (first_col..=last_col)
                .map(|c| row.get(c).cloned().unwrap_or_default())
                .collect();
            while cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            cells
        })
        .collect();
    while values.last().is_some_and(Vec::is_empty) {
        values.pop();
    }
    let echoed = format!(
        "'{}'!{}{}:{}{}",
        sheet.replace('\'', "''"),
        column_name(first_col),
        first_row,
        column_name(last_col),
        last_row
    );
    (echoed, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[&[&str]]) -> Vec<Vec<String>> {
        data.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn parses_quoted_bare_and_sheetless_ranges() {
        let any = |_: &str| false;
        let r = parse("Чек-лист отдел 1!A:D", any).unwrap();
        assert_eq!(r.sheet.as_deref(), Some("Чек-лист отдел 1"));
        assert_eq!((r.first_col, r.last_col), (Some(0), Some(3)));
        assert_eq!((r.first_row, r.last_row), (None, None));
        let r = parse("'It''s here'!B2:AA10", any).unwrap();
        assert_eq!(r.sheet.as_deref(), Some("It's here"));
        assert_eq!((r.first_col, r.last_col), (Some(1), Some(26)));
        assert_eq!((r.first_row, r.last_row), (Some(2), Some(10)));
        let r = parse("'Промпт'", any).unwrap();
        assert_eq!((r.sheet.as_deref(), r.first_col), (Some("Промпт"), None));
        let r = parse("Промпт", |s| s == "Промпт").unwrap();
        assert_eq!(r.sheet.as_deref(), Some("Промпт"));
        let r = parse("A1:B", any).unwrap();
        assert_eq!(r.sheet, None);
        assert!(parse("'unterminated!A:D", any).is_none());
        assert!(parse("Лист!A:Д", any).is_none());
        assert!(parse("Лист!A0", any).is_none());
    }

    #[test]
    fn column_names_round_trip() {
        for i in [0, 3, 25, 26, 51, 52, 701, 702] {
            assert_eq!(column_index(&column_name(i)), Some(i), "{i}");
        }
        assert_eq!(column_name(27), "AB");
    }

    #[test]
    fn selection_trims_like_google() {
        let data = rows(&[
            &["h1", "h2", "h3", "h4", "h5"],
            &["a", "", "c", ""],
            &[],
            &["", ""],
            &["x", "y"],
            &[],
            &["", "", "", "", "only E"],
        ]);
        let r = parse("'S'!A:D", |_| false).unwrap();
        let (echo, values) = select("S", &data, &r);
        assert_eq!(echo, "'S'!A1:D7");
        assert_eq!(
            values,
            rows(&[
                &["h1", "h2", "h3", "h4"],
                &["a", "", "c"],
                &[],
                &[],
                &["x", "y"]
            ])
        );
        let r = parse("S!B2:B", |_| false).unwrap();
        let (echo, values) = select("S", &data, &r);
        assert_eq!(echo, "'S'!B2:B7");
        assert_eq!(values, rows(&[&[], &[], &[], &["y"]]));
    }
}
