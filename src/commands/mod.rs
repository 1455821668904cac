//! One function per subcommand: configuration in, exit code out. `main` only parses flags,
//! sets up logging and calls these; tests call them directly.

pub mod check;
pub mod completions;
pub mod demo;
pub mod export;
pub mod operators;
pub mod report;

use chrono::NaiveDate;

use crate::checklist;
use crate::cli::{Command, EnvArgs, OperatorsCommand, RunArgs};
use crate::config::{ConfigError, Env};
use crate::exit::ExitCode;
use crate::metrics;
use crate::pipeline::{self, RunError, RunOptions};
use crate::store::Store;

pub async fn dispatch(command: Command, env: Env) -> ExitCode {
    match command {
        Command::Run(args) => run(&args, env).await,
        Command::Migrate(_) => migrate(&env).await,
        Command::Criteria(_) => criteria(&env).await,
        Command::Check(_) => check::check(&env).await,
        Command::Operators(OperatorsCommand::Import(args)) => operators::import(&args, &env).await,
        Command::Operators(OperatorsCommand::Unknown(args)) => {
            operators::unknown(&args, &env).await
        }
        Command::Completions(args) => completions::completions(args.shell),
        Command::Report(args) => report::report(&args, &env).await,
        Command::Export(args) => export::export(&args, &env).await,
        Command::Demo(args) => demo::demo(&args).await,
    }
}

/// Loads the env file and the environment, applying the run's flags on top.
pub fn load_env(args: &EnvArgs) -> Env {
    Env::load(&args.path(), args.explicit())
}

pub(crate) fn config_failed(e: ConfigError) -> ExitCode {
    tracing::error!("{e}");
    ExitCode::BadInput
}

fn warn_ignored(env: &Env) {
    let (ignored, unknown) = env.ignored_vars();
    if !ignored.is_empty() {
        tracing::warn!(
            "ignoring variables of the old tool that callq does not use: {}",
            ignored.join(", ")
        );
    }
    if !unknown.is_empty() {
        tracing::warn!(
            "ignoring unknown variables in {}: {}",
            env.file().display(),
            unknown.join(", ")
        );
    }
}

pub async fn migrate(env: &Env) -> ExitCode {
    let db = match env.database() {
        Ok(db) => db,
        Err(e) => return config_failed(e),
    };
    let store = match Store::connect(&db, 2).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::Unavailable;
        }
    };
    match store.migrate().await {
        Ok(applied) if applied.is_empty() => {
            tracing::info!("database {} is up to date", db.display);
            ExitCode::Ok
        }
        Ok(applied) => {
            tracing::info!("applied {} to {}", applied.join(", "), db.display);
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::Unavailable
        }
    }
}

pub async fn criteria(env: &Env) -> ExitCode {
    let source = match env.checklist_source() {
        Ok(s) => s,
        Err(e) => return config_failed(e),
    };
    match pipeline::load_checklist(&source).await {
        Ok(list) => {
            println!("{}", checklist::describe(&list));
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(&e)
        }
    }
}

pub async fn run(args: &RunArgs, mut env: Env) -> ExitCode {
    if let Some(n) = args.days_ago {
        env.set_flag("CHECK_DAY_AGO", "--days-ago", n);
    }
    if let Some(n) = args.concurrency {
        env.set_flag("LLM_CONCURRENCY", "--concurrency", n);
    }
    warn_ignored(&env);
    let settings = match env.run() {
        Ok(s) => s,
        Err(e) => return config_failed(e),
    };
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        tracing::error!("--from {from} is after --to {to}");
        return ExitCode::BadInput;
    }
    let opts = RunOptions {
        dry_run: args.dry_run,
        reanalyze: args.reanalyze,
        limit: args.limit.map(|l| l as usize),
        show_progress: true,
    };
    let settings_department = settings.department_id;
    let metrics_settings = settings.metrics.clone();
    let prepared = match pipeline::prepare(settings, &opts).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(&e);
        }
    };
    let mut days = days_to_run(args, prepared.default_day());
    // The nightly run (no --date, --from) also revisits recent days whose failed or
    // untranscribed calls are still waiting; an explicit day is run alone.
    if args.date.is_none() && args.from.is_none() && !opts.dry_run {
        match prepared.days_to_retry(days[0]).await {
            Ok(earlier) if !earlier.is_empty() => {
                let list: Vec<String> = earlier.iter().map(|d| d.to_string()).collect();
                tracing::info!(
                    "also visiting {} for calls that failed or were not transcribed",
                    list.join(", ")
                );
                days.extend(earlier);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("could not look for earlier days to retry: {e}"),
        }
    }
    let mut worst = ExitCode::Ok;
    let mut summaries = Vec::new();
    let mut errors = Vec::new();
    for day in days {
        match prepared.run_day(day, &opts).await {
            Ok(summary) => {
                tracing::info!("{}", summary.to_string().trim_end());
                if !args.json {
                    println!("{summary}");
                }
                if summary.failures_total > 0 {
                    worst = worst.max(ExitCode::SomeFailed);
                }
                summaries.push(summary);
            }
            Err(e) => {
                tracing::error!("day {day}: {e}");
                worst = worst.max(ExitCode::from(&e));
                errors.push(serde_json::json!({"day": day.to_string(), "error": e.to_string()}));
                // Another day may still work after a lock conflict; a rejected key or a
                // refused login will not get better, so stop there.
                if !matches!(e, RunError::Locked(_)) {
                    break;
                }
            }
        }
    }
    if args.json {
        let days: Vec<serde_json::Value> = summaries.iter().map(|s| s.to_json()).collect();
        let report = serde_json::json!({
            "department_id": settings_department,
            "exit_code": worst.code(),
            "days": days,
            "errors": errors,
        });
        println!("{report}");
    }
    if !opts.dry_run {
        let text = metrics::render(
            settings_department,
            &summaries,
            worst,
            chrono::Utc::now().timestamp(),
        );
        metrics::publish(&metrics_settings, settings_department, &text).await;
    }
    worst
}

fn days_to_run(args: &RunArgs, default_day: NaiveDate) -> Vec<NaiveDate> {
    match (args.date, args.from, args.to) {
        (Some(d), _, _) => vec![d],
        (None, Some(from), Some(to)) => from.iter_days().take_while(|d| *d <= to).collect(),
        _ => vec![default_day],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn run_args(argv: &[&str]) -> RunArgs {
        match Cli::parse_from(argv).command {
            Command::Run(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_range_runs_each_day_in_order() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let a = run_args(&["callq", "run", "--from", "2025-07-30", "--to", "2025-08-02"]);
        let days: Vec<String> = days_to_run(&a, d).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            days,
            ["2025-07-30", "2025-07-31", "2025-08-01", "2025-08-02"]
        );
        assert_eq!(days_to_run(&run_args(&["callq", "run"]), d), vec![d]);
        let one = run_args(&["callq", "run", "--date", "2025-08-07"]);
        assert_eq!(
            days_to_run(&one, d),
            vec![NaiveDate::from_ymd_opt(2025, 8, 7).unwrap()]
        );
    }
}
