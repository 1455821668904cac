//! Serves the fake T-Bank, Google and LLM gateway on loopback until SIGTERM or Ctrl-C, so a
//! callq that is not in this process (the release binary, the container image) can run a
//! night against them. `scripts/test-image` uses it.
//!
//!   serve DIR DAY CALLS DEPARTMENT
//!
//! T-Bank lists CALLS sample calls on DAY (YYYY-MM-DD). Written into DIR, then DIR/ready last:
//!   night.env                 the fakes' addresses and credentials, plain KEY=VALUE lines
//!                             (no quoting, no comments), for an env file or `--env` flags
//!   acc_google_api/key.json   the service-account key whose token_uri is the fake Google
//!   operators.csv             the calls' operators in DEPARTMENT, for `callq operators import`

use std::path::{Path, PathBuf};
use std::time::Duration;

use callq_fakes::scenario::{self, CHECKLIST_SHEET, INSTRUCTIONS_SHEET};
use callq_fakes::{FakeGoogle, FakeLlm, FakeTbank, GoogleConfig, LlmConfig, TbankConfig};
use chrono::NaiveDate;

const SHEET_ID: &str = "callq-fake-checklist";

fn usage() -> ! {
    eprintln!("usage: serve DIR DAY CALLS DEPARTMENT");
    std::process::exit(2)
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("serve: {}: {e}", path.display());
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, day, calls, department] = args.as_slice() else {
        usage()
    };
    let dir = PathBuf::from(dir);
    let Ok(day) = day.parse::<NaiveDate>() else {
        usage()
    };
    let Ok(calls) = calls.parse::<usize>() else {
        usage()
    };
    let Ok(department) = department.parse::<i32>() else {
        usage()
    };

    let tbank_cfg = TbankConfig {
        calls: scenario::sample_calls(day, calls),
        ..TbankConfig::default()
    };
    let (login, password, group) = (
        tbank_cfg.login.clone(),
        tbank_cfg.password.clone(),
        tbank_cfg.groups[0].1.clone(),
    );
    let tbank = FakeTbank::start(tbank_cfg).await;
    let google = FakeGoogle::start(GoogleConfig {
        spreadsheet_id: SHEET_ID.into(),
        sheets: vec![
            (CHECKLIST_SHEET.into(), scenario::sample_checklist_rows()),
            (
                INSTRUCTIONS_SHEET.into(),
                scenario::sample_instructions_rows(),
            ),
        ],
        latency: Duration::from_millis(2),
    })
    .await;
    let llm_cfg = LlmConfig::default();
    let (token, model) = (llm_cfg.token.clone(), llm_cfg.models[0].clone());
    let llm = FakeLlm::start(llm_cfg).await;

    let key_dir = dir.join("acc_google_api");
    if let Err(e) = std::fs::create_dir_all(&key_dir) {
        eprintln!("serve: {}: {e}", key_dir.display());
        std::process::exit(1);
    }
    write(
        &key_dir.join("key.json"),
        &google.service_account_key_json(),
    );
    let mut operators = String::from("id;full_name;department_id\n");
    for (id, _, name) in scenario::sample_operators() {
        operators.push_str(&format!("{id};{name};{department}\n"));
    }
    write(&dir.join("operators.csv"), &operators);
    let env = format!(
        "LOGIN={login}\nPASSWORD={password}\nAGENT_GROUP_NAME={group}\n\
         REQUIREMENTS_SHEET_ID={SHEET_ID}\nREQUIREMENTS_SHEET_NAME_CHECK_LIST={CHECKLIST_SHEET}\n\
         REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI={INSTRUCTIONS_SHEET}\n\
         TOKEN_LLM={token}\nMODEL={model}\n\
         TBANK_BASE_URL={tbank}\nGOOGLE_SHEETS_BASE_URL={google}\nLLM_BASE_URL={llm}\n",
        tbank = tbank.base_url(),
        google = google.base_url(),
        llm = llm.base_url(),
    );
    write(&dir.join("night.env"), &env);
    // Last, so a reader that waits for it finds the other files whole.
    write(&dir.join("ready"), "");
    eprintln!(
        "serve: T-Bank {}, Google {}, LLM {}; {calls} call(s) on {day}",
        tbank.base_url(),
        google.base_url(),
        llm.base_url()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop((tbank, google, llm));
}
