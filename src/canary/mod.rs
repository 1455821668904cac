//! The nightly canary: a fixed set of calls with human QA scores, scored again after every
//! nightly run from their stored transcripts with that night's prompt, checklist and model,
//! through the path `compare` takes (`run::handle_answer`, an experiment row per night,
//! `calls` untouched). In batch mode the night's calls go through the Batch API as a batch of
//! their own and the night is measured when that batch is collected. Each night's agreement
//! with the humans and with the model's stored scores is kept, and a night whose agreement
//! falls below the median of the nights before it by more than CANARY_MARGIN warns. The
//! canary never fails the night: whatever goes wrong is recorded and said, and the run's
//! exit code is left alone.

pub mod trend;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::calibration::stats::Agreement;
use crate::config::RunSettings;
use crate::domain::{Checklist, Usage};
use crate::experiment;
use crate::llm::{LlmClient, LlmError, PromptBuilder, ResponseSchema};
use crate::run;
use crate::store::{CanaryAgreement, CanaryNightRecord, CanaryNightRow, Store, StoreError};
use crate::store::{ExperimentStart, ExperimentTotals, StoredCall};

pub use trend::{Against, TrendNight, trend};

/// The seed the set is chosen with: fixed, so the same calls are chosen on every machine.
pub const SEED: u64 = 16;
/// What the README recommends for CANARY_CALLS.
pub const RECOMMENDED_CALLS: u32 = 30;
/// Nights read for the trend behind tonight's verdict.
const HISTORY: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{source}; {}", source.fix())]
    Llm {
        #[from]
        source: LlmError,
    },
}

/// What the canary scores with: tonight's settings, prompt and checklist.
pub struct Scoring<'a> {
    pub settings: &'a RunSettings,
    pub store: &'a Store,
    pub checklist: &'a Checklist,
    pub prompt: &'a PromptBuilder,
    pub schema: &'a ResponseSchema,
    /// Batch mode: the night's calls go through the gateway's Batch API, submitted with
    /// what this run prepared.
    pub batch: Option<&'a run::Prepared>,
}

/// How a night ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Scored and measured.
    Ok,
    /// Nothing to score (no call with human scores and a stored transcript).
    Skipped,
    /// Could not score (the gateway, the database).
    Failed,
    /// Its calls are in a batch at the gateway (batch mode): measured when it is collected.
    InBatch,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::InBatch => "in_batch",
        }
    }

    fn of(text: &str) -> Status {
        match text {
            "ok" => Status::Ok,
            "skipped" => Status::Skipped,
            "in_batch" => Status::InBatch,
            _ => Status::Failed,
        }
    }
}

/// One night of the canary, as the run reports it.
#[derive(Debug, Clone)]
pub struct Night {
    pub department_id: i32,
    /// The night it measures (the day its run started, in CALLS_TIMEZONE).
    pub night: NaiveDate,
    pub status: Status,
    pub why: Option<String>,
    pub experiment_id: Option<i64>,
    pub calls: usize,
    pub calls_failed: usize,
    pub calls_replaced: usize,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub model_reported: Option<String>,
    pub human: Option<Agreement>,
    pub own: Option<Agreement>,
    pub margin: f64,
    /// The median of tonight's figures over the nights before, per (against, statistic).
    pub medians: Vec<(Against, &'static str, f64)>,
    /// Tonight in the trend: its median, whether it fell, what changed.
    pub verdict: Option<TrendNight>,
}

impl Night {
    fn not_run(s: &Scoring<'_>, night: NaiveDate, status: Status, why: String) -> Night {
        Night {
            department_id: s.settings.department_id,
            night,
            status,
            why: Some(why),
            experiment_id: None,
            calls: 0,
            calls_failed: 0,
            calls_replaced: 0,
            usage: Usage::default(),
            cost_usd: None,
            model_reported: None,
            human: None,
            own: None,
            margin: s.settings.canary.margin,
            medians: Vec::new(),
            verdict: None,
        }
    }

