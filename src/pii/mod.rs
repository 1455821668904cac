//! Personal data in transcripts: found and replaced by typed placeholders (`[ТЕЛЕФОН]`,
//! `[EMAIL]`, `[КАРТА]`, `[ПАСПОРТ]`, `[СНИЛС]`, `[ИНН]`) before a transcript leaves for the
//! model or is stored, so the model still sees that a number was given; and a keyed hash of
//! phone numbers for storing them without storing them. `privacy` is what the privacy
//! variables make of both for each call.
//!
//! What the scores depend on stays: prices and amounts, quantities, dates and times,
//! percentages, article and order numbers. Numbers are judged by their shape (how many
//! digits, how they are grouped, checksums) and by the nearest keyword before them
//! («телефон», «заказ», «артикул», «паспорт», «ИНН», …); a unit after them («руб», «%»,
//! «шт», …) leaves them alone whatever their shape.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use hmac::{Hmac, KeyInit, Mac};
use regex::Regex;
use sha2::Sha256;

mod privacy;

pub use privacy::{
    MIN_PHONE_HASH_KEY_LEN, PhoneHashKey, PhoneStore, PrivacySettings, TranscriptStore,
};

/// A kind of personal data the masker replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    Phone,
    Email,
    Card,
    Passport,
    Snils,
    Inn,
}

impl PiiKind {
    pub const ALL: [PiiKind; 6] = [
        PiiKind::Phone,
        PiiKind::Email,
        PiiKind::Card,
        PiiKind::Passport,
        PiiKind::Snils,
        PiiKind::Inn,
    ];

    /// What replaces it in the text.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Phone => "[ТЕЛЕФОН]",
            PiiKind::Email => "[EMAIL]",
            PiiKind::Card => "[КАРТА]",
            PiiKind::Passport => "[ПАСПОРТ]",
            PiiKind::Snils => "[СНИЛС]",
            PiiKind::Inn => "[ИНН]",
        }
    }

    /// Lower-case English name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Phone => "phone",
            PiiKind::Email => "email",
            PiiKind::Card => "card",
            PiiKind::Passport => "passport",
            PiiKind::Snils => "snils",
            PiiKind::Inn => "inn",
        }
    }
}

/// How many placeholders of each kind one text got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub phone: usize,
    pub email: usize,
    pub card: usize,
    pub passport: usize,
    pub snils: usize,
    pub inn: usize,
}

impl Counts {
    pub fn get(&self, kind: PiiKind) -> usize {
        match kind {
            PiiKind::Phone => self.phone,
            PiiKind::Email => self.email,
            PiiKind::Card => self.card,
            PiiKind::Passport => self.passport,
            PiiKind::Snils => self.snils,
            PiiKind::Inn => self.inn,
        }
    }

    pub fn total(&self) -> usize {
        PiiKind::ALL.iter().map(|k| self.get(*k)).sum()
    }

    fn add(&mut self, kind: PiiKind) {
        let slot = match kind {
            PiiKind::Phone => &mut self.phone,
            PiiKind::Email => &mut self.email,
            PiiKind::Card => &mut self.card,
            PiiKind::Passport => &mut self.passport,
            PiiKind::Snils => &mut self.snils,
            PiiKind::Inn => &mut self.inn,
        };
        *slot += 1;
    }
}

/// One piece of personal data: its kind and its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: PiiKind,
    pub range: Range<usize>,
}

/// The nearest keyword before a number says what the number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    /// Order, article, tracking, address, price…: not personal data.
    Veto,
    Phone,
    Card,
    Passport,
    /// «серия»: a passport's series, or a product series.
    Series,
    Snils,
    Inn,
}

