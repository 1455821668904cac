//! `callq export` against real PostgreSQL: BOM, header, delimiter, filters, the review
//! queue's view required.

use crate::common::{Harness, World, day};
use callq::severity::ExitCode;

fn read(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>, u8) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(callq::export::BOM), "UTF-8 BOM first");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let delimiter = if text.lines().next().unwrap().contains(';') {
        b';'
    } else {
        b','
    };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows, delimiter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_the_views_as_csv() {
    let h = Harness::start(World::default()).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let out = h.dir.path().join("calls.csv");
    let out_s = out.display().to_string();

    assert_eq!(
        h.callq(&["export", "calls", "--out", &out_s, "--delimiter", ";"])
            .await,
        ExitCode::Ok
    );
    let (header, rows, delimiter) = read(&out);
    assert_eq!(delimiter, b';');
    assert_eq!(&header[..3], ["call_id", "day", "start_time"]);
    assert_eq!(
        rows.len() as i64,
        h.count("SELECT count(*) FROM v_scored_calls").await
    );
    let d = day().to_string();
    assert!(rows.iter().all(|r| r[1] == d));
    let name_col = header.iter().position(|c| c == "operator_name").unwrap();
    assert!(rows.iter().any(|r| r[name_col] == "Иванова Анна Сергеевна"));

    // Filters: nothing is below 0 %; one operator; a day with no calls.
    h.callq(&["export", "calls", "--out", &out_s, "--max-percent", "0"])
        .await;
    assert_eq!(read(&out).1.len(), 0);
    h.callq(&["export", "calls", "--out", &out_s, "--operator", "5513"])
        .await;
    assert_eq!(read(&out).1.len(), 2, "5513 has calls 1 and 4 of the six");
    h.callq(&[
        "export",
        "calls",
        "--out",
        &out_s,
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
    ])
    .await;
    assert_eq!(read(&out).1.len(), 0);

    h.callq(&["export", "evaluations", "--out", &out_s]).await;
    let (header, rows, _) = read(&out);
    assert!(header.contains(&"criterion".to_string()) && header.contains(&"reason".to_string()));
    assert_eq!(
        rows.len() as i64,
        h.count("SELECT count(*) FROM call_evaluations").await
    );
    h.callq(&["export", "recommendations", "--out", &out_s])
        .await;
    assert_eq!(
        read(&out).1.len() as i64,
        h.count("SELECT count(*) FROM call_recommendations").await
    );

    // The review queue as the migrations define it.
    assert_eq!(
        h.callq(&["export", "review", "--department", "1", "--out", &out_s])
            .await,
        ExitCode::Ok
    );
    assert_eq!(
        read(&out).1.len() as i64,
        h.count("SELECT count(*) FROM v_review_queue").await
    );
    // A database without the view (an older schema) gets a clear error, exit 2.
    h.db.client()
        .await
        .batch_execute("DROP VIEW v_review_queue")
        .await
        .unwrap();
    assert_eq!(
        h.callq(&["export", "review", "--out", &out_s]).await,
        ExitCode::BadInput
    );
    h.db.client()
        .await
        .batch_execute(
            "CREATE VIEW v_review_queue AS
             SELECT call_id, operator_id, operator_name, day, performance_percentage,
                    ARRAY['low_score', 'zero; on critical']::text[] AS review_reasons
             FROM v_scored_calls",
        )
        .await
        .unwrap();
    assert_eq!(
        h.callq(&["export", "review", "--out", &out_s]).await,
        ExitCode::Ok
    );
    let (header, rows, _) = read(&out);
    assert_eq!(header.last().unwrap(), "review_reasons");
    assert_eq!(
        rows.len() as i64,
        h.count("SELECT count(*) FROM v_scored_calls").await
    );
    assert_eq!(rows[0].last().unwrap(), "low_score; zero; on critical");
    assert_eq!(
        h.callq(&["export", "review", "--department", "1", "--out", &out_s])
            .await,
        ExitCode::BadInput,
        "the stand-in view has no department_id"
    );
}