    /// Agreement fell below its trailing median by more than the margin.
    pub fn dropped(&self) -> bool {
        self.verdict.as_ref().is_some_and(|v| v.dropped)
    }

    /// Shows the night as `callq run` does after its days: in the log (a warning when it
    /// fell or could not run), and on stdout unless `stdout` is false (`--json`).
    pub fn show(&self, stdout: bool) {
        let text = self.lines();
        let text = text.trim_end();
        let worrying = !matches!(self.status, Status::Ok | Status::InBatch) || self.dropped();
        match (stdout, worrying) {
            (true, true) => tracing::warn!(target: crate::logging::PRINTED, "{text}"),
            (true, false) => tracing::info!(target: crate::logging::PRINTED, "{text}"),
            (false, true) => tracing::warn!("{text}"),
            (false, false) => tracing::info!("{text}"),
        }
        if stdout {
            crate::redact::println(text);
        }
    }

    /// Whether the night is measured (or could not be): what Prometheus is told of. A
    /// night still in its batch is told of when it is collected.
    pub fn is_final(&self) -> bool {
        self.status != Status::InBatch
    }

    /// The night's figures for Prometheus.
    pub fn figures(&self) -> crate::metrics::CanaryFigures {
        let mut agreement = Vec::new();
        for (against, a) in [(Against::Human, &self.human), (Against::Own, &self.own)] {
            let Some(a) = a else { continue };
            for name in trend::STATS {
                if let Some(v) = trend::stat(a, name) {
                    agreement.push((against.as_str().to_string(), name.to_string(), v));
                }
            }
        }
        crate::metrics::CanaryFigures {
            ran: self.status == Status::Ok,
            calls: self.calls as u64,
            cost_usd: self.cost_usd,
            margin: self.margin,
            agreement,
            median: self
                .medians
                .iter()
                .map(|(a, s, v)| (a.as_str().to_string(), s.to_string(), *v))
                .collect(),
        }
    }

    /// The lines the run prints after its days' summaries.
    pub fn lines(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{:.0}%", 100.0 * v));
        let num = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.2}"));
        match self.status {
            Status::Ok => {}
            Status::InBatch => {
                return format!(
                    "canary of {}: {}\n",
                    self.night,
                    self.why.as_deref().unwrap_or("in a batch")
                );
            }
            _ => {
                return format!(
                    "canary {}: {}\n",
                    self.status.as_str(),
                    self.why.as_deref().unwrap_or("")
                );
            }
        }
        let h = self.human.as_ref();
        let o = self.own.as_ref();
        let mut out = format!(
            "canary: {} call(s) scored again ({} failed), agreement with human QA: exact {}, \
             within 1 {}, QWK {}, MAE {}; with its own stored scores: exact {}; cost {}\n",
            self.calls,
            self.calls_failed,
            pct(h.and_then(|a| a.exact)),
            pct(h.and_then(|a| a.within1)),
            num(h.and_then(|a| a.qwk)),
            num(h.and_then(|a| a.mae)),
            pct(o.and_then(|a| a.exact)),
            self.cost_usd
                .map_or("unknown".to_string(), |c| format!("${c:.4}"))
        );
        if let Some(v) = &self.verdict {
            match v.median {
                Some(m) => out.push_str(&format!(
                    "  trailing median {} (last {} measured nights), margin {}\n",
                    pct(Some(m)),
                    trend::TRAILING_NIGHTS,
                    pct(Some(v.margin))
                )),
                None => out.push_str(&format!(
                    "  fewer than {} measured nights so far: no trailing median yet\n",
                    trend::MIN_HISTORY
                )),
            }
            for c in &v.changes {
                out.push_str(&format!(
                    "  changed since the last night: {} {} → {}\n",
                    c.what, c.from, c.to
                ));
            }
            if v.dropped {
                out.push_str(&format!(
                    "  WARNING: the canary's agreement with human QA fell to {}, more than {} below \
                     its trailing median {}: the model judges differently than it did (see `callq \
                     canary report`)\n",
                    pct(self.human.as_ref().and_then(|a| a.exact)),
                    pct(Some(v.margin)),
                    pct(v.median)
                ));
            }
        }
        out
    }

