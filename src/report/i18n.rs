//! The report's words in Russian and English, and how numbers are written in each.

use std::collections::BTreeMap;

use crate::config::ReportLang;
use crate::domain::ReviewReason;

/// (key, Russian, English).
const LABELS: &[(&str, &str, &str)] = &[
    ("title", "Качество звонков", "Call quality"),
    ("period", "Период", "Period"),
    ("department", "отдел", "department"),
    ("operator", "оператор", "operator"),
    ("all_departments", "все отделы", "all departments"),
    ("calls_scored", "Оценено звонков", "Calls scored"),
    ("not_sales", "Не продажи", "Not sales"),
    ("avg_pct", "Средний процент", "Average score"),
    ("vs_previous", "к прошлому периоду", "vs previous period"),
    ("previous", "прошлый период", "previous period"),
    ("pp", "п.п.", "pp"),
    ("trend", "Динамика по дням", "Trend by day"),
    (
        "legend_avg",
        "средний процент (левая ось)",
        "average score (left axis)",
    ),
    (
        "legend_calls",
        "оценено звонков (правая ось)",
        "calls scored (right axis)",
    ),
    ("operators", "Операторы", "Operators"),
    (
        "sort_hint",
        "Нажмите на заголовок столбца, чтобы отсортировать.",
        "Click a column header to sort.",
    ),
    ("col_operator", "Оператор", "Operator"),
    ("col_calls", "Звонков", "Calls"),
    ("col_not_sales", "Не продажи", "Not sales"),
    ("col_avg", "Средний %", "Average %"),
    ("col_trend", "Динамика", "Trend"),
    ("col_weakest", "Слабый критерий", "Weakest criterion"),
    (
        "heatmap",
        "Критерии: средняя доля от максимума",
        "Criteria: average share of the maximum",
    ),
    ("whole_department", "Все операторы", "All operators"),
    ("review", "Очередь на разбор", "Review queue"),
    (
        "review_none",
        "В очереди на разбор нет звонков за период.",
        "No calls in the review queue for the period.",
    ),
    ("reasons", "Причины", "Reasons"),
    ("failing", "Несработавшие критерии", "Failing criteria"),
    ("col_call", "Звонок", "Call"),
    ("col_day", "День", "Day"),
    (
        "recommendations",
        "Открытые рекомендации",
        "Open recommendations",
    ),
    (
        "no_recommendations",
        "Открытых рекомендаций нет.",
        "No open recommendations.",
    ),
    ("more", "ещё", "more"),
    ("details", "Операторы подробно", "Operators in detail"),
    (
        "no_data",
        "За период нет оценённых звонков.",
        "No scored calls in the period.",
    ),
    ("generated", "Сформировано", "Generated"),
    ("to_table", "↑ к таблице", "↑ to the table"),
    ("priority", "Приоритет", "Priority"),
    ("no_value", "—", "—"),
    ("calls_short", "звонков", "calls"),
    (
        "change_hint",
        "Изменение в процентах показано, когда в прошлом периоде было не меньше 20.",
        "A change in per cent is shown when the previous period had at least 20.",
    ),
    (
        "quote_not_found",
        "цитата не найдена в расшифровке",
        "quote not found in the transcript",
    ),
    (
        "quote_not_found_hint",
        "Модель привела эту цитату, но в расшифровке звонка её нет: проверьте оценку по записи.",
        "The model gave this quote, but the call's transcript does not contain it: check the score against the recording.",
    ),
    (
        "why_critical",
        "критичный критерий: 0 баллов",
        "critical criterion: 0 points",
    ),
    (
        "why_critical_possible",
        "0 баллов — возможно, критичный",
        "0 points — possibly the critical one",
    ),
    (
        "why_critical_possible_hint",
        "Звонок в очереди, потому что критичный критерий получил 0; какой из критериев с нулём критичный, отмечает чек-лист.",
        "The call is queued because a critical criterion scored 0; the checklist says which of the criteria at 0 is critical.",
    ),
    ("stability", "Стабильность модели", "Model stability"),
    (
        "stability_intro",
        "Каждую ночь модель заново оценивает один и тот же набор звонков с оценками контроля качества (CANARY_CALLS): совпадение с людьми и с собственными прежними оценками модели. Ночь отмечена, когда совпадение упало ниже медианы предыдущих ночей больше чем на допуск (CANARY_MARGIN); вертикальные линии — смена чек-листа, промпта, модели или звонков набора.",
        "Every night the model scores the same set of calls with QA scores again (CANARY_CALLS): agreement with people and with the model's own earlier scores. A night is marked when agreement fell below the median of the nights before by more than the margin (CANARY_MARGIN); vertical lines are a change of checklist, prompt, model or calls of the set.",
    ),
    (
        "stability_none",
        "Канарейка не запускалась: задайте CANARY_CALLS, чтобы видеть, не изменилась ли модель.",
        "The canary has not run: set CANARY_CALLS to see whether the model changes.",
    ),
    ("col_night", "Ночь", "Night"),
    ("col_status", "Статус", "Status"),
    ("col_exact", "Совпадение", "Exact"),
    ("col_within1", "±1 балл", "Within 1"),
    ("col_self", "С собой", "With itself"),
    ("col_median", "Медиана", "Median"),
    ("col_changes", "Изменения", "Changes"),
    (
        "legend_human",
        "совпадение с людьми",
        "agreement with people",
    ),
    (
        "legend_self",
        "совпадение с прежними оценками модели",
        "agreement with the model's earlier scores",
    ),
    (
        "stability_dropped",
        "упало больше допуска",
        "fell beyond the margin",
    ),
    ("status_ok", "оценено", "scored"),
    ("status_skipped", "не запускалась", "not run"),
    ("status_failed", "ошибка", "failed"),
    ("change_checklist", "чек-лист", "checklist"),
    ("change_prompt", "промпт", "prompt"),
    ("change_model", "модель", "model"),
    ("change_calls", "набор звонков", "calls of the set"),
    ("lost", "потеряно", "lost"),
    ("of", "из", "of"),
    ("points", "баллов", "points"),
];

