//! `callq demo` end to end, in-process: with DATA_BASE pointing at a fresh database, and
//! with its own throwaway cluster where PostgreSQL's server binaries are installed.

use crate::common::TestDb;
use callq::config::ReportLang;
use callq::demo::world::{self, Kind};
use callq::demo::{DemoOptions, postgres};
use callq::severity::ExitCode;

fn options(dir: &std::path::Path, database: Option<String>) -> DemoOptions {
    DemoOptions {
        calls: 20,
        days: 2,
        out: dir.to_path_buf(),
        keep: false,
        database,
        lang: ReportLang::Ru,
        batch: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_batch_scores_the_same_nights_through_batches() {
    callq::tls::install_crypto_provider();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        batch: true,
        ..options(dir.path(), Some(db.url.clone()))
    };
    let outcome = callq::demo::run(&opts).await.expect("the demo runs");
    assert_eq!(outcome.run_exit, ExitCode::Ok);
    let c = db.client().await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let scored = (0..20)
        .filter(|i| matches!(world::kind(*i), Kind::Sale | Kind::NotSales))
        .count() as i64
        * 2;
    assert_eq!(count("SELECT count(*) FROM calls").await, scored);
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE cost_source <> 'batch'").await,
        0
    );
    // One batch per night, both collected.
    assert_eq!(
        count("SELECT count(*) FROM llm_batches WHERE state = 'collected'").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scores_the_simulated_nights_into_data_base() {
    callq::tls::install_crypto_provider();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = callq::demo::run(&options(dir.path(), Some(db.url.clone())))
        .await
        .expect("the demo runs");
    assert_eq!(outcome.run_exit, ExitCode::Ok);
    let html = std::fs::read_to_string(&outcome.report).unwrap();
    assert!(html.contains("data-figure=\"calls_scored\""));
    let sales = (0..20).filter(|i| world::kind(*i) == Kind::Sale).count() as i64 * 2;
    let not_sales = (0..20)
        .filter(|i| world::kind(*i) == Kind::NotSales)
        .count() as i64
        * 2;
    let c = db.client().await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM v_scored_calls").await, sales);
    assert!(html.contains(&format!(
        "data-figure=\"calls_scored\" data-value=\"{sales}\""
    )));
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE is_sales_call = false").await,
        not_sales
    );
    assert_eq!(
        count("SELECT count(DISTINCT operator_name)::bigint FROM unknown_operators").await,
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM runs WHERE status <> 'running'").await,
        2
    );
    // Scores differ by operator, so the report has something to show.
    assert!(count("SELECT count(DISTINCT performance_percentage) FROM calls").await > 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_and_removes_a_throwaway_cluster() {
    if postgres::find_bindir().is_none() {
        eprintln!("no initdb on this machine: the throwaway-cluster path is not tested here");
        return;
    }
    callq::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let outcome = callq::demo::run(&options(dir.path(), None))
        .await
        .expect("the demo runs on its own cluster");
    assert_eq!(outcome.run_exit, ExitCode::Ok);
    assert!(outcome.report.is_file());
    assert!(outcome.stop_command.is_none());
    // The cluster is gone: its port refuses connections.
    let refused = tokio_postgres::connect(&outcome.database_url, tokio_postgres::NoTls).await;
    assert!(refused.is_err(), "the throwaway cluster was stopped");
}

/// On a terminal the run's summary is printed once: the console log, on the same screen,
/// leaves out the copy stdout already shows, while the log file keeps it. The real binary
/// runs under a pseudo-terminal from util-linux `script`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_a_terminal_shows_the_summary_once() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no `script` (util-linux) on this machine: the terminal case is not tested here");
        return;
    }
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let command = format!(
        "{} demo --days 1 --calls 8 --out {}",
        env!("CARGO_BIN_EXE_callq"),
        dir.path().join("out").display()
    );
    let out = tokio::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("DATA_BASE", &db.url)
        .env("LOGGING_ON_CONSOLE", "True")
        .env("LOGGING_ON_FILE", "True")
        .env("LOGGING_DIR", &logs)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // Both streams reach the terminal: the log lines are there, the summary once.
    assert!(screen.contains("INFO"), "console logging is on: {screen}");
    assert_eq!(screen.matches("calls listed in").count(), 1, "{screen}");
    let mut logged = String::new();
    for f in std::fs::read_dir(&logs).unwrap() {
        logged.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
    }
    assert_eq!(logged.matches("calls listed in").count(), 1, "{logged}");
}