    /// The run's `--json` `canary` object.
    pub fn to_json(&self) -> Value {
        let a = |x: Option<&Agreement>| {
            x.map_or(Value::Null, |a| {
                json!({"n": a.n, "exact": a.exact, "within1": a.within1, "qwk": a.qwk,
                       "mae": a.mae, "bias": a.bias})
            })
        };
        json!({
            "night": self.night.to_string(),
            "status": self.status.as_str(),
            "why": self.why,
            "experiment_id": self.experiment_id,
            "calls": self.calls,
            "calls_failed": self.calls_failed,
            "calls_replaced": self.calls_replaced,
            "cost_usd": self.cost_usd,
            "model_reported": self.model_reported,
            "human": a(self.human.as_ref()),
            "self": a(self.own.as_ref()),
            "margin": self.margin,
            "trailing_median": self.verdict.as_ref().and_then(|v| v.median),
            "dropped": self.dropped(),
            "changes": self.verdict.as_ref().map_or(Value::Array(Vec::new()), |v| {
                v.changes.iter().map(|c| json!({"what": c.what, "from": c.from, "to": c.to})).collect()
            }),
        })
    }
}

/// Tonight's canary, when CANARY_CALLS is set: `None` when it is off (then nothing is read
/// or sent). Never an error: a night that could not run is recorded and returned as such.
pub async fn night(s: Scoring<'_>) -> Option<Night> {
    if s.settings.canary.calls == 0 {
        return None;
    }
    let started_at = Utc::now();
    let today = started_at.with_timezone(&s.settings.timezone).date_naive();
    let night = match score_night(&s, today, started_at).await {
        Ok(n) => n,
        Err(e) => {
            let night = Night::not_run(&s, today, Status::Failed, e.to_string());
            record(&s, &night, today, started_at, &[]).await;
            night
        }
    };
    Some(night)
}

async fn score_night(
    s: &Scoring<'_>,
    today: NaiveDate,
    started_at: DateTime<Utc>,
) -> Result<Night, CanaryError> {
    let department = s.settings.department_id;
    let set = refresh_set(s.store, department, s.settings.canary.calls as usize).await?;
    if set.ids.is_empty() {
        let night = Night::not_run(
            s,
            today,
            Status::Skipped,
            format!(
                "no scored call of department {department} has human QA scores and a stored \
                 transcript; import people's scores with `callq calibrate import`"
            ),
        );
        record(s, &night, today, started_at, &[]).await;
        return Ok(night);
    }
    let calls = s.store.stored_calls(&set.ids).await?;
    let experiment_id = start_experiment(s, &calls, "canary").await?;
    let pending = Pending {
        id: None,
        department_id: department,
        night: today,
        started_at,
        experiment_id,
        calls_replaced: set.joined,
        checklist_version: s.checklist.version(),
        prompt_version: s.prompt.version(),
        model: s.settings.llm.model.clone(),
        margin: s.settings.canary.margin,
    };
    if let Some(p) = s.batch {
        return submit(s.store, p, pending, &calls).await;
    }
    let llm = LlmClient::new(s.settings.llm.clone())?;
    rescore(s, &llm, experiment_id, &calls).await?;
    let totals = s.store.experiment_totals(experiment_id).await?;
    let night = measure(s.store, pending, totals, &llm.reported_models(), None).await?;
    Ok(night.expect("a new night is written"))
}

