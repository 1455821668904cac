//! `callq run`: one day, a range of days, or the nightly run (its day plus the earlier days
//! it must visit again). Prints a summary per day, even for a day that stopped early, and
//! publishes metrics on every exit.

use crate::severity::{Severe, Severity};
use chrono::NaiveDate;

use super::purge::PurgeReport;
use super::{config_failed, warn_ignored};
use crate::cli::RunArgs;
use crate::config::{Env, MetricsSettings};
use crate::domain::Outcome;
use crate::metrics;
use crate::run::{self, RunError, RunOptions, Stop};
use crate::severity::ExitCode;
use crate::summary::Summary;

pub async fn run(args: &RunArgs, mut env: Env) -> ExitCode {
    if let Some(n) = args.days_ago {
        env.set_flag("CHECK_DAY_AGO", "--days-ago", n);
    }
    if let Some(n) = args.concurrency {
        env.set_flag("LLM_CONCURRENCY", "--concurrency", n);
    }
    if args.batch {
        env.set_flag("LLM_MODE", "--batch", "batch");
    } else if args.sync {
        env.set_flag("LLM_MODE", "--sync", "sync");
    }
    warn_ignored(&env);
    let mut report = RunReport::new(env.metrics_best_effort(), env.department_best_effort());
    let settings = match env.run() {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            let code = config_failed(e);
            return report.finish(args, code, Some(message)).await;
        }
    };
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        let message = format!("--from {from} is after --to {to}");
        tracing::error!("{message}");
        return report
            .finish(args, ExitCode::from(Severity::Input), Some(message))
            .await;
    }
    let opts = RunOptions {
        dry_run: args.dry_run,
        reanalyze: args.reanalyze,
        limit: args.limit.map(|l| l as usize),
        show_progress: true,
        stop: Stop::on_signals(settings.shutdown_grace),
    };
    let prepared = match run::prepare(settings, &opts).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            let code = e.exit_code();
            return report.finish(args, code, Some(e.to_string())).await;
        }
    };
    // Batches of earlier runs first: their answers are saved, and what they left
    // unanswered is waiting again before the days are chosen.
    if !opts.dry_run {
        report.collect(args, &prepared, &opts).await;
    }
    let mut days: Vec<(NaiveDate, Option<String>)> = days_to_run(args, prepared.default_day())
        .into_iter()
        .map(|d| (d, None))
        .collect();
    // The nightly run (no --date, --from) also revisits recent days that are not done:
    // calls still waiting, or a last run that did not finish. An explicit day runs alone.
    let nightly = args.date.is_none() && args.from.is_none() && !opts.dry_run;
    if nightly {
        match prepared.days_to_revisit(days[0].0).await {
            Ok(earlier) => {
                for (day, why) in earlier {
                    tracing::info!("also visiting {day}: {why}");
                    days.push((day, Some(why.to_string())));
                }
            }
            Err(e) => tracing::warn!("could not look for earlier days to revisit: {e}"),
        }
    }
    prepared
        .run_days(days, &opts, |summary, error| {
            report.day(args, summary, error)
        })
        .await;
    // Retention after the night's scoring, unless stopped by a signal. It is
    // housekeeping: a failure is logged as a warning and leaves the exit code as the
    // days made it, and the next night (or `callq purge`) tries again.
    if !opts.dry_run
        && opts.stop.signal().is_none()
        && let Some((days, scope)) = prepared.retention()
    {
        report.purge = Some(match prepared.purge(scope).await {
            Ok(counts) => {
                let done = PurgeReport {
                    dry_run: false,
                    older_than_days: days,
                    scope,
                    counts,
                };
                let line = format!("retention (RETENTION_DAYS={days}): {done}");
                tracing::info!("{line}");
                if !args.json {
                    crate::redact::println(&line);
                }
                serde_json::json!({
                    "older_than_days": days,
                    "before": scope.before.to_string(),
                    "calls": counts.calls,
                    "transcripts": counts.transcripts,
                    "phone_numbers": counts.phone_numbers,
                })
            }
            Err(e) => {
                tracing::warn!(
                    "retention (RETENTION_DAYS={days}): purging calls before {} failed: {e}; \
                     the next run or `callq purge` removes them",
                    scope.before
                );
                serde_json::json!({"older_than_days": days, "error": e.to_string()})
            }
        });
    }
    // The canary after the night's days (and retention): the nightly run only, not a run of
    // explicit days. It never changes the exit code.
    if nightly && opts.stop.signal().is_none() {
        // A signal meanwhile drops the canary's requests rather than keep the process
        // past its grace period for a measurement.
        let stopped = opts.stop.admitting();
        report.canary = tokio::select! {
            night = prepared.canary() => night,
            () = stopped.cancelled() => {
                tracing::warn!("stopped by a signal: tonight's canary is left unfinished");
                None
            }
        };
        if let Some(night) = &report.canary {
            night.show(!args.json);
        }
        // Tonight's night still in its batch (batch mode) and none measured by this run:
        // the metrics show the latest measured one, whoever measured it.
        if report.canary.as_ref().is_some_and(|n| !n.is_final())
            && report.measured_canary().is_none()
        {
            report.latest_canary = prepared.latest_canary().await;
        }
    }
    let code = report.worst;
    report.finish(args, code, None).await
}

