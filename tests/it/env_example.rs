//! `.env.example` documents every variable callq reads and nothing else, and its example
//! values are ones callq accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use callq::config::{Env, KNOWN_VARS};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path())
        .expect(".env.example exists at the repository's top level")
}

/// The name a line assigns, `NAME=…` or commented out as `# NAME=…`, with whether it is
/// commented out. Prose comments name no variable.
fn assignment(line: &str) -> Option<(&str, bool)> {
    let trimmed = line.trim();
    let (body, commented) = match trimmed.strip_prefix('#') {
        Some(rest) => (rest.trim_start(), true),
        None => (trimmed, false),
    };
    let body = body.strip_prefix("export ").unwrap_or(body);
    let (name, _) = body.split_once('=')?;
    let is_name = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_name.then_some((name, commented))
}

/// Every variable the file names, with the line numbers naming it.
fn named_vars(text: &str) -> BTreeMap<String, Vec<usize>> {
    let mut names: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if let Some((name, _)) = assignment(line) {
            names.entry(name.to_string()).or_default().push(i + 1);
        }
    }
    names
}

#[test]
fn every_known_variable_is_documented() {
    let named = named_vars(&example_text());
    let missing: Vec<&str> = KNOWN_VARS
        .iter()
        .copied()
        .filter(|v| !named.contains_key(*v))
        .collect();
    assert!(
        missing.is_empty(),
        ".env.example does not mention {missing:?}: add a `NAME=example` line, or `# NAME=default` \
         for an optional variable, with a comment saying what it is"
    );
}

#[test]
fn names_only_variables_callq_knows_each_once() {
    let named = named_vars(&example_text());
    let unknown: Vec<(&String, &Vec<usize>)> = named
        .iter()
        .filter(|(name, _)| !KNOWN_VARS.contains(&name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        ".env.example names variables callq does not read (name: line numbers): {unknown:?}"
    );
    let repeated: Vec<(&String, &Vec<usize>)> =
        named.iter().filter(|(_, lines)| lines.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        ".env.example names a variable more than once: {repeated:?}"
    );
}

/// The example values, as written and with every commented-out default switched on, pass
/// callq's own reading and validation. Only the Google key file may be missing: a
/// checkout has no key.
#[test]
fn example_values_are_valid() {
    // PROMPT_FILE and CRITERIA_FILE are relative to the repository, as in a deployment.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let text = example_text();
    let uncommented: String = text
        .lines()
        .map(|line| match assignment(line) {
            Some((_, true)) => line.trim().trim_start_matches('#').trim_start().to_string(),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let all_on = dir.path().join(".env.all-on");
    std::fs::write(&all_on, &uncommented).unwrap();

    for (what, path) in [
        ("as written", example_path()),
        ("with the commented-out lines switched on", all_on),
    ] {
        let env = Env::load_with(&path, true, Vec::new());
        assert!(env.file_found(), "{what}: {} not read", path.display());
        let (ignored, unknown) = env.ignored_vars();
        assert!(
            ignored.is_empty() && unknown.is_empty(),
            "{what}: ignored {ignored:?}, unknown {unknown:?}"
        );
        env.database().unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Err(e) = env.run() {
            let others: Vec<_> = e.problems.iter().filter(|p| p.var != "JSON_AUTH").collect();
            assert!(
                others.is_empty(),
                "{what}: .env.example's values are rejected: {others:?}"
            );
        }
    }
}
