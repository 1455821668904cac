//! Switching from the old tool: `callq migrate` and `callq run` on a database the old tool
//! created, with its own column types and data, keep that data and work; a database not
//! migrated yet is told as such by every command.

use crate::common::{Harness, TestDb, World, day};
use callq::severity::{ExitCode, Severe};
use callq::store::StoreError;
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

/// Whichever command meets the unmigrated database, it exits as the store's own error says:
/// no wrapper makes it worse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_not_migrated_exits_alike_from_every_command() {
    let h = Harness::start(World::default()).await;
    let empty = TestDb::create().await;
    h.set_env(&format!("DATA_BASE={}", empty.url));
    let expected = StoreError::NotMigrated("calls".into()).exit_code();
    assert_eq!(
        expected,
        ExitCode::BadInput,
        "the user runs `callq migrate`"
    );
    let date = day().to_string();
    let report = h.dir.path().join("report.html");
    let report = report.to_str().unwrap();
    for args in [
        &["report", "--out", report][..],
        &["run", "--date", &date, "--dry-run"][..],
        &["export", "calls"][..],
        &["export", "evaluations"][..],
        &["operators", "unknown"][..],
        &["purge", "--older-than", "90", "--dry-run"][..],
    ] {
        assert_eq!(h.callq(args).await, expected, "callq {args:?}");
    }
    assert_eq!(
        h.count("SELECT count(*) FROM calls").await,
        0,
        "the harness's own database was not touched"
    );
    let tables = empty
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(tables, 0, "nothing was created in the unmigrated database");
}
