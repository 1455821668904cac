//! What the fake model answers, decided from the prompt alone: the checklist is parsed
//! back out of the rendered `{criteria_list}` and markers written
//! into transcripts choose the behaviour. Pure, so tests compute the expected database
//! rows with the same functions.

use serde_json::{Value, json};

/// Markers a test writes into a transcript phrase to steer the fake model.
pub mod markers {
    /// Answer `is_sales_call: false` with nothing else.
    pub const NOT_SALES: &str = "[not-sales]";
    /// The first request carrying it gets non-JSON content, later ones a valid analysis.
    pub const INVALID_ONCE: &str = "[invalid-once]";
    /// Always answer non-JSON content.
    pub const INVALID_ALWAYS: &str = "[invalid-always]";
    /// Wrap the analysis in prose and a ```json fence.
    pub const FENCED: &str = "[fenced]";
    /// `[agreement:15000]`: one agreement with that amount (repeatable).
    pub const AGREEMENT_PREFIX: &str = "[agreement:";
    /// One agreement whose amount is read from the transcript as a model would: the
    /// first amount in roubles a phrase names (`15 000 рублей`). None if masked away.
    pub const AGREEMENT_FROM_TEXT: &str = "[agreement:text]";
    /// One decline reason.
    pub const DECLINE: &str = "[decline]";
    /// Quotes lightly altered (case, punctuation, one letter), as speech-to-text respells.
    pub const EVIDENCE_NEAR: &str = "[evidence:near]";
    /// The first quote invented, in no transcript.
    pub const EVIDENCE_INVENTED: &str = "[evidence:invented]";
    /// Leave the `evidence` field out, as a model ignoring the instruction would.
    pub const NO_EVIDENCE: &str = "[no-evidence]";
    /// Score every criterion 0 (quotes empty: nothing to quote for what is absent).
    pub const SCORE_ZERO: &str = "[score-zero]";
    /// Put a NUL (U+0000) into every reason, as models now and then do.
    pub const NUL: &str = "[nul]";
    /// Refused with 400, the prompt being beyond the context window.
    pub const TOO_LONG: &str = "[too-long]";
    /// The recommendation a spreadsheet would run as a formula: [`super::FORMULA_RECOMMENDATION`].
    pub const RECOMMENDATION_FORMULA: &str = "[recommendation:formula]";
    /// `[quality:70]`: score the call as an operator of that skill (0–100) would be,
    /// criteria differing in difficulty (see `quality_score`); for lifelike demo data.
    pub const QUALITY_PREFIX: &str = "[quality:";
}

/// The quote `[evidence:invented]` puts first.
pub const INVENTED_QUOTE: &str = "Оператор пообещал клиенту бесплатный отпуск на Мальдивах";

/// The recommendation `[recommendation:formula]` gives: a classic CSV-injection payload.
pub const FORMULA_RECOMMENDATION: &str = "+1+cmd|' /C calc'!A0";

/// The non-JSON answer of `[invalid-once]` / `[invalid-always]`.
pub const REFUSAL: &str = "Извините, я не могу оценить этот звонок.";

/// A criterion as the prompt renders it.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptCriterion {
    pub category: String,
    pub criterion: String,
    pub max_score: f64,
}

/// Finds the `КАТЕГОРИЯ: … / КРИТЕРИЙ: … / КОММЕНТАРИЙ: … / МАКСИМАЛЬНЫЙ БАЛЛ: … /
/// УСЛОВИЯ ОЦЕНКИ: …` blocks, in prompt order. Names are trimmed; a comment or
/// condition may span several lines; the score may use a decimal comma. A block
/// without a category, criterion or numeric score is ignored.
pub fn parse_criteria(prompt: &str) -> Vec<PromptCriterion> {
    let mut found = Vec::new();
    let mut category: Option<&str> = None;
    let mut criterion: Option<&str> = None;
    for line in prompt.lines().map(str::trim_start) {
        if let Some(rest) = line.strip_prefix("КАТЕГОРИЯ:") {
            category = Some(rest.trim());
            criterion = None;
        } else if let Some(rest) = line.strip_prefix("КРИТЕРИЙ:") {
            criterion = category.and(Some(rest.trim()));
        } else if let Some(rest) = line.strip_prefix("МАКСИМАЛЬНЫЙ БАЛЛ:") {
            if let (Some(cat), Some(crit), Some(max)) = (category, criterion, parse_score(rest)) {
                found.push(PromptCriterion {
                    category: cat.to_string(),
                    criterion: crit.to_string(),
                    max_score: max,
                });
            }
            category = None;
            criterion = None;
        }
    }
    found
}

