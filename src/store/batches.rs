//! Batches at the gateway and their calls (`llm_batches`, `llm_batch_calls`, migration
//! 0009): the intent recorded before the upload, the gateway's ids as they come, the calls
//! with what their save needs, a collector's lock, each collected call saved exactly once,
//! and a batch that never reached the gateway given back.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::types::ToSql;

use super::experiment::{ExperimentCall, write_experiment_call};
use super::save::{CallRecord, write_call_with};
use super::{Store, StoreError};

/// Batch states that are not finished: the batch may still be answered.
pub const OPEN_STATES: [&str; 4] = ["filling", "uploading", "creating", "submitted"];

/// A new batch: the intent, recorded before anything is uploaded.
pub struct NewBatch<'a> {
    pub department_id: i32,
    pub day: NaiveDate,
    /// The run whose calls it holds; `None` for a canary batch.
    pub run_id: Option<i64>,
    /// The canary night whose calls it holds (scored into that night's experiment).
    pub canary_night: Option<i64>,
    pub tag: &'a str,
    pub model: &'a str,
    pub checklist_version: &'a str,
    pub prompt_version: &'a str,
}

/// One call as a batch keeps it until it is collected.
#[derive(Debug, Clone)]
pub struct BatchCall {
    pub call_id: i64,
    pub custom_id: String,
    pub operator_id: i64,
    pub start_local: NaiveDateTime,
    pub finish_local: Option<NaiveDateTime>,
    pub duration_s: i64,
    pub direction: Option<String>,
    /// As PHONE_STORE says to store it.
    pub phone: Option<String>,
    /// The masked text the model saw.
    pub transcript: String,
    /// The transcript as TRANSCRIPT_STORE says to store it.
    pub stored_transcript: Option<String>,
}

impl BatchCall {
    /// The transcript the save stores.
    pub fn stored(&self) -> Option<&str> {
        self.stored_transcript.as_deref()
    }
}

/// A collected call's row, with its state (`pending`, `saved`, `failed`).
pub struct CollectedCall {
    pub call: BatchCall,
    pub state: String,
}

/// A batch as recorded.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub id: i64,
    pub department_id: i32,
    pub day: NaiveDate,
    pub run_id: Option<i64>,
    pub tag: String,
    pub state: String,
    pub file_id: Option<String>,
    pub batch_id: Option<String>,
    pub gateway_status: Option<String>,
    pub requests: i32,
    pub created_at: DateTime<Utc>,
    pub model: Option<String>,
    pub checklist_version: Option<String>,
    pub prompt_version: Option<String>,
    pub saved: i32,
    pub failed: i32,
    pub bad_lines: i32,
    pub cost_usd: Option<f64>,
    pub last_error: Option<String>,
    /// Whether the run that submitted it is still running (and alive).
    pub run_alive: bool,
    /// Calls of it not collected yet.
    pub pending: i64,
    /// The canary night it scores, for a canary batch.
    pub canary_night: Option<i64>,
}

const BATCH_COLUMNS: &str = "b.id, b.department_id, b.call_date, b.run_id, b.tag, b.state,
    b.file_id, b.batch_id, b.gateway_status, b.requests, b.created_at, b.model,
    b.checklist_version, b.prompt_version, b.saved, b.failed, b.bad_lines, b.cost_usd,
    b.last_error,
    CASE WHEN b.run_id IS NULL
         THEN b.process_key IS NOT NULL AND callq_run_alive(b.process_key, NULL)
         ELSE coalesce(r.status = 'running' AND callq_run_alive(r.process_key, r.heartbeat_at), false)
    END,
    (SELECT count(*) FROM llm_batch_calls c WHERE c.batch_id = b.id AND c.state = 'pending'),
    b.canary_night_id";

fn batch_row(r: &tokio_postgres::Row) -> BatchRow {
    BatchRow {
        id: r.get(0),
        department_id: r.get(1),
        day: r.get(2),
        run_id: r.get(3),
        tag: r.get(4),
        state: r.get(5),
        file_id: r.get(6),
        batch_id: r.get(7),
        gateway_status: r.get(8),
        requests: r.get(9),
        created_at: r.get(10),
        model: r.get(11),
        checklist_version: r.get(12),
        prompt_version: r.get(13),
        saved: r.get(14),
        failed: r.get(15),
        bad_lines: r.get(16),
        cost_usd: r.get(17),
        last_error: r.get(18),
        run_alive: r.get(19),
        pending: r.get(20),
        canary_night: r.get(21),
    }
}

