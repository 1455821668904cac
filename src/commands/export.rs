//! `callq export`: CSV to a file or stdout. Needs only DATA_BASE.

use std::io::Write;

use crate::cli::{ExportArgs, ExportKind};
use crate::config::Env;
use crate::export::{self, ExportError, ExportFilter};
use crate::severity::{ExitCode, Severe};
use crate::store::Store;

pub async fn export(args: &ExportArgs, env: &Env) -> ExitCode {
    let db = match env.database() {
        Ok(db) => db,
        Err(e) => return super::config_failed(e),
    };
    let store = match Store::connect(&db, 2).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    // An unmigrated database is told as such, not as a query on a missing view. The review
    // queue's own absence has its own message (an older callq's database).
    if args.kind != ExportKind::Review
        && let Err(e) = store.require_tables(&["v_scored_calls"]).await
    {
        tracing::error!("{e}");
        return e.exit_code();
    }
    let client = match store.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    let filter = ExportFilter {
        from: args.filter.from,
        to: args.filter.to,
        department: args.filter.department,
        operator: args.filter.operator,
        min_percent: args.min_percent,
        max_percent: args.max_percent,
    };
    let delimiter = args.delimiter.as_bytes()[0];
    let result = match &args.out {
        Some(path) => {
            let target = path.display().to_string();
            match std::fs::File::create(path) {
                Ok(f) => {
                    let mut w = std::io::BufWriter::new(f);
                    let r = export::export(&client, args.kind, &filter, delimiter, &mut w, &target)
                        .await;
                    r.and_then(|n| {
                        w.flush()
                            .map(|_| n)
                            .map_err(|error| ExportError::Write { target, error })
                    })
                }
                Err(error) => Err(ExportError::Write { target, error }),
            }
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout());
            export::export(&client, args.kind, &filter, delimiter, &mut w, "stdout").await
        }
    };
    match result {
        Ok(rows) => {
            let to = args
                .out
                .as_ref()
                .map_or("stdout".to_string(), |p| p.display().to_string());
            tracing::info!("exported {rows} row(s) to {to}");
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
