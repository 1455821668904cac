//! The fake TQM over real HTTP: login and tokens, group search, paging, transcripts and
//! the fault schedule.

use super::*;
use crate::scenario::sample_calls;
use chrono::NaiveDate;
use reqwest::StatusCode as Status;

const DAY: &str = "2025-08-07";

fn day() -> NaiveDate {
    NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap()
}

/// A client session as callq would hold it.
struct Session {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Session {
    async fn login(base: &str) -> Session {
        let http = crate::test_http();
        let resp = http
            .post(format!("{base}/v2/bff-core-app/auth/session-start"))
            .json(&json!({"login": "operator-bot", "password": "secret",
                          "authentificationType": "tqm", "authSystem": "tqm"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), Status::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["userLogin"], json!("operator-bot"));
        assert!(body["refreshToken"].is_string() && body["accessTokenExpiredDate"].is_string());
        Session {
            http,
            base: base.to_string(),
            token: body["accessToken"].as_str().unwrap().to_string(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Origin", &self.base)
            .header(
                "Referer",
                format!("{}/v2/transcription/segment/", self.base),
            )
            .header("X-TQM-Version", "26551fa4")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, group: i64, page: i64) -> reqwest::Response {
        let body = json!({
            "filters": {
                "date": {"min": format!("{DAY} 00:00:00"), "max": format!("{DAY} 23:59:59")},
                "agent": [{"id": group, "type": "workGroup", "title": "Торговые представители"}],
                "isNGramSearch": false
            },
            "paging": {"page": page, "itemsPerPage": 1000, "itemsCount": 0}
        });
        self.post("/v2/bff-communication-search/callsessions", body)
            .await
    }

    async fn transcript(&self, segment: i64) -> reqwest::Response {
        self.post(
            "/v2/bff-core-app/transcription/segment?token=",
            json!({"segmentId": segment}),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_is_checked_and_requests_need_its_token() {
    let tb = FakeTbank::start(TbankConfig::default()).await;
    let base = tb.base_url();
    let http = crate::test_http();
    let search = format!(
        "{base}/v2/bff-core-app/organizational-structures/autocomplete-search?term=x&type=&parentFolderId="
    );
    assert_eq!(
        http.get(&search).send().await.unwrap().status(),
        Status::UNAUTHORIZED
    );
    let wrong = http
        .post(format!("{base}/rest/auth/session-start"))
        .json(&json!({"login": "operator-bot", "password": "nope",
                      "authentificationType": "tqm", "authSystem": "tqm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), Status::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert!(!body.to_string().contains("nope"));
    let session = Session::login(&base).await;
    assert_eq!(session.page(4711, 1).await.status(), Status::OK);
    assert!(tb.last_headers_ok());
    let bare = http
        .get(&search)
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), Status::OK);
    assert!(!tb.last_headers_ok());
    tb.expire_token_now();
    assert_eq!(session.page(4711, 1).await.status(), Status::UNAUTHORIZED);
    assert_eq!((tb.logins(), tb.unauthorized()), (2, 3));
    assert_eq!(tb.listing_requests(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn group_search_matches_substrings_case_insensitively() {
    let tb = FakeTbank::start(TbankConfig {
        groups: vec![
            (4711, "Торговые представители".into()),
            (4712, "Торговые представители 2".into()),
            (9, "Поддержка".into()),
        ],
        ..TbankConfig::default()
    })
    .await;
    let s = Session::login(&tb.base_url()).await;
    let found: Value = s
        .http
        .get(format!(
            "{}/v2/bff-core-app/organizational-structures/autocomplete-search",
            s.base
        ))
        .query(&[("term", "торговые"), ("type", ""), ("parentFolderId", "")])
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Торговые представители", "Торговые представители 2"]
    );
    assert_eq!(found[0]["type"], json!("workGroup"));
    assert_eq!(found[0]["externalId"], Value::Null);
    assert_eq!(tb.group_searches(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_through_the_day_in_start_order() {
    let mut calls = sample_calls(day(), 8);
    calls.reverse();
    let mut next_day = sample_calls(day().succ_opt().unwrap(), 1);
    next_day[0].segment_id = 1;
    calls.extend(next_day);
    let tb = FakeTbank::start(TbankConfig {
        calls,
        page_size: 3,
        faults: TbankFaults {
            broken_items_on_first_page: vec![json!({"segmentId": "not a number"})],
            ..TbankFaults::default()
        },
        ..TbankConfig::default()
    })
    .await;
    let s = Session::login(&tb.base_url()).await;
    let mut ids = Vec::new();
    let mut page = 1;
    loop {
        let body: Value = s.page(4711, page).await.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        let broken = usize::from(page == 1);
        assert_eq!(items.len(), if page < 3 { 3 + broken } else { 2 });
        for item in &items[..items.len() - broken] {
            let id = item.get("segmentId").or_else(|| item.get("id")).unwrap();
            ids.push(wire::lenient_i64(id).unwrap());
        }
        match body["nextPage"].as_i64() {
            Some(next) => page = next,
            None => break,
        }
    }
    assert_eq!(ids, (90_000_000..90_000_008).collect::<Vec<_>>());
    assert_eq!(tb.listing_requests(), 3);
    let other_group: Value = s.page(4712, 1).await.json().await.unwrap();
    assert_eq!(other_group["items"].as_array().unwrap().len(), 1);
    assert_eq!(other_group["nextPage"], Value::Null);
    let bad = s
        .post(
            "/v2/bff-communication-search/callsessions",
            json!({"paging": {"page": 1}}),
        )
        .await;
    assert_eq!(bad.status(), Status::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn transcripts_follow_the_fault_schedule() {
    let mut calls = sample_calls(day(), 2);
    calls[1].phrases.clear();
    let tb = FakeTbank::start(TbankConfig {
        calls,
        faults: TbankFaults {
            burst_500: 2,
            burst_429: 1,
            ..TbankFaults::default()
        },
        ..TbankConfig::default()
    })
    .await;
    let s = Session::login(&tb.base_url()).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = s.transcript(90_000_000).await;
        if resp.status() == Status::TOO_MANY_REQUESTS {
            assert_eq!(resp.headers()["retry-after"], "0");
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 429, 200]);
    let body: Value = s.transcript(90_000_000).await.json().await.unwrap();
    assert_eq!(body["firstOperatorId"], json!(5512));
    assert_eq!(body["transcriptionParts"].as_array().unwrap().len(), 2);
    let empty: Value = s.transcript(90_000_001).await.json().await.unwrap();
    assert_eq!(empty["transcriptionParts"], json!([]));
    assert_eq!(s.transcript(42).await.status(), Status::NOT_FOUND);
    assert_eq!(tb.transcript_requests_for(90_000_000), 5);
    assert_eq!(tb.transcript_requests(), 7);
    assert_eq!((tb.served_500(), tb.served_429()), (2, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_expires_once_after_the_configured_requests() {
    let tb = FakeTbank::start(TbankConfig {
        calls: sample_calls(day(), 1),
        faults: TbankFaults {
            expire_token_after: Some(2),
            ..TbankFaults::default()
        },
        ..TbankConfig::default()
    })
    .await;
    let s = Session::login(&tb.base_url()).await;
    assert_eq!(s.transcript(90_000_000).await.status(), Status::OK);
    assert_eq!(s.transcript(90_000_000).await.status(), Status::OK);
    assert_eq!(
        s.transcript(90_000_000).await.status(),
        Status::UNAUTHORIZED
    );
    assert_eq!(
        s.transcript(90_000_000).await.status(),
        Status::UNAUTHORIZED
    );
    let again = Session::login(&tb.base_url()).await;
    for _ in 0..5 {
        assert_eq!(again.transcript(90_000_000).await.status(), Status::OK);
    }
    assert_eq!((tb.logins(), tb.unauthorized()), (2, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn random_errors_are_reproducible_per_seed() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let tb = FakeTbank::start(TbankConfig {
            calls: sample_calls(day(), 1),
            faults: TbankFaults {
                error_rate: 0.5,
                ..TbankFaults::default()
            },
            seed,
            ..TbankConfig::default()
        })
        .await;
        let s = Session::login(&tb.base_url()).await;
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(s.transcript(90_000_000).await.status().as_u16());
        }
        assert_eq!(tb.served_500(), out.iter().filter(|s| **s == 500).count());
        out
    }
    let a = pattern(3).await;
    assert_eq!(a, pattern(3).await);
    assert!(a.contains(&500) && a.contains(&200));
}
