//! Why a run (or one of its days) could not do its job. Wraps the clients' errors and
//! passes their severity through; only the run's own conditions (the lock, a signal) are
//! judged here, and a signal is the one thing that gives an exit code other than the
//! severity's.

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::checklist::ChecklistError;
use crate::llm::batch::BatchError;
use crate::llm::{LlmError, TemplateError};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::StoreError;
use crate::tbank::TbankError;

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// 128 + the signal's number, as a shell reports a process killed by it.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Signal::Interrupt => ExitCode::Interrupted,
            Signal::Terminate => ExitCode::Terminated,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// The department's prompt template (PROMPT_FILE) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptFileError {
    #[error("PROMPT_FILE {}: cannot read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("PROMPT_FILE {}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: TemplateError,
    },
}

impl Severe for PromptFileError {
    fn severity(&self) -> Severity {
        Severity::Input
    }
}

/// Why a run (or one of its days) could not do its job. Keeps its sources.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Prompt(#[from] PromptFileError),
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
    /// The gateway's Files or Batches API (batch mode).
    #[error("{0}")]
    Batch(#[from] BatchError),
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
    fn severity(&self) -> Severity {
        match self {
            RunError::Prompt(e) => e.severity(),
            RunError::Checklist(e) => e.severity(),
            RunError::GroupNotFound(e) | RunError::Tbank(e) => e.severity(),
            RunError::Listing { source, .. } => source.severity(),
            RunError::Llm { source } => source.severity(),
            RunError::Store(e) => e.severity(),
            RunError::Batch(e) => e.severity(),
            RunError::Locked { .. } | RunError::LockLost { .. } | RunError::Interrupted(_) => {
                Severity::Unavailable
            }
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Interrupted(signal) => signal.exit_code(),
            other => ExitCode::from(other.severity()),
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
