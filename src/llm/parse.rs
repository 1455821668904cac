//! From the model's answer to a validated [`Analysis`].
//!
//! Models wrap JSON in fences, put prose around it, write numbers as strings with a
//! decimal comma and misspell criteria. The rules below are the old tool's, which the
//! dashboards rely on; totals are always recomputed here, never taken from the model.

use serde_json::{Map, Value};
use strsim::normalized_levenshtein;

use crate::domain::{Agreement, Analysis, Checklist, DeclineReason, Evaluation, Recommendation};

/// Why an answer is unusable. The client asks the model again on any of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the answer holds no JSON analysis object ({detail})")]
    NoAnalysis { detail: String },
    #[error("`{field}` is {found}, expected {expected}")]
    WrongType {
        field: &'static str,
        found: &'static str,
        expected: &'static str,
    },
    #[error("a sales call without one usable evaluation ({offered} offered{})",
        first_dropped.as_deref().map(|d| format!("; first dropped: {d}")).unwrap_or_default())]
    NoEvaluations {
        offered: usize,
        first_dropped: Option<String>,
    },
}

/// An analysis plus one line per thing the parser dropped or defaulted, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedAnswer {
    pub analysis: Analysis,
    pub notes: Vec<String>,
}

/// Parses and normalises the model's answer against `checklist`.
pub fn parse_analysis(content: &str, checklist: &Checklist) -> Result<Analysis, ParseError> {
    parse_analysis_with_notes(content, checklist).map(|p| p.analysis)
}

/// [`parse_analysis`], also saying what was dropped or defaulted and why.
///
/// Decisions where the contract is silent:
/// - `is_sales_call` missing or unreadable counts as `true`, as in the old tool; the
///   call must then have evaluations to be accepted.
/// - A call that is not a sales call keeps its agreements and decline reasons (facts
///   about the client) and drops its evaluations and recommendations (coaching against
///   a checklist that did not apply); its totals are 0.
/// - Scores are clamped to the checklist's max for the matched criterion, and
///   `max_score` is the checklist's: the model's own max is required to be present
///   (the old rule) but its value is not trusted.
pub fn parse_analysis_with_notes(
    content: &str,
    checklist: &Checklist,
) -> Result<ParsedAnswer, ParseError> {
    let root = extract_analysis_object(content)?;
    let mut notes = Vec::new();

    let is_sales_call = match root.get("is_sales_call") {
        None | Some(Value::Null) => {
            notes.push("is_sales_call missing: taken as true".to_string());
            true
        }
        Some(v) => boolean(v).unwrap_or_else(|| {
            notes.push(format!("is_sales_call is {}: taken as true", kind(v)));
            true
        }),
    };

    let agreements = list(&root, "agreements", &mut notes)
        .iter()
        .filter_map(|v| agreement(v, &mut notes))
        .collect();
    let decline_reasons = list(&root, "decline_reasons", &mut notes)
        .iter()
        .filter_map(|v| decline_reason(v, &mut notes))
        .collect();

    if !is_sales_call {
        return Ok(ParsedAnswer {
            analysis: Analysis {
                is_sales_call: false,
                agreements,
                decline_reasons,
                ..Analysis::default()
            },
            notes,
        });
    }

    let matcher = Matcher::new(checklist);
    let offered = match root.get("evaluations") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => {
            return Err(ParseError::WrongType {
                field: "evaluations",
                found: kind(other),
                expected: "a list",
            });
        }
    };
    let mut taken = vec![false; checklist.criteria.len()];
    let mut evaluations = Vec::new();
    let mut first_dropped = None;
    for (i, v) in offered.iter().enumerate() {
        match evaluation(v, checklist, &matcher, &mut taken) {
            Ok(e) => evaluations.push(e),
            Err(why) => {
                let line = format!("evaluation #{} dropped: {why}", i + 1);
                first_dropped.get_or_insert_with(|| why.clone());
                notes.push(line);
            }
        }
    }
    if evaluations.is_empty() {
        return Err(ParseError::NoEvaluations {
            offered: offered.len(),
            first_dropped,
        });
    }
    let missing: Vec<&str> = checklist
        .criteria
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(c, _)| c.indicator.as_str())
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "{} criteria not evaluated: {}",
            missing.len(),
            short(&missing.join("; "))
        ));
    }

    let recommendations = list(&root, "recommendations", &mut notes)
        .iter()
        .filter_map(|v| recommendation(v, &matcher, &mut notes))
        .collect();

    let total_score: f64 = evaluations.iter().map(|e| e.score).sum();
    let max_score: f64 = evaluations.iter().map(|e| e.max_score).sum();
    Ok(ParsedAnswer {
        analysis: Analysis {
            is_sales_call: true,
            total_score,
            max_score,
            performance_percentage: percentage(total_score, max_score),
            evaluations,
            recommendations,
            agreements,
            decline_reasons,
            review_reasons: Vec::new(),
        },
        notes,
    })
}

