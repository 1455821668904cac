//! Env file + environment + flags → validated settings, one struct per command so each
//! command asks only for what it uses. Every problem is collected and reported at once,
//! naming the variable and where its value came from.
//!
//! Two stages, as the table drives them: `vars` is the table of every variable (names,
//! kind, default, secret or not, commands, meaning) and `kinds` how each kind of value is
//! read; the low stage (`low`) merges the env file (`envfile`), the environment and flags
//! and reads values as their kind, with their origin; the high stage (`settings`) builds a
//! command's settings from them with the rules between variables and the checks of the
//! files they name. `database` reads DATA_BASE's connection string.

mod database;
mod envfile;
mod kinds;
mod low;
mod settings;
mod vars;

use std::fmt;

pub use database::{
    DEFAULT_DB_CONNECT_TIMEOUT, DEFAULT_DB_TIMEOUT, DbSettings, parse_database_url,
};
pub use low::{Env, Origin};
pub use settings::{
    BatchSettings, CanaryCommandSettings, CanarySettings, LlmMode, LoggingSettings,
    MetricsSettings, PurgeSettings, ReportLang, ReportSettings, RunSettings,
    UnknownOperatorsSettings,
};
pub use vars::{IGNORED_OLD_VARS, KNOWN_VARS, Spec, VARS};

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub var: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.var, p.message)?;
        }
        Ok(())
    }
}
