//! Operator name normalisation and matching against the `operators` directory.
//!
//! T-Bank lists a call's operator by full name (`operatorUserFullName`), sometimes with
//! noise around it: "Оператор ТП Иванова Анна", "Продавец-консультант Петров Пётр",
//! "Иванова Анна, логист", "ИП Сидоров С.", "Менеджер Петров Пётр (ООО Ромашка)". The
//! directory's `full_name` may carry such noise too. No word list can name every job
//! title, so a match does not depend on one: a person is found when a surname and a first
//! name (or its initial) stand next to each other on both sides, in either order, and
//! point at exactly one person. No I/O here.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Words that describe a job or a place, not a person. Compared after lower-casing and
/// ё→е. Only a preference: word pairs without them are tried first, and they are left out
/// of the whole-name key; a word missing here is just another word.
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

/// Endings of female patronymics ("Сергеевна", "Ильинична"); no Russian surname ends so.
const FEMALE_PATRONYMIC_ENDINGS: &[&str] = &["овна", "евна", "ична"];

/// Endings of male patronymics ("Петрович", "Ильич", colloquial "Иваныч"). Surnames end so
/// too (Абрамович, Бабич), so such a word counts as a patronymic only right after a
/// surname and a first name.
const MALE_PATRONYMIC_ENDINGS: &[&str] = &["ич", "ыч"];

/// Turkic patronymic markers after the father's name: "Алиев Рашид Ильхам оглы".
const PATRONYMIC_MARKERS: &[&str] = &["оглы", "кызы", "улы", "уулу"];

/// One word of a name: lower case, ё→е.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    /// One of JOB_WORDS, or a number ("2 линии", "группа 3"): not part of a person's name.
    job: bool,
    /// Part of a patronymic: "сергеевна", "ильич", the "а" of "И.А.", "ильхам оглы".
    patronymic: bool,
}

impl Word {
    fn is_initial(&self) -> bool {
        self.text.chars().count() == 1
    }

    fn initial(&self) -> char {
        self.text.chars().next().unwrap_or(' ')
    }
}

/// A name split into words, with what can be told without the directory.
#[derive(Debug)]
struct Name {
    words: Vec<Word>,
    /// Index of the surname when a patronymic right after "surname first-name" shows
    /// where the person's name is: everything else is noise then.
    anchor: Option<usize>,
    /// The patronymic (or its initial), if the name has one.
    patronymic: Option<String>,
}

impl Name {
    fn parse(raw: &str) -> Name {
        let folded = raw.to_lowercase().replace('ё', "е");
        let tokens = tokenize(&folded);
        let mut texts: Vec<String> = Vec::new();
        let mut skip_next = false;
        for token in &tokens {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            match token {
                Token::Aside(_) => {}
                Token::Word(w) if COMPANY_FORMS.contains(&w.as_str()) => skip_next = true,
                Token::Word(w) if PERSON_FORMS.contains(&w.as_str()) => {}
                Token::Word(w) => texts.push(w.clone()),
            }
        }
        if texts.iter().all(|w| JOB_WORDS.contains(&w.as_str())) {
            // "(Иванова Анна)", "Оператор (Иванова Анна)": the aside was the name after all.
            texts = tokens
                .iter()
                .filter_map(|t| match t {
                    Token::Aside(ws) => Some(ws.clone()),
                    Token::Word(_) => None,
                })
                .flatten()
                .filter(|w| {
                    !COMPANY_FORMS.contains(&w.as_str()) && !PERSON_FORMS.contains(&w.as_str())
                })
                .collect();
        }
        let mut words: Vec<Word> = texts
            .into_iter()
            .map(|text| Word {
                job: JOB_WORDS.contains(&text.as_str()) || text.chars().any(|c| c.is_numeric()),
                text,
                patronymic: false,
            })
            .collect();

        for i in 0..words.len() {
            let text = words[i].text.clone();
            let text = text.as_str();
            let len = text.chars().count();
            let is_patronymic = if words[i].is_initial() {
                // "И.А.": the initial after the first name's initial is the patronymic's.
                i >= 1 && words[i - 1].is_initial()
            } else if PATRONYMIC_MARKERS.contains(&text) {
                if i >= 1 && !words[i - 1].job && !words[i - 1].is_initial() {
                    words[i - 1].patronymic = true;
                    true
                } else {
                    false
                }
            } else if len >= 5 && FEMALE_PATRONYMIC_ENDINGS.iter().any(|e| text.ends_with(e)) {
                true
            } else {
                len >= 4
                    && MALE_PATRONYMIC_ENDINGS.iter().any(|e| text.ends_with(e))
                    && i >= 2
                    && plausible_name_pair(&words[i - 2], &words[i - 1])
            };
            words[i].patronymic = is_patronymic;
        }

        let start = words.iter().position(|w| w.patronymic);
        let anchor = start
            .filter(|&p| p >= 2 && plausible_name_pair(&words[p - 2], &words[p - 1]))
            .map(|p| p - 2);
        let patronymic = start.map(|p| {
            words[p..]
                .iter()
                .take_while(|w| w.patronymic)
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        });
        Name {
            words,
            anchor,
            patronymic,
        }
    }

