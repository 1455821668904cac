//! The JSON Schema sent as `response_format` (strict structured output) for the analysis
//! of one call, built from the checklist so the model can only name criteria
//! that exist, with scores in range.
//!
//! Strict mode accepts a subset of JSON Schema: every object lists all its properties
//! as `required` and sets `additionalProperties: false`; optional values are nullable
//! types instead. A fixed value is written as a one-element `enum` for strings and as
//! `minimum == maximum` for numbers rather than `const`: the same constraint in the
//! keywords every strict-mode provider documents. The parser still validates
//! everything, because prompt-only mode (a model that rejects the schema) gets no
//! such guarantee.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::domain::{Checklist, Criterion};

/// An object schema in strict form: all properties required, no others allowed.
fn strict_object(properties: Vec<(&str, Value)>) -> Value {
    let required: Vec<Value> = properties.iter().map(|(k, _)| json!(k)).collect();
    let props: serde_json::Map<String, Value> = properties
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn is_whole(x: f64) -> bool {
    x.fract() == 0.0 && x.abs() < 1e15
}

/// A JSON number for `x`: an integer when whole, so the schema reads `10`, not `10.0`.
fn number(x: f64) -> Value {
    if is_whole(x) {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn evaluation_schema(c: &Criterion) -> Value {
    let max = c.max_score.max(0.0);
    let score_type = if is_whole(max) { "integer" } else { "number" };
    strict_object(vec![
        ("category", json!({"type": "string", "enum": [c.category]})),
        (
            "criterion",
            json!({"type": "string", "enum": [c.indicator]}),
        ),
        (
            "score_given",
            json!({"type": score_type, "minimum": 0, "maximum": number(max)}),
        ),
        (
            "max_score",
            json!({"type": "number", "minimum": number(max), "maximum": number(max)}),
        ),
        ("reason", json!({"type": "string"})),
        ("evidence", evidence_schema()),
    ])
}

/// The quote backing a score (see `prompt::EVIDENCE_INSTRUCTION`); `""` when the score is
/// for something absent from the call. Length is asked for in the prompt, not here:
/// `maxLength` is not among the keywords every strict-mode provider accepts.
fn evidence_schema() -> Value {
    json!({"type": "string"})
}

/// The response schema, serialised once: every request of a run carries the same one, and
/// writing it out call by call was a measurable part of callq's own CPU per call.
#[derive(Debug, Clone)]
pub struct ResponseSchema(Box<RawValue>);

impl ResponseSchema {
    pub fn new(schema: &Value) -> ResponseSchema {
        ResponseSchema(serde_json::value::to_raw_value(schema).expect("a JSON value serialises"))
    }

    /// The schema as JSON text, as the request body carries it.
    pub(super) fn json(&self) -> &RawValue {
        &self.0
    }

    /// The schema read back, for looking into it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("serialised from a JSON value")
    }
}

/// The response schema for `checklist`.
pub fn response_schema(checklist: &Checklist) -> ResponseSchema {
    ResponseSchema::new(&schema_value(checklist))
}

fn schema_value(checklist: &Checklist) -> Value {
    let categories: Vec<&str> = checklist.categories();
    let evaluation: Vec<Value> = checklist.criteria.iter().map(evaluation_schema).collect();
    let category = if categories.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": categories})
    };
    // An empty anyOf matches nothing; a checklist without criteria is refused upstream,
    // but the schema must stay valid anyway.
    let evaluation_items = if evaluation.is_empty() {
        strict_object(vec![
            ("category", json!({"type": "string"})),
            ("criterion", json!({"type": "string"})),
            ("score_given", json!({"type": "number", "minimum": 0})),
            ("max_score", json!({"type": "number", "minimum": 0})),
            ("reason", json!({"type": "string"})),
            ("evidence", evidence_schema()),
        ])
    } else {
        json!({ "anyOf": evaluation })
    };
    strict_object(vec![
        ("is_sales_call", json!({"type": "boolean"})),
        ("total_score", json!({"type": "number"})),
        ("max_possible_score", json!({"type": "number"})),
        ("performance_percentage", json!({"type": "number"})),
        (
            "evaluations",
            json!({"type": "array", "items": evaluation_items}),
        ),
        (
            "recommendations",
            json!({"type": "array", "items": strict_object(vec![
                ("category", category),
                ("issue", json!({"type": "string"})),
                ("recommendation", json!({"type": "string"})),
                ("priority", json!({"type": "string", "enum": ["high", "medium", "low"]})),
            ])}),
        ),
        (
            "agreements",
            json!({"type": "array", "items": strict_object(vec![
                ("amount", json!({"type": ["number", "null"]})),
                ("agreement", json!({"type": "string"})),
            ])}),
        ),
        (
            "decline_reasons",
            json!({"type": "array", "items": strict_object(vec![
                ("reason_type", json!({"type": "string"})),
                ("reason_description", json!({"type": "string"})),
                ("product_category", json!({"type": "string"})),
            ])}),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crit(cat: &str, name: &str, max: f64) -> Criterion {
        Criterion::new(cat, name, max)
    }

    fn checklist() -> Checklist {
        Checklist {
            criteria: vec![
                crit("Приветствие", "Назвал имя", 5.0),
                crit("Продажа", "Озвучил лимит", 2.5),
                crit("Приветствие", "Назвал банк", 10.0),
            ],
            custom_instructions: String::new(),
        }
    }

    /// Walks every subschema and checks the strict-mode object rules.
    fn assert_strict(s: &Value, path: &str) {
        let Some(obj) = s.as_object() else {
            panic!("{path}: not a schema object");
        };
        if obj.get("type") == Some(&json!("object")) {
            assert_eq!(obj["additionalProperties"], json!(false), "{path}");
            let props = obj["properties"].as_object().unwrap();
            let mut required: Vec<&str> = obj["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
            required.sort();
            keys.sort();
            assert_eq!(required, keys, "{path}: all properties required");
            for (k, v) in props {
                assert_strict(v, &format!("{path}.{k}"));
            }
        }
        if let Some(items) = obj.get("items") {
            assert_strict(items, &format!("{path}[]"));
        }
        if let Some(any) = obj.get("anyOf") {
            for (i, v) in any.as_array().unwrap().iter().enumerate() {
                assert_strict(v, &format!("{path}|{i}"));
            }
        }
    }

    #[test]
    fn every_object_is_strict() {
        let s = response_schema(&checklist()).to_value();
        assert_eq!(s["type"], "object");
        assert_strict(&s, "$");
        assert_strict(&response_schema(&Checklist::default()).to_value(), "$");
    }

    #[test]
    fn one_evaluation_branch_per_criterion() {
        let s = response_schema(&checklist()).to_value();
        let branches = s["properties"]["evaluations"]["items"]["anyOf"]
            .as_array()
            .unwrap();
        assert_eq!(branches.len(), 3);
        let b = &branches[0]["properties"];
        assert_eq!(b["category"]["enum"], json!(["Приветствие"]));
        assert_eq!(b["criterion"]["enum"], json!(["Назвал имя"]));
        assert_eq!(
            b["score_given"],
            json!({"type": "integer", "minimum": 0, "maximum": 5})
        );
        assert_eq!(b["max_score"]["minimum"], json!(5));
        assert_eq!(b["max_score"]["maximum"], json!(5));
        let b = &branches[1]["properties"];
        assert_eq!(
            b["score_given"],
            json!({"type": "number", "minimum": 0, "maximum": 2.5})
        );
        assert_eq!(b["max_score"]["maximum"], json!(2.5));
        assert_eq!(b["evidence"], json!({"type": "string"}));
    }

    #[test]
    fn categories_priority_and_nullable_amount() {
        let s = response_schema(&checklist()).to_value();
        let p = &s["properties"];
        assert_eq!(
            p["recommendations"]["items"]["properties"]["category"]["enum"],
            json!(["Приветствие", "Продажа"])
        );
        assert_eq!(
            p["recommendations"]["items"]["properties"]["priority"]["enum"],
            json!(["high", "medium", "low"])
        );
        assert_eq!(
            p["agreements"]["items"]["properties"]["amount"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(p["is_sales_call"]["type"], "boolean");
    }
}
