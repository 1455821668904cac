//! Evidence and the review queue end to end: the fake model quotes the transcript it was
//! sent (exactly, lightly altered, invented, or not at all), callq checks every quote and
//! stores it, and calls needing a person land in `v_review_queue` and the run summary.

use std::path::Path;

use crate::common::{Harness, World, day};
use callq::config::Env;
use callq::domain::ReviewReason;
use callq::run::{self as pipeline, RunOptions};
use callq::severity::ExitCode;
use callq_fakes::{INVENTED_QUOTE, markers, scenario};
use serde_json::Value;

/// Six calls of one day: plain, near quotes, an invented quote, every score 0, no quotes
/// at all, not a sales call. "Приветствие" is marked critical in column E.
fn quality_day() -> World {
    let mut calls = scenario::sample_calls(day(), 6);
    for (i, marker) in [
        None,
        Some(markers::EVIDENCE_NEAR),
        Some(markers::EVIDENCE_INVENTED),
        Some(markers::SCORE_ZERO),
        Some(markers::NO_EVIDENCE),
        Some(markers::NOT_SALES),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(m) = marker {
            calls[i].phrases.push((false, format!("Хорошо. {m}")));
        }
    }
    let mut rows = scenario::sample_checklist_rows();
    assert_eq!(rows[2][0], "Приветствие");
    rows[0].push("Критичный".into());
    rows[2].push("да".into());
    World {
        calls,
        checklist_rows: rows,
        ..World::default()
    }
}

