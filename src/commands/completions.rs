//! `callq completions SHELL`: shell completions generated from the clap definitions. Needs no
//! configuration.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::severity::{ExitCode, Severity};

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "callq", &mut out);
    out
}

/// Prints the script to stdout; a closed pipe (`| head`) is not an error.
pub fn completions(shell: Shell) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(&script(shell))
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::Ok,
        Err(e) => {
            crate::redact::eprintln(format_args!("callq: cannot write the completions: {e}"));
            ExitCode::from(Severity::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(shell: Shell) -> String {
        String::from_utf8(script(shell)).expect("UTF-8")
    }

    /// `<shell> -n` parses the script without running it; shells not installed are skipped.
    fn syntax_ok(shell: &str, script: &str) -> Option<bool> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callq.completion");
        std::fs::write(&path, script).unwrap();
        let status = std::process::Command::new(shell)
            .arg("-n")
            .arg(&path)
            .status()
            .ok()?;
        Some(status.success())
    }

    #[test]
    fn bash_completions_parse_and_know_every_subcommand() {
        let bash = text(Shell::Bash);
        assert_eq!(syntax_ok("bash", &bash), Some(true), "bash -n failed");
        for word in [
            "run",
            "migrate",
            "criteria",
            "operators",
            "import",
            "unknown",
            "completions",
            "--env-file",
            "--days",
        ] {
            assert!(
                bash.contains(word),
                "{word} missing from the bash completions"
            );
        }
    }

    #[test]
    fn zsh_and_fish_completions_are_generated() {
        for (shell, name) in [(Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
            let script = text(shell);
            assert!(script.contains("operators"), "{name}: {script}");
            assert_ne!(syntax_ok(name, &script), Some(false), "{name} -n failed");
        }
    }
}
