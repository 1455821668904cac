//! The fake Google over real HTTP: the JWT-bearer token exchange and `values.get` with
//! percent-encoded Cyrillic sheet names.

use super::*;
use crate::scenario::{
    CHECKLIST_SHEET, INSTRUCTIONS_SHEET, sample_checklist_rows, sample_instructions_rows,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode as Status;

const SHEET_ID: &str = "1AbCdEfGhIjKlMnOpQrStUvWxYz";

async fn start() -> FakeGoogle {
    FakeGoogle::start(GoogleConfig {
        spreadsheet_id: SHEET_ID.into(),
        sheets: vec![
            (CHECKLIST_SHEET.into(), sample_checklist_rows()),
            (INSTRUCTIONS_SHEET.into(), sample_instructions_rows()),
        ],
        latency: Duration::ZERO,
    })
    .await
}

/// A JWT with the claims yup-oauth2 sends; the signature is not checked by the fake.
fn jwt(aud: &str, iss: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": iss, "aud": aud, "iat": now, "exp": now + 3595,
               "scope": "https://www.googleapis.com/auth/spreadsheets.readonly"})
        .to_string(),
    );
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

async fn get_token(g: &FakeGoogle, http: &reqwest::Client, assertion: &str) -> reqwest::Response {
    let body = format!(
        "grant_type={}&assertion={}",
        utf8_percent_encode(JWT_BEARER, NON_ALPHANUMERIC),
        assertion
    );
    http.post(g.token_uri())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn token_exchange_checks_the_assertion() {
    let g = start().await;
    let http = crate::test_http();
    let key: Value = serde_json::from_str(&g.service_account_key_json()).unwrap();
    assert_eq!(key["type"], json!("service_account"));
    assert_eq!(key["token_uri"], json!(format!("{}/token", g.base_url())));
    let pem = key["private_key"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));

    let good = get_token(&g, &http, &jwt(&g.token_uri(), CLIENT_EMAIL)).await;
    assert_eq!(good.status(), Status::OK);
    let body: Value = good.json().await.unwrap();
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with("ya29.fake-")
    );
    assert_eq!(
        (body["expires_in"].clone(), body["token_type"].clone()),
        (json!(3599), json!("Bearer"))
    );
    assert_eq!(
        g.granted_scopes(),
        ["https://www.googleapis.com/auth/spreadsheets.readonly"]
    );

    let wrong_aud = get_token(
        &g,
        &http,
        &jwt("https://oauth2.googleapis.com/token", CLIENT_EMAIL),
    )
    .await;
    assert_eq!(wrong_aud.status(), Status::BAD_REQUEST);
    let body: Value = wrong_aud.json().await.unwrap();
    assert_eq!(body["error"], json!("invalid_grant"));
    let two_parts = get_token(&g, &http, "abc.def").await;
    assert_eq!(two_parts.status(), Status::BAD_REQUEST);
    let wrong_grant = http
        .post(g.token_uri())
        .form(&[("grant_type", "client_credentials"), ("assertion", "a.b.c")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), Status::BAD_REQUEST);
    assert_eq!(g.token_requests(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn values_decode_cyrillic_ranges_and_trim_like_google() {
    let g = start().await;
    let http = crate::test_http();
    let token: Value = get_token(&g, &http, &jwt(&g.token_uri(), CLIENT_EMAIL))
        .await
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let get = |range: String| {
        let url = format!(
            "{}/v4/spreadsheets/{SHEET_ID}/values/{range}?alt=json&majorDimension=ROWS",
            g.base_url()
        );
        http.get(url).bearer_auth(&token).send()
    };
    // What google-sheets4 sends: Cyrillic and spaces percent-encoded, `!` and `:` not.
    let encoded = format!(
        "{}!A:D",
        utf8_percent_encode(CHECKLIST_SHEET, NON_ALPHANUMERIC)
    );
    assert!(encoded.contains("%20"));
    let resp = get(encoded).await.unwrap();
    assert_eq!(resp.status(), Status::OK);
    let body: Value = resp.json().await.unwrap();
    let rows = sample_checklist_rows();
    assert_eq!(
        body["range"],
        json!(format!("'{CHECKLIST_SHEET}'!A1:D{}", rows.len()))
    );
    assert_eq!(body["majorDimension"], json!("ROWS"));
    assert_eq!(body["values"], json!(rows));

    // Quoted names and a narrower range: A:B drops columns C and D.
    let quoted =
        utf8_percent_encode(&format!("'{INSTRUCTIONS_SHEET}'!A:B"), NON_ALPHANUMERIC).to_string();
    let body: Value = get(quoted).await.unwrap().json().await.unwrap();
    assert_eq!(body["values"], json!(sample_instructions_rows()));
    let narrow = format!(
        "{}!A:A",
        utf8_percent_encode(CHECKLIST_SHEET, NON_ALPHANUMERIC)
    );
    let body: Value = get(narrow).await.unwrap().json().await.unwrap();
    let values = body["values"].as_array().unwrap();
    assert_eq!(values[0], json!(["Показатель"]));
    // The last row has only column D, so in A:A it is a trailing empty row: left out.
    assert_eq!(values.len(), rows.len() - 1);
    assert_eq!(values.last().unwrap(), &json!(["Черновик"]));
    assert!(
        values.contains(&json!([])),
        "the row ending the checklist stays"
    );

    let unknown = get("%D0%9D%D0%B5%D1%82!A:D".into()).await.unwrap();
    assert_eq!(unknown.status(), Status::BAD_REQUEST);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["status"], json!("INVALID_ARGUMENT"));
    assert_eq!(
        body["error"]["message"],
        json!("Unable to parse range: Нет!A:D")
    );

    let other_sheet = http
        .get(format!("{}/v4/spreadsheets/nope/values/A:D", g.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_sheet.status(), Status::NOT_FOUND);
    let body: Value = other_sheet.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!(404));

    let anonymous = http
        .get(format!(
            "{}/v4/spreadsheets/{SHEET_ID}/values/A:D",
            g.base_url()
        ))
        .bearer_auth("ya29.forged")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), Status::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["status"], json!("UNAUTHENTICATED"));
    assert_eq!(g.values_requests(), 6);
}
