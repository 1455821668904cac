//! The one error model. Every module's error says how bad it is through [`Severe`]; the
//! run stops on anything worse than [`Severity::Call`], and the command layer turns the
//! run's error into an exit code in one place (`exit::ExitCode::of`).

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::checklist::ChecklistError;
use crate::llm::{LlmError, TemplateError};
use crate::store::StoreError;
use crate::tbank::TbankError;

/// How far an error reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// One call failed; it is recorded and retried by a later run. The run goes on.
    Call,
    /// The input or the configuration is wrong; nothing more should be spent until it is fixed.
    Input,
    /// A service the whole run needs is unavailable or refuses us (login, key, database).
    Unavailable,
}

/// Implemented by every error that can reach the run.
pub trait Severe {
    fn severity(&self) -> Severity;

    /// The exit code of a command stopped by this error.
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::from(self.severity())
    }
}

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// Why a run (or one of its days) could not do its job. Keeps its sources.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("PROMPT_FILE {}: cannot read: {source}", path.display())]
    PromptUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("PROMPT_FILE {}: {source}", path.display())]
    PromptInvalid {
        path: PathBuf,
        source: TemplateError,
    },
    #[error(transparent)]
    Checklist(#[from] ChecklistError),
    #[error("AGENT_GROUP_NAME: {0}")]
    GroupNotFound(TbankError),
    #[error(transparent)]
    Tbank(TbankError),
    #[error("listing the calls of {day} failed: {source}")]
    Listing { day: NaiveDate, source: TbankError },
    #[error("{source}; {}", source.fix())]
    Llm { source: LlmError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "another callq run is already working on department {department}, day {day}; wait for it to finish"
    )]
    Locked { department: i32, day: NaiveDate },
    #[error(
        "lost the lock of department {department}, day {day} ({reason}); stopped admitting calls so that no call is scored by two runs"
    )]
    LockLost {
        department: i32,
        day: NaiveDate,
        reason: String,
    },
    #[error("interrupted by {0}")]
    Interrupted(Signal),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The command's flags or the data they select cannot work.
    #[error("{0}")]
    Usage(String),
}

impl From<TbankError> for RunError {
    fn from(e: TbankError) -> Self {
        match e {
            TbankError::GroupNotFound { .. } => RunError::GroupNotFound(e),
            other => RunError::Tbank(other),
        }
    }
}

impl From<LlmError> for RunError {
    fn from(source: LlmError) -> Self {
        RunError::Llm { source }
    }
}

impl Severe for RunError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::of(self)
    }

    fn severity(&self) -> Severity {
        match self {
            RunError::PromptUnreadable { .. }
            | RunError::PromptInvalid { .. }
            | RunError::GroupNotFound(_)
            | RunError::Config(_)
            | RunError::Usage(_) => Severity::Input,
            RunError::Checklist(e) => e.severity(),
            RunError::Tbank(e) => e.severity().max(Severity::Unavailable),
            RunError::Listing { .. }
            | RunError::Locked { .. }
            | RunError::LockLost { .. }
            | RunError::Interrupted(_) => Severity::Unavailable,
            RunError::Llm { source } => source.severity().max(Severity::Unavailable),
            RunError::Store(e) => e.severity().max(Severity::Unavailable),
        }
    }
}

impl RunError {
    /// Another day of the same run may still work after this error (another run held
    /// this day); after anything else, the next day would fail the same way.
    pub fn other_days_may_work(&self) -> bool {
        matches!(self, RunError::Locked { .. })
    }
}
