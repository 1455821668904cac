//! The Google Sheets source: a service-account token from the key's
//! `token_uri`, then `GET /v4/spreadsheets/{id}/values/{range}` through google-sheets4.
//!
//! Both the token endpoint and the Sheets base URL may be plain `http://` (the tests'
//! loopback fakes); production uses https with the system's root certificates.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use google_sheets4::Sheets;
use google_sheets4::common;
use google_sheets4::hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use google_sheets4::hyper_util::client::legacy::Client as HyperClient;
use google_sheets4::hyper_util::client::legacy::connect::HttpConnector;
use google_sheets4::hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::{
    CustomHyperClientBuilder, ServiceAccountAuthenticator, ServiceAccountKey, error::AuthErrorCode,
};

use super::SheetsSource;
use crate::retry::{RetryPolicy, Transient, parse_retry_after};
use crate::severity::{Severe, Severity};

/// Read-only access is all callq needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets.readonly";

/// Google's public endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://sheets.googleapis.com/";

/// One attempt (token + values request) gets this long before it counts as a network
/// failure and is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// What goes into the URL path as-is; everything else in a range (the quotes around a
/// sheet name, Cyrillic letters, spaces, `/`, `#`, `?`) is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'!')
    .remove(b':');

/// Where the service-account key came from, for messages (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    File(PathBuf),
    /// `JSON_AUTH` held the key's JSON text.
    Text,
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::File(path) => write!(f, "JSON_AUTH key file \"{}\"", path.display()),
            KeyOrigin::Text => f.write_str("JSON_AUTH text"),
        }
    }
}

/// Failures of the Google Sheets source. No variant carries the private key or a token.
#[derive(Debug, thiserror::Error)]
pub enum SheetsError {
    #[error(
        "JSON_AUTH is empty: set it to a service-account key file's path or the key's JSON text"
    )]
    KeyMissing,
    #[error("cannot read the JSON_AUTH key file \"{}\": {source}", path.display())]
    KeyUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin} is not a Google service-account key: {reason}")]
    KeyInvalid { origin: KeyOrigin, reason: String },
    #[error(
        "Google rejected the service account {client_email} (token endpoint {token_uri}): {message}"
    )]
    TokenRejected {
        client_email: String,
        token_uri: String,
        message: String,
    },
    #[error("could not get an access token from {token_uri}: {message}")]
    TokenUnavailable { token_uri: String, message: String },
    #[error(
        "spreadsheet {spreadsheet_id} has no sheet named \"{sheet}\" (Google: {message}); \
         check {setting}"
    )]
    SheetNotFound {
        spreadsheet_id: String,
        sheet: String,
        setting: &'static str,
        message: String,
    },
    #[error(
        "spreadsheet {spreadsheet_id} was not found (HTTP 404: {message}); check REQUIREMENTS_SHEET_ID"
    )]
    SpreadsheetNotFound {
        spreadsheet_id: String,
        message: String,
    },
    #[error(
        "the service account {client_email} may not read spreadsheet {spreadsheet_id} \
         (HTTP 403: {message}); share the spreadsheet with that address"
    )]
    AccessDenied {
        spreadsheet_id: String,
        client_email: String,
        message: String,
    },
    #[error("Google Sheets answered HTTP {status} for {range}: {message}")]
    Http {
        range: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("Google Sheets request for {range} failed: {message}")]
    Network { range: String, message: String },
    #[error("Google Sheets sent an unreadable answer for {range}: {message}")]
    BadResponse { range: String, message: String },
    #[error(
        "no root certificates found on this system for https ({message}); install the CA \
         certificates package"
    )]
    NoRootCertificates { message: String },
}

