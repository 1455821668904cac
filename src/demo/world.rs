//! The demo's call centre: a directory of operators, a checklist and a day of calls as the
//! simulators serve them — some short, some by operators the directory lacks, some not
//! sales, some with phone numbers and e-mail addresses said aloud, some "quoted" by the
//! model with words nobody said.

use callq_fakes::FakeCall;
use chrono::{NaiveDate, NaiveTime};

/// The demo's department, far from real ids so a shared database is not mixed up.
pub const DEPARTMENT: i32 = 901;
pub const DEPARTMENT_NAME: &str = "Демо: отдел продаж";

/// The sample checklist (the same file the README shows), as the Sheets simulator serves it.
const CHECKLIST_CSV: &str = include_str!("../../examples/criteria.sample.csv");
/// The department prompt template shipped in prompts/.
pub const PROMPT: &str = include_str!("../../prompts/department1.txt");

/// (id, directory name, T-Bank's spelling, skill 0–100).
pub const OPERATORS: &[(i32, &str, &str, u32)] = &[
    (990_101, "Иванова Анна Сергеевна", "Иванова Анна", 88),
    (990_102, "Петров Иван Олегович", "ПЕТРОВ ИВАН", 64),
    (
        990_103,
        "Сидорова Елена Викторовна",
        "Менеджер Сидорова Елена",
        76,
    ),
    (990_104, "Кузнецов Павел", "Кузнецов Павел Андреевич", 45),
    (990_105, "Смирнова Ольга", "Смирнова Ольга", 93),
    (990_106, "Орлов Дмитрий", "Оператор Орлов Дмитрий", 57),
];

/// Names T-Bank lists that the directory does not know: their calls are not scored.
pub const UNKNOWN: &[&str] = &["Новиков Артём (стажёр)", "Волкова Мария"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Scored.
    Sale,
    /// Judged not a sales call.
    NotSales,
    /// Shorter than MIN_CALL_DURATION_S: skipped from the listing.
    Short,
    /// An operator not in the directory.
    Unknown,
}

/// What kind of call the i-th one is; a fixed pattern so tests know the counts.
pub fn kind(i: usize) -> Kind {
    match i % 20 {
        3 | 15 => Kind::Unknown,
        7 => Kind::Short,
        11 | 18 => Kind::NotSales,
        _ => Kind::Sale,
    }
}

/// The checklist sheet's rows: the sample CSV, header included, as Sheets returns them.
pub fn checklist_rows() -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(CHECKLIST_CSV.as_bytes());
    reader
        .records()
        .map(|r| {
            r.expect("the embedded sample checklist is valid CSV")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// The calls of `days` days ending with `last`, `per_day` each.
pub fn calls(last: NaiveDate, days: u32, per_day: usize) -> Vec<FakeCall> {
    let mut out = Vec::new();
    for d in 0..days {
        let day = last - chrono::Days::new(u64::from(days - 1 - d));
        // Later days a little better, so the trend shows movement.
        let drift = d * 2;
        for i in 0..per_day {
            out.push(call(day, d as usize * per_day + i, i, per_day, drift));
        }
    }
    out
}

fn call(day: NaiveDate, n: usize, i: usize, per_day: usize, drift: u32) -> FakeCall {
    let opening = day.and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"));
    let spacing = 36_000 / per_day.max(1) as i64;
    let kind = kind(i);
    let (operator_id, operator_name, skill) = match kind {
        Kind::Unknown => {
            let u = usize::from(i % 20 == 15);
            (880_000 + u as i64, UNKNOWN[u].to_string(), 60)
        }
        _ => {
            let (id, _, tbank_name, skill) =
                OPERATORS[(i * 5 + n / per_day.max(1)) % OPERATORS.len()];
            (i64::from(id), tbank_name.to_string(), skill)
        }
    };
    // Each call of an operator varies around their skill.
    let quality = (skill + drift + (i as u32 * 13) % 17)
        .saturating_sub(8)
        .min(100);
    let mut phrases = vec![
        (
            true,
            "Добрый день! Компания «Пример», меня зовут Анна. Удобно говорить?".to_string(),
        ),
        (false, "Да, слушаю.".to_string()),
        (
            true,
            "Какие задачи по закупкам у вас на этот квартал?".to_string(),
        ),
        (
            false,
            "Нужна бумага и картриджи для офиса на 40 человек.".to_string(),
        ),
    ];
    if i % 5 == 2 {
        phrases.push((
            false,
            format!(
                "Запишите мой номер: +7 916 {:03}-{:02}-{:02}, почта ivanov{i}@example.ru",
                100 + i % 900,
                i % 100,
                (i * 7) % 100
            ),
        ));
    }
    match kind {
        Kind::NotSales => {
            phrases.clear();
            phrases.push((true, "Компания «Пример», слушаю вас.".to_string()));
            phrases.push((
                false,
                "Я только узнать статус доставки по заказу 4417. [not-sales]".to_string(),
            ));
        }
        _ => {
            phrases.push((
                true,
                "Предлагаю оформить заказ сегодня — доставим завтра.".to_string(),
            ));
            if i % 4 == 1 {
                phrases.push((
                    false,
                    format!(
                        "Давайте, оформляем на {} рублей. [agreement:{}]",
                        10_000 + i * 150,
                        10_000 + i * 150
                    ),
                ));
            } else if i % 4 == 2 {
                phrases.push((false, "Дорого, я подумаю. [decline]".to_string()));
            }
            // Now and then the model "quotes" what nobody said: the review queue shows it.
            if i % 10 == 6 {
                phrases.push((false, "[evidence:invented]".to_string()));
            }
            phrases.push((false, format!("[quality:{quality}]")));
        }
    }
    FakeCall {
        segment_id: 700_000_000 + n as i64,
        start: opening + chrono::Duration::seconds(spacing * i as i64),
        duration_s: if kind == Kind::Short {
            12
        } else {
            90 + (i as i64 * 53) % 600
        },
        operator_id,
        operator_login: format!("op{operator_id}"),
        operator_name,
        direction: if i.is_multiple_of(3) {
            "inbound"
        } else {
            "outbound"
        }
        .to_string(),
        phone: format!("7916{:07}", 3_000_000 + n),
        phrases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_has_every_kind_of_call() {
        let day = NaiveDate::from_ymd_opt(2025, 8, 7).unwrap();
        let calls = calls(day, 1, 60);
        assert_eq!(calls.len(), 60);
        let count = |k: Kind| (0..60).filter(|i| kind(*i) == k).count();
        assert_eq!(
            (
                count(Kind::Sale),
                count(Kind::NotSales),
                count(Kind::Short),
                count(Kind::Unknown)
            ),
            (45, 6, 3, 6)
        );
        assert!(
            calls
                .iter()
                .any(|c| c.phrases.iter().any(|(_, t)| t.contains("+7 916")))
        );
        let ids: std::collections::HashSet<i64> = calls.iter().map(|c| c.segment_id).collect();
        assert_eq!(ids.len(), 60);
        let rows = checklist_rows();
        assert!(rows.len() > 10 && rows[0][0] == "Показатель");
    }
}