/// `floor(100·total/max)`, 0 when max is 0. The epsilon keeps 0.1+0.2-style sums from
/// landing a hair under a whole percentage.
pub fn percentage(total: f64, max: f64) -> i32 {
    if max <= 0.0 {
        return 0;
    }
    (100.0 * total / max + 1e-9).floor() as i32
}

/// Finds the analysis object in the answer: tries a real JSON parse from every `{`
/// (fences and prose around it are skipped that way) and takes the first, hence
/// outermost, object that has the analysis' keys.
fn extract_analysis_object(content: &str) -> Result<Map<String, Value>, ParseError> {
    let mut first_error: Option<String> = None;
    let mut saw_object = false;
    for (at, _) in content.match_indices('{') {
        let mut values = serde_json::Deserializer::from_str(&content[at..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(Value::Object(mut m))) => {
                if m.contains_key("evaluations") || m.contains_key("is_sales_call") {
                    // The model's text is stored: NUL (U+0000) would fail the call's save.
                    m.values_mut().for_each(crate::text::clean_json);
                    return Ok(m);
                }
                saw_object = true;
            }
            Some(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            _ => {}
        }
    }
    let detail = match (first_error, saw_object) {
        (Some(e), _) => format!("first JSON error: {e}"),
        (None, true) => "objects found, none with is_sales_call or evaluations".to_string(),
        (None, false) => format!("no '{{' in {} characters", content.chars().count()),
    };
    Err(ParseError::NoAnalysis { detail })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Model text for a log line: one line, at most 80 characters.
fn short(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = one_line.chars().take(80).collect();
    if one_line.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// A list field; a single object counts as a list of one, null or missing as empty.
fn list<'a>(root: &'a Map<String, Value>, field: &str, notes: &mut Vec<String>) -> &'a [Value] {
    match root.get(field) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(v @ Value::Object(_)) => std::slice::from_ref(v),
        Some(other) => {
            notes.push(format!("{field} is {}: ignored", kind(other)));
            &[]
        }
    }
}

/// A number given as a JSON number or a string: `5`, `"5"`, `"2,5"`, `"15 000"`.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let compact: String = s
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| if c == ',' { '.' } else { c })
                .collect();
            compact.parse::<f64>().ok()
        }
        _ => None,
    }
    .filter(|x| x.is_finite())
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "да" | "1" => Some(true),
            "false" | "no" | "нет" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A text field, trimmed; numbers and booleans as written, anything else empty.
fn text(obj: &Map<String, Value>, field: &str) -> String {
    match obj.get(field) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => String::new(),
    }
}

/// Lowercase letters and digits only, `ё` read as `е`: what "the same name" means.
///
/// Every name of every answer (and of the checklist, per answer) goes through it: ASCII
/// and Cyrillic are decided without Unicode's tables.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match crate::evidence::fast_lower(c) {
            Some(Some(l)) => out.push(l),
            Some(None) => {}
            None if c.is_alphanumeric() => {
                out.extend(c.to_lowercase().map(|l| if l == 'ё' { 'е' } else { l }));
            }
            None => {}
        }
    }
    out
}

