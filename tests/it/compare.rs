//! `callq compare` end to end: a variant prompt scored on a sample of stored calls leaves
//! `calls` and its child tables exactly as they were, stores its answers under an
//! experiment id, and a broken variant costs nothing.

use crate::common::{Harness, World, day};
use callq::cli::{Cli, Command};
use callq::commands::compare::compare_data;
use callq::config::Env;
use callq::severity::ExitCode;
use callq_fakes::scenario;
use clap::Parser;

fn variant_prompt(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("variant.txt");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compare_run_leaves_calls_untouched_and_stores_the_variant_apart() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 5),
        ..World::default()
    })
    .await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let before = h.snapshot().await;
    let requests = h.llm.requests();
    let dir = tempfile::tempdir().unwrap();
    let date = day().to_string();

    // A broken template: reported before any request, nothing stored.
    let broken = variant_prompt(dir.path(), "Оцени звонок: {transcript}\n{criteria_list}");
    assert_eq!(
        h.callq(&["compare", "--prompt-file", &broken, "--date", &date])
            .await,
        ExitCode::BadInput
    );
    assert_eq!(h.llm.requests(), requests);
    assert_eq!(h.count("SELECT count(*) FROM experiments").await, 0);

    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/prompts/department1.txt"
    ))
    .unwrap();
    let variant = variant_prompt(
        dir.path(),
        &template.replace("Ты — эксперт", "Ты — строгий эксперт"),
    );
    let env_file = h.env_path.display().to_string();
    let argv = [
        "callq",
        "compare",
        "--prompt-file",
        &variant,
        "--date",
        &date,
        "--sample",
        "3",
        "--seed",
        "5",
        "--env-file",
        &env_file,
    ];
    let Command::Compare(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let env = Env::load_with(&h.env_path, true, Vec::new());
    let outcome = compare_data(&args, env).await.unwrap();
    assert_eq!(
        h.llm.requests(),
        requests + 3,
        "one request per sampled call"
    );
    assert_eq!(
        h.snapshot().await,
        before,
        "calls and its child tables untouched"
    );

    let r = &outcome.report;
    assert_eq!(r["calls"], 3);
    assert_eq!(r["failed"], 0);
    // The fake scores by position, whatever the wording: the variant agrees exactly.
    assert_eq!(r["variant_vs_stored"]["pairs"], 3 * 7);
    for c in r["variant_vs_stored"]["criteria"].as_array().unwrap() {
        assert_eq!(c["exact"], 1.0, "{c}");
    }
    assert_eq!(r["variant_vs_human"], serde_json::Value::Null);
    assert!(r["usage"]["variant"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(r["usage"]["stored"]["cost_usd"].as_f64().unwrap() > 0.0);

    let id = outcome.experiment_id;
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM experiment_calls WHERE experiment_id = {id} AND error IS NULL"
        ))
        .await,
        3
    );
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM experiment_evaluations WHERE experiment_id = {id} AND evidence_verified"
        ))
        .await,
        3 * 7,
        "the variant's quotes are checked too"
    );

    // A call without a stored transcript is counted and left out of the sample.
    h.db.client()
        .await
        .batch_execute("DELETE FROM call_transcripts WHERE call_id = 90000004")
        .await
        .unwrap();
    let env = Env::load_with(&h.env_path, true, Vec::new());
    let again = compare_data(&args, env).await.unwrap();
    assert_eq!(again.report["without_transcript"], 1);
    assert_eq!(again.report["calls"], 3);
}
