//! The low stage: the env file, then the environment, then flags, merged into one set of
//! values that each remember where they came from, and read as the table's kinds. What
//! any one command needs, and the rules between variables, are the settings' business.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::Problem;
use super::envfile;
use super::kinds::Kind;
use super::vars::{IGNORED_OLD_VARS, KNOWN_VARS, VARS, Var};

#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    File(PathBuf),
    Environment,
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Environment => write!(f, "the environment"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The merged variables: env file, then the real environment, then flags.
#[derive(Debug, Clone)]
pub struct Env {
    file: PathBuf,
    file_found: bool,
    vars: HashMap<String, (String, Origin)>,
    /// Problems found while reading (bad lines, a missing --env-file), reported with the rest.
    read_problems: Vec<Problem>,
    ignored: Vec<String>,
    unknown: Vec<String>,
}

/// A variable as read: not set, a value of its kind, or why its text is not one.
pub(super) enum Read<T> {
    Unset,
    Value(T),
    Bad(Problem),
}

impl Env {
    /// `explicit`: the user named the file, so its absence is an error; the default
    /// `.env` may be missing (everything then comes from the environment).
    pub fn load(file: &Path, explicit: bool) -> Env {
        Self::load_with(file, explicit, std::env::vars())
    }

    pub fn load_with(
        file: &Path,
        explicit: bool,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Env {
        let mut env = Env {
            file: file.to_path_buf(),
            file_found: false,
            vars: HashMap::new(),
            read_problems: Vec::new(),
            ignored: Vec::new(),
            unknown: Vec::new(),
        };
        match envfile::read(file) {
            Ok((entries, errors)) => {
                env.file_found = true;
                for e in errors {
                    env.read_problems.push(Problem {
                        var: match e.key {
                            Some(key) => format!("{key} (line {})", e.line),
                            None => format!("line {}", e.line),
                        },
                        message: format!("{} ({})", e.message, file.display()),
                    });
                }
                let mut seen = BTreeSet::new();
                for e in entries {
                    if IGNORED_OLD_VARS.contains(&e.key.as_str()) {
                        env.ignored.push(e.key.clone());
                    } else if !KNOWN_VARS.contains(&e.key.as_str()) && seen.insert(e.key.clone()) {
                        env.unknown.push(e.key.clone());
                    }
                    env.vars
                        .insert(e.key, (e.value, Origin::File(file.to_path_buf())));
                }
            }
            Err(err) if explicit || err.kind() != std::io::ErrorKind::NotFound => {
                env.read_problems.push(Problem {
                    var: "--env-file".into(),
                    message: format!("cannot read {}: {err}", file.display()),
                });
            }
            Err(_) => {}
        }
        for (k, v) in environment {
            if KNOWN_VARS.contains(&k.as_str()) {
                env.vars.insert(k, (v, Origin::Environment));
            } else if IGNORED_OLD_VARS.contains(&k.as_str()) && !env.ignored.contains(&k) {
                // docker compose passes the old file's variables through the environment.
                env.ignored.push(k);
            }
        }
        env.register_secrets();
        env
    }

    /// Hands every secret the table marks to `redact` before anything can log or print it:
    /// the T-Bank password, the LLM key, the database password, the Google private key and
    /// the phone hash key.
    fn register_secrets(&self) {
        for spec in VARS.iter().filter(|s| s.secret) {
            if let Some((_, raw, _)) = self.lookup(spec.name, spec.aliases) {
                for secret in (spec.secrets)(raw) {
                    crate::redact::register(&secret);
                }
            }
        }
    }

    /// A flag's value wins over file and environment.
    pub fn set_flag(&mut self, var: &str, flag: &'static str, value: impl ToString) {
        self.vars
            .insert(var.to_string(), (value.to_string(), Origin::Flag(flag)));
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn file_found(&self) -> bool {
        self.file_found
    }

    /// Old variables callq ignores and names it does not know, for one warning each kind.
    pub fn ignored_vars(&self) -> (&[String], &[String]) {
        (&self.ignored, &self.unknown)
    }

    pub(super) fn read_problems(&self) -> &[Problem] {
        &self.read_problems
    }

    /// Where `var` was set, even to nothing.
    pub(super) fn origin(&self, var: &str) -> Option<&Origin> {
        self.vars.get(var).map(|(_, o)| o)
    }

    /// The first of a variable's names set to something other than blanks, with its value
    /// (as written) and origin.
    fn lookup(
        &self,
        name: &'static str,
        aliases: &[&'static str],
    ) -> Option<(&'static str, &str, &Origin)> {
        std::iter::once(&name)
            .chain(aliases)
            .find_map(|n| match self.vars.get(*n) {
                Some((v, o)) if !v.trim().is_empty() => Some((*n, v.as_str(), o)),
                _ => None,
            })
    }

    pub(super) fn is_set<K>(&self, var: Var<K>) -> bool {
        self.lookup(var.name, var.aliases).is_some()
    }

    /// `var` read as its kind; a value that is not one becomes a problem naming the
    /// spelling used and where it was set.
    pub(super) fn read<K: Kind>(&self, var: Var<K>) -> Read<K::Value> {
        let Some((name, raw, _)) = self.lookup(var.name, var.aliases) else {
            return Read::Unset;
        };
        match K::parse(raw.trim()) {
            Ok(v) => Read::Value(v),
            Err(message) => Read::Bad(self.problem(name, message)),
        }
    }

    /// A problem with `var`, saying where it was set when it was.
    pub(super) fn problem(&self, var: &str, message: impl Into<String>) -> Problem {
        let message = message.into();
        let message = match self.origin(var) {
            Some(origin) => format!("{message} (set in {origin})"),
            None => message,
        };
        Problem {
            var: var.to_string(),
            message,
        }
    }

    /// The problem of a required variable that is not set.
    pub(super) fn missing(&self, var: &str) -> Problem {
        let message = if self.file_found {
            format!(
                "is not set (not in {} nor in the environment)",
                self.file.display()
            )
        } else {
            format!(
                "is not set ({} not found; not in the environment)",
                self.file.display()
            )
        };
        Problem {
            var: var.to_string(),
            message,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write;

    use super::super::vars::var;
    use super::*;

    pub(in crate::config) fn env_from(
        text: &str,
        environment: &[(&str, &str)],
    ) -> (tempfile::NamedTempFile, Env) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let env = Env::load_with(
            f.path(),
            true,
            environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        (f, env)
    }

    fn value<K: Kind>(env: &Env, var: Var<K>) -> K::Value {
        match env.read(var) {
            Read::Value(v) => v,
            Read::Unset => panic!("{} not set", var.name),
            Read::Bad(p) => panic!("{p:?}"),
        }
    }

    #[test]
    fn environment_overrides_file_and_flags_override_both() {
        let (_f, mut env) = env_from(
            "CHECK_DAY_AGO=2\nLLM_CONCURRENCY=3\n",
            &[("LLM_CONCURRENCY", "5")],
        );
        assert_eq!(value(&env, var::LLM_CONCURRENCY.var), 5);
        env.set_flag("LLM_CONCURRENCY", "--concurrency", 9);
        assert_eq!(value(&env, var::LLM_CONCURRENCY.var), 9);
        assert_eq!(value(&env, var::CHECK_DAY_AGO.var), 2);
        assert_eq!(
            env.origin("CHECK_DAY_AGO"),
            Some(&Origin::File(env.file.clone()))
        );
        assert_eq!(
            env.origin("LLM_CONCURRENCY"),
            Some(&Origin::Flag("--concurrency"))
        );
    }

    #[test]
    fn base_urls_lose_their_trailing_slash_and_old_names_are_ignored() {
        let (_f, env) = env_from(
            "TBANK_BASE_URL=http://127.0.0.1:9/\nLOGGING_ON_DB=True\nSOMETHING_ELSE=1\nDEPARTMENT_ID=7\n",
            &[],
        );
        assert_eq!(value(&env, var::TBANK_BASE_URL.var), "http://127.0.0.1:9");
        assert_eq!(value(&env, var::DEPARTAMENT_ID), 7);
        let (ignored, unknown) = env.ignored_vars();
        assert_eq!(ignored, ["LOGGING_ON_DB".to_string()]);
        assert_eq!(unknown, ["SOMETHING_ELSE".to_string()]);
    }

    #[test]
    fn a_bad_value_names_the_spelling_used_and_where_it_was_set() {
        let (f, env) = env_from("DEPARTMENT_ID=seven\n  \nLLM_TIMEOUT_S=  \n", &[]);
        let Read::Bad(p) = env.read(var::DEPARTAMENT_ID) else {
            panic!("DEPARTMENT_ID=seven read");
        };
        assert_eq!(p.var, "DEPARTMENT_ID");
        assert_eq!(
            p.message,
            format!(
                "\"seven\" is not a department id (an integer) (set in {})",
                f.path().display()
            )
        );
        // Blank is unset.
        assert!(matches!(env.read(var::LLM_TIMEOUT_S.var), Read::Unset));
        let (_f, env) = env_from("DEPARTAMENT_ID=3\nDEPARTMENT_ID=4\n", &[]);
        assert_eq!(value(&env, var::DEPARTAMENT_ID), 3);
    }

    #[test]
    fn secrets_are_registered_as_soon_as_they_are_read() {
        let (_f, _env) = env_from(
            "PASSWORD=tbank-pass-4821\nDATA_BASE=postgresql://u:db-pass-7731@h/calls\n\
             PHONE_HASH_KEY=phone-key-0123456789\n",
            &[("TOKEN_LLM", "llm-token-5512")],
        );
        let text = "tbank-pass-4821 db-pass-7731 llm-token-5512 phone-key-0123456789";
        let shown = crate::redact::redact(text);
        for secret in text.split(' ') {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
