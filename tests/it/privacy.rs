//! Personal data end to end: what the fake LLM is sent, what the database keeps under each
//! TRANSCRIPT_STORE and PHONE_STORE, that masking changes no score, that the logs never show
//! a customer's words or number, RETENTION_DAYS in the nightly run, and `compare` masking a
//! transcript stored raw.

use callq::severity::ExitCode;
use callq_fakes::{FakeCall, LlmConfig};
use chrono::Days;
use serde_json::json;

use crate::binary::{callq, output, text};
use crate::common::{DEPARTMENT, Harness, World, call, day};
use crate::purge::{at, insert_call, kept, today};

/// Phone numbers customers dictate, in the forms speech-to-text writes them, with the ten
/// digits after the country code that identify each.
const DICTATED: [(&str, &str); 3] = [
    ("+7 916 123-45-67", "9161234567"),
    ("89162345678", "9162345678"),
    ("8(916)345-67-89", "9163456789"),
];
const EMAILS: [&str; 2] = ["ivan.petrov@mail.ru", "a.smirnova@example.com"];
/// The listing's client numbers: calls 1 and 2 are the same caller, written two ways.
const LISTED: [(&str, &str); 3] = [
    ("+7 903 555-01-01", "9035550101"),
    ("89035550101", "9035550101"),
    ("79037770202", "9037770202"),
];
/// Words of one call no log line may show.
const PHRASE: &str = "диван цвета морской волны";

const OP: (i64, &str) = (5512, "Иванова Анна");

/// Three calls whose customers dictate phone numbers and e-mails between amounts, dates,
/// times, a percentage and an order number that must reach the model as said.
fn pii_calls() -> Vec<FakeCall> {
    let mut calls = vec![
        call(
            1,
            OP,
            &[
                (true, "Добрый день! Меня зовут Анна, компания «Пример»."),
                (
                    false,
                    "Здравствуйте. Запишите мой номер +7 916 123-45-67 и почту ivan.petrov@mail.ru.",
                ),
                (true, "Записала. Доставка 7 августа в 10:30, скидка 15%."),
                (
                    false,
                    "Беру [agreement:text], итого 15 000 рублей за диван цвета морской волны.",
                ),
            ],
        ),
        call(
            2,
            OP,
            &[
                (true, "Здравствуйте, компания «Пример», меня зовут Анна."),
                (
                    false,
                    "Перезвоните мне на 89162345678, а если не отвечу — на 8(916)345-67-89.",
                ),
                (
                    true,
                    "Хорошо, номер заказа 7788990011, счёт пришлю на a.smirnova@example.com.",
                ),
                (false, "Спасибо, всего доброго."),
            ],
        ),
        call(
            3,
            OP,
            &[
                (true, "Добрый день, компания «Пример»."),
                (false, "Мне ничего не нужно, до свидания. [decline]"),
            ],
        ),
    ];
    for (c, (listed, _)) in calls.iter_mut().zip(LISTED) {
        c.phone = listed.to_string();
    }
    calls
}

fn pii_world(env_extra: &str) -> World {
    World {
        calls: pii_calls(),
        llm: LlmConfig {
            record_prompts: true,
            ..LlmConfig::default()
        },
        env_extra: env_extra.to_string(),
        ..World::default()
    }
}

/// The text with the separators of written phone numbers taken out, so a number shows as
/// its digits however it was written.
fn digits_joined(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '+' | '\u{a0}'))
        .collect()
}

/// What in `s` identifies a customer: dictated numbers, e-mails, listed numbers.
fn personal_data_in(s: &str) -> Vec<String> {
    let joined = digits_joined(s);
    let mut found = Vec::new();
    for (written, core) in DICTATED.iter().chain(LISTED.iter()) {
        if s.contains(written) || joined.contains(core) {
            found.push(written.to_string());
        }
    }
    for e in EMAILS {
        if s.contains(e) || s.contains(e.split('@').next().unwrap()) {
            found.push(e.to_string());
        }
    }
    found
}