/// Batch mode: the night's calls go to the gateway as a batch of their own; the night is
/// recorded `in_batch` and measured by [`measure_collected`] when the batch is collected.
/// Once the night is recorded nothing here is an error: what goes wrong ends the night
/// (or leaves it for the next collection to end), never a second row.
async fn submit(
    store: &Store,
    p: &run::Prepared,
    mut pending: Pending,
    calls: &[StoredCall],
) -> Result<Night, CanaryError> {
    let id = store
        .save_canary_night(None, &pending.record(Status::InBatch, None, calls.len()))
        .await?
        .expect("a new night is written");
    pending.id = Some(id);
    let sent = run::submit_canary(p, pending.night, id, calls).await;
    // Calls that reached no batch are the night's failures, as a synchronous night's are.
    for (call_id, why) in &sent.left_out {
        let row = experiment::failed_row(*call_id, why, &run::Spent::default());
        if let Err(e) = store
            .save_experiment_call(pending.experiment_id, &row)
            .await
        {
            tracing::warn!("canary: could not record call {call_id} as failed: {e}");
        }
    }
    let mut night = pending.night_of(Status::InBatch, calls.len());
    // A batch that may have reached the gateway is found (or given back) by the next
    // collection, which measures the night.
    let open = store.canary_night_open_batches(id).await.unwrap_or(1);
    if sent.calls == 0 && open == 0 {
        let why = format!(
            "its batch could not be submitted: {}",
            sent.error
                .as_deref()
                .unwrap_or("no call fitted into a batch")
        );
        let ended = async {
            let totals = finish_from_rows(store, pending.experiment_id).await?;
            measure(store, pending, totals, &[], Some(why.clone())).await
        };
        return Ok(match ended.await {
            Ok(Some(n)) => n,
            Ok(None) => night,
            Err(e) => {
                tracing::warn!(
                    "canary: could not end tonight's night: {e}; the next collection ends it"
                );
                night.status = Status::Failed;
                night.why = Some(why);
                night
            }
        });
    }
    if let Some(e) = &sent.error {
        tracing::warn!("canary: part of tonight's calls did not reach the gateway: {e}");
    }
    night.why = Some(format!(
        "{} call(s) sent to the gateway's Batch API; measured when the batch is collected \
         (the next run, or `callq batch collect`)",
        sent.calls
    ));
    Ok(night)
}

/// A canary batch collected (or given back): its night is measured once no batch of it is
/// open any more. `None` while another batch of the night is still out, when the night is
/// gone or was measured already. `models`: the model names the batch's answers reported.
pub(crate) async fn measure_collected(
    store: &Store,
    night_id: i64,
    models: &[String],
) -> Result<Option<Night>, StoreError> {
    if store.canary_night_open_batches(night_id).await? > 0 {
        return Ok(None);
    }
    let Some(row) = store.canary_night(night_id).await? else {
        return Ok(None);
    };
    if row.status != Status::InBatch.as_str() {
        return Ok(None);
    }
    let Some(experiment_id) = row.experiment_id else {
        return Ok(None);
    };
    let totals = finish_from_rows(store, experiment_id).await?;
    let pending = Pending {
        id: Some(night_id),
        department_id: row.department_id,
        night: row.night,
        started_at: row.started_at,
        experiment_id,
        calls_replaced: row.calls_replaced.max(0) as usize,
        checklist_version: row.checklist_version.unwrap_or_default(),
        prompt_version: row.prompt_version.unwrap_or_default(),
        model: row.model.unwrap_or_default(),
        margin: row.margin.unwrap_or(f64::INFINITY),
    };
    let why = (totals.scored == 0).then(|| {
        format!(
            "no call of its batch was answered with scores ({} failed); see experiment {experiment_id}",
            totals.failed
        )
    });
    measure(store, pending, totals, models, why).await
}

/// A batch night's experiment is finished with the totals of its rows (a synchronous
/// night's is finished by the pass that scored it).
async fn finish_from_rows(
    store: &Store,
    experiment_id: i64,
) -> Result<ExperimentTotals, StoreError> {
    let totals = store.experiment_totals(experiment_id).await?;
    store
        .finish_experiment(experiment_id, totals.usage, totals.cost_usd)
        .await?;
    Ok(totals)
}

/// Nights of the department left `in_batch` with no batch open (their batches ended but the
/// night was not measured, or their run stopped before opening one), measured now.
pub(crate) async fn measure_left(store: &Store, department_id: i32) -> Vec<Night> {
    let ids = match store.canary_nights_to_measure(department_id).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!("canary: could not look for nights left unmeasured: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for id in ids {
        match measure_collected(store, id, &[]).await {
            Ok(Some(n)) => out.push(n),
            Ok(None) => {}
            Err(e) => tracing::warn!("canary: could not measure night {id}: {e}"),
        }
    }
    out
}

