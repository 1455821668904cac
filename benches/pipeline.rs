//! `cargo bench --bench pipeline -- [--case smoke|target|memory|gateway|batch-smoke|batch-100k|save-only|all] [flags]`
//! (or `./scripts/bench …`, which provides PostgreSQL and builds the release binary).
//!
//! Runs the release `callq run` against the fake T-Bank, Google and LLM servers and a real
//! PostgreSQL, and prints one markdown table row per case: wall time against the LLM bound
//! N·L/min(C,G), peak RSS, what the gateway saw, and whether every call was stored. The
//! cases and measurements live in `benches/pipeline/mod.rs`.

#[path = "pipeline/mod.rs"]
mod bench;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match bench::parse_args(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("pipeline bench: {e}\n\n{}", bench::USAGE);
            return ExitCode::from(2);
        }
    };
    if plan.help {
        println!("{}", bench::USAGE);
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("DATABASE_URL").is_none() {
        eprintln!(
            "pipeline bench: DATABASE_URL is not set; run ./scripts/bench, which starts a throwaway PostgreSQL"
        );
        return ExitCode::from(2);
    }
    let binary = if plan.cases.is_empty() {
        None
    } else {
        match bench::callq_binary() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("pipeline bench: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let command = std::env::var("CALLQ_BENCH_COMMAND").unwrap_or_else(|_| {
        let shown: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "--bench")
            .collect();
        format!("cargo bench --bench pipeline -- {}", shown.join(" "))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        tokio::select! {
            ok = run(&plan, binary.as_deref(), &command) => {
                if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            _ = tokio::signal::ctrl_c() => {
                // Dropping the running case kills callq and drops its database.
                eprintln!("pipeline bench: interrupted");
                ExitCode::from(130)
            }
        }
    })
}

/// Runs the plan and prints the report; false when a result is wrong.
async fn run(plan: &bench::Plan, binary: Option<&std::path::Path>, command: &str) -> bool {
    println!("{}", bench::header(command, binary).await);
    let mut rows = Vec::new();
    for case in &plan.cases {
        let binary = binary.expect("pipeline cases have a binary");
        eprintln!(
            "pipeline bench: {} — N={} C={} G={} LLM {} ms, bound {:.2} s …",
            case.name,
            case.calls,
            case.concurrency,
            case.gateway_limit
                .map_or("-".to_string(), |g| g.to_string()),
            case.llm_latency_ms,
            case.bound().as_secs_f64()
        );
        let row = bench::run_case(case, binary).await;
        eprintln!(
            "pipeline bench: {} done in {:.2} s, exit {:?}",
            case.name,
            row.wall_s(),
            row.exit_code
        );
        rows.push(row);
    }
    let save = match plan.save_only {
        Some(n) => {
            eprintln!("pipeline bench: save-only — {n} calls …");
            Some(bench::run_save_only(n).await)
        }
        None => None,
    };

    let mut ok = true;
    println!("load after the last case: {}", bench::load_average());
    println!();
    if !rows.is_empty() {
        println!("{}", bench::table_header());
        for r in &rows {
            println!("{}", bench::table_row(r));
        }
        println!();
        for r in &rows {
            println!("{}", bench::case_details(&r.case));
        }
        for r in &rows {
            println!("{}", bench::cost_line(r));
        }
        for r in &rows {
            println!("{}", bench::mask_line(&r.case, r.wall));
        }
        if rows.iter().any(|r| r.case.name.ends_with('*')) {
            println!("* the preset with values from the command line");
        }
        println!();
        println!("{}", bench::LEGEND);
    }
    if let Some(s) = &save {
        println!();
        println!("{}", bench::save_line(s));
        ok &= s.rows == s.calls as i64 && s.errors == 0;
    }
    if !rows.is_empty() {
        println!();
        println!("For the README (Performance):");
        println!();
        print!("{}", bench::readme_table(&rows, save.as_ref()));
    }
    for r in &rows {
        let problems = r.problems();
        if !problems.is_empty() {
            ok = false;
            println!();
            println!("WRONG RESULT in {}: {}", r.case.name, problems.join("; "));
            println!("callq stdout (last lines):\n{}", bench::tail(&r.stdout, 15));
            println!("callq stderr (last lines):\n{}", bench::tail(&r.stderr, 30));
        }
    }
    ok
}