/// The stored scores: call totals, each criterion's score and quote verdict, agreement
/// amounts, decline reasons.
async fn scores(h: &Harness) -> Vec<String> {
    let c = h.db.client().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT id, is_sales_call, total_score, max_score, performance_percentage, review_reasons
           FROM calls ORDER BY id",
        "SELECT call_id, category, criterion, score, max_score, evidence_verified
           FROM call_evaluations ORDER BY call_id, category, criterion",
        "SELECT call_id, amount FROM agreements ORDER BY call_id, amount",
        "SELECT call_id, reason_type FROM call_decline_reasons ORDER BY call_id",
    ] {
        let rows = c
            .query(&format!("SELECT row_to_json(t)::text FROM ({sql}) t"), &[])
            .await
            .unwrap();
        out.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    }
    out
}

async fn all_evidence(h: &Harness) -> String {
    h.db.client()
        .await
        .query_one(
            "SELECT coalesce(string_agg(evidence, E'\\n'), '') FROM call_evaluations",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_keeps_personal_data_from_the_model_and_changes_no_score() {
    let masked = Harness::start(pii_world("")).await;
    let plain = Harness::start(pii_world("PII_MASKING=off\n")).await;
    assert_eq!(masked.run(&[]).await, ExitCode::Ok);
    assert_eq!(plain.run(&[]).await, ExitCode::Ok);

    let prompts = masked.llm.prompts();
    assert_eq!(prompts.len(), 3, "one request per call");
    for p in &prompts {
        assert_eq!(
            personal_data_in(p),
            Vec::<String>::new(),
            "in a prompt:\n{p}"
        );
    }
    let all = prompts.join("\n");
    for kept in [
        "[ТЕЛЕФОН]",
        "[EMAIL]",
        "15 000 рублей",
        "7 августа в 10:30",
        "скидка 15%",
        "номер заказа 7788990011",
    ] {
        assert!(all.contains(kept), "{kept:?} is not in the prompts:\n{all}");
    }
    // The same night unmasked shows what the check above would catch; the listing's
    // number goes to no prompt either way.
    let unmasked = plain.llm.prompts().join("\n");
    for (written, _) in DICTATED {
        assert!(unmasked.contains(written), "{written}");
    }
    for (_, core) in LISTED {
        assert!(!digits_joined(&unmasked).contains(core), "{core}");
    }

    let stored = scores(&masked).await;
    assert_eq!(stored, scores(&plain).await, "masking changed a score");
    assert_eq!(
        stored
            .iter()
            .filter(|r| r.contains("\"criterion\""))
            .count(),
        3 * 7
    );
    assert!(
        stored.contains(&r#"{"call_id":1,"amount":15000}"#.to_string()),
        "{stored:#?}"
    );
    assert!(stored.contains(&r#"{"call_id":3,"reason_type":"price"}"#.to_string()));
    // Quotes are taken from what the model saw.
    let evidence = all_evidence(&masked).await;
    assert!(evidence.contains("[ТЕЛЕФОН]"), "{evidence}");
    assert_eq!(
        personal_data_in(&evidence),
        Vec::<String>::new(),
        "{evidence}"
    );
    assert!(!personal_data_in(&all_evidence(&plain).await).is_empty());
}

async fn stored_transcript(h: &Harness, id: i64) -> Option<String> {
    h.db.client()
        .await
        .query_opt(
            "SELECT transcript FROM call_transcripts WHERE call_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transcript_store_mode_keeps_what_it_says() {
    let h = Harness::start(pii_world("")).await;
    // masked (the default)
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let masked = stored_transcript(&h, 1).await.expect("stored");
    assert!(
        masked.contains("[ТЕЛЕФОН]") && masked.contains("[EMAIL]"),
        "{masked}"
    );
    assert!(masked.contains("15 000 рублей"), "{masked}");
    assert_eq!(personal_data_in(&masked), Vec::<String>::new(), "{masked}");
    assert_eq!(h.count("SELECT count(*) FROM call_transcripts").await, 3);

    // raw: as transcribed; the model still gets the masked text
    h.set_env("TRANSCRIPT_STORE=raw");
    let sent = h.llm.prompts().len();
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    let raw: String = pii_calls()[0]
        .phrases
        .iter()
        .map(|(op, t)| format!("{}: {t}\n", if *op { "operator" } else { "client" }))
        .collect();
    assert_eq!(
        stored_transcript(&h, 1).await.as_deref(),
        Some(raw.as_str())
    );
    let prompts = h.llm.prompts();
    assert_eq!(prompts.len(), sent + 3);
    for p in &prompts[sent..] {
        assert_eq!(personal_data_in(p), Vec::<String>::new(), "{p}");
    }

    // none: nothing stored, and what an earlier run stored for a re-analysed call is gone
    h.set_env("TRANSCRIPT_STORE=none");
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM call_transcripts").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE total_score > 0")
            .await,
        3
    );
}

async fn phones(h: &Harness) -> Vec<Option<String>> {
    h.db.client()
        .await
        .query("SELECT phone_number FROM calls ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_phone_store_mode_keeps_what_it_says() {
    // hash without its key: refused before anything is asked of anyone
    let h = Harness::start(pii_world("PHONE_STORE=hash\n")).await;
    let date = day().to_string();
    let out = output(
        callq()
            .args(["run", "--date", &date, "--env-file"])
            .arg(&h.env_path)
            .env("LOGGING_ON_FILE", "False"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("PHONE_HASH_KEY"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        (
            h.llm.requests(),
            h.tbank.logins(),
            h.tbank.transcript_requests()
        ),
        (0, 0, 0)
    );
    assert_eq!(h.count("SELECT count(*) FROM runs").await, 0);

    h.set_env("PHONE_STORE=plain");
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let listed: Vec<Option<String>> = LISTED.iter().map(|(p, _)| Some(p.to_string())).collect();
    assert_eq!(phones(&h).await, listed);

    let key = "ключ-отдела-1-0123456789";
    h.set_env(&format!("PHONE_STORE=hash\nPHONE_HASH_KEY='{key}'"));
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    let hashed: Vec<String> = phones(&h).await.into_iter().map(Option::unwrap).collect();
    for hash in &hashed {
        assert!(
            hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{hash}"
        );
    }
    assert_eq!(hashed[0], hashed[1], "one caller, written two ways");
    assert_ne!(hashed[0], hashed[2]);
    assert_eq!(
        hashed[0],
        callq::pii::hash_phone(key.as_bytes(), "+79035550101")
    );

    h.set_env("PHONE_HASH_KEY=another-key-of-department-2");
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    let rehashed: Vec<String> = phones(&h).await.into_iter().map(Option::unwrap).collect();
    assert_eq!(rehashed[0], rehashed[1]);
    assert_ne!(rehashed[0], hashed[0], "another key, another hash");

    h.set_env("PHONE_STORE=none");
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    assert_eq!(phones(&h).await, vec![None, None, None]);
}

/// The real binary at DEBUG, logging to files, with nothing masked and transcripts kept
/// raw, a listing item that cannot be read (with a phone number in it) and a transcript
/// answered with an error: no log line shows a customer's words, number or address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_show_transcripts_or_phone_numbers() {
    let days = (today() - day()).num_days();
    let mut world = pii_world(&format!(
        "LOGGING_ON_FILE=True\nLOGGING_LEVEL=DEBUG\nPII_MASKING=off\nTRANSCRIPT_STORE=raw\n\
         RETENTION_DAYS={days}\n"
    ));
    world
        .calls
        .push(call(4, OP, &[(false, "Алло, мой номер +7 916 123-45-67.")]));
    world.tbank.faults.transcript_error_object = vec![4];
    world.tbank.faults.broken_items_on_first_page = vec![json!({
        "startDate": "2025-08-07T10:00:00",
        "clientPhoneNumber": "+7 999 888-77-66",
        "operatorUserFullName": OP.1,
    })];
    let h = Harness::start(world).await;
    // An old call for the retention purge to remove (and log at DEBUG).
    insert_call(
        &h.db.client().await,
        11,
        DEPARTMENT,
        at(day() - Days::new(9), 9, 0, 0),
        true,
    )
    .await;
    let date = day().to_string();
    let out = output(
        callq()
            .args(["run", "--date", &date, "--env-file"])
            .arg(&h.env_path),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "call 4 failed:\n{stderr}");
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 4);
    assert_eq!(kept(&h.db.client().await, 11).await, (false, false));

    let mut logs = stderr;
    for entry in std::fs::read_dir(h.dir.path().join("logs")).expect("LOGGING_DIR") {
        logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    logs.push_str(&text(&out.stdout));
    // The paths that could leak did run.
    for said in [
        "skipping an item that cannot be read",
        "TRANSCRIPTION_FAILED",
        "Removed 1 transcript(s) and 1 phone number(s) of 1 call(s)",
        "purged 1 call(s) up to id 11",
    ] {
        assert!(logs.contains(said), "{said:?} not logged:\n{logs}");
    }
    assert_eq!(personal_data_in(&logs), Vec::<String>::new(), "{logs}");
    for words in [
        PHRASE,
        "Перезвоните мне",
        "+7 999 888-77-66",
        "9998887766",
        "79160000000",
        "не удалось распознать",
    ] {
        assert!(!logs.contains(words), "{words:?} leaked:\n{logs}");
    }
    // Where it is meant to be, it is.
    let error: String =
        h.db.client()
            .await
            .query_one("SELECT error FROM call_failures WHERE call_id = 4", &[])
            .await
            .unwrap()
            .get(0);
    assert!(
        error.contains("TRANSCRIPTION_FAILED") && !error.contains("Сегмент"),
        "{error}"
    );
    assert!(stored_transcript(&h, 1).await.unwrap().contains(PHRASE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_run_purges_by_retention_days_and_a_failed_purge_is_only_a_warning() {
    // The test day is kept: RETENTION_DAYS counts back from today to it exactly.
    let days = (today() - day()).num_days();
    let h = Harness::start(pii_world(&format!("RETENTION_DAYS={days}\n"))).await;
    let c = h.db.client().await;
    c.execute(
        "INSERT INTO departments (id, name) VALUES (2, 'Другой отдел')",
        &[],
    )
    .await
    .unwrap();
    insert_call(
        &c,
        11,
        DEPARTMENT,
        at(day() - Days::new(1), 23, 59, 59),
        true,
    )
    .await;
    insert_call(
        &c,
        12,
        DEPARTMENT,
        at(day() - Days::new(400), 9, 0, 0),
        false,
    )
    .await;
    insert_call(
        &c,
        13,
        DEPARTMENT,
        at(today() - Days::new(1), 10, 0, 0),
        true,
    )
    .await;
    insert_call(&c, 14, 2, at(day() - Days::new(30), 12, 0, 0), true).await;

    // A dry run scores and purges nothing.
    assert_eq!(h.run(&["--dry-run"]).await, ExitCode::Ok);
    assert_eq!(kept(&c, 11).await, (true, true));

    // A purge that fails leaves the night's exit code alone.
    c.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'purge refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE DELETE ON call_transcripts
             FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE id < 10 AND total_score > 0")
            .await,
        3
    );
    assert_eq!(kept(&c, 11).await, (true, true));

    c.batch_execute("DROP TRIGGER refuse ON call_transcripts")
        .await
        .unwrap();
    let before = h.count("SELECT count(*) FROM call_evaluations").await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(kept(&c, 11).await, (false, false));
    assert_eq!(kept(&c, 12).await, (false, false));
    for id in [1, 2, 3, 13] {
        assert_eq!(kept(&c, id).await, (true, true), "call {id}");
    }
    assert_eq!(kept(&c, 14).await, (true, true), "another department's");
    assert_eq!(
        h.count("SELECT count(*) FROM call_evaluations").await,
        before
    );
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_masks_a_transcript_stored_raw_and_skips_one_not_stored() {
    let h = Harness::start(pii_world("TRANSCRIPT_STORE=raw\n")).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert!(
        stored_transcript(&h, 2)
            .await
            .unwrap()
            .contains("89162345678")
    );
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/prompts/department1.txt"
    ))
    .unwrap();
    let variant = h.dir.path().join("variant.txt");
    std::fs::write(
        &variant,
        template.replace("Ты — эксперт", "Ты — строгий эксперт"),
    )
    .unwrap();
    let variant = variant.display().to_string();
    let date = day().to_string();
    let compare = [
        "compare",
        "--prompt-file",
        &variant,
        "--date",
        &date,
        "--sample",
        "3",
    ];

    let sent = h.llm.prompts().len();
    assert_eq!(h.callq(&compare).await, ExitCode::Ok);
    let prompts = h.llm.prompts();
    assert_eq!(prompts.len(), sent + 3, "one request per stored call");
    for p in &prompts[sent..] {
        assert!(p.contains("строгий эксперт"));
        assert_eq!(personal_data_in(p), Vec::<String>::new(), "{p}");
    }

    // Transcripts no longer stored: nothing to compare, nothing sent.
    h.set_env("TRANSCRIPT_STORE=none");
    assert_eq!(h.run(&["--reanalyze"]).await, ExitCode::Ok);
    let requests = h.llm.requests();
    assert_eq!(h.callq(&compare).await, ExitCode::BadInput);
    assert_eq!(h.llm.requests(), requests);
}
