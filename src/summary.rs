//! What a run did, counted as it happens and printed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;

use crate::domain::{Cost, CostSource, Outcome, ReviewReason, Usage};

/// At most this many failed calls are listed by id in the printed summary.
const LISTED_FAILURES: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub day: Option<NaiveDate>,
    pub counts: BTreeMap<Outcome, u64>,
    pub calls_listed: u64,
    pub items_unreadable: u64,
    pub deferred_by_limit: u64,
    /// Answers asked for (retries at the HTTP level not counted).
    pub llm_requests: u64,
    /// Every HTTP request sent to the gateway: retries, refusals and abandoned ones too.
    pub llm_attempts: u64,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    /// Where the costs summed in `cost_usd` came from.
    pub cost_sources: BTreeSet<CostSource>,
    pub wall: Duration,
    /// Operator names seen in T-Bank but not in the directory, with their call counts.
    pub unknown_operators: BTreeMap<String, u64>,
    pub failures: Vec<(i64, String)>,
    pub failures_total: u64,
    pub dry_run: bool,
    /// Admitted calls the day stopped before sending to the LLM; a later run scores them.
    pub left_for_later: u64,
    /// Why the nightly run visited this earlier day again, when it did.
    pub revisit: Option<String>,
    /// Scored calls sent to the review queue, per reason (a call may count under several).
    pub review: BTreeMap<ReviewReason, u64>,
    /// Batches this day submitted to the gateway (batch mode); their calls count as
    /// `in_batch`.
    pub batches_submitted: u64,
}

impl Summary {
    /// Shows the day's summary as `callq run` and `callq demo` do: in the log, and on
    /// stdout (secrets masked) unless `stdout` is false (`--json` prints its own).
    pub fn show(&self, stdout: bool) {
        if stdout {
            // Printed on stdout too: the console log leaves this copy out on a terminal.
            tracing::info!(target: crate::logging::PRINTED, "{}", self.to_string().trim_end());
            crate::redact::println(self);
        } else {
            tracing::info!("{}", self.to_string().trim_end());
        }
    }

    pub fn add(&mut self, outcome: Outcome) {
        *self.counts.entry(outcome).or_default() += 1;
    }

    /// Counts one call's review reasons.
    pub fn add_review(&mut self, reasons: &[ReviewReason]) {
        for r in reasons {
            *self.review.entry(*r).or_default() += 1;
        }
    }

    pub fn review_count(&self, reason: ReviewReason) -> u64 {
        self.review.get(&reason).copied().unwrap_or(0)
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }

    pub fn add_failure(&mut self, call_id: i64, error: String) {
        self.failures_total += 1;
        if self.failures.len() < LISTED_FAILURES {
            self.failures.push((call_id, error));
        }
    }

    /// Counts one call's end: its outcome, what it spent, its failure.
    pub(crate) fn record(&mut self, f: &crate::run::Finished) {
        self.add(f.outcome);
        self.llm_requests += f.spent.llm_requests;
        self.usage += f.spent.usage;
        self.add_cost(f.spent.cost);
        if let Some((id, error)) = &f.failure {
            self.add_failure(*id, error.clone());
        }
        self.add_review(&f.review);
    }

    pub fn add_cost(&mut self, cost: Option<Cost>) {
        if let Some(c) = cost {
            *self.cost_usd.get_or_insert(0.0) += c.usd;
            self.cost_sources.insert(c.source);
        }
    }

    /// `gateway` or `prices` when every cost came from there, `mixed` when both
    /// contributed, `None` when nothing was costed.
    pub fn cost_source(&self) -> Option<&'static str> {
        let mut sources = self.cost_sources.iter();
        match (sources.next(), sources.next()) {
            (None, _) => None,
            (Some(one), None) => Some(one.as_str()),
            (Some(_), Some(_)) => Some("mixed"),
        }
    }

    pub fn counts_list(&self) -> Vec<(Outcome, u64)> {
        Outcome::ALL.iter().map(|o| (*o, self.count(*o))).collect()
    }

    pub fn unknown_operator_names(&self) -> Vec<String> {
        self.unknown_operators.keys().cloned().collect()
    }
}

