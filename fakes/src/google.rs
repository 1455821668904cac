//! Fake Google: the OAuth token endpoint of a service-account key and
//! the Sheets v4 `values.get` method, with Google's error shapes.

mod a1;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::server::{Counter, LatencyKnob, Running, bearer, random_hex};

/// The private key of the service account the fake hands out. Generated once with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`: the real client
/// (yup-oauth2) signs its JWT with it, so it has to be a real key. It guards nothing.
const PRIVATE_KEY_PEM: &str = include_str!("test_service_account_key.pem");
const CLIENT_EMAIL: &str = "callq-tests@callq-fake.iam.gserviceaccount.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// JWT segments are base64url; yup-oauth2 pads them, other signers do not.
const JWT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One spreadsheet with named sheets.
#[derive(Clone, Debug, Default)]
pub struct GoogleConfig {
    pub spreadsheet_id: String,
    /// (sheet name, rows); names are Cyrillic with spaces in callq's tests.
    pub sheets: Vec<(String, Vec<Vec<String>>)>,
    /// Applied to token and values requests.
    pub latency: Duration,
}

/// A running fake Google. Dropping it stops the server.
pub struct FakeGoogle {
    running: Running,
    state: Arc<Google>,
}

impl FakeGoogle {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(config: GoogleConfig) -> Self {
        let state = Arc::new(Google {
            spreadsheet_id: config.spreadsheet_id,
            sheets: config.sheets,
            latency: LatencyKnob::new(config.latency),
            token_uri: Mutex::new(String::new()),
            issued: Mutex::new(HashSet::new()),
            scopes: Mutex::new(Vec::new()),
            token_requests: Counter::default(),
            values_requests: Counter::default(),
        });
        let router = Router::new()
            .route("/token", post(token))
            .route("/v4/spreadsheets/{id}/values/{*range}", get(values))
            .with_state(Arc::clone(&state));
        let running = Running::start(router).await;
        *state.token_uri.lock() = format!("{}/token", running.origin());
        FakeGoogle { running, state }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the `GOOGLE_SHEETS_BASE_URL` for callq.
    pub fn base_url(&self) -> String {
        self.running.origin()
    }

    /// `<base>/token`, the key's `token_uri`.
    pub fn token_uri(&self) -> String {
        self.state.token_uri.lock().clone()
    }

    /// A service-account key (the JSON Google Cloud Console downloads) whose
    /// `token_uri` points at this fake and whose `private_key` is a real RSA key.
    pub fn service_account_key_json(&self) -> String {
        let base = self.base_url();
        let key = json!({
            "type": "service_account",
            "project_id": "callq-fake",
            "private_key_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
            "private_key": PRIVATE_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": "104729000000000000001",
            "auth_uri": format!("{base}/o/oauth2/auth"),
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": format!("{base}/oauth2/v1/certs"),
            "client_x509_cert_url": format!("{base}/robot/v1/metadata/x509/callq-tests"),
            "universe_domain": "googleapis.com",
        });
        serde_json::to_string_pretty(&key).expect("a JSON value serializes")
    }

    /// Requests to `/token`, including refused ones.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.get()
    }

    /// Requests to the values API, including refused ones.
    pub fn values_requests(&self) -> usize {
        self.state.values_requests.get()
    }

    /// The `scope` claims of the JWTs that were granted a token, in order.
    pub fn granted_scopes(&self) -> Vec<String> {
        self.state.scopes.lock().clone()
    }

    /// Changes the latency for the rest of the run.
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency.set(latency);
    }
}

/// Shared state of the handlers.
struct Google {
    spreadsheet_id: String,
    sheets: Vec<(String, Vec<Vec<String>>)>,
    latency: LatencyKnob,
    /// Known only once the port is bound; the JWT's `aud` must equal it.
    token_uri: Mutex<String>,
    issued: Mutex<HashSet<String>>,
    scopes: Mutex<Vec<String>>,
    token_requests: Counter,
    values_requests: Counter,
}

