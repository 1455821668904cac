//! Exit codes (DESIGN.md), ordered so the worst of several days' runs wins.

use crate::pipeline::RunError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Every call reached a final outcome.
    Ok = 0,
    /// The run finished, but some calls failed; they are recorded and retried next run.
    SomeFailed = 1,
    /// Bad configuration or input; nothing was spent.
    BadInput = 2,
    /// Could not run: lock held, login refused, database unreachable, LLM key rejected.
    Unavailable = 3,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<&RunError> for ExitCode {
    fn from(e: &RunError) -> Self {
        match e {
            RunError::Input(_) => ExitCode::BadInput,
            RunError::Unavailable(_) | RunError::Locked(_) => ExitCode::Unavailable,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}