impl Summary {
    /// The machine-readable form printed by `callq run --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let outcomes: serde_json::Map<String, serde_json::Value> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str().to_string(), self.count(*o).into()))
            .collect();
        let review: serde_json::Map<String, serde_json::Value> = ReviewReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), self.review_count(*r).into()))
            .collect();
        serde_json::json!({
            "day": self.day.map(|d| d.to_string()),
            "review": review,
            "dry_run": self.dry_run,
            "revisited_because": self.revisit,
            "left_for_later": self.left_for_later,
            "batches_submitted": self.batches_submitted,
            "calls_listed": self.calls_listed,
            "outcomes": outcomes,
            "items_unreadable": self.items_unreadable,
            "deferred_by_limit": self.deferred_by_limit,
            "llm_requests": self.llm_requests,
            "llm_attempts": self.llm_attempts,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source().unwrap_or("none"),
            "wall_seconds": self.wall.as_secs_f64(),
            "unknown_operators": self.unknown_operators,
            "failures_total": self.failures_total,
            "failures": self.failures.iter().map(|(id, e)| serde_json::json!({"call_id": id, "error": e})).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = self.day.map(|d| d.to_string()).unwrap_or_default();
        let dry = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        writeln!(
            f,
            "callq run {day}{dry}: {} calls listed in {:.1} s",
            self.calls_listed,
            self.wall.as_secs_f64()
        )?;
        if let Some(why) = &self.revisit {
            writeln!(f, "  revisited because {why}")?;
        }
        if self.left_for_later > 0 {
            writeln!(
                f,
                "  {} admitted call(s) not sent to the LLM before the run stopped; a later run scores them",
                self.left_for_later
            )?;
        }
        for o in Outcome::ALL {
            writeln!(f, "  {:<17} {}", o.as_str(), self.count(o))?;
        }
        if !self.review.is_empty() {
            let reasons: Vec<String> = ReviewReason::ALL
                .iter()
                .filter(|r| self.review_count(**r) > 0)
                .map(|r| format!("{} {}", r.as_str(), self.review_count(*r)))
                .collect();
            writeln!(
                f,
                "  to review         {} (v_review_queue)",
                reasons.join(", ")
            )?;
        }
        if self.batches_submitted > 0 || self.count(Outcome::InBatch) > 0 {
            writeln!(
                f,
                "  in batches        {} call(s); {} batch(es) submitted now, collected by a later run",
                self.count(Outcome::InBatch),
                self.batches_submitted
            )?;
        }
        if self.items_unreadable > 0 {
            writeln!(
                f,
                "  unreadable items  {} (see the log)",
                self.items_unreadable
            )?;
        }
        if self.deferred_by_limit > 0 {
            writeln!(
                f,
                "  left for later    {} (--limit reached)",
                self.deferred_by_limit
            )?;
        }
        write!(
            f,
            "  LLM: {} answers in {} HTTP requests, {} prompt tokens ({} cached), {} completion tokens",
            self.llm_requests,
            self.llm_attempts,
            self.usage.prompt_tokens,
            self.usage.cached_tokens,
            self.usage.completion_tokens
        )?;
        match self.cost_usd {
            Some(c) => writeln!(
                f,
                ", cost ${c:.4} ({})",
                match self.cost_source() {
                    Some("gateway") => "as the gateway reported it",
                    Some("prices") => "at LLM_PRICE_*",
                    Some("batch") => "at LLM_PRICE_BATCH_FACTOR × LLM_PRICE_*",
                    _ => "partly as the gateway reported it, partly at LLM_PRICE_*",
                }
            )?,
            None => writeln!(
                f,
                " (no cost: the gateway sent none; set LLM_PRICE_INPUT_PER_1M and LLM_PRICE_OUTPUT_PER_1M)"
            )?,
        }
        if !self.unknown_operators.is_empty() {
            writeln!(
                f,
                "  operators not in the directory (add them to `operators` to score their calls):"
            )?;
            for (name, n) in &self.unknown_operators {
                writeln!(f, "    {name} — {n} call(s)")?;
            }
        }
        if self.failures_total > 0 {
            writeln!(
                f,
                "  failed calls (recorded in call_failures, retried by the next run):"
            )?;
            for (id, e) in &self.failures {
                writeln!(f, "    {id}: {e}")?;
            }
            if self.failures_total as usize > self.failures.len() {
                writeln!(
                    f,
                    "    … and {} more",
                    self.failures_total as usize - self.failures.len()
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_prints_every_outcome() {
        let mut s = Summary::default();
        s.add(Outcome::Scored);
        s.add(Outcome::Scored);
        s.add(Outcome::Failed);
        s.add_failure(42, "LLM kept answering garbage".into());
        s.unknown_operators.insert("Петров Пётр".into(), 3);
        assert_eq!(s.counts.values().sum::<u64>(), 3);
        let text = s.to_string();
        assert!(text.contains("scored            2"), "{text}");
        assert!(text.contains("skipped_short     0"), "{text}");
        assert!(text.contains("42: LLM kept answering garbage"), "{text}");
        assert!(text.contains("Петров Пётр — 3 call(s)"), "{text}");
        let json = s.to_json();
        assert_eq!(json["outcomes"]["scored"], 2);
        assert_eq!(json["outcomes"]["skipped_short"], 0);
        assert_eq!(json["unknown_operators"]["Петров Пётр"], 3);
        assert_eq!(json["failures"][0]["call_id"], 42);
        assert_eq!(json["review"]["low_score"], 0);
        assert!(!text.contains("to review"), "{text}");
        assert_eq!(json["cost_source"], "none");
    }

    #[test]
    fn counts_calls_per_review_reason() {
        let mut s = Summary::default();
        s.add_review(&[ReviewReason::LowScore, ReviewReason::UnverifiedEvidence]);
        s.add_review(&[ReviewReason::UnverifiedEvidence]);
        s.add_review(&[]);
        let text = s.to_string();
        assert!(
            text.contains("to review         low_score 1, unverified_evidence 2 (v_review_queue)"),
            "{text}"
        );
        let json = s.to_json();
        assert_eq!(
            json["review"],
            serde_json::json!({"low_score": 1, "critical_missed": 0, "unverified_evidence": 2})
        );
    }

    #[test]
    fn the_cost_says_where_it_came_from() {
        let mut s = Summary {
            llm_requests: 2,
            llm_attempts: 5,
            ..Summary::default()
        };
        s.add_cost(Some(Cost {
            usd: 0.5,
            source: CostSource::Gateway,
        }));
        assert_eq!(s.cost_source(), Some("gateway"));
        let text = s.to_string();
        assert!(text.contains("2 answers in 5 HTTP requests"), "{text}");
        assert!(text.contains("as the gateway reported it"), "{text}");
        s.add_cost(Some(Cost {
            usd: 0.25,
            source: CostSource::Prices,
        }));
        s.add_cost(None);
        assert_eq!(s.cost_source(), Some("mixed"));
        let json = s.to_json();
        assert_eq!(json["cost_usd"], 0.75);
        assert_eq!(json["cost_source"], "mixed");
        assert_eq!(json["llm_attempts"], 5);
    }
}
