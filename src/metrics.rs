//! A run's numbers for Prometheus: a textfile for node_exporter's textfile collector and/or
//! a push to a Pushgateway. Failing to publish metrics never fails the run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::config::MetricsSettings;
use crate::domain::Outcome;
use crate::run::Collected;
use crate::severity::ExitCode;
use crate::summary::Summary;

/// Renders the last run of one department in the Prometheus text format. With several
/// days (a range), counts are summed and the last day is reported.
pub fn render(department_id: i32, days: &[Summary], exit: ExitCode, finished_unix: i64) -> String {
    let dept = format!("department=\"{department_id}\"");
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let sum = |f: &dyn Fn(&Summary) -> f64| days.iter().map(f).sum::<f64>();
    metric(
        "callq_calls",
        "Calls of the last run by outcome.",
        Outcome::ALL
            .iter()
            .map(|o| {
                (
                    format!("{dept},outcome=\"{}\"", o.as_str()),
                    sum(&|s| s.count(*o) as f64),
                )
            })
            .collect(),
    );
    metric(
        "callq_calls_listed",
        "Calls T-Bank listed in the last run.",
        vec![(dept.clone(), sum(&|s| s.calls_listed as f64))],
    );
    metric(
        "callq_llm_requests",
        "LLM answers asked for in the last run.",
        vec![(dept.clone(), sum(&|s| s.llm_requests as f64))],
    );
    metric(
        "callq_llm_attempts",
        "HTTP requests sent to the LLM gateway in the last run, retries included.",
        vec![(dept.clone(), sum(&|s| s.llm_attempts as f64))],
    );
    metric(
        "callq_llm_tokens",
        "LLM tokens of the last run.",
        vec![
            (
                format!("{dept},kind=\"prompt\""),
                sum(&|s| s.usage.prompt_tokens as f64),
            ),
            (
                format!("{dept},kind=\"completion\""),
                sum(&|s| s.usage.completion_tokens as f64),
            ),
            (
                format!("{dept},kind=\"cached\""),
                sum(&|s| s.usage.cached_tokens as f64),
            ),
        ],
    );
    if days.iter().any(|s| s.cost_usd.is_some()) {
        metric(
            "callq_llm_cost_usd",
            "LLM cost of the last run in USD.",
            vec![(dept.clone(), sum(&|s| s.cost_usd.unwrap_or(0.0)))],
        );
    }
    metric(
        "callq_run_duration_seconds",
        "Wall time of the last run.",
        vec![(dept.clone(), sum(&|s| s.wall.as_secs_f64()))],
    );
    metric(
        "callq_unknown_operators",
        "Distinct operator names not in the directory, over every day of the run.",
        vec![(dept.clone(), {
            let names: std::collections::BTreeSet<&String> = days
                .iter()
                .flat_map(|s| s.unknown_operators.keys())
                .collect();
            names.len() as f64
        })],
    );
    metric(
        "callq_last_run_exit_code",
        "Exit code of the last run (0 all good, 1 some calls failed).",
        vec![(dept.clone(), f64::from(exit.code()))],
    );
    metric(
        "callq_last_run_timestamp_seconds",
        "When the last run finished (Unix time).",
        vec![(dept, finished_unix as f64)],
    );
    out
}

/// The canary's night (`callq run` with CANARY_CALLS), for [`render_canary`].
#[derive(Debug, Clone, Default)]
pub struct CanaryFigures {
    /// Scored and measured; false when it could not run (no human scores, gateway down).
    pub ran: bool,
    pub calls: u64,
    pub cost_usd: Option<f64>,
    /// CANARY_MARGIN.
    pub margin: f64,
    /// (against, statistic, value): against `human` or `self`; `exact`, `within1`, `qwk`,
    /// `mae`, over every criterion's pairs.
    pub agreement: Vec<(String, String, f64)>,
    /// The same figures' median over the nights before (none before three of them).
    pub median: Vec<(String, String, f64)>,
}

/// Renders the canary's night, appended to [`render`]'s text by the run that had one.
pub fn render_canary(department_id: i32, c: &CanaryFigures) -> String {
    let dept = format!("department=\"{department_id}\"");
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    metric(
        "callq_canary_ran",
        "1 when the last run's canary scored and measured its calls, 0 when it could not.",
        vec![(dept.clone(), if c.ran { 1.0 } else { 0.0 })],
    );
    metric(
        "callq_canary_calls",
        "Canary calls scored in the last run.",
        vec![(dept.clone(), c.calls as f64)],
    );
    if let Some(cost) = c.cost_usd {
        metric(
            "callq_canary_cost_usd",
            "LLM cost of the last run's canary in USD.",
            vec![(dept.clone(), cost)],
        );
    }
    let figures = |list: &[(String, String, f64)]| -> Vec<(String, f64)> {
        list.iter()
            .map(|(against, stat, v)| (format!("{dept},against=\"{against}\",stat=\"{stat}\""), *v))
            .collect()
    };
    metric(
        "callq_canary_agreement",
        "The canary's agreement in the last run, against human QA or the model's stored scores.",
        figures(&c.agreement),
    );
    metric(
        "callq_canary_agreement_median",
        "Median of the same agreement over the canary nights before the last one.",
        figures(&c.median),
    );
    metric(
        "callq_canary_margin",
        "CANARY_MARGIN: how far agreement may fall below its trailing median.",
        vec![(dept, c.margin)],
    );
    out
}

