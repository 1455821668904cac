//! Thin: parse flags, set up logging, dispatch, map the outcome to an exit code.

use clap::Parser;

use callq::cli::{Cli, Command};
use callq::{commands, logging, tls};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let env_args = match &cli.command {
        Command::Run(a) => &a.env,
        Command::Migrate(a) | Command::Criteria(a) => a,
    };
    let env = commands::load_env(env_args);
    let _log = logging::init(&env.logging());
    tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("callq: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    runtime
        .block_on(commands::dispatch(cli.command, env))
        .into()
}
