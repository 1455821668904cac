//! callq: scores a call centre's sales calls every night.
//!
//! For one department and one day: the checklist (Google Sheets or a CSV file), the day's
//! calls and transcripts (T-Bank TQM), one LLM analysis per call (an OpenAI-compatible
//! gateway), and the results upserted into PostgreSQL. `run` is the run, top to bottom; `commands`
//! holds one file per subcommand, and nothing below it calls it.

pub(crate) mod breaker;
pub(crate) mod calibration;
pub(crate) mod canary;
pub mod checklist;
pub mod cli;
pub mod commands;
pub(crate) mod concurrency;
pub mod config;
pub(crate) mod csv_file;
pub mod demo;
pub mod domain;
pub(crate) mod evidence;
pub(crate) mod experiment;
pub mod export;
pub mod llm;
pub mod logging;
pub mod metrics;
pub mod operators;
pub mod pii;
pub(crate) mod progress;
pub mod redact;
pub mod report;
pub mod retry;
pub(crate) mod review;
pub mod run;
pub mod severity;
pub mod store;
pub mod summary;
pub(crate) mod tbank;
pub(crate) mod text;
pub mod tls;
