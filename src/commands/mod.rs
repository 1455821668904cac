//! One function per subcommand: configuration in, exit code out. `main` only parses flags,
//! sets up logging and calls these; tests call them directly.

pub mod batch;
pub mod calibrate;
pub mod canary;
pub mod check;
pub mod compare;
pub mod completions;
pub mod criteria;
pub mod demo;
pub mod export;
pub mod migrate;
pub mod operators;
pub mod purge;
pub mod report;
pub mod run;

use crate::cli::{
    BatchCommand, CalibrateCommand, CanaryCommand, Command, EnvArgs, OperatorsCommand,
};
use crate::config::{ConfigError, Env};
use crate::severity::{ExitCode, Severity};

pub async fn dispatch(command: Command, env: Env) -> ExitCode {
    match command {
        Command::Run(args) => run::run(&args, env).await,
        Command::Migrate(_) => migrate::migrate(&env).await,
        Command::Criteria(_) => criteria::criteria(&env).await,
        Command::Check(_) => check::check(&env).await,
        Command::Operators(OperatorsCommand::Import(args)) => operators::import(&args, &env).await,
        Command::Operators(OperatorsCommand::Unknown(args)) => {
            operators::unknown(&args, &env).await
        }
        Command::Calibrate(CalibrateCommand::Import(args)) => calibrate::import(&args, &env).await,
        Command::Calibrate(CalibrateCommand::Report(args)) => calibrate::report(&args, &env).await,
        Command::Canary(CanaryCommand::Report(args)) => canary::report(&args, &env).await,
        Command::Canary(CanaryCommand::Reset(args)) => canary::reset(&args, &env).await,
        Command::Canary(CanaryCommand::Noise(args)) => canary::noise(&args, env).await,
        Command::Compare(args) => compare::compare(&args, env).await,
        Command::Purge(args) => purge::purge(&args, &env).await,
        Command::Completions(args) => completions::completions(args.shell),
        Command::Report(args) => report::report(&args, &env).await,
        Command::Export(args) => export::export(&args, &env).await,
        Command::Demo(args) => demo::demo(&args).await,
        Command::Batch(BatchCommand::Status(args)) => batch::status(&args, &env).await,
        Command::Batch(BatchCommand::Collect(args)) => batch::collect(&args, &env).await,
        Command::Batch(BatchCommand::Cancel(args)) => batch::cancel(&args, &env).await,
    }
}

/// Loads the env file and the environment, applying the run's flags on top.
pub fn load_env(args: &EnvArgs) -> Env {
    Env::load(&args.path(), args.explicit())
}

/// A configuration error is always the user's to fix.
pub(crate) fn config_failed(e: ConfigError) -> ExitCode {
    tracing::error!("{e}");
    ExitCode::from(Severity::Input)
}

pub(crate) fn warn_ignored(env: &Env) {
    let (ignored, unknown) = env.ignored_vars();
    if !ignored.is_empty() {
        tracing::warn!(
            "ignoring variables of the old tool that callq does not use: {}",
            ignored.join(", ")
        );
    }
    if !unknown.is_empty() {
        tracing::warn!(
            "ignoring unknown variables in {}: {}",
            env.file().display(),
            unknown.join(", ")
        );
    }
}
