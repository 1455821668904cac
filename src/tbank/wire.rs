//! TQM's JSON, private to the client. Installations differ in what they send: ids and
//! durations come as numbers, as floats without a fraction or as strings, text fields
//! sometimes as numbers, and any field may be missing or null. [`Scalar`] reads a field
//! whatever it holds, so one odd field never fails a whole page: the conversions below
//! decide what is usable and name the field that is not.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Call, Phrase, Speaker, Transcript};

use super::Group;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginRequest<'a> {
    pub login: &'a str,
    pub password: &'a str,
    /// Sic: TQM's spelling.
    pub authentification_type: &'a str,
    pub auth_system: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionStart {
    pub access_token: String,
}

/// One page of the listing. Its items are read one by one (see [`call`]), so an item that
/// cannot be read is counted instead of failing the page.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CallSessions {
    #[serde(default)]
    pub items: Vec<Value>,
    #[serde(default)]
    next_page: Option<Scalar>,
}

impl CallSessions {
    /// The next page's number, if the server gave a usable one.
    pub fn next_page(&self) -> Option<u64> {
        let n = self.next_page.as_ref()?.int().ok()?;
        u64::try_from(n).ok()
    }
}

/// The group search answers a list of groups; entries that are not groups are skipped.
pub(super) type GroupSearch = Vec<Value>;

/// The transcript request's answer, read as a value first: an error body is reported by
/// its length, which needs the whole of it.
pub(super) type TranscriptAnswer = Value;

/// An entry that should be an object: read as `T` when it is one, nothing when it is not
/// (an object's fields are never read from a list by position).
struct Object<T>(Option<T>);

/// A field that should be a list: its entries when it is one, nothing when it is not.
struct List<T>(Option<Vec<T>>);

/// Reads a value of any shape: the one it wants through `map`/`seq`, any other as `None`.
macro_rules! anything_else_is_none {
    ($t:ty) => {
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$t, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$t, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$t, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$t, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$t, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<$t, E> {
            Ok(None)
        }
    };
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Option<T>;
            anything_else_is_none!(Option<T>);
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(ObjectVisitor(PhantomData)).map(Object)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = Option<Vec<T>>;
            anything_else_is_none!(Option<Vec<T>>);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Some(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(ListVisitor(PhantomData)).map(List)
    }
}

/// `T` from a value when it is an object of `T`'s fields, else `None`.
fn object<T: for<'de> Deserialize<'de>>(v: &Value) -> Option<T> {
    Object::<T>::deserialize(v).ok().and_then(|o| o.0)
}

/// A field's value, whatever TQM put in it.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
    /// A list, an object or a boolean, as a message may show it.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other(if b { "true" } else { "false" }))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(n.into()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Scalar, E> {
                Ok(serde_json::Number::from_f64(n).map_or(Scalar::Other("NaN"), Scalar::Number))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("[…]"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("{…}"))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