/// (call id, criterion, evidence, evidence_verified) of every evaluation, in checklist order.
async fn evidence_rows(h: &Harness) -> Vec<(i64, String, Option<String>, Option<bool>)> {
    h.db.client()
        .await
        .query(
            "SELECT call_id, criterion, evidence, evidence_verified FROM call_evaluations
             ORDER BY call_id, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn review_reasons(h: &Harness) -> Vec<(i64, Vec<String>)> {
    h.db.client()
        .await
        .query("SELECT id, review_reasons FROM calls ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_are_checked_stored_and_send_calls_to_review() {
    let h = Harness::start(quality_day()).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);

    let rows = evidence_rows(&h).await;
    let of = |id: i64| -> Vec<&(i64, String, Option<String>, Option<bool>)> {
        rows.iter().filter(|r| r.0 == id).collect()
    };
    // Exact quotes: every one found, each a phrase of the call.
    let exact = of(90_000_000);
    assert_eq!(exact.len(), 7);
    assert_eq!(
        exact[0].2.as_deref(),
        Some("Добрый день! Меня зовут Анна, компания «Пример».")
    );
    assert!(exact.iter().all(|r| r.3 == Some(true)), "{exact:?}");
    // Lightly altered quotes: found as near matches.
    let near = of(90_000_001);
    assert_eq!(
        near[0].2.as_deref(),
        Some("добрый день меня зовут иван коммпания пример")
    );
    assert!(near.iter().all(|r| r.3 == Some(true)), "{near:?}");
    // An invented quote is kept and marked, the others are found.
    let invented = of(90_000_002);
    assert_eq!(invented[0].2.as_deref(), Some(INVENTED_QUOTE));
    assert_eq!(invented[0].3, Some(false));
    assert!(invented[1..].iter().all(|r| r.3 == Some(true)));
    // Scores of 0 come with an empty quote: nothing to check.
    let zero = of(90_000_003);
    assert!(
        zero.iter()
            .all(|r| r.2.as_deref() == Some("") && r.3.is_none())
    );
    // No evidence field at all: NULL, and not an error.
    let none = of(90_000_004);
    assert_eq!(none.len(), 7);
    assert!(none.iter().all(|r| r.2.is_none() && r.3.is_none()));

    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        review_reasons(&h).await,
        vec![
            (90_000_000, vec![]),
            (90_000_001, vec![]),
            (90_000_002, s(&["unverified_evidence"])),
            (90_000_003, s(&["low_score", "critical_missed"])),
            (90_000_004, vec![]),
            (90_000_005, vec![]),
        ]
    );

    // The queue: newest first, with the operator, the day and the failing criteria.
    let queue =
        h.db.client()
            .await
            .query(
                "SELECT call_id, day::text, operator_name, performance_percentage, review_reasons,
                    failing_criteria
             FROM v_review_queue",
                &[],
            )
            .await
            .unwrap();
    let ids: Vec<i64> = queue.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [90_000_003, 90_000_002]);
    assert_eq!(queue[0].get::<_, String>(1), day().to_string());
    assert_eq!(queue[0].get::<_, String>(2), "Иванова Анна Сергеевна");
    assert_eq!(queue[0].get::<_, Option<i32>>(3), Some(0));
    let failing: Value = queue[0].get(5);
    assert_eq!(
        failing.as_array().unwrap().len(),
        7,
        "every criterion lost points"
    );
    assert_eq!(failing[0]["criterion"], "Приветствие");
    assert_eq!(failing[0]["score"], 0.0);
    let failing: Value = queue[1].get(5);
    let unverified: Vec<&Value> = failing
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["evidence_verified"] == Value::Bool(false))
        .collect();
    assert_eq!(unverified.len(), 1);
    assert_eq!(unverified[0]["evidence"], INVENTED_QUOTE);
    // The first criterion had full marks: it is listed only because its quote was not found.
    assert_eq!(unverified[0]["score"], unverified[0]["max_score"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_summary_counts_calls_per_review_reason() {
    let mut world = quality_day();
    world.env_extra = "REVIEW_BELOW_PERCENT=81\n".into();
    let h = Harness::start(world).await;
    let env = Env::load_with(&h.env_path, true, Vec::new());
    let settings = env.run().expect("valid test configuration");
    assert_eq!(settings.review_below_percent, 81);
    let opts = RunOptions::default();
    let prepared = pipeline::prepare(settings, &opts).await.unwrap();
    let (summary, result) = prepared.run_day(day(), &opts).await;
    result.unwrap();
    // The fake's scores make 80 %: below 81 every sales call is low, the zero call too.
    assert_eq!(summary.review_count(ReviewReason::LowScore), 5);
    assert_eq!(summary.review_count(ReviewReason::CriticalMissed), 1);
    assert_eq!(summary.review_count(ReviewReason::UnverifiedEvidence), 1);
    let json = summary.to_json();
    assert_eq!(json["review"]["low_score"], 5);
    assert_eq!(json["review"]["unverified_evidence"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_are_asked_for_by_prompt_when_the_gateway_refuses_the_schema() {
    let mut world = quality_day();
    world.calls.truncate(3);
    world.llm.reject_response_format = true;
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let rows = evidence_rows(&h).await;
    assert_eq!(rows.len(), 3 * 7);
    assert!(
        rows.iter().all(|r| r.2.is_some()),
        "every score has a quote"
    );
    let unverified: Vec<i64> = rows
        .iter()
        .filter(|r| r.3 == Some(false))
        .map(|r| r.0)
        .collect();
    assert_eq!(unverified, [90_000_002]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_criteria_file_marks_critical_criteria_in_its_fifth_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("criteria.csv");
    std::fs::write(
        &path,
        "\u{feff}Показатель;Комментарий;Максимальный балл;Условия оценки;Критичный\n\
         Приветствие\n\
         Назвал имя;;5;;да\n\
         Назвал банк;;5;;нет\n\
         Предложил карту;;5\n",
    )
    .unwrap();
    let mut world = World {
        calls: scenario::sample_calls(day(), 1),
        ..World::default()
    };
    world.calls[0]
        .phrases
        .push((false, markers::SCORE_ZERO.to_string()));
    world.env_extra = format!("CRITERIA_FILE={}\n", path.display());
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let reasons = review_reasons(&h).await;
    assert_eq!(
        reasons[0].1,
        ["low_score".to_string(), "critical_missed".to_string()]
    );
    let listed = callq::checklist::load_file(Path::new(&path)).unwrap();
    let critical: Vec<bool> = listed.criteria.iter().map(|c| c.critical).collect();
    assert_eq!(critical, [true, false, false]);
}