/// `Input` when a person must fix something (the key, the sheet's id or name, sharing)
/// before a run can succeed; `Unavailable` for trouble that may pass (network, Google's 5xx).
impl Severe for SheetsError {
    fn severity(&self) -> Severity {
        match self {
            SheetsError::KeyMissing
            | SheetsError::KeyUnreadable { .. }
            | SheetsError::KeyInvalid { .. }
            | SheetsError::TokenRejected { .. }
            | SheetsError::SheetNotFound { .. }
            | SheetsError::SpreadsheetNotFound { .. }
            | SheetsError::AccessDenied { .. } => Severity::Input,
            SheetsError::Http { status, .. } if is_client_error(*status) => Severity::Input,
            SheetsError::Http { .. }
            | SheetsError::TokenUnavailable { .. }
            | SheetsError::Network { .. }
            | SheetsError::BadResponse { .. }
            | SheetsError::NoRootCertificates { .. } => Severity::Unavailable,
        }
    }
}

fn is_client_error(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

impl Transient for SheetsError {
    fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            SheetsError::Network { .. } | SheetsError::TokenUnavailable { .. } => Some(None),
            SheetsError::Http {
                status,
                retry_after,
                ..
            } if *status == 408 || *status == 429 || *status >= 500 => Some(*retry_after),
            _ => None,
        }
    }
}

/// The service-account key named by `JSON_AUTH`: its JSON text when the value starts with
/// `{`, else the path of a key file.
pub fn read_key(json_auth: &str) -> Result<(ServiceAccountKey, KeyOrigin), SheetsError> {
    let trimmed = json_auth.trim();
    if trimmed.is_empty() {
        return Err(SheetsError::KeyMissing);
    }
    let (text, origin) = if trimmed.starts_with('{') {
        (trimmed.to_string(), KeyOrigin::Text)
    } else {
        let path = PathBuf::from(trimmed);
        match std::fs::read_to_string(&path) {
            Ok(text) => (text, KeyOrigin::File(path)),
            Err(source) => return Err(SheetsError::KeyUnreadable { path, source }),
        }
    };
    // serde_json's messages name the field and position, never a string's content.
    let key: ServiceAccountKey =
        serde_json::from_str(&text).map_err(|e| SheetsError::KeyInvalid {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
    crate::redact::register(&key.private_key);
    match url::Url::parse(&key.token_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            return Err(SheetsError::KeyInvalid {
                origin,
                reason: format!("token_uri \"{}\" is not an http(s) URL", key.token_uri),
            });
        }
    }
    Ok((key, origin))
}

/// `https://sheets.googleapis.com` or `…/` alike: google-sheets4 appends `v4/…` to it.
pub fn normalize_base_url(base_url: &str) -> String {
    let trimmed = base_url.trim();
    if trimmed.is_empty() {
        return DEFAULT_BASE_URL.to_string();
    }
    format!("{}/", trimmed.trim_end_matches('/'))
}

/// A1 range of whole columns in one sheet, e.g. `'Чек-лист продаж'!A:D`. The name is
/// always quoted (Google accepts quotes around any name and needs them around names with
/// spaces); a quote inside the name is doubled, as A1 notation wants.
pub fn a1_range(sheet: &str, columns: &str) -> String {
    format!("'{}'!{columns}", sheet.replace('\'', "''"))
}

type Connector = HttpsConnector<HttpConnector>;

/// The authenticator, registering every access token it hands out with `redact` before
/// the token goes into a request (and so into any error that may quote the request).
#[derive(Clone)]
struct MaskedTokens(Authenticator<Connector>);

impl common::GetToken for MaskedTokens {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&str],
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Option<String>, Box<dyn StdError + Send + Sync>>,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            let token = self.0.get_token(scopes).await?;
            if let Some(t) = &token {
                crate::redact::register(t);
            }
            Ok(token)
        })
    }
}

/// A connected reader of one spreadsheet's values.
pub struct SheetsClient {
    hub: Sheets<Connector>,
    spreadsheet_id: String,
    client_email: String,
    token_uri: String,
    retry: RetryPolicy,
}

