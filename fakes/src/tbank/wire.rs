//! The TQM JSON shapes: parsing the listing request and rendering the
//! listing items and transcripts. Pure functions, so the representation quirks are
//! unit-tested without a server.

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::FakeCall;

/// How TQM writes the listing filter's bounds: `2025-08-07 00:00:00`.
const FILTER_DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// How TQM writes an item's dates: local wall-clock time without an offset, with a
/// fraction of a second when there is one.
const ITEM_DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// The parts of a `callsessions` request body the fake acts on.
#[derive(Debug, PartialEq)]
pub(crate) struct ListingRequest {
    pub(crate) min: NaiveDateTime,
    pub(crate) max: NaiveDateTime,
    pub(crate) agent_ids: Vec<i64>,
    /// 1-based.
    pub(crate) page: usize,
    /// `paging.itemsPerPage` when positive; the server may still send fewer.
    pub(crate) items_per_page: Option<usize>,
}

/// Parses `{"filters":{"date":{"min","max"},"agent":[{"id"}]},"paging":{"page","itemsPerPage"}}`.
/// A missing date range, agent filter or page is a client bug, so it is a 400 (the
/// error text is the `Err`) rather than a silently widened search.
pub(crate) fn parse_listing_request(body: &Value) -> Result<ListingRequest, String> {
    let filters = body.get("filters").ok_or("missing `filters`")?;
    let date = filters.get("date").ok_or("missing `filters.date`")?;
    let bound = |name: &str| -> Result<NaiveDateTime, String> {
        let text = date
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing `filters.date.{name}`"))?;
        NaiveDateTime::parse_from_str(text, FILTER_DATE_FORMAT).map_err(|_| {
            format!("`filters.date.{name}` must look like 2025-08-07 00:00:00, got {text:?}")
        })
    };
    let (min, max) = (bound("min")?, bound("max")?);
    let agent_ids: Vec<i64> = filters
        .get("agent")
        .and_then(Value::as_array)
        .ok_or("missing `filters.agent`")?
        .iter()
        .filter_map(|a| a.get("id").and_then(lenient_i64))
        .collect();
    if agent_ids.is_empty() {
        return Err("`filters.agent` names no agent id".into());
    }
    let paging = body.get("paging").ok_or("missing `paging`")?;
    let page = paging
        .get("page")
        .and_then(lenient_i64)
        .filter(|p| *p >= 1)
        .ok_or("`paging.page` must be a number >= 1")?;
    let items_per_page = paging
        .get("itemsPerPage")
        .and_then(lenient_i64)
        .filter(|n| *n > 0);
    Ok(ListingRequest {
        min,
        max,
        agent_ids,
        page: usize::try_from(page).map_err(|_| "`paging.page` is too large")?,
        items_per_page: items_per_page.and_then(|n| usize::try_from(n).ok()),
    })
}

/// A number, or a string holding one: TQM is inconsistent and so we accept both.
pub(crate) fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One listing item for the call at `index` of the day's sorted listing.
///
/// The representation varies deterministically, because the contract says the real
/// server does so and the client must cope: every 3rd call (index 2, 5, …) has its
/// numbers as strings, every 5th (index 4, 9, …) says `id` instead of `segmentId`, and
/// every item carries fields the client does not know.
pub(crate) fn call_item(call: &FakeCall, index: usize) -> Value {
    let numbers_as_strings = index % 3 == 2;
    let id_key = if index % 5 == 4 { "id" } else { "segmentId" };
    let num = |n: i64| {
        if numbers_as_strings {
            json!(n.to_string())
        } else {
            json!(n)
        }
    };
    let end = call.start + chrono::Duration::seconds(call.duration_s);
    let mut item = Map::new();
    item.insert(id_key.into(), num(call.segment_id));
    item.insert(
        "startDate".into(),
        json!(call.start.format(ITEM_DATE_FORMAT).to_string()),
    );
    item.insert(
        "endDate".into(),
        json!(end.format(ITEM_DATE_FORMAT).to_string()),
    );
    item.insert("duration".into(), num(call.duration_s));
    item.insert("operatorUserId".into(), num(call.operator_id));
    item.insert("operatorUserLogin".into(), json!(call.operator_login));
    item.insert("operatorUserFullName".into(), json!(call.operator_name));
    item.insert("callDirection".into(), json!(call.direction));
    item.insert("clientPhoneNumber".into(), json!(call.phone));
    // Fields real items carry that callq does not use.
    item.insert("communicationType".into(), json!("call"));
    item.insert("hasTranscription".into(), json!(!call.phrases.is_empty()));
    item.insert("tags".into(), json!([]));
    item.insert("score".into(), Value::Null);
    item.insert(
        "dialogMetrics".into(),
        json!({"silencePercent": 12.5, "interruptions": index % 4}),
    );
    Value::Object(item)
}

