//! A call's save on its own (`Store::save_call`): one statement that upserts the call,
//! replaces its children and transcript, clears its failure and releases its run's claim —
//! all of it or nothing.

use std::path::Path;

use callq::config::Env;
use callq::domain::{
    Agreement, Analysis, Cost, CostSource, DeclineReason, Evaluation, Recommendation, ReviewReason,
    Usage,
};
use callq::store::{CallRecord, Store};
use chrono::NaiveTime;
use tokio_postgres::Client;

use crate::common::{DEPARTMENT, TestDb, day};

const OPERATOR: i32 = 7001;

async fn store_of(db: &TestDb) -> Store {
    let env = Env::load_with(
        Path::new("/nonexistent/callq-save.env"),
        false,
        vec![("DATA_BASE".to_string(), db.url.clone())],
    );
    let store = Store::connect(&env.database().expect("a valid DATA_BASE"), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO departments (id, name) VALUES ({DEPARTMENT}, 'Продажи');
             INSERT INTO operators (id, full_name, department_id)
                 VALUES ({OPERATOR}, 'Иванова Анна', {DEPARTMENT});"
        ))
        .await
        .unwrap();
    store
}

fn evaluation(i: usize, quote: Option<&str>, verified: Option<bool>) -> Evaluation {
    Evaluation {
        category: format!("Категория {}", i / 2),
        criterion: format!("Критерий {i}"),
        score: i as f64,
        max_score: 5.0,
        reason: format!("причина {i}"),
        evidence: quote.map(str::to_string),
        evidence_verified: verified,
    }
}

fn analysis(evaluations: Vec<Evaluation>, recommendations: usize, declines: usize) -> Analysis {
    Analysis {
        is_sales_call: true,
        total_score: 7.0,
        max_score: 15.0,
        performance_percentage: 46,
        evaluations,
        recommendations: (0..recommendations)
            .map(|i| Recommendation {
                category: "Презентация".into(),
                issue: format!("проблема {i}"),
                recommendation: format!("совет {i}"),
                priority: "high".into(),
            })
            .collect(),
        agreements: vec![Agreement {
            amount: Some(50_000.0),
            agreement: "карта".into(),
        }],
        decline_reasons: (0..declines)
            .map(|i| DeclineReason {
                reason_type: "Цена".into(),
                reason_description: format!("дорого {i}"),
                product_category: "Страхование".into(),
            })
            .collect(),
        review_reasons: vec![ReviewReason::LowScore, ReviewReason::UnverifiedEvidence],
    }
}

fn record<'a>(
    id: i64,
    analysis: &'a Analysis,
    transcript: Option<&'a str>,
    run_id: Option<i64>,
    operator_id: i64,
    cost: Option<Cost>,
) -> CallRecord<'a> {
    let start_local = day().and_time(NaiveTime::from_hms_opt(10, 0, 0).unwrap());
    CallRecord {
        id,
        start_local,
        finish_local: Some(start_local + chrono::Duration::seconds(120)),
        duration_s: 120,
        direction: Some("outbound"),
        phone: Some("79160000000"),
        operator_id,
        department_id: DEPARTMENT,
        transcript,
        analysis,
        model: "gpt-test",
        usage: Usage {
            prompt_tokens: 1000,
            completion_tokens: 200,
            cached_tokens: 800,
        },
        cost,
        checklist_version: "c1",
        prompt_version: "p1",
        run_id,
    }
}

