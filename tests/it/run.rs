//! `callq run` end to end: fake T-Bank, Google and LLM servers over HTTP, a real PostgreSQL
//! database per test, exact rows asserted.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{DEPARTMENT, Harness, World, call, day, expected_totals};
use callq::severity::ExitCode;
use callq_fakes::{TbankFaults, scenario};
use chrono::NaiveTime;
use serde_json::json;

const OP1: (i64, &str) = (5512, "Иванова Анна");

/// A day that has one of everything: several pages, short calls, an unknown operator,
/// a not-sales call, an untranscribed call, calls of neighbouring days and an item T-Bank
/// sends broken.
fn busy_day() -> World {
    let mut calls = scenario::sample_calls(day(), 6);
    calls[1]
        .phrases
        .push((false, "Я просто уточнить баланс. [not-sales]".into()));
    calls[2].duration_s = 12;
    calls[3].phrases.push((
        false,
        "Беру за 15000. Но страховку не надо. [agreement:15000] [decline]".into(),
    ));
    calls[4].phrases.push((true, "[fenced]".into()));
    calls.push(call(
        91_000_001,
        (7001, "Оператор ТП Кузнецов Олег"),
        &[(true, "Добрый день"), (false, "Да")],
    ));
    calls.push(call(91_000_002, OP1, &[]));
    let mut yesterday = call(92_000_001, OP1, &[(true, "Вчерашний звонок")]);
    yesterday.start =
        (day() - chrono::Days::new(1)).and_time(NaiveTime::from_hms_opt(23, 59, 0).unwrap());
    let mut tomorrow = call(92_000_002, OP1, &[(true, "Завтрашний звонок")]);
    tomorrow.start =
        (day() + chrono::Days::new(1)).and_time(NaiveTime::from_hms_opt(0, 0, 30).unwrap());
    calls.push(yesterday);
    calls.push(tomorrow);
    let mut world = World {
        calls,
        ..World::default()
    };
    world.tbank.page_size = 3;
    // An item with no id cannot be read or retried: it counts as a failure, so every run
    // of this day exits 1.
    world.tbank.faults.broken_items_on_first_page =
        vec![json!({"startDate": "2025-08-07T10:00:00"})];
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_day_over_several_pages_is_stored_exactly() {
    let h = Harness::start(busy_day()).await;
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);

    let c = h.db.client().await;
    let rows = c
        .query(
            "SELECT id, operator_id, department_id, is_sales_call, total_score, max_score,
                    performance_percentage, duration_s, model, checklist_version IS NOT NULL,
                    prompt_tokens > 0, cost_usd > 0, start_time::text
             FROM calls ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        ids,
        vec![90_000_000, 90_000_001, 90_000_003, 90_000_004, 90_000_005]
    );
    let (total, max, pct) = expected_totals();
    for r in &rows {
        let id: i64 = r.get(0);
        let operator: i32 = r.get(1);
        assert_eq!(
            operator,
            [5512, 5513, 5514][(id - 90_000_000) as usize % 3],
            "operator of {id}"
        );
        assert_eq!(r.get::<_, i32>(2), DEPARTMENT);
        assert_eq!(r.get::<_, String>(8), "gpt-test");
        assert!(r.get::<_, bool>(9) && r.get::<_, bool>(10) && r.get::<_, bool>(11));
        if id == 90_000_001 {
            assert!(!r.get::<_, bool>(3), "not-sales call stored as such");
            assert_eq!(r.get::<_, Option<f64>>(4), None);
        } else {
            assert!(r.get::<_, bool>(3));
            assert_eq!(
                r.get::<_, Option<f64>>(4),
                Some(total),
                "total of {id} recomputed"
            );
            assert_eq!(r.get::<_, Option<f64>>(5), Some(max));
            assert_eq!(r.get::<_, Option<i32>>(6), Some(pct));
        }
    }
    // Wall-clock time in Moscow, as T-Bank lists it.
    assert_eq!(rows[0].get::<_, String>(12), "2025-08-07 09:00:00");

    let evals = c
        .query("SELECT call_id, category, criterion, score, max_score FROM call_evaluations ORDER BY call_id, id", &[])
        .await
        .unwrap();
    assert_eq!(evals.len(), 4 * 7);
    let criteria = scenario::sample_checklist_criteria();
    for (i, e) in evals.iter().take(7).enumerate() {
        assert_eq!(e.get::<_, i64>(0), 90_000_000);
        assert_eq!(e.get::<_, String>(1), criteria[i].0);
        assert_eq!(e.get::<_, String>(2), criteria[i].1);
        assert_eq!(
            e.get::<_, f64>(3),
            callq_fakes::expected_score(i, criteria[i].2)
        );
        assert_eq!(e.get::<_, f64>(4), criteria[i].2);
    }
    let agreements = c
        .query("SELECT call_id, amount FROM agreements", &[])
        .await
        .unwrap();
    assert_eq!(agreements.len(), 1);
    assert_eq!(agreements[0].get::<_, i64>(0), 90_000_003);
    assert_eq!(agreements[0].get::<_, Option<f64>>(1), Some(15000.0));
    assert_eq!(
        h.count("SELECT count(*) FROM call_decline_reasons WHERE call_id = 90000003")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM call_decline_reasons").await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM call_recommendations").await,
        4
    );
    let transcript: String = c
        .query_one(
            "SELECT transcript FROM call_transcripts WHERE call_id = 90000000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        transcript.starts_with("operator: Добрый день! Меня зовут Анна"),
        "{transcript}"
    );
    assert!(
        transcript.contains("\nclient: Здравствуйте.\n"),
        "{transcript}"
    );
    assert_eq!(h.count("SELECT count(*) FROM call_transcripts").await, 5);
    // The untranscribed call waits in call_failures, so the nightly run comes back for it.
    assert_eq!(
        h.count("SELECT count(*) FROM call_failures WHERE call_id = 91000002 AND stage = 'no_transcript'").await,
        1
    );
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 1);

    let run = c
        .query_one(
            "SELECT status, calls_listed, items_unreadable, skipped_short, unknown_operator, no_transcript,
                    already_scored, not_sales, scored, failed, llm_requests, prompt_tokens > 0,
                    cost_usd > 0, unknown_operators, finished_at IS NOT NULL
             FROM runs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "succeeded");
    let counts: Vec<i32> = (1..=10).map(|i| run.get(i)).collect();
    assert_eq!(counts, vec![8, 1, 1, 1, 1, 0, 1, 4, 0, 5]);
    assert!(run.get::<_, bool>(11) && run.get::<_, bool>(12) && run.get::<_, bool>(14));
    assert_eq!(
        run.get::<_, Vec<String>>(13),
        vec!["Оператор ТП Кузнецов Олег".to_string()]
    );

    // Filters are decided from the listing: no transcript, no LLM request for them.
    assert_eq!(h.tbank.transcript_requests_for(90_000_002), 0, "short call");
    assert_eq!(
        h.tbank.transcript_requests_for(91_000_001),
        0,
        "unknown operator"
    );
    assert_eq!(h.tbank.transcript_requests(), 6);
    assert_eq!(h.llm.requests(), 5);
    assert!(h.tbank.listing_requests() >= 3, "several pages");
    assert!(h.tbank.last_headers_ok(), "browser-like headers sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_spends_nothing_and_changes_nothing() {
    let mut world = busy_day();
    world.calls.retain(|c| c.segment_id != 91_000_002); // every call reaches a stored outcome
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    let before = h.snapshot().await;
    let (llm, transcripts) = (h.llm.requests(), h.tbank.transcript_requests());
    assert!(llm > 0 && transcripts > 0);

    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    assert_eq!(h.llm.requests(), llm, "no LLM request on a re-run");
    assert_eq!(
        h.tbank.transcript_requests(),
        transcripts,
        "no transcript request on a re-run"
    );
    assert_eq!(h.snapshot().await, before);
    let c = h.db.client().await;
    let second = c
        .query_one(
            "SELECT already_scored, scored, not_sales, status FROM runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(second.get::<_, i32>(0), 5);
    assert_eq!(second.get::<_, i32>(1), 0);
    assert_eq!(second.get::<_, i32>(2), 0);
    assert_eq!(second.get::<_, String>(3), "succeeded");
}

async fn table_counts(h: &Harness) -> Vec<i64> {
    let mut v = Vec::new();
    for t in [
        "calls",
        "call_evaluations",
        "call_recommendations",
        "agreements",
        "call_decline_reasons",
        "call_transcripts",
    ] {
        v.push(h.count(&format!("SELECT count(*) FROM {t}")).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reanalyze_replaces_rows_without_duplicates() {
    let h = Harness::start(busy_day()).await;
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    let first = table_counts(&h).await;
    let llm = h.llm.requests();
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::SomeFailed);
    assert_eq!(table_counts(&h).await, first);
    assert_eq!(h.llm.requests(), 2 * llm, "every call analysed again");
    let runs: Vec<i64> =
        h.db.client()
            .await
            .query("SELECT DISTINCT run_id FROM calls", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let last = h.count("SELECT max(id) FROM runs").await;
    assert_eq!(runs, vec![last], "every call row now belongs to the re-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_content_once_is_asked_again_and_scored() {
    let world = World {
        calls: vec![call(
            1,
            OP1,
            &[(true, "Добрый день"), (false, "[invalid-once]")],
        )],
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.llm.requests(), 2);
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE is_sales_call")
            .await,
        1
    );
    assert_eq!(h.count("SELECT llm_requests::bigint FROM runs").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_invalid_content_fails_the_call_and_the_next_run_scores_it() {
    let world = World {
        calls: vec![
            call(1, OP1, &[(true, "Добрый день"), (false, "Спасибо")]),
            call(2, OP1, &[(true, "Здравствуйте"), (false, "Да")]),
        ],
        ..World::default()
    };
    let h = Harness::start(world).await;
    h.llm.set_refuse_all(true);
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    assert_eq!(h.llm.requests(), 2 * 3, "three attempts per call");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    let c = h.db.client().await;
    let f = c
        .query(
            "SELECT call_id, stage, attempts, error FROM call_failures ORDER BY call_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].get::<_, String>(1), "llm");
    assert_eq!(f[0].get::<_, i32>(2), 1);
    let run = c
        .query_one("SELECT status, failed, prompt_tokens > 0 FROM runs", &[])
        .await
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "partial");
    assert_eq!(run.get::<_, i32>(1), 2);
    assert!(
        run.get::<_, bool>(2),
        "tokens of failed attempts are counted"
    );

    h.llm.set_refuse_all(false);
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE is_sales_call")
            .await,
        2
    );
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tbank_error_bursts_are_retried_to_completion() {
    let mut world = World {
        calls: scenario::sample_calls(day(), 12),
        ..World::default()
    };
    world.tbank.page_size = 5;
    world.tbank.faults = TbankFaults {
        burst_500: 4,
        burst_429: 4,
        error_rate: 0.33,
        ..TbankFaults::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 12);
    assert!(h.tbank.served_500() >= 4 && h.tbank.served_429() >= 4);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_mid_run_means_one_new_login() {
    let mut world = World {
        calls: scenario::sample_calls(day(), 8),
        ..World::default()
    };
    world.tbank.faults.expire_token_after = Some(4);
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.tbank.logins(), 2);
    assert!(h.tbank.unauthorized() >= 1);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_checklist_row_costs_nothing() {
    let mut rows = scenario::sample_checklist_rows();
    rows[2][2] = "десять".into();
    let world = World {
        checklist_rows: rows,
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::BadInput);
    assert_eq!(h.llm.requests(), 0);
    assert_eq!(h.tbank.transcript_requests(), 0);
    assert_eq!(h.tbank.listing_requests(), 0);
    assert_eq!(h.count("SELECT count(*) FROM runs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let h = Harness::start(busy_day()).await;
    let before = h.snapshot().await;
    assert_eq!(h.run(&["--dry-run"]).await, ExitCode::SomeFailed);
    assert!(h.llm.requests() > 0, "a dry run still scores");
    assert_eq!(h.snapshot().await, before);
    assert_eq!(h.count("SELECT count(*) FROM runs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_scores_at_most_n_calls() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 10),
        ..World::default()
    })
    .await;
    assert_eq!(h.run(&["--limit", "3"]).await, ExitCode::Ok);
    assert_eq!(h.llm.requests(), 3);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 3);
    assert_eq!(
        h.count("SELECT deferred_by_limit::bigint FROM runs").await,
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_run_of_the_same_day_exits_3() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 4),
        ..World::default()
    })
    .await;
    let llm = h.llm.hold();
    let first = h.run(&[]);
    let second = async {
        // The first run is asking the LLM, so it holds the day's lock until it is let go.
        llm.arrived(1).await;
        let code = h.run(&[]).await;
        llm.release();
        code
    };
    let (a, b) = tokio::join!(first, second);
    assert_eq!(a, ExitCode::Ok);
    assert_eq!(b, ExitCode::Unavailable);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 4);
    assert_eq!(
        h.count("SELECT count(*) FROM runs").await,
        1,
        "the refused run recorded nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_llm_key_stops_the_run_at_once() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 20),
        ..World::default()
    })
    .await;
    h.llm.set_token("sk-rotated");
    assert_eq!(h.run(&[]).await, ExitCode::Unavailable);
    assert!(
        h.llm.requests() <= 4,
        "at most the requests in flight: {}",
        h.llm.requests()
    );
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    let status: String =
        h.db.client()
            .await
            .query_one("SELECT status FROM runs", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(status, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_unknown_operators_are_listed_by_name() {
    let world = World {
        calls: vec![
            call(
                1,
                (9001, "Менеджер Смирнов Павел (ООО Ромашка)"),
                &[(true, "Алло")],
            ),
            call(
                2,
                (9001, "Менеджер Смирнов Павел (ООО Ромашка)"),
                &[(true, "Алло")],
            ),
            call(3, OP1, &[(true, "Добрый день"), (false, "Здравствуйте")]),
        ],
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let names: Vec<String> =
        h.db.client()
            .await
            .query_one("SELECT unknown_operators FROM runs", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>().len(), 1);
    assert_eq!(
        h.count("SELECT unknown_operator::bigint FROM runs").await,
        2
    );
    assert_eq!(h.tbank.transcript_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_starts_before_the_listing_ends() {
    let mut world = World {
        calls: scenario::sample_calls(day(), 9),
        ..World::default()
    };
    world.tbank.page_size = 3;
    let h = Harness::start(world).await;
    // Page 1 is answered; page 2 waits until a call of page 1 has reached the LLM, which
    // happens only if scoring does not wait for the whole listing.
    let listing = h.tbank.hold_listing();
    listing.admit(1);
    let llm = h.llm.hold();
    let first_llm_request = async {
        let reached = tokio::time::timeout(Duration::from_secs(60), llm.arrived(1)).await;
        let pages_arrived = listing.arrivals();
        listing.release();
        llm.release();
        (reached.is_ok(), pages_arrived)
    };
    let (code, (reached, pages_arrived)) = tokio::join!(h.run(&[]), first_llm_request);
    assert!(
        reached,
        "no call reached the LLM while page 2 was held: scoring waits for the whole listing"
    );
    assert!(pages_arrived <= 2, "{pages_arrived} pages asked for");
    assert_eq!(code, ExitCode::Ok);
    assert_eq!(h.tbank.listing_requests(), 3);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_limit_below_the_ceiling_is_found_without_failures() {
    let mut world = World {
        calls: scenario::sample_calls(day(), 40),
        ..World::default()
    };
    world.llm.max_concurrency = Some(3);
    world.llm.retry_after_s = 0.05;
    world.llm.latency = Duration::from_millis(30);
    world.env_extra = "LLM_CONCURRENCY=16\n".into();
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 40);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    // 429s happen while the limit is being found, but far fewer than one per call.
    assert!(h.llm.served_429() < 40, "{} 429s", h.llm.served_429());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_layout_shares_the_prompt_prefix_and_inline_keeps_the_old_prompt() {
    let mut world = World {
        calls: scenario::sample_calls(day(), 20),
        ..World::default()
    };
    world.llm.record_prompts = true;
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let prompts = h.llm.prompts();
    assert!(
        prompts
            .iter()
            .all(|p| p.contains("ТРАНСКРИПЦИЯ ЗВОНКА:\noperator: Добрый день!"))
    );
    let shared = h.llm.shared_prefix_chars() as f64 / h.llm.prompt_chars() as f64;
    // The first prompt shares nothing with a previous one; the other 19 share all but the transcript.
    assert!(shared >= 0.8, "shared prefix {shared:.2}");
    let cached: i64 = h
        .count("SELECT sum(cached_tokens)::bigint FROM calls")
        .await;
    assert!(
        cached > 0,
        "cached tokens reported by the gateway are stored"
    );
    assert_eq!(h.count("SELECT cached_tokens FROM runs").await, cached);

    let mut world = World {
        calls: scenario::sample_calls(day(), 1),
        ..World::default()
    };
    world.llm.record_prompts = true;
    world.env_extra = "PROMPT_LAYOUT=inline\n".into();
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let prompt = &h.llm.prompts()[0];
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/prompts/department1.txt"
    ))
    .unwrap();
    let before_transcript = template.split("{transcription}").next().unwrap();
    assert!(!prompt.contains("ТРАНСКРИПЦИЯ ЗВОНКА:\n"));
    let head: String = before_transcript.chars().take(40).collect();
    assert!(
        prompt.starts_with(&head),
        "inline prompt starts like the template"
    );
}

/// `--days-ago` that makes the day after the test day the nightly run's day.
fn days_ago_for_the_next_night() -> String {
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive();
    ((today - day()).num_days() - 1).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_nightly_run_retries_failed_and_untranscribed_calls_of_earlier_days() {
    let world = World {
        calls: vec![
            call(1, OP1, &[(true, "Добрый день"), (false, "Спасибо")]),
            call(2, OP1, &[(true, "Здравствуйте"), (false, "Да")]),
        ],
        ..World::default()
    };
    let h = Harness::start(world).await;
    h.llm.set_refuse_all(true);
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 2);

    // The next night scores the following day, which has no calls, and comes back to this one.
    h.llm.set_refuse_all(false);
    let days_ago = days_ago_for_the_next_night();
    assert_eq!(
        h.callq(&["run", "--days-ago", &days_ago]).await,
        ExitCode::Ok
    );
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE is_sales_call")
            .await,
        2
    );
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    let days: Vec<String> =
        h.db.client()
            .await
            .query("SELECT call_date::text FROM runs ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let next = (day() + chrono::Days::new(1)).to_string();
    assert_eq!(days, vec![day().to_string(), next, day().to_string()]);

    // Nothing waits any more: the night after visits its own day only.
    let runs = h.count("SELECT count(*) FROM runs").await;
    assert_eq!(
        h.callq(&["run", "--days-ago", &days_ago]).await,
        ExitCode::Ok
    );
    assert_eq!(h.count("SELECT count(*) FROM runs").await, runs + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_date_runs_that_day_alone() {
    let h = Harness::start(World {
        calls: vec![call(1, OP1, &[(true, "Алло")])],
        ..World::default()
    })
    .await;
    h.llm.set_refuse_all(true);
    assert_eq!(h.run(&[]).await, ExitCode::SomeFailed);
    let next = (day() + chrono::Days::new(1)).to_string();
    assert_eq!(h.callq(&["run", "--date", &next]).await, ExitCode::Ok);
    assert_eq!(
        h.count("SELECT count(*) FROM runs").await,
        2,
        "no retry days with --date"
    );
}
