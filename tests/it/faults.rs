//! Faults from outside, the way an operations engineer meets them: the day lock's
//! connection killed mid-run, a database that freezes or never answers, a run that died
//! without recording its end. Events are ordered with holds on the fake LLM, never sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callq::severity::ExitCode;
use callq_fakes::{FakeCall, LlmConfig, scenario};

use crate::common::proxy::{TcpProxy, silent_listener};
use crate::common::{Harness, World, day};

/// Calls whose transcripts (and so prompts) differ, so a prompt seen twice is a call
/// paid for twice.
pub(crate) fn distinct_calls(n: usize) -> Vec<FakeCall> {
    let mut calls = scenario::sample_calls(day(), n);
    for c in &mut calls {
        c.phrases
            .push((false, format!("Мой номер обращения {}.", c.segment_id)));
    }
    calls
}

pub(crate) async fn wait_until(h: &Harness, sql: &str, what: &str) {
    // Polls a condition the server decides (a backend gone); bounded, not a timing window.
    for _ in 0..500 {
        if h.count(sql).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_day_lock_stops_the_run_and_no_call_is_paid_twice() {
    let h = Arc::new(
        Harness::start(World {
            calls: distinct_calls(20),
            llm: LlmConfig {
                record_prompts: true,
                ..LlmConfig::default()
            },
            ..World::default()
        })
        .await,
    );
    let gate = h.llm.hold();
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.run(&[]).await }
    });
    gate.arrived(1).await;
    let in_flight_a = gate.arrivals();

    // The lock's backend dies, as on a server restart or an idle-session timeout.
    let killed = h
        .count(&format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'callq-day-lock' AND datname = '{}') t",
            h.db.name
        ))
        .await;
    assert_eq!(killed, 1, "one lock connection");
    // The day lock (two 32-bit keys: objsubid 2) is released; the run's process key (one
    // 64-bit key), held by its pool's sessions, is not.
    wait_until(
        &h,
        &format!(
            "SELECT (count(*) = 0)::int::bigint FROM pg_locks WHERE locktype = 'advisory'
             AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = '{}')",
            h.db.name
        ),
        "the lock's release",
    )
    .await;
    // Its keeper holds the process key on a session of its own from now on, in case the
    // pool's sessions went too.
    wait_until(
        &h,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'callq-run-alive'",
        "the keeper's session",
    )
    .await;

    // A second run of the same day now gets the lock and must not pay for the calls the
    // first one has at the LLM.
    let second = tokio::spawn({
        let h = h.clone();
        async move { h.run(&[]).await }
    });
    gate.arrived(in_flight_a + 1).await;
    gate.release();
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(
        a,
        ExitCode::Unavailable,
        "the run that lost its lock exits 3"
    );
    // The second run found the first one alive (its sessions are) and left it the calls it
    // was scoring, unless the first had saved them by the time the second got to them.
    let left = h
        .count("SELECT claimed_elsewhere::bigint FROM runs ORDER BY id DESC LIMIT 1")
        .await;
    // At most the calls the first run had claimed: one per LLM slot (LLM_CONCURRENCY=4).
    assert!(left <= 4, "{left} left to the first run");
    let expected = if left > 0 {
        ExitCode::SomeFailed
    } else {
        ExitCode::Ok
    };
    assert_eq!(b, expected, "{left} call(s) left to the first run");

    let prompts = h.llm.prompts();
    let distinct: std::collections::HashSet<&String> = prompts.iter().collect();
    assert_eq!(
        prompts.len(),
        distinct.len(),
        "a call was sent to the LLM twice"
    );
    assert_eq!(h.llm.requests(), 20, "one request per call");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 20);
    assert_eq!(h.count("SELECT count(*) FROM call_claims").await, 0);
    let client = h.db.client().await;
    let row = client
        .query_one("SELECT status, error FROM runs ORDER BY id LIMIT 1", &[])
        .await
        .unwrap();
    let (status, error): (String, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(
        status, "failed",
        "alive to its end, so never marked abandoned"
    );
    assert!(error.unwrap_or_default().contains("lost the lock"));
    assert_eq!(
        h.count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'callq-run-alive'")
            .await,
        0,
        "the keeper ends with its run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_that_freezes_mid_run_ends_it_with_exit_3() {
    let h = Arc::new(
        Harness::start(World {
            calls: distinct_calls(8),
            ..World::default()
        })
        .await,
    );
    let proxy = TcpProxy::start(h.db_addr()).await;
    h.set_env(&format!(
        "DATA_BASE={}\nDB_TIMEOUT_S=2",
        h.db_url_via(proxy.port, "connect_timeout=2")
    ));
    let gate = h.llm.hold();
    let run = tokio::spawn({
        let h = h.clone();
        async move { h.run(&[]).await }
    });
    gate.arrived(1).await;
    proxy.freeze();
    let frozen_at = Instant::now();
    gate.release();
    let code = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run must not hang on a frozen database")
        .unwrap();
    assert_eq!(code, ExitCode::Unavailable);
    assert!(
        frozen_at.elapsed() < Duration::from_secs(20),
        "ended {:?} after the freeze",
        frozen_at.elapsed()
    );

    // The run could not record its end. Once its sessions are gone (thawed, the proxy
    // passes their close on), the next run of the day marks it abandoned and scores what
    // is left.
    proxy.thaw();
    wait_until(
        &h,
        "SELECT count(*) FROM runs WHERE status = 'running'
         AND NOT callq_run_alive(process_key, heartbeat_at)",
        "the frozen run's sessions ending",
    )
    .await;
    h.set_env(&format!("DATA_BASE={}", h.db.url));
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 8);
    assert_eq!(
        h.count("SELECT count(*) FROM runs WHERE status = 'running'")
            .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM runs WHERE status = 'abandoned'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_database_that_accepts_and_never_answers_is_reported_not_waited_for() {
    let h = Harness::start(World::default()).await;
    let (port, _listener) = silent_listener().await;
    h.set_env(&format!(
        "DATA_BASE={}",
        h.db_url_via(port, "connect_timeout=1")
    ));
    for args in [&["run", "--date", "2025-08-07"][..], &["check"][..]] {
        let started = Instant::now();
        let code = tokio::time::timeout(Duration::from_secs(30), h.callq(args))
            .await
            .unwrap_or_else(|_| panic!("callq {args:?} hung"));
        assert_eq!(code, ExitCode::Unavailable, "callq {args:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "callq {args:?} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn the_nightly_run_revisits_days_whose_last_run_did_not_finish() {
    let h = Harness::start(World {
        calls: distinct_calls(4),
        ..World::default()
    })
    .await;
    // The test day was interrupted; the nightly run of the next day must come back to it.
    let client = h.db.client().await;
    client
        .execute(
            "INSERT INTO runs (department_id, call_date, status, finished_at, heartbeat_at)
             VALUES ($1, $2, 'interrupted', now(), now())",
            &[&crate::common::DEPARTMENT, &day()],
        )
        .await
        .unwrap();
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive();
    let days_ago = (today - day()).num_days() - 1;
    let out = h.callq(&["run", "--days-ago", &days_ago.to_string()]).await;
    assert_eq!(out, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 4);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM runs WHERE call_date = '{}' AND status = 'succeeded'",
            day()
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn a_call_is_claimed_by_one_live_run_at_a_time() {
    use callq::store::{Claim, Store};
    let h = Harness::start(World::default()).await;
    let settings = callq::config::parse_database_url(&h.db.url).unwrap();
    let store = Store::connect(&settings, 4).await.unwrap();
    // Another process, alive while its pool's sessions are.
    let other = Store::connect(&settings, 2).await.unwrap();
    let client = h.db.client().await;
    let new_run = |key: Option<i64>| {
        let client = &client;
        async move {
            client
                .query_one(
                    "INSERT INTO runs (department_id, call_date, heartbeat_at, process_key)
                     VALUES (1, $1, now(), $2) RETURNING id",
                    &[&day(), &key],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let a = new_run(Some(other.process_key())).await;
    let b = new_run(Some(store.process_key())).await;
    let c = new_run(Some(store.process_key())).await;
    assert_eq!(store.claim_call(7, a, false).await.unwrap(), Claim::Won);
    assert_eq!(
        store.claim_call(7, a, false).await.unwrap(),
        Claim::Won,
        "its own claim"
    );
    assert_eq!(store.claim_call(7, b, false).await.unwrap(), Claim::Busy);
    // Its heartbeat is fresh, but its process is gone: its claims lapse at once.
    drop(other);
    wait_until(
        &h,
        &format!("SELECT (NOT callq_run_alive(process_key, heartbeat_at))::int::bigint FROM runs WHERE id = {a}"),
        "the other process's sessions ending",
    )
    .await;
    assert_eq!(store.claim_call(7, b, false).await.unwrap(), Claim::Won);
    store.release_call(7, b).await.unwrap();
    // A run of a callq from before process keys: its heartbeat decides.
    let old = new_run(None).await;
    assert_eq!(store.claim_call(8, old, false).await.unwrap(), Claim::Won);
    assert_eq!(store.claim_call(8, b, false).await.unwrap(), Claim::Busy);
    client
        .execute(
            "UPDATE runs SET heartbeat_at = now() - interval '5 minutes' WHERE id = $1",
            &[&old],
        )
        .await
        .unwrap();
    assert_eq!(store.claim_call(8, b, false).await.unwrap(), Claim::Won);
    // Saved meanwhile by another run: not paid for again, unless re-analysing.
    client
        .execute(
            "INSERT INTO calls (id, start_time, operator_id, department_id) VALUES (7, now(), 5512, 1)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.claim_call(7, c, false).await.unwrap(), Claim::Stored);
    assert_eq!(store.claim_call(7, c, true).await.unwrap(), Claim::Won);
}

#[tokio::test]
async fn calls_left_to_another_live_run_exit_1_and_the_nightly_run_comes_back_for_them() {
    use callq::store::Store;
    let calls = distinct_calls(4);
    let busy = calls[0].segment_id;
    let h = Harness::start(World {
        calls,
        ..World::default()
    })
    .await;
    // Another process's live run of the day is scoring one call (it lost the day lock,
    // say, and still has the request at the LLM).
    let settings = callq::config::parse_database_url(&h.db.url).unwrap();
    let other = Store::connect(&settings, 2).await.unwrap();
    let client = h.db.client().await;
    let other_run: i64 = client
        .query_one(
            "INSERT INTO runs (department_id, call_date, heartbeat_at, process_key)
             VALUES ($1, $2, now(), $3) RETURNING id",
            &[&crate::common::DEPARTMENT, &day(), &other.process_key()],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO call_claims (call_id, run_id) VALUES ($1, $2)",
            &[&busy, &other_run],
        )
        .await
        .unwrap();

    assert_eq!(
        h.run(&[]).await,
        ExitCode::SomeFailed,
        "not every call reached an outcome"
    );
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 3);
    let row = client
        .query_one(
            "SELECT status, claimed_elsewhere FROM runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "partial");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM runs WHERE id = {other_run} AND status = 'running'"
        ))
        .await,
        1,
        "a live run is not marked abandoned"
    );

    // That process dies without saving it; the nightly run of the next day comes back.
    drop(other);
    wait_until(
        &h,
        &format!("SELECT (NOT callq_run_alive(process_key, heartbeat_at))::int::bigint FROM runs WHERE id = {other_run}"),
        "the other process's sessions ending",
    )
    .await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive();
    let days_ago = (today - day()).num_days() - 1;
    assert_eq!(
        h.callq(&["run", "--days-ago", &days_ago.to_string()]).await,
        ExitCode::Ok
    );
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 4);
    assert_eq!(h.count("SELECT count(*) FROM call_claims").await, 0);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM runs WHERE id = {other_run} AND status = 'abandoned'"
        ))
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_mid_run_loses_nothing_and_the_next_run_finishes_the_day() {
    let h = Arc::new(
        Harness::start(World {
            calls: distinct_calls(10),
            llm: LlmConfig {
                record_prompts: true,
                ..LlmConfig::default()
            },
            ..World::default()
        })
        .await,
    );
    let gate = h.llm.hold();
    let run = tokio::spawn({
        let h = h.clone();
        async move { h.run(&[]).await }
    });
    gate.arrived(1).await;
    // Every connection of callq's is cut, as a server restart does.
    h.count(&format!(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{}' AND pid <> pg_backend_pid()) t",
        h.db.name
    ))
    .await;
    // With requests still at the LLM, the run shows it is alive again on a session of its
    // own, so another run would not take its claims.
    wait_until(
        &h,
        "SELECT count(*) FROM runs WHERE status = 'running'
         AND callq_run_alive(process_key, heartbeat_at)",
        "the run's keeper session",
    )
    .await;
    gate.release();
    assert_eq!(run.await.unwrap(), ExitCode::Unavailable);

    // Nothing half-written: whatever was saved is whole, and the next run scores the rest
    // without sending any call twice.
    let answered_first = h.llm.requests();
    let saved_first = h.count("SELECT count(*) FROM calls").await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 10);
    assert_eq!(
        h.count("SELECT count(*) FROM calls c WHERE NOT EXISTS (SELECT 1 FROM call_evaluations e WHERE e.call_id = c.id)")
            .await,
        0,
        "every stored call has its evaluations"
    );
    let resent = h.llm.requests() - answered_first;
    assert!(
        resent as i64 <= 10 - saved_first,
        "only the calls not saved are sent again ({resent} sent, {saved_first} were saved)"
    );
}
