//! Operator name normalisation and matching against the `operators` directory.
//!
//! T-Bank lists a call's operator by full name (`operatorUserFullName`), sometimes with
//! noise around it: "Оператор ТП Иванова Анна", "Менеджер Петров Пётр (ООО Ромашка)",
//! "ИП Сидоров С.", "Компания: Кузнецова Ольга". Both that name and the directory's
//! `full_name` are reduced to "surname first-name" and compared. No I/O here.

use std::collections::HashMap;

/// Words that describe a job or a place, not a person. Compared after lower-casing and
/// ё→е.
const JOB_WORDS: &[&str] = &[
    "оператор",
    "операторы",
    "оператора",
    "оператор-консультант",
    "компания",
    "компании",
    "тп",
    "кц",
    "менеджер",
    "менеджера",
    "специалист",
    "специалиста",
    "сотрудник",
    "сотрудница",
    "агент",
    "консультант",
    "стажер",
    "старший",
    "ведущий",
    "главный",
    "супервайзер",
    "руководитель",
    "отдел",
    "отдела",
    "продаж",
    "группа",
    "поддержка",
    "поддержки",
    "колл-центр",
    "operator",
    "manager",
    "agent",
];

/// Legal forms of a company. The word after one (or the quoted name after one) is the
/// company's name and goes too: "ООО Ромашка", "АО «Вектор»".
const COMPANY_FORMS: &[&str] = &["ооо", "ао", "зао", "оао", "пао", "нко", "ано"];

/// A sole trader's form: what follows is a person's name, which stays ("ИП Сидоров С.").
const PERSON_FORMS: &[&str] = &["ип"];

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// Text in quotes or brackets: a company's or a department's name, not the person's.
    Aside(Vec<String>),
}

/// Splits a lower-cased, ё-folded name into words and quoted/bracketed asides.
/// Punctuation separates words; a hyphen inside a word stays (double surnames).
fn tokenize(text: &str) -> Vec<Token> {
    fn closing(c: char) -> Option<char> {
        match c {
            '(' => Some(')'),
            '[' => Some(']'),
            '{' => Some('}'),
            '«' => Some('»'),
            '"' => Some('"'),
            '“' => Some('”'),
            '„' => Some('“'),
            _ => None,
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(close) = closing(c)
            && let Some(len) = chars[i + 1..].iter().position(|&x| x == close)
        {
            let inner: String = chars[i + 1..i + 1 + len].iter().collect();
            tokens.push(Token::Aside(words(&inner)));
            i += len + 2;
            continue;
        }
        if c.is_alphanumeric() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || (chars[i] == '-' && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())))
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
            continue;
        }
        i += 1;
    }
    tokens
}

/// Plain words of a text: letters and digits, inner hyphens kept.
fn words(text: &str) -> Vec<String> {
    tokenize(text)
        .into_iter()
        .flat_map(|t| match t {
            Token::Word(w) => vec![w],
            Token::Aside(ws) => ws,
        })
        .collect()
}

/// A name reduced for matching: lower case, ё→е, punctuation gone, job words, company
/// names and legal forms dropped, then the first two remaining words (surname and first
/// name; the patronymic goes), or the one word if only one remains.
///
/// Text in quotes or brackets is dropped as a company's or department's name, unless
/// nothing else is left.
pub fn normalize_name(raw: &str) -> String {
    let folded = raw.to_lowercase().replace('ё', "е");
    let tokens = tokenize(&folded);
    let mut kept: Vec<String> = Vec::new();
    let mut skip_next = false;
    for token in &tokens {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        match token {
            Token::Aside(_) => {}
            Token::Word(w) if COMPANY_FORMS.contains(&w.as_str()) => skip_next = true,
            Token::Word(w) if PERSON_FORMS.contains(&w.as_str()) => {}
            Token::Word(w) if JOB_WORDS.contains(&w.as_str()) => {}
            Token::Word(w) => kept.push(w.clone()),
        }
    }
    if kept.is_empty() {
        // "(Иванова Анна)": the aside was the name after all.
        kept = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Aside(ws) => Some(ws.clone()),
                Token::Word(_) => None,
            })
            .flatten()
            .filter(|w| !is_noise(w))
            .collect();
    }
    kept.truncate(2);
    kept.join(" ")
}

fn is_noise(word: &str) -> bool {
    JOB_WORDS.contains(&word) || COMPANY_FORMS.contains(&word) || PERSON_FORMS.contains(&word)
}

#[derive(Debug, Clone)]
struct Entry {
    id: i64,
    /// Normalised name: "surname first-name".
    key: String,
    surname: String,
    first_name: Option<String>,
    department_id: Option<i64>,
}

/// The `operators` directory, ready for lookups by T-Bank's operator name.
#[derive(Debug, Clone)]
pub struct Directory {
    entries: Vec<Entry>,
    by_key: HashMap<String, Vec<usize>>,
    by_surname: HashMap<String, Vec<usize>>,
    department_id: i64,
}