/// The department's latest night that is measured (or could not run), as the run's
/// metrics show it when no night was measured in the run itself (batch mode, where
/// tonight's is still in its batch).
pub(crate) async fn latest_final(store: &Store, department_id: i32) -> Option<Night> {
    let rows = match store.canary_nights(Some(department_id), HISTORY).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("canary: could not read the nights: {e}");
            return None;
        }
    };
    let row = rows
        .iter()
        .rev()
        .find(|r| r.status != Status::InBatch.as_str())?;
    let (medians, verdict) = judged(&rows, row.id, row.margin.unwrap_or(f64::INFINITY));
    Some(Night {
        department_id: row.department_id,
        night: row.night,
        status: Status::of(&row.status),
        why: row.why.clone(),
        experiment_id: row.experiment_id,
        calls: row.calls.max(0) as usize,
        calls_failed: row.calls_failed.max(0) as usize,
        calls_replaced: row.calls_replaced.max(0) as usize,
        usage: Usage::default(),
        cost_usd: row.cost_usd,
        model_reported: row.model_reported.clone(),
        human: row.human.clone(),
        own: row.own.clone(),
        margin: row.margin.unwrap_or(f64::INFINITY),
        medians,
        verdict,
    })
}

/// Night `id` judged against the nights before it (as `canary report` judges every night):
/// the trailing medians of its figures and its verdict. Later nights do not count.
fn judged(
    rows: &[CanaryNightRow],
    id: i64,
    margin: f64,
) -> (Vec<(Against, &'static str, f64)>, Option<TrendNight>) {
    let upto = rows.iter().position(|r| r.id == id).map_or(0, |i| i + 1);
    let rows = &rows[..upto];
    let verdict = trend(rows, margin).pop();
    (trend::trailing_medians(rows), verdict)
}

/// A night whose answers are in its experiment, before it is measured.
struct Pending {
    /// Set once the night is recorded (batch mode records it before it is measured).
    id: Option<i64>,
    department_id: i32,
    night: NaiveDate,
    started_at: DateTime<Utc>,
    experiment_id: i64,
    calls_replaced: usize,
    checklist_version: String,
    prompt_version: String,
    model: String,
    margin: f64,
}

impl Pending {
    fn night_of(&self, status: Status, calls: usize) -> Night {
        Night {
            department_id: self.department_id,
            night: self.night,
            status,
            why: None,
            experiment_id: Some(self.experiment_id),
            calls,
            calls_failed: 0,
            calls_replaced: self.calls_replaced,
            usage: Usage::default(),
            cost_usd: None,
            model_reported: None,
            human: None,
            own: None,
            margin: self.margin,
            medians: Vec::new(),
            verdict: None,
        }
    }

    fn record<'a>(
        &'a self,
        status: Status,
        why: Option<&'a str>,
        calls: usize,
    ) -> CanaryNightRecord<'a> {
        CanaryNightRecord {
            department_id: self.department_id,
            night: self.night,
            started_at: self.started_at,
            status: status.as_str(),
            why,
            experiment_id: Some(self.experiment_id),
            checklist_version: &self.checklist_version,
            prompt_version: &self.prompt_version,
            model: &self.model,
            model_reported: None,
            calls,
            calls_failed: 0,
            calls_replaced: self.calls_replaced,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: None,
            margin: self.margin,
            agreement: &[],
        }
    }
}