/// The index of the checklist criterion `category`/`criterion` names, matched as the
/// model's answers are: the criterion name decides (case, punctuation, `ё`, numbering and
/// small misspellings forgiven), the category settles ties. Human QA scores use it too.
pub fn match_criterion(checklist: &Checklist, category: &str, criterion: &str) -> Option<usize> {
    Matcher::new(checklist).criterion(category, criterion)
}

/// Close enough to be the same name misspelt: one wrong letter in ten.
const MATCH_THRESHOLD: f64 = 0.8;
/// Fuzzy scores this close count as a tie, settled by the category.
const TIE_MARGIN: f64 = 0.05;

/// Maps the model's category/criterion names back to the checklist's.
struct Matcher<'a> {
    checklist: &'a Checklist,
    criteria: Vec<String>,
    categories: Vec<String>,
}

impl<'a> Matcher<'a> {
    fn new(checklist: &'a Checklist) -> Matcher<'a> {
        Matcher {
            checklist,
            criteria: checklist
                .criteria
                .iter()
                .map(|c| normalise(&c.indicator))
                .collect(),
            categories: checklist
                .criteria
                .iter()
                .map(|c| normalise(&c.category))
                .collect(),
        }
    }

    /// The index of the criterion meant. The criterion name decides, in any category
    /// (models confuse categories); the category only settles ties, as a criterion name
    /// may repeat across categories.
    fn criterion(&self, category: &str, criterion: &str) -> Option<usize> {
        let name = normalise(criterion);
        if name.is_empty() {
            return None;
        }
        let cat = normalise(category);
        // An exact name only competes with other exact names, so when there is one no
        // edit distance is needed (the usual case: one per criterion of every answer).
        let exact: Vec<(usize, f64)> = self
            .criteria
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == name)
            .map(|(i, _)| (i, 1.0))
            .collect();
        let scored: Vec<(usize, f64)> = if exact.is_empty() {
            self.criteria
                .iter()
                .enumerate()
                .map(|(i, c)| (i, normalized_levenshtein(c, &name)))
                .collect()
        } else {
            exact
        };
        let best = scored.iter().map(|(_, s)| *s).fold(0.0, f64::max);
        if best < MATCH_THRESHOLD {
            return None;
        }
        // An exact name only competes with other exact names.
        let margin = if best == 1.0 { 0.0 } else { TIE_MARGIN };
        scored
            .iter()
            .filter(|(_, s)| *s >= best - margin)
            .map(|(i, s)| (*i, *s, category_similarity(&self.categories[*i], &cat)))
            // Ties on the category keep the earlier criterion (sheet order).
            .fold(None::<(usize, f64, f64)>, |acc, cand| match acc {
                Some(a) if (a.2, a.1) >= (cand.2, cand.1) => Some(a),
                _ => Some(cand),
            })
            .map(|(i, _, _)| i)
    }

    /// The checklist's spelling of a category, if `category` names one closely enough.
    fn category(&self, category: &str) -> Option<&'a str> {
        let cat = normalise(category);
        if cat.is_empty() {
            return None;
        }
        // The same name is the best there can be, and the first of them wins below too.
        if let Some(i) = self.categories.iter().position(|c| *c == cat) {
            return Some(self.checklist.criteria[i].category.as_str());
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, c) in self.categories.iter().enumerate() {
            let s = category_similarity(c, &cat);
            if s >= MATCH_THRESHOLD && best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| self.checklist.criteria[i].category.as_str())
    }
}

fn category_similarity(checklist: &str, model: &str) -> f64 {
    if checklist == model {
        1.0
    } else {
        normalized_levenshtein(checklist, model)
    }
}