/// What a review reason (`calls.review_reasons`, set by `crate::review::assess`) is called
/// on the page; None for a code this version does not know (shown as it is).
pub fn review_reason(lang: ReportLang, code: &str) -> Option<&'static str> {
    let reason = ReviewReason::ALL.into_iter().find(|r| r.as_str() == code)?;
    // Exhaustive, so a new reason cannot be added without its words.
    let (ru, en) = match reason {
        ReviewReason::LowScore => ("низкий процент", "low score"),
        ReviewReason::CriticalMissed => {
            ("критичный критерий на нуле", "critical criterion scored 0")
        }
        ReviewReason::UnverifiedEvidence => (
            "цитата не найдена в расшифровке",
            "quote not found in the transcript",
        ),
    };
    Some(match lang {
        ReportLang::Ru => ru,
        ReportLang::En => en,
    })
}

pub fn labels(lang: ReportLang) -> BTreeMap<&'static str, &'static str> {
    LABELS
        .iter()
        .map(|(k, ru, en)| {
            (
                *k,
                match lang {
                    ReportLang::Ru => *ru,
                    ReportLang::En => *en,
                },
            )
        })
        .collect()
}

pub fn code(lang: ReportLang) -> &'static str {
    match lang {
        ReportLang::Ru => "ru",
        ReportLang::En => "en",
    }
}

/// `78,5` in Russian, `78.5` in English; one decimal.
pub fn decimal(lang: ReportLang, v: f64) -> String {
    let s = format!("{v:.1}");
    match lang {
        ReportLang::Ru => s.replace('.', ","),
        ReportLang::En => s,
    }
}

/// `12 345` in Russian (a no-break space), `12,345` in English.
pub fn integer(lang: ReportLang, v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let sep = match lang {
        ReportLang::Ru => '\u{a0}',
        ReportLang::En => ',',
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

/// Points as the checklist writes them: `10`, `2,5` (`2.5` in English).
pub fn points(lang: ReportLang, v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        decimal(lang, v)
    }
}

/// A signed whole change: `+53`, `−4`, `0`.
pub fn signed_integer(lang: ReportLang, v: i64) -> String {
    match v.signum() {
        1 => format!("+{}", integer(lang, v)),
        -1 => format!("−{}", integer(lang, -v)),
        _ => "0".to_string(),
    }
}

/// A signed change: `+2,3`, `−1,0`, `0,0`.
pub fn signed(lang: ReportLang, v: f64) -> String {
    let text = decimal(lang, v.abs());
    if (v * 10.0).round() > 0.0 {
        format!("+{text}")
    } else if (v * 10.0).round() < 0.0 {
        format!("−{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_the_local_way() {
        assert_eq!(decimal(ReportLang::Ru, 78.46), "78,5");
        assert_eq!(decimal(ReportLang::En, 78.46), "78.5");
        assert_eq!(integer(ReportLang::Ru, 1_234_567), "1\u{a0}234\u{a0}567");
        assert_eq!(integer(ReportLang::En, 999), "999");
        assert_eq!(integer(ReportLang::En, -1000), "-1,000");
        assert_eq!(signed(ReportLang::Ru, 2.26), "+2,3");
        assert_eq!(signed(ReportLang::En, -1.0), "−1.0");
        assert_eq!(signed(ReportLang::En, 0.01), "0.0");
        assert_eq!(signed_integer(ReportLang::Ru, 5300), "+5\u{a0}300");
        assert_eq!(signed_integer(ReportLang::En, -4), "−4");
        assert_eq!(points(ReportLang::Ru, 2.5), "2,5");
        assert_eq!(points(ReportLang::En, 10.0), "10");
    }

    #[test]
    fn every_review_reason_has_words_in_both_languages() {
        for r in ReviewReason::ALL {
            for lang in [ReportLang::Ru, ReportLang::En] {
                let text = review_reason(lang, r.as_str()).expect("translated");
                assert!(!text.is_empty() && text != r.as_str(), "{r:?}");
            }
        }
        assert_eq!(
            review_reason(ReportLang::Ru, "unverified_evidence"),
            Some("цитата не найдена в расшифровке")
        );
        assert_eq!(review_reason(ReportLang::En, "something_new"), None);
    }

    #[test]
    fn both_languages_have_every_label() {
        for (k, ru, en) in LABELS {
            assert!(!ru.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(labels(ReportLang::En)["title"], "Call quality");
    }
}