    /// Adjacent word pairs that may be "surname first-name" (either order), as index
    /// pairs in name order. With an anchor, only the anchored pair. Otherwise pairs with a
    /// patronymic are out (the patronymic's initials are skipped, so "И.А. Орлова" pairs
    /// "и" with "орлова"), and of the rest the most name-like kind that exists: pairs with
    /// a known first name and no job word, then pairs without job words, then all.
    fn pairs(&self, first_names: &HashSet<String>) -> Vec<(usize, usize)> {
        if let Some(a) = self.anchor {
            return vec![(a, a + 1)];
        }
        let w = &self.words;
        let sequence: Vec<usize> = (0..w.len())
            .filter(|&i| !(w[i].patronymic && w[i].is_initial()))
            .collect();
        let all: Vec<(usize, usize)> = sequence
            .windows(2)
            .map(|p| (p[0], p[1]))
            .filter(|&(a, b)| !w[a].patronymic && !w[b].patronymic)
            .filter(|&(a, b)| !(w[a].is_initial() && w[b].is_initial()))
            .collect();
        let no_job = |&(a, b): &(usize, usize)| !w[a].job && !w[b].job;
        let known_first = |&(a, b): &(usize, usize)| {
            !w[a].is_initial()
                && !w[b].is_initial()
                && (first_names.contains(&w[a].text) || first_names.contains(&w[b].text))
        };
        let best: Vec<(usize, usize)> = all
            .iter()
            .copied()
            .filter(|p| no_job(p) && known_first(p))
            .collect();
        if !best.is_empty() {
            return best;
        }
        let good: Vec<(usize, usize)> = all.iter().copied().filter(no_job).collect();
        if !good.is_empty() {
            return good;
        }
        all
    }

