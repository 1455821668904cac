//! `callq criteria`: prints the checklist as parsed.

use super::config_failed;
use crate::checklist;
use crate::config::Env;
use crate::run;
use crate::severity::{ExitCode, Severe};

pub async fn criteria(env: &Env) -> ExitCode {
    let source = match env.checklist_source() {
        Ok(s) => s,
        Err(e) => return config_failed(e),
    };
    match run::load_checklist(&source).await {
        Ok(list) => {
            crate::redact::println(checklist::describe(&list));
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