impl Directory {
    /// `rows` are `(id, full_name, department_id)` from `operators`; `department_id` is the
    /// run's department, preferred when a name is shared.
    pub fn new<I, S>(rows: I, department_id: i64) -> Directory
    where
        I: IntoIterator<Item = (i64, S, Option<i64>)>,
        S: AsRef<str>,
    {
        let mut dir = Directory {
            entries: Vec::new(),
            by_key: HashMap::new(),
            by_surname: HashMap::new(),
            department_id,
        };
        for (id, full_name, operator_department) in rows {
            let key = normalize_name(full_name.as_ref());
            let mut parts = key.split(' ');
            let Some(surname) = parts.next().filter(|s| !s.is_empty()) else {
                continue;
            };
            let entry = Entry {
                id,
                surname: surname.to_string(),
                first_name: parts.next().map(str::to_string),
                key: key.clone(),
                department_id: operator_department,
            };
            let index = dir.entries.len();
            dir.by_key.entry(key).or_default().push(index);
            dir.by_surname
                .entry(entry.surname.clone())
                .or_default()
                .push(index);
            dir.entries.push(entry);
        }
        dir
    }

    /// Operators in the directory (rows whose name normalised to nothing are left out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The directory id of the operator T-Bank names `tbank_name`, if any.
    ///
    /// In order:
    /// 1. the same surname and first name (patronymic and noise ignored);
    /// 2. the same two words in the other order ("Анна Иванова" for "Иванова Анна");
    /// 3. a surname with an initial or without a first name on either side
    ///    ("Сидоров С." for "Сидоров Сергей", "Сидоров" for "Сидоров Сергей"), accepted
    ///    only when it points at one person: among the run's department's operators if any
    ///    match, else among all.
    ///
    /// When several directory rows carry the same name (a person listed twice, or
    /// namesakes), the one in the run's department wins; among equals, the lowest id.
    pub fn lookup(&self, tbank_name: &str) -> Option<i64> {
        let key = normalize_name(tbank_name);
        let mut parts = key.split(' ');
        let surname = parts.next().filter(|s| !s.is_empty())?;
        let first_name = parts.next();

        if let Some(found) = self.by_key.get(&key).and_then(|ix| self.pick(ix)) {
            return Some(found);
        }
        if let Some(first) = first_name
            && let Some(found) = self
                .by_key
                .get(&format!("{first} {surname}"))
                .and_then(|ix| self.pick(ix))
        {
            return Some(found);
        }
        let compatible: Vec<usize> = self
            .by_surname
            .get(surname)?
            .iter()
            .copied()
            .filter(|&i| first_names_agree(first_name, self.entries[i].first_name.as_deref()))
            .collect();
        let in_department: Vec<usize> = compatible
            .iter()
            .copied()
            .filter(|&i| self.entries[i].department_id == Some(self.department_id))
            .collect();
        let candidates = if in_department.is_empty() {
            compatible
        } else {
            in_department
        };
        let first_key = &self.entries[*candidates.first()?].key;
        if candidates
            .iter()
            .all(|&i| &self.entries[i].key == first_key)
        {
            self.pick(&candidates)
        } else {
            None
        }
    }

    /// The run's department first, then the lowest id.
    fn pick(&self, indexes: &[usize]) -> Option<i64> {
        indexes
            .iter()
            .map(|&i| &self.entries[i])
            .min_by_key(|e| (e.department_id != Some(self.department_id), e.id))
            .map(|e| e.id)
    }
}

