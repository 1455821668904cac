//! How far an error reaches, and the process's exit code for it. Imports nothing of callq,
//! so every module can say its errors' severity without depending on the run. Every
//! command's exit code comes from here: from a severity through [`ExitCode::from`], or, for
//! the run stopped by a signal, from `run::Signal::exit_code`.

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

/// Implemented by every error that can end a command. A wrapper passes its inner error's
/// severity through; only the error's source knows how far it reaches.
pub trait Severe {
    fn severity(&self) -> Severity;

    /// The exit code of a command stopped by this error.
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.severity())
    }
}

/// The process's exit codes, ordered so the worst of several days wins.
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