impl SheetsClient {
    /// Reads the key and prepares the token flow; no request is made yet.
    pub async fn connect(source: &SheetsSource) -> Result<SheetsClient, SheetsError> {
        let (key, origin) = read_key(&source.json_auth)?;
        let base_url = normalize_base_url(&source.base_url);
        let client_email = key.client_email.clone();
        let token_uri = key.token_uri.clone();

        let connector = connector(&[&base_url, &token_uri])?;
        // yup-oauth2's own default client would do, but building it ourselves keeps one
        // connector (one root store, http allowed) for both the token and the values.
        let token_client = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build::<_, String>(connector.clone());
        let auth: Authenticator<Connector> = ServiceAccountAuthenticator::with_client(
            key,
            CustomHyperClientBuilder::from(token_client),
        )
        .build()
        .await
        .map_err(|e| SheetsError::KeyInvalid {
            origin,
            reason: format!("its private_key cannot be used: {e}"),
        })?;
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        let mut hub = Sheets::new(http, MaskedTokens(auth));
        hub.base_url(base_url.clone());
        hub.root_url(base_url);
        Ok(SheetsClient {
            hub,
            spreadsheet_id: source.sheet_id.trim().to_string(),
            client_email,
            token_uri,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the default retry policy (tests use a fast one).
    pub fn with_retry(mut self, retry: RetryPolicy) -> SheetsClient {
        self.retry = retry;
        self
    }

    /// The cells of `columns` (e.g. `A:D`) in `sheet`, row by row, as the API formats
    /// them. `setting` names the variable that configured the sheet, for messages.
    /// Network trouble, 429 and 5xx are retried per the retry policy.
    pub async fn values(
        &self,
        sheet: &str,
        columns: &str,
        setting: &'static str,
    ) -> Result<Vec<Vec<String>>, SheetsError> {
        let range = a1_range(sheet, columns);
        let what = format!("Google Sheets {range}");
        self.retry
            .run(&what, || self.values_once(sheet, &range, setting))
            .await
    }

    async fn values_once(
        &self,
        sheet: &str,
        range: &str,
        setting: &'static str,
    ) -> Result<Vec<Vec<String>>, SheetsError> {
        // google-sheets4 puts the range into the path without encoding it.
        let encoded_range = utf8_percent_encode(range, PATH_SEGMENT).to_string();
        let encoded_id = utf8_percent_encode(&self.spreadsheet_id, PATH_SEGMENT).to_string();
        let mut failure = FailureCapture::default();
        let call = self
            .hub
            .spreadsheets()
            .values_get(&encoded_id, &encoded_range)
            .major_dimension("ROWS")
            .add_scope(SCOPE)
            .delegate(&mut failure)
            .doit();
        let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, call).await {
            Ok(result) => result,
            Err(_) => {
                return Err(SheetsError::Network {
                    range: range.to_string(),
                    message: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                });
            }
        };
        match result {
            Ok((_, value_range)) => Ok(value_range
                .values
                .unwrap_or_default()
                .into_iter()
                .map(|row| row.into_iter().map(cell_text).collect())
                .collect()),
            Err(e) => Err(self.classify(e, &failure, sheet, range, setting)),
        }
    }

    fn classify(
        &self,
        error: common::Error,
        failure: &FailureCapture,
        sheet: &str,
        range: &str,
        setting: &'static str,
    ) -> SheetsError {
        let (status, message) = match error {
            common::Error::MissingToken(e) => return self.token_error(&*e),
            common::Error::HttpError(e) => {
                return SheetsError::Network {
                    range: range.to_string(),
                    message: error_chain(&e),
                };
            }
            common::Error::Io(e) => {
                return SheetsError::Network {
                    range: range.to_string(),
                    message: error_chain(&e),
                };
            }
            common::Error::JsonDecodeError(_, e) => {
                return SheetsError::BadResponse {
                    range: range.to_string(),
                    message: e.to_string(),
                };
            }
            common::Error::BadRequest(body) => {
                let code = body
                    .pointer("/error/code")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok());
                let message = body
                    .pointer("/error/message")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| truncate(&body.to_string()));
                (failure.status.or(code).unwrap_or(400), message)
            }
            common::Error::Failure(response) => {
                let status = response.status().as_u16();
                (status, "the answer carried no JSON error body".to_string())
            }
            other => {
                return SheetsError::BadResponse {
                    range: range.to_string(),
                    message: other.to_string().trim().to_string(),
                };
            }
        };
        match status {
            400 if message.contains("Unable to parse range") => SheetsError::SheetNotFound {
                spreadsheet_id: self.spreadsheet_id.clone(),
                sheet: sheet.to_string(),
                setting,
                message,
            },
            404 => SheetsError::SpreadsheetNotFound {
                spreadsheet_id: self.spreadsheet_id.clone(),
                message,
            },
            // "Google Sheets API has not been used in project … or it is disabled" is a
            // 403 too, but sharing the spreadsheet would not help; Google's text says what
            // to do.
            403 if !message.contains("API has not been used") && !message.contains("disabled") => {
                SheetsError::AccessDenied {
                    spreadsheet_id: self.spreadsheet_id.clone(),
                    client_email: self.client_email.clone(),
                    message,
                }
            }
            status => SheetsError::Http {
                range: range.to_string(),
                status,
                message,
                retry_after: failure.retry_after,
            },
        }
    }

