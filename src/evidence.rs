//! Is a quote the model gave for a score really in the call?
//!
//! Both texts are reduced to words: lower case, `ё` read as `е`, everything that is not a
//! letter or digit a separator (so punctuation and whitespace do not count), and the
//! transcript's `operator:` / `client:` labels dropped. A quote is *found* when some run of
//! consecutive transcript words matches the quote's words with a token-level similarity of
//! at least [`NEAR_MATCH`]:
//!
//! similarity = 1 − cost / (words in the quote), where cost is the cheapest word-level
//! edit turning the quote into that run: a missing or extra word costs 1, a word spelt
//! differently costs 1 − `strsim::normalized_levenshtein` of the two words (1 when they
//! are less than half alike). Speech-to-text misspellings cost a fraction of a word, so a
//! lightly altered quote is still found; a paraphrase or an invented sentence is not.
//!
//! A quote the model shortened with `...` / `…` is checked fragment by fragment, each of
//! which must be found. The best run is found by one approximate-substring alignment
//! (quote words × transcript words): ten quotes of ~25 words against a 5,000-character
//! transcript took 25 ms in an unoptimised test build, nothing beside an LLM request.

use std::collections::HashMap;

use strsim::normalized_levenshtein;

/// The least similarity at which a quote counts as found.
pub const NEAR_MATCH: f64 = 0.85;

/// Words less alike than this count as different words, not misspellings of each other.
const SAME_WORD: f64 = 0.5;

/// Speaker labels of the stored transcript (and how models sometimes copy them).
const LABELS: [&str; 4] = ["operator:", "client:", "оператор:", "клиент:"];

/// How a quote compares with the transcript.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    pub found: bool,
    /// 0..=1; 1 for a quote found word for word.
    pub similarity: f64,
}

/// A transcript prepared for checking any number of quotes.
pub struct TranscriptIndex {
    /// Each word as its id: the number of distinct words read before its first sighting.
    words: Vec<usize>,
    ids: HashMap<String, usize>,
}

impl TranscriptIndex {
    pub fn new(text: &str) -> TranscriptIndex {
        // Sized for the text up front (a word and its separator take at least two bytes),
        // so a night's transcripts do not regrow them word by word.
        let mut ids: HashMap<String, usize> = HashMap::with_capacity(text.len() / 8);
        let mut words = Vec::with_capacity(text.len() / 4);
        // Each word is looked up where it was read: only a new word is copied, once.
        for_each_word(text, |w| {
            let id = match ids.get(w) {
                Some(&id) => id,
                None => {
                    let id = ids.len();
                    ids.insert(w.to_string(), id);
                    id
                }
            };
            words.push(id);
        });
        TranscriptIndex { words, ids }
    }

    /// `None` when the quote has no words (nothing was quoted).
    pub fn check(&self, quote: &str) -> Option<Check> {
        // One buffer for every fragment's word ids.
        let mut ids = Vec::new();
        let similarity = quote
            .split("...")
            .flat_map(|f| f.split('…'))
            .filter_map(|f| self.fragment_similarity(f, &mut ids))
            .reduce(f64::min)?;
        Some(Check {
            found: similarity >= NEAR_MATCH,
            similarity,
        })
    }

    /// The similarity of one fragment of a quote; `None` when it has no words.
    fn fragment_similarity(&self, fragment: &str, ids: &mut Vec<Option<usize>>) -> Option<f64> {
        // Most quotes are verbatim: their words are looked up where they are read and found
        // word for word, with no word copied and no edit distance.
        ids.clear();
        for_each_word(fragment, |w| ids.push(self.ids.get(w).copied()));
        if ids.is_empty() {
            return None;
        }
        if self.words.is_empty() {
            return Some(0.0);
        }
        if self.contains_exactly(ids) {
            return Some(1.0);
        }
        Some(self.best_similarity(&normalize_words(fragment)))
    }