fn evaluation(
    v: &Value,
    checklist: &Checklist,
    matcher: &Matcher,
    taken: &mut [bool],
) -> Result<Evaluation, String> {
    let Value::Object(obj) = v else {
        return Err(format!("is {}, not an object", kind(v)));
    };
    let category = text(obj, "category");
    let criterion = text(obj, "criterion");
    // Written only for an evaluation that is dropped.
    let dropped = |why: &str| format!("'{}' / '{}': {why}", short(&category), short(&criterion));
    let Some(score) = obj.get("score_given").and_then(number) else {
        return Err(dropped("no numeric score_given"));
    };
    if obj.get("max_score").and_then(number).is_none() {
        return Err(dropped("no numeric max_score"));
    }
    let Some(i) = matcher.criterion(&category, &criterion) else {
        return Err(dropped("matches no checklist criterion"));
    };
    if std::mem::replace(&mut taken[i], true) {
        return Err(dropped("criterion already evaluated"));
    }
    let c = &checklist.criteria[i];
    Ok(Evaluation {
        category: c.category.clone(),
        criterion: c.indicator.clone(),
        score: score.clamp(0.0, c.max_score.max(0.0)),
        max_score: c.max_score,
        reason: text(obj, "reason"),
        evidence: evidence(obj),
        evidence_verified: None,
    })
}

/// The quote behind the score. Missing or null is no quote, not an error: prompt-only
/// answers and old templates' answers may not have the field.
fn evidence(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("evidence") {
        None | Some(Value::Null) => None,
        Some(_) => Some(text(obj, "evidence")),
    }
}

fn recommendation(v: &Value, matcher: &Matcher, notes: &mut Vec<String>) -> Option<Recommendation> {
    let Value::Object(obj) = v else {
        notes.push(format!("recommendation dropped: is {}", kind(v)));
        return None;
    };
    let issue = text(obj, "issue");
    let recommendation = text(obj, "recommendation");
    if issue.is_empty() || recommendation.is_empty() {
        notes.push("recommendation dropped: no issue or no recommendation".to_string());
        return None;
    }
    let given = text(obj, "category");
    // A category outside the checklist ("Общее") is still a useful heading: kept as written.
    let category = matcher.category(&given).map_or(given, str::to_string);
    let priority = text(obj, "priority").to_lowercase();
    let priority = match priority.as_str() {
        "high" | "medium" | "low" => priority,
        _ => "medium".to_string(),
    };
    Some(Recommendation {
        category,
        issue,
        recommendation,
        priority,
    })
}

fn agreement(v: &Value, notes: &mut Vec<String>) -> Option<Agreement> {
    let Value::Object(obj) = v else {
        notes.push(format!("agreement dropped: is {}", kind(v)));
        return None;
    };
    let agreement = text(obj, "agreement");
    if agreement.is_empty() {
        notes.push("agreement dropped: no text".to_string());
        return None;
    }
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = number(v);
            if n.is_none() {
                // Not the value: the model may have copied words of the call into it.
                notes.push(format!(
                    "agreement amount is {} that is not a number: stored as null",
                    kind(v)
                ));
            }
            n
        }
    };
    Some(Agreement { amount, agreement })
}

