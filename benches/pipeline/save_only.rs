//! The save path alone: `Store::save_call` of realistic analyses from a few concurrent
//! tasks, no HTTP and no LLM, to see how many scored calls per second the database side
//! can take.

use std::path::Path;
use std::time::{Duration, Instant};

use callq::config::Env;
use callq::domain::{Agreement, Analysis, DeclineReason, Evaluation, Recommendation, Usage};
use callq::store::{CallRecord, Store};
use chrono::NaiveTime;
use futures::StreamExt;

use super::{DEPARTMENT, TestDb, day};
use super::{cpu, dialogue};

/// Concurrent `save_call` tasks (and pool connections).
pub const TASKS: usize = 4;
/// Phrases of each saved transcript: about 3 KB of text.
const TRANSCRIPT_PHRASES: usize = 24;
const OPERATOR: i32 = 5512;

#[derive(Debug, Clone)]
pub struct SaveRow {
    pub calls: usize,
    pub tasks: usize,
    pub seconds: f64,
    pub per_second: f64,
    /// Rows in `calls` afterwards; must equal `calls`.
    pub rows: i64,
    pub transcript_bytes: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// CPU time of this process (the save's client) and of PostgreSQL over the saves.
    pub cpu: cpu::Spent,
}

/// The analysis of a thorough sales call: 15 criteria in 5 categories with quoted reasons,
/// three recommendations, one agreement and one decline reason.
pub fn analysis() -> Analysis {
    let categories = [
        "Установление контакта",
        "Выявление потребностей",
        "Презентация продукта",
        "Работа с возражениями",
        "Завершение звонка",
    ];
    let criteria = [
        "Приветствие и представление",
        "Обращение по имени",
        "Открытые вопросы о целях клиента",
        "Уточнение бюджета",
        "Презентация выгод, а не свойств",
        "Работа с возражением о ставке",
        "Предложение дополнительного продукта",
        "Резюме договорённостей",
        "Прощание",
        "Темп и вежливость речи",
        "Отсутствие слов-паразитов",
        "Проверка понимания клиентом условий",
        "Фиксация следующего шага",
        "Соблюдение скрипта",
        "Оформление заявки в разговоре",
    ];
    let evaluations: Vec<Evaluation> = criteria
        .iter()
        .enumerate()
        .map(|(i, criterion)| {
            let max_score = if i % 3 == 0 { 10.0 } else { 5.0 };
            Evaluation {
                category: categories[i / 3].to_string(),
                criterion: criterion.to_string(),
                score: if i % 2 == 0 { max_score } else { max_score / 2.0 },
                max_score,
                reason: format!(
                    "Критерий «{criterion}» выполнен {}: оператор сказал «Хорошо. Тогда могу предложить карту \
                     „Пример Плюс“: до пятидесяти пяти дней без процентов», клиент ответил по существу.",
                    if i % 2 == 0 { "полностью" } else { "частично" }
                ),
                evidence: Some("Тогда могу предложить карту „Пример Плюс“".into()),
                evidence_verified: Some(true),
            }
        })
        .collect();
    let total_score: f64 = evaluations.iter().map(|e| e.score).sum();
    let max_score: f64 = evaluations.iter().map(|e| e.max_score).sum();
    Analysis {
        is_sales_call: true,
        total_score,
        max_score,
        performance_percentage: (100.0 * total_score / max_score).floor() as i32,
        evaluations,
        recommendations: vec![
            Recommendation {
                category: "Выявление потребностей".into(),
                issue: "Бюджет клиента не уточнён до презентации".into(),
                recommendation: "Спросите о комфортном ежемесячном платеже до того, как называть лимит карты."
                    .into(),
                priority: "high".into(),
            },
            Recommendation {
                category: "Работа с возражениями".into(),
                issue: "Ответ о ставке без примера расчёта".into(),
                recommendation: "Приведите пример: сколько клиент заплатит при лимите 50 000 рублей, если не уложится в льготный период."
                    .into(),
                priority: "medium".into(),
            },
            Recommendation {
                category: "Завершение звонка".into(),
                issue: "Не назван следующий шаг после СМС".into(),
                recommendation: "Скажите, что курьер позвонит за час до приезда.".into(),
                priority: "low".into(),
            },
        ],
        agreements: vec![Agreement {
            amount: Some(50_000.0),
            agreement: "Оформление кредитной карты «Пример Плюс» с лимитом 50 000 рублей, доставка в субботу утром"
                .into(),
        }],
        decline_reasons: vec![DeclineReason {
            reason_type: "Цена".into(),
            reason_description: "Клиент отказался от страховки по карте: считает её дорогой".into(),
            product_category: "Страхование".into(),
        }],
        review_reasons: Vec::new(),
    }
}

/// Saves `calls` calls with [`TASKS`] concurrent tasks into a fresh, migrated database.
pub async fn run(calls: usize) -> SaveRow {
    let db = TestDb::create().await;
    let env = Env::load_with(
        Path::new("/nonexistent/callq-bench.env"),
        false,
        vec![("DATA_BASE".to_string(), db.url.clone())],
    );
    let settings = env
        .database()
        .expect("the test database URL is a valid DATA_BASE");
    let store = Store::connect(&settings, TASKS)
        .await
        .expect("connect to the benchmark database");
    store
        .migrate()
        .await
        .expect("migrate the benchmark database");
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO departments (id, name) VALUES ($1, 'Продажи')",
            &[&DEPARTMENT],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO operators (id, full_name, department_id) VALUES ($1, 'Иванова Анна', $2)",
            &[&OPERATOR, &DEPARTMENT],
        )
        .await
        .unwrap();

    let analysis = analysis();
    let transcript = dialogue::transcript_text(7, TRANSCRIPT_PHRASES);
    let opening = day().and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"));
    let phone = "79161234567";
    let meter = cpu::Meter::new(&client).await;
    let cpu_before = meter.read();
    let started = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(0..calls)
        .map(|i| {
            let (store, analysis, transcript) = (&store, &analysis, &transcript);
            async move {
                let start_local = opening + chrono::Duration::seconds(i as i64 * 3);
                let record = CallRecord {
                    id: 95_000_000 + i as i64,
                    start_local,
                    finish_local: Some(start_local + chrono::Duration::seconds(245)),
                    duration_s: 245,
                    direction: Some("outbound"),
                    phone: Some(phone),
                    operator_id: i64::from(OPERATOR),
                    department_id: DEPARTMENT,
                    transcript: Some(transcript),
                    analysis,
                    model: "gpt-test",
                    usage: Usage {
                        prompt_tokens: 2_400,
                        completion_tokens: 900,
                        cached_tokens: 1_600,
                    },
                    cost: Some(callq::domain::Cost {
                        usd: 0.0026,
                        source: callq::domain::CostSource::Prices,
                    }),
                    checklist_version: "3f2a9c1e5b7d",
                    prompt_version: "a41c07d2e9f3",
                    run_id: None,
                };
                store.save_call(&record).await.map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(TASKS)
        .collect()
        .await;
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    let cpu = meter.read().since(&cpu_before);
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM calls", &[])
        .await
        .unwrap()
        .get(0);
    drop(client);
    drop(store);
    let seconds = elapsed.as_secs_f64();
    SaveRow {
        calls,
        tasks: TASKS,
        seconds,
        per_second: (calls - errors.len()) as f64 / seconds,
        rows,
        transcript_bytes: transcript.len(),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        cpu,
    }
}
