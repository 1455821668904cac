//! Ready-made data for tests and benchmarks: a department's checklist and instruction
//! sheets as Google would hold them, and a day of calls by a few operators.

use chrono::{NaiveDate, NaiveTime};

use crate::FakeCall;

/// Sheet names as callq's `.env` files would name them: Cyrillic, with spaces.
pub const CHECKLIST_SHEET: &str = "Чек-лист отдел 1";
pub const INSTRUCTIONS_SHEET: &str = "Промпт для ИИ";

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// A checklist sheet: header, three categories with seven criteria (one scored "2,5",
/// one without conditions, so its row is shorter), the empty row that ends the
/// checklist, and junk after it that would be a layout error if it were read.
pub fn sample_checklist_rows() -> Vec<Vec<String>> {
    vec![
        row(&[
            "Показатель",
            "Комментарий",
            "Максимальный балл",
            "Условия оценки",
        ]),
        row(&["Установление контакта"]),
        row(&[
            "Приветствие",
            "Оператор поздоровался, представился и назвал компанию",
            "10",
            "10 — всё сказано; 5 — что-то пропущено; 0 — не представился",
        ]),
        row(&[
            "Обращение по имени",
            "Называет клиента по имени хотя бы дважды",
            "5",
            "5 — два раза и больше; 0 — ни разу",
        ]),
        row(&["Выявление потребностей"]),
        row(&[
            "Открытые вопросы",
            "Задаёт открытые вопросы о целях клиента",
            "10",
            "10 — три вопроса и больше; 5 — один-два; 0 — ни одного",
        ]),
        row(&[
            "Уточнение бюджета",
            "Спрашивает о бюджете",
            "2,5",
            "2,5 — спросил; 0 — нет",
        ]),
        row(&["Презентация", "", "5"]),
        row(&["Завершение звонка"]),
        row(&[
            "Резюме договорённостей",
            "Повторяет, о чём договорились",
            "5",
            "5 — повторил всё; 0 — не повторил",
        ]),
        row(&[
            "Прощание",
            "Вежливо прощается",
            "1",
            "1 — попрощался; 0 — нет",
        ]),
        row(&[]),
        row(&["Заметки руководителя (не часть чек-листа)"]),
        row(&["Черновик", "не оценивать", "много", "—"]),
        row(&["", "", "", "ячейка без показателя"]),
    ]
}

/// (category, criterion, max score) of [`sample_checklist_rows`], in sheet order.
pub fn sample_checklist_criteria() -> Vec<(String, String, f64)> {
    [
        ("Установление контакта", "Приветствие", 10.0),
        ("Установление контакта", "Обращение по имени", 5.0),
        ("Выявление потребностей", "Открытые вопросы", 10.0),
        ("Выявление потребностей", "Уточнение бюджета", 2.5),
        ("Выявление потребностей", "Презентация", 5.0),
        ("Завершение звонка", "Резюме договорённостей", 5.0),
        ("Завершение звонка", "Прощание", 1.0),
    ]
    .into_iter()
    .map(|(cat, crit, max)| (cat.to_string(), crit.to_string(), max))
    .collect()
}

/// The instructions sheet (`…!A:B`): column A of each non-empty row is one paragraph of
/// `{custom_instructions}`; column B holds notes for people; one empty row in between.
pub fn sample_instructions_rows() -> Vec<Vec<String>> {
    vec![
        row(&["Оценивай только по критериям чек-листа.", "общее правило"]),
        row(&["Причину оценки подтверждай дословной цитатой из разговора."]),
        row(&[]),
        row(&["Если звонок не продажный, верни is_sales_call = false."]),
    ]
}

/// The paragraphs callq should take from [`sample_instructions_rows`].
pub fn sample_instructions() -> Vec<String> {
    sample_instructions_rows()
        .into_iter()
        .filter_map(|r| r.into_iter().next().filter(|a| !a.trim().is_empty()))
        .collect()
}

/// (id, login, full name) of the operators [`sample_calls`] uses.
pub fn sample_operators() -> Vec<(i64, String, String)> {
    [
        (5512, "ivanova.a", "Иванова Анна"),
        (5513, "petrov.i", "Петров Иван"),
        (5514, "sidorova.e", "Сидорова Елена Викторовна"),
    ]
    .into_iter()
    .map(|(id, login, name)| (id, login.to_string(), name.to_string()))
    .collect()
}

/// `n` calls on `day` between 09:00 and about 19:00, segment ids from 90_000_000,
/// operators round-robin, every call long enough to score and transcribed with a short
/// sales dialogue. Tests add markers to `phrases` to steer the fake LLM.
pub fn sample_calls(day: NaiveDate, n: usize) -> Vec<FakeCall> {
    let operators = sample_operators();
    let opening = day.and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"));
    let spacing_s = if n == 0 { 0 } else { 36_000 / n as i64 };
    (0..n)
        .map(|i| {
            let (operator_id, login, name) = operators[i % operators.len()].clone();
            let first_name = name.split_whitespace().nth(1).unwrap_or("").to_string();
            FakeCall {
                segment_id: 90_000_000 + i as i64,
                start: opening + chrono::Duration::seconds(spacing_s * i as i64),
                duration_s: 60 + (i as i64 * 37) % 600,
                operator_id,
                operator_login: login,
                operator_name: name,
                direction: if i % 4 == 3 { "inbound" } else { "outbound" }.to_string(),
                phone: format!("7916{:07}", 1_234_567 + i),
                phrases: vec![
                    (
                        true,
                        format!("Добрый день! Меня зовут {first_name}, компания «Пример»."),
                    ),
                    (false, "Здравствуйте.".to_string()),
                    (
                        true,
                        "Подскажите, какие у вас планы на кредитную карту?".to_string(),
                    ),
                    (false, "Хочу карту с кешбэком на продукты.".to_string()),
                    (true, "Оформим карту с кешбэком, всего доброго!".to_string()),
                ],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_rows_end_with_an_empty_row_then_junk() {
        let rows = sample_checklist_rows();
        let end = rows.iter().position(Vec::is_empty).unwrap();
        let criteria = rows[1..end].iter().filter(|r| r.len() >= 2).count();
        assert_eq!(criteria, sample_checklist_criteria().len());
        assert!(end + 1 < rows.len());
        assert!(rows.iter().any(|r| r.get(2).is_some_and(|s| s == "2,5")));
    }

    #[test]
    fn sample_calls_are_distinct_and_within_the_day() {
        let day = NaiveDate::from_ymd_opt(2025, 8, 7).unwrap();
        let calls = sample_calls(day, 500);
        assert_eq!(calls.len(), 500);
        assert!(
            calls
                .iter()
                .all(|c| c.start.date() == day && c.duration_s >= 60)
        );
        let ids: std::collections::HashSet<i64> = calls.iter().map(|c| c.segment_id).collect();
        assert_eq!(ids.len(), 500);
        assert_eq!(sample_instructions().len(), 3);
    }
}