/// The advisory lock of one batch's collection, on a connection of its own: one collector
/// per batch at a time. Released by [`BatchLock::release`]; dropped without it, its
/// connection is closed (not returned to the pool), which releases the lock too.
pub struct BatchLock {
    client: Option<deadpool_postgres::Object>,
    key: i64,
}

impl BatchLock {
    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            match client
                .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
                .await
            {
                Ok(_) => drop(client),
                Err(_) => drop(deadpool_postgres::Object::take(client)),
            }
        }
    }
}

impl Drop for BatchLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The collection lock's key: the batch's id under a constant of its own, so it meets no
/// other advisory lock callq takes.
fn lock_key(id: i64) -> i64 {
    (0x6361_6c6c_7162_i64 << 16) ^ id
}

impl Store {
    /// Records a batch's intent (state `filling`) and returns its id.
    pub async fn open_batch(&self, b: &NewBatch<'_>) -> Result<i64, StoreError> {
        self.timed("a batch's record", async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "INSERT INTO llm_batches (department_id, call_date, run_id, tag, model,
                                              checklist_version, prompt_version, canary_night_id,
                                              process_key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &b.department_id,
                        &b.day,
                        &b.run_id,
                        &b.tag,
                        &b.model,
                        &b.checklist_version,
                        &b.prompt_version,
                        &b.canary_night,
                        &self.process_key,
                    ],
                )
                .await?;
            Ok::<_, StoreError>(row.get(0))
        })
        .await
    }

    /// Adds calls to a batch being filled, and ties their claims (held by `run_id`; a
    /// canary batch has none) to it, in one statement.
    pub async fn add_batch_calls(
        &self,
        batch: i64,
        run_id: Option<i64>,
        calls: &[BatchCall],
    ) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        self.timed("a batch's calls", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "WITH added AS (
                         INSERT INTO llm_batch_calls (batch_id, call_id, custom_id, operator_id,
                             start_local, finish_local, duration_s, direction, phone, transcript,
                             stored_transcript, store_transcript)
                         SELECT $1::bigint, * FROM unnest($3::bigint[], $4::text[], $5::bigint[],
                             $6::timestamp[], $7::timestamp[], $8::bigint[], $9::text[], $10::text[],
                             $11::text[], $12::text[], $13::boolean[])),
                     claims AS (
                         UPDATE call_claims SET batch_id = $1::bigint
                         WHERE run_id = $2::bigint AND call_id = ANY($3::bigint[]))
                     SELECT 1",
                )
                .await?;
            let ids: Vec<i64> = calls.iter().map(|c| c.call_id).collect();
            let custom: Vec<&str> = calls.iter().map(|c| c.custom_id.as_str()).collect();
            let operators: Vec<i64> = calls.iter().map(|c| c.operator_id).collect();
            let starts: Vec<NaiveDateTime> = calls.iter().map(|c| c.start_local).collect();
            let finishes: Vec<Option<NaiveDateTime>> =
                calls.iter().map(|c| c.finish_local).collect();
            let durations: Vec<i64> = calls.iter().map(|c| c.duration_s).collect();
            let directions: Vec<Option<&str>> =
                calls.iter().map(|c| c.direction.as_deref()).collect();
            let phones: Vec<Option<&str>> = calls.iter().map(|c| c.phone.as_deref()).collect();
            let texts: Vec<&str> = calls.iter().map(|c| c.transcript.as_str()).collect();
            // The stored transcript is kept only when it is not the text the model saw.
            let stored: Vec<Option<&str>> = calls
                .iter()
                .map(|c| c.stored().filter(|s| *s != c.transcript))
                .collect();
            let store: Vec<bool> = calls.iter().map(|c| c.stored().is_some()).collect();
            let params: [&(dyn ToSql + Sync); 13] = [
                &batch,
                &run_id,
                &ids,
                &custom,
                &operators,
                &starts,
                &finishes,
                &durations,
                &directions,
                &phones,
                &texts,
                &stored,
                &store,
            ];
            client.execute(&stmt, &params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// The batch's file is about to be uploaded: the intent, with its size.
    pub async fn batch_uploading(
        &self,
        batch: i64,
        requests: usize,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let requests = i32::try_from(requests).unwrap_or(i32::MAX);
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.update_batch(
            "UPDATE llm_batches SET state = 'uploading', requests = $2, bytes = $3 WHERE id = $1",
            &[&batch, &requests, &bytes],
        )
        .await
    }

    /// The file is at the gateway; the batch is being created.
    pub async fn batch_uploaded(&self, batch: i64, file_id: &str) -> Result<(), StoreError> {
        self.update_batch(
            "UPDATE llm_batches SET state = 'creating', file_id = $2 WHERE id = $1",
            &[&batch, &file_id],
        )
        .await
    }

    /// The gateway has the batch.
    pub async fn batch_submitted(
        &self,
        batch: i64,
        gateway_id: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        self.update_batch(
            "UPDATE llm_batches SET state = 'submitted', batch_id = $2, gateway_status = $3,
                 submitted_at = now()
             WHERE id = $1",
            &[&batch, &gateway_id, &status],
        )
        .await
    }

    /// What the gateway said of the batch when last asked.
    pub async fn batch_polled(
        &self,
        batch: i64,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_batch(
            "UPDATE llm_batches SET gateway_status = $2, last_error = coalesce($3, last_error)
             WHERE id = $1",
            &[&batch, &status, &error],
        )
        .await
    }

    /// Every line read: the batch is done, with its counts and cost.
    pub async fn batch_collected(
        &self,
        batch: i64,
        bad_lines: u64,
        cost_usd: Option<f64>,
    ) -> Result<(), StoreError> {
        let bad = i32::try_from(bad_lines).unwrap_or(i32::MAX);
        self.update_batch(
            "UPDATE llm_batches SET state = 'collected', collected_at = now(),
                 bad_lines = bad_lines + $2,
                 cost_usd = CASE WHEN $3::float8 IS NULL THEN cost_usd
                                 ELSE coalesce(cost_usd, 0) + $3 END,
                 saved = (SELECT count(*) FROM llm_batch_calls WHERE batch_id = $1 AND state = 'saved'),
                 failed = (SELECT count(*) FROM llm_batch_calls WHERE batch_id = $1 AND state = 'failed')
             WHERE id = $1",
            &[&batch, &bad, &cost_usd],
        )
        .await
    }

    async fn update_batch(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), StoreError> {
        self.timed("a batch's record", async {
            let client = self.client().await?;
            client.execute(sql, params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// Gives a batch's calls back: the batch never reached the gateway (or will never be
    /// answered). Its pending calls are recorded as failed at the `batch` stage (so the
    /// nightly run scores them again), their transcripts removed, their claims released,
    /// and the batch marked `state` (`released`, or `collected` for a finished batch's
    /// unanswered rest) — one statement. Returns how many calls were given back. A canary
    /// batch's lines become failed rows of its night's experiment instead.
    pub async fn give_back_batch(
        &self,
        batch: i64,
        state: &str,
        error: &str,
    ) -> Result<u64, StoreError> {
        self.timed("giving a batch's calls back", async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "WITH b AS (SELECT id, department_id, call_date, run_id, canary_night_id
                                FROM llm_batches WHERE id = $1),
                     given AS (
                         UPDATE llm_batch_calls SET state = 'failed', transcript = NULL,
                                stored_transcript = NULL
                         WHERE batch_id = $1 AND state = 'pending'
                         RETURNING call_id),
                     failures AS (
                         INSERT INTO call_failures (call_id, department_id, call_date, run_id, stage, error)
                         SELECT g.call_id, b.department_id, b.call_date, b.run_id, 'batch', $3
                         FROM given g, b
                         WHERE b.canary_night_id IS NULL
                           AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = g.call_id)
                         ON CONFLICT (call_id) DO UPDATE SET
                             run_id = EXCLUDED.run_id, stage = EXCLUDED.stage, error = EXCLUDED.error,
                             attempts = call_failures.attempts + 1, last_failed_at = now()),
                     canary AS (
                         INSERT INTO experiment_calls (experiment_id, call_id, error)
                         SELECT n.experiment_id, g.call_id, $3
                         FROM given g, b JOIN canary_nights n ON n.id = b.canary_night_id
                         WHERE n.experiment_id IS NOT NULL
                         ON CONFLICT DO NOTHING),
                     claims AS (DELETE FROM call_claims WHERE batch_id = $1),
                     batch AS (
                         UPDATE llm_batches SET state = $2, last_error = $3,
                             collected_at = CASE WHEN $2 = 'collected' THEN now() END,
                             saved = (SELECT count(*) FROM llm_batch_calls WHERE batch_id = $1 AND state = 'saved'),
                             failed = (SELECT count(*) FROM llm_batch_calls WHERE batch_id = $1 AND state = 'failed')
                                      + (SELECT count(*) FROM given)
                         WHERE id = $1)
                     SELECT count(*) FROM given",
                    &[&batch, &state, &error],
                )
                .await?;
            Ok::<_, StoreError>(row.get::<_, i64>(0) as u64)
        })
        .await
    }

    /// The department's batches not collected yet, oldest first.
    pub async fn open_batches(&self, department_id: i32) -> Result<Vec<BatchRow>, StoreError> {
        self.timed("the open batches", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {BATCH_COLUMNS} FROM llm_batches b LEFT JOIN runs r ON r.id = b.run_id
                         WHERE b.department_id = $1 AND b.state = ANY($2) ORDER BY b.id"
                    ),
                    &[&department_id, &OPEN_STATES.as_slice()],
                )
                .await?;
            Ok::<_, StoreError>(rows.iter().map(batch_row).collect())
        })
        .await
    }

    /// The department's batches (every one when `department_id` is `None`), newest first:
    /// the open ones and those created in the last `days` days.
    pub async fn batches(
        &self,
        department_id: Option<i32>,
        days: i32,
    ) -> Result<Vec<BatchRow>, StoreError> {
        self.timed("the batches", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {BATCH_COLUMNS} FROM llm_batches b LEFT JOIN runs r ON r.id = b.run_id
                         WHERE ($1::integer IS NULL OR b.department_id = $1)
                           AND (b.state = ANY($2) OR b.created_at > now() - make_interval(days => $3))
                         ORDER BY b.id DESC"
                    ),
                    &[&department_id, &OPEN_STATES.as_slice(), &days],
                )
                .await?;
            Ok::<_, StoreError>(rows.iter().map(batch_row).collect())
        })
        .await
    }

    /// One batch by its id or the gateway's.
    pub async fn batch(&self, id: &str) -> Result<Option<BatchRow>, StoreError> {
        self.timed("a batch", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {BATCH_COLUMNS} FROM llm_batches b LEFT JOIN runs r ON r.id = b.run_id
                         WHERE b.batch_id = $1 OR b.id::text = $1 ORDER BY b.id DESC LIMIT 1"
                    ),
                    &[&id],
                )
                .await?;
            Ok::<_, StoreError>(rows.first().map(batch_row))
        })
        .await
    }

    /// Days in `[since, before)` with calls of the department in a batch not collected yet.
    pub async fn days_with_open_batches(
        &self,
        department_id: i32,
        since: NaiveDate,
        before: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.timed("the days with open batches", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT DISTINCT call_date FROM llm_batches
                     WHERE department_id = $1 AND call_date >= $2 AND call_date < $3
                       AND state = ANY($4) AND canary_night_id IS NULL ORDER BY 1",
                    &[&department_id, &since, &before, &OPEN_STATES.as_slice()],
                )
                .await?;
            Ok::<_, StoreError>(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// How many batches of a canary night are not finished.
    pub(crate) async fn canary_night_open_batches(&self, night_id: i64) -> Result<i64, StoreError> {
        self.timed("the open batches", async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT count(*) FROM llm_batches WHERE canary_night_id = $1 AND state = ANY($2)",
                    &[&night_id, &OPEN_STATES.as_slice()],
                )
                .await?;
            Ok::<_, StoreError>(row.get(0))
        })
        .await
    }

    /// Of `ids`, the calls in a batch that is not finished (none but these states keep a
    /// claim past their run).
    pub async fn calls_in_open_batches(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.timed("the calls in open batches", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT DISTINCT c.call_id FROM llm_batch_calls c
                     JOIN llm_batches b ON b.id = c.batch_id
                     WHERE c.call_id = ANY($1) AND c.state = 'pending'
                       AND b.state IN ('creating', 'submitted') AND b.canary_night_id IS NULL",
                )
                .await?;
            let rows = client.query(&stmt, &[&ids]).await?;
            Ok::<_, StoreError>(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// What a run did in batch mode: calls it put into batches, batches it submitted.
    pub async fn record_run_batches(
        &self,
        run_id: i64,
        in_batch: u64,
        batches: u64,
    ) -> Result<(), StoreError> {
        let in_batch = i32::try_from(in_batch).unwrap_or(i32::MAX);
        let batches = i32::try_from(batches).unwrap_or(i32::MAX);
        self.update_batch(
            "UPDATE runs SET in_batch = $2, batches_submitted = $3 WHERE id = $1",
            &[&run_id, &in_batch, &batches],
        )
        .await
    }

    /// Takes the collection lock of a batch, or `None` when another collector holds it.
    pub async fn lock_batch(&self, batch: i64) -> Result<Option<BatchLock>, StoreError> {
        let key = lock_key(batch);
        self.timed("a batch's lock", async {
            let client = self.client().await?;
            let won: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?
                .get(0);
            Ok::<_, StoreError>(won.then(|| BatchLock {
                client: Some(client),
                key,
            }))
        })
        .await
    }

    /// A batch's call by its line's `custom_id`, whatever its state.
    pub async fn batch_call(
        &self,
        batch: i64,
        custom_id: &str,
    ) -> Result<Option<CollectedCall>, StoreError> {
        self.timed("a batch's call", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT call_id, custom_id, operator_id, start_local, finish_local, duration_s,
                            direction, phone, transcript, stored_transcript, store_transcript, state
                     FROM llm_batch_calls WHERE batch_id = $1 AND custom_id = $2",
                )
                .await?;
            let row = client.query_opt(&stmt, &[&batch, &custom_id]).await?;
            Ok::<_, StoreError>(row.map(|r| {
                let transcript: Option<String> = r.get(8);
                let transcript = transcript.unwrap_or_default();
                let differs: Option<String> = r.get(9);
                let store: bool = r.get(10);
                let stored_transcript = match (store, differs) {
                    (false, _) => None,
                    (true, Some(s)) => Some(s),
                    (true, None) => Some(transcript.clone()),
                };
                CollectedCall {
                    call: BatchCall {
                        call_id: r.get(0),
                        custom_id: r.get(1),
                        operator_id: r.get(2),
                        start_local: r.get(3),
                        finish_local: r.get(4),
                        duration_s: r.get(5),
                        direction: r.get(6),
                        phone: r.get(7),
                        transcript,
                        stored_transcript,
                    },
                    state: r.get(11),
                }
            }))
        })
        .await
    }

    /// Saves a collected call — the same statement as a synchronous save — and marks it
    /// saved in its batch (its transcript there removed), in one transaction. `false`:
    /// it was not pending any more (another collector saved it first): nothing written.
    pub async fn save_batch_call(
        &self,
        batch: i64,
        record: &CallRecord<'_>,
    ) -> Result<bool, StoreError> {
        self.timed("a call's save", async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let won = tx
                .execute(
                    "UPDATE llm_batch_calls SET state = 'saved', transcript = NULL,
                         stored_transcript = NULL
                     WHERE batch_id = $1 AND call_id = $2 AND state = 'pending'",
                    &[&batch, &record.id],
                )
                .await?;
            if won == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            write_call_with(&tx, record).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(true)
        })
        .await
    }

    /// A collected call failed: marked so in its batch (its transcript there removed), its
    /// failure recorded, its claim released — one statement. `false`: it was not pending.
    pub async fn fail_batch_call(
        &self,
        batch: i64,
        call_id: i64,
        stage: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.timed("a failure record", async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "WITH b AS (SELECT department_id, call_date, run_id FROM llm_batches WHERE id = $1),
                     failed AS (
                         UPDATE llm_batch_calls SET state = 'failed', transcript = NULL,
                                stored_transcript = NULL
                         WHERE batch_id = $1 AND call_id = $2 AND state = 'pending'
                         RETURNING call_id),
                     failure AS (
                         INSERT INTO call_failures (call_id, department_id, call_date, run_id, stage, error)
                         SELECT f.call_id, b.department_id, b.call_date, b.run_id, $3, $4 FROM failed f, b
                         ON CONFLICT (call_id) DO UPDATE SET
                             run_id = EXCLUDED.run_id, stage = EXCLUDED.stage, error = EXCLUDED.error,
                             attempts = call_failures.attempts + 1, last_failed_at = now()),
                     claim AS (DELETE FROM call_claims WHERE call_id = $2 AND batch_id = $1
                               AND EXISTS (SELECT 1 FROM failed))
                     SELECT count(*) FROM failed",
                    &[&batch, &call_id, &stage, &error],
                )
                .await?;
            Ok::<_, StoreError>(row.get::<_, i64>(0) > 0)
        })
        .await
    }

    /// A canary batch's line answered or failed: kept as its night's experiment row and
    /// marked so in its batch (its transcript there removed), in one transaction. `false`:
    /// it was not pending any more (another collector had it first): nothing written.
    pub async fn keep_canary_line(
        &self,
        batch: i64,
        experiment_id: i64,
        call: &ExperimentCall<'_>,
    ) -> Result<bool, StoreError> {
        self.timed("a canary line", async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let state = if call.error.is_some() {
                "failed"
            } else {
                "saved"
            };
            let won = tx
                .execute(
                    "UPDATE llm_batch_calls SET state = $3, transcript = NULL,
                         stored_transcript = NULL
                     WHERE batch_id = $1 AND call_id = $2 AND state = 'pending'",
                    &[&batch, &call.call_id, &state],
                )
                .await?;
            if won == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            write_experiment_call(&tx, experiment_id, call).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(true)
        })
        .await
    }
}