    /// The whole name for exact matching: the anchored or only name-like pair, else every
    /// word but job words and the patronymic.
    fn key(&self, pairs: &[(usize, usize)]) -> String {
        let w = &self.words;
        match pairs {
            [(a, b)] if !w[*a].job && !w[*b].job => format!("{} {}", w[*a].text, w[*b].text),
            _ => w
                .iter()
                .filter(|x| !x.job && !x.patronymic)
                .map(|x| x.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Which word of a full pair may be the surname, as (surname, first name): the
    /// anchor says; else a known first name says; else either.
    fn orientations(
        &self,
        (a, b): (usize, usize),
        first_names: &HashSet<String>,
    ) -> Vec<(usize, usize)> {
        if self.anchor == Some(a) {
            return vec![(a, b)];
        }
        match (
            first_names.contains(&self.words[a].text),
            first_names.contains(&self.words[b].text),
        ) {
            (false, true) => vec![(a, b)],
            (true, false) => vec![(b, a)],
            _ => vec![(a, b), (b, a)],
        }
    }
}

/// Whether two words right before a patronymic can be "surname first-name".
fn plausible_name_pair(surname: &Word, first: &Word) -> bool {
    !surname.job && !first.job && !surname.patronymic && !first.patronymic && !surname.is_initial()
}

/// A name reduced for matching: lower case, ё→е, punctuation gone, job words, company
/// names, legal forms and the patronymic dropped, then the first two remaining words
/// (surname and first name), or the one word if only one remains.
///
/// Text in quotes or brackets is dropped as a company's or department's name, unless
/// nothing else is left.
pub fn normalize_name(raw: &str) -> String {
    Name::parse(raw)
        .words
        .iter()
        .filter(|w| !w.job && !w.patronymic)
        .take(2)
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether two patronymics may belong to one person: missing on either side, equal, or
/// one is the other's initial.
fn patronymics_agree(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => {
            let is_initial = |x: &str| x.chars().count() == 1;
            a == b || (is_initial(a) && b.starts_with(a)) || (is_initial(b) && a.starts_with(b))
        }
    }
}

/// What the directory says about a T-Bank operator name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Exactly one person: their directory id.
    One(i64),
    /// Nobody fits.
    Unknown,
    /// Several people fit, so nobody is chosen: their `(id, full_name)`, by id.
    Ambiguous(Vec<(i64, String)>),
}

impl Match {
    pub fn id(&self) -> Option<i64> {
        match self {
            Match::One(id) => Some(*id),
            Match::Unknown | Match::Ambiguous(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: i64,
    full_name: String,
    /// See `Name::key`.
    key: String,
    /// The key's words sorted: rows with the same identity and agreeing patronymics are
    /// one person listed twice, not namesakes.
    identity: Vec<String>,
    patronymic: Option<String>,
    department_id: Option<i64>,
}

/// The `operators` directory, ready for lookups by T-Bank's operator name.
#[derive(Debug)]
pub struct Directory {
    entries: Vec<Entry>,
    by_key: HashMap<String, Vec<usize>>,
    /// By the key's first word, for a name that is a surname alone on one side.
    by_surname: HashMap<String, Vec<usize>>,
    /// By a name pair's two full words, sorted (so either order finds it).
    by_pair: HashMap<(String, String), Vec<usize>>,
    /// By (surname, first name's initial), for T-Bank names with an initial.
    by_initial: HashMap<(String, char), Vec<usize>>,
    /// The same for directory names that give only an initial ("Белов А."), for T-Bank
    /// names with a full first name.
    initial_only: HashMap<(String, char), Vec<usize>>,
    /// Words the directory itself shows to be first names: the word right before a
    /// patronymic. They tell a name pair from a job title next to a surname.
    first_names: HashSet<String>,
    department_id: i64,
    /// Every T-Bank name looked up so far: a day repeats each name many times, and a name
    /// that fits several people is warned about once.
    seen: Mutex<HashMap<String, Match>>,
}

impl Directory {
    /// `rows` are `(id, full_name, department_id)` from `operators`; `department_id` is the
    /// run's department, preferred when a name fits people in several departments.
    pub fn new<I, S>(rows: I, department_id: i64) -> Directory
    where
        I: IntoIterator<Item = (i64, S, Option<i64>)>,
        S: AsRef<str>,
    {
        let parsed: Vec<(i64, String, Option<i64>, Name)> = rows
            .into_iter()
            .map(|(id, full_name, d)| {
                let name = Name::parse(full_name.as_ref());
                (id, full_name.as_ref().to_string(), d, name)
            })
            .collect();
        let first_names: HashSet<String> = parsed
            .iter()
            .filter_map(|(_, _, _, name)| {
                let first = &name.words[name.anchor? + 1];
                (!first.is_initial()).then(|| first.text.clone())
            })
            .collect();
        let mut dir = Directory {
            entries: Vec::new(),
            by_key: HashMap::new(),
            by_surname: HashMap::new(),
            by_pair: HashMap::new(),
            by_initial: HashMap::new(),
            initial_only: HashMap::new(),
            first_names,
            department_id,
            seen: Mutex::new(HashMap::new()),
        };
        for (id, full_name, department, name) in parsed {
            let pairs = name.pairs(&dir.first_names);
            let key = name.key(&pairs);
            let Some(surname) = key.split(' ').next().filter(|s| !s.is_empty()) else {
                continue;
            };
            let index = dir.entries.len();
            dir.by_surname
                .entry(surname.to_string())
                .or_default()
                .push(index);
            dir.by_key.entry(key.clone()).or_default().push(index);
            for &(a, b) in &pairs {
                let (wa, wb) = (&name.words[a], &name.words[b]);
                if wa.is_initial() || wb.is_initial() {
                    let (full, initial) = if wa.is_initial() { (wb, wa) } else { (wa, wb) };
                    let k = (full.text.clone(), initial.initial());
                    dir.by_initial.entry(k.clone()).or_default().push(index);
                    dir.initial_only.entry(k).or_default().push(index);
                    continue;
                }
                dir.by_pair
                    .entry(sorted_pair(&wa.text, &wb.text))
                    .or_default()
                    .push(index);
                for (s, f) in name.orientations((a, b), &dir.first_names) {
                    dir.by_initial
                        .entry((name.words[s].text.clone(), name.words[f].initial()))
                        .or_default()
                        .push(index);
                }
            }
            let mut identity: Vec<String> = key.split(' ').map(str::to_string).collect();
            identity.sort();
            dir.entries.push(Entry {
                id,
                full_name,
                key,
                identity,
                patronymic: name.patronymic,
                department_id: department,
            });
        }
        dir
    }

    /// Operators in the directory (rows whose name holds no name word are left out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The directory id of the operator T-Bank names `tbank_name`, if exactly one person
    /// fits (see `find`).
    pub fn lookup(&self, tbank_name: &str) -> Option<i64> {
        self.find(tbank_name).id()
    }

    /// Who T-Bank's `tbank_name` is in the directory.
    ///
    /// In order, the first step that finds anyone decides:
    /// 1. the same whole name (job words, company names and patronymics ignored), also
    ///    with two words swapped ("Анна Иванова" for "Иванова Анна");
    /// 2. a surname and a first name next to each other on both sides, in either order,
    ///    whatever words stand around them ("Продавец-консультант Иванова Анна",
    ///    "Иванова Анна, логист");
    /// 3. the same with a first name's initial on one side ("Орлова И." for
    ///    "Орлова Ирина", "Белов Андрей" for "Белов А.");
    /// 4. a surname alone on one side ("Сидоров" for "Сидоров Сергей").
    ///
    /// People whose patronymics disagree with T-Bank's are left out at every step. If
    /// some of those found are in the run's department, only they count. Rows with the
    /// same name and agreeing patronymics are one person listed twice (the lowest id is
    /// taken); different people are `Ambiguous`, warned about once per name.
    pub fn find(&self, tbank_name: &str) -> Match {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = seen.get(tbank_name) {
            return found.clone();
        }
        let found = self.resolve(tbank_name);
        if let Match::Ambiguous(people) = &found {
            let listed: Vec<String> = people
                .iter()
                .map(|(id, name)| format!("{name} (id {id})"))
                .collect();
            tracing::warn!(
                "operator name {tbank_name:?} fits {} people in the directory: {}; its calls \
                 are not scored until the names tell them apart",
                people.len(),
                listed.join(", ")
            );
        }
        seen.insert(tbank_name.to_string(), found.clone());
        found
    }

    fn resolve(&self, tbank_name: &str) -> Match {
        let name = Name::parse(tbank_name);
        let pairs = name.pairs(&self.first_names);
        let key = name.key(&pairs);
        if key.is_empty() {
            return Match::Unknown;
        }
        let key_words: Vec<&str> = key.split(' ').collect();
        let found = |ix: Option<&Vec<usize>>| ix.cloned().unwrap_or_default();

        let exact = found(self.by_key.get(&key));
        let swapped = match key_words[..] {
            [a, b] => found(self.by_key.get(&format!("{b} {a}"))),
            _ => Vec::new(),
        };

        let mut by_pair = Vec::new();
        let mut by_initial = Vec::new();
        for &(a, b) in &pairs {
            let (wa, wb) = (&name.words[a], &name.words[b]);
            if wa.is_initial() || wb.is_initial() {
                let (full, initial) = if wa.is_initial() { (wb, wa) } else { (wa, wb) };
                by_initial.extend(found(
                    self.by_initial.get(&(full.text.clone(), initial.initial())),
                ));
                continue;
            }
            by_pair.extend(found(self.by_pair.get(&sorted_pair(&wa.text, &wb.text))));
            for (s, f) in name.orientations((a, b), &self.first_names) {
                by_initial.extend(found(
                    self.initial_only
                        .get(&(name.words[s].text.clone(), name.words[f].initial())),
                ));
            }
        }

        let by_surname: Vec<usize> = match key_words[..] {
            [one] => found(self.by_surname.get(one)),
            [first, ..] => found(self.by_surname.get(first))
                .into_iter()
                .filter(|&i| !self.entries[i].key.contains(' '))
                .collect(),
            [] => Vec::new(),
        };

        [exact, swapped, by_pair, by_initial, by_surname]
            .into_iter()
            .find_map(|candidates| self.settle(candidates, name.patronymic.as_deref()))
            .unwrap_or(Match::Unknown)
    }

    /// One step's finds: `None` when nobody is left after the patronymic check.
    fn settle(&self, mut candidates: Vec<usize>, patronymic: Option<&str>) -> Option<Match> {
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .retain(|&i| patronymics_agree(patronymic, self.entries[i].patronymic.as_deref()));
        if candidates.is_empty() {
            return None;
        }
        let ours = |&i: &usize| self.entries[i].department_id == Some(self.department_id);
        if candidates.iter().any(ours) {
            candidates.retain(ours);
        }
        let entries: Vec<&Entry> = candidates.iter().map(|&i| &self.entries[i]).collect();
        let one_person = entries.iter().all(|a| {
            entries.iter().all(|b| {
                a.identity == b.identity
                    && patronymics_agree(a.patronymic.as_deref(), b.patronymic.as_deref())
            })
        });
        if one_person {
            return entries.iter().map(|e| e.id).min().map(Match::One);
        }
        let mut people: Vec<(i64, String)> = entries
            .iter()
            .map(|e| (e.id, e.full_name.clone()))
            .collect();
        people.sort();
        Some(Match::Ambiguous(people))
    }
}

fn sorted_pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
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

    /// A department's directory as HR keeps it: mostly "surname first-name patronymic",
    /// a few without a patronymic, some with a job title, namesakes.
    const STAFF: &[(i64, &str)] = &[
        (1, "Иванова Анна Сергеевна"),
        (2, "Петров Пётр Ильич"),
        (3, "Логист Кузнецова Ольга Петровна"),
        (4, "Орлова Ирина Андреевна"),
        (5, "Сидоров Илья"),
        (6, "Римская-Корсакова Анна Петровна"),
        (7, "Семёнов Фёдор Алексеевич"),
        (8, "Смирнова Елена Викторовна"),
        (9, "Смирнова Екатерина Викторовна"),
        (10, "Абрамович Роман Аркадьевич"),
        (11, "Лукашевич Мария Олеговна"),
        (12, "Алиев Рашид Ильхам оглы"),
        (13, "Белов А."),
        (14, "Козлова Дарья"),
        (15, "Кассир Новикова Светлана"),
        (16, "Волков Андрей Николаевич"),
        (17, "Волкова Анна Николаевна"),
        (18, "Морозова Анна Игоревна"),
        (19, "Морозова Анна Олеговна"),
        (20, "Федоров Максим Юрьевич"),
        (21, "Зайцева Ольга"),
        (22, "Никитина Юлия Сергеевна"),
        (23, "Соколов Павел"),
        (24, "Павлов Сергей Иванович"),
        (25, "Старший смены Егорова Вера Павловна"),
    ];

    /// (T-Bank name, expected id) against `STAFF`.
    const AGAINST_STAFF: &[(&str, Option<i64>)] = &[
        // The whole name, case and ё/е.
        ("Иванова Анна Сергеевна", Some(1)),
        ("ИВАНОВА АННА", Some(1)),
        ("Петров Петр", Some(2)),
        ("Семенов Федор", Some(7)),
        // Job titles no list knows, before or after the name.
        ("Продавец-консультант Иванова Анна", Some(1)),
        ("Иванова Анна, логист", Some(1)),
        ("Водитель-экспедитор Петров Пётр Ильич", Some(2)),
        ("Мерчендайзер Сидоров Илья", Some(5)),
        ("Сидоров Илья — кладовщик склада №2", Some(5)),
        ("Оператор 2 линии Иванова Анна", Some(1)),
        ("Группа 3: Орлова И.", Some(4)),
        ("Козлова Дарья Михайловна, инспектор ОТК", Some(14)),
        ("Логист Абрамович Роман", Some(10)),
        ("Оператор Абрамович Роман", Some(10)),
        ("Специалист по возвратам Федоров Максим", Some(20)),
        ("Максим Федоров (отдел продаж)", Some(20)),
        // Titles on the directory's side.
        ("Кузнецова Ольга", Some(3)),
        ("Ольга Кузнецова, старший логист", Some(3)),
        ("Кузнецова Ольга Петровна (ООО Ромашка)", Some(3)),
        ("Новикова Светлана", Some(15)),
        ("Консультант Новикова Светлана", Some(15)),
        ("Егорова Вера", Some(25)),
        // The other order.
        ("Анна Иванова", Some(1)),
        ("Пётр Петров", Some(2)),
        ("Роман Абрамович", Some(10)),
        ("Мария Лукашевич", Some(11)),
        ("Павел Соколов", Some(23)),
        // Hyphenated surnames, patronymics on one side only, Turkic patronymics.
        ("Римская-Корсакова Анна", Some(6)),
        ("Лукашевич Мария", Some(11)),
        ("Сидоров Илья Викторович", Some(5)),
        ("Зайцева Ольга Ивановна", Some(21)),
        ("Алиев Рашид", Some(12)),
        ("Оператор КЦ Алиев Рашид Ильхам оглы", Some(12)),
        ("Волкова Анна", Some(17)),
        ("Волков Андрей", Some(16)),
        ("Павлов Сергей", Some(24)),
        // Initials, with and without dots, either side.
        ("Старший кассир смены Орлова И.", Some(4)),
        ("Орлова И", Some(4)),
        ("Орлова И.А.", Some(4)),
        ("И. А. Орлова", Some(4)),
        ("Супервайзер Римская-Корсакова А.П.", Some(6)),
        ("СЕМЁНОВ Ф.", Some(7)),
        ("Никитина Ю.С.", Some(22)),
        ("Белов Андрей", Some(13)),
        ("Андрей Белов, охранник", Some(13)),
        // A surname alone, when only one person carries it.
        ("Сидоров", Some(5)),
        ("Смирнова", None),
        // Namesakes: refuse to guess, unless the patronymic tells them apart.
        ("Смирнова Е.", None),
        ("Морозова Анна", None),
        ("Контролёр Морозова Анна", None),
        ("Морозова Анна Игоревна", Some(18)),
        ("Морозова А.О.", Some(19)),
        ("Смирнова Елена", Some(8)),
        // Only a surname, only a first name, or only a first name and patronymic shared.
        ("Иванова Мария", None),
        ("Петрова Анна", None),
        ("Смирнова Анна", None),
        ("Кассир Новикова Анна", None),
        ("Анна Сергеевна", None),
        ("Смирнова Анна Сергеевна", None),
        ("Кассир Иванова Мария Сергеевна", None),
        ("Петров Иван Ильич", None),
        ("Орлова Т.", None),
        ("Белов Сергей", None),
        // A patronymic that disagrees: another person of the same name.
        ("Петров Пётр Петрович", None),
        ("Орлова И.П.", None),
        // Nothing that names a person.
        ("", None),
        ("Оператор", None),
        ("ООО «Ромашка»", None),
    ];

    type Rows = &'static [(i64, &'static str)];

    /// (T-Bank name, directory, expected id) for directories built for one question.
    const OWN_DIRECTORY: &[(&str, Rows, Option<i64>)] = &[
        // Two people called Иванова Анна.
        (
            "Иванова Анна",
            &[
                (1, "Иванова Анна Сергеевна"),
                (2, "Иванова Анна Викторовна"),
            ],
            None,
        ),
        (
            "Продавец-консультант Иванова Анна",
            &[
                (1, "Иванова Анна Сергеевна"),
                (2, "Иванова Анна Викторовна"),
            ],
            None,
        ),
        // One person listed twice.
        (
            "Иванова Анна",
            &[(2, "Иванова Анна"), (1, "Иванова Анна Сергеевна")],
            Some(1),
        ),
        // Орлова Ирина and Орлова Инна.
        (
            "Старший кассир смены Орлова И.",
            &[(1, "Орлова Ирина"), (2, "Орлова Инна")],
            None,
        ),
        (
            "Старший кассир смены Орлова Ирина",
            &[(1, "Орлова Ирина"), (2, "Орлова Инна")],
            Some(1),
        ),
        // The directory in first-name order.
        ("Иванова Анна", &[(1, "Анна Иванова")], Some(1)),
        // A title next to the same surname on both sides is not a first name.
        (
            "Логист Кузнецова Анна",
            &[
                (1, "Логист Кузнецова Ольга"),
                (2, "Кузнецова Анна Петровна"),
            ],
            Some(2),
        ),
        (
            "Логист Кузнецова Ольга",
            &[
                (1, "Логист Кузнецова Ольга"),
                (2, "Кузнецова Анна Петровна"),
            ],
            Some(1),
        ),
        // A whole-name match wins over a pair that fits someone else too.
        (
            "Иванова Анна",
            &[(1, "Анна Иванова Петровна"), (2, "Иванова Анна")],
            Some(2),
        ),
    ];

    #[test]
    fn operator_names_match_whatever_words_surround_them() {
        let staff = Directory::new(STAFF.iter().map(|&(id, n)| (id, n, Some(1))), 1);
        assert_eq!(staff.len(), STAFF.len());
        let mut failures = Vec::new();
        for &(tbank, want) in AGAINST_STAFF {
            let got = staff.lookup(tbank);
            if got != want {
                failures.push(format!(
                    "{tbank:?} against STAFF: got {got:?}, want {want:?}"
                ));
            }
        }
        for &(tbank, rows, want) in OWN_DIRECTORY {
            let dir = Directory::new(rows.iter().map(|&(id, n)| (id, n, Some(1))), 1);
            let got = dir.lookup(tbank);
            if got != want {
                failures.push(format!(
                    "{tbank:?} against {rows:?}: got {got:?}, want {want:?}"
                ));
            }
        }
        let total = AGAINST_STAFF.len() + OWN_DIRECTORY.len();
        assert!(total >= 40, "{total} cases");
        assert!(
            failures.is_empty(),
            "{} of {total} cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn ambiguous_names_list_the_candidates() {
        let dir = Directory::new(
            vec![
                (7, "Орлова Инна", Some(1)),
                (3, "Орлова Ирина", Some(1)),
                (9, "Орлова Ирина", Some(2)),
            ],
            1,
        );
        let expected = Match::Ambiguous(vec![
            (3, "Орлова Ирина".to_string()),
            (7, "Орлова Инна".to_string()),
        ]);
        assert_eq!(dir.find("Орлова И."), expected);
        // Answered from the cache the second time: the same answer.
        assert_eq!(dir.find("Орлова И."), expected);
        assert_eq!(dir.lookup("Орлова И."), None);
        assert_eq!(dir.find("Орлова Ирина"), Match::One(3));
        assert_eq!(dir.find("Орлова Инга"), Match::Unknown);
        assert_eq!(Match::One(3).id(), Some(3));
        assert_eq!(expected.id(), None);
    }

    #[test]
    fn an_ambiguous_name_is_warned_about_once() {
        use std::io::Write;
        use std::sync::Arc;

        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let dir = Directory::new(
            vec![(1, "Орлова Ирина", Some(1)), (2, "Орлова Инна", Some(1))],
            1,
        );
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                assert_eq!(dir.lookup("Орлова И."), None);
                assert_eq!(dir.lookup("Орлова Ирина"), Some(1));
            }
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("WARN").count(), 1, "{text}");
        assert!(
            text.contains("\"Орлова И.\"")
                && text.contains("Орлова Ирина (id 1)")
                && text.contains("Орлова Инна (id 2)"),
            "{text}"
        );
    }

    #[test]
    fn patronymics_are_recognised_only_where_they_can_be() {
        let p = |raw: &str| Name::parse(raw).patronymic;
        assert_eq!(p("Иванова Анна Сергеевна").as_deref(), Some("сергеевна"));
        assert_eq!(p("Петров Пётр Ильич").as_deref(), Some("ильич"));
        assert_eq!(p("Орлова И.А.").as_deref(), Some("а"));
        assert_eq!(p("Алиев Рашид Ильхам оглы").as_deref(), Some("ильхам оглы"));
        // A surname that ends like a patronymic.
        assert_eq!(p("Абрамович Роман"), None);
        assert_eq!(p("Мария Лукашевич"), None);
        assert_eq!(p("Оператор Абрамович Роман"), None);
        assert_eq!(p("Орлова И."), None);
    }
}
