//! Retention against a real database: `callq purge` removes the transcripts and phone
//! numbers of old calls, keeps everything the reports read, counts the same in a dry run,
//! and finds nothing to do the second time.

use crate::common::{DEPARTMENT, Harness, TestDb, World, day};
use callq::cli::{Cli, Command, PurgeArgs};
use callq::commands::purge::{PurgeReport, purge_report};
use callq::config::{Env, parse_database_url};
use callq::severity::ExitCode;
use callq::store::{PurgeCounts, PurgeScope, Store};
use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime};
use clap::Parser;
use tokio_postgres::Client;

pub(crate) fn today() -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive()
}

pub(crate) fn at(d: NaiveDate, h: u32, m: u32, s: u32) -> NaiveDateTime {
    d.and_time(NaiveTime::from_hms_opt(h, m, s).unwrap())
}

/// A call with a transcript, a phone number and one evaluation, recommendation and
/// agreement each.
pub(crate) async fn insert_call(
    c: &Client,
    id: i64,
    department: i32,
    start: NaiveDateTime,
    phone: bool,
) {
    let phone = phone.then(|| format!("7903{id:07}"));
    c.execute(
        "INSERT INTO calls (id, start_time, department_id, phone_number, total_score, max_score,
                            performance_percentage, is_sales_call)
         VALUES ($1, $2, $3, $4, 7, 10, 70, true)",
        &[&id, &start, &department, &phone],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO call_transcripts (call_id, transcript) VALUES ($1, 'Клиент: телефон [ТЕЛЕФОН]')",
        &[&id],
    )
    .await
    .unwrap();
    c.batch_execute(&format!(
        "INSERT INTO call_evaluations (call_id, category, criterion, score, max_score, reason)
              VALUES ({id}, 'Приветствие', 'Представился', 1, 1, 'назвал имя');
         INSERT INTO call_recommendations (call_id, category, issue, recommendation, priority)
              VALUES ({id}, 'Приветствие', 'нет', 'да', 'low');
         INSERT INTO agreements (call_id, amount, agreement) VALUES ({id}, 15000, 'диван');"
    ))
    .await
    .unwrap();
}

/// (calls, transcripts, phone numbers, evaluations, recommendations, agreements, declines,
/// sum of total scores).
async fn totals(c: &Client) -> (i64, i64, i64, i64, i64, i64, i64, f64) {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM call_transcripts),
                    (SELECT count(phone_number) FROM calls),
                    (SELECT count(*) FROM call_evaluations),
                    (SELECT count(*) FROM call_recommendations), (SELECT count(*) FROM agreements),
                    (SELECT count(*) FROM call_decline_reasons),
                    (SELECT coalesce(sum(total_score), 0)::float8 FROM calls)",
            &[],
        )
        .await
        .unwrap();
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
    )
}

/// Whether the call still has its transcript and its phone number.
pub(crate) async fn kept(c: &Client, id: i64) -> (bool, bool) {
    let r = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM call_transcripts WHERE call_id = $1),
                    (SELECT phone_number IS NOT NULL FROM calls WHERE id = $1)",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

fn purge_args(h: &Harness, extra: &[&str]) -> PurgeArgs {
    let env_file = h.env_path.display().to_string();
    let mut argv = vec!["callq", "purge", "--env-file", &env_file];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Purge(a) => a,
        _ => unreachable!(),
    }
}