/// Whether two first names may belong to one person: missing on either side, or one is
/// an initial of the other. Equal names never get here (the exact match took them).
fn first_names_agree(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => {
            let is_initial = |x: &str| x.chars().count() == 1;
            (is_initial(a) && b.starts_with(a)) || (is_initial(b) && a.starts_with(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_full_name_keeps_surname_and_first_name() {
        assert_eq!(normalize_name("Иванова Анна Сергеевна"), "иванова анна");
        assert_eq!(normalize_name("  ИВАНОВА   анна "), "иванова анна");
        assert_eq!(normalize_name("Иванова"), "иванова");
        assert_eq!(normalize_name(""), "");
        assert_eq!(normalize_name(" ,. "), "");
    }

    #[test]
    fn yo_becomes_ye() {
        assert_eq!(normalize_name("Пётр Семёнов"), "петр семенов");
        assert_eq!(normalize_name("ЁЛКИН ФЁДОР"), "елкин федор");
    }

    #[test]
    fn job_words_are_dropped() {
        assert_eq!(normalize_name("Оператор ТП Иванова Анна"), "иванова анна");
        assert_eq!(
            normalize_name("Компания: Кузнецова Ольга"),
            "кузнецова ольга"
        );
        assert_eq!(
            normalize_name("Старший менеджер отдела продаж Орлов Игорь"),
            "орлов игорь"
        );
        assert_eq!(normalize_name("Специалист - Смирнова Е.А."), "смирнова е");
    }

    #[test]
    fn company_names_and_legal_forms_are_dropped() {
        assert_eq!(
            normalize_name("Менеджер Петров Пётр (ООО Ромашка)"),
            "петров петр"
        );
        assert_eq!(normalize_name("ООО Ромашка Иванова Анна"), "иванова анна");
        assert_eq!(normalize_name("АО «Вектор» Иванова Анна"), "иванова анна");
        assert_eq!(
            normalize_name("Иванова Анна, ООО \"Ромашка и партнёры\""),
            "иванова анна"
        );
        assert_eq!(normalize_name("Петров Пётр ПАО Банк"), "петров петр");
    }

    #[test]
    fn sole_trader_keeps_the_person() {
        assert_eq!(normalize_name("ИП Сидоров С."), "сидоров с");
        assert_eq!(
            normalize_name("ИП Сидоров Сергей Иванович"),
            "сидоров сергей"
        );
    }

    #[test]
    fn double_surnames_keep_their_hyphen() {
        assert_eq!(
            normalize_name("Римская-Корсакова Анна Петровна"),
            "римская-корсакова анна"
        );
    }

    #[test]
    fn a_name_only_in_brackets_is_still_a_name() {
        assert_eq!(normalize_name("(Иванова Анна)"), "иванова анна");
        assert_eq!(normalize_name("Оператор (Иванова Анна)"), "иванова анна");
    }

    fn directory(department_id: i64) -> Directory {
        Directory::new(
            vec![
                (10, "Иванова Анна Сергеевна", Some(1)),
                (11, "Петров Пётр Петрович", Some(1)),
                (12, "Кузнецова Ольга", Some(2)),
                (13, "Сидоров Сергей Иванович", Some(1)),
                (14, "Орлов Игорь", None),
                (15, "   ", Some(1)),
            ],
            department_id,
        )
    }

    #[test]
    fn lookup_matches_through_noise_case_yo_and_patronymic() {
        let dir = directory(1);
        assert_eq!(dir.len(), 5);
        assert!(!dir.is_empty());
        assert_eq!(dir.lookup("Иванова Анна Сергеевна"), Some(10));
        assert_eq!(dir.lookup("Иванова Анна"), Some(10));
        assert_eq!(dir.lookup("ИВАНОВА АННА"), Some(10));
        assert_eq!(dir.lookup("Оператор ТП Иванова Анна"), Some(10));
        assert_eq!(dir.lookup("Менеджер Петров Петр (ООО Ромашка)"), Some(11));
        assert_eq!(dir.lookup("Компания: Кузнецова Ольга"), Some(12));
        assert_eq!(dir.lookup("Орлов Игорь Андреевич"), Some(14));
        assert_eq!(dir.lookup("Анна Иванова"), Some(10));
        assert_eq!(dir.lookup("Смирнова Анна"), None);
        assert_eq!(dir.lookup("Иванова Мария"), None);
        assert_eq!(dir.lookup(""), None);
    }

    #[test]
    fn lookup_by_initial_or_surname_alone_when_unambiguous() {
        let dir = directory(1);
        assert_eq!(dir.lookup("ИП Сидоров С."), Some(13));
        assert_eq!(dir.lookup("Сидоров"), Some(13));
        assert_eq!(dir.lookup("Сидоров П."), None);

        let dir = Directory::new(
            vec![
                (1, "Сидоров Сергей", Some(1)),
                (2, "Сидоров Семён", Some(2)),
                (3, "Сидоров Степан", Some(2)),
                (4, "Белов А.", Some(1)),
            ],
            2,
        );
        // Two different people in the run's department: refuse to guess.
        assert_eq!(dir.lookup("Сидоров С."), None);
        let dir_one = Directory::new(
            vec![
                (1, "Сидоров Сергей", Some(1)),
                (2, "Сидоров Семён", Some(2)),
            ],
            2,
        );
        // One in the run's department: that one.
        assert_eq!(dir_one.lookup("Сидоров С."), Some(2));
        // An initial in the directory matches a full first name from T-Bank.
        assert_eq!(dir.lookup("Белов Андрей"), Some(4));
    }

    #[test]
    fn shared_name_prefers_the_run_department_then_the_lowest_id() {
        let rows = vec![
            (30, "Смирнова Елена", Some(2)),
            (20, "Смирнова Елена Викторовна", None),
            (25, "Смирнова Алёна", Some(1)),
            (40, "Смирнова Елена", Some(1)),
            (35, "Смирнова Елена", Some(1)),
        ];
        assert_eq!(
            Directory::new(rows.clone(), 1).lookup("Смирнова Елена"),
            Some(35)
        );
        assert_eq!(
            Directory::new(rows.clone(), 2).lookup("Смирнова Елена"),
            Some(30)
        );
        assert_eq!(
            Directory::new(rows.clone(), 3).lookup("Смирнова Елена"),
            Some(20)
        );
        // ё/е folding makes Алёна a different name from Елена, never a namesake.
        assert_eq!(Directory::new(rows, 3).lookup("Смирнова Алена"), Some(25));
    }

    #[test]
    fn rows_may_hold_owned_strings() {
        let rows: Vec<(i64, String, Option<i64>)> = vec![(7, "Иванова Анна".to_string(), Some(1))];
        assert_eq!(Directory::new(rows, 1).lookup("иванова анна"), Some(7));
    }
}
