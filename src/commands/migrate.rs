//! `callq migrate`: applies the embedded migrations.

use super::config_failed;
use crate::config::Env;
use crate::severity::{ExitCode, Severe};
use crate::store::Store;

pub async fn migrate(env: &Env) -> ExitCode {
    let db = match env.database() {
        Ok(db) => db,
        Err(e) => return config_failed(e),
    };
    let store = match Store::connect(&db, 2).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
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
            e.exit_code()
        }
    }
}