/// Google's API error shape: `{"error":{"code","message","status"}}`.
fn api_error(status: StatusCode, message: &str, google_status: &str) -> Response {
    let body =
        json!({"error": {"code": status.as_u16(), "message": message, "status": google_status}});
    (status, Json(body)).into_response()
}

/// The OAuth endpoint's error shape: `{"error","error_description"}`.
fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// `POST /token`: exchanges a JWT-bearer assertion for an access token.
///
/// The signature is not verified (that would need an RSA implementation here); the
/// header and claims are, as Google would: RS256, `iss` = the key's `client_email`,
/// `aud` = `token_uri`, a non-empty `scope`, `exp` after `iat`.
async fn token(
    State(st): State<Arc<Google>>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    st.token_requests.bump();
    st.latency.wait().await;
    let Ok(Form(form)) = form else {
        return oauth_error("invalid_request", "Expected a form-encoded body");
    };
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != JWT_BEARER {
        return oauth_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
    let claims = match check_assertion(assertion, &st.token_uri.lock()) {
        Ok(claims) => claims,
        Err(why) => return oauth_error("invalid_grant", &why),
    };
    let access_token = format!("ya29.fake-{}", random_hex(24));
    st.issued.lock().insert(access_token.clone());
    st.scopes
        .lock()
        .push(claims["scope"].as_str().unwrap_or("").to_string());
    Json(json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

/// Decodes the JWT and checks what Google checks apart from the signature.
fn check_assertion(assertion: &str, token_uri: &str) -> Result<Value, String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe".into(),
        );
    };
    let decode = |segment: &str, what: &str| -> Result<Value, String> {
        let bytes = JWT_BASE64
            .decode(segment)
            .map_err(|_| format!("Invalid JWT: {what} is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| format!("Invalid JWT: {what} is not JSON"))
    };
    let header = decode(header, "header")?;
    if header["alg"] != "RS256" {
        return Err(format!("Invalid JWT: unsupported alg {}", header["alg"]));
    }
    if signature.is_empty() {
        return Err("Invalid JWT Signature.".into());
    }
    let claims = decode(claims, "claim set")?;
    if claims["iss"] != CLIENT_EMAIL {
        return Err(format!("Invalid issuer: {}", claims["iss"]));
    }
    if claims["aud"] != token_uri {
        return Err(format!("Invalid audience: {}", claims["aud"]));
    }
    if claims["scope"].as_str().is_none_or(|s| s.trim().is_empty()) {
        return Err("Invalid JWT: no scope".into());
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("Invalid JWT: iat and exp are required".into());
    };
    if exp <= iat {
        return Err(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe".into(),
        );
    }
    Ok(claims)
}

/// `GET /v4/spreadsheets/{id}/values/{range}`; axum has already percent-decoded the
/// range, query parameters (`alt`, `majorDimension`, …) are ignored.
async fn values(
    State(st): State<Arc<Google>>,
    headers: HeaderMap,
    Path((id, range)): Path<(String, String)>,
) -> Response {
    st.values_requests.bump();
    let authorized = bearer(&headers).is_some_and(|t| st.issued.lock().contains(t));
    if !authorized {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
            "UNAUTHENTICATED",
        );
    }
    st.latency.wait().await;
    if id != st.spreadsheet_id {
        return api_error(
            StatusCode::NOT_FOUND,
            "Requested entity was not found.",
            "NOT_FOUND",
        );
    }
    let is_sheet = |name: &str| st.sheets.iter().any(|(n, _)| n == name);
    let parsed = a1::parse(&range, is_sheet);
    let sheet = parsed.as_ref().and_then(|r| match &r.sheet {
        Some(name) => st.sheets.iter().find(|(n, _)| n == name),
        None => st.sheets.first(),
    });
    let (Some(parsed), Some((name, rows))) = (parsed, sheet) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            &format!("Unable to parse range: {range}"),
            "INVALID_ARGUMENT",
        );
    };
    let (echoed, values) = a1::select(name, rows, &parsed);
    let mut body = json!({"range": echoed, "majorDimension": "ROWS"});
    // Google leaves `values` out entirely when the range holds no data.
    if !values.is_empty() {
        body["values"] = json!(values);
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests;
