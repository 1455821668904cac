//! `callq calibrate import` and `report` end to end: a scored day, a QA file with a typo'd
//! criterion, all-or-nothing import, re-import changing nothing, and the report's figures.

use crate::common::{Harness, World, day};
use callq::cli::{CalibrateCommand, Cli, Command};
use callq::commands::calibrate::report_data;
use callq::config::Env;
use callq::severity::ExitCode;
use callq_fakes::scenario;
use clap::Parser;
use serde_json::Value;

async fn human_rows(h: &Harness) -> Vec<String> {
    h.db.client()
        .await
        .query(
            "SELECT row_to_json(t)::text FROM (SELECT * FROM human_evaluations
             ORDER BY call_id, category, criterion, reviewer) t",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn report_json(h: &Harness, extra: &[&str]) -> Value {
    let env_file = h.env_path.display().to_string();
    let mut argv = vec!["callq", "calibrate", "report", "--env-file", &env_file];
    argv.extend_from_slice(extra);
    let Command::Calibrate(CalibrateCommand::Report(args)) =
        Cli::try_parse_from(argv).unwrap().command
    else {
        unreachable!()
    };
    let env = Env::load_with(&h.env_path, true, Vec::new());
    report_data(&args, &env).await.unwrap().to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_scores_are_imported_all_or_nothing_and_reported() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 3),
        ..World::default()
    })
    .await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let dir = tempfile::tempdir().unwrap();

    // One bad line in three: nothing is written.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "call_id,criterion,score\n\
         90000000,Приветствие,10\n\
         90000000,Улыбка в голосе,1\n\
         90000000,Прощание,3\n",
    )
    .unwrap();
    let bad_path = bad.display().to_string();
    assert_eq!(
        h.callq(&["calibrate", "import", &bad_path]).await,
        ExitCode::BadInput
    );
    assert!(human_rows(&h).await.is_empty());

    // The model scored 10, 2, 10, 1, 5, 2, 1 on the seven criteria of every call.
    let good = dir.path().join("qa.csv");
    std::fs::write(
        &good,
        "\u{feff}call_id;category;criterion;score;reviewer;reviewed_at\r\n\
         90000000;Установление контакта;Приветствие;10;Орлова;2025-08-08\r\n\
         90000000;;обращение по имени;2;Орлова;08.08.2025\r\n\
         90000000;;Уточнение бюджета;2,5;Орлова;\r\n\
         90000000;Установление контакта;Приветствие;8;Петров;2025-08-09\r\n\
         90000002;;приветствие.;10;Орлова;\r\n\
         90000002;;Открытые вопрсы;5;Орлова;\r\n",
    )
    .unwrap();
    let good_path = good.display().to_string();
    assert_eq!(
        h.callq(&["calibrate", "import", &good_path]).await,
        ExitCode::Ok
    );
    let first = human_rows(&h).await;
    assert_eq!(first.len(), 6);
    assert!(
        first
            .iter()
            .any(|r| r.contains("\"criterion\":\"Открытые вопросы\"")),
        "misspelt criterion stored in the checklist's spelling: {first:?}"
    );
    // Again: nothing changes, not even the import time.
    assert_eq!(
        h.callq(&["calibrate", "import", &good_path]).await,
        ExitCode::Ok
    );
    assert_eq!(human_rows(&h).await, first);

    let r = report_json(&h, &[]).await;
    assert_eq!(r["calls"], 2);
    assert_eq!(r["pairs"], 6);
    let criteria = r["criteria"].as_array().unwrap();
    let greeting = criteria
        .iter()
        .find(|c| c["criterion"] == "Приветствие")
        .unwrap();
    // (model, human): (10,10) (10,8) (10,10): exact 2/3, within one 2/3, bias +2/3, MAE 2/3.
    assert_eq!(greeting["n"], 3);
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&greeting["exact"], 2.0 / 3.0), "{greeting}");
    assert!(close(&greeting["bias"], 2.0 / 3.0), "{greeting}");
    // A single pair has no kappa: null, not NaN.
    let budget = criteria
        .iter()
        .find(|c| c["criterion"] == "Уточнение бюджета")
        .unwrap();
    assert_eq!(budget["qwk"], Value::Null);
    assert!(close(&budget["mae"], 1.5));
    // Per (call, reviewer) totals: (13, 14.5) (10, 8) (20, 15) → MAE (1.5+2+5)/3.
    assert_eq!(r["total"]["n"], 3);
    assert!(
        close(&r["total"]["mae_points"], 8.5 / 3.0),
        "{}",
        r["total"]
    );
    // Orlova and Petrov both scored the greeting of call 90000000.
    assert_eq!(r["between_reviewers"]["pairs"], 1);
    assert_eq!(r["between_reviewers"]["calls"], 1);

    // A range without those calls has nothing to compare.
    let next = (day() + chrono::Days::new(1)).to_string();
    let empty = report_json(&h, &["--from", &next]).await;
    assert_eq!(empty["pairs"], 0);
    assert_eq!(empty["between_reviewers"], Value::Null);
    assert_eq!(empty["total"]["pearson"], Value::Null);
}
