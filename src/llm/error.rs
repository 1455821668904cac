//! What asking the gateway can end in, short of an analysis, and which setting a refusal
//! most likely points at.

use crate::domain::{Cost, Usage};
use crate::severity::{Severe, Severity};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The settings cannot work (a malformed URL or token); nothing was sent.
    #[error("LLM client: {0}")]
    Setup(String),
    /// The gateway refused the key or the model (401, 403, 404, "invalid model"): every
    /// other call would be refused too, so the run stops.
    #[error("the LLM gateway refused the request (HTTP {status}): {message}")]
    Fatal { status: u16, message: String },
    /// `count` requests in a row were refused with this very error and none succeeded
    /// since: the circuit breaker's verdict that every call would be (the run stops).
    #[error("the LLM gateway refused {count} requests in a row alike (HTTP {status}): {message}")]
    Refusing {
        status: u16,
        message: String,
        count: usize,
    },
    /// The gateway refused this call's request (e.g. 400 context too long, 413): this call
    /// fails and the run goes on.
    #[error("the LLM gateway refused this call (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Retries ran out on 429/5xx/timeouts; this call fails and the next run retries it.
    #[error("the LLM gateway is unavailable ({attempts} attempts): {last_error}")]
    Unavailable {
        attempts: u32,
        last_error: String,
        /// The HTTP status of the last attempt's answer (429, 5xx); `None` when the gateway
        /// was not reached or did not answer in time.
        last_status: Option<u16>,
        usage: Usage,
        cost: Option<Cost>,
    },
    /// Every answer failed validation.
    #[error("no usable analysis in {attempts} answers; last: {last_error}")]
    InvalidContent {
        attempts: u32,
        last_error: String,
        usage: Usage,
        cost: Option<Cost>,
    },
}

impl Severe for LlmError {
    /// `Unavailable` when no other call could succeed either: the run stops.
    fn severity(&self) -> Severity {
        match self {
            LlmError::Setup(_) | LlmError::Fatal { .. } | LlmError::Refusing { .. } => {
                Severity::Unavailable
            }
            LlmError::Rejected { .. }
            | LlmError::Unavailable { .. }
            | LlmError::InvalidContent { .. } => Severity::Call,
        }
    }
}

impl LlmError {
    /// Tokens spent on the call before it failed.
    pub fn usage(&self) -> Usage {
        match self {
            LlmError::Unavailable { usage, .. } | LlmError::InvalidContent { usage, .. } => *usage,
            _ => Usage::default(),
        }
    }

    /// What the call cost before it failed.
    pub fn cost(&self) -> Option<Cost> {
        match self {
            LlmError::Unavailable { cost, .. } | LlmError::InvalidContent { cost, .. } => *cost,
            _ => None,
        }
    }

    /// What to check, from the gateway's own words where it refused.
    pub fn fix(&self) -> &'static str {
        match self {
            LlmError::Setup(_) => "check LLM_BASE_URL and TOKEN_LLM",
            LlmError::Fatal { status, message }
            | LlmError::Refusing {
                status, message, ..
            }
            | LlmError::Rejected { status, message } => likely_cause(*status, message).fix(),
            // The gateway answered, with 429/5xx to the end.
            LlmError::Unavailable {
                last_status: Some(_),
                ..
            } => "the gateway or the provider behind it keeps failing; see its message",
            LlmError::Unavailable { .. } => "check LLM_BASE_URL and that the gateway is up",
            LlmError::InvalidContent { .. } => "check that MODEL follows the prompt's JSON format",
        }
    }
}

/// Which setting a refusal points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// TOKEN_LLM.
    Key,
    /// MODEL.
    Model,
    /// LLM_BASE_URL: the address answers but is not a chat-completions endpoint.
    Url,
    Unknown,
}

impl Cause {
    pub fn fix(self) -> &'static str {
        match self {
            Cause::Key => "check TOKEN_LLM: the gateway refused the key",
            Cause::Model => "check MODEL: the gateway does not know it",
            Cause::Url => {
                "check LLM_BASE_URL: it must end with the version segment, e.g. http://host:4000/v1"
            }
            Cause::Unknown => "check TOKEN_LLM, MODEL and LLM_BASE_URL",
        }
    }
}

/// Reads a refusal: a key refusal names TOKEN_LLM (LiteLLM without its database answers
/// any key but the master key with 400 "No connected db."), an unknown model MODEL, a
/// 404/405 without a word about models the URL.
pub fn likely_cause(status: u16, message: &str) -> Cause {
    let m = message.to_lowercase();
    let about_key = [
        "api key",
        "api_key",
        "apikey",
        "no connected db",
        "no_db_connection",
        "authentication",
        "unauthorized",
        "invalid key",
        "virtual key",
        "invalid token",
        "bearer",
    ]
    .iter()
    .any(|w| m.contains(w));
    let about_model = m.contains("model")
        && [
            "invalid",
            "not found",
            "does not exist",
            "unknown",
            "no deployment",
        ]
        .iter()
        .any(|w| m.contains(w));
    if matches!(status, 401 | 403) {
        Cause::Key
    } else if about_model {
        Cause::Model
    } else if about_key {
        Cause::Key
    } else if matches!(status, 404 | 405) {
        Cause::Url
    } else {
        Cause::Unknown
    }
}

/// A bad key, a forbidden or unknown model: no call of the run can succeed. Other 4xx
/// (a transcript too long for the context, a payload too large) concern one call only —
/// unless the circuit breaker sees them repeat.
pub(super) fn refuses_every_call(status: u16, message: &str) -> bool {
    let m = message.to_lowercase();
    matches!(status, 401 | 403 | 404)
        || (m.contains("model")
            && ["invalid", "not found", "does not exist", "unknown"]
                .iter()
                .any(|w| m.contains(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_and_model_refusals_stop_the_run_at_once() {
        assert!(refuses_every_call(401, "Authentication Error"));
        assert!(refuses_every_call(404, "model 'x' not found"));
        assert!(refuses_every_call(
            400,
            "litellm.BadRequestError: Invalid model name passed in model=gpt-x"
        ));
        assert!(!refuses_every_call(
            400,
            "This model's maximum context length is 128000 tokens"
        ));
        assert!(!refuses_every_call(413, "Request Entity Too Large"));
        // Left to the circuit breaker: it cannot be told from one call's refusal.
        assert!(!refuses_every_call(400, "No connected db."));
    }

    #[test]
    fn the_likely_cause_comes_from_the_gateways_words() {
        assert_eq!(likely_cause(400, "No connected db."), Cause::Key);
        assert_eq!(
            likely_cause(401, "Authentication Error, Invalid API key"),
            Cause::Key
        );
        assert_eq!(
            likely_cause(
                400,
                "litellm.BadRequestError: Invalid model name passed in model=gpt-x. Call `/v1/models` to view available models for your key."
            ),
            Cause::Model,
            "a model refusal that mentions keys in passing"
        );
        assert_eq!(likely_cause(404, "model 'x' not found"), Cause::Model);
        assert_eq!(likely_cause(404, "Not Found"), Cause::Url);
        assert_eq!(
            likely_cause(400, "maximum context length is 128000 tokens"),
            Cause::Unknown
        );
    }
}