    fn token_error(&self, error: &(dyn StdError + Send + Sync + 'static)) -> SheetsError {
        if let Some(yup_oauth2::Error::AuthError(auth)) = error.downcast_ref::<yup_oauth2::Error>()
            && !matches!(auth.error, AuthErrorCode::Other(_))
        {
            // A standard OAuth error code: the key is revoked, disabled or not allowed.
            return SheetsError::TokenRejected {
                client_email: self.client_email.clone(),
                token_uri: self.token_uri.clone(),
                message: auth.to_string(),
            };
        }
        SheetsError::TokenUnavailable {
            token_uri: self.token_uri.clone(),
            message: error_chain(error),
        }
    }
}

/// Keeps what google-sheets4 forgets when it turns a failed response into an error: the
/// status code and `Retry-After`.
#[derive(Default)]
struct FailureCapture {
    status: Option<u16>,
    retry_after: Option<Duration>,
}

impl common::Delegate for FailureCapture {
    fn http_failure(
        &mut self,
        response: &common::Response,
        _body: Option<&serde_json::Value>,
    ) -> common::Retry {
        self.status = Some(response.status().as_u16());
        self.retry_after = parse_retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        // Retrying is the shared policy's job, not google-sheets4's.
        common::Retry::Abort
    }
}

/// One connector for https (system roots) and plain http. Without system roots https
/// cannot work, which only matters when some URL actually is https.
fn connector(urls: &[&str]) -> Result<Connector, SheetsError> {
    let builder = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(e) if urls.iter().all(|u| u.starts_with("http://")) => {
            tracing::debug!("no system root certificates ({e}); only plain http is used");
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
        Err(e) => {
            return Err(SheetsError::NoRootCertificates {
                message: e.to_string(),
            });
        }
    };
    Ok(builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

/// A cell as text. FORMATTED_VALUE (the default) gives strings; numbers and booleans are
/// accepted in case a proxy or a render option sends them raw.
fn cell_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => crate::text::clean_string(s),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(b) => if b { "TRUE" } else { "FALSE" }.to_string(),
        other => other.to_string(),
    }
}

/// An error and its causes, `a: b: c`; hyper's top-level messages alone say too little.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

fn truncate(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_JSON: &str = r#"{
        "type": "service_account",
        "project_id": "callq-test",
        "private_key_id": "abc",
        "private_key": "-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n",
        "client_email": "callq@callq-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"
    }"#;

    #[test]
    fn key_from_text_or_file() {
        let (key, origin) = read_key(&format!("  {KEY_JSON}\n")).unwrap();
        assert_eq!(origin, KeyOrigin::Text);
        assert_eq!(key.client_email, "callq@callq-test.iam.gserviceaccount.com");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ключ сервиса.json");
        std::fs::write(&path, KEY_JSON).unwrap();
        let (key, origin) = read_key(path.to_str().unwrap()).unwrap();
        assert_eq!(origin, KeyOrigin::File(path));
        assert_eq!(key.token_uri, "https://oauth2.googleapis.com/token");
    }

