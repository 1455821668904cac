//! Fake T-Bank TQM, Google (OAuth token + Sheets values) and LLM gateway servers.
//!
//! callq's end-to-end tests and benchmarks cannot reach the real services, so each fake
//! here binds `127.0.0.1:0`, serves the wire format callq's clients speak (including
//! its error shapes, paging and tolerance quirks), and adds what a test needs to look
//! inside: atomic counters, run-time knobs and deterministic fault injection.
//!
//! [`world`] puts them together with the files a department's env file names: the one
//! simulated world the tests, the pipeline benchmark and `callq demo` share.
//!
//! Every server is started with `start(config).await` on the current tokio runtime and
//! stays up for as long as its handle lives (dropping the handle stops accepting new
//! connections), so keep the handle in a variable for the whole test.

mod server;

pub mod google;
pub mod llm;
pub mod scenario;
pub mod tbank;
pub mod world;

pub use google::{FakeGoogle, GoogleConfig};
pub use llm::{
    BatchHold, FORMULA_RECOMMENDATION, FakeLlm, INVENTED_QUOTE, LlmConfig, Refusal,
    analysis_for_prompt, analysis_for_request, evidence_for, expected_score, markers,
};
pub use server::Gate;
pub use tbank::{FakeCall, FakeTbank, TbankConfig, TbankFaults};

/// A plain-http client for the crate's own tests. In a workspace build reqwest's rustls
/// feature is switched on by callq without a crypto provider, so one is installed first.
#[cfg(test)]
pub(crate) fn test_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