/// Batch mode's numbers of the last run, appended to [`render`]'s when the run submitted
/// or collected batches: batches submitted, collected and still open at the gateway, the
/// calls in them, and what the collected answers cost.
pub fn render_batches(
    department_id: i32,
    days: &[Summary],
    collected: Option<&Collected>,
) -> String {
    let dept = format!("department=\"{department_id}\"");
    let submitted: u64 = days.iter().map(|s| s.batches_submitted).sum();
    let (done, open, in_flight, cost) = collected.map_or((0, 0, 0, 0.0), |c| {
        (
            c.batches_collected,
            c.batches_open,
            c.calls_in_flight,
            c.outcomes.cost_usd.unwrap_or(0.0),
        )
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP callq_batches Batches of the last run: submitted, collected, still open at the gateway.\n\
         # TYPE callq_batches gauge"
    );
    for (state, n) in [
        ("submitted", submitted),
        ("collected", done),
        ("open", open),
    ] {
        let _ = writeln!(out, "callq_batches{{{dept},state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP callq_batch_calls_in_flight Calls in batches not collected yet, as the last run found them.\n\
         # TYPE callq_batch_calls_in_flight gauge\n\
         callq_batch_calls_in_flight{{{dept}}} {in_flight}"
    );
    let _ = writeln!(
        out,
        "# HELP callq_batch_cost_usd LLM cost in USD of the batch answers the last run collected.\n\
         # TYPE callq_batch_cost_usd gauge\n\
         callq_batch_cost_usd{{{dept}}} {cost}"
    );
    out
}

/// Writes and pushes, logging (not returning) what goes wrong.
pub async fn publish(settings: &MetricsSettings, department_id: i32, text: &str) {
    if let Some(path) = &settings.textfile
        && let Err(e) = write_textfile(path, text)
    {
        tracing::warn!("METRICS_TEXTFILE {}: {e}", path.display());
    }
    if let Some(url) = &settings.pushgateway
        && let Err(e) = push(url, department_id, text).await
    {
        tracing::warn!("PUSHGATEWAY_URL {url}: {e}");
    }
}

/// Replaces the file atomically, so the collector never reads half of it.
fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

async fn push(base: &str, department_id: i32, text: &str) -> Result<(), String> {
    let url = format!(
        "{}/metrics/job/callq/department/{department_id}",
        base.trim_end_matches('/')
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(text.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_tokens_and_exit_code() {
        let mut s = Summary::default();
        s.add(Outcome::Scored);
        s.add(Outcome::Scored);
        s.add(Outcome::Failed);
        s.usage.prompt_tokens = 1200;
        s.add_cost(Some(crate::domain::Cost {
            usd: 0.25,
            source: crate::domain::CostSource::Prices,
        }));
        s.llm_attempts = 4;
        let text = render(3, &[s], ExitCode::SomeFailed, 1_700_000_000);
        assert!(
            text.contains("callq_llm_attempts{department=\"3\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("callq_calls{department=\"3\",outcome=\"scored\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("callq_calls{department=\"3\",outcome=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("callq_llm_tokens{department=\"3\",kind=\"prompt\"} 1200\n"),
            "{text}"
        );
        assert!(
            text.contains("callq_llm_cost_usd{department=\"3\"} 0.25\n"),
            "{text}"
        );
        assert!(
            text.contains("callq_last_run_exit_code{department=\"3\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE callq_calls gauge"), "{text}");
    }

    #[test]
    fn renders_batches_submitted_collected_and_in_flight() {
        let s = Summary {
            batches_submitted: 2,
            ..Summary::default()
        };
        let mut c = Collected {
            batches_collected: 1,
            batches_open: 3,
            calls_in_flight: 120,
            ..Collected::default()
        };
        c.outcomes.add_cost(Some(crate::domain::Cost {
            usd: 0.125,
            source: crate::domain::CostSource::Batch,
        }));
        let text = render_batches(4, &[s], Some(&c));
        for line in [
            "callq_batches{department=\"4\",state=\"submitted\"} 2\n",
            "callq_batches{department=\"4\",state=\"collected\"} 1\n",
            "callq_batches{department=\"4\",state=\"open\"} 3\n",
            "callq_batch_calls_in_flight{department=\"4\"} 120\n",
            "callq_batch_cost_usd{department=\"4\"} 0.125\n",
            "# TYPE callq_batches gauge\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callq.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
