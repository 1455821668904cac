//! Switching from the old tool: `callq migrate` and `callq run` on a database the old tool
//! created, with its own column types and data, keep that data and work.

use crate::common::{Harness, World, day};
use callq::exit::ExitCode;
use callq_fakes::scenario;

/// Tables as an older tool may have made them: serial/integer ids, numeric scores, no
/// unique transcript per call, and a call it scored with its transcript stored twice.
const OLD_SCHEMA: &str = "
CREATE TABLE departments (id serial PRIMARY KEY, name varchar(255) NOT NULL);
CREATE TABLE operators (id serial PRIMARY KEY, full_name varchar(255) NOT NULL, department_id integer,
                        office_id integer, supervisor_id integer);
CREATE TABLE calls (id integer PRIMARY KEY, start_time timestamp, finish_time timestamp,
                    operator_id integer, department_id integer, phone_number varchar(32),
                    total_score numeric, max_score numeric, performance_percentage numeric);
CREATE TABLE call_transcripts (id serial PRIMARY KEY, call_id integer REFERENCES calls (id), transcript text);
CREATE TABLE call_evaluations (id serial PRIMARY KEY, call_id integer REFERENCES calls (id), category text,
                               criterion text, score numeric, max_score numeric, reason text);
INSERT INTO calls (id, start_time, operator_id, department_id, total_score, max_score, performance_percentage)
    VALUES (90000000, '2025-08-07 09:00:00', 5512, 1, 30, 38.5, 77);
INSERT INTO call_transcripts (call_id, transcript) VALUES (90000000, 'operator: первая запись'),
                                                          (90000000, 'operator: вторая запись');
INSERT INTO call_evaluations (call_id, category, criterion, score, max_score, reason)
    VALUES (90000000, 'Установление контакта', 'Приветствие', 10, 10, 'старая оценка');
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_tools_database_is_migrated_and_scored_into() {
    let world = World {
        calls: scenario::sample_calls(day(), 4),
        db_setup: OLD_SCHEMA.into(),
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);

    // The old tool's call is already scored: kept as it was, not paid for again.
    assert_eq!(h.count("SELECT already_scored::bigint FROM runs").await, 1);
    assert_eq!(h.count("SELECT scored::bigint FROM runs").await, 3);
    assert_eq!(h.llm.requests(), 3);
    let c = h.db.client().await;
    let old = c
        .query_one(
            "SELECT total_score::float8, analyzed_at IS NULL FROM calls WHERE id = 90000000",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(old.get::<_, f64>(0), 30.0);
    assert!(old.get::<_, bool>(1), "the old row is untouched");
    assert_eq!(
        h.count("SELECT count(*) FROM call_evaluations WHERE call_id = 90000000")
            .await,
        1
    );
    // Its duplicate transcript was reduced to one, so transcripts are unique per call now.
    assert_eq!(
        h.count("SELECT count(*) FROM call_transcripts WHERE call_id = 90000000")
            .await,
        1
    );

    // New rows went into the old column types.
    let (total, max, pct) = crate::common::expected_totals();
    let row = c
        .query_one(
            "SELECT total_score::float8, max_score::float8, performance_percentage::integer, is_sales_call
             FROM calls WHERE id = 90000001",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, f64>(0), total);
    assert_eq!(row.get::<_, f64>(1), max);
    assert_eq!(row.get::<_, i32>(2), pct);
    assert!(row.get::<_, bool>(3));
    assert_eq!(
        h.count("SELECT count(*) FROM call_evaluations").await,
        1 + 3 * 7
    );

    // A re-analysis replaces the new rows in place, old column types and all.
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    assert_eq!(
        h.count("SELECT count(*) FROM call_evaluations").await,
        4 * 7
    );
    assert_eq!(h.count("SELECT count(*) FROM call_transcripts").await, 4);
}