/// `10`, `2,5`, `2.5` → the number; anything else (or negative) → None.
fn parse_score(text: &str) -> Option<f64> {
    text.trim()
        .replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// The score the fake gives the criterion at `index` (0-based, prompt order): full marks
/// for even indices, half rounded down for odd ones.
pub fn expected_score(index: usize, max: f64) -> f64 {
    if index.is_multiple_of(2) {
        max
    } else {
        (max / 2.0).floor()
    }
}

/// The score under `[quality:q]`: each criterion is harder by an amount that depends on
/// it and on q, so operators of different skill miss different criteria; half points.
pub fn quality_score(index: usize, max: f64, quality: u32) -> f64 {
    let difficulty = ((index as u32 * 29 + quality * 7) % 50) as f64;
    let share = ((quality as f64 - difficulty + 15.0) / 100.0).clamp(0.0, 1.0);
    (max * share * 2.0).round() / 2.0
}

fn quality(prompt: &str) -> Option<u32> {
    let rest = prompt.split(markers::QUALITY_PREFIX).nth(1)?;
    rest.split_once(']')?.0.trim().parse().ok()
}

/// The analysis JSON the fake model returns for `prompt` (before `[fenced]` wrapping or
/// `[invalid-*]` refusals, which depend on more than the prompt).
///
/// Its totals are deliberately wrong (999 of 1, 100 %) so tests prove that callq
/// recomputes them from the evaluations.
pub fn analysis_for_prompt(prompt: &str) -> Value {
    analysis_for_request(prompt, false)
}

/// The phrases of the transcript inside `prompt`: the text of its `operator: ` and
/// `client: ` lines, in order.
pub fn transcript_phrases(prompt: &str) -> Vec<&str> {
    prompt
        .lines()
        .filter_map(|l| {
            l.strip_prefix("operator: ")
                .or_else(|| l.strip_prefix("client: "))
        })
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The quote the fake gives the criterion at `index` (0-based, prompt order): phrase
/// `index` of the transcript, cycling, at most 300 characters; empty for a 0 score or a
/// call without phrases. Markers alter or invent quotes.
pub fn evidence_for(prompt: &str, index: usize, score: f64) -> String {
    Quoting::of(prompt).quote(index, score)
}

/// What a prompt's quotes are made of, read from it once for all its criteria.
struct Quoting<'p> {
    phrases: Vec<&'p str>,
    invented: bool,
    near: bool,
}

impl<'p> Quoting<'p> {
    fn of(prompt: &'p str) -> Quoting<'p> {
        Quoting {
            phrases: transcript_phrases(prompt),
            invented: prompt.contains(markers::EVIDENCE_INVENTED),
            near: prompt.contains(markers::EVIDENCE_NEAR),
        }
    }

    fn quote(&self, index: usize, score: f64) -> String {
        let phrases = &self.phrases;
        if score <= 0.0 || phrases.is_empty() {
            return String::new();
        }
        if index == 0 && self.invented {
            return INVENTED_QUOTE.to_string();
        }
        let quote: String = phrases[index % phrases.len()].chars().take(300).collect();
        if self.near { alter(&quote) } else { quote }
    }
}

/// Lower case, no punctuation, `е` for `ё`, and in the longest word one letter doubled.
fn alter(quote: &str) -> String {
    let mut words: Vec<String> = quote
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('ё', "е"))
        .collect();
    if let Some(longest) = words.iter_mut().max_by_key(|w| w.chars().count())
        && longest.chars().count() >= 5
    {
        let mid = longest.chars().nth(2).expect("five letters");
        let at = longest.char_indices().nth(2).expect("five letters").0;
        longest.insert(at, mid);
    }
    words.join(" ")
}

/// The analysis for `prompt`; `with_evidence` when the request asked for quotes (the
/// schema names `evidence`, or a prompt-only request's prompt does).
pub fn analysis_for_request(prompt: &str, with_evidence: bool) -> Value {
    analysis_adjusted(prompt, with_evidence, &|_, score, _| score)
}

/// [`analysis_for_request`] with each criterion's score passed through `adjust(index,
/// score, max)` before its quote is chosen (the fake's score shift and noise).
pub(crate) fn analysis_adjusted(
    prompt: &str,
    with_evidence: bool,
    adjust: &dyn Fn(usize, f64, f64) -> f64,
) -> Value {
    if prompt.contains(markers::NOT_SALES) {
        return json!({
            "is_sales_call": false,
            "total_score": 0,
            "max_possible_score": 0,
            "performance_percentage": 0,
            "evaluations": [],
            "recommendations": [],
            "agreements": [],
            "decline_reasons": [],
        });
    }
    let criteria = parse_criteria(prompt);
    let quality = quality(prompt);
    // The prompt is read once for all criteria: the benchmark's fake must cost little
    // beside the callq it measures.
    let score_zero = prompt.contains(markers::SCORE_ZERO);
    let nul = if prompt.contains(markers::NUL) {
        "\0"
    } else {
        ""
    };
    let quoting =
        (with_evidence && !prompt.contains(markers::NO_EVIDENCE)).then(|| Quoting::of(prompt));
    let evaluations: Vec<Value> = criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let score = if score_zero {
                0.0
            } else {
                let score = match quality {
                    Some(q) => quality_score(i, c.max_score, q),
                    None => expected_score(i, c.max_score),
                };
                adjust(i, score, c.max_score)
            };
            let mut e = json!({
                "category": c.category,
                "criterion": c.criterion,
                "score_given": number(score),
                "max_score": number(c.max_score),
                "reason": format!(
                    "Цитата: «{}» — оценено по условиям критерия{nul}",
                    c.criterion,
                ),
            });
            if let Some(quoting) = &quoting {
                e["evidence"] = json!(quoting.quote(i, score));
            }
            e
        })
        .collect();
    let first_category = criteria.first().map_or("Общее", |c| c.category.as_str());
    let decline_reasons = if prompt.contains(markers::DECLINE) {
        json!([{
            "reason_type": "price",
            "reason_description": "Клиенту дорого",
            "product_category": "Кредитная карта",
        }])
    } else {
        json!([])
    };
    json!({
        "is_sales_call": true,
        "total_score": 999,
        "max_possible_score": 1,
        "performance_percentage": 100,
        "evaluations": evaluations,
        "recommendations": [{
            "category": first_category,
            "issue": "Не выявлена потребность",
            "recommendation": if prompt.contains(markers::RECOMMENDATION_FORMULA) {
                FORMULA_RECOMMENDATION
            } else {
                "Задавать открытые вопросы"
            },
            "priority": "high",
        }],
        "agreements": agreements(prompt),
        "decline_reasons": decline_reasons,
    })
}

