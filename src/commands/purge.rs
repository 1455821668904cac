//! `callq purge`: removes the transcripts and phone numbers of old calls (retention). Needs
//! only DATA_BASE. `purge_report` returns what was done, for tests; `purge` prints it and
//! maps it to an exit code.

use std::fmt;

use crate::cli::PurgeArgs;
use crate::config::{ConfigError, Env};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{PURGE_BATCH, PurgeCounts, PurgeScope, Store, StoreError};

/// What a purge did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub older_than_days: u32,
    pub scope: PurgeScope,
    pub counts: PurgeCounts,
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("{0}")]
    Config(ConfigError),
    #[error("how old is old? Give --older-than DAYS or set RETENTION_DAYS")]
    NoAge,
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Severe for PurgeError {
    fn severity(&self) -> Severity {
        match self {
            PurgeError::Config(_) | PurgeError::NoAge => Severity::Input,
            PurgeError::Store(e) => e.severity(),
        }
    }
}

pub async fn purge(args: &PurgeArgs, env: &Env) -> ExitCode {
    match purge_report(args, env).await {
        Ok(report) => {
            let text = report.to_string();
            crate::redact::println(&text);
            tracing::info!("{text}");
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

/// Purges (or counts, with `--dry-run`) the calls older than `--older-than` days, or
/// RETENTION_DAYS, before today in CALLS_TIMEZONE.
pub async fn purge_report(args: &PurgeArgs, env: &Env) -> Result<PurgeReport, PurgeError> {
    let settings = env.purge().map_err(PurgeError::Config)?;
    let days = args
        .older_than
        .or(settings.retention_days)
        .ok_or(PurgeError::NoAge)?;
    let today = chrono::Utc::now()
        .with_timezone(&settings.timezone)
        .date_naive();
    let department = if args.all_departments {
        None
    } else {
        settings.department_id
    };
    let scope = PurgeScope::older_than(today, days, department);
    let store = Store::connect(&settings.db, 2).await?;
    store.require_tables(&["calls", "call_transcripts"]).await?;
    let counts = if args.dry_run {
        store.purge_counts(scope).await?
    } else {
        store.purge(scope, PURGE_BATCH).await?
    };
    Ok(PurgeReport {
        dry_run: args.dry_run,
        older_than_days: days,
        scope,
        counts,
    })
}

impl fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let which = match self.scope.department_id {
            Some(d) => format!("department {d}'s calls"),
            None => "calls".to_string(),
        };
        let verb = if self.dry_run {
            "Dry run: would remove"
        } else {
            "Removed"
        };
        write!(
            f,
            "{verb} {} transcript(s) and {} phone number(s) of {} call(s) — {which} before {} \
             (older than {} days). Scores, reasons, recommendations and agreements are kept.",
            c.transcripts, c.phone_numbers, c.calls, self.scope.before, self.older_than_days
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn the_report_says_what_was_removed_and_what_is_kept() {
        let report = PurgeReport {
            dry_run: true,
            older_than_days: 90,
            scope: PurgeScope {
                before: NaiveDate::from_ymd_opt(2025, 5, 11).unwrap(),
                department_id: Some(1),
            },
            counts: PurgeCounts {
                calls: 12,
                transcripts: 11,
                phone_numbers: 12,
            },
        };
        assert_eq!(
            report.to_string(),
            "Dry run: would remove 11 transcript(s) and 12 phone number(s) of 12 call(s) — \
             department 1's calls before 2025-05-11 (older than 90 days). Scores, reasons, \
             recommendations and agreements are kept."
        );
        let done = PurgeReport {
            dry_run: false,
            scope: PurgeScope {
                department_id: None,
                ..report.scope
            },
            ..report
        };
        assert!(
            done.to_string().starts_with(
                "Removed 11 transcript(s) and 12 phone number(s) of 12 call(s) — calls before"
            ),
            "{done}"
        );
    }
}
