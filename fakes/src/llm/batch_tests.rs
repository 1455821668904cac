//! The Files and Batches API over real HTTP: the lifecycle, validation, per-line errors,
//! expiry, cancelling, paging, the holds and gates, and the unavailability knob.

use super::super::{LlmConfig, analysis_for_prompt, markers};
use super::*;
use reqwest::StatusCode as Status;
use reqwest::multipart::{Form, Part as FormPart};

const KEY: &str = "sk-test";

fn prompt(transcript: &str) -> String {
    format!(
        "Ты оцениваешь звонок.\n\nКАТЕГОРИЯ: Контакт\nКРИТЕРИЙ: Приветствие\nКОММЕНТАРИЙ: —\n\
         МАКСИМАЛЬНЫЙ БАЛЛ: 10\nУСЛОВИЯ ОЦЕНКИ: —\n\n\
         Транскрипт:\n{transcript}\n"
    )
}

fn chat(model: &str, prompt: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "response_format": {"type": "json_schema",
            "json_schema": {"name": "call_analysis", "strict": true, "schema": {"type": "object"}}},
    })
}

fn line(custom_id: &str, body: Value) -> Value {
    json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})
}

fn jsonl(lines: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// `n` well-formed lines `call-0`… over different transcripts.
fn calls(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            line(
                &format!("call-{i}"),
                chat(
                    "gpt-test",
                    &prompt(&format!("operator: Добрый день, звонок {i}")),
                ),
            )
        })
        .collect()
}

