//! Claims: before a call is sent to the LLM, its run claims it in `call_claims`. Only one
//! run can hold a call's claim, so even when the day lock fails (a dropped connection, two
//! hosts), no call is paid for by two runs at once. A claim is released when the call
//! ends; a claim whose run is no longer alive (finished, or its process holds no session
//! on the database any more: `callq_run_alive`, see `lock`) may be taken over — unless it
//! is tied to a batch the gateway may have (`batch_id`, state `creating` or `submitted`):
//! such a claim lasts as long as the batch, whatever became of the run.

use super::{Store, StoreError};

/// What claiming a call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This run may score the call.
    Won,
    /// Another live run is scoring it now.
    Busy,
    /// It was saved meanwhile (by a run that listed it earlier and finished it).
    Stored,
}

impl Store {
    /// Claims a call for `run_id`. Unless `rescore`, a call that has a row in `calls` by
    /// the time the claim is held is reported [`Claim::Stored`] (and released), so a call
    /// saved by another run after this run listed it is not paid for again.
    pub async fn claim_call(
        &self,
        call_id: i64,
        run_id: i64,
        rescore: bool,
    ) -> Result<Claim, StoreError> {
        self.timed("a call claim", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO call_claims AS c (call_id, run_id) VALUES ($1, $2)
                     ON CONFLICT (call_id) DO UPDATE SET run_id = EXCLUDED.run_id, claimed_at = now(),
                         batch_id = NULL
                     WHERE (c.run_id = EXCLUDED.run_id OR NOT EXISTS (
                         SELECT 1 FROM runs r
                         WHERE r.id = c.run_id AND r.status = 'running'
                           AND callq_run_alive(r.process_key, r.heartbeat_at)))
                       AND NOT EXISTS (
                         SELECT 1 FROM llm_batches b
                         WHERE b.id = c.batch_id AND b.state IN ('creating', 'submitted'))
                     RETURNING call_id",
                )
                .await?;
            // Sent together, answered in one round trip. PostgreSQL runs them in order, so
            // the second sees every save committed before this run won the claim.
            let stored_stmt = client
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM calls WHERE id = $1::bigint)")
                .await?;
            let claim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                [&call_id, &run_id];
            let stored_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&call_id];
            let (claimed, stored) = futures::try_join!(
                client.query(&stmt, &claim_params),
                client.query_one(&stored_stmt, &stored_params),
            )?;
            if claimed.is_empty() {
                return Ok(Claim::Busy);
            }
            if !rescore && stored.get::<_, bool>(0) {
                client
                    .execute(
                        "DELETE FROM call_claims WHERE call_id = $1 AND run_id = $2",
                        &[&call_id, &run_id],
                    )
                    .await?;
                return Ok(Claim::Stored);
            }
            Ok::<_, StoreError>(Claim::Won)
        })
        .await
    }

    /// Releases a call's claim once the call has ended, saved or failed.
    pub async fn release_call(&self, call_id: i64, run_id: i64) -> Result<(), StoreError> {
        self.timed("a claim release", async {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM call_claims WHERE call_id = $1 AND run_id = $2",
                    &[&call_id, &run_id],
                )
                .await?;
            Ok::<_, StoreError>(())
        })
        .await
    }
}
