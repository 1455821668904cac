//! `kill -9` of the real binary mid-run, then at once another run, as a restart policy, a
//! retried job or an impatient engineer does it. The killed process's sessions end with it,
//! so its run is dead at once: the next run takes over its claims and finishes the day.
//! The killed run is stopped at a known point by holds on the fake LLM, never by sleeps.

use std::process::Stdio;

use callq_fakes::{Gate, LlmConfig};

use crate::binary::{callq, text};
use crate::common::{Harness, World, day};
use crate::faults::{distinct_calls, wait_until};

/// LLM requests of the killed run: with LLM_CONCURRENCY=2 (the adaptive limit starts at 2
/// too) exactly two are at the LLM at any time, so after `SAVED` answers the run holds two
/// more and can do nothing else.
const IN_FLIGHT: usize = 2;

/// Starts `callq run <args>` (the binary) and returns it once it has `saved` calls stored
/// and [`IN_FLIGHT`] more requests held at the LLM: a state it cannot leave by itself.
async fn run_until_stuck(
    h: &Harness,
    gate: &Gate,
    args: &[&str],
    saved: usize,
) -> tokio::process::Child {
    gate.admit(saved);
    let child = callq()
        .args(args)
        .arg("--env-file")
        .arg(&h.env_path)
        .env("LOGGING_ON_FILE", "False")
        .env("LLM_CONCURRENCY", IN_FLIGHT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    gate.arrived(saved + IN_FLIGHT).await;
    wait_until(
        h,
        &format!("SELECT (count(*) = {saved})::int::bigint FROM calls"),
        "the admitted calls' saves",
    )
    .await;
    child
}

/// `callq run <args> --json` (the binary) to its end: its exit code and report.
async fn run_to_end(h: &Harness, args: &[&str]) -> (i32, serde_json::Value) {
    let out = callq()
        .args(args)
        .args(["--json", "--env-file"])
        .arg(&h.env_path)
        .env("LOGGING_ON_FILE", "False")
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}):\n{}", text(&out.stderr)));
    (out.status.code().expect("exited"), report)
}

async fn statuses(h: &Harness) -> Vec<String> {
    let client = h.db.client().await;
    client
        .query(
            "SELECT status FROM runs WHERE call_date = $1 ORDER BY id",
            &[&day()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_day_is_finished_by_an_immediate_rerun_each_call_saved_once() {
    const CALLS: usize = 20;
    const SAVED: usize = 6;
    let h = Harness::start(World {
        calls: distinct_calls(CALLS),
        llm: LlmConfig {
            record_prompts: true,
            ..LlmConfig::default()
        },
        ..World::default()
    })
    .await;
    let date = day().to_string();
    let gate = h.llm.hold();
    let mut killed = run_until_stuck(&h, &gate, &["run", "--date", &date], SAVED).await;
    killed.kill().await.unwrap();
    let sent_by_killed = h.llm.requests();
    assert_eq!(sent_by_killed, SAVED + IN_FLIGHT);
    gate.release();

    let (code, report) = run_to_end(&h, &["run", "--date", &date]).await;
    assert_eq!(code, 0, "{report}");
    let outcomes = &report["days"][0]["outcomes"];
    assert_eq!(outcomes["claimed_elsewhere"], 0, "{report}");
    assert_eq!(outcomes["already_scored"], SAVED, "{report}");
    assert_eq!(
        outcomes["scored"].as_u64().unwrap() + outcomes["not_sales"].as_u64().unwrap(),
        (CALLS - SAVED) as u64,
        "{report}"
    );
    // The re-run sent exactly the calls the killed run had not saved: those it had at the
    // LLM once more (their answers were lost with it), none it had saved.
    assert_eq!(h.llm.requests() - sent_by_killed, CALLS - SAVED);
    assert_eq!(h.llm.requests(), CALLS + IN_FLIGHT);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(
        h.count("SELECT count(*) FROM calls c WHERE NOT EXISTS (SELECT 1 FROM call_evaluations e WHERE e.call_id = c.id)").await,
        0,
        "every stored call has its evaluations"
    );
    assert_eq!(h.count("SELECT count(*) FROM call_claims").await, 0);
    assert_eq!(statuses(&h).await, ["abandoned", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_run_right_after_a_killed_day_completes_that_day() {
    const CALLS: usize = 10;
    const SAVED: usize = 3;
    let h = Harness::start(World {
        calls: distinct_calls(CALLS),
        ..World::default()
    })
    .await;
    let date = day().to_string();
    let gate = h.llm.hold();
    let mut killed = run_until_stuck(&h, &gate, &["run", "--date", &date], SAVED).await;
    killed.kill().await.unwrap();
    let sent_by_killed = h.llm.requests();
    gate.release();

    // The nightly run's own day is the one after the killed day, which has no calls.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive();
    let days_ago = ((today - day()).num_days() - 1).to_string();
    let (code, report) = run_to_end(&h, &["run", "--days-ago", &days_ago]).await;
    assert_eq!(code, 0, "{report}");
    let days = report["days"].as_array().unwrap();
    let revisited = days
        .iter()
        .find(|d| d["day"] == date.as_str())
        .unwrap_or_else(|| panic!("the killed day was not revisited: {report}"));
    assert_eq!(
        revisited["revisited_because"], "its last run abandoned",
        "{report}"
    );
    assert_eq!(revisited["outcomes"]["already_scored"], SAVED, "{report}");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, CALLS as i64);
    assert_eq!(h.llm.requests() - sent_by_killed, CALLS - SAVED);
    assert_eq!(statuses(&h).await, ["abandoned", "succeeded"]);
}
