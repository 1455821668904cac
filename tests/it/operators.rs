//! The operator directory end to end: `callq operators import` against a real database, and
//! unknown operators recorded by a run and listed by `callq operators unknown`.

use std::path::PathBuf;

use crate::common::{DEPARTMENT, Harness, World, call, day};
use callq::commands::operators::{ImportError, import_file, unknown_report};
use callq::config::Env;
use callq::severity::ExitCode;
use callq::severity::Severe;
use callq::store::ImportCounts;

const KNOWN: (i64, &str) = (5512, "Иванова Анна");
const STRANGER: (i64, &str) = (9001, "Менеджер Смирнов Павел (ООО Ромашка)");

fn env(h: &Harness) -> Env {
    Env::load_with(&h.env_path, true, Vec::new())
}

fn write_csv(h: &Harness, name: &str, text: &str) -> PathBuf {
    let path = h.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every row of the directory tables, as text.
async fn directory(h: &Harness) -> Vec<String> {
    let c = h.db.client().await;
    let mut out = Vec::new();
    for table in ["departments", "offices", "supervisors", "operators"] {
        let rows = c
            .query(
                &format!("SELECT row_to_json(t)::text FROM (SELECT * FROM {table} ORDER BY id) t"),
                &[],
            )
            .await
            .unwrap();
        out.extend(
            rows.iter()
                .map(|r| format!("{table}: {}", r.get::<_, String>(0))),
        );
    }
    out
}

/// The `unknown_operators` rows: (department, day, name, calls).
async fn recorded(h: &Harness) -> Vec<(i32, String, String, i32)> {
    h.db.client()
        .await
        .query(
            "SELECT department_id, call_date::text, operator_name, calls
               FROM unknown_operators ORDER BY operator_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Days from the test day to today in CALLS_TIMEZONE, with a day to spare.
fn days_back_to_test_day() -> u32 {
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .date_naive();
    (today - day()).num_days() as u32 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let h = Harness::start(World::default()).await;
    // Russian Excel: a BOM, semicolons, CRLF.
    let path = write_csv(
        &h,
        "operators.csv",
        "\u{feff}id;full_name;department_id;office;supervisor\r\n\
         5512;Иванова Анна Сергеевна;1;;\r\n\
         5513;Петров Иван Петрович;1;;\r\n\
         6001;Смирнов Павел;1;Москва, Тверская 1;Орлова Ирина\r\n\
         6002;Кузнецова Ольга;1;Москва, Тверская 1;\r\n",
    );

    let first = import_file(&path, &env(&h)).await.expect("first import");
    assert_eq!(
        first,
        ImportCounts {
            inserted: 2,
            updated: 1,
            unchanged: 1,
            offices_created: 1,
            supervisors_created: 1,
        }
    );
    let after_first = directory(&h).await;

    let second = import_file(&path, &env(&h)).await.expect("second import");
    assert_eq!(
        second,
        ImportCounts {
            inserted: 0,
            updated: 0,
            unchanged: 4,
            offices_created: 0,
            supervisors_created: 0,
        }
    );
    assert_eq!(directory(&h).await, after_first);
    // And through the command line.
    let shown = path.display().to_string();
    assert_eq!(
        h.callq(&["operators", "import", &shown]).await,
        ExitCode::Ok
    );
    assert_eq!(directory(&h).await, after_first);

    let c = h.db.client().await;
    let row = c
        .query_one(
            "SELECT o.full_name, f.name, s.full_name FROM operators o
               JOIN offices f ON f.id = o.office_id JOIN supervisors s ON s.id = o.supervisor_id
              WHERE o.id = 6001",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Смирнов Павел");
    assert_eq!(row.get::<_, String>(1), "Москва, Тверская 1");
    assert_eq!(row.get::<_, String>(2), "Орлова Ирина");
    assert_eq!(
        h.count("SELECT count(DISTINCT office_id) FROM operators WHERE id IN (6001, 6002)")
            .await,
        1,
        "one office found or created by name"
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM operators WHERE id = 5513 AND full_name = 'Петров Иван Петрович'"
        )
        .await,
        1
    );

    // A changed name and department are updated; a file without the office column leaves
    // offices alone.
    c.execute(
        "INSERT INTO departments (id, name) VALUES (2, 'Удержание')",
        &[],
    )
    .await
    .unwrap();
    let moved = write_csv(
        &h,
        "moved.csv",
        "id,full_name,department_id\n6001,Смирнов Павел Андреевич,2\n6002,Кузнецова Ольга,1\n",
    );
    assert_eq!(
        import_file(&moved, &env(&h)).await.unwrap(),
        ImportCounts {
            updated: 1,
            unchanged: 1,
            ..ImportCounts::default()
        }
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM operators WHERE id = 6001 AND department_id = 2
                AND full_name = 'Смирнов Павел Андреевич' AND office_id IS NOT NULL"
        )
        .await,
        1
    );

    // Imported ids moved the id sequence past them: a row added without an id gets a new one.
    let id: i32 = c
        .query_one(
            "INSERT INTO operators (full_name, department_id) VALUES ('Новый Оператор', 1) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(id > 6002, "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_bad_lines_is_refused_whole_with_every_line_named() {
    let h = Harness::start(World::default()).await;
    let before = directory(&h).await;
    let path = write_csv(
        &h,
        "bad.csv",
        "id,full_name,department_id\n\
         6001,Смирнов Павел,1\n\
         ,Без Номера,1\n\
         шесть,Буквенный Номер,1\n\
         6004,,1\n\
         6005,Кузнецова Ольга,первый\n\
         6001,Смирнов Павел (дубль),1\n\
         6007,Орлов Игорь,77\n\
         6008,Белов Андрей,1\n",
    );
    let shown = path.display().to_string();
    assert_eq!(
        h.callq(&["operators", "import", &shown]).await,
        ExitCode::BadInput
    );
    assert_eq!(directory(&h).await, before, "nothing written");

    let err = import_file(&path, &env(&h)).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    let ImportError::Invalid { lines, .. } = &err else {
        panic!("{err}")
    };
    let numbers: Vec<u64> = lines.iter().map(|l| l.line).collect();
    assert_eq!(numbers, vec![3, 4, 5, 6, 7, 8], "{err}");
    let text = err.to_string();
    for expected in [
        "6 bad line(s), nothing imported",
        "line 3: missing id",
        "line 4: id \"шесть\" is not a positive integer",
        "line 5: empty full_name",
        "line 6: department_id \"первый\" is not a positive integer",
        "line 7: duplicate id 6001 (first on line 2)",
        "line 8: department_id 77 is not in `departments`",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert_eq!(directory(&h).await, before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_operators_are_listed_until_they_are_imported() {
    let world = World {
        calls: vec![
            call(1, STRANGER, &[(true, "Алло")]),
            call(2, STRANGER, &[(true, "Алло")]),
            call(3, KNOWN, &[(true, "Добрый день"), (false, "Здравствуйте")]),
        ],
        ..World::default()
    };
    let h = Harness::start(world).await;
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let expected = vec![(DEPARTMENT, day().to_string(), STRANGER.1.to_string(), 2)];
    assert_eq!(recorded(&h).await, expected);

    // A re-run of the day sees the same calls: the count is replaced, not added to.
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(recorded(&h).await, expected);
    // A dry run records nothing.
    h.db.client()
        .await
        .execute("DELETE FROM unknown_operators", &[])
        .await
        .unwrap();
    assert_eq!(h.run(&["--dry-run"]).await, ExitCode::Ok);
    assert!(recorded(&h).await.is_empty());
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(recorded(&h).await, expected);

    // Another department's names are left out: the env file sets DEPARTAMENT_ID.
    h.db.client()
        .await
        .execute(
            "INSERT INTO unknown_operators (department_id, call_date, operator_name, calls)
             VALUES (2, $1, 'Чужой Оператор', 9)",
            &[&day()],
        )
        .await
        .unwrap();

    let days = days_back_to_test_day();
    let report = unknown_report(days, &env(&h)).await.unwrap();
    assert_eq!(report.department_id, Some(DEPARTMENT));
    let listed: Vec<(String, i64, String)> = report
        .rows
        .iter()
        .map(|r| (r.operator_name.clone(), r.calls, r.last_day.to_string()))
        .collect();
    assert_eq!(listed, vec![(STRANGER.1.to_string(), 2, day().to_string())]);
    // The test day is older than the default 30 days.
    assert!(unknown_report(30, &env(&h)).await.unwrap().rows.is_empty());

    // The binary prints the table.
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_callq"));
    for var in callq::config::KNOWN_VARS {
        command.env_remove(var);
    }
    let out = command
        .args([
            "operators",
            "unknown",
            "--days",
            &days.to_string(),
            "--env-file",
        ])
        .arg(&h.env_path)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains(STRANGER.1))
        .unwrap_or_else(|| panic!("{} not listed:\n{stdout}", STRANGER.1));
    let cells: Vec<&str> = line.split_whitespace().take(3).collect();
    assert_eq!(
        cells,
        vec![DEPARTMENT.to_string(), "2".to_string(), day().to_string()],
        "{stdout}"
    );
    assert!(!stdout.contains("Чужой Оператор"), "{stdout}");

    // Once the directory has the operator (spelled its own way), the name is not listed.
    let path = write_csv(
        &h,
        "new.csv",
        "id,full_name,department_id\n9001,Смирнов Павел Андреевич,1\n",
    );
    let shown = path.display().to_string();
    assert_eq!(
        h.callq(&["operators", "import", &shown]).await,
        ExitCode::Ok
    );
    assert!(
        unknown_report(days, &env(&h))
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    // And the next run scores those calls.
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 3);
    let left: Vec<String> = recorded(&h).await.into_iter().map(|r| r.2).collect();
    assert_eq!(
        left,
        vec!["Чужой Оператор"],
        "the run replaced its department's day, and only that"
    );
}

#[tokio::test]
async fn completions_need_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_callq"))
        .args(["completions", "bash"])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let script = dir.path().join("callq.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(check.success(), "bash -n failed on the completions");
    assert!(String::from_utf8_lossy(&out.stdout).contains("operators"));
}
