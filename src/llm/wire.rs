//! The chat-completions wire format, private to the client: the request body, reading a
//! 200 answer tolerantly, and the gateway's error bodies.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::ResponseSchema;

use crate::domain::Usage;

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 1],
    temperature: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    /// Seconds: LiteLLM gives up on the upstream after this long, so a request callq has
    /// abandoned is not finished (and billed) anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<f64>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'static str,
    strict: bool,
    schema: &'a RawValue,
}

pub(super) fn request_body(
    model: &str,
    prompt: &str,
    schema: Option<&ResponseSchema>,
    timeout_s: Option<f64>,
) -> Vec<u8> {
    let request = ChatRequest {
        model,
        messages: [Message {
            role: "user",
            content: prompt,
        }],
        temperature: 0,
        response_format: schema.map(|schema| ResponseFormat {
            kind: "json_schema",
            json_schema: JsonSchema {
                name: "call_analysis",
                strict: true,
                schema: schema.json(),
            },
        }),
        timeout: timeout_s,
    };
    serde_json::to_vec(&request).expect("a request of strings and JSON values serialises")
}

/// A 200 answer: the content, or why there is none, and the tokens it cost.
pub(super) struct Completion {
    pub content: Result<String, String>,
    pub usage: Usage,
    /// USD, as the gateway reported it (`x-litellm-response-cost`).
    pub gateway_cost: Option<f64>,
    /// The model the answer says it came from (`model`), which may name a dated version
    /// behind the alias in `MODEL`.
    pub model: Option<String>,
}

/// Reads a 200 body tolerantly. A body that is not JSON is a gateway glitch (retried);
/// a JSON body without content is an unusable answer (asked for again, tokens counted).
pub(super) fn parse_completion(text: &str) -> Result<Completion, String> {
    let body: Value = serde_json::from_str(text)
        .map_err(|e| format!("HTTP 200 with a body that is not JSON: {e}"))?;
    Ok(completion_of(&body))
}

/// A 200 answer's JSON, read tolerantly: a synchronous answer's body, or a batch line's.
pub(super) fn completion_of(body: &Value) -> Completion {
    let usage = body.get("usage").map(parse_usage).unwrap_or_default();
    let choice = body.get("choices").and_then(|c| c.get(0));
    let message = choice.and_then(|c| c.get("message"));
    let content = match message.and_then(|m| m.get("content")) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        // Some providers send content as a list of typed parts.
        Some(Value::Array(parts)) => {
            let joined: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            if joined.trim().is_empty() {
                Err("empty content".to_string())
            } else {
                Ok(joined)
            }
        }
        _ => Err(
            match message
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
            {
                Some(refusal) => format!("the model refused: {refusal}"),
                // Some gateways answer 200 with an error object instead of an error status.
                None if choice.is_none() && body.get("error").is_some() => format!(
                    "the gateway answered 200 with an error: {}",
                    body["error"]
                        .get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| body["error"].to_string(), str::to_string)
                ),
                None if choice.is_none() => "no choices in the answer".to_string(),
                None => format!(
                    "empty content (finish_reason {})",
                    choice
                        .and_then(|c| c.get("finish_reason"))
                        .map_or("unknown".to_string(), Value::to_string)
                ),
            },
        ),
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    Completion {
        content,
        usage,
        gateway_cost: None,
        model,
    }
}

fn parse_usage(u: &Value) -> Usage {
    let count = |v: Option<&Value>| -> u64 {
        match v {
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|x| *x >= 0.0).map(|x| x as u64))
                .unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        }
    };
    Usage {
        prompt_tokens: count(u.get("prompt_tokens")),
        completion_tokens: count(u.get("completion_tokens")),
        cached_tokens: count(
            u.get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens")),
        ),
    }
}

/// The gateway's error message: OpenAI's `{"error": {"message": …}}`, LiteLLM's and
/// FastAPI's variants, or the raw body; one line, at most 500 characters.
pub(super) fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            let e = v.get("error").or_else(|| v.get("detail"))?;
            match e {
                Value::String(s) => Some(s.clone()),
                _ => e
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| Some(e.to_string())),
            }
        })
        .unwrap_or_else(|| body.to_string());
    let one_line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out: String = one_line.chars().take(500).collect();
    if one_line.chars().count() > 500 {
        out.push('…');
    }
    out
}