/// What the run reports at its end however it ends: the summaries, `--json`, metrics.
struct RunReport {
    metrics: MetricsSettings,
    department: Option<i32>,
    worst: ExitCode,
    summaries: Vec<Summary>,
    errors: Vec<serde_json::Value>,
    /// What RETENTION_DAYS purged after the days (or why it could not); `None` when it
    /// did not run.
    purge: Option<serde_json::Value>,
    /// The night's canary, when it ran (or tried to).
    canary: Option<crate::canary::Night>,
    /// The department's latest measured canary night, read when this run measured none.
    latest_canary: Option<crate::canary::Night>,
    /// What the collection of earlier batches did, when it ran.
    batches: Option<run::Collected>,
}

impl RunReport {
    fn new(metrics: MetricsSettings, department: Option<i32>) -> RunReport {
        RunReport {
            metrics,
            department,
            worst: ExitCode::Ok,
            summaries: Vec::new(),
            errors: Vec::new(),
            purge: None,
            canary: None,
            latest_canary: None,
            batches: None,
        }
    }

    /// Collects the department's finished batches, before the days run.
    async fn collect(&mut self, args: &RunArgs, prepared: &run::Prepared, opts: &RunOptions) {
        let collected = match prepared.collector().collect(false, &opts.stop).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("collecting batches: {e}");
                self.worst = self.worst.max(e.exit_code());
                self.errors.push(serde_json::json!({
                    "day": null,
                    "error": format!("collecting batches: {e}"),
                }));
                return;
            }
        };
        if collected.is_empty() {
            return;
        }
        let line = collected.to_string();
        tracing::info!("{line}");
        if !args.json {
            crate::redact::println(&line);
        }
        // Canary nights measured now that their batches are in.
        for night in &collected.canary {
            night.show(!args.json);
        }
        self.worst = self.worst.max(super::batch::collected_code(&collected));
        self.batches = Some(collected);
    }

    /// The canary night measured in this run: tonight's (sync mode), or the latest whose
    /// batch this run collected (batch mode, where tonight's is still in its batch).
    fn measured_canary(&self) -> Option<&crate::canary::Night> {
        self.canary.iter().rfind(|n| n.is_final()).or_else(|| {
            self.batches
                .as_ref()
                .and_then(|b| b.canary.iter().rfind(|n| n.is_final()))
        })
    }

    fn day(&mut self, args: &RunArgs, summary: Summary, error: Option<RunError>) {
        summary.show(!args.json);
        if summary.failures_total > 0 {
            self.worst = self.worst.max(ExitCode::from(Severity::Call));
        }
        // Calls another live run was scoring did not reach a final outcome in this run: not
        // exit 0, and the nightly run revisits the day to see them saved.
        let left = summary.count(Outcome::ClaimedElsewhere);
        if left > 0 {
            tracing::warn!(
                "{left} call(s) were left to another run scoring them; the nightly run checks them again"
            );
            self.worst = self.worst.max(ExitCode::from(Severity::Call));
        }
        if let Some(e) = error {
            self.worst = self.worst.max(e.exit_code());
            self.errors.push(serde_json::json!({
                "day": summary.day.map(|d| d.to_string()),
                "error": e.to_string(),
            }));
        }
        self.summaries.push(summary);
    }

    async fn finish(mut self, args: &RunArgs, code: ExitCode, error: Option<String>) -> ExitCode {
        let code = code.max(self.worst);
        if let Some(e) = error {
            self.errors
                .push(serde_json::json!({"day": null, "error": e}));
        }
        if args.json {
            let days: Vec<serde_json::Value> = self.summaries.iter().map(|s| s.to_json()).collect();
            let report = serde_json::json!({
                "department_id": self.department,
                "exit_code": code.code(),
                "days": days,
                "errors": self.errors,
                "purge": self.purge,
                "canary": self.canary.as_ref().map(|n| n.to_json()),
                "batches": self.batches.as_ref().map(|b| b.to_json()),
            });
            crate::redact::println(report);
        }
        if !args.dry_run
            && let Some(department) = self.department
        {
            let mut text = metrics::render(
                department,
                &self.summaries,
                code,
                chrono::Utc::now().timestamp(),
            );
            let measured = self.measured_canary().or(self.latest_canary.as_ref());
            if let Some(night) = measured {
                text.push_str(&metrics::render_canary(department, &night.figures()));
            }
            let batched = self
                .summaries
                .iter()
                .any(|s| s.batches_submitted > 0 || s.count(Outcome::InBatch) > 0);
            if batched || self.batches.is_some() {
                text.push_str(&metrics::render_batches(
                    department,
                    &self.summaries,
                    self.batches.as_ref(),
                ));
            }
            metrics::publish(&self.metrics, department, &text).await;
        }
        code
    }
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
            crate::cli::Command::Run(a) => a,
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
