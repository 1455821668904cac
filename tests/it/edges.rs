//! The edges of what T-Bank sends: characters PostgreSQL refuses, the first and last
//! moments of a day, answers that are neither a transcript nor an HTTP error.

use crate::common::{Harness, World, call, day};
use callq::severity::ExitCode;

const OP1: (i64, &str) = (5512, "Иванова Анна");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_from_tbank_are_removed_before_saving() {
    let world = World {
        calls: vec![
            call(
                1,
                (5512, "Иванова\0 Анна"),
                &[(true, "Добрый\0 день"), (false, "Здравствуйте\0")],
            ),
            call(2, (9001, "Смирнов\0 Павел"), &[(true, "Алло")]),
        ],
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let c = h.db.client().await;
    let transcript: String = c
        .query_one(
            "SELECT transcript FROM call_transcripts WHERE call_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        transcript, "operator: Добрый день\nclient: Здравствуйте\n",
        "phrases cleaned"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE id = 1 AND operator_id = 5512")
            .await,
        1,
        "the cleaned name matches the directory"
    );
    let unknown: Vec<String> = c
        .query_one("SELECT unknown_operators FROM runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unknown, vec!["Смирнов Павел".to_string()]);
}

/// `day()` at `h:m:s` plus `ms` milliseconds, as local wall-clock time.
fn at(days_after: i64, h: u32, m: u32, s: u32, ms: u32) -> chrono::NaiveDateTime {
    (day() + chrono::Duration::days(days_after))
        .and_hms_milli_opt(h, m, s, ms)
        .unwrap()
}

/// Calls at the given local times, ids 1, 2, …
fn calls_at(times: &[chrono::NaiveDateTime]) -> Vec<callq_fakes::FakeCall> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut c = call(i as i64 + 1, OP1, &[(true, "Добрый день"), (false, "Да")]);
            c.start = *t;
            c
        })
        .collect()
}

async fn stored_ids(h: &Harness) -> Vec<i64> {
    h.db.client()
        .await
        .query("SELECT id FROM calls ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_runs_from_its_first_moment_to_its_last() {
    let world = World {
        calls: calls_at(&[
            at(0, 0, 0, 0, 0),
            at(0, 23, 59, 59, 500),
            at(-1, 23, 59, 59, 500),
            at(1, 0, 0, 0, 0),
        ]),
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(stored_ids(&h).await, vec![1, 2]);
    assert_eq!(
        h.count("SELECT calls_listed::bigint FROM runs").await,
        2,
        "calls of the neighbouring days are not counted as listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reading_the_range_as_utc_loses_no_early_call() {
    let mut world = World {
        calls: calls_at(&[
            at(0, 0, 0, 0, 0),
            at(0, 2, 59, 59, 0),
            at(0, 12, 0, 0, 0),
            at(0, 23, 59, 59, 500),
            at(-1, 23, 59, 59, 0),
            at(1, 0, 0, 0, 0),
            at(1, 2, 0, 0, 0),
        ]),
        ..World::default()
    };
    // Moscow is UTC+3 all year.
    world.tbank.range_in_utc = Some(chrono::FixedOffset::east_opt(3 * 3600).unwrap());
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(stored_ids(&h).await, vec![1, 2, 3, 4]);
    assert_eq!(h.count("SELECT calls_listed::bigint FROM runs").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_answered_with_an_error_object_fails_the_call() {
    let mut world = World {
        calls: vec![
            call(1, OP1, &[(true, "Добрый день"), (false, "Да")]),
            call(2, OP1, &[(true, "Здравствуйте"), (false, "Да")]),
        ],
        ..World::default()
    };
    world.tbank.faults.transcript_error_object = vec![2];
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    assert_eq!(stored_ids(&h).await, vec![1]);
    let failure =
        h.db.client()
            .await
            .query_one("SELECT call_id, stage, error FROM call_failures", &[])
            .await
            .unwrap();
    assert_eq!(failure.get::<_, i64>(0), 2);
    assert_eq!(failure.get::<_, String>(1), "transcript");
    let error: String = failure.get(2);
    assert!(error.contains("TRANSCRIPTION_FAILED"), "{error}");
    assert_eq!(
        h.count("SELECT no_transcript::bigint FROM runs").await,
        0,
        "not counted as untranscribed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_or_duration_beyond_its_column_makes_the_item_unreadable() {
    let mut world = World {
        calls: vec![call(1, OP1, &[(true, "Добрый день"), (false, "Да")])],
        ..World::default()
    };
    let item = |id: serde_json::Value, duration: serde_json::Value| {
        serde_json::json!({"segmentId": id, "startDate": "2025-08-07T10:00:00",
                           "duration": duration, "operatorUserFullName": OP1.1})
    };
    world.tbank.faults.broken_items_on_first_page = vec![
        item(serde_json::json!(1e20), serde_json::json!(60)),
        item(serde_json::json!(3), serde_json::json!(3_000_000_000i64)),
    ];
    let h = Harness::start(world).await;
    // Unreadable items are failures: exit 1, and the one whose id could be read waits in
    // call_failures so the nightly run lists its day again.
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    assert_eq!(stored_ids(&h).await, vec![1]);
    assert_eq!(
        h.count("SELECT items_unreadable::bigint FROM runs").await,
        2
    );
    assert_eq!(h.count("SELECT calls_listed::bigint FROM runs").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM call_failures WHERE call_id = 3 AND stage = 'listing'")
            .await,
        1
    );
}

/// Polls `condition` until it holds, for events the fakes cannot signal (rows committed by
/// callq); fails after a minute instead of hanging.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_breaks_part_way_keeps_earlier_pages_and_fails_the_run() {
    let mut world = World {
        calls: callq_fakes::scenario::sample_calls(day(), 6),
        ..World::default()
    };
    world.tbank.page_size = 3;
    world.tbank.faults.listing_fails_from_page = Some(2);
    let h = Harness::start(world).await;
    let listing = h.tbank.hold_listing();
    listing.admit(1);
    let control = async {
        // Page 2 is asked for and held until page 1's calls are stored; then it fails
        // on every attempt.
        listing.arrived(2).await;
        eventually("page 1's calls are stored", || async {
            h.count("SELECT count(*) FROM calls").await == 3
        })
        .await;
        listing.release();
    };
    let (code, ()) = tokio::join!(h.run(&[]), control);
    assert_eq!(code, ExitCode::Unavailable);
    assert_eq!(
        stored_ids(&h).await,
        vec![90_000_000, 90_000_001, 90_000_002]
    );
    let status: String =
        h.db.client()
            .await
            .query_one("SELECT status FROM runs", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(status, "failed");
    assert!(h.tbank.served_500() >= 6, "page 2 was retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_tqm_without_the_new_login_path_is_logged_into_on_the_old_one() {
    let mut world = World::default();
    world.tbank.old_login_path_only = true;
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.tbank.logins(), 1, "one login, on the old path");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_the_models_answer_is_removed_before_saving() {
    let h = Harness::start(World {
        calls: vec![call(1, OP1, &[(true, "Добрый день"), (false, "Да [nul]")])],
        ..World::default()
    })
    .await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(stored_ids(&h).await, vec![1]);
    assert_eq!(
        h.count("SELECT count(*) FROM call_evaluations WHERE reason LIKE 'Цитата:%критерия'")
            .await,
        h.count("SELECT count(*) FROM call_evaluations").await
    );
}
