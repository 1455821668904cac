//! `callq report` over a day scored through the fakes: figures equal the views, database
//! text is escaped, the review queue appears only when its view exists, nothing external
//! is referenced.

use std::io::Write;

use crate::common::{Harness, World, day};
use callq::severity::ExitCode;

/// The review queue as the view's own migration may define it; this test's stand-in.
const REVIEW_VIEW: &str = "
CREATE VIEW v_review_queue AS
SELECT s.call_id, s.operator_id, s.operator_name, s.department_id, s.day, s.performance_percentage,
       ARRAY['низкий балл <70%']::text[] AS review_reasons,
       (SELECT jsonb_agg(jsonb_build_object('criterion', e.criterion, 'score', e.score,
                                            'max_score', e.max_score, 'evidence', e.reason))
        FROM call_evaluations e WHERE e.call_id = s.call_id AND e.score < e.max_score) AS failing_criteria
FROM v_scored_calls s";

fn figure(html: &str, key: &str) -> String {
    let marker = format!("data-figure=\"{key}\" data-value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {key} figure"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
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
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let c = h.db.client().await;
    // First as on a database without the review queue's view (an older schema); the
    // queue is tested below with a stand-in view of known content.
    c.batch_execute("DROP VIEW v_review_queue").await.unwrap();
    c.execute(
        "UPDATE operators SET full_name = $1 WHERE id = 5512",
        &[&"Иванова <script>alert(1)</script> & \"Ко\""],
    )
    .await
    .unwrap();

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
        !html.contains("id=\"review\""),
        "no review queue without its view"
    );

    // With the view, the queue appears with reasons, failing criteria and their quotes.
    c.batch_execute(REVIEW_VIEW).await.unwrap();
    let html = render(&h, &["--operator", "5513"]).await;
    assert!(html.contains("id=\"review\""));
    assert!(html.contains("низкий балл &lt;70%"));
    assert!(html.contains("Цитата: «Обращение по имени»"));
    assert!(html.contains("data-operator=\"5513\""));
    assert!(
        !html.contains("id=\"operator-5512\""),
        "only the operator asked for"
    );

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