    #[test]
    fn key_errors_name_the_source_but_not_the_key() {
        let err = read_key("/nonexistent/key.json").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the JSON_AUTH key file \"/nonexistent/key.json\""),
            "{err}"
        );
        assert_eq!(err.severity(), Severity::Input);

        let err =
            read_key(r#"{"private_key": "-----BEGIN SECRET", "client_email": 5"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("JSON_AUTH text is not a Google service-account key"),
            "{text}"
        );
        assert!(!text.contains("BEGIN SECRET"), "{text}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, r#"{"installed": {"client_id": "x"}}"#).unwrap();
        let err = read_key(path.to_str().unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("JSON_AUTH key file \""), "{text}");
        assert!(text.contains("missing field"), "{text}");

        let bad_uri = KEY_JSON.replace("https://oauth2.googleapis.com/token", "oauth2");
        let err = read_key(&bad_uri).unwrap_err();
        assert!(err.to_string().contains("token_uri \"oauth2\""), "{err}");

        assert!(matches!(read_key("  "), Err(SheetsError::KeyMissing)));
    }

    #[tokio::test]
    async fn unusable_private_key_is_an_input_error_without_the_key() {
        crate::tls::install_crypto_provider();
        let source = SheetsSource {
            json_auth: KEY_JSON.to_string(),
            sheet_id: "sheet".into(),
            checklist_sheet: "Чек-лист".into(),
            prompt_sheet: None,
            base_url: "http://127.0.0.1:9/".into(),
            retry: RetryPolicy::default(),
        };
        let err = SheetsClient::connect(&source).await.err().unwrap();
        assert_eq!(err.severity(), Severity::Input, "{err}");
        let text = err.to_string();
        assert!(text.starts_with("JSON_AUTH text is not a Google"), "{text}");
        assert!(!text.contains("not really"), "{text}");
    }

    #[test]
    fn base_url_gets_exactly_one_trailing_slash() {
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080//"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(normalize_base_url(""), DEFAULT_BASE_URL);
        assert_eq!(normalize_base_url(DEFAULT_BASE_URL), DEFAULT_BASE_URL);
    }

    #[test]
    fn ranges_quote_the_sheet_and_encode_for_the_path() {
        let range = a1_range("Чек-лист продаж", "A:D");
        assert_eq!(range, "'Чек-лист продаж'!A:D");
        assert_eq!(
            utf8_percent_encode(&range, PATH_SEGMENT).to_string(),
            "%27%D0%A7%D0%B5%D0%BA-%D0%BB%D0%B8%D1%81%D1%82%20%D0%BF%D1%80%D0%BE%D0%B4%D0%B0%D0%B6%27!A:D"
        );
        assert_eq!(a1_range("Bob's", "A:B"), "'Bob''s'!A:B");
        assert_eq!(
            utf8_percent_encode("a/b?c#d", PATH_SEGMENT).to_string(),
            "a%2Fb%3Fc%23d"
        );
    }

    #[test]
    fn transient_errors_are_retried_and_input_errors_are_not() {
        let http = |status| SheetsError::Http {
            range: "r".into(),
            status,
            message: "m".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(http(429).retry_hint(), Some(Some(Duration::from_secs(3))));
        assert!(http(503).retry_hint().is_some());
        assert_eq!(http(503).severity(), Severity::Unavailable);
        assert!(http(400).retry_hint().is_none());
        assert_eq!(http(400).severity(), Severity::Input);
        let net = SheetsError::Network {
            range: "r".into(),
            message: "refused".into(),
        };
        assert_eq!(net.retry_hint(), Some(None));
        assert_eq!(net.severity(), Severity::Unavailable);
    }

    #[test]
    fn cells_become_text() {
        assert_eq!(cell_text(serde_json::json!("2,5")), "2,5");
        assert_eq!(cell_text(serde_json::json!(10)), "10");
        assert_eq!(cell_text(serde_json::json!(2.5)), "2.5");
        assert_eq!(cell_text(serde_json::Value::Null), "");
        assert_eq!(cell_text(serde_json::json!(true)), "TRUE");
        assert_eq!(cell_text(serde_json::json!("При\0ветствие")), "Приветствие");
    }
}
