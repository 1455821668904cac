//! The Google Sheets checklist source end to end: the real yup-oauth2 + google-sheets4
//! client against the fake Google (token endpoint + values API) over loopback http.

use std::time::Duration;

use callq::checklist::{self, ChecklistError, SheetsError, SheetsSource, Source};
use callq::retry::RetryPolicy;
use callq::severity::{Severe, Severity};
use callq_fakes::scenario::{
    CHECKLIST_SHEET, INSTRUCTIONS_SHEET, sample_checklist_criteria, sample_checklist_rows,
    sample_instructions, sample_instructions_rows,
};
use callq_fakes::{FakeGoogle, GoogleConfig};

const SPREADSHEET_ID: &str = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abc";

async fn fake_google(extra: Vec<(String, Vec<Vec<String>>)>) -> FakeGoogle {
    callq::tls::install_crypto_provider();
    let mut sheets = vec![
        (CHECKLIST_SHEET.to_string(), sample_checklist_rows()),
        (INSTRUCTIONS_SHEET.to_string(), sample_instructions_rows()),
    ];
    sheets.extend(extra);
    FakeGoogle::start(GoogleConfig {
        spreadsheet_id: SPREADSHEET_ID.into(),
        sheets,
        latency: Duration::from_millis(5),
    })
    .await
}

