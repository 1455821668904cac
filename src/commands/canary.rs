//! `callq canary`: the nightly canary's trend (`report`), a new set (`reset`) and the noise
//! floor that decides CANARY_MARGIN (`noise`). The nightly part runs in `callq run`.

use serde_json::json;

use crate::canary::{self, Scoring, TrendNight};
use crate::checklist::ChecklistError;
use crate::cli::{CanaryNoiseArgs, CanaryReportArgs, EnvArgs};
use crate::config::{ConfigError, Env};
use crate::llm::{PromptBuilder, response_schema};
use crate::run::{self, PromptFileError};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CanaryCommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Prompt(#[from] PromptFileError),
    #[error(transparent)]
    Checklist(#[from] ChecklistError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Canary(#[from] canary::CanaryError),
}

impl Severe for CanaryCommandError {
    fn severity(&self) -> Severity {
        match self {
            CanaryCommandError::Config(_) | CanaryCommandError::Usage(_) => Severity::Input,
            CanaryCommandError::Prompt(e) => e.severity(),
            CanaryCommandError::Checklist(e) => e.severity(),
            CanaryCommandError::Store(e) => e.severity(),
            CanaryCommandError::Canary(canary::CanaryError::Store(e)) => e.severity(),
            CanaryCommandError::Canary(canary::CanaryError::Llm { source }) => source.severity(),
        }
    }
}

fn exit(result: Result<(), CanaryCommandError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

pub async fn report(args: &CanaryReportArgs, env: &Env) -> ExitCode {
    exit(print_report(args, env).await)
}

async fn print_report(args: &CanaryReportArgs, env: &Env) -> Result<(), CanaryCommandError> {
    let settings = env.canary()?;
    let store = Store::connect(&settings.db, 2).await?;
    store.require_tables(&["canary_nights"]).await?;
    let rows = store
        .canary_nights(Some(settings.department_id), i64::from(args.nights))
        .await?;
    let nights = canary::trend(&rows, settings.canary.margin);
    if args.json {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let lines = store.canary_agreement(&ids).await?;
        let list: Vec<serde_json::Value> = nights
            .iter()
            .map(|n| {
                let mut v = n.to_json();
                v["criteria"] = lines
                    .iter()
                    .filter(|(id, a)| *id == n.row.id && !a.criterion.is_empty())
                    .map(|(_, a)| {
                        json!({"against": a.against, "category": a.category,
                               "criterion": a.criterion, "n": a.agreement.n,
                               "exact": a.agreement.exact, "within1": a.agreement.within1,
                               "qwk": a.agreement.qwk, "mae": a.agreement.mae,
                               "bias": a.agreement.bias})
                    })
                    .collect();
                v
            })
            .collect();
        crate::redact::println(json!({
            "department_id": settings.department_id,
            "canary_calls": settings.canary.calls,
            "margin": settings.canary.margin,
            "nights": list,
        }));
    } else {
        print!(
            "{}",
            describe(settings.department_id, settings.canary.calls, &nights)
        );
    }
    Ok(())
}

/// The trend as a table, one night a line, oldest first.
fn describe(department: i32, calls: u32, nights: &[TrendNight]) -> String {
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{:.0}%", 100.0 * v));
    let num = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.2}"));
    let mut out = format!(
        "Canary of department {department} (CANARY_CALLS={calls}{}): agreement with human QA \
         per night, and with the model's own stored scores (self)\n",
        if calls == 0 { ", off" } else { "" }
    );
    if nights.is_empty() {
        out.push_str("  no canary night yet: set CANARY_CALLS and let the nightly run run\n");
        return out;
    }
    out.push_str(&format!(
        "  {:<10}  {:<7}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>6}  {:>9}  notes\n",
        "night", "status", "calls", "exact", "±1", "QWK", "MAE", "self", "median", "cost"
    ));
    for n in nights {
        let r = &n.row;
        let h = r.human.as_ref();
        let mut notes: Vec<String> = n
            .changes
            .iter()
            .map(|c| match c.what {
                "calls" => format!("set: {}", c.to),
                what => format!("{what} {}→{}", c.from, c.to),
            })
            .collect();
        if n.dropped {
            notes.insert(
                0,
                format!("⚠ fell more than {} below the median", pct(Some(n.margin))),
            );
        }
        if let Some(why) = &r.why {
            notes.push(why.clone());
        }
        out.push_str(&format!(
            "  {:<10}  {:<7}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>6}  {:>9}  {}\n",
            r.night,
            r.status,
            r.calls,
            pct(h.and_then(|a| a.exact)),
            pct(h.and_then(|a| a.within1)),
            num(h.and_then(|a| a.qwk)),
            num(h.and_then(|a| a.mae)),
            pct(r.own.as_ref().and_then(|a| a.exact)),
            pct(n.median),
            r.cost_usd.map_or("—".to_string(), |c| format!("${c:.4}")),
            notes.join("; ")
        ));
    }
    out
}

pub async fn reset(_args: &EnvArgs, env: &Env) -> ExitCode {
    exit(reset_set(env).await)
}

async fn reset_set(env: &Env) -> Result<(), CanaryCommandError> {
    let settings = env.canary()?;
    let store = Store::connect(&settings.db, 2).await?;
    store.migrate().await?;
    let removed = store.reset_canary_set(settings.department_id).await?;
    crate::redact::println(format!(
        "canary set of department {} emptied ({removed} call(s)); the next nightly run chooses \
         {} again",
        settings.department_id, settings.canary.calls
    ));
    Ok(())
}

pub async fn noise(args: &CanaryNoiseArgs, env: Env) -> ExitCode {
    exit(measure_noise(args, env).await)
}

async fn measure_noise(args: &CanaryNoiseArgs, env: Env) -> Result<(), CanaryCommandError> {
    if args.repeat < 2 {
        return Err(CanaryCommandError::Usage(
            "--repeat must be at least 2: a spread needs two passes".into(),
        ));
    }
    let settings = env.run()?;
    let n = args.calls.unwrap_or(match settings.canary.calls {
        0 => canary::RECOMMENDED_CALLS,
        n => n,
    });
    let template = run::load_template(&settings.prompt_file)?;
    let checklist = run::load_checklist(&settings.checklist).await?;
    let prompt = PromptBuilder::new(template, &checklist).layout(settings.prompt_layout);
    let schema = response_schema(&checklist);
    let store = Store::connect(&settings.db, 4).await?;
    store.migrate().await?;
    let scoring = Scoring {
        settings: &settings,
        store: &store,
        checklist: &checklist,
        prompt: &prompt,
        schema: &schema,
        batch: None,
    };
    let passes = canary::noise(&scoring, n as usize, args.repeat as usize).await?;
    if passes.is_empty() {
        return Err(CanaryCommandError::Usage(format!(
            "no scored call of department {} has human QA scores and a stored transcript; \
             import people's scores with `callq calibrate import` first",
            settings.department_id
        )));
    }
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut out = format!(
        "canary noise: the set of {} call(s) scored {} times with nothing changed\n  pass  \
         exact  ±1      QWK    MAE    self   cost\n",
        passes[0].calls + passes[0].failed,
        passes.len()
    );
    for (i, p) in passes.iter().enumerate() {
        out.push_str(&format!(
            "  {:>4}  {:<6} {:<7} {:<6} {:<6} {:<6} {}\n",
            i + 1,
            pct(p.human.exact),
            pct(p.human.within1),
            p.human.qwk.map_or("—".into(), |q| format!("{q:.3}")),
            p.human.mae.map_or("—".into(), |m| format!("{m:.3}")),
            pct(p.own.exact),
            p.cost_usd.map_or("—".into(), |c| format!("${c:.4}"))
        ));
    }
    let exact: Vec<f64> = passes.iter().filter_map(|p| p.human.exact).collect();
    if let Some(s) = canary::spread(&exact) {
        out.push_str(&format!(
            "exact agreement with human QA: median {}, from {} to {}, standard deviation {:.1} \
             points, largest fall below the median {:.1} points\n\
             suggested CANARY_MARGIN={:.2} (three standard deviations, at least the largest \
             fall; now {:.2})\n",
            pct(Some(s.median)),
            pct(Some(s.min)),
            pct(Some(s.max)),
            100.0 * s.sd,
            100.0 * s.largest_fall,
            s.suggested_margin,
            settings.canary.margin
        ));
    }
    out.push_str(&format!(
        "the answers are experiments {} to {}\n",
        passes[0].experiment_id,
        passes[passes.len() - 1].experiment_id
    ));
    print!("{out}");
    Ok(())
}
