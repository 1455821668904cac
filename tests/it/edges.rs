//! The edges of what T-Bank sends: characters PostgreSQL refuses, the first and last
//! moments of a day, answers that are neither a transcript nor an HTTP error.

use crate::common::{Harness, World, call, day};
use callq::exit::ExitCode;

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
