//! Batch mode end to end: the fake gateway's Files and Batches API, a real PostgreSQL
//! database per test, the batch's life ordered by the fake's holds and gates (never by
//! sleeps), and the real binary killed with SIGKILL where a crash is the point.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use callq::run::{BatchDesk, Stop};
use callq::severity::ExitCode;
use callq_fakes::{FakeCall, scenario};
use chrono::NaiveDate;
use serde_json::Value;

use crate::binary::{callq, text};
use crate::common::{Harness, World, day};
use crate::faults::distinct_calls;

const CALLS: usize = 6;

fn world(calls: Vec<FakeCall>) -> World {
    World {
        calls,
        ..World::default()
    }
}

/// The call tables' rows with what differs between two nights of the same calls left
/// out: which run saved them, when, what they cost, and serial ids of child rows.
async fn rows(h: &Harness) -> Vec<String> {
    let mut out = Vec::new();
    for line in h.snapshot().await {
        let (table, json) = line.split_once(": ").unwrap();
        let mut v: Value = serde_json::from_str(json).unwrap();
        let o = v.as_object_mut().unwrap();
        for volatile in [
            "run_id",
            "analyzed_at",
            "cost_usd",
            "cost_source",
            "cached_tokens",
            "last_failed_at",
        ] {
            o.remove(volatile);
        }
        if table != "calls" {
            o.remove("id");
        }
        out.push(format!("{table}: {v}"));
    }
    out.sort();
    out
}

