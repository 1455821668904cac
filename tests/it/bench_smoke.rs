//! `cargo test` does not run benchmarks, so this runs the pipeline benchmark's `smoke` case
//! (benches/pipeline/mod.rs) with the debug binary: a benchmark that no longer works, or a
//! run that no longer scores every call, shows up in ./scripts/test.

// The benchmark brings its own copy of the harness module; one binary links both.
#[allow(clippy::duplicate_mod)]
#[path = "../../benches/pipeline/mod.rs"]
mod bench;

use std::path::Path;

#[tokio::test(flavor = "multi_thread")]
async fn the_benchmark_smoke_case_scores_every_call_and_reports_sane_numbers() {
    let plan = bench::parse_args(&[]).unwrap();
    assert_eq!(plan.cases.len(), 1, "the default is the smoke case");
    let case = &plan.cases[0];
    assert_eq!(case.name, "smoke");
    let row = bench::run_case(case, Path::new(env!("CARGO_BIN_EXE_callq"))).await;
    let diagnosis = format!("{row:#?}\nstderr:\n{}", bench::tail(&row.stderr, 30));

    assert_eq!(row.exit_code, Some(0), "{diagnosis}");
    assert!(row.problems().is_empty(), "{diagnosis}");
    assert_eq!(row.rows, case.calls as i64, "{diagnosis}");
    assert_eq!(
        row.llm_requests, case.calls,
        "one LLM request per call: {diagnosis}"
    );
    assert!(row.wall_s() > 0.0);
    assert!(row.first_llm.is_some_and(|f| f <= row.wall), "{diagnosis}");
    assert!(row.peak_rss_kb.is_some_and(|kb| kb > 0), "{diagnosis}");
    assert!(
        (1..=case.concurrency).contains(&row.in_flight_max),
        "{diagnosis}"
    );
    assert_eq!(row.served_429, 0, "{diagnosis}");
    assert!(row.prompt_chars > 0);
    let shared = row.shared_prefix_pct();
    assert!(shared > 0.0 && shared < 100.0, "shared prefix {shared}%");
    assert!(row.efficiency_pct() > 0.0 && row.efficiency_pct() <= 100.0);
    // The table row has every column.
    let line = bench::table_row(&row);
    assert_eq!(
        line.matches('|').count(),
        bench::table_header()
            .lines()
            .next()
            .unwrap()
            .matches('|')
            .count(),
        "{line}"
    );
    assert!(line.ends_with("| ok |"), "{line}");
    // So does the table for the README, with the case's calls per second.
    let save = bench::SaveRow {
        calls: 100,
        tasks: 4,
        seconds: 0.05,
        per_second: 2000.0,
        rows: 100,
        transcript_bytes: 5000,
        errors: 0,
        first_error: None,
    };
    let table = bench::readme_table(std::slice::from_ref(&row), Some(&save));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[2].matches('|').count(),
        lines[0].matches('|').count(),
        "{table}"
    );
    let per_s = format!("| {} |", bench::thousands(row.saved_per_s().round() as u64));
    assert!(lines[2].contains(&per_s), "{per_s} in {table}");
    assert!(table.contains("2,000 calls/s"), "{table}");
}

#[test]
fn arguments_select_presets_and_override_them() {
    let args = |a: &[&str]| bench::parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let all = args(&["--case", "all", "--bench"]).unwrap();
    let names: Vec<&str> = all.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["target", "memory", "memory-100k", "gateway"]);
    assert_eq!(all.save_only, Some(bench::SAVE_CALLS));
    let scale = &args(&["--case", "memory-100k"]).unwrap();
    assert_eq!(scale.cases[0].calls, 100_000);
    assert_eq!(scale.save_only, None);

    let gateway = &args(&["--case=gateway"]).unwrap().cases[0];
    assert_eq!((gateway.concurrency, gateway.gateway_limit), (32, Some(8)));
    assert_eq!(gateway.bound().as_secs_f64(), 1000.0 * 0.5 / 8.0);

    let custom = args(&[
        "--case",
        "target",
        "--calls",
        "200",
        "--concurrency=16",
        "--gateway-limit",
        "0",
    ])
    .unwrap();
    let c = &custom.cases[0];
    assert_eq!(
        (c.name.as_str(), c.calls, c.concurrency, c.gateway_limit),
        ("target*", 200, 16, None)
    );
    assert_eq!(custom.save_only, None);

    let save = args(&["--case", "save-only", "--save-calls", "500"]).unwrap();
    assert!(save.cases.is_empty());
    assert_eq!(save.save_only, Some(500));

    assert!(args(&["--case", "nope"]).is_err());
    assert!(args(&["--calls"]).is_err());
    assert!(args(&["--llm-error-rate", "2"]).is_err());
    assert!(args(&["--frobnicate", "1"]).is_err());
}
