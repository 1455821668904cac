//! `callq report`: the HTML report of a period. Needs only DATA_BASE (and REPORT_LANG).

use crate::cli::{FilterArgs, ReportArgs};
use crate::config::Env;
use crate::report::{self, ReportRequest};
use crate::severity::{ExitCode, Severe};

pub async fn report(args: &ReportArgs, env: &Env) -> ExitCode {
    let settings = match env.report() {
        Ok(s) => s,
        Err(e) => return super::config_failed(e),
    };
    match report::write(&settings, &request(&args.filter), &args.out).await {
        Ok(w) => {
            let line = format!(
                "{}: {} to {}, {} scored call(s), {} operator(s), {} KB",
                args.out.display(),
                w.scope.from,
                w.scope.to,
                w.calls_scored,
                w.operators,
                w.bytes.div_ceil(1024)
            );
            crate::redact::println(&line);
            tracing::info!("{line}");
            ExitCode::Ok
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

pub fn request(f: &FilterArgs) -> ReportRequest {
    ReportRequest {
        from: f.from,
        to: f.to,
        department: f.department,
        operator: f.operator,
    }
}