/// Keywords, as word beginnings (so every case ending matches) and as whole words (short
/// ones, which as beginnings would match unrelated words: «арт» in «артист»). Lower case;
/// «ё» is written both ways.
const CUE_STEMS: &[(&str, Cue)] = &[
    ("заказ", Cue::Veto),
    ("артикул", Cue::Veto),
    ("трек", Cue::Veto),
    ("накладн", Cue::Veto),
    ("квитанц", Cue::Veto),
    ("штрих", Cue::Veto),
    ("модел", Cue::Veto),
    ("серийн", Cue::Veto),
    ("сертификат", Cue::Veto),
    ("индекс", Cue::Veto),
    ("почтов", Cue::Veto),
    ("код", Cue::Veto),
    ("промокод", Cue::Veto),
    ("сумм", Cue::Veto),
    ("стоимост", Cue::Veto),
    ("договор", Cue::Veto),
    ("счет", Cue::Veto),
    ("счёт", Cue::Veto),
    ("лицев", Cue::Veto),
    ("квартир", Cue::Veto),
    ("корпус", Cue::Veto),
    ("офис", Cue::Veto),
    ("улиц", Cue::Veto),
    ("склад", Cue::Veto),
    ("гаранти", Cue::Veto),
    ("талон", Cue::Veto),
    ("купон", Cue::Veto),
    ("телефон", Cue::Phone),
    ("мобильн", Cue::Phone),
    ("сотов", Cue::Phone),
    ("whatsapp", Cue::Phone),
    ("ватсап", Cue::Phone),
    ("вотсап", Cue::Phone),
    ("вацап", Cue::Phone),
    ("viber", Cue::Phone),
    ("вайбер", Cue::Phone),
    ("telegram", Cue::Phone),
    ("телеграм", Cue::Phone),
    ("звон", Cue::Phone),
    ("позвон", Cue::Phone),
    ("перезвон", Cue::Phone),
    ("набер", Cue::Phone),
    ("набра", Cue::Phone),
    ("связ", Cue::Phone),
    ("контактн", Cue::Phone),
    ("карт", Cue::Card),
    ("card", Cue::Card),
    ("visa", Cue::Card),
    ("виза", Cue::Card),
    ("mastercard", Cue::Card),
    ("мастеркард", Cue::Card),
    ("паспорт", Cue::Passport),
    ("снилс", Cue::Snils),
    ("страхов", Cue::Snils),
];
const CUE_WORDS: &[(&str, Cue)] = &[
    ("арт", Cue::Veto),
    ("ттн", Cue::Veto),
    ("чек", Cue::Veto),
    ("чека", Cue::Veto),
    ("чеку", Cue::Veto),
    ("цена", Cue::Veto),
    ("цене", Cue::Veto),
    ("цену", Cue::Veto),
    ("цены", Cue::Veto),
    ("ценой", Cue::Veto),
    ("кв", Cue::Veto),
    ("дом", Cue::Veto),
    ("дома", Cue::Veto),
    ("ул", Cue::Veto),
    ("тел", Cue::Phone),
    ("серия", Cue::Series),
    ("серии", Cue::Series),
    ("серию", Cue::Series),
    ("серией", Cue::Series),
    ("инн", Cue::Inn),
];

/// `word` in lower case.
fn cue_of(word: &str) -> Option<Cue> {
    CUE_WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .or_else(|| CUE_STEMS.iter().find(|(stem, _)| word.starts_with(stem)))
        .map(|(_, cue)| *cue)
}

/// Digits in groups, the way people and speech-to-text write phone and card numbers:
/// spaces, dashes, dots (without a following space: «15 000. 8 916…» is two sentences)
/// and brackets between groups, an optional `+` and `(` in front.
const RUN: &str = r"(?:\+[ \x{a0}]?)?\(?\d+(?:(?:[ \x{a0}]?[-–][ \x{a0}]?|\.|[ \x{a0}]?\)[ \x{a0}]?|[ \x{a0}]?\([ \x{a0}]?|[ \x{a0}])\d+)*";

/// A unit right after a number makes it an amount or a quantity, whatever its shape:
/// words starting so…
const UNIT_STEMS: &[&str] = &[
    "руб",
    "процент",
    "проц",
    "usd",
    "eur",
    "долл",
    "евро",
    "коп",
    "тыс",
    "млн",
    "млрд",
    "шт",
    "единиц",
    "метр",
    "сантиметр",
    "миллиметр",
    "кило",
    "грамм",
    "литр",
    "год",
    "час",
    "мин",
    "сек",
    "дн",
    "день",
    "недел",
    "месяц",
    "квадрат",
    "куб",
    "этаж",
    "позици",
    "упаков",
    "комплект",
    "градус",
];
/// …these whole words…
const UNIT_WORDS: &[&str] = &[
    "р",
    "ед",
    "см",
    "мм",
    "м",
    "кг",
    "гр",
    "г",
    "л",
    "лет",
    "раз",
    "раза",
    "кв",
    "мест",
    "места",
    "mm",
    "cm",
    "kg",
    "вт",
    "квт",
    "дб",
];
/// …and these signs.
const UNIT_SIGNS: &[char] = &['₽', '$', '€', '%'];

