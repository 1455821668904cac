//! The edges of what T-Bank sends: characters PostgreSQL refuses, the first and last
//! moments of a day, answers that are neither a transcript nor an HTTP error.

use crate::common::{Harness, World, call};
use callq::exit::ExitCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_from_tbank_are_removed_before_saving() {
    let world = World {
        calls: vec![
            call(
                1,
                (5512, "Иванова\0 Анна"),
                &[(true, "Добрый\0 день"), (false, "Здравствуйте\0")],
            ),
            call(2, (9001, "Смирнов\0 Павел"), &[(true, "Алло")]),
        ],
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let c = h.db.client().await;
    let transcript: String = c
        .query_one(
            "SELECT transcript FROM call_transcripts WHERE call_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        transcript, "operator: Добрый день\nclient: Здравствуйте\n",
        "phrases cleaned"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE id = 1 AND operator_id = 5512")
            .await,
        1,
        "the cleaned name matches the directory"
    );
    let unknown: Vec<String> = c
        .query_one("SELECT unknown_operators FROM runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unknown, vec!["Смирнов Павел".to_string()]);
}
