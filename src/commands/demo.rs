//! `callq demo`: prints where the report and the data are, and how to look at them.

use crate::cli::DemoArgs;
use crate::config::ReportLang;
use crate::demo::{self, DemoOptions};
use crate::severity::ExitCode;

pub async fn demo(args: &DemoArgs) -> ExitCode {
    let opts = DemoOptions {
        calls: args.calls as usize,
        days: args.days,
        out: args.out.clone(),
        keep: args.keep,
        database: std::env::var("DATA_BASE")
            .ok()
            .filter(|v| !v.trim().is_empty()),
        lang: match std::env::var("REPORT_LANG")
            .map(|v| v.to_lowercase())
            .as_deref()
        {
            Ok("en") => ReportLang::En,
            _ => ReportLang::Ru,
        },
        batch: args.batch,
    };
    match demo::run(&opts).await {
        Ok(o) => {
            let report = std::fs::canonicalize(&o.report).unwrap_or(o.report.clone());
            println!();
            println!("Report: {}", report.display());
            if opts.database.is_some() || o.stop_command.is_some() {
                println!("Look at the tables:  psql '{}'", o.database_url);
                println!("  e.g. SELECT * FROM v_operator_daily ORDER BY day, operator_name;");
            }
            match &o.stop_command {
                Some(stop) => {
                    println!("The PostgreSQL cluster keeps running; stop it with:\n  {stop}")
                }
                None if opts.database.is_none() => {
                    println!(
                        "The throwaway PostgreSQL cluster was removed; keep it with --keep to look \
                         at the tables with psql."
                    )
                }
                None => {}
            }
            o.run_exit
        }
        Err(e) => {
            tracing::error!("demo: {e}");
            e.exit_code()
        }
    }
}