impl Scalar {
    /// An integer that fits an i64: numbers may come as strings, or as floats without a
    /// fraction. Out of range is an error, never a saturated value.
    fn int(&self) -> Result<i64, ()> {
        match self {
            Scalar::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| {
                            f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64
                        })
                        .map(|f| f as i64)
                })
                .ok_or(()),
            Scalar::Text(s) => s.trim().parse().map_err(|_| ()),
            Scalar::Other(_) => Err(()),
        }
    }

    /// Trimmed, non-empty text, cleaned of what PostgreSQL's text refuses (NUL).
    fn text(&self) -> Option<String> {
        match self {
            Scalar::Text(s) => {
                let s = crate::text::clean(s);
                let s = s.trim();
                (!s.is_empty()).then(|| s.to_string())
            }
            Scalar::Number(n) => Some(n.to_string()),
            Scalar::Other(_) => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value for a message (ids and durations only, never free text), as JSON shows it.
    fn short(&self) -> String {
        let text = match self {
            Scalar::Text(s) => serde_json::to_string(s).unwrap_or_default(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Other(o) => o.to_string(),
        };
        text.chars().take(40).collect()
    }
}

/// An integer field: absent (or null) is `Ok(None)`; present but not an integer that fits
/// an i64 is an error naming the field, so the item is counted unreadable instead of
/// stored with a wrong or missing value.
fn int_field(v: Option<&Scalar>, name: &str) -> Result<Option<i64>, String> {
    v.map(|x| {
        x.int()
            .map_err(|()| format!("{name} {} is not an integer in range", x.short()))
    })
    .transpose()
}

fn text(v: Option<&Scalar>) -> Option<String> {
    v.and_then(Scalar::text)
}

#[derive(Deserialize)]
struct GroupItem {
    id: Option<Scalar>,
    name: Option<Scalar>,
    #[serde(rename = "type")]
    kind: Option<Scalar>,
}

pub(super) fn group(item: &Value) -> Option<Group> {
    let g: GroupItem = object(item)?;
    Some(Group {
        id: g.id.as_ref()?.int().ok()?,
        name: text(g.name.as_ref())?,
        kind: text(g.kind.as_ref()).unwrap_or_else(|| "workGroup".into()),
    })
}

/// One listing item. Every field is optional here; [`call`] says which are needed.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CallItem {
    segment_id: Option<Scalar>,
    id: Option<Scalar>,
    start_date: Option<Scalar>,
    end_date: Option<Scalar>,
    duration: Option<Scalar>,
    operator_user_id: Option<Scalar>,
    operator_user_login: Option<Scalar>,
    operator_user_full_name: Option<Scalar>,
    call_direction: Option<Scalar>,
    client_phone_number: Option<Scalar>,
}

impl CallItem {
    /// An item that is not an object has none of the fields.
    fn read(item: &Value) -> CallItem {
        object(item).unwrap_or_default()
    }
}

/// The id of an item that could not be read, when one can be, so its failure can be
/// recorded against it.
pub(super) fn item_id(item: &Value) -> Option<i64> {
    let c = CallItem::read(item);
    let id = |v: Option<&Scalar>| int_field(v, "").ok().flatten();
    id(c.segment_id.as_ref()).or_else(|| id(c.id.as_ref()))
}

/// A listing item as a call, with times in `tz` unless they carry their own offset.
pub(super) fn call(item: &Value, tz: Tz) -> Result<Call, String> {
    let v = CallItem::read(item);
    let id = match int_field(v.segment_id.as_ref(), "segmentId")? {
        Some(id) => id,
        None => int_field(v.id.as_ref(), "id")?.ok_or("no segmentId")?,
    };
    let start = v
        .start_date
        .as_ref()
        .and_then(Scalar::as_str)
        .ok_or_else(|| format!("call {id}: no startDate"))
        .and_then(|s| parse_time(s, tz).map_err(|e| format!("call {id}: startDate {s:?}: {e}")))?;
    let finish = v
        .end_date
        .as_ref()
        .and_then(Scalar::as_str)
        .and_then(|s| parse_time(s, tz).ok());
    let duration_s = int_field(v.duration.as_ref(), "duration")
        .map_err(|e| format!("call {id}: {e}"))?
        .or_else(|| finish.map(|f| (f - start).num_seconds()))
        .ok_or_else(|| format!("call {id}: no duration"))?;
    // calls.duration_s is an integer column: a value beyond it would be stored as NULL.
    if i32::try_from(duration_s).is_err() {
        return Err(format!(
            "call {id}: duration {duration_s} s is out of range"
        ));
    }
    Ok(Call {
        id,
        start,
        finish,
        duration_s,
        operator_user_id: v.operator_user_id.as_ref().and_then(|x| x.int().ok()),
        operator_login: text(v.operator_user_login.as_ref()),
        operator_name: text(v.operator_user_full_name.as_ref()).unwrap_or_default(),
        direction: text(v.call_direction.as_ref()),
        phone: text(v.client_phone_number.as_ref()),
    })
}

/// Local wall-clock time in `tz` unless the string carries an offset or `Z`.
fn parse_time(s: &str, tz: Tz) -> Result<DateTime<FixedOffset>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map_err(|e| e.to_string())?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.fixed_offset())
        .ok_or_else(|| format!("does not exist in {tz}"))
}