/// The one way a night is measured, in both LLM modes: its experiment's answers against
/// the human scores and the model's stored scores, written with the night, and the night
/// judged against the nights before it. `why`: the night failed, and why.
async fn measure(
    store: &Store,
    pending: Pending,
    totals: ExperimentTotals,
    models: &[String],
    why: Option<String>,
) -> Result<Option<Night>, StoreError> {
    let id = pending.experiment_id;
    let answers = trend::scores(store.experiment_scores(id).await?);
    let ids = store.experiment_call_ids(id).await?;
    let humans = store.human_scores(&ids).await?;
    let stored = store.stored_scores(&ids).await?;
    let mut agreement = trend::measure("human", &trend::against_humans(&humans, &answers));
    agreement.extend(trend::measure(
        "self",
        &trend::against_stored(&stored, &answers),
    ));
    let total = |against: &str| {
        agreement
            .iter()
            .find(|a| a.against == against && a.category.is_empty() && a.criterion.is_empty())
            .map(|a| a.agreement.clone())
    };
    let status = if why.is_some() || totals.scored == 0 {
        Status::Failed
    } else {
        Status::Ok
    };
    let why =
        match status {
            Status::Ok => None,
            _ => Some(why.unwrap_or_else(|| {
                format!("all {} call(s) failed; see experiment {id}", ids.len())
            })),
        };
    let mut night = pending.night_of(status, totals.scored);
    night.why = why;
    night.calls_failed = totals.failed;
    night.usage = totals.usage;
    night.cost_usd = totals.cost_usd;
    night.model_reported = (!models.is_empty()).then(|| models.join(", "));
    (night.human, night.own) = (total("human"), total("self"));
    let written = store
        .save_canary_night(
            pending.id,
            &CanaryNightRecord {
                status: status.as_str(),
                why: night.why.as_deref(),
                model_reported: night.model_reported.as_deref(),
                calls: night.calls,
                calls_failed: night.calls_failed,
                prompt_tokens: night.usage.prompt_tokens,
                completion_tokens: night.usage.completion_tokens,
                cost_usd: night.cost_usd,
                agreement: &agreement,
                ..pending.record(status, None, night.calls)
            },
        )
        .await;
    let id = match written {
        Ok(Some(id)) => id,
        // Another collector measured it first.
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(
                "canary: could not record the night of {}: {e}",
                pending.night
            );
            return Ok(Some(night));
        }
    };
    // The night judged against the nights before it, as `canary report` judges every night.
    match store
        .canary_nights(Some(pending.department_id), HISTORY)
        .await
    {
        Ok(rows) => (night.medians, night.verdict) = judged(&rows, id, night.margin),
        Err(e) => tracing::warn!("canary: could not read the earlier nights: {e}"),
    }
    Ok(Some(night))
}

/// Writes a night that did not run; a database that refuses it is logged, never the run's
/// error.
async fn record(
    s: &Scoring<'_>,
    n: &Night,
    today: NaiveDate,
    started_at: DateTime<Utc>,
    agreement: &[CanaryAgreement],
) {
    let checklist_version = s.checklist.version();
    let prompt_version = s.prompt.version();
    let written = s
        .store
        .save_canary_night(
            None,
            &CanaryNightRecord {
                department_id: n.department_id,
                night: today,
                started_at,
                status: n.status.as_str(),
                why: n.why.as_deref(),
                experiment_id: n.experiment_id,
                checklist_version: &checklist_version,
                prompt_version: &prompt_version,
                model: &s.settings.llm.model,
                model_reported: n.model_reported.as_deref(),
                calls: n.calls,
                calls_failed: n.calls_failed,
                calls_replaced: n.calls_replaced,
                prompt_tokens: n.usage.prompt_tokens,
                completion_tokens: n.usage.completion_tokens,
                cost_usd: n.cost_usd,
                margin: n.margin,
                agreement,
            },
        )
        .await;
    if let Err(e) = written {
        tracing::warn!("canary: could not record tonight's night: {e}");
    }
}

/// The set tonight, and how many calls joined it.
struct Set {
    ids: Vec<i64>,
    joined: usize,
}