fn source(google: &FakeGoogle, json_auth: String) -> SheetsSource {
    SheetsSource {
        json_auth,
        sheet_id: SPREADSHEET_ID.into(),
        checklist_sheet: CHECKLIST_SHEET.into(),
        prompt_sheet: Some(INSTRUCTIONS_SHEET.into()),
        base_url: google.base_url(),
        retry: RetryPolicy::default(),
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn loads_checklist_and_instructions_with_key_json_text() {
    let google = fake_google(vec![]).await;
    let src = source(&google, google.service_account_key_json());

    let checklist = checklist::load(&Source::Sheets(src)).await.unwrap();

    let got: Vec<(String, String, f64)> = checklist
        .criteria
        .iter()
        .map(|c| (c.category.clone(), c.indicator.clone(), c.max_score))
        .collect();
    assert_eq!(got, sample_checklist_criteria());
    assert_eq!(
        checklist.custom_instructions,
        sample_instructions().join("\n\n")
    );
    let greeting = &checklist.criteria[0];
    assert_eq!(
        greeting.comment,
        "Оператор поздоровался, представился и назвал компанию"
    );
    assert!(greeting.conditions.starts_with("10 — всё сказано"));

    assert_eq!(
        google.granted_scopes(),
        vec!["https://www.googleapis.com/auth/spreadsheets.readonly"],
        "one token, read-only scope, reused for both sheets"
    );
    assert_eq!(google.values_requests(), 2);
}

#[tokio::test]
async fn loads_with_key_file_path_and_base_url_with_trailing_slash() {
    let google = fake_google(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("сервисный аккаунт.json");
    std::fs::write(&key_path, google.service_account_key_json()).unwrap();
    let mut src = source(&google, key_path.to_str().unwrap().to_string());
    src.base_url = format!("{}/", google.base_url());
    src.prompt_sheet = None;

    let checklist = checklist::load(&Source::Sheets(src)).await.unwrap();

    assert_eq!(checklist.criteria.len(), sample_checklist_criteria().len());
    assert_eq!(checklist.custom_instructions, "");
    assert_eq!(google.values_requests(), 1);
}

#[tokio::test]
async fn unknown_sheet_is_an_input_error_naming_the_sheet() {
    let google = fake_google(vec![]).await;
    let mut src = source(&google, google.service_account_key_json());
    src.checklist_sheet = "Чек-лист отдел 2".into();

    let err = checklist::load_sheets(&src, fast_retry())
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            ChecklistError::Sheets(SheetsError::SheetNotFound { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.severity(), Severity::Input);
    let text = err.to_string();
    assert!(
        text.contains("no sheet named \"Чек-лист отдел 2\""),
        "{text}"
    );
    assert!(
        text.contains("REQUIREMENTS_SHEET_NAME_CHECK_LIST"),
        "{text}"
    );
    // Not retried: a wrong name does not fix itself.
    assert_eq!(google.values_requests(), 1);
}

#[tokio::test]
async fn unknown_prompt_sheet_names_its_own_setting() {
    let google = fake_google(vec![]).await;
    let mut src = source(&google, google.service_account_key_json());
    src.prompt_sheet = Some("Промпт".into());

    let err = checklist::load_sheets(&src, fast_retry())
        .await
        .unwrap_err();

    assert_eq!(err.severity(), Severity::Input);
    assert!(
        err.to_string()
            .contains("REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_spreadsheet_is_an_input_error() {
    let google = fake_google(vec![]).await;
    let mut src = source(&google, google.service_account_key_json());
    src.sheet_id = "no-such-spreadsheet".into();

    let err = checklist::load_sheets(&src, fast_retry())
        .await
        .unwrap_err();

    assert_eq!(err.severity(), Severity::Input);
    let text = err.to_string();
    assert!(
        text.contains("spreadsheet no-such-spreadsheet was not found"),
        "{text}"
    );
}

#[tokio::test]
async fn broken_layout_names_sheet_row_and_cell() {
    let broken = vec![
        vec!["Показатель".to_string()],
        vec!["Приветствие".to_string()],
        vec![
            "Назвал имя".to_string(),
            String::new(),
            "десять".to_string(),
        ],
    ];
    let google = fake_google(vec![("Сломанный лист".to_string(), broken)]).await;
    let mut src = source(&google, google.service_account_key_json());
    src.checklist_sheet = "Сломанный лист".into();

    let err = checklist::load_sheets(&src, fast_retry())
        .await
        .unwrap_err();

    assert_eq!(err.severity(), Severity::Input);
    assert!(
        err.to_string().contains(
            "sheet \"Сломанный лист\": row 3, cell C3: max score \"десять\" is not a number"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn key_of_another_service_account_is_rejected_without_leaking_it() {
    let google = fake_google(vec![]).await;
    let key = google
        .service_account_key_json()
        .replace("callq-tests@", "someone-else@");
    let src = source(&google, key);

    let err = checklist::load_sheets(&src, fast_retry())
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            ChecklistError::Sheets(SheetsError::TokenRejected { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.severity(), Severity::Input);
    let text = err.to_string();
    assert!(text.contains("someone-else@"), "{text}");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert_eq!(google.token_requests(), 1, "a rejected key is not retried");
}

#[tokio::test]
async fn unreachable_sheets_api_is_retried_then_reported_as_network_trouble() {
    let google = fake_google(vec![]).await;
    // A port that was free a moment ago: connections are refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut src = source(&google, google.service_account_key_json());
    src.base_url = format!("http://{closed}");

    let err = checklist::load_sheets(&src, fast_retry())
        .await
        .unwrap_err();

    assert!(
        matches!(err, ChecklistError::Sheets(SheetsError::Network { .. })),
        "{err:?}"
    );
    assert_eq!(err.severity(), Severity::Unavailable);
    assert!(err.to_string().contains(CHECKLIST_SHEET), "{err}");
}

/// A Sheets API stand-in that answers each request with the next canned response (the
/// last one repeats), for the error shapes the fake Google does not produce.
struct Canned {
    base_url: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Canned {
    async fn start(responses: Vec<(u16, &'static str, &'static str)>) -> Canned {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, extra_headers, body) = responses[n.min(responses.len() - 1)];
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra_headers}\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Canned {
            base_url,
            requests,
            _task: task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

const VALUES_OK: &str = r#"{"range": "x", "majorDimension": "ROWS", "values": [["Показатель"], ["Кат"], ["Крит", "", "2,5"]]}"#;

async fn load_via(
    canned: &Canned,
    google: &FakeGoogle,
    attempts: usize,
) -> Result<callq::domain::Checklist, ChecklistError> {
    let mut src = source(google, google.service_account_key_json());
    src.base_url = canned.base_url.clone();
    src.prompt_sheet = None;
    let retry = RetryPolicy {
        max_attempts: attempts,
        ..fast_retry()
    };
    checklist::load_sheets(&src, retry).await
}

#[tokio::test]
async fn spreadsheet_not_shared_says_whom_to_share_it_with() {
    let google = fake_google(vec![]).await;
    let canned = Canned::start(vec![(
        403,
        "",
        r#"{"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}}"#,
    )])
    .await;

    let err = load_via(&canned, &google, 3).await.unwrap_err();

    assert!(
        matches!(
            err,
            ChecklistError::Sheets(SheetsError::AccessDenied { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.severity(), Severity::Input);
    let text = err.to_string();
    assert!(
        text.contains("callq-tests@callq-fake.iam.gserviceaccount.com"),
        "{text}"
    );
    assert!(text.contains("share the spreadsheet"), "{text}");
    assert_eq!(canned.requests(), 1, "not retried");
}

#[tokio::test]
async fn disabled_sheets_api_passes_googles_advice_on() {
    let google = fake_google(vec![]).await;
    let canned = Canned::start(vec![(
        403,
        "",
        r#"{"error": {"code": 403, "message": "Google Sheets API has not been used in project 42 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/sheets.googleapis.com/overview?project=42", "status": "PERMISSION_DENIED"}}"#,
    )])
    .await;

    let err = load_via(&canned, &google, 3).await.unwrap_err();

    assert!(
        matches!(
            err,
            ChecklistError::Sheets(SheetsError::Http { status: 403, .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.severity(), Severity::Input);
    assert!(err.to_string().contains("Enable it by visiting"), "{err}");
}

#[tokio::test]
async fn overload_and_server_errors_are_retried_until_success() {
    let google = fake_google(vec![]).await;
    let canned = Canned::start(vec![
        (
            429,
            "retry-after: 0\r\n",
            r#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}"#,
        ),
        (503, "", "<html>Service Unavailable</html>"),
        (200, "", VALUES_OK),
    ])
    .await;

    let checklist = load_via(&canned, &google, 5).await.unwrap();

    assert_eq!(checklist.criteria.len(), 1);
    assert_eq!(checklist.criteria[0].max_score, 2.5);
    assert_eq!(canned.requests(), 3);
    assert_eq!(
        google.token_requests(),
        1,
        "the token is cached across attempts"
    );
}

#[tokio::test]
async fn persistent_server_errors_give_up_as_transient_trouble() {
    let google = fake_google(vec![]).await;
    let canned = Canned::start(vec![(
        500,
        "",
        r#"{"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}"#,
    )])
    .await;

    let err = load_via(&canned, &google, 3).await.unwrap_err();

    assert_eq!(err.severity(), Severity::Unavailable);
    assert_eq!(
        err.to_string(),
        format!(
            "Google Sheets answered HTTP 500 for '{CHECKLIST_SHEET}'!A:E: Internal error encountered."
        )
    );
    assert_eq!(canned.requests(), 3);
}

#[tokio::test]
async fn unreadable_answer_is_reported_not_retried() {
    let google = fake_google(vec![]).await;
    let canned = Canned::start(vec![(200, "", "<html>captive portal</html>")]).await;

    let err = load_via(&canned, &google, 3).await.unwrap_err();

    assert!(
        matches!(err, ChecklistError::Sheets(SheetsError::BadResponse { .. })),
        "{err:?}"
    );
    assert_eq!(err.severity(), Severity::Unavailable);
    assert_eq!(canned.requests(), 1);
}