async fn report(h: &Harness, extra: &[&str]) -> PurgeReport {
    let env = Env::load_with(&h.env_path, true, Vec::new());
    purge_report(&purge_args(h, extra), &env)
        .await
        .expect("purge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_old_transcripts_and_phones_once_and_keeps_the_scores() {
    let h = Harness::start(World::default()).await;
    // The test day's calls scored through the fakes: old ones, with transcripts and phones.
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let c = h.db.client().await;
    let scored: Vec<i64> = c
        .query("SELECT id FROM calls ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(scored.len() >= 5, "{scored:?}");
    assert_eq!(kept(&c, scored[0]).await, (true, true));

    // Older than `days`: every day before the test day's next day.
    let days = (today() - day()).num_days() as u32 - 1;
    assert!(days >= 3, "the test day is in the past");
    let first_kept = today() - Days::new(u64::from(days));
    assert_eq!(first_kept, day() + Days::new(1));
    c.execute(
        "INSERT INTO departments (id, name) VALUES (2, 'Другой отдел')",
        &[],
    )
    .await
    .unwrap();
    // The last second of the last day purged, and the first second of the first day kept.
    insert_call(&c, 1, DEPARTMENT, at(day(), 23, 59, 59), true).await;
    insert_call(&c, 2, DEPARTMENT, at(first_kept, 0, 0, 0), true).await;
    insert_call(
        &c,
        3,
        DEPARTMENT,
        at(today() - Days::new(1), 10, 0, 0),
        true,
    )
    .await;
    // Old, but of another department: the env file names department 1.
    insert_call(&c, 4, 2, at(day() - Days::new(30), 12, 0, 0), true).await;
    // Old, with a transcript and no phone number.
    insert_call(
        &c,
        5,
        DEPARTMENT,
        at(day() - Days::new(400), 9, 0, 0),
        false,
    )
    .await;

    let before = totals(&c).await;
    let snapshot = h.snapshot().await;
    let old_calls = scored.len() as u64 + 2;
    let expected = PurgeCounts {
        calls: old_calls,
        transcripts: old_calls,
        phone_numbers: old_calls - 1,
    };
    let older_than = days.to_string();

    // A dry run counts and changes nothing.
    let dry = report(&h, &["--older-than", &older_than, "--dry-run"]).await;
    assert!(dry.dry_run);
    assert_eq!(
        dry.scope,
        PurgeScope {
            before: first_kept,
            department_id: Some(DEPARTMENT)
        }
    );
    assert_eq!(dry.counts, expected);
    assert_eq!(
        h.callq(&["purge", "--older-than", &older_than, "--dry-run"])
            .await,
        ExitCode::Ok
    );
    assert_eq!(h.snapshot().await, snapshot);

    // For real: the same counts; only transcripts and phone numbers go.
    let done = report(&h, &["--older-than", &older_than]).await;
    assert!(!done.dry_run);
    assert_eq!(done.counts, expected);
    let after = totals(&c).await;
    assert_eq!(
        after,
        (
            before.0,
            before.1 - expected.transcripts as i64,
            before.2 - expected.phone_numbers as i64,
            before.3,
            before.4,
            before.5,
            before.6,
            before.7
        )
    );
    for id in scored.iter().copied().chain([1, 5]) {
        assert_eq!(kept(&c, id).await, (false, false), "call {id}");
    }
    for id in [2, 3, 4] {
        assert_eq!(kept(&c, id).await, (true, true), "call {id}");
    }

    // Again: nothing left to remove, nothing changes.
    let snapshot = h.snapshot().await;
    let again = report(&h, &["--older-than", &older_than]).await;
    assert_eq!(again.counts, PurgeCounts::default());
    assert_eq!(
        h.callq(&["purge", "--older-than", &older_than]).await,
        ExitCode::Ok
    );
    assert_eq!(h.snapshot().await, snapshot);

    // Every department: the other department's old call goes too, the recent ones stay.
    let all = report(&h, &["--older-than", &older_than, "--all-departments"]).await;
    assert_eq!(
        all.counts,
        PurgeCounts {
            calls: 1,
            transcripts: 1,
            phone_numbers: 1
        }
    );
    assert_eq!(kept(&c, 4).await, (false, false));
    assert_eq!(kept(&c, 2).await, (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_needs_an_age_and_takes_retention_days_as_its_default() {
    let h = Harness::start(World::default()).await;
    let c = h.db.client().await;
    insert_call(
        &c,
        1,
        DEPARTMENT,
        at(today() - Days::new(40), 12, 0, 0),
        true,
    )
    .await;
    insert_call(
        &c,
        2,
        DEPARTMENT,
        at(today() - Days::new(20), 12, 0, 0),
        true,
    )
    .await;
    // No --older-than and no RETENTION_DAYS: nothing is guessed.
    assert_eq!(h.callq(&["purge"]).await, ExitCode::BadInput);
    assert!(Cli::try_parse_from(["callq", "purge", "--older-than", "0"]).is_err());
    let mut text = std::fs::read_to_string(&h.env_path).unwrap();
    text.push_str("RETENTION_DAYS=30\n");
    std::fs::write(&h.env_path, &text).unwrap();
    let done = report(&h, &[]).await;
    assert_eq!(done.older_than_days, 30);
    assert_eq!(done.counts.calls, 1);
    assert_eq!(kept(&c, 1).await, (false, false));
    assert_eq!(kept(&c, 2).await, (true, true));
    // The flag wins over RETENTION_DAYS.
    assert_eq!(report(&h, &["--older-than", "10"]).await.counts.calls, 1);
    assert_eq!(kept(&c, 2).await, (false, false));

    text.push_str("RETENTION_DAYS=never\n");
    std::fs::write(&h.env_path, &text).unwrap();
    assert_eq!(h.callq(&["purge", "--dry-run"]).await, ExitCode::BadInput);
}

/// Batches of two calls: the loop goes on until none is left, and stops there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_works_in_batches() {
    callq::tls::install_crypto_provider();
    let db = TestDb::create().await;
    let store = Store::connect(&parse_database_url(&db.url).unwrap(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.ensure_department(DEPARTMENT).await.unwrap();
    let c = db.client().await;
    let old = NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
    for id in 1..=7 {
        insert_call(&c, id * 10, DEPARTMENT, at(old, 8, 0, id as u32), id != 4).await;
    }
    for id in 8..=10 {
        insert_call(
            &c,
            id * 10,
            DEPARTMENT,
            at(old + Days::new(1), 8, 0, 0),
            true,
        )
        .await;
    }
    let scope = PurgeScope {
        before: old + Days::new(1),
        department_id: None,
    };
    let expected = PurgeCounts {
        calls: 7,
        transcripts: 7,
        phone_numbers: 6,
    };
    assert_eq!(store.purge_counts(scope).await.unwrap(), expected);
    assert_eq!(store.purge(scope, 2).await.unwrap(), expected);
    assert_eq!(
        store.purge_counts(scope).await.unwrap(),
        PurgeCounts::default()
    );
    assert_eq!(store.purge(scope, 2).await.unwrap(), PurgeCounts::default());
    let (calls, transcripts, phones, evaluations, ..) = totals(&c).await;
    assert_eq!((calls, transcripts, phones, evaluations), (10, 3, 3, 10));
}