const EMAIL: &str = r"[\p{L}\p{N}_%+\-][\p{L}\p{N}._%+\-]*@[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?)*\.\p{L}{2,}";

/// «серия 4512 номер 345678»: after a series, the passport's number may follow its word.
const NUMBER_AFTER_SERIES: &str =
    r"(?i)^[ \x{a0},]*(?:и[ \x{a0}]+)?(?:номер|№|н\.)[ \x{a0}:]*\d{3}[ \x{a0}\-]?\d{3}(?:\D|$)";
const BETWEEN_SERIES_AND_NUMBER: &str =
    r"(?i)^[ \x{a0},]*(?:и[ \x{a0}]+)?(?:номер|№|н\.)?[ \x{a0}:]*$";

/// How far back (in bytes) a keyword still speaks for a number: a short clause.
const CUE_WINDOW: usize = 90;
/// Longest digit sequence worth judging (card numbers have at most 19 digits).
const MAX_DIGITS: usize = 19;

/// Finds and replaces personal data. Build it once (the regexes compile in `new`) and
/// share it: it is `Send + Sync`; [`mask`] uses a process-wide one.
pub struct Masker {
    email: Regex,
    run: Regex,
    number_after_series: Regex,
    between_series_and_number: Regex,
}

impl Default for Masker {
    fn default() -> Self {
        Self::new()
    }
}

static SHARED: LazyLock<Masker> = LazyLock::new(Masker::new);

/// Masks `text` with a masker built once per process.
pub fn mask(text: &str) -> Cow<'_, str> {
    SHARED.mask(text)
}

/// The process-wide masker [`mask`] uses.
pub fn shared() -> &'static Masker {
    &SHARED
}

/// A run of digit groups and what surrounds it.
struct Run<'t> {
    range: Range<usize>,
    /// Byte ranges of the digit groups, in order.
    groups: Vec<Range<usize>>,
    text: &'t str,
}

/// What the text says about a number.
#[derive(Default, Clone, Copy)]
struct Context {
    cue: Option<Cue>,
    /// «паспорт» anywhere in the window, not only nearest.
    passport_word: bool,
    /// A passport number follows this run after «номер».
    number_follows: bool,
    /// The previous run was a passport series and only «номер» stands between.
    after_series: bool,
}

enum PhoneShape {
    /// Only a phone is written like this (`+7…`, `8 (916) …`, `916 123-45-67`).
    Strong,
    /// Could be an order number too: a phone unless a keyword says otherwise.
    Weak,
    /// A phone only when a keyword says so (`123-45-67` after «телефон»).
    CueOnly,
}

impl Masker {
    pub fn new() -> Self {
        let re = |s: &str| Regex::new(s).expect("valid built-in regex");
        Masker {
            email: re(EMAIL),
            run: re(RUN),
            number_after_series: re(NUMBER_AFTER_SERIES),
            between_series_and_number: re(BETWEEN_SERIES_AND_NUMBER),
        }
    }