/// Whether a 400 blames the structured-output request rather than the request as a whole.
pub(super) fn mentions_structured_output(body: &str) -> bool {
    let lower = body.to_lowercase();
    [
        "response_format",
        "response format",
        "json_schema",
        "json schema",
        "structured output",
        "structured_output",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Whether a 400 refuses the `timeout` field itself (an API that is not LiteLLM and
/// rejects unknown fields).
pub(super) fn refuses_timeout_field(body: &str) -> bool {
    let lower = body.to_lowercase();
    lower.contains("timeout")
        && [
            "unrecognized",
            "unrecognised",
            "unknown",
            "unexpected",
            "extra",
            "not permitted",
            "not allowed",
            "not supported",
            "unsupported",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_body_has_the_contract_shape() {
        let schema = ResponseSchema::new(&json!({"type": "object"}));
        let body: Value =
            serde_json::from_slice(&request_body("gpt-x", "привет", Some(&schema), Some(180.0)))
                .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-x",
                "messages": [{"role": "user", "content": "привет"}],
                "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "call_analysis", "strict": true, "schema": {"type": "object"}}},
                "timeout": 180.0
            })
        );
        let body: Value = serde_json::from_slice(&request_body("m", "p", None, None)).unwrap();
        assert!(body.get("response_format").is_none());
        assert!(body.get("timeout").is_none());
    }

    #[test]
    fn completion_usage_is_read_tolerantly() {
        let c = parse_completion(
            r#"{"choices":[{"message":{"content":"{}"}}],
                "usage":{"prompt_tokens":120,"completion_tokens":"30",
                         "prompt_tokens_details":{"cached_tokens":100}}}"#,
        )
        .unwrap();
        assert_eq!(c.content.unwrap(), "{}");
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 120,
                completion_tokens: 30,
                cached_tokens: 100
            }
        );
        let c = parse_completion(
            r#"{"choices":[{"message":{"content":null,"refusal":"нет"}}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(c.content.unwrap_err(), "the model refused: нет");
        assert_eq!(c.usage, Usage::default());
        let c = parse_completion(
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"{\"a\""},{"type":"text","text":":1}"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(c.content.unwrap(), "{\"a\":1}");
        assert!(parse_completion("<html>bad gateway</html>").is_err());
        assert_eq!(
            parse_completion(
                r#"{"error":{"message":"upstream quota exceeded","type":"rate_limit"}}"#
            )
            .unwrap()
            .content
            .unwrap_err(),
            "the gateway answered 200 with an error: upstream quota exceeded"
        );
        assert_eq!(
            parse_completion(r#"{"choices":[]}"#)
                .unwrap()
                .content
                .unwrap_err(),
            "no choices in the answer"
        );
    }

    #[test]
    fn error_messages_are_one_line() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Invalid key\nplease check","type":"auth"}}"#),
            "Invalid key please check"
        );
        assert_eq!(error_message(r#"{"detail":"Not found"}"#), "Not found");
        assert_eq!(error_message(r#"{"error":"quota"}"#), "quota");
        assert_eq!(error_message("  "), "(empty body)");
        assert_eq!(error_message(&"x".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn structured_output_rejections_are_recognised() {
        assert!(mentions_structured_output(
            r#"{"error":{"message":"litellm.UnsupportedParamsError: does not support parameters: ['response_format']"}}"#
        ));
        assert!(mentions_structured_output(
            "Structured Outputs are not supported by this model"
        ));
        assert!(mentions_structured_output(
            "Invalid schema for json_schema 'call_analysis'"
        ));
        assert!(!mentions_structured_output(
            r#"{"error":{"message":"Invalid model name"}}"#
        ));
    }

    #[test]
    fn timeout_field_rejections_are_recognised() {
        assert!(refuses_timeout_field(
            r#"{"error":{"message":"Unrecognized request argument supplied: timeout"}}"#
        ));
        assert!(refuses_timeout_field("extra fields not permitted: timeout"));
        assert!(!refuses_timeout_field("Request timed out"));
        assert!(!refuses_timeout_field("No connected db."));
    }
}
