//! `callq run` against a misbehaving gateway (and T-Bank): alike refusals stop the run
//! without recording calls that were never really tried, one call's refusal fails that
//! call only, every HTTP request is counted, the cost says where it came from, and
//! `callq check` names what to fix.

use crate::common::{Harness, World, call, day};
use callq::severity::ExitCode;
use callq_fakes::{Refusal, scenario};

const OP1: (i64, &str) = (5512, "Иванова Анна");

async fn run_row(h: &Harness) -> (String, Option<String>, i32, i32, Option<String>) {
    let row =
        h.db.client()
            .await
            .query_one(
                "SELECT status, error, llm_requests, llm_attempts, cost_source FROM runs",
                &[],
            )
            .await
            .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refusing_every_request_alike_stops_the_run_within_a_few_requests() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 40),
        ..World::default()
    })
    .await;
    // LiteLLM without its database, asked with a key that is not its master key.
    h.llm.set_refusal(Some(Refusal::no_db()));
    assert_eq!(h.run(&[]).await, ExitCode::Unavailable);
    // LLM_CONCURRENCY=4 caps the threshold at 4; the limiter lets 2, then 4 go at once.
    assert!(
        h.llm.requests() <= 8,
        "{} requests before stopping",
        h.llm.requests()
    );
    assert_eq!(
        h.count("SELECT count(*) FROM call_failures").await,
        0,
        "calls refused with the breaker's error are not failures of their own"
    );
    let (status, error, _, attempts, _) = run_row(&h).await;
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(error.contains("No connected db."), "{error}");
    assert!(error.contains("TOKEN_LLM"), "{error}");
    assert_eq!(
        error.matches("the LLM gateway refused").count(),
        1,
        "the prefix once: {error}"
    );
    assert_eq!(attempts as usize, h.llm.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_too_long_for_the_context_fails_alone() {
    let mut calls = scenario::sample_calls(day(), 6);
    calls[3]
        .phrases
        .push((false, "Очень длинный разговор [too-long]".into()));
    let h = Harness::start(World {
        calls,
        ..World::default()
    })
    .await;
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 5);
    let c = h.db.client().await;
    let f = c
        .query_one("SELECT stage, error, attempts FROM call_failures", &[])
        .await
        .unwrap();
    assert_eq!(f.get::<_, String>(0), "llm");
    assert!(
        f.get::<_, String>(1).contains("maximum context length"),
        "{}",
        f.get::<_, String>(1)
    );
    assert_eq!(f.get::<_, i32>(2), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_failing_alike_stop_the_run() {
    let mut world = World {
        calls: scenario::sample_calls(day(), 20),
        ..World::default()
    };
    world.tbank.faults.burst_500 = 10_000;
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Unavailable);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    // TBANK_CONCURRENCY=4 caps the threshold at 4; each call is tried RETRY_MAX_ATTEMPTS
    // (the minimum, 6) times. Without the breaker all 20 calls would be: 120 requests.
    assert!(
        h.tbank.transcript_requests() <= 8 * 6,
        "{} transcript requests",
        h.tbank.transcript_requests()
    );
    assert_eq!(h.llm.requests(), 0);
    let (_, error, _, _, _) = run_row(&h).await;
    assert!(error.unwrap().contains("HTTP 500"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_request_is_counted_and_the_gateways_cost_is_stored() {
    let mut world = World {
        calls: vec![
            call(1, OP1, &[(true, "Добрый день"), (false, "Спасибо")]),
            call(2, OP1, &[(true, "Здравствуйте"), (false, "Да")]),
            call(3, OP1, &[(true, "Алло"), (false, "Слушаю")]),
        ],
        ..World::default()
    };
    world.llm.response_cost_per_1m = Some((3.0, 12.0));
    let h = Harness::start(world).await;
    h.llm.fail_next(2, 500);
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let (status, _, requests, attempts, source) = run_row(&h).await;
    assert_eq!(status, "succeeded");
    assert_eq!(requests, 3, "three answers");
    assert_eq!(attempts, 5, "in five HTTP requests");
    assert_eq!(source.as_deref(), Some("gateway"));
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE cost_source = 'gateway' AND cost_usd > 0")
            .await,
        3
    );

    // Without the header: the configured prices.
    let h2 = Harness::start(World {
        calls: vec![call(4, OP1, &[(true, "Добрый день")])],
        ..World::default()
    })
    .await;
    assert_eq!(h2.run(&[]).await, ExitCode::Ok);
    let (_, _, _, _, source) = run_row(&h2).await;
    assert_eq!(source.as_deref(), Some("prices"));
    assert_eq!(
        h2.count("SELECT count(*) FROM calls WHERE cost_source = 'prices'")
            .await,
        1
    );
}

/// `callq check` with this test's env file: its exit code and what it printed.
async fn check(h: &Harness) -> (ExitCode, String) {
    let env = callq::config::Env::load_with(&h.env_path, true, Vec::new());
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    (code, lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_structured_output_and_names_what_to_fix() {
    let h = Harness::start(World {
        calls: Vec::new(),
        llm: callq_fakes::LlmConfig {
            record_requests: true,
            ..Default::default()
        },
        ..World::default()
    })
    .await;
    let (code, out) = check(&h).await;
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(
        out.contains("✓ structured output: the model answers with the response schema"),
        "{out}"
    );
    let sent = h.llm.request_bodies();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["response_format"]["type"], "json_schema");
    assert_eq!(
        sent[0]["response_format"]["json_schema"]["schema"]["type"],
        "object"
    );

    h.llm.set_refusal(Some(Refusal::no_db()));
    let (code, out) = check(&h).await;
    assert_eq!(code, ExitCode::Unavailable, "{out}");
    assert!(out.contains("No connected db."), "{out}");
    assert!(out.contains("fix: check TOKEN_LLM"), "{out}");
    assert!(!out.contains("that the gateway is up"), "{out}");
    h.llm.set_refusal(None);

    // The whole endpoint pasted as LLM_BASE_URL: trimmed with a warning, not blamed on MODEL.
    let text = std::fs::read_to_string(&h.env_path).unwrap();
    let base = h.llm.base_url();
    std::fs::write(
        &h.env_path,
        text.replace(
            &format!("LLM_BASE_URL={base}\n"),
            &format!("LLM_BASE_URL={base}/chat/completions\n"),
        ),
    )
    .unwrap();
    let (code, out) = check(&h).await;
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(out.contains("! configuration: LLM_BASE_URL"), "{out}");
    let text = std::fs::read_to_string(&h.env_path).unwrap();
    std::fs::write(
        &h.env_path,
        text.replace("MODEL=gpt-test", "MODEL=gpt-missing"),
    )
    .unwrap();
    let (code, out) = check(&h).await;
    assert_eq!(code, ExitCode::Unavailable, "{out}");
    assert!(out.contains("fix: check MODEL"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_gateway_refusing_structured_output() {
    let h = Harness::start(World {
        calls: Vec::new(),
        llm: callq_fakes::LlmConfig {
            reject_response_format: true,
            ..Default::default()
        },
        ..World::default()
    })
    .await;
    let (code, out) = check(&h).await;
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(
        out.contains("! structured output: the gateway refuses response_format"),
        "{out}"
    );
}