    /// The text with every piece of personal data replaced by its placeholder; borrowed
    /// unchanged when there is none.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.mask_counting(text).0
    }

    /// [`Masker::mask`], and how many placeholders of each kind went in.
    pub fn mask_counting<'a>(&self, text: &'a str) -> (Cow<'a, str>, Counts) {
        let found = self.find(text);
        let mut counts = Counts::default();
        if found.is_empty() {
            return (Cow::Borrowed(text), counts);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in &found {
            out.push_str(&text[at..f.range.start]);
            out.push_str(f.kind.placeholder());
            counts.add(f.kind);
            at = f.range.end;
        }
        out.push_str(&text[at..]);
        (Cow::Owned(out), counts)
    }

    /// Every piece of personal data in `text`, in order, not overlapping.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let mut found: Vec<Found> = self
            .email
            .find_iter(text)
            .map(|m| Found {
                kind: PiiKind::Email,
                range: m.range(),
            })
            .collect();
        let emails = found.len();
        // Where the last number or e-mail ended: keywords before it speak for that one.
        let mut previous_end = 0;
        let mut series_pending = false;
        let mut email_i = 0;
        for m in self.run.find_iter(text) {
            let range = m.range();
            while email_i < emails && found[email_i].range.end <= range.start {
                previous_end = previous_end.max(found[email_i].range.end);
                email_i += 1;
            }
            if email_i < emails && found[email_i].range.start < range.end {
                continue; // digits of an e-mail address
            }
            let mut run = Run::new(text, range);
            let window_start = previous_end
                .max(text.floor_char_boundary(run.range.start.saturating_sub(CUE_WINDOW)));
            let window = &text[window_start..run.range.start];
            previous_end = run.range.end;
            let after_series = std::mem::take(&mut series_pending)
                && self.between_series_and_number.is_match(window);
            // Nothing personal has fewer than 4 digits (a passport series); most numbers in
            // a call are prices, quantities and times, so this saves most of the work.
            if run.groups.iter().map(|g| g.len()).sum::<usize>() < 4 || run.glued_to_a_word() {
                continue;
            }
            // The unit belongs to the last number only: «… 45 67 2 раза», «8 916 000 рублей».
            if unit_follows(&text[run.range.end..]) {
                run.groups.pop();
            }
            let mut ctx = self.context(window);
            ctx.after_series = after_series;
            // Only a series needs it: the regex is not run for every number.
            ctx.number_follows = ctx.cue == Some(Cue::Series)
                && self
                    .number_after_series
                    .is_match(ahead(text, run.range.end));
            for f in self.judge(&run, ctx) {
                if f.kind == PiiKind::Passport && f.range.end == run.range.end {
                    series_pending = run.digits_in(f.range.clone()) == 4;
                }
                found.push(f);
            }
        }
        found.sort_by_key(|f| f.range.start);
        found
    }

    /// The nearest keyword in the text before a number (by words: keyword matching with
    /// a regex needs Unicode word boundaries, which make the regex engine slow).
    fn context(&self, window: &str) -> Context {
        let mut ctx = Context::default();
        let window = window.to_lowercase();
        for word in window
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if let Some(cue) = cue_of(word) {
                ctx.passport_word |= cue == Cue::Passport;
                ctx.cue = Some(cue);
            }
        }
        ctx
    }

    /// The personal data in one run: the longest recognisable stretch of whole groups from
    /// the left, then on after it. Speech-to-text runs numbers together («… 45 67 2 раза»).
    fn judge(&self, run: &Run<'_>, ctx: Context) -> Vec<Found> {
        let n = run.groups.len();
        let mut out = Vec::new();
        let mut i = 0;
        while i < n {
            let mut hit = None;
            for j in (i + 1..=n).rev() {
                let digits: String = run.groups[i..j]
                    .iter()
                    .map(|g| &run.text[g.clone()])
                    .collect();
                if digits.len() > MAX_DIGITS {
                    continue;
                }
                let lens: Vec<usize> = run.groups[i..j].iter().map(|g| g.len()).collect();
                // Only the run's first number has the keywords before it.
                let ctx = if i == 0 { ctx } else { Context::default() };
                let mut start = if i == 0 {
                    run.range.start
                } else {
                    run.groups[i].start
                };
                let end = run.groups[j - 1].end;
                // «звоните (8 916 123-45-67)»: an opening bracket without its closing one
                // stays with the text.
                if run.text[start..end].starts_with('(') && !run.text[start..end].contains(')') {
                    start += 1;
                }
                let shape = Shape {
                    digits: &digits,
                    lens: &lens,
                    plus: i == 0 && run.text[run.range.clone()].starts_with('+'),
                    brackets: run.text[start..end].contains('('),
                };
                if let Some(kind) = classify(&shape, ctx) {
                    hit = Some((j, kind, start));
                    break;
                }
            }
            match hit {
                Some((j, kind, start)) => {
                    out.push(Found {
                        kind,
                        range: start..run.groups[j - 1].end,
                    });
                    i = j;
                }
                None => i += 1,
            }
        }
        out
    }
}

fn unit_follows(after: &str) -> bool {
    let after = after.strip_prefix([' ', '\u{a0}']).unwrap_or(after);
    if after.starts_with(UNIT_SIGNS) {
        return true;
    }
    let word: String = after
        .chars()
        .take_while(|c| c.is_alphabetic())
        .take(12)
        .flat_map(char::to_lowercase)
        .collect();
    !word.is_empty()
        && (UNIT_WORDS.contains(&word.as_str()) || UNIT_STEMS.iter().any(|s| word.starts_with(s)))
}

/// The text right after a number, as far as a unit or «номер 345 678» reaches: the
/// anchored regexes then never look at the rest of a long transcript.
fn ahead(text: &str, from: usize) -> &str {
    &text[from..text.floor_char_boundary(from + 48)]
}

