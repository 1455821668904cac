//! callq: scores a call centre's sales calls every night.
//!
//! For one department and one day: the checklist (Google Sheets or a CSV file), the day's
//! calls and transcripts (T-Bank TQM), one LLM analysis per call (an OpenAI-compatible
//! gateway), and the results upserted into PostgreSQL. `pipeline` is the run, top to bottom.

pub mod breaker;
pub mod calibration;
pub mod checklist;
pub mod cli;
pub mod commands;
pub mod concurrency;
pub mod config;
pub(crate) mod csv_file;
pub mod demo;
pub mod domain;
pub mod evidence;
pub mod experiment;
pub mod export;
pub mod llm;
pub mod logging;
pub mod metrics;
pub mod operators;
pub mod pii;
pub mod progress;
pub mod redact;
pub mod report;
pub mod retry;
pub mod review;
pub mod run;
pub mod severity;
pub mod store;
pub mod summary;
pub mod tbank;
pub mod text;
pub mod tls;