    /// The similarity of `quote` to the run of transcript words it matches best: an
    /// alignment where the run may start and end anywhere in the transcript for free.
    fn best_similarity(&self, quote: &[String]) -> f64 {
        // The distinct words by id; needed only here, for a quote not found word for word.
        let mut vocabulary = vec![""; self.ids.len()];
        for (w, &id) in &self.ids {
            vocabulary[id] = w.as_str();
        }
        // Substitution costs per (quote word, distinct transcript word), computed once.
        let cost: Vec<Vec<f64>> = quote
            .iter()
            .map(|q| vocabulary.iter().map(|t| word_cost(q, t)).collect())
            .collect();
        let m = self.words.len();
        let mut prev = vec![0.0_f64; m + 1];
        let mut cur = vec![0.0_f64; m + 1];
        for (i, row) in cost.iter().enumerate() {
            cur[0] = (i + 1) as f64;
            for j in 1..=m {
                let substitute = prev[j - 1] + row[self.words[j - 1]];
                let skip_quote_word = prev[j] + 1.0;
                let extra_transcript_word = cur[j - 1] + 1.0;
                cur[j] = substitute.min(skip_quote_word).min(extra_transcript_word);
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        let best = prev.iter().copied().fold(f64::INFINITY, f64::min);
        (1.0 - best / quote.len() as f64).max(0.0)
    }
}

impl TranscriptIndex {
    /// Whether the quote's words (their ids; `None` for a word the transcript lacks)
    /// occur in the transcript as they are, one after another.
    fn contains_exactly(&self, quote: &[Option<usize>]) -> bool {
        if quote.iter().any(Option::is_none) {
            return false;
        }
        self.words
            .windows(quote.len())
            .any(|run| run.iter().zip(quote).all(|(w, q)| Some(*w) == *q))
    }
}

/// What replacing quote word `a` by transcript word `b` costs: 0 for the same word.
fn word_cost(a: &str, b: &str) -> f64 {
    if a == b {
        return 0.0;
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    // Levenshtein is at least the length difference: skip the computation when that alone
    // makes the words unlike.
    if la.abs_diff(lb) as f64 > (1.0 - SAME_WORD) * la.max(lb) as f64 {
        return 1.0;
    }
    let similarity = normalized_levenshtein(a, b);
    if similarity < SAME_WORD {
        1.0
    } else {
        1.0 - similarity
    }
}

/// The words of `text` as compared: lower case, `ё` as `е`, letters and digits only,
/// speaker labels dropped.
///
/// One pass over the text, a character at a time (each lowered on its own, so a Greek
/// final sigma is not told apart — the same for transcript and quote). Cyrillic and ASCII,
/// nearly every character of a call, are decided without Unicode's tables: this runs over
/// every transcript of the night.
pub fn normalize_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_word(text, |w| words.push(w.to_string()));
    words
}

/// Calls `f` with each word of `text` as [`normalize_words`] gives them, from one buffer.
fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    for c in text.chars() {
        match fast_lower(c) {
            Some(Some(l)) => word.push(l),
            Some(None) => end_word(&mut f, &mut word, c == ':'),
            None => {
                for l in c.to_lowercase() {
                    let l = if l == 'ё' { 'е' } else { l };
                    if l.is_alphanumeric() {
                        word.push(l);
                    } else {
                        end_word(&mut f, &mut word, false);
                    }
                }
            }
        }
    }
    end_word(&mut f, &mut word, false);
}

/// `Some(Some(lowered))` for a letter or digit (`ё` as `е`), `Some(None)` for a
/// separator, `None` when Unicode's tables must decide.
pub(crate) fn fast_lower(c: char) -> Option<Option<char>> {
    match c {
        'a'..='z' | '0'..='9' | 'а'..='я' => Some(Some(c)),
        'A'..='Z' => Some(Some(c.to_ascii_lowercase())),
        'А'..='Я' => char::from_u32(c as u32 + ('а' as u32 - 'А' as u32)).map(Some),
        'ё' | 'Ё' => Some(Some('е')),
        _ if c.is_ascii() => Some(None),
        _ => None,
    }
}

/// Ends the word being read. Before a `:` a speaker label at the word's end is dropped
/// (`operator:` and the like are not words of the call).
fn end_word(f: &mut impl FnMut(&str), word: &mut String, before_colon: bool) {
    if before_colon
        && let Some(label) = LABELS
            .iter()
            .map(|l| l.trim_end_matches(':'))
            .find(|l| word.ends_with(l))
    {
        word.truncate(word.len() - label.len());
    }
    if !word.is_empty() {
        f(word);
        word.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = "operator: Добрый день! Меня зовут Анна, банк «Пример». Удобно говорить?\n\
        client: Да, слушаю.\n\
        operator: Мы одобрили вам кредитную карту с лимитом пятьдесят тысяч рублей, \
        первые сто двадцать дней без процентов.\n\
        client: А годовое обслуживание сколько стоит? Ещё ёлка у нас во дворе.\n\
        operator: Обслуживание бесплатное. Оформим доставку на субботу?\n\
        client: Давайте.\n";

    const OTHER_CALL: &str = "operator: Здравствуйте, Пётр Иванович, это Сбербанк.\n\
        client: Я занят, перезвоните завтра вечером после шести.\n";

    fn check(quote: &str) -> Check {
        TranscriptIndex::new(CALL)
            .check(quote)
            .expect("a quote with words")
    }

    #[test]
    fn an_exact_quote_is_found_whatever_its_case_punctuation_and_spacing() {
        for q in [
            "Меня зовут Анна, банк «Пример».",
            "меня   зовут анна банк пример",
            "\"Обслуживание бесплатное\"",
            // Across two phrases, with the speaker label the model copied.
            "Удобно говорить? client: Да, слушаю.",
            "Оператор: Добрый день!",
            // ё and е are the same letter.
            "Ещё ёлка у нас во дворе",
            "еще елка у нас во дворе",
        ] {
            let c = check(q);
            assert!(c.found, "{q}: {c:?}");
            assert_eq!(c.similarity, 1.0, "{q}");
        }
    }

    #[test]
    fn a_lightly_altered_quote_is_a_near_match() {
        // One misspelt word in seven: "кредитнаю" for "кредитную" costs 1/9 of a word.
        let c = check("Мы одобрили вам кредитнаю карту с лимитом");
        assert!(c.found && c.similarity < 1.0, "{c:?}");
        // 1 − (1/9)/7 = 0.984
        assert!(
            (c.similarity - (1.0 - (1.0 / 9.0) / 7.0)).abs() < 1e-9,
            "{c:?}"
        );
        // One word left out of eight costs exactly one word: 1 − 1/8 = 0.875.
        let c = check("первые сто двадцать дней без процентов обслуживание бесплатное");
        assert!(!c.found, "two words missing between the phrases: {c:?}");
        let c = check("мы одобрили вам кредитную карту с лимитом тысяч");
        assert!((c.similarity - 0.875).abs() < 1e-9 && c.found, "{c:?}");
        // A shortened quote: each fragment is checked.
        assert!(check("Добрый день!... Удобно говорить?").found);
        assert!(check("Добрый день… банк «Пример»").found);
    }

    #[test]
    fn a_quote_from_another_call_is_not_found() {
        let c = check("Я занят, перезвоните завтра вечером после шести.");
        assert!(!c.found, "{c:?}");
        assert!(c.similarity < 0.5, "{c:?}");
        // It is found in the call it comes from.
        let other = TranscriptIndex::new(OTHER_CALL);
        assert!(other.check("я занят перезвоните завтра").unwrap().found);
    }

    #[test]
    fn an_invented_quote_is_not_found() {
        for q in [
            "Оператор предложил оформить страховку жизни",
            "Меня зовут Ольга, банк «Пример»",
            // A paraphrase of a real phrase.
            "Карта бесплатная, доставим в субботу",
            // Real fragment plus an invented one.
            "Добрый день… мы дарим вам телевизор",
        ] {
            let c = check(q);
            assert!(!c.found, "{q}: {c:?}");
        }
    }

    #[test]
    fn an_empty_quote_is_no_quote() {
        let t = TranscriptIndex::new(CALL);
        assert_eq!(t.check(""), None);
        assert_eq!(t.check("  …  «» "), None);
        assert!(!TranscriptIndex::new("").check("Добрый день").unwrap().found);
    }

    /// The words as the whole text lowercased, `ё` replaced and labels replaced by spaces
    /// give them: what the one-pass reading must agree with.
    fn reference_words(text: &str) -> Vec<String> {
        let mut lower = text.to_lowercase().replace('ё', "е");
        for label in LABELS {
            lower = lower.replace(label, " ");
        }
        lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn one_pass_reading_agrees_with_lowercasing_the_whole_text() {
        for text in [
            CALL,
            OTHER_CALL,
            "Оператор: Добрый день!\nКЛИЕНТ:да\nclient : не метка\nxoperator: слово перед меткой",
            "ЁЛКА ёжик Ёж, Straße ÉCOLE İstanbul naïve 15 000 руб. №5 ½ 🙂 e-mail: a.b@c.ru",
            "operator:client:оператор:клиент:",
            "",
        ] {
            assert_eq!(normalize_words(text), reference_words(text), "{text}");
        }
    }

    #[test]
    fn words_are_normalised() {
        assert_eq!(
            normalize_words("client: ЁЖ,ёлка—15 000 руб.!"),
            ["еж", "елка", "15", "000", "руб"]
        );
    }
}
