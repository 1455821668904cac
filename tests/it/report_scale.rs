//! The report at scale: 1,000 operators over 90 days, rows inserted directly. Ignored by
//! default (the insert takes a minute); run with
//! `cargo test --release --test it report_scale -- --ignored --nocapture`. The time limit
//! holds for optimised code; a debug build only prints its time.

use std::time::Instant;

use crate::common::TestDb;
use callq::config::{ReportLang, ReportSettings, parse_database_url};
use callq::report::{self, ReportRequest};
use callq::store::Store;
use chrono::NaiveDate;

const OPERATORS: i32 = 1_000;
const DAYS: i32 = 90;
const CALLS_PER_DAY: i32 = 3;
const CRITERIA: i32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: inserts 270,000 calls; run by hand to measure"]
async fn a_thousand_operators_over_ninety_days_render_fast_and_small() {
    callq::tls::install_crypto_provider();
    let db = TestDb::create().await;
    let settings = parse_database_url(&db.url).unwrap();
    Store::connect(&settings, 2)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let c = db.client().await;
    let started = Instant::now();
    c.batch_execute(&format!(
        "INSERT INTO departments (id, name) VALUES (1, 'Продажи');
         INSERT INTO operators (id, full_name, department_id)
             SELECT g, 'Оператор ' || g, 1 FROM generate_series(1, {OPERATORS}) g;
         INSERT INTO calls (id, start_time, operator_id, department_id, total_score, max_score,
                            performance_percentage, is_sales_call, duration_s)
             SELECT row_number() OVER (), date '2025-05-01' + d + time '10:00' + make_interval(mins => k),
                    o, 1, s, 100, s::int, k <> 0 OR o % 7 <> 0, 120
             FROM generate_series(1, {OPERATORS}) o, generate_series(0, {DAYS} - 1) d,
                  generate_series(0, {CALLS_PER_DAY} - 1) k,
                  LATERAL (SELECT (40 + (o * 7 + d * 3 + k * 11) % 60)::float8 AS s) x;
         INSERT INTO call_evaluations (call_id, category, criterion, score, max_score, reason)
             SELECT c.id, 'Категория ' || (i / 4), 'Критерий ' || i, (c.id + i) % 11, 10, 'Цитата'
             FROM calls c, generate_series(1, {CRITERIA}) i WHERE c.is_sales_call;
         INSERT INTO call_recommendations (call_id, category, issue, recommendation, priority)
             SELECT id, 'Категория', 'Проблема ' || id, 'Совет', 'high' FROM calls WHERE is_sales_call;
         ANALYZE;"
    ))
    .await
    .unwrap();
    eprintln!("inserted in {:.1} s", started.elapsed().as_secs_f64());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let from = NaiveDate::from_ymd_opt(2025, 5, 2).unwrap();
    let to = from + chrono::Days::new(DAYS as u64 - 1);
    let request = ReportRequest {
        from: Some(from),
        to: Some(to),
        ..ReportRequest::default()
    };
    let started = Instant::now();
    let written = report::write(
        &ReportSettings {
            db: settings,
            lang: ReportLang::Ru,
        },
        &request,
        &out,
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let bytes = std::fs::metadata(&out).unwrap().len();
    eprintln!(
        "report: {} operators, {} calls, {:.2} s, {:.2} MB",
        written.operators,
        written.calls_scored,
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6
    );
    assert_eq!(written.operators, OPERATORS as usize);
    if !cfg!(debug_assertions) {
        assert!(elapsed.as_secs_f64() < 5.0, "rendered in {elapsed:?}");
    }
    assert!(bytes < 10_000_000, "{bytes} bytes");
}