/// One agreement per `[agreement:N]` marker with a numeric N, and one per
/// `[agreement:text]` whose transcript names an amount in roubles.
fn agreements(prompt: &str) -> Vec<Value> {
    prompt
        .split(markers::AGREEMENT_PREFIX)
        .skip(1)
        .filter_map(|rest| {
            let written = rest.split_once(']')?.0.trim();
            let written = if written == "text" {
                amount_in_roubles(prompt)?
            } else {
                written.to_string()
            };
            let amount = written.replace(',', ".").parse::<f64>().ok()?;
            Some(json!({
                "amount": number(amount),
                "agreement": format!("Оформлен заказ на {written} руб."),
            }))
        })
        .collect()
}

/// The first amount a transcript phrase gives in roubles: the digit groups right before
/// a word starting with `руб` (`15 000 рублей` → `15000`, `1 500,50 руб.` → `1500,50`).
fn amount_in_roubles(prompt: &str) -> Option<String> {
    for phrase in transcript_phrases(prompt) {
        let words: Vec<&str> = phrase.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if !w.to_lowercase().starts_with("руб") {
                continue;
            }
            let groups: Vec<&str> = words[..i]
                .iter()
                .rev()
                .take_while(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit() || c == ','))
                .copied()
                .collect();
            if !groups.is_empty() {
                return Some(groups.into_iter().rev().collect());
            }
        }
    }
    None
}

