//! The report's words in Russian and English, and how numbers are written in each.

use std::collections::BTreeMap;

use crate::config::ReportLang;

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
];

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
    }

    #[test]
    fn both_languages_have_every_label() {
        for (k, ru, en) in LABELS {
            assert!(!ru.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(labels(ReportLang::En)["title"], "Call quality");
    }
}
