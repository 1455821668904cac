//! The BI views (db/migrations/0003_bi_views.sql) over days scored through the fakes, plus
//! rows of the old tool written by hand: every number is checked against what the fake
//! model gives.

use crate::common::{Harness, World, call, day};
use callq::severity::ExitCode;
use callq_fakes::{FakeCall, expected_score, scenario};
use chrono::{Days, NaiveDate, NaiveTime};

const OP1: (i64, &str) = (5512, "Иванова Анна");

/// The sample checklist plus one criterion at an odd index with a maximum of 1, which the
/// fake model scores 0, so zero shares are exercised.
const EXTRA: (&str, &str, f64) = ("Завершение звонка", "Допродажа", 1.0);

fn checklist_rows() -> Vec<Vec<String>> {
    let mut rows = scenario::sample_checklist_rows();
    let end = rows.iter().position(Vec::is_empty).unwrap();
    rows.insert(
        end,
        vec![
            EXTRA.1.into(),
            "Предлагает второй продукт".into(),
            "1".into(),
            "1 — предложил; 0 — нет".into(),
        ],
    );
    rows
}

fn criteria() -> Vec<(String, String, f64)> {
    let mut c = scenario::sample_checklist_criteria();
    c.push((EXTRA.0.into(), EXTRA.1.into(), EXTRA.2));
    c
}

/// Total, max and stored percentage of a call the fake model scores.
fn totals() -> (f64, f64, i32) {
    let c = criteria();
    let total: f64 = c
        .iter()
        .enumerate()
        .map(|(i, (_, _, m))| expected_score(i, *m))
        .sum();
    let max: f64 = c.iter().map(|(_, _, m)| m).sum();
    (total, max, (100.0 * total / max).floor() as i32)
}

fn days_before(n: u64) -> NaiveDate {
    day() - Days::new(n)
}

fn on(mut c: FakeCall, d: NaiveDate) -> FakeCall {
    c.start = d.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap());
    c
}

/// The test day: six sample calls of three operators, one of them not-sales, two with
/// agreements; and one call of operator 5512 on each of day − 29 and day − 30.
fn world() -> World {
    let mut calls = scenario::sample_calls(day(), 6);
    calls[0]
        .phrases
        .push((false, "Ещё возьму страховку [agreement:2500,5]".into()));
    calls[1]
        .phrases
        .push((false, "Я просто уточнить баланс. [not-sales]".into()));
    calls[3]
        .phrases
        .push((false, "Беру за 15000. [agreement:15000]".into()));
    let dialogue = [(true, "Добрый день"), (false, "Здравствуйте")];
    calls.push(on(call(93_000_029, OP1, &dialogue), days_before(29)));
    calls.push(on(call(93_000_030, OP1, &dialogue), days_before(30)));
    World {
        calls,
        checklist_rows: checklist_rows(),
        ..World::default()
    }
}

const OLD_DAY_OFFSET: u64 = 2;

/// Rows the old tool wrote (no callq columns) for operator 5514 two days before the test
/// day: one scored call, with evaluations, agreements and recommendations of every
/// priority spelling, and one call without scores.
async fn insert_old_tool_rows(h: &Harness) {
    let c = h.db.client().await;
    let old_day = days_before(OLD_DAY_OFFSET);
    let at = |h: u32| old_day.and_time(NaiveTime::from_hms_opt(h, 0, 0).unwrap());
    c.execute(
        "INSERT INTO calls (id, start_time, finish_time, operator_id, department_id, phone_number,
                            total_score, max_score, performance_percentage)
         VALUES (80000001, $1, $1, 5514, 1, '79160000001', 5, 15, 33),
                (80000002, $2, $2, 5514, 1, '79160000002', NULL, NULL, NULL)",
        &[&at(10), &at(15)],
    )
    .await
    .unwrap();
    c.batch_execute(
        "INSERT INTO call_evaluations (call_id, category, criterion, score, max_score, reason) VALUES
             (80000001, 'Установление контакта', 'Приветствие', 0, 10, 'не поздоровался'),
             (80000001, 'Установление контакта', 'Обращение по имени', 5, 5, 'дважды');
         INSERT INTO agreements (call_id, amount, agreement) VALUES
             (80000001, 700, 'Заказ'), (80000001, NULL, 'Перезвонить');
         INSERT INTO call_recommendations (call_id, category, issue, recommendation, priority) VALUES
             (80000001, 'Установление контакта', 'a', 'b', 'Высокий'),
             (80000001, 'Установление контакта', 'c', 'd', 'medium'),
             (80000001, 'Установление контакта', 'e', 'f', 'LOW'),
             (80000001, 'Установление контакта', 'g', 'h', 'срочно');
         INSERT INTO offices (id, name) VALUES (1, 'Москва, Тверская');
         INSERT INTO supervisors (id, full_name) VALUES (1, 'Орлова Ирина');
         UPDATE operators SET office_id = 1, supervisor_id = 1 WHERE id = 5512;",
    )
    .await
    .unwrap();
}

