//! The operator directory: reading it for the run, importing it (`callq operators
//! import`), the departments it refers to, and the operator names T-Bank lists that it
//! lacks, recorded per run and day (`unknown_operators`) and read back by `callq operators
//! unknown`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use super::rows::i32_of;
use super::{Store, StoreError};
use crate::operators::import::OperatorRow;

/// An arbitrary constant: the advisory lock key that serialises concurrent imports.
const IMPORT_LOCK: i64 = 0x6361_6c6c_715f_6f70;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub offices_created: u64,
    pub supervisors_created: u64,
}

/// One unknown operator name over a span of days, as `callq operators unknown` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOperator {
    pub department_id: i32,
    pub operator_name: String,
    pub calls: i64,
    /// The last call day the name was seen on.
    pub last_day: NaiveDate,
    /// When a run last saw it.
    pub last_seen_at: DateTime<Utc>,
}

/// An operators row as the import compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Existing {
    full_name: Option<String>,
    department_id: Option<i32>,
    office_id: Option<i32>,
    supervisor_id: Option<i32>,
}

impl Store {
    /// The whole operator directory: (id, full_name, department_id).
    pub async fn operators(&self) -> Result<Vec<(i64, String, Option<i64>)>, StoreError> {
        self.timed("the operator directory", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id::bigint, full_name, department_id::bigint FROM operators",
                    &[],
                )
                .await?;
            Ok::<_, StoreError>(
                rows.iter()
                    .map(|r| {
                        (
                            r.get(0),
                            r.get::<_, Option<String>>(1).unwrap_or_default(),
                            r.get(2),
                        )
                    })
                    .collect(),
            )
        })
        .await
    }

    /// Makes sure the department exists, so calls can reference it; true when it was added.
    pub async fn ensure_department(&self, id: i32) -> Result<bool, StoreError> {
        self.timed("the department", async {
            let client = self.client().await?;
            let n = client
                .execute(
                    "INSERT INTO departments (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    &[&id, &format!("Отдел {id}")],
                )
                .await?;
            Ok::<_, StoreError>(n == 1)
        })
        .await
    }

    /// Which of these department ids are in `departments`.
    pub async fn known_departments(&self, ids: &[i32]) -> Result<BTreeSet<i32>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id::integer FROM departments WHERE id = ANY($1::integer[])",
                &[&ids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Upserts validated rows into `operators` by id, in one transaction: new ids are
    /// inserted, rows whose name, department (or office / supervisor, when the file has those
    /// columns) differ are updated, the rest left alone. Offices and supervisors are found by
    /// exact name, or created. Imports serialise on an advisory lock.
    pub async fn import_operators(
        &self,
        rows: &[OperatorRow],
        has_office: bool,
        has_supervisor: bool,
    ) -> Result<ImportCounts, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&IMPORT_LOCK])
            .await?;
        let mut counts = ImportCounts::default();

        let offices = if has_office {
            let names = rows.iter().filter_map(|r| r.office.as_deref());
            let (ids, created) = find_or_create(&tx, "offices", "name", names).await?;
            counts.offices_created = created;
            ids
        } else {
            HashMap::new()
        };
        let supervisors = if has_supervisor {
            let names = rows.iter().filter_map(|r| r.supervisor.as_deref());
            let (ids, created) = find_or_create(&tx, "supervisors", "full_name", names).await?;
            counts.supervisors_created = created;
            ids
        } else {
            HashMap::new()
        };

        let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
        let existing: HashMap<i32, Existing> = tx
            .query(
                "SELECT id::integer, full_name::text, department_id::integer, office_id::integer,
                        supervisor_id::integer
                   FROM operators WHERE id = ANY($1::integer[]) FOR UPDATE",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Existing {
                        full_name: r.get(1),
                        department_id: r.get(2),
                        office_id: r.get(3),
                        supervisor_id: r.get(4),
                    },
                )
            })
            .collect();

        let insert = tx
            .prepare(
                "INSERT INTO operators (id, full_name, department_id, office_id, supervisor_id)
                 VALUES ($1::integer, $2::text, $3::integer, $4::integer, $5::integer)",
            )
            .await?;
        let update = tx
            .prepare(
                "UPDATE operators SET full_name = $2::text, department_id = $3::integer,
                        office_id = CASE WHEN $6::boolean THEN $4::integer ELSE office_id END,
                        supervisor_id = CASE WHEN $7::boolean THEN $5::integer ELSE supervisor_id END
                  WHERE id = $1::integer",
            )
            .await?;
        for row in rows {
            let office_id = row.office.as_ref().map(|n| offices[n]);
            let supervisor_id = row.supervisor.as_ref().map(|n| supervisors[n]);
            match existing.get(&row.id) {
                None => {
                    tx.execute(
                        &insert,
                        &[
                            &row.id,
                            &row.full_name,
                            &row.department_id,
                            &office_id,
                            &supervisor_id,
                        ],
                    )
                    .await?;
                    counts.inserted += 1;
                }
                Some(old) => {
                    let wanted = Existing {
                        full_name: Some(row.full_name.clone()),
                        department_id: Some(row.department_id),
                        office_id: if has_office { office_id } else { old.office_id },
                        supervisor_id: if has_supervisor {
                            supervisor_id
                        } else {
                            old.supervisor_id
                        },
                    };
                    if *old == wanted {
                        counts.unchanged += 1;
                        continue;
                    }
                    tx.execute(
                        &update,
                        &[
                            &row.id,
                            &row.full_name,
                            &row.department_id,
                            &office_id,
                            &supervisor_id,
                            &has_office,
                            &has_supervisor,
                        ],
                    )
                    .await?;
                    counts.updated += 1;
                }
            }
        }
        if counts.inserted > 0 {
            // Explicit ids do not advance the id column's sequence: move it past them, so a
            // row added later without an id does not collide. (No sequence: nothing to do.)
            tx.execute(
                "SELECT setval(s.seq, m.max_id)
                   FROM (SELECT pg_get_serial_sequence('operators', 'id')::regclass AS seq) s,
                        (SELECT max(id)::bigint AS max_id FROM operators) m
                  WHERE s.seq IS NOT NULL
                    AND m.max_id > COALESCE(pg_sequence_last_value(s.seq), 0)",
                &[],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Records the operator names a run of `day` found missing from the directory, with their
    /// call counts. `complete`: the run listed the whole day, so its counts replace the day's
    /// rows (a re-run sees the same calls) and names it no longer saw are removed; otherwise
    /// (the listing broke off) counts only grow.
    pub async fn record_unknown_operators(
        &self,
        department_id: i32,
        day: NaiveDate,
        counts: &BTreeMap<String, u64>,
        complete: bool,
    ) -> Result<(), StoreError> {
        self.timed(
            "the unknown operators",
            self.write_unknown_operators(department_id, day, counts, complete),
        )
        .await
    }

    async fn write_unknown_operators(
        &self,
        department_id: i32,
        day: NaiveDate,
        counts: &BTreeMap<String, u64>,
        complete: bool,
    ) -> Result<(), StoreError> {
        let names: Vec<&str> = counts.keys().map(String::as_str).collect();
        let calls: Vec<i32> = counts.values().map(|&n| i32_of(n)).collect();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if complete {
            tx.execute(
                "DELETE FROM unknown_operators
                  WHERE department_id = $1 AND call_date = $2 AND operator_name <> ALL($3::text[])",
                &[&department_id, &day, &names],
            )
            .await?;
        }
        if !names.is_empty() {
            tx.execute(
                "INSERT INTO unknown_operators AS u (department_id, call_date, operator_name, calls)
                 SELECT $1::integer, $2::date, name, n FROM unnest($3::text[], $4::integer[]) AS t (name, n)
                 ON CONFLICT (department_id, call_date, operator_name) DO UPDATE
                    SET calls = CASE WHEN $5::boolean THEN EXCLUDED.calls
                                     ELSE GREATEST(u.calls, EXCLUDED.calls) END,
                        last_seen_at = now()",
                &[&department_id, &day, &names, &calls, &complete],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Unknown operator names seen on call days from `since` on (of one department, or all),
    /// with their total calls and last day, per department and name; most calls first.
    pub async fn unknown_operators_since(
        &self,
        since: NaiveDate,
        department_id: Option<i32>,
    ) -> Result<Vec<UnknownOperator>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT department_id, operator_name, sum(calls)::bigint, max(call_date),
                        max(last_seen_at)
                   FROM unknown_operators
                  WHERE call_date >= $1 AND ($2::integer IS NULL OR department_id = $2)
                  GROUP BY department_id, operator_name
                  ORDER BY 3 DESC, 4 DESC, 1, 2",
                &[&since, &department_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| UnknownOperator {
                department_id: r.get(0),
                operator_name: r.get(1),
                calls: r.get(2),
                last_day: r.get(3),
                last_seen_at: r.get(4),
            })
            .collect())
    }
}

/// The ids of these names in `table` (matched exactly; the lowest id when a name is there
/// twice), inserting the names not there yet; and how many were inserted.
async fn find_or_create<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    column: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(HashMap<String, i32>, u64), StoreError> {
    let wanted: BTreeSet<&str> = names.collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut ids: HashMap<String, i32> = tx
        .query(
            &format!(
                "SELECT DISTINCT ON ({column}) {column}::text, id::integer FROM {table}
                  WHERE {column} = ANY($1::text[]) ORDER BY {column}, id"
            ),
            &[&wanted],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut created = 0;
    for name in wanted {
        if ids.contains_key(name) {
            continue;
        }
        let row = tx
            .query_one(
                &format!("INSERT INTO {table} ({column}) VALUES ($1::text) RETURNING id::integer"),
                &[&name],
            )
            .await?;
        ids.insert(name.to_string(), row.get(0));
        created += 1;
    }
    Ok((ids, created))
}