async fn query_i64(h: &Harness, sql: &str) -> Vec<i64> {
    let c = h.db.client().await;
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The gateway's id of the department's only open batch.
async fn open_batch_id(h: &Harness) -> String {
    let c = h.db.client().await;
    c.query_one(
        "SELECT batch_id FROM llm_batches WHERE state = 'submitted'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Each call's id, cost, cost source and tokens.
async fn costs(h: &Harness) -> Vec<(i64, f64, String, i32, i32)> {
    let c = h.db.client().await;
    c.query(
        "SELECT id, cost_usd, cost_source, prompt_tokens, completion_tokens FROM calls ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

/// Every call answered at most once across all batches: what the provider billed.
fn assert_each_line_paid_once(h: &Harness, expected: usize) {
    let ids = h.llm.batch_custom_ids();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a call answered twice: {ids:?}");
    assert_eq!(ids.len(), expected, "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_night_saves_the_same_rows_as_a_sync_night_at_half_the_price() {
    let sync = Harness::start(world(distinct_calls(CALLS))).await;
    assert_eq!(sync.run(&[]).await, ExitCode::Ok);
    let sync_rows = rows(&sync).await;
    assert_eq!(sync.count("SELECT count(*) FROM calls").await, CALLS as i64);

    let h = Harness::start(world(distinct_calls(CALLS))).await;
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    // Submitted, not answered yet: nothing saved, nothing asked synchronously.
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    assert_eq!(h.llm.completions(), 0);
    assert_eq!(h.llm.batches_created(), 1);
    let c = h.db.client().await;
    let run = c
        .query_one(
            "SELECT status, in_batch, batches_submitted FROM runs ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "succeeded");
    assert_eq!(run.get::<_, Option<i32>>(1), Some(CALLS as i32));
    assert_eq!(run.get::<_, Option<i32>>(2), Some(1));
    // The masked text the evidence check needs waits with the batch.
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batch_calls WHERE transcript IS NOT NULL")
            .await,
        CALLS as i64
    );

    // The next run collects it first; the day has nothing left to send.
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(rows(&h).await, sync_rows);
    assert_eq!(h.llm.batches_created(), 1);
    // A line with `timeout` would have been refused by the fake: every call is scored.
    assert_each_line_paid_once(&h, CALLS);
    assert_eq!(h.llm.completions(), 0);

    // Batch answers cost LLM_PRICE_BATCH_FACTOR (0.5) × what the same answers cost in
    // sync mode, said so in cost_source.
    let (sync_costs, batch_costs) = (costs(&sync).await, costs(&h).await);
    for (s, b) in sync_costs.iter().zip(&batch_costs) {
        assert_eq!((s.0, s.3, s.4), (b.0, b.3, b.4));
        assert_eq!(s.2, "prices");
        assert_eq!(b.2, "batch");
        // No cached price is set, so the order prompts reach the fake in (which decides
        // the cached tokens) changes nothing.
        assert!((b.1 - 0.5 * s.1).abs() < 1e-12, "{s:?} {b:?}");
    }
    let state: Vec<(String, i32, i32)> = c
        .query("SELECT state, saved, failed FROM llm_batches", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(state, vec![("collected".to_string(), CALLS as i32, 0)]);
    // Collected: nothing of the transcripts is left with the batch, no claim either.
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batch_calls WHERE transcript IS NOT NULL OR stored_transcript IS NOT NULL")
            .await,
        0
    );
    assert_eq!(h.count("SELECT count(*) FROM call_claims").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_batch_keeps_its_calls_from_sync_runs_and_from_a_second_batch() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let hold = h.llm.hold_batches();
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(h.llm.batches_created(), 1);

    // Neither a batch run nor a sync run of the day pays for them again.
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(h.run(&["--sync"]).await, ExitCode::Ok);
    assert_eq!(h.llm.batches_created(), 1);
    assert_eq!(h.llm.completions(), 0);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    // Even when the run that submitted them is long gone, their claims last.
    assert_eq!(
        h.count("SELECT count(*) FROM call_claims WHERE batch_id IS NOT NULL")
            .await,
        CALLS as i64
    );
    let in_batch = query_i64(&h, "SELECT in_batch::bigint FROM runs ORDER BY id").await;
    assert_eq!(in_batch, vec![CALLS as i64; 3]);

    hold.finish();
    assert_eq!(h.run(&["--sync"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(h.llm.completions(), 0, "collected, not asked again");
    assert_each_line_paid_once(&h, CALLS);
}

/// Calls of a recent day, so the nightly run's window reaches it.
fn recent_calls(n: usize) -> (NaiveDate, Vec<FakeCall>) {
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive();
    let d = today - chrono::Days::new(4);
    let mut calls = scenario::sample_calls(d, n);
    for c in &mut calls {
        c.phrases
            .push((false, format!("Мой номер обращения {}.", c.segment_id)));
    }
    (d, calls)
}

/// `callq run <args> --json` with the binary: its exit code and report.
async fn run_json(h: &Harness, args: &[&str]) -> (i32, Value) {
    let out = callq()
        .args(args)
        .args(["--json", "--env-file"])
        .arg(&h.env_path)
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}):\n{}", text(&out.stderr)));
    (out.status.code().expect("exited"), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_run_comes_back_to_a_day_until_its_batch_is_collected() {
    let (d, calls) = recent_calls(4);
    let h = Harness::start(world(calls)).await;
    let date = d.to_string();
    let hold = h.llm.hold_batches();
    let (code, report) = run_json(&h, &["run", "--batch", "--date", &date]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["days"][0]["outcomes"]["in_batch"], 4, "{report}");
    assert_eq!(report["days"][0]["batches_submitted"], 1, "{report}");

    // The nightly run (today minus CHECK_DAY_AGO) visits the day again: still in flight.
    let (code, report) = run_json(&h, &["run", "--batch"]).await;
    assert_eq!(code, 0, "{report}");
    let revisited = report["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["day"] == date.as_str())
        .unwrap_or_else(|| panic!("{date} not revisited: {report}"));
    assert_eq!(
        revisited["revisited_because"],
        "calls of it are in a batch not collected yet"
    );
    assert_eq!(revisited["outcomes"]["in_batch"], 4, "{report}");
    assert_eq!(report["batches"]["batches_open"], 1, "{report}");
    assert_eq!(report["batches"]["calls_in_flight"], 4, "{report}");

    hold.finish();
    let (code, report) = run_json(&h, &["run", "--batch"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["batches"]["batches_collected"], 1, "{report}");
    assert_eq!(report["batches"]["scored"], 4, "{report}");
    assert_eq!(report["batches"]["cost_source"], "batch", "{report}");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 4);
    // Collected and done: the next night leaves the day alone.
    let (_, report) = run_json(&h, &["run", "--batch"]).await;
    assert!(
        !report["days"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["day"] == date.as_str()),
        "{report}"
    );
    assert_each_line_paid_once(&h, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_batch_keeps_its_finished_half_and_the_rest_goes_into_the_next_batch() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let hold = h.llm.hold_batches();
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    hold.expire(0.5);
    // The collection saves the answered half and records the rest as failed (the day's
    // run then puts them into a new batch, held like the first).
    assert_eq!(h.run(&["--batch"]).await, ExitCode::SomeFailed);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 3);
    // The fake, as OpenAI, answers the expired lines in the error file (batch_expired).
    assert_eq!(
        h.count("SELECT count(*) FROM call_failures WHERE error LIKE '%batch_expired%'")
            .await,
        3
    );
    assert_eq!(h.llm.batches_created(), 2);
    drop(hold);
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_batch_keeps_its_finished_lines_and_the_rest_is_scored_again() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let hold = h.llm.hold_batches();
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    hold.advance(0.5);
    let id = open_batch_id(&h).await;
    assert_eq!(h.callq(&["batch", "cancel", &id]).await, ExitCode::Ok);
    assert_eq!(
        h.callq(&["batch", "cancel", "no-such-batch"]).await,
        ExitCode::BadInput
    );
    drop(hold);
    assert_eq!(h.run(&["--batch"]).await, ExitCode::SomeFailed);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 3);
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_at_once_save_each_call_once() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    let env = callq::config::Env::load_with(&h.env_path, true, Vec::new());
    let settings = env.run().unwrap();
    let (a, b) = (
        BatchDesk::open(settings.clone()).await.unwrap(),
        BatchDesk::open(settings).await.unwrap(),
    );
    let stop = Stop::default();
    let (ca, cb) = (a.collector(), b.collector());
    let (ra, rb) = tokio::join!(ca.collect(false, &stop), cb.collect(false, &stop));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let scored = |c: &callq::run::Collected| c.outcomes.count(callq::domain::Outcome::Scored);
    assert_eq!(scored(&ra) + scored(&rb), CALLS as u64, "{ra} / {rb}");
    assert_eq!(ra.batches_collected + rb.batches_collected, 1);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(
        h.count("SELECT count(*) FROM call_evaluations").await,
        CALLS as i64 * scenario::sample_checklist_criteria().len() as i64
    );
    // Collecting again finds nothing to do.
    let again = ca.collect(false, &stop).await.unwrap();
    assert!(again.is_empty(), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_repeated_lines_are_counted_and_touch_nothing() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let hold = h.llm.hold_batches();
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    let ids = query_i64(&h, "SELECT call_id FROM llm_batch_calls ORDER BY call_id").await;
    let c = h.db.client().await;
    // A line whose custom_id names no call of the batch, and one for a call already
    // collected: the rows are changed so the gateway's lines meet them that way.
    c.execute(
        "UPDATE llm_batch_calls SET custom_id = 'call-renamed' WHERE call_id = $1",
        &[&ids[0]],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE llm_batch_calls SET state = 'saved' WHERE call_id = $1",
        &[&ids[1]],
    )
    .await
    .unwrap();
    hold.finish();
    assert_eq!(h.callq(&["batch", "collect"]).await, ExitCode::SomeFailed);
    let saved = query_i64(&h, "SELECT id FROM calls ORDER BY id").await;
    assert_eq!(saved, ids[2..].to_vec());
    let bad: i32 = c
        .query_one("SELECT bad_lines FROM llm_batches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 2);
    // The call its line never reached waits to be scored again; the "saved" one is
    // left alone.
    let waiting = query_i64(&h, "SELECT call_id FROM call_failures").await;
    assert_eq!(waiting, vec![ids[0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_transcript_store_none_nothing_of_the_transcript_outlives_the_batch() {
    let h = Harness::start(World {
        env_extra: "TRANSCRIPT_STORE=none\n".into(),
        ..world(distinct_calls(CALLS))
    })
    .await;
    let hold = h.llm.hold_batches();
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batch_calls WHERE transcript IS NOT NULL AND NOT store_transcript")
            .await,
        CALLS as i64
    );
    hold.finish();
    assert_eq!(h.callq(&["batch", "collect"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batch_calls WHERE transcript IS NOT NULL OR stored_transcript IS NOT NULL")
            .await,
        0
    );
    assert_eq!(h.count("SELECT count(*) FROM call_transcripts").await, 0);
}

/// Starts `callq run --batch` (the binary) with `tmp` as its TMPDIR and returns it once
/// `gate` holds its request.
async fn batch_run_held_at(
    h: &Harness,
    gate: &callq_fakes::Gate,
    tmp: &Path,
) -> tokio::process::Child {
    let date = day().to_string();
    let child = callq()
        .args(["run", "--batch", "--date", &date, "--env-file"])
        .arg(&h.env_path)
        .env("TMPDIR", tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    gate.arrived(1).await;
    child
}

/// The names in `dir` a batch input file would have had as a named temporary file.
fn batch_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("callq-batch-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_during_the_upload_leaves_calls_the_next_run_scores_once() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let tmp = tempfile::tempdir().unwrap();
    let gate = h.llm.hold_uploads();
    let mut killed = batch_run_held_at(&h, &gate, tmp.path()).await;
    // The whole file is written and being uploaded: it has no name even now.
    assert_eq!(batch_files(tmp.path()), Vec::<String>::new());
    killed.kill().await.unwrap();
    gate.release();
    // Nothing of the masked transcripts it held is left on disk.
    assert_eq!(batch_files(tmp.path()), Vec::<String>::new());
    let states: Vec<String> =
        h.db.client()
            .await
            .query("SELECT state FROM llm_batches", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(states, vec!["uploading".to_string()]);
    // The next run gives the dead run's batch back (it never reached the gateway) and
    // puts the calls into a batch of its own; the run after collects it.
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(h.llm.batches_created(), 1);
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_created_but_not_recorded_is_found_by_its_tag_and_paid_once() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let tmp = tempfile::tempdir().unwrap();
    let gate = h.llm.hold_batch_creation();
    let mut killed = batch_run_held_at(&h, &gate, tmp.path()).await;
    killed.kill().await.unwrap();
    gate.release();
    assert_eq!(h.llm.batches_created(), 1);
    // The batch exists at the gateway; callq's row still says it is being created.
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batches WHERE state = 'creating' AND batch_id IS NULL")
            .await,
        1
    );
    // A sync run does not take the calls over: their batch may exist.
    assert_eq!(h.run(&["--sync"]).await, ExitCode::Ok);
    assert_eq!(h.llm.completions(), 0);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(h.llm.batches_created(), 1);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_down_while_polling_loses_nothing_and_the_batch_is_collected_later() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    h.llm.set_batches_unavailable(true);
    // The gateway cannot say how the batch is: it waits, nothing is given back.
    assert_eq!(h.callq(&["batch", "collect"]).await, ExitCode::Unavailable);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batches WHERE state = 'submitted'")
            .await,
        1
    );
    h.llm.set_batches_unavailable(false);
    assert_eq!(h.callq(&["batch", "collect"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_killed_half_way_is_finished_by_the_next_run_each_call_saved_once() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    // One call's row is held locked by this test, so the collector stops at a known
    // point: every other call saved, this one's save waiting.
    let mut locker = h.db.client().await;
    let tx = locker.transaction().await.unwrap();
    let held: i64 = tx
        .query_one(
            "SELECT call_id FROM llm_batch_calls ORDER BY call_id LIMIT 1 FOR UPDATE",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut killed = callq()
        .args(["batch", "collect", "--env-file"])
        .arg(&h.env_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    crate::faults::wait_until(
        &h,
        &format!("SELECT (count(*) = {})::int::bigint FROM calls", CALLS - 1),
        "the other calls' saves",
    )
    .await;
    killed.kill().await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        h.count(&format!("SELECT count(*) FROM calls WHERE id = {held}"))
            .await,
        0
    );
    // The killed collector's lock went with its session: the next run collects the rest,
    // passing over the lines of the calls saved before the kill.
    let (code, report) = run_json(&h, &["run", "--batch", "--date", &day().to_string()]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["batches"]["scored"], 1, "{report}");
    assert_eq!(report["batches"]["repeated_lines"], CALLS - 1, "{report}");
    assert_eq!(report["batches"]["bad_lines"], 0, "{report}");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(
        h.count("SELECT count(*) FROM llm_batches WHERE state = 'collected' AND saved = 6")
            .await,
        1
    );
    assert_eq!(h.llm.batches_created(), 1);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_whether_the_gateway_takes_batches() {
    let h = Harness::start(World {
        env_extra: "LLM_MODE=batch\n".into(),
        ..world(distinct_calls(1))
    })
    .await;
    let env = callq::config::Env::load_with(&h.env_path, true, Vec::new());
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    let out = lines.join("\n");
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(out.contains("✓ LLM batches"), "{out}");
    h.llm.set_batches_unavailable(true);
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    let out = lines.join("\n");
    assert_eq!(code, ExitCode::Unavailable, "{out}");
    assert!(
        out.contains("✗ LLM batches") && out.contains("files_settings"),
        "{out}"
    );
}

/// The binary with `args` and the test's env file: its exit code, stdout and stderr.
async fn callq_bin(h: &Harness, args: &[&str]) -> (i32, String, String) {
    let out = callq()
        .args(args)
        .arg("--env-file")
        .arg(&h.env_path)
        .output()
        .await
        .unwrap();
    let code = out.status.code().expect("exited");
    (code, text(&out.stdout), text(&out.stderr))
}

/// `callq batch status --json`: every batch, newest first.
async fn batch_status(h: &Harness) -> Vec<Value> {
    let (code, stdout, stderr) = callq_bin(h, &["batch", "status", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    v["batches"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_gateway_refuses_is_sent_again_in_a_new_batch_each_call_paid_once() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let date = day().to_string();
    h.llm.fail_next_batches(1);
    let (code, report) = run_json(&h, &["run", "--batch", "--date", &date]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["days"][0]["outcomes"]["in_batch"], CALLS, "{report}");
    // Refused at the gateway at once; callq learns it when it next collects.
    let at_gateway = h.llm.batches();
    assert_eq!(at_gateway.len(), 1);
    assert_eq!(at_gateway[0]["status"], "failed", "{at_gateway:?}");
    assert_eq!(h.llm.batch_lines(), 0);

    // The next run collects the refusal: every call failed, recorded with the gateway's
    // reason, and the day's run puts them into a new batch at once.
    let (code, stdout, stderr) = callq_bin(&h, &["run", "--batch", "--date", &date]).await;
    assert_eq!(code, ExitCode::SomeFailed as i32, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "batches: 1 collected (0 scored, 0 not sales, {CALLS} failed"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{CALLS} call(s) without an answer"))
            && stderr.contains("the gateway refused the batch: Enqueued token limit reached"),
        "{stderr}"
    );
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    assert_eq!(
        h.count(
            "SELECT count(*) FROM call_failures WHERE stage = 'batch' AND attempts = 1 \
             AND error LIKE '%refused the batch: Enqueued token limit reached%'"
        )
        .await,
        CALLS as i64
    );
    assert_eq!(h.llm.batches_created(), 2);
    let status = batch_status(&h).await;
    assert_eq!(status.len(), 2, "{status:?}");
    let (new, refused) = (&status[0], &status[1]);
    assert_eq!(refused["state"], "collected", "{refused}");
    assert_eq!(refused["gateway_status"], "failed", "{refused}");
    assert_eq!(
        (&refused["saved"], &refused["failed"]),
        (&0.into(), &CALLS.into())
    );
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("Enqueued token limit reached"),
        "{refused}"
    );
    assert_eq!(new["state"], "submitted", "{new}");
    assert_eq!(new["calls"], CALLS, "{new}");

    // The run after collects the new batch: every call saved, nothing failed, each line
    // answered (and paid) once.
    let (code, report) = run_json(&h, &["run", "--batch", "--date", &date]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["batches"]["scored"], CALLS, "{report}");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM call_claims").await, 0);
    assert_eq!(h.llm.batches_created(), 2);
    assert_each_line_paid_once(&h, CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_result_lines_are_counted_the_rest_saved_and_their_calls_sent_again() {
    let h = Harness::start(world(distinct_calls(CALLS))).await;
    let date = day().to_string();
    let hold = h.llm.hold_batches();
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    let ids = query_i64(&h, "SELECT call_id FROM llm_batch_calls ORDER BY call_id").await;
    let (cut, misanswered) = (ids[0], ids[1]);
    // One line cut off half-way (not JSON), one whose body is not a chat completion.
    h.llm.corrupt_batch_output(&custom_id(cut));
    h.llm.misanswer_batch_line(&custom_id(misanswered));
    // Finished, and later batches are not held.
    drop(hold);

    let (code, stdout, stderr) = callq_bin(&h, &["batch", "collect", "--json"]).await;
    assert_eq!(code, ExitCode::SomeFailed as i32, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let collected = &report["batches"];
    assert_eq!(collected["batches_collected"], 1, "{report}");
    assert_eq!(collected["bad_lines"], 1, "{report}");
    assert_eq!(collected["repeated_lines"], 0, "{report}");
    assert_eq!(collected["failed"], 2, "{report}");
    assert!(
        stderr.contains("a result line cannot be read (not JSON"),
        "{stderr}"
    );
    let saved = query_i64(&h, "SELECT id FROM calls ORDER BY id").await;
    assert_eq!(saved, ids[2..].to_vec());
    assert_eq!(
        h.count("SELECT bad_lines::bigint FROM llm_batches").await,
        1
    );
    // Neither call is lost: the unreadable line's call counts as unanswered, the other
    // as an answer that did not validate; both wait in call_failures for the next batch.
    let c = h.db.client().await;
    let failures: Vec<(i64, String, String)> = c
        .query(
            "SELECT call_id, stage, error FROM call_failures ORDER BY call_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0].0, cut);
    assert_eq!(failures[0].1, "batch");
    assert!(failures[0].2.contains("held no answer"), "{failures:?}");
    assert_eq!(failures[1].0, misanswered);
    assert_eq!(failures[1].1, "llm");

    // What was saved stays as it is: the next nights only add the two calls.
    let kept: Vec<String> = h
        .snapshot()
        .await
        .into_iter()
        .filter(|l| !l.starts_with("call_failures: "))
        .collect();
    assert!(!kept.is_empty());
    assert_eq!(h.run(&["--batch"]).await, ExitCode::Ok);
    let resent = query_i64(
        &h,
        "SELECT call_id FROM llm_batch_calls WHERE state = 'pending' ORDER BY call_id",
    )
    .await;
    assert_eq!(resent, vec![cut, misanswered]);
    assert_eq!(h.llm.batches_created(), 2);
    let (code, report) = run_json(&h, &["run", "--batch", "--date", &date]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["batches"]["bad_lines"], 0, "{report}");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    let after = h.snapshot().await;
    for row in &kept {
        assert!(after.contains(row), "changed or gone: {row}");
    }
    // The two spoiled lines were answered (and billed) twice, every other call once.
    let mut billed = h.llm.batch_custom_ids();
    billed.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| custom_id(*id)).collect();
    expected.extend([custom_id(cut), custom_id(misanswered)]);
    expected.sort();
    assert_eq!(billed, expected);
}

fn custom_id(call_id: i64) -> String {
    format!("call-{call_id}")
}
