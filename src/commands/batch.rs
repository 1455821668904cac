//! `callq batch status | collect | cancel`: batch mode's batches, between the runs that
//! submit and collect them.

use chrono::Utc;

use super::config_failed;
use crate::cli::{BatchCancelArgs, BatchCollectArgs, BatchStatusArgs};
use crate::config::Env;
use crate::domain::Outcome;
use crate::run::{BatchDesk, Collected, Stop};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{BatchRow, Store};

pub async fn status(args: &BatchStatusArgs, env: &Env) -> ExitCode {
    let (db, department) = match env.batch_status() {
        Ok(s) => s,
        Err(e) => return config_failed(e),
    };
    let rows = async {
        let store = Store::connect(&db, 2).await?;
        store.ensure_migrated().await?;
        let days = i32::try_from(args.days).unwrap_or(i32::MAX);
        store.batches(department, days).await
    }
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    if args.json {
        let list: Vec<serde_json::Value> = rows.iter().map(row_json).collect();
        crate::redact::println(serde_json::json!({ "batches": list }));
        return ExitCode::Ok;
    }
    if rows.is_empty() {
        crate::redact::println("no batches");
        return ExitCode::Ok;
    }
    crate::redact::println(format!(
        "{:>5}  {:<4}  {:<10}  {:>6}  {:<24}  {:>7}  {:>13}  {:>9}  gateway id",
        "batch", "dept", "day", "calls", "state", "age", "saved/failed", "cost"
    ));
    for b in &rows {
        crate::redact::println(format!(
            "{:>5}  {:<4}  {:<10}  {:>6}  {:<24}  {:>7}  {:>13}  {:>9}  {}",
            b.id,
            b.department_id,
            b.day,
            b.requests,
            state_text(b),
            age(b),
            format!("{}/{}", b.saved, b.failed),
            b.cost_usd.map_or("—".to_string(), |c| format!("${c:.4}")),
            b.batch_id.as_deref().unwrap_or("—"),
        ));
        if let Some(e) = &b.last_error
            && b.state != "collected"
        {
            crate::redact::println(format!("       last error: {e}"));
        }
    }
    ExitCode::Ok
}

fn state_text(b: &BatchRow) -> String {
    let state = match (&b.state[..], &b.gateway_status) {
        ("submitted", Some(g)) => format!("submitted ({g})"),
        (s, _) => s.to_string(),
    };
    match b.canary_night {
        Some(_) => format!("{state}, canary"),
        None => state,
    }
}

fn age(b: &BatchRow) -> String {
    let minutes = (Utc::now() - b.created_at).num_minutes().max(0);
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} d", m / (24 * 60)),
    }
}

fn row_json(b: &BatchRow) -> serde_json::Value {
    serde_json::json!({
        "id": b.id,
        "department_id": b.department_id,
        "day": b.day.to_string(),
        "run_id": b.run_id,
        "canary_night_id": b.canary_night,
        "state": b.state,
        "gateway_status": b.gateway_status,
        "gateway_batch_id": b.batch_id,
        "calls": b.requests,
        "pending": b.pending,
        "saved": b.saved,
        "failed": b.failed,
        "bad_lines": b.bad_lines,
        "cost_usd": b.cost_usd,
        "created_at": b.created_at.to_rfc3339(),
        "age_seconds": (Utc::now() - b.created_at).num_seconds().max(0),
        "last_error": b.last_error,
    })
}

async fn desk(env: &Env) -> Result<BatchDesk, ExitCode> {
    let settings = env.run().map_err(config_failed)?;
    BatchDesk::open(settings).await.map_err(|e| {
        tracing::error!("{e}");
        e.exit_code()
    })
}

pub async fn collect(args: &BatchCollectArgs, env: &Env) -> ExitCode {
    let desk = match desk(env).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let stop = Stop::on_signals(std::time::Duration::from_secs(30));
    let collected = desk.collector().collect(args.wait, &stop).await;
    let (code, report) = match collected {
        Ok(c) => (collected_code(&c), c),
        Err(e) => {
            tracing::error!("{e}");
            let c = Collected {
                errors: vec![e.to_string()],
                ..Collected::default()
            };
            (e.exit_code(), c)
        }
    };
    if args.json {
        crate::redact::println(serde_json::json!({
            "department_id": desk.department(),
            "exit_code": code.code(),
            "batches": report.to_json(),
        }));
    } else {
        crate::redact::println(&report);
    }
    for night in &report.canary {
        night.show(!args.json);
    }
    code
}

/// 1 when collected calls failed; 3 when the gateway could not be asked about a batch.
pub fn collected_code(c: &Collected) -> ExitCode {
    if !c.errors.is_empty() {
        ExitCode::from(Severity::Unavailable)
    } else if c.outcomes.count(Outcome::Failed) > 0 {
        ExitCode::from(Severity::Call)
    } else {
        ExitCode::Ok
    }
}

pub async fn cancel(args: &BatchCancelArgs, env: &Env) -> ExitCode {
    let desk = match desk(env).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let row = match desk.store().batch(&args.id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    let Some(b) = row.filter(|b| b.department_id == desk.department()) else {
        tracing::error!(
            "no batch {} of department {} (see `callq batch status`)",
            args.id,
            desk.department()
        );
        return ExitCode::from(Severity::Input);
    };
    let Some(gateway_id) = b.batch_id.as_deref().filter(|_| b.state == "submitted") else {
        tracing::error!(
            "batch {} is {}: only a batch at the gateway can be cancelled",
            b.id,
            b.state
        );
        return ExitCode::from(Severity::Input);
    };
    match desk.client().cancel(gateway_id).await {
        Ok(g) => {
            let rest = match b.canary_night {
                Some(_) => "keeps its finished canary lines and measures the night with them",
                None => "saves its finished calls and gives the rest back to be scored again",
            };
            crate::redact::println(format!(
                "batch {} ({gateway_id}) is {} at the gateway; the next collection {rest}",
                b.id, g.status
            ));
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("batch {}: {e}", b.id);
            e.exit_code()
        }
    }
}