/// Keeps the set at `n` calls: members whose transcript or human scores are gone leave it,
/// and calls chosen by [`SEED`] from the other candidates take their places.
async fn refresh_set(store: &Store, department: i32, n: usize) -> Result<Set, StoreError> {
    let candidates = store.canary_candidates(department).await?;
    let current = store.canary_set(department).await?;
    let eligible: BTreeSet<i64> = candidates.iter().copied().collect();
    let mut kept: Vec<i64> = current
        .iter()
        .copied()
        .filter(|id| eligible.contains(id))
        .collect();
    let gone = current.len() - kept.len();
    if kept.len() > n {
        kept = experiment::sample(&kept, n, SEED);
    }
    let members: BTreeSet<i64> = kept.iter().copied().collect();
    let others: Vec<i64> = candidates
        .iter()
        .copied()
        .filter(|id| !members.contains(id))
        .collect();
    let added = experiment::sample(&others, n - kept.len(), SEED);
    let removed: Vec<i64> = current
        .iter()
        .copied()
        .filter(|id| !members.contains(id))
        .collect();
    if !removed.is_empty() || !added.is_empty() {
        store
            .change_canary_set(department, &removed, &added, SEED)
            .await?;
        if gone > 0 {
            tracing::info!(
                "canary: {gone} call(s) left the set (transcript purged or human scores \
                 removed), {} joined",
                added.len()
            );
        }
    }
    let mut ids = kept;
    ids.extend(&added);
    ids.sort_unstable();
    Ok(Set {
        ids,
        joined: added.len(),
    })
}

/// The experiment a pass over the set is kept as.
async fn start_experiment(
    s: &Scoring<'_>,
    calls: &[StoredCall],
    what: &str,
) -> Result<i64, StoreError> {
    let ids: Vec<i64> = calls.iter().map(|c| c.id).collect();
    let (from, to) = s.store.call_days(&ids).await?;
    let prompt_file = format!("{what}: {}", s.settings.prompt_file.display());
    s.store
        .start_experiment(&ExperimentStart {
            department_id: s.settings.department_id,
            from,
            to,
            sample_size: calls.len(),
            seed: SEED,
            prompt_file: &prompt_file,
            prompt_version: &s.prompt.version(),
            checklist_version: &s.checklist.version(),
            model: &s.settings.llm.model,
        })
        .await
}

/// One synchronous pass over the set: every call scored again into the experiment.
async fn rescore(
    s: &Scoring<'_>,
    llm: &LlmClient,
    experiment_id: i64,
    calls: &[StoredCall],
) -> Result<(), CanaryError> {
    experiment::rescore::<CanaryError>(
        &experiment::Rescore {
            store: s.store,
            experiment_id,
            llm,
            prompt: s.prompt,
            schema: s.schema,
            judge: run::Judge {
                checklist: s.checklist,
                review_below_percent: s.settings.review_below_percent,
            },
            privacy: &s.settings.privacy,
            concurrency: s.settings.llm.max_concurrency,
        },
        calls,
    )
    .await?;
    Ok(())
}

/// Nights of the canary shown in the HTML report: the last [`REPORT_NIGHTS`] of the
/// department (of each department when `None`) that ran up to a week after `to` (the nights
/// that scored a period's last days run a few days after them), each judged against the
/// nights before it. Empty on a database from before the canary.
pub(crate) async fn stability(
    store: &Store,
    department: Option<i32>,
    to: NaiveDate,
) -> Result<Vec<crate::report::data::StabilityNight>, StoreError> {
    if !store.has_canary().await? {
        return Ok(Vec::new());
    }
    let rows = store.canary_nights(department, 10 * HISTORY).await?;
    let mut by_department: std::collections::BTreeMap<i32, Vec<_>> = Default::default();
    for r in rows {
        by_department.entry(r.department_id).or_default().push(r);
    }
    let mut out = Vec::new();
    for rows in by_department.values() {
        // A night without a recorded margin is not judged.
        let judged: Vec<TrendNight> = trend(rows, f64::INFINITY)
            .into_iter()
            .filter(|n| n.row.night <= to + chrono::Days::new(7))
            .collect();
        let skip = judged.len().saturating_sub(REPORT_NIGHTS);
        out.extend(judged.into_iter().skip(skip).map(|n| {
            let h = n.row.human.as_ref();
            crate::report::data::StabilityNight {
                department_id: n.row.department_id,
                night: n.row.night,
                status: n.row.status.clone(),
                why: n.row.why.clone(),
                calls: n.row.calls,
                exact: h.and_then(|a| a.exact),
                within1: h.and_then(|a| a.within1),
                qwk: h.and_then(|a| a.qwk),
                mae: h.and_then(|a| a.mae),
                own_exact: n.row.own.as_ref().and_then(|a| a.exact),
                median: n.median,
                dropped: n.dropped,
                changes: n
                    .changes
                    .iter()
                    .map(|c| (c.what.to_string(), c.from.clone(), c.to.clone()))
                    .collect(),
            }
        }));
    }
    Ok(out)
}

