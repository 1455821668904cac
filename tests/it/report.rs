//! `callq report` over a day scored through the fakes: figures equal the views, database
//! text is escaped, the review queue (as its migration defines it) says why each call and
//! criterion is there and marks quotes the transcript lacks, nothing external is referenced.

use std::io::Write;

use crate::common::{Harness, World, day};
use callq::severity::ExitCode;
use callq_fakes::INVENTED_QUOTE;

fn figure(html: &str, key: &str) -> String {
    let marker = format!("data-figure=\"{key}\" data-value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {key} figure"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// The review table's row of a call.
fn review_row(html: &str, call_id: i64) -> &str {
    let start = html
        .find(&format!("<tr data-call-id=\"{call_id}\">"))
        .unwrap_or_else(|| panic!("call {call_id} is not in the review queue"));
    let len = html[start..].find("</tr>").unwrap();
    &html[start..start + len]
}

/// The `<div class="failing">` of a criterion in a review row.
fn failing<'a>(row: &'a str, criterion: &str) -> &'a str {
    let start = row
        .find(&format!(">{criterion}</b>"))
        .unwrap_or_else(|| panic!("{criterion} is not listed"));
    let len = row[start..].find("</div>").unwrap();
    &row[start..start + len]
}

async fn render(h: &Harness, extra: &[&str]) -> String {
    let out = h.dir.path().join("report.html");
    let out_s = out.display().to_string();
    let mut args = vec!["report", "--out", &out_s];
    args.extend_from_slice(extra);
    assert_eq!(h.callq(&args).await, ExitCode::Ok);
    std::fs::read_to_string(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_shows_what_the_views_show_and_escapes_database_text() {
    let mut world = World::default();
    world.calls[1]
        .phrases
        .push((false, "Просто узнать баланс [not-sales]".into()));
    // Into the review queue: a 10/10 criterion backed by an invented quote; a weak call
    // whose only 0 is the critical "Презентация"; a call at 0 everywhere.
    world.calls[0]
        .phrases
        .push((false, "[evidence:invented]".into()));
    world.calls[2].phrases.push((false, "[quality:33]".into()));
    world.calls[3].phrases.push((false, "[score-zero]".into()));
    let presentation = world
        .checklist_rows
        .iter_mut()
        .find(|r| r.first().is_some_and(|c| c == "Презентация"))
        .unwrap();
    presentation.resize(4, String::new());
    presentation.push("да".into());
    let zeros_at_33: Vec<usize> = callq_fakes::scenario::sample_checklist_criteria()
        .iter()
        .enumerate()
        .filter(|(i, (_, _, max))| callq_fakes::llm::quality_score(*i, *max, 33) == 0.0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        zeros_at_33,
        [4],
        "at quality 33 the fake scores only the presentation 0"
    );
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let c = h.db.client().await;
    c.execute(
        "UPDATE operators SET full_name = $1 WHERE id = 5512",
        &[&"Иванова <script>alert(1)</script> & \"Ко\""],
    )
    .await
    .unwrap();
    let reasons = |id: i64| {
        let c = &c;
        async move {
            c.query_one("SELECT review_reasons FROM calls WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, Vec<String>>(0)
        }
    };
    assert_eq!(reasons(90_000_000).await, ["unverified_evidence"]);
    assert_eq!(reasons(90_000_002).await, ["low_score", "critical_missed"]);
    assert_eq!(reasons(90_000_003).await, ["low_score", "critical_missed"]);

    let html = render(&h, &[]).await;
    assert!(
        html.contains("Иванова &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &quot;Ко&quot;")
    );
    assert!(!html.contains("<script>alert(1)"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external reference"
    );
    assert!(html.contains("<html lang=\"ru\">") && html.contains("Оценено звонков"));
    // The default range ends at the latest scored day.
    assert!(html.contains(&format!("data-to=\"{}\"", day())));

    let scored: i64 = h.count("SELECT count(*) FROM v_scored_calls").await;
    assert_eq!(scored, 5);
    assert_eq!(figure(&html, "calls_scored"), scored.to_string());
    assert_eq!(figure(&html, "not_sales"), "1");
    let avg: f64 = c
        .query_one(
            "SELECT avg(performance_percentage)::float8 FROM v_scored_calls",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(figure(&html, "avg_pct"), format!("{avg:.6}"));
    for id in [5512, 5513, 5514] {
        assert!(
            html.contains(&format!("id=\"operator-{id}\"")),
            "section of {id}"
        );
    }
    assert!(
        html.contains("Не выявлена потребность"),
        "open recommendations"
    );
    assert!(
        html.contains("data-delta-pct=\"\""),
        "no per cent from nothing"
    );

    // The review queue: reasons in Russian, each criterion with why it is listed, the
    // invented quote marked where it is read, the found ones not.
    assert!(html.contains("id=\"review\""));
    for code in ["low_score", "critical_missed", "unverified_evidence"] {
        assert!(
            !html.contains(&format!(">{code}<")),
            "{code} is shown as a raw code"
        );
    }
    let row = review_row(&html, 90_000_000);
    assert!(
        row.contains("data-reason=\"unverified_evidence\">цитата не найдена в расшифровке</span>")
    );
    let greeting = failing(row, "Приветствие");
    assert!(greeting.contains("10&#x2f;10"), "{greeting}");
    assert!(greeting.contains("data-why=\"quote_not_found\""));
    assert!(!greeting.contains("data-why=\"points_lost\""));
    let quote = &greeting[greeting.find("<blockquote").unwrap()..];
    assert!(quote.starts_with("<blockquote class=\"quote unverified\" data-verified=\"false\">"));
    assert!(quote.contains("⚠ цитата не найдена в расшифровке</span>"));
    assert!(quote.contains(INVENTED_QUOTE));
    let found = failing(row, "Обращение по имени");
    assert!(found.contains("data-why=\"points_lost\""));
    assert!(found.contains("потеряно 3 из 5"), "{found}");
    assert!(found.contains("<blockquote class=\"quote\" data-verified=\"true\">"));
    assert!(!found.contains("не найдена"));
    assert_eq!(
        html.matches("data-verified=\"false\"").count() as i64,
        h.count("SELECT count(*) FROM call_evaluations WHERE evidence_verified = false AND evidence <> ''")
            .await
    );

    let row = review_row(&html, 90_000_002);
    assert!(row.contains("data-reason=\"low_score\">низкий процент</span>"));
    assert!(row.contains("data-reason=\"critical_missed\">критичный критерий на нуле</span>"));
    let presentation = failing(row, "Презентация");
    assert!(presentation.contains("data-why=\"critical\">критичный критерий: 0 баллов"));
    assert!(presentation.contains("потеряно 5 из 5"), "{presentation}");
    assert!(failing(row, "Уточнение бюджета").contains("потеряно 1,5 из 2,5"));
    assert!(!failing(row, "Приветствие").contains("critical"));
    // Every criterion at 0: which one is critical is the checklist's to say.
    let row = review_row(&html, 90_000_003);
    assert!(failing(row, "Прощание").contains("data-why=\"critical_possible\""));
    assert!(!row.contains("data-why=\"critical\""));

    // One operator's page lists only their calls.
    let html = render(&h, &["--operator", "5514"]).await;
    assert!(html.contains("data-operator=\"5514\""));
    assert!(html.contains("<tr data-call-id=\"90000002\">"));
    assert!(!html.contains("<tr data-call-id=\"90000000\">"));
    assert!(
        !html.contains("id=\"operator-5512\""),
        "only the operator asked for"
    );

    // A database without the view (a schema before the review queue): no section.
    c.batch_execute("DROP VIEW v_review_queue").await.unwrap();
    let html = render(&h, &[]).await;
    assert!(
        !html.contains("id=\"review\""),
        "no review queue without its view"
    );
    c.batch_execute(include_str!("../../db/migrations/0006_quality.sql"))
        .await
        .unwrap();

    // English on request, and a range of its own.
    let mut env = std::fs::OpenOptions::new()
        .append(true)
        .open(&h.env_path)
        .unwrap();
    writeln!(env, "REPORT_LANG=en").unwrap();
    let d = day().to_string();
    let html = render(&h, &["--from", &d, "--to", &d]).await;
    assert!(html.contains("<html lang=\"en\">") && html.contains("Calls scored"));
    assert_eq!(figure(&html, "calls_scored"), "5");
    let row = review_row(&html, 90_000_000);
    assert!(
        row.contains(
            "data-reason=\"unverified_evidence\">quote not found in the transcript</span>"
        )
    );
    assert!(row.contains("⚠ quote not found in the transcript</span>"));
    assert!(review_row(&html, 90_000_002).contains("data-reason=\"low_score\">low score</span>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_rejects_a_backward_range_and_a_bad_language() {
    let h = Harness::start(World {
        env_extra: "REPORT_LANG=de\n".into(),
        ..World::default()
    })
    .await;
    let out = h.dir.path().join("r.html").display().to_string();
    assert_eq!(
        h.callq(&["report", "--out", &out]).await,
        ExitCode::BadInput,
        "REPORT_LANG=de"
    );
    let text = std::fs::read_to_string(&h.env_path)
        .unwrap()
        .replace("REPORT_LANG=de", "");
    std::fs::write(&h.env_path, text).unwrap();
    assert_eq!(
        h.callq(&[
            "report",
            "--from",
            "2025-08-07",
            "--to",
            "2025-08-01",
            "--out",
            &out
        ])
        .await,
        ExitCode::BadInput
    );
    assert!(!std::path::Path::new(&out).exists());
}
