//! `callq compare`: a variant prompt (checklist, model) scored on a seeded sample of calls
//! already scored, from their stored transcripts, saved under an experiment id. `calls` and
//! its child tables are only read. `compare_data` returns the outcome for tests.

use std::collections::HashMap;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::calibration::report::{self, PairRow};
use crate::checklist::ChecklistError;
use crate::cli::CompareArgs;
use crate::config::{ConfigError, Env};
use crate::domain::{Analysis, Usage};
use crate::experiment;
use crate::llm::{Analyzed, LlmClient, LlmError, PromptBuilder, response_schema};
use crate::run::{self, PromptFileError};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{ExperimentCall, ExperimentStart, Store, StoreError, StoredCall};

/// Why a comparison stopped. Each source's severity passes through.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The flags or the data they select cannot work.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Prompt(#[from] PromptFileError),
    #[error(transparent)]
    Checklist(#[from] ChecklistError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{source}; {}", source.fix())]
    Llm {
        #[from]
        source: LlmError,
    },
}

impl Severe for CompareError {
    fn severity(&self) -> Severity {
        match self {
            CompareError::Config(_) | CompareError::Usage(_) => Severity::Input,
            CompareError::Prompt(e) => e.severity(),
            CompareError::Checklist(e) => e.severity(),
            CompareError::Store(e) => e.severity(),
            CompareError::Llm { source } => source.severity(),
        }
    }
}

/// What a comparison found.
#[derive(Debug)]
pub struct Comparison {
    pub experiment_id: i64,
    pub report: Value,
    pub failed: usize,
}

