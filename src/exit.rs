//! Exit codes, decided here and nowhere else; ordered so the worst of several days wins.

use crate::error::{RunError, Severe, Severity, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Every call reached a final outcome.
    Ok = 0,
    /// The run finished, but some calls did not reach a final outcome: they failed (recorded
    /// and retried next run) or were left to another live run (the nightly run revisits).
    SomeFailed = 1,
    /// Bad configuration or input; nothing was spent.
    BadInput = 2,
    /// Could not run: lock held or lost, login refused, database unreachable, LLM key rejected.
    Unavailable = 3,
    /// Stopped by SIGINT (128 + 2), after the calls in flight finished.
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15), after the calls in flight finished.
    Terminated = 143,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code of an error that stopped a run.
    pub fn of(e: &RunError) -> ExitCode {
        match e {
            RunError::Interrupted(Signal::Interrupt) => ExitCode::Interrupted,
            RunError::Interrupted(Signal::Terminate) => ExitCode::Terminated,
            other => ExitCode::from(other.severity()),
        }
    }
}

impl From<Severity> for ExitCode {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Call => ExitCode::SomeFailed,
            Severity::Input => ExitCode::BadInput,
            Severity::Unavailable => ExitCode::Unavailable,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}