/// The message content for `prompt`: a refusal for `[invalid-always]`, and for
/// `[invalid-once]` when `first_sighting`; else the analysis, fenced for `[fenced]`.
pub(crate) fn content_for(
    prompt: &str,
    first_sighting: bool,
    with_evidence: bool,
    adjust: &dyn Fn(usize, f64, f64) -> f64,
) -> String {
    if prompt.contains(markers::INVALID_ALWAYS)
        || (first_sighting && prompt.contains(markers::INVALID_ONCE))
    {
        return REFUSAL.to_string();
    }
    let analysis = analysis_adjusted(prompt, with_evidence, adjust);
    if prompt.contains(markers::FENCED) {
        let pretty = serde_json::to_string_pretty(&analysis).expect("a JSON value serializes");
        format!("Вот оценка:\n```json\n{pretty}\n```\nГотово.")
    } else {
        analysis.to_string()
    }
}

/// A JSON number, written as an integer when whole (`5`, not `5.0`), as a model would.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(category: &str, criterion: &str, score: &str) -> String {
        format!(
            "КАТЕГОРИЯ: {category}\nКРИТЕРИЙ: {criterion}\nКОММЕНТАРИЙ: коммент\nМАКСИМАЛЬНЫЙ БАЛЛ: {score}\nУСЛОВИЯ ОЦЕНКИ: строка 1\nстрока 2\n\n"
        )
    }

    fn prompt(transcript: &str) -> String {
        format!(
            "Оцени звонок.\n\nКритерии:\n{}{}{}{}\nТранскрипт:\n{transcript}\n",
            block("Установление контакта", "Приветствие", "10"),
            block("Установление контакта", "Представился", "5"),
            block("Работа с возражениями", "Отработка цены", "2,5"),
            block("Завершение", "Прощание", "3.5"),
        )
    }

    #[test]
    fn criteria_are_parsed_with_decimal_commas_and_multiline_conditions() {
        let got = parse_criteria(&prompt("operator: Добрый день"));
        let names: Vec<(&str, &str, f64)> = got
            .iter()
            .map(|c| (c.category.as_str(), c.criterion.as_str(), c.max_score))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Установление контакта", "Приветствие", 10.0),
                ("Установление контакта", "Представился", 5.0),
                ("Работа с возражениями", "Отработка цены", 2.5),
                ("Завершение", "Прощание", 3.5),
            ]
        );
        let broken = "КАТЕГОРИЯ: A\nКРИТЕРИЙ: B\nМАКСИМАЛЬНЫЙ БАЛЛ: много\n\nКРИТЕРИЙ: C\nМАКСИМАЛЬНЫЙ БАЛЛ: 1\n";
        assert!(parse_criteria(broken).is_empty());
    }

    #[test]
    fn quality_marker_scores_by_skill() {
        let a = analysis_for_prompt(&prompt("client: [quality:90] беру"));
        let scores: Vec<f64> = a["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["score_given"].as_f64().unwrap())
            .collect();
        let expected: Vec<f64> = [10.0, 5.0, 2.5, 3.5]
            .iter()
            .enumerate()
            .map(|(i, m)| quality_score(i, *m, 90))
            .collect();
        assert_eq!(scores, expected);
        assert_ne!(quality_score(0, 10.0, 90), quality_score(0, 10.0, 20));
        assert_eq!(quality_score(1, 10.0, 0), 0.0);
    }

    #[test]
    fn default_analysis_scores_by_index_with_wrong_totals() {
        let a = analysis_for_prompt(&prompt("operator: Добрый день"));
        assert_eq!(a["is_sales_call"], json!(true));
        assert_eq!(a["total_score"], json!(999));
        let evals = a["evaluations"].as_array().unwrap();
        let scores: Vec<&Value> = evals.iter().map(|e| &e["score_given"]).collect();
        assert_eq!(scores, [&json!(10), &json!(2), &json!(2.5), &json!(1)]);
        assert_eq!(evals[2]["max_score"], json!(2.5));
        assert_eq!(evals[1]["max_score"], json!(5));
        assert_eq!(
            a["recommendations"][0]["category"],
            json!("Установление контакта")
        );
        assert_eq!(a["agreements"], json!([]));
        assert_eq!(a["decline_reasons"], json!([]));
        assert_eq!(expected_score(3, 3.5), 1.0);
        assert_eq!(expected_score(1, 2.5), 1.0);
        assert_eq!(expected_score(2, 2.5), 2.5);
    }

    #[test]
    fn a_marker_makes_the_recommendation_a_formula() {
        let a = analysis_for_prompt(&prompt("client: [recommendation:formula]"));
        assert_eq!(
            a["recommendations"][0]["recommendation"],
            json!(FORMULA_RECOMMENDATION)
        );
        let plain = analysis_for_prompt(&prompt("client: здравствуйте"));
        assert_eq!(
            plain["recommendations"][0]["recommendation"],
            json!("Задавать открытые вопросы")
        );
    }

    #[test]
    fn markers_add_agreements_declines_or_turn_off_sales() {
        let a = analysis_for_prompt(&prompt(
            "client: беру [agreement:15000] и ещё [agreement:2500,5] [decline]",
        ));
        assert_eq!(
            a["agreements"],
            json!([
                {"amount": 15000, "agreement": "Оформлен заказ на 15000 руб."},
                {"amount": 2500.5, "agreement": "Оформлен заказ на 2500,5 руб."},
            ])
        );
        assert_eq!(a["decline_reasons"][0]["reason_type"], json!("price"));
        let t = analysis_for_prompt(&prompt(
            "client: Беру, [agreement:text] итого 15 000 рублей, доставка 7 августа.",
        ));
        assert_eq!(
            t["agreements"],
            json!([{"amount": 15000, "agreement": "Оформлен заказ на 15000 руб."}])
        );
        let masked = analysis_for_prompt(&prompt("client: [agreement:text] итого [СУММА] руб."));
        assert_eq!(masked["agreements"], json!([]));
        let n = analysis_for_prompt(&prompt("client: [not-sales] [agreement:1]"));
        assert_eq!(n["is_sales_call"], json!(false));
        assert_eq!(n["evaluations"], json!([]));
        assert_eq!(n["agreements"], json!([]));
    }

    #[test]
    fn quotes_come_from_the_transcript_when_asked_for() {
        let p = prompt("operator: Добрый день! Меня зовут Анна.\nclient: Слушаю вас внимательно.");
        assert_eq!(
            analysis_for_prompt(&p)["evaluations"][0].get("evidence"),
            None
        );
        let a = analysis_for_request(&p, true);
        let quotes: Vec<&str> = a["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["evidence"].as_str().unwrap())
            .collect();
        assert_eq!(
            quotes,
            [
                "Добрый день! Меня зовут Анна.",
                "Слушаю вас внимательно.",
                "Добрый день! Меня зовут Анна.",
                "Слушаю вас внимательно.",
            ]
        );
        let near = analysis_for_request(&format!("{p}\nclient: [evidence:near]"), true);
        assert_eq!(
            near["evaluations"][0]["evidence"],
            "доббрый день меня зовут анна"
        );
        assert_eq!(
            near["evaluations"][1]["evidence"],
            "слушаю вас вниимательно"
        );
        let invented = analysis_for_request(&format!("{p}\nclient: [evidence:invented]"), true);
        assert_eq!(invented["evaluations"][0]["evidence"], INVENTED_QUOTE);
        assert_eq!(
            invented["evaluations"][1]["evidence"],
            "Слушаю вас внимательно."
        );
        let none = analysis_for_request(&format!("{p}\nclient: [no-evidence]"), true);
        assert_eq!(none["evaluations"][0].get("evidence"), None);
        let zero = analysis_for_request(&format!("{p}\nclient: [score-zero]"), true);
        assert_eq!(zero["evaluations"][0]["score_given"], 0);
        assert_eq!(zero["evaluations"][0]["evidence"], "");
    }

    #[test]
    fn content_refuses_or_fences_as_asked() {
        let once = prompt("[invalid-once]");
        assert_eq!(content_for(&once, true, false, &|_, s, _| s), REFUSAL);
        assert!(
            serde_json::from_str::<Value>(&content_for(&once, false, false, &|_, s, _| s)).is_ok()
        );
        assert_eq!(
            content_for(&prompt("[invalid-always]"), false, false, &|_, s, _| s),
            REFUSAL
        );
        let fenced = content_for(&prompt("[fenced]"), true, false, &|_, s, _| s);
        assert!(fenced.starts_with("Вот оценка:\n```json\n{"));
        assert!(fenced.ends_with("}\n```\nГотово."));
        let inner = fenced
            .trim_start_matches("Вот оценка:\n```json\n")
            .trim_end_matches("\n```\nГотово.");
        assert_eq!(
            serde_json::from_str::<Value>(inner).unwrap(),
            analysis_for_prompt(&prompt("[fenced]"))
        );
    }
}