pub async fn compare(args: &CompareArgs, env: Env) -> ExitCode {
    match compare_data(args, env).await {
        Ok(o) => {
            if args.json {
                crate::redact::println(&o.report);
            } else {
                print!("{}", describe(&o.report));
            }
            if o.failed > 0 {
                ExitCode::from(Severity::Call)
            } else {
                ExitCode::Ok
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

/// Everything is checked (configuration, template, checklist, database, the sample) before
/// the first LLM request.
pub async fn compare_data(args: &CompareArgs, mut env: Env) -> Result<Comparison, CompareError> {
    env.set_flag("PROMPT_FILE", "--prompt-file", args.prompt_file.display());
    if let Some(f) = &args.criteria_file {
        env.set_flag("CRITERIA_FILE", "--criteria-file", f.display());
    }
    if let Some(m) = &args.model {
        env.set_flag("MODEL", "--model", m);
    }
    let settings = env.run()?;
    let (from, to) = match (args.date, args.from, args.to) {
        (Some(d), _, _) => (d, d),
        (None, Some(f), Some(t)) if f <= t => (f, t),
        (None, Some(f), Some(t)) => {
            return Err(CompareError::Usage(format!("--from {f} is after --to {t}")));
        }
        _ => return Err(CompareError::Usage("give --date or --from and --to".into())),
    };
    let template = run::load_template(&settings.prompt_file)?;
    let checklist = run::load_checklist(&settings.checklist).await?;
    let prompt = PromptBuilder::new(template, &checklist).layout(settings.prompt_layout);
    let schema = response_schema(&checklist);

    let store = Store::connect(&settings.db, 4).await?;
    store.migrate().await?;
    let (ids, without_transcript) = store
        .comparable_call_ids(settings.department_id, from, to)
        .await?;
    if without_transcript > 0 {
        tracing::warn!(
            "{without_transcript} scored call(s) of {from}..{to} have no stored transcript and \
             cannot be compared"
        );
    }
    let chosen = experiment::sample(&ids, args.sample as usize, args.seed);
    if chosen.is_empty() {
        return Err(CompareError::Usage(format!(
            "no scored call with a stored transcript in department {} from {from} to {to}",
            settings.department_id
        )));
    }
    let calls = store.stored_calls(&chosen).await?;
    let llm = LlmClient::new(settings.llm.clone())?;
    let prompt_file = settings.prompt_file.display().to_string();
    let experiment_id = store
        .start_experiment(&ExperimentStart {
            department_id: settings.department_id,
            from,
            to,
            sample_size: calls.len(),
            seed: args.seed,
            prompt_file: &prompt_file,
            prompt_version: &prompt.version(),
            checklist_version: &checklist.version(),
            model: &settings.llm.model,
        })
        .await?;
    tracing::info!(
        "experiment {experiment_id}: scoring {} call(s) again with {prompt_file}",
        calls.len()
    );

    // A transcript stored raw (TRANSCRIPT_STORE=raw) is masked here as the run masks it:
    // with PII_MASKING=on nothing personal reaches the model by this path either. Text
    // stored masked comes out unchanged.
    let texts: HashMap<i64, String> = calls
        .iter()
        .map(|c| (c.id, settings.privacy.for_llm(&c.transcript).into_owned()))
        .collect();
    let keep = KeepExperiment {
        store: &store,
        experiment_id,
        variant: std::sync::Mutex::new(HashMap::new()),
    };
    let judge = run::Judge {
        checklist: &checklist,
        review_below_percent: settings.review_below_percent,
    };
    let mut results = futures::stream::iter(calls.iter().map(|call| {
        let (llm, prompt, schema, checklist, keep) = (&llm, &prompt, &schema, &checklist, &keep);
        let text = &texts[&call.id];
        async move {
            let rendered = prompt.render(text);
            let answer = llm.analyze(&rendered, schema, checklist).await;
            run::handle_answer(call.id, text, answer, judge, keep).await
        }
    }))
    .buffer_unordered(settings.llm.max_concurrency)
    // Boxed so the closure's borrowed types do not leak into the command's future.
    .boxed();
    let (mut usage, mut cost, mut failed) = (Usage::default(), None::<f64>, 0usize);
    while let Some(result) = results.next().await {
        let finished = match result {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("experiment {experiment_id} is incomplete");
                return Err(e);
            }
        };
        usage += finished.spent.usage;
        if finished.outcome == crate::domain::Outcome::Failed {
            failed += 1;
        } else if let Some(c) = finished.spent.cost {
            *cost.get_or_insert(0.0) += c.usd;
        }
    }
    drop(results);
    let variant = keep.variant.into_inner().expect("variant");
    store.finish_experiment(experiment_id, usage, cost).await?;

    let stored = store.stored_scores(&chosen).await?;
    let humans = store.human_scores(&chosen).await?;
    let report = comparison_json(ComparisonInput {
        experiment_id,
        calls: &calls,
        variant: &variant,
        stored: &stored,
        humans: &humans,
        variant_usage: usage,
        variant_cost: cost,
        without_transcript,
        failed,
    });
    Ok(Comparison {
        experiment_id,
        report,
        failed,
    })
}

/// `compare` keeps each answer as an experiment row, never touching `calls`, and the variant's
/// analyses for the report.
struct KeepExperiment<'a> {
    store: &'a Store,
    experiment_id: i64,
    variant: std::sync::Mutex<HashMap<i64, Analysis>>,
}

impl run::Keep for KeepExperiment<'_> {
    async fn answer(&self, call_id: i64, analyzed: &Analyzed) -> Result<(), StoreError> {
        self.store
            .save_experiment_call(
                self.experiment_id,
                &ExperimentCall {
                    call_id,
                    analysis: Some(&analyzed.analysis),
                    usage: analyzed.usage,
                    cost_usd: analyzed.cost.map(|c| c.usd),
                    error: None,
                },
            )
            .await?;
        self.variant
            .lock()
            .expect("variant")
            .insert(call_id, analyzed.analysis.clone());
        Ok(())
    }

    async fn failure(
        &self,
        call_id: i64,
        _stage: &'static str,
        error: &str,
        spent: &run::Spent,
    ) -> Result<(), StoreError> {
        self.store
            .save_experiment_call(
                self.experiment_id,
                &ExperimentCall {
                    call_id,
                    analysis: None,
                    usage: spent.usage,
                    cost_usd: spent.cost.map(|c| c.usd),
                    error: Some(error),
                },
            )
            .await
    }
}

struct ComparisonInput<'a> {
    experiment_id: i64,
    calls: &'a [StoredCall],
    variant: &'a HashMap<i64, Analysis>,
    stored: &'a [(i64, String, String, f64, f64)],
    humans: &'a [PairRow],
    variant_usage: Usage,
    variant_cost: Option<f64>,
    without_transcript: u64,
    failed: usize,
}

type ScoreMap = HashMap<(i64, String, String), (f64, f64)>;

