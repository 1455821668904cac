//! callq: scores a call centre's sales calls every night.
//!
//! For one department and one day: the checklist (Google Sheets or a CSV file), the day's
//! calls and transcripts (T-Bank TQM), one LLM analysis per call (an OpenAI-compatible
//! gateway), and the results upserted into PostgreSQL. `pipeline` is the run, top to bottom.

pub mod checklist;
pub mod domain;
pub mod llm;
pub mod operators;
pub mod retry;
pub mod tls;