impl<'t> Run<'t> {
    fn new(text: &'t str, range: Range<usize>) -> Run<'t> {
        let mut groups = Vec::new();
        let bytes = text.as_bytes();
        let mut k = range.start;
        while k < range.end {
            if bytes[k].is_ascii_digit() {
                let s = k;
                while k < range.end && bytes[k].is_ascii_digit() {
                    k += 1;
                }
                groups.push(s..k);
            } else {
                k += 1;
            }
        }
        Run {
            range,
            groups,
            text,
        }
    }

    /// Part of a code like `SM-4607001234567` or `A123`, or a number with a letter glued
    /// on: not something a person dictates.
    fn glued_to_a_word(&self) -> bool {
        let before = &self.text[..self.range.start];
        let mut rev = before.chars().rev();
        let glued_before = match rev.next() {
            Some(c) if c.is_alphanumeric() || c == '_' => true,
            Some('-' | '/' | '_') => rev.next().is_some_and(|c| c.is_alphanumeric()),
            _ => false,
        };
        let glued_after = self.text[self.range.end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        glued_before || glued_after
    }

    fn digits_in(&self, range: Range<usize>) -> usize {
        self.groups
            .iter()
            .filter(|g| g.start >= range.start && g.end <= range.end)
            .map(|g| g.len())
            .sum()
    }
}

/// The digits of a candidate and how they were written.
struct Shape<'a> {
    digits: &'a str,
    /// Lengths of the digit groups.
    lens: &'a [usize],
    plus: bool,
    brackets: bool,
}

fn classify(s: &Shape<'_>, ctx: Context) -> Option<PiiKind> {
    let d = s.digits;
    let n = d.len();
    let first = d.as_bytes()[0];
    if ctx.cue == Some(Cue::Inn) && (n == 10 || n == 12) && inn_valid(d) {
        return Some(PiiKind::Inn);
    }
    if n == 11 && snils_valid(d) && (s.lens == [3, 3, 3, 2] || ctx.cue == Some(Cue::Snils)) {
        return Some(PiiKind::Snils);
    }
    if is_passport(s, ctx) {
        return Some(PiiKind::Passport);
    }
    let vetoed_by = |cues: &[Cue]| ctx.cue.is_some_and(|c| cues.contains(&c));
    let other_kind_or_veto = [Cue::Veto, Cue::Inn, Cue::Snils, Cue::Passport, Cue::Series];
    if (13..=MAX_DIGITS).contains(&n)
        && (b'2'..=b'6').contains(&first)
        && card_grouping(s.lens)
        && !vetoed_by(&other_kind_or_veto)
        && luhn::valid(d)
    {
        return Some(PiiKind::Card);
    }
    match phone_shape(s) {
        Some(PhoneShape::Strong) => Some(PiiKind::Phone),
        Some(PhoneShape::Weak) if !vetoed_by(&other_kind_or_veto) => Some(PiiKind::Phone),
        Some(PhoneShape::CueOnly) if ctx.cue == Some(Cue::Phone) => Some(PiiKind::Phone),
        _ => None,
    }
}

fn is_passport(s: &Shape<'_>, ctx: Context) -> bool {
    let passport_cue = matches!(ctx.cue, Some(Cue::Passport | Cue::Series));
    match s.digits.len() {
        10 => {
            passport_cue
                && matches!(
                    s.lens,
                    [10] | [4, 6] | [2, 2, 6] | [2, 2, 3, 3] | [4, 3, 3] | [2, 8]
                )
        }
        6 => {
            (ctx.cue == Some(Cue::Passport) || ctx.after_series)
                && matches!(s.lens, [6] | [3, 3] | [2, 2, 2])
        }
        // A series alone only with the passport named or its number following: «серия»
        // is also a product line («диван серии 3000»).
        4 => {
            matches!(s.lens, [4] | [2, 2])
                && (ctx.cue == Some(Cue::Passport)
                    || (ctx.cue == Some(Cue::Series) && (ctx.passport_word || ctx.number_follows)))
        }
        _ => false,
    }
}

/// 4-4-4-4(-3), 4-6-5 (American Express) or not grouped at all.
fn card_grouping(lens: &[usize]) -> bool {
    match lens {
        [_] | [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn phone_shape(s: &Shape<'_>) -> Option<PhoneShape> {
    let n = s.digits.len();
    let first = s.digits.as_bytes()[0];
    let lens = s.lens;
    if s.plus {
        return (10..=13).contains(&n).then_some(PhoneShape::Strong);
    }
    match n {
        11 if first == b'7' || first == b'8' => Some(match lens {
            [_] => PhoneShape::Weak,
            [1, ..] | [4, ..] => PhoneShape::Strong,
            _ if s.brackets => PhoneShape::Strong,
            _ => PhoneShape::Weak,
        }),
        10 => match lens {
            [3, 3, 2, 2] if matches!(first, b'3' | b'4' | b'8' | b'9') => Some(PhoneShape::Strong),
            _ if s.brackets && lens[0] == 3 => Some(PhoneShape::Strong),
            [_] | [3, 3, 4] | [3, 7] if first == b'9' => Some(PhoneShape::Weak),
            [_] | [3, 3, 4] | [3, 7] => Some(PhoneShape::CueOnly),
            _ => None,
        },
        7 if matches!(lens, [3, 2, 2] | [3, 4]) => Some(PhoneShape::CueOnly),
        _ => None,
    }
}

fn digit_values(digits: &str) -> Option<Vec<u32>> {
    digits.chars().map(|c| c.to_digit(10)).collect()
}

/// The bank card checksum over the digits of `number` (separators ignored); the masker
/// itself asks the `luhn` crate, this spells out what the tests expect of it.
#[cfg(test)]
pub fn luhn_valid(number: &str) -> bool {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    !digits.is_empty() && luhn::valid(&digits)
}

/// SNILS: 11 digits (separators ignored), the last two a checksum of the first nine.
/// Numbers up to 001-001-998 were issued before the checksum existed and have none.
pub fn snils_valid(number: &str) -> bool {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let Some(d) = digit_values(&digits) else {
        return false;
    };
    if d.len() != 11 {
        return false;
    }
    let body: u32 = d[..9].iter().fold(0, |acc, x| acc * 10 + x);
    if body <= 1_001_998 {
        return true;
    }
    let sum: u32 = d[..9].iter().zip((1..=9).rev()).map(|(x, w)| x * w).sum();
    let check = match sum % 101 {
        100 => 0,
        r => r,
    };
    check == d[9] * 10 + d[10]
}

/// INN: 10 digits (an organisation) or 12 (a person), separators ignored, with their
/// check digits.
pub fn inn_valid(number: &str) -> bool {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let Some(d) = digit_values(&digits) else {
        return false;
    };
    let check = |weights: &[u32], digits: &[u32]| -> u32 {
        weights.iter().zip(digits).map(|(w, x)| w * x).sum::<u32>() % 11 % 10
    };
    const W10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
    const W11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    const W12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    match d.len() {
        10 => check(&W10, &d) == d[9],
        12 => check(&W11, &d) == d[10] && check(&W12, &d) == d[11],
        _ => false,
    }
}

/// A Russian phone number's digits in one spelling: 8XXXXXXXXXX, +7XXXXXXXXXX and
/// XXXXXXXXXX (no country code) become 7XXXXXXXXXX; other numbers keep their digits.
pub fn normalize_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        11 if digits.starts_with('8') || digits.starts_with('7') => format!("7{}", &digits[1..]),
        10 => format!("7{digits}"),
        _ => digits,
    }
}

/// HMAC-SHA256 of the normalised phone number under `key`, as lower-case hex: the same
/// caller gives the same hash however the number was written, and without the key the
/// number cannot be recovered by hashing every possible phone number.
pub fn hash_phone(key: &[u8], phone: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(normalize_phone(phone).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = include_str!("../../tests/fixtures/pii_corpus.tsv");

    fn kind_named(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Placeholders in `text`, by kind.
    fn placeholders(text: &str) -> Counts {
        let mut c = Counts::default();
        for k in PiiKind::ALL {
            for _ in text.matches(k.placeholder()) {
                c.add(k);
            }
        }
        c
    }

    struct Row {
        lines: usize,
        exact: usize,
        missed: usize,
        wrong_kind: usize,
        other_changes: usize,
    }

    /// Every corpus line masked and compared with its expected form. Recall per kind: lines
    /// masked exactly as expected. A `none` line must come out unchanged; a line with
    /// personal data must not get a placeholder of another kind nor lose a number that
    /// should stay.
    #[test]
    fn corpus_recall_and_false_positives() {
        let masker = Masker::new();
        let mut rows: Vec<(Option<PiiKind>, Row)> = PiiKind::ALL
            .into_iter()
            .map(Some)
            .chain([None])
            .map(|k| {
                (
                    k,
                    Row {
                        lines: 0,
                        exact: 0,
                        missed: 0,
                        wrong_kind: 0,
                        other_changes: 0,
                    },
                )
            })
            .collect();
        let mut failures = Vec::new();
        for (n, line) in CORPUS.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "line {}: three tab-separated columns", n + 1);
            let (kind_name, phrase, expected) = (cols[0], cols[1], cols[2]);
            let kind = match kind_name {
                "none" => None,
                k => Some(kind_named(k).unwrap_or_else(|| panic!("line {}: kind {k}", n + 1))),
            };
            if kind.is_none() {
                assert_eq!(
                    phrase,
                    expected,
                    "line {}: a none line expects no change",
                    n + 1
                );
            }
            let (out, counts) = masker.mask_counting(phrase);
            assert_eq!(counts, placeholders(&out), "line {}: counts", n + 1);
            let row = &mut rows.iter_mut().find(|(k, _)| *k == kind).unwrap().1;
            row.lines += 1;
            if out == expected {
                row.exact += 1;
                continue;
            }
            failures.push(format!(
                "{}: {kind_name}\n   got  {out}\n   want {expected}",
                n + 1
            ));
            let (got, want) = (placeholders(&out), placeholders(expected));
            if PiiKind::ALL.iter().any(|k| got.get(*k) > want.get(*k)) {
                row.wrong_kind += 1;
            } else if kind.is_some_and(|k| got.get(k) < want.get(k)) {
                row.missed += 1;
            } else {
                row.other_changes += 1;
            }
        }
        println!("kind       lines  exact  recall  missed  wrong kind  other changes");
        for (kind, r) in &rows {
            println!(
                "{:<9} {:>6} {:>6} {:>7.3} {:>7} {:>11} {:>14}",
                kind.map_or("none", |k| k.name()),
                r.lines,
                r.exact,
                r.exact as f64 / r.lines.max(1) as f64,
                r.missed,
                r.wrong_kind,
                r.other_changes
            );
        }
        for f in &failures {
            println!("{f}");
        }
        for (kind, r) in &rows {
            let recall = r.exact as f64 / r.lines.max(1) as f64;
            match kind {
                Some(k) => assert!(
                    recall >= 0.99,
                    "{}: recall {recall:.3} below 0.99",
                    k.name()
                ),
                None => assert_eq!(r.exact, r.lines, "none lines changed"),
            }
            assert!(r.lines >= 10, "too few lines of {kind:?}");
        }
        let total: usize = rows.iter().map(|(_, r)| r.lines).sum();
        assert!(total >= 300, "corpus has {total} lines");
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        let text = "Диван 15 000 рублей, доставка 12.03.2025 в 14:30, заказ номер 123456.";
        assert!(matches!(mask(text), Cow::Borrowed(_)));
        let (out, counts) = shared().mask_counting("Звоните: 8 916 123-45-67 или ivan@mail.ru");
        assert_eq!(out, "Звоните: [ТЕЛЕФОН] или [EMAIL]");
        assert_eq!((counts.phone, counts.email, counts.total()), (1, 1, 2));
    }

    #[test]
    fn found_ranges_point_at_the_data() {
        let text = "ИНН 7707083893, тел. +7 (916) 123-45-67.";
        let found = Masker::new().find(text);
        let parts: Vec<(PiiKind, &str)> = found
            .iter()
            .map(|f| (f.kind, &text[f.range.clone()]))
            .collect();
        assert_eq!(
            parts,
            [
                (PiiKind::Inn, "7707083893"),
                (PiiKind::Phone, "+7 (916) 123-45-67")
            ]
        );
    }

    #[test]
    fn card_checksum() {
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(luhn_valid("2200-0000-0000-0004"));
        assert!(!luhn_valid("4111 1111 1111 1112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("—"));
        let m = Masker::new();
        assert_eq!(m.mask("карта 4111 1111 1111 1111"), "карта [КАРТА]");
        assert_eq!(
            m.mask("карта 4111 1111 1111 1112"),
            "карта 4111 1111 1111 1112"
        );
    }

    #[test]
    fn snils_checksum() {
        assert!(snils_valid("112-233-445 95"));
        assert!(snils_valid("11223344595"));
        assert!(!snils_valid("112-233-445 96"));
        assert!(!snils_valid("112-233-445"));
        // Sum 100 and 101 give the check number 00.
        assert!(snils_valid("000-000-091 00")); // early number: no checksum at all
        assert!(snils_valid("123-456-789 64"));
        assert!(!snils_valid("123-456-789 65"));
    }

    #[test]
    fn inn_checksum() {
        assert!(inn_valid("7707083893"));
        assert!(!inn_valid("7707083894"));
        assert!(inn_valid("500100732259"));
        assert!(!inn_valid("500100732258"));
        assert!(!inn_valid("50010073225"));
        let m = Masker::new();
        assert_eq!(m.mask("ИНН 7707083893"), "ИНН [ИНН]");
        // Without the word it is just a number (here: an order's).
        assert_eq!(m.mask("заказ 7707083893"), "заказ 7707083893");
    }

    #[test]
    fn phones_hash_the_same_however_written() {
        let key = b"department-1-secret";
        let h = hash_phone(key, "+7 (916) 123-45-67");
        assert_eq!(h.len(), 64);
        assert!(
            h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        for same in [
            "89161234567",
            "79161234567",
            "916 123 45 67",
            "8-916-123-45-67",
        ] {
            assert_eq!(hash_phone(key, same), h, "{same}");
        }
        assert_ne!(hash_phone(key, "89161234568"), h);
        assert_ne!(hash_phone(b"another key", "89161234567"), h);
        // HMAC-SHA256 of "79161234567" under this key, computed independently (Python's hmac module).
        assert_eq!(
            h,
            "31715288a9c274931cacdbfe3a43a0710101c35f2078c8faa5f1231456934e9a"
        );
    }

    /// A typical 2,000-character transcript: mostly talk, a few numbers of each kind.
    fn typical_transcript() -> String {
        let lines = [
            "Оператор: Добрый день, интернет-магазин мебели «Уют», меня зовут Анна, чем могу помочь?",
            "Клиент: Здравствуйте, я хотела уточнить по дивану, который видела у вас на сайте, угловой, серый.",
            "Оператор: Да, конечно. Подскажите артикул или название модели, пожалуйста.",
            "Клиент: Артикул 4607001234567, кажется, «Честер», размер 280 на 190.",
            "Оператор: Вижу, он сейчас стоит 89 990 рублей, со скидкой 15% выйдет 76 491 рубль.",
            "Клиент: А доставка сколько? Мне на 9 этаж, лифт грузовой есть.",
            "Оператор: Доставка по Москве 990 рублей, подъём на лифте бесплатно, сборка 2 500 рублей.",
            "Клиент: Хорошо, давайте оформим. Когда можете привезти?",
            "Оператор: Ближайшая дата 15 марта, интервал с 10:00 до 14:00. Удобно?",
            "Клиент: Да, удобно. Мой телефон 8 916 123-45-67, почта ivanova.anna@mail.ru.",
            "Оператор: Записала. Оплата картой при получении или онлайн?",
            "Клиент: Онлайн, карта 4276 1600 1234 5675. Можно в рассрочку на 6 месяцев?",
            "Оператор: Можно, платёж будет 12 749 рублей в месяц, без переплаты.",
            "Оператор: Ваш заказ номер 554433, ждите смс. Спасибо за покупку, хорошего дня!",
            "Клиент: Спасибо, до свидания.",
        ];
        let mut t = String::new();
        while t.chars().count() < 2000 {
            for l in lines {
                t.push_str(l);
                t.push('\n');
            }
        }
        t.chars().take(2000).collect()
    }

    /// `cargo test --release --lib pii::tests::mask_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing, not a check; run it in release mode"]
    fn mask_speed() {
        let masker = Masker::new();
        let text = typical_transcript();
        let (masked, counts) = masker.mask_counting(&text);
        assert!(counts.total() >= 4, "{masked}");
        // The best of several batches: other processes on the machine only slow it down.
        let rounds = 500;
        let per = (0..10)
            .map(|_| {
                let started = std::time::Instant::now();
                for _ in 0..rounds {
                    std::hint::black_box(masker.mask(std::hint::black_box(&text)));
                }
                started.elapsed().as_secs_f64() * 1e6 / rounds as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "{per:.1} µs per {}-character transcript ({} placeholders)",
            text.chars().count(),
            counts.total()
        );
    }
}