/// Scores the three days through the fakes and adds the old tool's rows.
async fn scored_world() -> Harness {
    let h = Harness::start(world()).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    for n in [29, 30] {
        let d = days_before(n).to_string();
        assert_eq!(h.callq(&["run", "--date", &d]).await, ExitCode::Ok);
    }
    insert_old_tool_rows(&h).await;
    h
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bi_views_report_exactly_what_was_scored() {
    let h = scored_world().await;
    let c = h.db.client().await;
    let (total, max, pct) = totals();
    assert_eq!(
        (total, max, pct),
        (31.0, 39.5, 78),
        "the extended checklist"
    );
    let sample = scenario::sample_calls(day(), 6);
    let duration = |id: i64| -> i64 {
        sample
            .iter()
            .find(|s| s.segment_id == id)
            .map_or(120, |s| s.duration_s)
    };

    // ── v_scored_calls: the scored calls only, not-sales and unscored old rows left out.
    let rows = c
        .query(
            "SELECT call_id, day, operator_id, operator_name, department_id, department_name,
                    office_name, supervisor_name, total_score, max_score, performance_percentage,
                    score_share::float8, duration_s, call_direction, model,
                    checklist_version IS NOT NULL, analyzed_at IS NOT NULL, start_time::text
             FROM v_scored_calls ORDER BY call_id",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        ids,
        vec![
            80_000_001, 90_000_000, 90_000_002, 90_000_003, 90_000_004, 90_000_005, 93_000_029,
            93_000_030
        ]
    );
    for r in &rows {
        let id: i64 = r.get(0);
        let operator: i32 = r.get(2);
        assert_eq!(r.get::<_, i32>(4), 1, "department of {id}");
        assert_eq!(r.get::<_, String>(5), "Продажи");
        let (office, supervisor): (Option<String>, Option<String>) = (r.get(6), r.get(7));
        if operator == 5512 {
            assert_eq!(office.as_deref(), Some("Москва, Тверская"));
            assert_eq!(supervisor.as_deref(), Some("Орлова Ирина"));
        } else {
            assert_eq!((office, supervisor), (None, None));
        }
        if id == 80_000_001 {
            // The old tool's row: its own scores, no callq columns.
            assert_eq!(r.get::<_, NaiveDate>(1), days_before(OLD_DAY_OFFSET));
            assert_eq!(operator, 5514);
            assert_eq!(r.get::<_, String>(3), "Сидорова Елена");
            assert_eq!(r.get::<_, Option<f64>>(8), Some(5.0));
            assert_eq!(r.get::<_, Option<f64>>(9), Some(15.0));
            assert_eq!(r.get::<_, Option<i32>>(10), Some(33));
            assert!(close(r.get(11), 5.0 / 15.0));
            assert_eq!(r.get::<_, Option<i32>>(12), None);
            assert_eq!(r.get::<_, Option<String>>(13), None);
            assert_eq!(r.get::<_, Option<String>>(14), None);
            assert!(!r.get::<_, bool>(15) && !r.get::<_, bool>(16));
            assert_eq!(r.get::<_, String>(17), "2025-08-05 10:00:00");
            continue;
        }
        let expected_day = match id {
            93_000_029 => days_before(29),
            93_000_030 => days_before(30),
            _ => day(),
        };
        assert_eq!(r.get::<_, NaiveDate>(1), expected_day, "day of {id}");
        if id >= 93_000_000 {
            assert_eq!(operator, 5512);
        } else {
            assert_eq!(operator, [5512, 5513, 5514][(id - 90_000_000) as usize % 3]);
        }
        assert_eq!(r.get::<_, Option<f64>>(8), Some(total), "total of {id}");
        assert_eq!(r.get::<_, Option<f64>>(9), Some(max));
        assert_eq!(r.get::<_, Option<i32>>(10), Some(pct));
        assert!(close(r.get(11), total / max), "share of {id}");
        assert_eq!(r.get::<_, Option<i32>>(12), Some(duration(id) as i32));
        let inbound = (90_000_000..90_000_006).contains(&id) && (id - 90_000_000) % 4 == 3;
        assert_eq!(
            r.get::<_, Option<String>>(13).as_deref(),
            Some(if inbound { "inbound" } else { "outbound" })
        );
        assert_eq!(r.get::<_, Option<String>>(14).as_deref(), Some("gpt-test"));
        assert!(r.get::<_, bool>(15) && r.get::<_, bool>(16));
    }
    assert_eq!(rows[1].get::<_, String>(3), "Иванова Анна Сергеевна");
    assert_eq!(rows[1].get::<_, String>(17), "2025-08-07 09:00:00");

    // ── v_operator_daily: one row per operator and day.
    let rows = c
        .query(
            "SELECT day, operator_id, department_name, calls_stored, calls_scored, calls_not_sales,
                    avg_performance_percentage::float8, avg_score_share::float8, duration_s,
                    agreements, agreements_amount, office_name
             FROM v_operator_daily ORDER BY day, operator_id",
            &[],
        )
        .await
        .unwrap();
    type Daily = (
        NaiveDate,
        i32,
        i64,
        i64,
        i64,
        Option<f64>,
        Option<i64>,
        i64,
        f64,
    );
    let got: Vec<Daily> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.get::<_, String>(2), "Продажи");
            let share: Option<f64> = r.get(7);
            let avg: Option<f64> = r.get(6);
            // Every scored call of a day has the same share, except the old tool's.
            if let Some(avg) = avg {
                let expected = if avg == 33.0 { 5.0 / 15.0 } else { total / max };
                assert!(close(share.unwrap(), expected), "{share:?}");
            }
            (
                r.get(0),
                r.get(1),
                r.get(3),
                r.get(4),
                r.get(5),
                avg,
                r.get(8),
                r.get(9),
                r.get(10),
            )
        })
        .collect();
    let p = Some(f64::from(pct));
    let d = |ids: &[i64]| Some(ids.iter().map(|&i| duration(i)).sum::<i64>());
    assert_eq!(
        got,
        vec![
            (days_before(30), 5512, 1, 1, 0, p, Some(120), 0, 0.0),
            (days_before(29), 5512, 1, 1, 0, p, Some(120), 0, 0.0),
            // The old tool's day: one scored call, one without scores, an agreement without amount.
            (days_before(2), 5514, 2, 1, 0, Some(33.0), None, 2, 700.0),
            (
                day(),
                5512,
                2,
                2,
                0,
                p,
                d(&[90_000_000, 90_000_003]),
                2,
                17_500.5
            ),
            (
                day(),
                5513,
                2,
                1,
                1,
                p,
                d(&[90_000_001, 90_000_004]),
                0,
                0.0
            ),
            (
                day(),
                5514,
                2,
                2,
                0,
                p,
                d(&[90_000_002, 90_000_005]),
                0,
                0.0
            ),
        ]
    );
    let offices: Vec<Option<String>> = rows.iter().map(|r| r.get(11)).collect();
    assert_eq!(offices[0].as_deref(), Some("Москва, Тверская"));
    assert_eq!(offices[4], None);

    // ── v_criterion_daily: per department, day and criterion.
    let rows = c
        .query(
            "SELECT department_id, department_name, day, category, criterion, evaluations,
                    avg_score, max_score, avg_score_share::float8, zero_share::float8
             FROM v_criterion_daily WHERE day = $1",
            &[&day()],
        )
        .await
        .unwrap();
    let crit = criteria();
    assert_eq!(rows.len(), crit.len());
    for (i, (category, criterion, m)) in crit.iter().enumerate() {
        let r = rows
            .iter()
            .find(|r| r.get::<_, String>(4) == *criterion)
            .unwrap_or_else(|| panic!("{criterion} missing"));
        let score = expected_score(i, *m);
        assert_eq!(r.get::<_, i32>(0), 1);
        assert_eq!(r.get::<_, String>(1), "Продажи");
        assert_eq!(r.get::<_, String>(3), *category);
        assert_eq!(r.get::<_, i64>(5), 5, "five scored calls on the day");
        assert!(close(r.get(6), score), "{criterion}");
        assert_eq!(r.get::<_, f64>(7), *m);
        assert!(close(r.get(8), score / m), "{criterion}");
        let zero = if score == 0.0 { 1.0 } else { 0.0 };
        assert_eq!(r.get::<_, f64>(9), zero, "{criterion}");
    }
    assert_eq!(
        expected_score(crit.len() - 1, EXTRA.2),
        0.0,
        "one criterion scored 0"
    );
    let old = c
        .query(
            "SELECT criterion, evaluations, avg_score_share::float8, zero_share::float8
             FROM v_criterion_daily WHERE day = $1 ORDER BY criterion",
            &[&days_before(OLD_DAY_OFFSET)],
        )
        .await
        .unwrap();
    let old: Vec<(String, i64, f64, f64)> = old
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        old,
        vec![
            ("Обращение по имени".to_string(), 1, 1.0, 0.0),
            ("Приветствие".to_string(), 1, 0.0, 1.0),
        ]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM v_criterion_daily").await,
        3 * crit.len() as i64 + 2,
        "the test day, day - 29, day - 30 and the old tool's day"
    );

    // ── v_open_recommendations: an operator's last 30 days up to their latest call.
    let rows = c
        .query(
            "SELECT operator_id, call_id, day, latest_day, days_before_latest, priority,
                    priority_rank, performance_percentage, supervisor_name, category, issue
             FROM v_open_recommendations
             ORDER BY operator_id, priority_rank, start_time DESC, recommendation_id",
            &[],
        )
        .await
        .unwrap();
    type Open = (
        i32,
        i64,
        NaiveDate,
        NaiveDate,
        i32,
        String,
        i32,
        Option<i32>,
    );
    let got: Vec<Open> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect();
    let high = |op: i32, id: i64, d: NaiveDate, before: i32| -> Open {
        (op, id, d, day(), before, "high".into(), 1, Some(pct))
    };
    let old_call = |prio: &str, rank: i32| -> Open {
        let d = days_before(OLD_DAY_OFFSET);
        (5514, 80_000_001, d, day(), 2, prio.into(), rank, Some(33))
    };
    assert_eq!(
        got,
        vec![
            // 93_000_030 is 30 days before 5512's latest call: no longer open.
            high(5512, 90_000_003, day(), 0),
            high(5512, 90_000_000, day(), 0),
            high(5512, 93_000_029, days_before(29), 29),
            // The not-sales call 90_000_001 has no recommendation.
            high(5513, 90_000_004, day(), 0),
            high(5514, 90_000_005, day(), 0),
            high(5514, 90_000_002, day(), 0),
            old_call("Высокий", 1),
            old_call("medium", 2),
            old_call("LOW", 3),
            old_call("срочно", 4),
        ]
    );
    let r = &rows[0];
    assert_eq!(
        r.get::<_, Option<String>>(8).as_deref(),
        Some("Орлова Ирина")
    );
    assert_eq!(r.get::<_, String>(9), crit[0].0);
    assert_eq!(r.get::<_, String>(10), "Не выявлена потребность");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bi_views_are_documented_and_their_filters_have_indexes() {
    let h = Harness::start(World::default()).await;
    let c = h.db.client().await;
    for view in [
        "v_scored_calls",
        "v_operator_daily",
        "v_criterion_daily",
        "v_open_recommendations",
    ] {
        let comment: Option<String> = c
            .query_one(
                "SELECT obj_description(to_regclass($1), 'pg_class')",
                &[&view],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            comment.is_some_and(|t| t.len() > 40),
            "{view} has a comment"
        );
    }
    let indexes: Vec<String> = c
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'calls' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for wanted in [
        "ON public.calls USING btree (((start_time)::date), department_id)",
        "ON public.calls USING btree (operator_id, start_time)",
    ] {
        assert!(
            indexes.iter().any(|i| i.ends_with(wanted)),
            "{wanted} in {indexes:#?}"
        );
    }
    // A day filter on a view reaches the expression index (sequential scans off, so the
    // planner's choice on an empty table says whether the index can serve the filter).
    c.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = c
        .query(
            "EXPLAIN SELECT * FROM v_scored_calls WHERE day >= DATE '2025-08-01'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("calls_day_department_idx")),
        "{plan:#?}"
    );
}