/// Everything stored about call `id`, one line per row, in a stable order.
async fn rows_of(client: &Client, id: i64) -> Vec<String> {
    let mut out = Vec::new();
    for (table, sql) in [
        (
            "calls",
            "SELECT concat_ws(' ', run_id, operator_id, total_score, review_reasons::text, cost_source)
             FROM calls WHERE id = $1",
        ),
        (
            "evaluation",
            "SELECT concat_ws(' ', criterion, score, evidence, evidence_verified)
             FROM call_evaluations WHERE call_id = $1 ORDER BY criterion",
        ),
        (
            "recommendation",
            "SELECT issue FROM call_recommendations WHERE call_id = $1 ORDER BY issue",
        ),
        (
            "agreement",
            "SELECT agreement FROM agreements WHERE call_id = $1",
        ),
        (
            "decline",
            "SELECT reason_description FROM call_decline_reasons WHERE call_id = $1
             ORDER BY reason_description",
        ),
        (
            "transcript",
            "SELECT transcript FROM call_transcripts WHERE call_id = $1",
        ),
        (
            "failure",
            "SELECT stage FROM call_failures WHERE call_id = $1",
        ),
        (
            "claim",
            "SELECT run_id::text FROM call_claims WHERE call_id = $1",
        ),
    ] {
        for row in client.query(sql, &[&id]).await.unwrap() {
            out.push(format!("{table}: {}", row.get::<_, String>(0)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_replaces_the_calls_rows_clears_its_failure_and_releases_only_its_runs_claim() {
    let db = TestDb::create().await;
    let store = store_of(&db).await;
    let client = db.client().await;
    // Call 1 failed before and is claimed by run 7; call 2 is claimed by another run (9).
    client
        .batch_execute(
            "INSERT INTO call_failures (call_id, department_id, call_date, stage, error)
                 VALUES (1, 1, '2026-01-01', 'llm', 'timeout');
             INSERT INTO call_claims (call_id, run_id) VALUES (1, 7), (2, 9);",
        )
        .await
        .unwrap();

    let first = analysis(
        vec![
            evaluation(1, Some("Добрый день"), Some(true)),
            evaluation(2, Some("не было такого"), Some(false)),
            evaluation(3, None, None),
        ],
        2,
        1,
    );
    let gateway = Some(Cost {
        usd: 0.01,
        source: CostSource::Gateway,
    });
    store
        .save_call(&record(
            1,
            &first,
            Some("оператор: Добрый день"),
            Some(7),
            i64::from(OPERATOR),
            gateway,
        ))
        .await
        .unwrap();
    assert_eq!(
        rows_of(&client, 1).await,
        [
            "calls: 7 7001 7 {low_score,unverified_evidence} gateway",
            "evaluation: Критерий 1 1 Добрый день t",
            "evaluation: Критерий 2 2 не было такого f",
            "evaluation: Критерий 3 3",
            "recommendation: проблема 0",
            "recommendation: проблема 1",
            "agreement: карта",
            "decline: дорого 0",
            "transcript: оператор: Добрый день",
        ],
        "saved whole; the failure is cleared and run 7's claim released"
    );

    // Saved again by run 8 (a re-analysis) with fewer evaluations, no recommendations, two
    // decline reasons and TRANSCRIPT_STORE=none: the old children and transcript are gone.
    let second = analysis(vec![evaluation(4, Some("Да"), Some(true))], 0, 2);
    store
        .save_call(&record(
            1,
            &second,
            None,
            Some(8),
            i64::from(OPERATOR),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        rows_of(&client, 1).await,
        [
            "calls: 8 7001 7 {low_score,unverified_evidence}",
            "evaluation: Критерий 4 4 Да t",
            "agreement: карта",
            "decline: дорого 0",
            "decline: дорого 1",
        ]
    );

    // Another run's claim is left alone.
    store
        .save_call(&record(
            2,
            &second,
            Some("т"),
            Some(8),
            i64::from(OPERATOR),
            None,
        ))
        .await
        .unwrap();
    assert!(rows_of(&client, 2).await.contains(&"claim: 9".to_string()));

    // A save the database refuses (an operator it does not know) changes nothing at all,
    // not even the deletes that ran before the refusal.
    let before = rows_of(&client, 1).await;
    client
        .execute(
            "INSERT INTO call_claims (call_id, run_id) VALUES (1, 10)",
            &[],
        )
        .await
        .unwrap();
    let refused = store
        .save_call(&record(1, &first, Some("новый"), Some(10), 999_999, None))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let mut expected = before.clone();
    expected.push("claim: 10".to_string());
    assert_eq!(rows_of(&client, 1).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_transcript_is_compressed_with_lz4_where_the_server_has_it() {
    let db = TestDb::create().await;
    let store = store_of(&db).await;
    let client = db.client().await;
    let has_lz4: bool = client
        .query_one(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(false);
    // Long and repetitive, as a call is: well over the 2 KB PostgreSQL compresses from.
    let transcript = "оператор: Добрый день, удобно говорить?\nклиент: Да, слушаю.\n".repeat(80);
    let a = analysis(vec![evaluation(1, None, None)], 0, 0);
    store
        .save_call(&record(
            3,
            &a,
            Some(&transcript),
            None,
            i64::from(OPERATOR),
            None,
        ))
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT pg_column_compression(transcript), transcript FROM call_transcripts
             WHERE call_id = 3",
            &[],
        )
        .await
        .unwrap();
    let method: Option<String> = row.get(0);
    assert_eq!(row.get::<_, String>(1), transcript, "read back as written");
    let expected = if has_lz4 { "lz4" } else { "pglz" };
    assert_eq!(method.as_deref(), Some(expected));
}