async fn upload_as(llm: &FakeLlm, bytes: Vec<u8>, purpose: &str) -> reqwest::Response {
    let form = Form::new()
        .text("purpose", purpose.to_string())
        .part("file", FormPart::bytes(bytes).file_name("night.jsonl"));
    crate::test_http()
        .post(format!("{}/files", llm.base_url()))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads a batch input file; returns its id.
async fn upload(llm: &FakeLlm, lines: &[Value]) -> String {
    let resp = upload_as(llm, jsonl(lines), "batch").await;
    assert_eq!(resp.status(), Status::OK);
    let file: Value = resp.json().await.unwrap();
    file["id"].as_str().unwrap().to_string()
}

async fn create_raw(llm: &FakeLlm, body: &Value) -> reqwest::Response {
    crate::test_http()
        .post(format!("{}/batches", llm.base_url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn create_body(file_id: &str) -> Value {
    json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions",
        "completion_window": "24h", "metadata": {"callq": "1", "department": "7"}})
}

/// Creates a batch over an uploaded file; returns the creation answer.
async fn create(llm: &FakeLlm, file_id: &str) -> Value {
    let resp = create_raw(llm, &create_body(file_id)).await;
    assert_eq!(resp.status(), Status::OK);
    resp.json().await.unwrap()
}

async fn get(llm: &FakeLlm, path: &str) -> reqwest::Response {
    crate::test_http()
        .get(format!("{}{path}", llm.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

async fn get_json(llm: &FakeLlm, path: &str) -> Value {
    let resp = get(llm, path).await;
    assert_eq!(resp.status(), Status::OK, "GET {path}");
    resp.json().await.unwrap()
}

async fn batch(llm: &FakeLlm, id: &str) -> Value {
    get_json(llm, &format!("/batches/{id}")).await
}

/// The lines of a stored file.
async fn lines_of(llm: &FakeLlm, file_id: &Value) -> Vec<Value> {
    let id = file_id.as_str().expect("a file id");
    let resp = get(llm, &format!("/files/{id}/content")).await;
    assert_eq!(resp.status(), Status::OK);
    resp.text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn custom_ids(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect()
}

async fn cancel(llm: &FakeLlm, id: &str) -> reqwest::Response {
    crate::test_http()
        .post(format!("{}/batches/{id}/cancel", llm.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_runs_to_completed_and_answers_each_line_as_the_synchronous_path_would() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let input = calls(3);
    let bytes = jsonl(&input);

    let resp = upload_as(&llm, bytes.clone(), "batch").await;
    assert_eq!(resp.status(), Status::OK);
    let file: Value = resp.json().await.unwrap();
    let file_id = file["id"].as_str().unwrap().to_string();
    assert!(file_id.starts_with("file-"), "{file}");
    assert_eq!(file["object"], json!("file"));
    assert_eq!(file["bytes"], json!(bytes.len()));
    assert_eq!(file["filename"], json!("night.jsonl"));
    assert_eq!(file["purpose"], json!("batch"));
    assert!(file["created_at"].as_i64().unwrap() > 0);
    assert_eq!(get_json(&llm, &format!("/files/{file_id}")).await, file);
    let content = get(&llm, &format!("/files/{file_id}/content")).await;
    assert_eq!(content.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let created = create(&llm, &file_id).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("batch_"), "{created}");
    assert_eq!(created["object"], json!("batch"));
    assert_eq!(created["status"], json!("validating"));
    assert_eq!(created["endpoint"], json!("/v1/chat/completions"));
    assert_eq!(created["input_file_id"], json!(file_id));
    assert_eq!(created["completion_window"], json!("24h"));
    assert_eq!(
        created["metadata"],
        json!({"callq": "1", "department": "7"})
    );

    // The first poll sees it finished, with every lifecycle timestamp.
    let done = batch(&llm, &id).await;
    assert_eq!(done["status"], json!("completed"), "{done}");
    for at in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(done[at].as_i64().is_some(), "{at}: {done}");
    }
    for at in ["failed_at", "expired_at", "cancelling_at", "cancelled_at"] {
        assert!(done[at].is_null(), "{at}: {done}");
    }
    assert_eq!(
        done["request_counts"],
        json!({"total": 3, "completed": 3, "failed": 0})
    );
    assert!(done["errors"].is_null());
    assert!(done["error_file_id"].is_null(), "no errors, no error file");
    assert_eq!(done["metadata"], created["metadata"]);

    let output = lines_of(&llm, &done["output_file_id"]).await;
    assert_eq!(custom_ids(&output), ["call-0", "call-1", "call-2"]);
    // The same bodies sent synchronously to a twin fake get the same answers and usage
    // (cached tokens included: the twin sees the prompts in the same order).
    let twin = FakeLlm::start(LlmConfig::default()).await;
    for (out, request) in output.iter().zip(&input) {
        assert!(out["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(out["error"].is_null());
        assert_eq!(out["response"]["status_code"], json!(200));
        assert!(out["response"]["request_id"].as_str().is_some());
        let body = &out["response"]["body"];
        assert_eq!(body["object"], json!("chat.completion"));
        let content: Value =
            serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap())
                .unwrap();
        let prompt = request["body"]["messages"][0]["content"].as_str().unwrap();
        assert_eq!(content, analysis_for_prompt(prompt));
        let sync: Value = crate::test_http()
            .post(format!("{}/chat/completions", twin.base_url()))
            .bearer_auth(KEY)
            .json(&request["body"])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["usage"], sync["usage"]);
        assert_eq!(body["choices"], sync["choices"]);
    }
    assert!(
        output[1]["response"]["body"]["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "the shared prompt prefix is cached"
    );
    let out_file = get_json(
        &llm,
        &format!("/files/{}", done["output_file_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(out_file["purpose"], json!("batch_output"));

    assert_eq!(llm.files_uploaded(), 1, "output files are not uploads");
    assert_eq!(llm.batches_created(), 1);
    assert_eq!(llm.batch_lines(), 3);
    assert_eq!(llm.batch_custom_ids(), ["call-0", "call-1", "call-2"]);
    assert_eq!(llm.batches(), vec![done.clone()]);
    assert_eq!(
        (llm.requests(), llm.completions()),
        (0, 0),
        "no synchronous request"
    );

    // Deleting the input file leaves the batch and its output alone.
    let deleted: Value = crate::test_http()
        .delete(format!("{}/files/{file_id}", llm.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        deleted,
        json!({"id": file_id, "object": "file", "deleted": true})
    );
    assert_eq!(
        get(&llm, &format!("/files/{file_id}")).await.status(),
        Status::NOT_FOUND
    );
    assert_eq!(lines_of(&llm, &done["output_file_id"]).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_input_file_fails_validation_and_nothing_is_answered() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let good = calls(2);
    let mut bytes = jsonl(&good);
    bytes.extend_from_slice(b"{not json\n");
    let mut no_id = good[0].clone();
    no_id.as_object_mut().unwrap().remove("custom_id");
    let mut wrong_url = line("call-9", chat("gpt-test", &prompt("x")));
    wrong_url["url"] = json!("/v1/completions");
    bytes.extend(jsonl(&[no_id, good[1].clone(), wrong_url]));
    let file_id = upload(&llm, &[]).await; // an empty file fails too
    let empty = create(&llm, &file_id).await;
    let resp = upload_as(&llm, bytes, "batch").await;
    let file_id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let failed = batch(&llm, &id).await;
    assert_eq!(failed["status"], json!("failed"), "{failed}");
    assert!(failed["failed_at"].as_i64().is_some());
    assert!(failed["in_progress_at"].is_null());
    assert!(failed["output_file_id"].is_null() && failed["error_file_id"].is_null());
    assert_eq!(failed["errors"]["object"], json!("list"));
    let errors: Vec<(&str, u64)> = failed["errors"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("invalid_json_line", 3),
            ("missing_required_parameter", 4),
            ("duplicate_custom_id", 5),
            ("invalid_url", 6),
        ]
    );
    let empty = batch(&llm, empty["id"].as_str().unwrap()).await;
    assert_eq!(empty["status"], json!("failed"));
    assert_eq!(empty["errors"]["data"][0]["code"], json!("empty_file"));
    assert_eq!(llm.batch_lines(), 0, "a failed batch costs nothing");
    assert_eq!(llm.batches_created(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_the_model_refuses_go_to_the_error_file() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let mut with_timeout = chat("gpt-test", &prompt("operator: с таймаутом"));
    with_timeout["timeout"] = json!(180);
    let input = vec![
        line("ok", chat("gpt-test", &prompt("operator: Добрый день"))),
        line("unknown-model", chat("gpt-unknown", &prompt("x"))),
        line("timeout", with_timeout),
        line(
            "too-long",
            chat("gpt-test", &prompt(&format!("{} x", markers::TOO_LONG))),
        ),
    ];
    let file_id = upload(&llm, &input).await;
    let id = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = batch(&llm, &id).await;
    assert_eq!(done["status"], json!("completed"));
    assert_eq!(
        done["request_counts"],
        json!({"total": 4, "completed": 1, "failed": 3})
    );
    assert_eq!(
        custom_ids(&lines_of(&llm, &done["output_file_id"]).await),
        ["ok"]
    );
    let errors = lines_of(&llm, &done["error_file_id"]).await;
    let seen: Vec<(&str, u64, &str)> = errors
        .iter()
        .map(|e| {
            assert!(e["error"].is_null());
            let r = &e["response"];
            (
                e["custom_id"].as_str().unwrap(),
                r["status_code"].as_u64().unwrap(),
                r["body"]["error"]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen[0].0, "unknown-model");
    assert_eq!(seen[0].1, 404, "as /v1/chat/completions answers it");
    assert_eq!(
        seen[1],
        (
            "timeout",
            400,
            "Unrecognized request argument supplied: timeout"
        )
    );
    assert_eq!((seen[2].0, seen[2].1), ("too-long", 400));
    assert!(seen[2].2.contains("ContextWindowExceeded"), "{}", seen[2].2);
    assert_eq!(llm.batch_lines(), 4, "errors are answered lines too");

    // At an error rate of 1 every line is a 500 in the error file.
    llm.set_error_rate(1.0);
    let file_id = upload(&llm, &calls(2)).await;
    let id = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = batch(&llm, &id).await;
    assert_eq!(done["status"], json!("completed"));
    assert!(done["output_file_id"].is_null());
    let errors = lines_of(&llm, &done["error_file_id"]).await;
    assert_eq!(custom_ids(&errors), ["call-0", "call-1"]);
    assert!(
        errors
            .iter()
            .all(|e| e["response"]["status_code"] == json!(500))
    );
    assert_eq!(llm.served_500(), 0, "a batch line is not an HTTP request");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_batch_stays_in_progress_until_finished_and_an_expired_one_keeps_its_done_share() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let hold = llm.hold_batches();
    let file_id = upload(&llm, &calls(4)).await;
    let first = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let held = batch(&llm, &first).await;
    assert_eq!(held["status"], json!("in_progress"), "{held}");
    assert!(held["in_progress_at"].as_i64().is_some());
    assert_eq!(
        held["request_counts"],
        json!({"total": 4, "completed": 0, "failed": 0})
    );
    assert_eq!(llm.batch_lines(), 0);

    hold.advance(0.5);
    let half = batch(&llm, &first).await;
    assert_eq!(half["status"], json!("in_progress"));
    assert_eq!(half["request_counts"]["completed"], json!(2));
    assert_eq!(llm.batch_lines(), 4, "two lines of each batch");

    hold.expire(0.75);
    let expired = batch(&llm, &second).await;
    assert_eq!(expired["status"], json!("expired"), "{expired}");
    assert!(expired["expired_at"].as_i64().is_some());
    assert!(expired["completed_at"].is_null());
    assert_eq!(
        expired["request_counts"],
        json!({"total": 4, "completed": 3, "failed": 0})
    );
    let output = lines_of(&llm, &expired["output_file_id"]).await;
    assert_eq!(custom_ids(&output), ["call-0", "call-1", "call-2"]);
    let rest = lines_of(&llm, &expired["error_file_id"]).await;
    assert_eq!(custom_ids(&rest), ["call-3"]);
    assert!(rest[0]["response"].is_null());
    assert_eq!(rest[0]["error"]["code"], json!("batch_expired"));
    assert_eq!(llm.batch_lines(), 6, "unanswered lines are not paid");

    // Batches created after an expiry are still held; dropping the hold finishes them.
    let third = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(batch(&llm, &third).await["status"], json!("in_progress"));
    hold.finish();
    assert_eq!(batch(&llm, &third).await["status"], json!("completed"));
    let fourth = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(batch(&llm, &fourth).await["status"], json!("in_progress"));
    drop(hold);
    let finished = batch(&llm, &fourth).await;
    assert_eq!(finished["status"], json!("completed"));
    assert_eq!(
        custom_ids(&lines_of(&llm, &finished["output_file_id"]).await),
        ["call-0", "call-1", "call-2", "call-3"]
    );
    let fifth = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        batch(&llm, &fifth).await["status"],
        json!("completed"),
        "no hold, no wait"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_batch_keeps_its_finished_lines() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let hold = llm.hold_batches();
    let file_id = upload(&llm, &calls(4)).await;
    let id = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    hold.advance(0.5);

    let resp = cancel(&llm, &id).await;
    assert_eq!(resp.status(), Status::OK);
    let cancelling: Value = resp.json().await.unwrap();
    assert_eq!(cancelling["status"], json!("cancelling"));
    assert!(cancelling["cancelling_at"].as_i64().is_some());

    let cancelled = batch(&llm, &id).await;
    assert_eq!(cancelled["status"], json!("cancelled"), "{cancelled}");
    assert!(cancelled["cancelled_at"].as_i64().is_some());
    assert_eq!(
        custom_ids(&lines_of(&llm, &cancelled["output_file_id"]).await),
        ["call-0", "call-1"]
    );
    let rest = lines_of(&llm, &cancelled["error_file_id"]).await;
    assert_eq!(custom_ids(&rest), ["call-2", "call-3"]);
    assert!(
        rest.iter()
            .all(|l| l["error"]["code"] == json!("batch_cancelled"))
    );
    assert_eq!(llm.batch_lines(), 2);
    drop(hold);
    assert_eq!(
        batch(&llm, &id).await["status"],
        json!("cancelled"),
        "the hold's end leaves it cancelled"
    );

    let again = cancel(&llm, &id).await;
    assert_eq!(again.status(), Status::CONFLICT);
    let completed = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(cancel(&llm, &completed).await.status(), Status::CONFLICT);
    assert_eq!(cancel(&llm, "batch_nope").await.status(), Status::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_listed_newest_first_a_page_at_a_time() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let file_id = upload(&llm, &calls(1)).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            create(&llm, &file_id).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids.reverse();
    let page = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    let first = get_json(&llm, "/batches?limit=2").await;
    assert_eq!(first["object"], json!("list"));
    assert_eq!(page(&first), ids[0..2]);
    assert_eq!(first["first_id"], json!(ids[0]));
    assert_eq!(first["last_id"], json!(ids[1]));
    assert_eq!(first["has_more"], json!(true));
    assert_eq!(first["data"][0]["status"], json!("completed"));
    let second = get_json(&llm, &format!("/batches?limit=2&after={}", ids[1])).await;
    assert_eq!(page(&second), ids[2..4]);
    assert_eq!(second["has_more"], json!(true));
    let third = get_json(&llm, &format!("/batches?limit=2&after={}", ids[3])).await;
    assert_eq!(page(&third), ids[4..5]);
    assert_eq!(third["has_more"], json!(false));
    let all = get_json(&llm, "/batches").await;
    assert_eq!(page(&all), ids, "twenty by default");
    let past = get_json(&llm, &format!("/batches?after={}", ids[4])).await;
    assert!(page(&past).is_empty() && past["first_id"].is_null());
    assert_eq!(
        get(&llm, "/batches?after=batch_unknown").await.status(),
        Status::BAD_REQUEST
    );
    assert_eq!(
        get(&llm, "/batches?limit=0").await.status(),
        Status::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gates_hold_an_upload_before_it_is_stored_and_a_creation_after_it_is_made() {
    let llm = Arc::new(FakeLlm::start(LlmConfig::default()).await);
    let uploads = llm.hold_uploads();
    let pending = {
        let llm = Arc::clone(&llm);
        tokio::spawn(async move { upload(&llm, &calls(2)).await })
    };
    uploads.arrived(1).await;
    assert_eq!(llm.files_uploaded(), 0, "held before it is stored");
    assert!(!pending.is_finished());
    uploads.admit(1);
    let file_id = pending.await.unwrap();
    assert_eq!(llm.files_uploaded(), 1);

    let creations = llm.hold_batch_creation();
    let pending = {
        let llm = Arc::clone(&llm);
        let file_id = file_id.clone();
        tokio::spawn(async move { create(&llm, &file_id).await })
    };
    creations.arrived(1).await;
    // Made (and listed, and run) though its creator has no answer yet.
    assert_eq!(llm.batches_created(), 1);
    let listed = get_json(&llm, "/batches").await;
    assert_eq!(listed["data"][0]["metadata"]["department"], json!("7"));
    assert_eq!(listed["data"][0]["status"], json!("completed"));
    assert!(!pending.is_finished());
    drop(creations);
    let created = pending.await.unwrap();
    assert_eq!(created["id"], listed["data"][0]["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_batches_answer_503_while_unavailable_and_401_to_a_wrong_key() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let file_id = upload(&llm, &calls(1)).await;
    let id = create(&llm, &file_id).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    llm.set_batches_unavailable(true);
    assert_eq!(
        upload_as(&llm, jsonl(&calls(1)), "batch").await.status(),
        Status::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        create_raw(&llm, &create_body(&file_id)).await.status(),
        Status::SERVICE_UNAVAILABLE
    );
    for path in [
        format!("/batches/{id}"),
        "/batches".into(),
        format!("/files/{file_id}"),
        format!("/files/{file_id}/content"),
    ] {
        assert_eq!(
            get(&llm, &path).await.status(),
            Status::SERVICE_UNAVAILABLE,
            "{path}"
        );
    }
    assert_eq!(llm.files_uploaded(), 1);
    assert_eq!(llm.batches_created(), 1);
    llm.set_batches_unavailable(false);
    assert_eq!(batch(&llm, &id).await["status"], json!("completed"));
    assert_eq!(llm.batch_api_requests(), 9);

    let wrong = crate::test_http()
        .get(format!("{}/batches/{id}", llm.base_url()))
        .bearer_auth("sk-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), Status::UNAUTHORIZED);
    assert_eq!(llm.unauthorized(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_refused_for_a_wrong_window_endpoint_metadata_file_or_purpose() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    let file_id = upload(&llm, &calls(1)).await;
    let mut window = create_body(&file_id);
    window["completion_window"] = json!("1h");
    let mut endpoint = create_body(&file_id);
    endpoint["endpoint"] = json!("/v1/embeddings");
    let mut metadata = create_body(&file_id);
    metadata["metadata"] = json!({"day": 20240501});
    let mut no_file = create_body(&file_id);
    no_file["input_file_id"] = json!("file-nope");
    for (body, status) in [
        (window, Status::BAD_REQUEST),
        (endpoint, Status::BAD_REQUEST),
        (metadata, Status::BAD_REQUEST),
        (no_file, Status::NOT_FOUND),
    ] {
        let resp = create_raw(&llm, &body).await;
        assert_eq!(resp.status(), status, "{body}");
        let error: Value = resp.json().await.unwrap();
        assert!(error["error"]["message"].as_str().is_some());
    }
    let other = upload_as(&llm, jsonl(&calls(1)), "assistants").await;
    let other_id = other.json::<Value>().await.unwrap()["id"].clone();
    let resp = create_raw(&llm, &create_body(other_id.as_str().unwrap())).await;
    assert_eq!(resp.status(), Status::BAD_REQUEST);
    assert_eq!(
        upload_as(&llm, jsonl(&calls(1)), "nonsense").await.status(),
        Status::BAD_REQUEST
    );
    let no_filename = Form::new()
        .text("purpose", "batch")
        .part("file", FormPart::bytes(jsonl(&calls(1))));
    let resp = crate::test_http()
        .post(format!("{}/files", llm.base_url()))
        .bearer_auth(KEY)
        .multipart(no_filename)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), Status::BAD_REQUEST, "a value, not a file");
    assert_eq!(llm.files_uploaded(), 2);
    assert_eq!(llm.batches_created(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_next_batches_refuses_well_formed_files_and_bills_nothing() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    llm.fail_next_batches(1);
    let file_id = upload(&llm, &calls(2)).await;
    let refused = create(&llm, &file_id).await;
    let again = create(&llm, &file_id).await;

    let refused = batch(&llm, refused["id"].as_str().unwrap()).await;
    assert_eq!(refused["status"], json!("failed"), "{refused}");
    assert!(refused["failed_at"].as_i64().is_some());
    assert!(refused["in_progress_at"].is_null());
    assert!(refused["output_file_id"].is_null() && refused["error_file_id"].is_null());
    assert_eq!(
        refused["request_counts"],
        json!({"total": 0, "completed": 0, "failed": 0})
    );
    let errors = refused["errors"]["data"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{refused}");
    assert_eq!(errors[0]["code"], json!("token_limit_exceeded"));
    assert!(errors[0]["message"].as_str().unwrap().contains("Enqueued"));
    // Only the next one: the same file in a later batch is answered.
    let again = batch(&llm, again["id"].as_str().unwrap()).await;
    assert_eq!(again["status"], json!("completed"), "{again}");
    assert_eq!(llm.batch_custom_ids(), ["call-0", "call-1"]);
    assert_eq!(llm.batches_created(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoiled_result_line_is_billed_once_and_the_next_answer_is_sound() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    llm.corrupt_batch_output("call-0");
    llm.misanswer_batch_line("call-1");
    let file_id = upload(&llm, &calls(3)).await;
    let first = create(&llm, &file_id).await;
    let first = batch(&llm, first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], json!("completed"), "{first}");
    let id = first["output_file_id"].as_str().unwrap();
    let text = get(&llm, &format!("/files/{id}/content"))
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        serde_json::from_str::<Value>(lines[0]).is_err(),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\"call-0\""),
        "cut after its custom_id: {}",
        lines[0]
    );
    let misanswered: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(misanswered["custom_id"], json!("call-1"));
    assert_eq!(misanswered["response"]["status_code"], json!(200));
    assert!(
        misanswered["response"]["body"]["choices"].is_null(),
        "{misanswered}"
    );
    assert_eq!(misanswered["response"]["body"]["object"], json!("response"));
    let sound: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(
        sound["response"]["body"]["object"],
        json!("chat.completion")
    );
    assert_eq!(llm.batch_lines(), 3, "spoiled lines are billed too");

    // The spoiling is spent: the same calls in a second batch are answered soundly.
    let second = create(&llm, &file_id).await;
    let second = batch(&llm, second["id"].as_str().unwrap()).await;
    let output = lines_of(&llm, &second["output_file_id"]).await;
    assert_eq!(custom_ids(&output), ["call-0", "call-1", "call-2"]);
    for line in &output {
        assert_eq!(line["response"]["body"]["object"], json!("chat.completion"));
    }
}