/// The §1.4 transcript of `call`: operator phrases carry the operator's id as
/// `contactId`, client phrases 0; more than two phrases are split over two parts so the
/// client has to keep part order; no phrases means "not transcribed yet".
pub(crate) fn transcript_body(call: &FakeCall) -> Value {
    let phrases: Vec<Value> = call
        .phrases
        .iter()
        .enumerate()
        .map(|(i, (is_operator, text))| {
            let start_ms = 1200 + 2500 * i as u64;
            json!({
                "contactId": if *is_operator { call.operator_id } else { 0 },
                "phraseText": text,
                "startTimeInMs": start_ms,
                "endTimeInMs": start_ms + 2000,
                "emotion": null,
            })
        })
        .collect();
    let parts: Vec<Value> = if phrases.is_empty() {
        Vec::new()
    } else if phrases.len() > 2 {
        let (first, second) = phrases.split_at(phrases.len().div_ceil(2));
        vec![
            json!({"partNumber": 1, "phrases": first}),
            json!({"partNumber": 2, "phrases": second}),
        ]
    } else {
        vec![json!({"partNumber": 1, "phrases": phrases})]
    };
    json!({
        "firstOperatorId": call.operator_id,
        "transcriptionParts": parts,
        "segmentId": call.segment_id,
        "language": "ru",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: i64, phrases: usize) -> FakeCall {
        FakeCall {
            segment_id: id,
            start: NaiveDateTime::parse_from_str("2025-08-07 10:15:03", FILTER_DATE_FORMAT)
                .unwrap(),
            duration_s: 281,
            operator_id: 5512,
            operator_login: "ivanova.a".into(),
            operator_name: "Иванова Анна".into(),
            direction: "outbound".into(),
            phone: "79161234567".into(),
            phrases: (0..phrases)
                .map(|i| (i % 2 == 0, format!("фраза {i}")))
                .collect(),
        }
    }

    #[test]
    fn listing_request_is_parsed_leniently_but_requires_the_essentials() {
        let body = json!({
            "filters": {
                "date": {"min": "2025-08-07 00:00:00", "max": "2025-08-07 23:59:59"},
                "agent": [{"id": 4711, "type": "workGroup", "title": "x"}, {"id": "12"}],
                "isNGramSearch": false
            },
            "paging": {"page": 2, "itemsPerPage": 1000, "itemsCount": 0}
        });
        let req = parse_listing_request(&body).unwrap();
        assert_eq!(req.agent_ids, vec![4711, 12]);
        assert_eq!((req.page, req.items_per_page), (2, Some(1000)));
        assert_eq!(req.max.to_string(), "2025-08-07 23:59:59");

        let mut no_agent = body.clone();
        no_agent["filters"]["agent"] = json!([]);
        assert!(parse_listing_request(&no_agent).is_err());
        let mut iso_date = body.clone();
        iso_date["filters"]["date"]["min"] = json!("2025-08-07T00:00:00");
        assert!(parse_listing_request(&iso_date).is_err());
        let mut page0 = body;
        page0["paging"]["page"] = json!(0);
        assert!(parse_listing_request(&page0).is_err());
    }

    #[test]
    fn items_vary_their_representation_by_index() {
        let c = call(90817263, 0);
        let plain = call_item(&c, 0);
        assert_eq!(plain["segmentId"], json!(90817263));
        assert_eq!(plain["duration"], json!(281));
        assert_eq!(plain["endDate"], json!("2025-08-07T10:19:44"));
        let strings = call_item(&c, 2);
        assert_eq!(strings["segmentId"], json!("90817263"));
        assert_eq!(strings["operatorUserId"], json!("5512"));
        let renamed = call_item(&c, 4);
        assert!(renamed.get("segmentId").is_none());
        assert_eq!(renamed["id"], json!(90817263));
        let both = call_item(&c, 14);
        assert_eq!(both["id"], json!("90817263"));
    }

    #[test]
    fn transcripts_split_into_two_parts_beyond_two_phrases() {
        assert_eq!(
            transcript_body(&call(1, 0))["transcriptionParts"],
            json!([])
        );
        let two = transcript_body(&call(1, 2));
        assert_eq!(two["transcriptionParts"].as_array().unwrap().len(), 1);
        let five = transcript_body(&call(1, 5));
        let parts = five["transcriptionParts"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["phrases"].as_array().unwrap().len(), 3);
        assert_eq!(parts[1]["phrases"][0]["phraseText"], json!("фраза 3"));
        assert_eq!(parts[1]["phrases"][0]["contactId"], json!(0));
        assert_eq!(parts[0]["phrases"][0]["contactId"], json!(5512));
        assert_eq!(five["firstOperatorId"], json!(5512));
    }
}