fn comparison_json(i: ComparisonInput<'_>) -> Value {
    let variant_scores: ScoreMap = i
        .variant
        .iter()
        .flat_map(|(id, a)| {
            a.evaluations.iter().map(move |e| {
                (
                    (*id, e.category.clone(), e.criterion.clone()),
                    (e.score, e.max_score),
                )
            })
        })
        .collect();
    let stored_scores: ScoreMap = i
        .stored
        .iter()
        .map(|(id, cat, crit, s, m)| ((*id, cat.clone(), crit.clone()), (*s, *m)))
        .collect();
    // The variant as the first rater, the stored score as the second, per criterion.
    let variant_vs_stored: Vec<PairRow> = variant_scores
        .iter()
        .filter_map(|(key, (v, max))| {
            let (s, _) = stored_scores.get(key)?;
            Some(PairRow {
                call_id: key.0,
                category: key.1.clone(),
                criterion: key.2.clone(),
                reviewer: String::new(),
                human: *s,
                model: Some(*v),
                max_score: Some(*max),
            })
        })
        .collect();
    let against_humans = |scores: &ScoreMap| -> Value {
        if i.humans.is_empty() {
            return Value::Null;
        }
        let rows: Vec<PairRow> = i
            .humans
            .iter()
            .map(|h| {
                let own = scores.get(&(h.call_id, h.category.clone(), h.criterion.clone()));
                PairRow {
                    model: own.map(|(s, _)| *s),
                    max_score: own.map(|(_, m)| *m),
                    ..h.clone()
                }
            })
            .collect();
        report::build(&rows).to_json()
    };
    let mut stored_usage = Usage::default();
    let mut stored_cost = None::<f64>;
    for c in i.calls {
        stored_usage += c.usage;
        if let Some(x) = c.cost_usd {
            *stored_cost.get_or_insert(0.0) += x;
        }
    }
    let side = |u: Usage, cost: Option<f64>| {
        json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cached_tokens": u.cached_tokens,
            "cost_usd": cost,
        })
    };
    json!({
        "experiment_id": i.experiment_id,
        "calls": i.calls.len(),
        "failed": i.failed,
        "without_transcript": i.without_transcript,
        "variant_vs_stored": report::build(&variant_vs_stored).model.to_json(),
        "variant_vs_human": against_humans(&variant_scores),
        "stored_vs_human": against_humans(&stored_scores),
        "usage": {
            "variant": side(i.variant_usage, i.variant_cost),
            "stored": side(stored_usage, stored_cost),
        },
    })
}

/// The human-readable summary of the JSON report.
fn describe(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.2}"));
    let mut out = format!(
        "experiment {}: {} call(s) scored again, {} failed, {} without a stored transcript\n",
        r["experiment_id"], r["calls"], r["failed"], r["without_transcript"]
    );
    let vs = &r["variant_vs_stored"];
    out.push_str(&format!(
        "variant against stored scores: {} pair(s); per call MAE {} points ({} pct points), Pearson {}\n",
        vs["pairs"],
        f(&vs["total"]["mae_points"]),
        f(&vs["total"]["mae_pct"]),
        f(&vs["total"]["pearson"])
    ));
    for c in vs["criteria"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  QWK {:>5}  exact {:>5}  bias {:>6}  {} / {}\n",
            f(&c["qwk"]),
            f(&c["exact"]),
            f(&c["bias"]),
            c["category"].as_str().unwrap_or(""),
            c["criterion"].as_str().unwrap_or("")
        ));
    }
    for (name, key) in [
        ("variant", "variant_vs_human"),
        ("stored", "stored_vs_human"),
    ] {
        let h = &r[key];
        if h.is_null() {
            continue;
        }
        out.push_str(&format!(
            "{name} against human QA: {} pair(s), per call MAE {} points, Pearson {}\n",
            h["pairs"],
            f(&h["total"]["mae_points"]),
            f(&h["total"]["pearson"])
        ));
    }
    for side in ["variant", "stored"] {
        let u = &r["usage"][side];
        out.push_str(&format!(
            "{side}: {} prompt tokens ({} cached), {} completion tokens, cost {}\n",
            u["prompt_tokens"],
            u["cached_tokens"],
            u["completion_tokens"],
            u["cost_usd"]
                .as_f64()
                .map_or("unknown".to_string(), |c| format!("${c:.4}"))
        ));
    }
    out
}