/// Nights the HTML report shows per department.
pub const REPORT_NIGHTS: usize = 30;

/// One pass of `callq canary noise`: agreement with the humans and with the stored scores.
#[derive(Debug, Clone)]
pub struct NoisePass {
    pub experiment_id: i64,
    pub calls: usize,
    pub failed: usize,
    pub human: Agreement,
    pub own: Agreement,
    pub cost_usd: Option<f64>,
}

/// Scores the set (chosen now when there is none yet, `n` calls) `repeat` times with
/// nothing changed in between: how far agreement moves on the model's randomness alone.
pub async fn noise(
    s: &Scoring<'_>,
    n: usize,
    repeat: usize,
) -> Result<Vec<NoisePass>, CanaryError> {
    let set = refresh_set(s.store, s.settings.department_id, n).await?;
    if set.ids.is_empty() {
        return Ok(Vec::new());
    }
    let calls = s.store.stored_calls(&set.ids).await?;
    let humans = s.store.human_scores(&set.ids).await?;
    let stored = s.store.stored_scores(&set.ids).await?;
    let llm = LlmClient::new(s.settings.llm.clone())?;
    let mut passes = Vec::with_capacity(repeat);
    for i in 0..repeat {
        let what = format!("canary noise {}/{repeat}", i + 1);
        let experiment_id = start_experiment(s, &calls, &what).await?;
        rescore(s, &llm, experiment_id, &calls).await?;
        let totals = s.store.experiment_totals(experiment_id).await?;
        let answers = trend::scores(s.store.experiment_scores(experiment_id).await?);
        let human = trend::measure("human", &trend::against_humans(&humans, &answers));
        let own = trend::measure("self", &trend::against_stored(&stored, &answers));
        passes.push(NoisePass {
            experiment_id,
            calls: totals.scored,
            failed: totals.failed,
            human: human[0].agreement.clone(),
            own: own[0].agreement.clone(),
            cost_usd: totals.cost_usd,
        });
    }
    Ok(passes)
}

/// The spread of exact agreement with the humans over noise passes, and the margin it
/// suggests: three standard deviations (a night-to-night spread that large happens by
/// chance about once in a few hundred nights), at least the largest fall below the median
/// seen, rounded up to a whole per cent.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub sd: f64,
    pub largest_fall: f64,
    pub suggested_margin: f64,
}

pub fn spread(xs: &[f64]) -> Option<Spread> {
    let median = trend::median(xs)?;
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let largest_fall = xs.iter().map(|x| median - x).fold(0.0, f64::max);
    let suggested_margin = ((3.0 * sd).max(largest_fall) * 100.0 - 1e-9)
        .ceil()
        .max(1.0)
        / 100.0;
    Some(Spread {
        median,
        min: xs.iter().copied().fold(f64::INFINITY, f64::min),
        max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        sd,
        largest_fall,
        suggested_margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_suggests_three_deviations_rounded_up() {
        // mean 0.8, deviations ±0.02 → sample sd √(4·0.0004/3) = 0.023094; 3 sd = 0.0693.
        let s = spread(&[0.78, 0.82, 0.78, 0.82]).unwrap();
        assert!((s.median - 0.80).abs() < 1e-12);
        assert!((s.sd - 0.023094).abs() < 1e-6);
        assert!((s.largest_fall - 0.02).abs() < 1e-12);
        assert!((s.suggested_margin - 0.07).abs() < 1e-12);
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[0.5]).unwrap().suggested_margin, 0.01);
    }
}
