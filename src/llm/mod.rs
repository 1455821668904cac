//! The LLM gateway: prompt rendering, the response schema, analysis parsing, the client.
//!
//! Per run: parse the department's [`Template`], build a [`PromptBuilder`] and the
//! [`response_schema`] from the checklist once, create one [`LlmClient`]. Per call:
//! [`PromptBuilder::render`] the transcript and [`LlmClient::analyze`] the prompt.

pub mod batch;
mod client;
mod cost;
mod error;
mod parse;
mod prompt;
mod schema;
mod wire;

pub use client::{Analyzed, CONTENT_ATTEMPTS, LlmClient, LlmSettings, Probe, StructuredOutput};
pub use cost::Prices;
pub use error::{Cause, LlmError, likely_cause};
pub use parse::{
    ParseError, ParsedAnswer, match_criterion, parse_analysis, parse_analysis_with_notes,
    percentage,
};
pub use prompt::{
    EVIDENCE_INSTRUCTION, Placeholder, PromptBuilder, PromptLayout, Template, TemplateError,
    criteria_list,
};
pub use schema::{ResponseSchema, response_schema};
