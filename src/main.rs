//! Thin: parse flags, set up logging, dispatch, map the outcome to an exit code.

use clap::Parser;

use callq::cli::{Cli, EnvArgs};
use callq::severity::{ExitCode, Severity};
use callq::{commands, logging, tls};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Commands without configuration still get logging defaults from the environment.
    let default_args = EnvArgs { env_file: None };
    let env = commands::load_env(cli.command.env_args().unwrap_or(&default_args));
    let _log = logging::init(&env.logging());
    tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            callq::redact::eprintln(format_args!("callq: cannot start the async runtime: {e}"));
            return ExitCode::from(Severity::Unavailable).into();
        }
    };
    runtime
        .block_on(commands::dispatch(cli.command, env))
        .into()
}