fn decline_reason(v: &Value, notes: &mut Vec<String>) -> Option<DeclineReason> {
    let Value::Object(obj) = v else {
        notes.push(format!("decline reason dropped: is {}", kind(v)));
        return None;
    };
    let reason_description = text(obj, "reason_description");
    if reason_description.is_empty() {
        notes.push("decline reason dropped: no reason_description".to_string());
        return None;
    }
    Some(DeclineReason {
        reason_type: text(obj, "reason_type"),
        reason_description,
        product_category: text(obj, "product_category"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Criterion;
    use serde_json::json;

    fn crit(cat: &str, name: &str, max: f64) -> Criterion {
        Criterion::new(cat, name, max)
    }

    fn checklist() -> Checklist {
        Checklist {
            criteria: vec![
                crit("Приветствие", "Назвал имя и банк", 5.0),
                crit("Выявление потребностей", "Задал открытые вопросы", 10.0),
                crit("Презентация", "Озвучил кредитный лимит", 2.5),
                crit("Завершение", "Договорился о следующем шаге", 10.0),
            ],
            custom_instructions: String::new(),
        }
    }

    fn eval(cat: &str, crit: &str, score: Value, max: Value) -> Value {
        json!({"category": cat, "criterion": crit, "score_given": score, "max_score": max, "reason": "\"цитата\""})
    }

    fn answer(evals: Vec<Value>) -> Value {
        json!({
            "is_sales_call": true,
            "total_score": 999, "max_possible_score": 1, "performance_percentage": 100,
            "evaluations": evals,
            "recommendations": [],
            "agreements": [],
            "decline_reasons": []
        })
    }

    fn parse(v: &Value) -> Analysis {
        parse_analysis(&v.to_string(), &checklist()).unwrap()
    }

    #[test]
    fn plain_answer_is_taken_and_totals_recomputed() {
        let a = parse(&answer(vec![
            eval("Приветствие", "Назвал имя и банк", json!(5), json!(5)),
            eval(
                "Выявление потребностей",
                "Задал открытые вопросы",
                json!(7),
                json!(10),
            ),
            eval(
                "Презентация",
                "Озвучил кредитный лимит",
                json!(1.5),
                json!(2.5),
            ),
        ]));
        assert!(a.is_sales_call);
        assert_eq!(a.evaluations.len(), 3);
        assert_eq!(a.total_score, 13.5);
        assert_eq!(a.max_score, 17.5);
        // 100·13.5/17.5 = 77.14 → 77
        assert_eq!(a.performance_percentage, 77);
        assert_eq!(a.evaluations[0].reason, "\"цитата\"");
    }

    #[test]
    fn evidence_is_kept_as_given_and_may_be_missing() {
        let mut with = eval("Приветствие", "Назвал имя и банк", json!(5), json!(5));
        with["evidence"] = json!("  Меня зовут Анна, банк Пример ");
        let mut empty = eval(
            "Презентация",
            "Озвучил кредитный лимит",
            json!(0),
            json!(2.5),
        );
        empty["evidence"] = json!("");
        let mut null = eval(
            "Завершение",
            "Договорился о следующем шаге",
            json!(1),
            json!(10),
        );
        null["evidence"] = json!(null);
        let without = eval(
            "Выявление потребностей",
            "Задал открытые вопросы",
            json!(2),
            json!(10),
        );
        let a = parse(&answer(vec![with, empty, null, without]));
        let got: Vec<Option<&str>> = a
            .evaluations
            .iter()
            .map(|e| e.evidence.as_deref())
            .collect();
        assert_eq!(
            got,
            [Some("Меня зовут Анна, банк Пример"), Some(""), None, None]
        );
        assert!(a.evaluations.iter().all(|e| e.evidence_verified.is_none()));
    }

    #[test]
    fn fences_and_prose_around_the_json_are_skipped() {
        let body = answer(vec![eval(
            "Приветствие",
            "Назвал имя и банк",
            json!(3),
            json!(5),
        )]);
        for content in [
            format!("```json\n{body:#}\n```"),
            format!("Вот анализ {{как просили}}:\n```\n{body}\n```\nГотово. {{\"x\": 1}}"),
            format!("[{body}]"),
            format!("{{\"result\": {body}}}"),
        ] {
            let a =
                parse_analysis(&content, &checklist()).unwrap_or_else(|e| panic!("{content}: {e}"));
            assert_eq!(a.total_score, 3.0, "{content}");
        }
    }

    #[test]
    fn answers_without_an_analysis_are_errors() {
        for content in [
            "",
            "Не могу оценить звонок.",
            "```json\n{\"is_sales_call\": true, \"evaluations\": [",
            "{\"foo\": 1}",
        ] {
            let e = parse_analysis(content, &checklist()).unwrap_err();
            assert!(matches!(e, ParseError::NoAnalysis { .. }), "{content}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
        // A truncated answer must not be mistaken for its inner evaluation objects.
        let truncated = r#"{"is_sales_call": true, "evaluations": [{"category": "Приветствие", "criterion": "Назвал имя и банк", "score_given": 5, "max_score": 5}, "#;
        assert!(matches!(
            parse_analysis(truncated, &checklist()),
            Err(ParseError::NoAnalysis { .. })
        ));
    }

    #[test]
    fn scores_are_clamped_to_the_checklist_max() {
        let a = parse(&answer(vec![
            eval("Приветствие", "Назвал имя и банк", json!(8), json!(10)),
            eval(
                "Выявление потребностей",
                "Задал открытые вопросы",
                json!(-3),
                json!(10),
            ),
            eval(
                "Презентация",
                "Озвучил кредитный лимит",
                json!(2),
                json!(100),
            ),
        ]));
        let scores: Vec<(f64, f64)> = a
            .evaluations
            .iter()
            .map(|e| (e.score, e.max_score))
            .collect();
        assert_eq!(scores, vec![(5.0, 5.0), (0.0, 10.0), (2.0, 2.5)]);
        assert_eq!(a.total_score, 7.0);
        assert_eq!(a.max_score, 17.5);
        assert_eq!(a.performance_percentage, 40);
    }

    #[test]
    fn numbers_as_strings_with_decimal_comma() {
        let a = parse(&answer(vec![
            eval(
                "Презентация",
                "Озвучил кредитный лимит",
                json!("2,5"),
                json!("2,5"),
            ),
            eval("Приветствие", "Назвал имя и банк", json!(" 4 "), json!("5")),
        ]));
        assert_eq!(a.evaluations[0].score, 2.5);
        assert_eq!(a.evaluations[1].score, 4.0);
        assert_eq!(a.total_score, 6.5);
        assert_eq!(a.performance_percentage, 86);
    }

    #[test]
    fn evaluations_without_score_fields_are_dropped() {
        let p = parse_analysis_with_notes(
            &answer(vec![
                json!({"category": "Приветствие", "criterion": "Назвал имя и банк", "max_score": 5}),
                eval("Приветствие", "Назвал имя и банк", json!(null), json!(5)),
                eval("Приветствие", "Назвал имя и банк", json!("пять"), json!(5)),
                json!({"category": "Завершение", "criterion": "Договорился о следующем шаге", "score_given": 10}),
                eval("Выявление потребностей", "Задал открытые вопросы", json!(6), json!(10)),
            ])
            .to_string(),
            &checklist(),
        )
        .unwrap();
        assert_eq!(p.analysis.evaluations.len(), 1);
        assert_eq!(
            p.analysis.evaluations[0].criterion,
            "Задал открытые вопросы"
        );
        assert_eq!(p.analysis.total_score, 6.0);
        assert_eq!(p.analysis.max_score, 10.0);
        assert_eq!(p.analysis.performance_percentage, 60);
        assert_eq!(
            p.notes.iter().filter(|n| n.contains("dropped")).count(),
            4,
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn names_normalise_as_unicode_lowercasing_does() {
        // What `normalise` did before its ASCII/Cyrillic shortcut: the reference.
        fn reference(s: &str) -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .map(|c| if c == 'ё' { 'е' } else { c })
                .collect()
        }
        for s in [
            "1. Приветствие и представление",
            "ЁЛКА ёжик Ёж — «Работа с возражениями»!",
            "Straße ÉCOLE İstanbul naïve ½ №5 🙂 e-mail: A.B@C.RU",
            "",
        ] {
            assert_eq!(normalise(s), reference(s), "{s}");
        }
        assert_eq!(normalise("Ё-моё, ОК 2"), "емоеок2");
    }

    #[test]
    fn misspelt_names_map_back_to_the_checklist_spelling() {
        let a = parse(&answer(vec![
            // Case, spaces and punctuation.
            eval("приветствие ", "назвал ИМЯ, и банк.", json!(5), json!(5)),
            // A misspelt criterion in the wrong category: the criterion decides.
            eval("Презентация", "Задал открытые вопросы", json!(4), json!(10)),
            // Typos in both.
            eval(
                "Презентацыя",
                "Озвучил кредитный лемит",
                json!(1),
                json!(2.5),
            ),
            // ё for е and a numbered criterion.
            eval(
                "Завершение",
                "4. Договорился о следующём шаге",
                json!(10),
                json!(10),
            ),
        ]));
        let names: Vec<(&str, &str)> = a
            .evaluations
            .iter()
            .map(|e| (e.category.as_str(), e.criterion.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Приветствие", "Назвал имя и банк"),
                ("Выявление потребностей", "Задал открытые вопросы"),
                ("Презентация", "Озвучил кредитный лимит"),
                ("Завершение", "Договорился о следующем шаге"),
            ]
        );
        assert_eq!(normalise("Ёлка, ЁЖ!"), "елкаеж");
    }

    #[test]
    fn a_repeated_criterion_name_is_told_apart_by_category() {
        let mut c = checklist();
        c.criteria
            .push(crit("Завершение", "Назвал имя и банк", 3.0));
        let body = answer(vec![
            eval("завершение", "Назвал имя и банк", json!(3), json!(3)),
            eval("Приветствие", "Назвал имя и банк", json!(4), json!(5)),
        ]);
        let a = parse_analysis(&body.to_string(), &c).unwrap();
        assert_eq!(a.evaluations[0].category, "Завершение");
        assert_eq!(a.evaluations[0].max_score, 3.0);
        assert_eq!(a.evaluations[1].category, "Приветствие");
        assert_eq!(a.evaluations[1].max_score, 5.0);
    }

    #[test]
    fn unknown_and_duplicate_criteria_are_dropped_with_a_note() {
        let p = parse_analysis_with_notes(
            &answer(vec![
                eval("Приветствие", "Назвал имя и банк", json!(5), json!(5)),
                eval("Приветствие", "Улыбался голосом", json!(5), json!(5)),
                eval("Приветствие", "Назвал имя и банк", json!(1), json!(5)),
                eval("Выявление потребностей", "Назвал банк", json!(5), json!(5)),
            ])
            .to_string(),
            &checklist(),
        )
        .unwrap();
        assert_eq!(p.analysis.evaluations.len(), 1);
        assert_eq!(
            p.analysis.evaluations[0].score, 5.0,
            "the first one is kept"
        );
        let notes = p.notes.join("\n");
        assert!(
            notes.contains("'Приветствие' / 'Улыбался голосом': matches no checklist criterion"),
            "{notes}"
        );
        assert!(notes.contains("already evaluated"), "{notes}");
        assert!(notes.contains("'Назвал банк': matches no"), "{notes}");
        assert!(notes.contains("3 criteria not evaluated"), "{notes}");
    }

    #[test]
    fn a_sales_call_without_usable_evaluations_is_an_error() {
        let e = parse_analysis(
            &answer(vec![eval("Приветствие", "Улыбался", json!(5), json!(5))]).to_string(),
            &checklist(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a sales call without one usable evaluation (1 offered; first dropped: \
             'Приветствие' / 'Улыбался': matches no checklist criterion)"
        );
        let e = parse_analysis(&answer(vec![]).to_string(), &checklist()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a sales call without one usable evaluation (0 offered)"
        );
        let e = parse_analysis(
            r#"{"is_sales_call": true, "evaluations": "нет"}"#,
            &checklist(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "`evaluations` is a string, expected a list");
    }

    #[test]
    fn percentage_is_floored_and_zero_without_max() {
        assert_eq!(percentage(2.0, 3.0), 66);
        assert_eq!(percentage(0.0, 0.0), 0);
        assert_eq!(percentage(5.0, 5.0), 100);
        // 0.1+0.2 = 0.30000000000000004; 0.7+0.2 = 0.8999999999999999
        assert_eq!(percentage(0.7 + 0.2, 0.9), 100);
        assert_eq!(percentage(29.0, 50.0), 58);
    }

    #[test]
    fn recommendations_need_both_texts_and_get_a_valid_priority() {
        let mut body = answer(vec![eval(
            "Приветствие",
            "Назвал имя и банк",
            json!(5),
            json!(5),
        )]);
        body["recommendations"] = json!([
            {"category": "приветствие", "issue": "a", "recommendation": "b", "priority": "HIGH"},
            {"category": "Общее", "issue": "c", "recommendation": "d", "priority": "срочно"},
            {"category": "Завершение", "issue": "e", "recommendation": "f"},
            {"category": "Завершение", "issue": "", "recommendation": "g", "priority": "low"},
            {"category": "Завершение", "issue": "h", "priority": "low"},
            {"category": "Презентация", "issue": " i ", "recommendation": " j ", "priority": " Low "}
        ]);
        let r = parse(&body).recommendations;
        let got: Vec<(&str, &str, &str, &str)> = r
            .iter()
            .map(|r| {
                (
                    r.category.as_str(),
                    r.issue.as_str(),
                    r.recommendation.as_str(),
                    r.priority.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("Приветствие", "a", "b", "high"),
                ("Общее", "c", "d", "medium"),
                ("Завершение", "e", "f", "medium"),
                ("Презентация", "i", "j", "low"),
            ]
        );
    }

    #[test]
    fn agreements_need_text_and_amounts_are_numbers_or_null() {
        let mut body = answer(vec![eval(
            "Приветствие",
            "Назвал имя и банк",
            json!(5),
            json!(5),
        )]);
        body["agreements"] = json!([
            {"amount": 15000, "agreement": "карта"},
            {"amount": "150 000,50", "agreement": "кредит"},
            {"amount": null, "agreement": "перезвон"},
            {"amount": "много", "agreement": "вклад"},
            {"agreement": "без суммы"},
            {"amount": 100, "agreement": "  "},
            {"amount": 100}
        ]);
        let a = parse(&body).agreements;
        let got: Vec<(Option<f64>, &str)> =
            a.iter().map(|a| (a.amount, a.agreement.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(15000.0), "карта"),
                (Some(150000.5), "кредит"),
                (None, "перезвон"),
                (None, "вклад"),
                (None, "без суммы"),
            ]
        );
    }

    #[test]
    fn decline_reasons_need_a_description() {
        let mut body = answer(vec![eval(
            "Приветствие",
            "Назвал имя и банк",
            json!(5),
            json!(5),
        )]);
        body["decline_reasons"] = json!([
            {"reason_type": "Дорого", "reason_description": "ставка", "product_category": "Кредитная карта"},
            {"reason_type": "Дорого", "reason_description": ""},
            {"reason_description": "нет времени"}
        ]);
        let d = parse(&body).decline_reasons;
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].product_category, "Кредитная карта");
        assert_eq!(
            (d[1].reason_type.as_str(), d[1].reason_description.as_str()),
            ("", "нет времени")
        );
    }

    #[test]
    fn not_a_sales_call_keeps_agreements_and_declines_only() {
        let body = json!({
            "is_sales_call": false,
            "total_score": 10, "max_possible_score": 10, "performance_percentage": 100,
            "evaluations": [eval("Приветствие", "Назвал имя и банк", json!(5), json!(5))],
            "recommendations": [{"category": "Приветствие", "issue": "a", "recommendation": "b", "priority": "high"}],
            "agreements": [{"amount": null, "agreement": "перезвонить завтра"}],
            "decline_reasons": [{"reason_type": "Нет времени", "reason_description": "занят", "product_category": ""}]
        });
        let a = parse(&body);
        assert!(!a.is_sales_call);
        assert!(a.evaluations.is_empty());
        assert!(a.recommendations.is_empty());
        assert_eq!(a.agreements.len(), 1);
        assert_eq!(a.decline_reasons.len(), 1);
        assert_eq!(
            (a.total_score, a.max_score, a.performance_percentage),
            (0.0, 0.0, 0)
        );
        // Not a sales call needs no evaluations at all, and "false" as a string counts.
        let a = parse_analysis(r#"{"is_sales_call": "false"}"#, &checklist()).unwrap();
        assert!(!a.is_sales_call);
    }

    #[test]
    fn missing_is_sales_call_counts_as_a_sales_call() {
        let mut body = answer(vec![eval(
            "Приветствие",
            "Назвал имя и банк",
            json!(5),
            json!(5),
        )]);
        body.as_object_mut().unwrap().remove("is_sales_call");
        let p = parse_analysis_with_notes(&body.to_string(), &checklist()).unwrap();
        assert!(p.analysis.is_sales_call);
        assert_eq!(p.analysis.evaluations.len(), 1);
        assert!(p.notes.iter().any(|n| n.contains("is_sales_call missing")));
    }
}