/// A transcript answer. TQM's error objects carry one of `errorCode`, `errorMessage`,
/// `error`, `errors`: such an answer is an error, not "not transcribed yet" (which is an
/// answer without parts).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TranscriptBody {
    first_operator_id: Option<Scalar>,
    transcription_parts: Option<List<Object<Part>>>,
    error_code: Option<Scalar>,
    error_message: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Part {
    phrases: Option<List<Object<PhraseItem>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhraseItem {
    contact_id: Option<Scalar>,
    phrase_text: Option<Scalar>,
}

pub(super) fn transcript(v: &TranscriptAnswer) -> Result<Transcript, String> {
    // Only the error code: the rest of such a body may quote the call.
    let error = |code: Option<&Scalar>| {
        let code = code.map_or_else(
            || "none".to_string(),
            |c| match c {
                Scalar::Text(s) => s.chars().take(60).collect(),
                other => other.short().chars().take(60).collect(),
            },
        );
        let chars = v.to_string().chars().count();
        Err(format!(
            "answered with an error instead of a transcript (errorCode {code}; \
             {chars}-character body not shown)"
        ))
    };
    // Not an object: nothing to read a transcript from.
    let Some(body) = object::<TranscriptBody>(v) else {
        return error(None);
    };
    let parts = match &body.transcription_parts {
        None => {
            let is_error = body.error_code.is_some()
                || body.error_message.is_some()
                || body.error.is_some()
                || body.errors.is_some();
            if is_error {
                return error(body.error_code.as_ref());
            }
            return Ok(Transcript::default());
        }
        Some(List(Some(parts))) => parts,
        Some(List(None)) => return Err("transcriptionParts is not a list".into()),
    };
    let operator = body.first_operator_id.as_ref().and_then(|x| x.int().ok());
    let mut phrases = Vec::new();
    let listed = parts
        .iter()
        .filter_map(|part| part.0.as_ref()?.phrases.as_ref()?.0.as_ref());
    for p in listed.flatten().filter_map(|p| p.0.as_ref()) {
        let text = crate::text::clean(
            p.phrase_text
                .as_ref()
                .and_then(Scalar::as_str)
                .unwrap_or(""),
        );
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let contact = p.contact_id.as_ref().and_then(|x| x.int().ok());
        let speaker = if operator.is_some() && contact == operator {
            Speaker::Operator
        } else {
            Speaker::Client
        };
        phrases.push(Phrase {
            speaker,
            text: text.to_string(),
        });
    }
    Ok(Transcript { phrases })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn moscow() -> Tz {
        "Europe/Moscow".parse().unwrap()
    }

    #[test]
    fn call_items_tolerate_strings_ids_and_offsets() {
        let c = call(
            &json!({"id": "90817263", "startDate": "2025-08-07T10:15:03", "endDate": "2025-08-07T10:19:44",
                    "duration": "281", "operatorUserId": "5512", "operatorUserFullName": "Иванова Анна", "extra": 1}),
            moscow(),
        )
        .unwrap();
        assert_eq!(c.id, 90817263);
        assert_eq!(c.duration_s, 281);
        assert_eq!(c.operator_user_id, Some(5512));
        assert_eq!(c.start.to_rfc3339(), "2025-08-07T10:15:03+03:00");
        let z = call(
            &json!({"segmentId": 1, "startDate": "2025-08-07T07:15:03Z", "duration": 5}),
            moscow(),
        )
        .unwrap();
        assert_eq!(z.start.to_rfc3339(), "2025-08-07T07:15:03+00:00");
        assert!(call(&json!({"startDate": "2025-08-07T10:15:03"}), moscow()).is_err());
        assert!(
            call(
                &json!({"segmentId": 1, "startDate": "yesterday", "duration": 1}),
                moscow()
            )
            .is_err()
        );
    }

    #[test]
    fn ids_and_durations_out_of_range_make_the_item_unreadable() {
        let item = |id: Value, duration: Value| {
            call(
                &json!({"segmentId": id, "startDate": "2025-08-07T10:00:00", "duration": duration}),
                moscow(),
            )
        };
        let err = item(json!(99999999999999999999u128 as f64), json!(60)).unwrap_err();
        assert!(err.contains("segmentId"), "{err}");
        assert!(item(json!("99999999999999999999"), json!(60)).is_err());
        let err = item(json!(1), json!(3_000_000_000i64)).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(item(json!(1), json!("-3000000000")).is_err());
        assert!(item(json!(1), json!(1.5)).is_err());
        let ok = item(json!(9_007_199_254_740_000i64), json!(60.0)).unwrap();
        assert_eq!((ok.id, ok.duration_s), (9_007_199_254_740_000, 60));
        assert!(item(json!(1), json!(i64::from(i32::MAX))).is_ok());
    }

    #[test]
    fn nul_characters_are_removed_from_wire_text() {
        let c = call(
            &json!({"segmentId": 1, "startDate": "2025-08-07T10:15:03", "duration": 60,
                    "operatorUserFullName": "Ива\0нова Анна\0", "callDirection": "out\0bound",
                    "operatorUserLogin": "\0"}),
            moscow(),
        )
        .unwrap();
        assert_eq!(c.operator_name, "Иванова Анна");
        assert_eq!(c.direction.as_deref(), Some("outbound"));
        assert_eq!(c.operator_login, None, "nothing but NUL is no login");
        let t = transcript(&json!({"firstOperatorId": 1, "transcriptionParts": [
            {"phrases": [{"contactId": 1, "phraseText": "Добрый\0 день"}, {"contactId": 0, "phraseText": "\0"}]}
        ]}))
        .unwrap();
        assert_eq!(t.to_text(), "operator: Добрый день\n");
        let g = group(&json!({"id": 1, "name": "Группа\0"})).unwrap();
        assert_eq!(g.name, "Группа");
    }

    #[test]
    fn transcript_keeps_order_and_speakers() {
        let t = transcript(&json!({"firstOperatorId": 5512, "transcriptionParts": [
            {"phrases": [{"contactId": 5512, "phraseText": "Добрый день!"}, {"contactId": 0, "phraseText": "Здравствуйте."}]},
            {"phrases": [{"contactId": "5512", "phraseText": "Чем помочь?"}]}
        ]}))
        .unwrap();
        assert_eq!(
            t.to_text(),
            "operator: Добрый день!\nclient: Здравствуйте.\noperator: Чем помочь?\n"
        );
        assert!(
            transcript(&json!({"firstOperatorId": 1, "transcriptionParts": []}))
                .unwrap()
                .is_empty()
        );
        assert!(
            transcript(&json!({"segmentId": 1, "transcriptionParts": null}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_error_object_is_a_failure_not_an_untranscribed_call() {
        let err = transcript(&json!({"errorCode": "TRANSCRIPTION_FAILED",
                                           "errorMessage": "Сегмент повреждён", "status": 200}))
        .unwrap_err();
        assert!(err.contains("TRANSCRIPTION_FAILED"), "{err}");
        // The message may quote the call: only its length is told.
        assert!(!err.contains("Сегмент"), "{err}");
        let long = "x".repeat(1000);
        let err = transcript(&json!({"error": long, "errorCode": "y".repeat(500)})).unwrap_err();
        assert!(err.len() < 200 && !err.contains("xx"), "{err}");
        assert!(transcript(&json!("oops")).is_err());
    }

    #[test]
    fn an_item_of_another_shape_is_unreadable_and_never_read_by_position() {
        assert_eq!(
            call(&json!("90817263"), moscow()).unwrap_err(),
            "no segmentId"
        );
        // A list holding the fields' values in order is not an item.
        let listed = json!([1, null, "2025-08-07T10:15:03", null, 60]);
        assert_eq!(call(&listed, moscow()).unwrap_err(), "no segmentId");
        assert_eq!(item_id(&listed), None);
        let odd = json!({"segmentId": {"nested": 1}, "startDate": "2025-08-07T10:15:03"});
        let err = call(&odd, moscow()).unwrap_err();
        assert!(
            err.starts_with("segmentId {") && err.ends_with("in range"),
            "{err}"
        );
        assert_eq!(
            item_id(&json!({"segmentId": true, "id": " 42 "})),
            Some(42),
            "the other id when segmentId cannot be read"
        );
        let no_start = json!({"segmentId": 7, "startDate": 20250807, "duration": 1});
        assert_eq!(
            call(&no_start, moscow()).unwrap_err(),
            "call 7: no startDate"
        );
    }

    #[test]
    fn groups_and_pages_read_what_they_can() {
        let groups: Vec<Option<Group>> = [
            json!({"id": "12", "name": " Продажи ", "type": "workGroup"}),
            json!({"id": 13, "name": 2024}),
            json!([14, "Группа", "folder"]),
            json!({"id": 1.5, "name": "x"}),
            json!({"name": "no id"}),
        ]
        .iter()
        .map(group)
        .collect();
        assert_eq!(groups[0].as_ref().unwrap().name, "Продажи");
        assert_eq!(
            groups[1],
            Some(Group {
                id: 13,
                name: "2024".into(),
                kind: "workGroup".into()
            })
        );
        assert!(groups[2..].iter().all(Option::is_none), "{groups:?}");

        let page = |next: Value| {
            serde_json::from_value::<CallSessions>(json!({"items": [], "nextPage": next}))
                .unwrap()
                .next_page()
        };
        assert_eq!(page(json!(2)), Some(2));
        assert_eq!(page(json!("3")), Some(3));
        assert_eq!(page(json!(4.0)), Some(4));
        assert_eq!(page(json!(null)), None);
        assert_eq!(page(json!(-1)), None, "no page before the first");
        assert_eq!(page(json!({"page": 2})), None);
    }

    #[test]
    fn transcript_parts_of_another_shape_are_skipped() {
        let t = transcript(&json!({"firstOperatorId": "5", "transcriptionParts": [
            "not a part",
            {"phrases": "not a list"},
            {"phrases": [7, {"contactId": 5, "phraseText": 12}, {"contactId": 5.0, "phraseText": " Да "}]},
        ]}))
        .unwrap();
        assert_eq!(t.to_text(), "operator: Да\n");
        assert_eq!(
            transcript(&json!({"transcriptionParts": {"0": []}})).unwrap_err(),
            "transcriptionParts is not a list"
        );
        let err = transcript(&json!([{"transcriptionParts": []}])).unwrap_err();
        assert!(err.contains("errorCode none"), "{err}");
    }
}
