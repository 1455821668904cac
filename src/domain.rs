//! The things a run works with. No I/O here: clients produce these, the pipeline moves them,
//! the store saves them.

use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};

/// One line of the scoring checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub category: String,
    pub indicator: String,
    pub comment: String,
    pub max_score: f64,
    pub conditions: String,
    /// Marked critical in the checklist (column E): scoring it 0 sends the call to review.
    pub critical: bool,
}

impl Criterion {
    /// A criterion without comment or conditions (tests and examples).
    pub fn new(category: &str, indicator: &str, max_score: f64) -> Criterion {
        Criterion {
            category: category.into(),
            indicator: indicator.into(),
            comment: String::new(),
            max_score,
            conditions: String::new(),
            critical: false,
        }
    }
}

/// A department's checklist plus the free-form extra instructions for the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checklist {
    pub criteria: Vec<Criterion>,
    pub custom_instructions: String,
}

impl Checklist {
    /// Categories in sheet order, each once.
    pub fn categories(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.criteria {
            if !out.contains(&c.category.as_str()) {
                out.push(&c.category);
            }
        }
        out
    }

    pub fn total_max(&self) -> f64 {
        self.criteria.iter().map(|c| c.max_score).sum()
    }

    /// Content hash, so a dashboard can tell which checklist produced a score.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        for c in &self.criteria {
            for part in [&c.category, &c.indicator, &c.comment, &c.conditions] {
                h.update(part.as_bytes());
                h.update([0x1f]);
            }
            h.update(c.max_score.to_string().as_bytes());
            // Only a critical mark adds to the hash, so checklists without one keep theirs.
            if c.critical {
                h.update(b"\x1fcritical");
            }
            h.update([0x1e]);
        }
        h.update(self.custom_instructions.as_bytes());
        short_hash(h)
    }
}

/// A score as people write it: `10`, `2.5` — no trailing `.0`, no float noise from sums.
pub fn format_score(score: f64) -> String {
    let rounded = (score * 1000.0).round() / 1000.0;
    rounded.to_string()
}

/// Hash of arbitrary text in the same short form as [`Checklist::version`].
pub fn content_version(text: &str) -> String {
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    short_hash(h)
}

fn short_hash(h: Sha256) -> String {
    let digest = h.finalize();
    hex::encode(&digest[..8])
}

/// One call as listed by T-Bank.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// T-Bank `segmentId`; the primary key of `calls`.
    pub id: i64,
    pub start: DateTime<FixedOffset>,
    pub finish: Option<DateTime<FixedOffset>>,
    pub duration_s: i64,
    pub operator_user_id: Option<i64>,
    pub operator_login: Option<String>,
    pub operator_name: String,
    pub direction: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Operator,
    Client,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    pub speaker: Speaker,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub phrases: Vec<Phrase>,
}

impl Transcript {
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// The form the prompt and `call_transcripts` use: one line per phrase,
    /// `operator: …` or `client: …`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for p in &self.phrases {
            out.push_str(match p.speaker {
                Speaker::Operator => "operator: ",
                Speaker::Client => "client: ",
            });
            out.push_str(&p.text);
            out.push('\n');
        }
        out
    }
}

/// A validated, normalised analysis of one call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysis {
    pub is_sales_call: bool,
    pub total_score: f64,
    pub max_score: f64,
    pub performance_percentage: i32,
    pub evaluations: Vec<Evaluation>,
    pub recommendations: Vec<Recommendation>,
    pub agreements: Vec<Agreement>,
    pub decline_reasons: Vec<DeclineReason>,
    /// Why the call needs a person's look; filled by [`crate::review::assess`] before saving.
    pub review_reasons: Vec<ReviewReason>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub category: String,
    pub criterion: String,
    pub score: f64,
    pub max_score: f64,
    pub reason: String,
    /// The model's verbatim quote supporting the score; `None` when it gave none (prompt-only
    /// answers may leave the field out), `Some("")` when the score is for something absent.
    pub evidence: Option<String>,
    /// Whether the quote was found in the transcript ([`crate::evidence`]); `None` where
    /// there is no quote to check.
    pub evidence_verified: Option<bool>,
}

/// Why a scored call goes to the review queue (`calls.review_reasons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReviewReason {
    /// Performance below REVIEW_BELOW_PERCENT.
    LowScore,
    /// A criterion marked critical scored 0.
    CriticalMissed,
    /// A quote the model gave was not found in the transcript.
    UnverifiedEvidence,
}

impl ReviewReason {
    pub const ALL: [ReviewReason; 3] = [
        ReviewReason::LowScore,
        ReviewReason::CriticalMissed,
        ReviewReason::UnverifiedEvidence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewReason::LowScore => "low_score",
            ReviewReason::CriticalMissed => "critical_missed",
            ReviewReason::UnverifiedEvidence => "unverified_evidence",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub category: String,
    pub issue: String,
    pub recommendation: String,
    /// One of `high`, `medium`, `low`.
    pub priority: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub amount: Option<f64>,
    pub agreement: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeclineReason {
    pub reason_type: String,
    pub reason_description: String,
    pub product_category: String,
}

/// Tokens one call cost, summed over every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cached_tokens += o.cached_tokens;
    }
}

/// Where a cost figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CostSource {
    /// Summed from the gateway's per-response cost.
    Gateway,
    /// Computed from the token counts and LLM_PRICE_*.
    Prices,
    /// A batch answer: LLM_PRICE_BATCH_FACTOR × the prices.
    Batch,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Gateway => "gateway",
            CostSource::Prices => "prices",
            CostSource::Batch => "batch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub usd: f64,
    pub source: CostSource,
}

/// How each listed call ended. Every call gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    SkippedShort,
    UnknownOperator,
    NoTranscript,
    AlreadyScored,
    NotSales,
    Scored,
    Failed,
    /// Another live run was scoring the call (its claim was held): not paid for twice.
    ClaimedElsewhere,
    /// In a batch at the gateway (sent by this run, or by an earlier one and not collected
    /// yet): its outcome comes when the batch is collected.
    InBatch,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::SkippedShort,
        Outcome::UnknownOperator,
        Outcome::NoTranscript,
        Outcome::AlreadyScored,
        Outcome::NotSales,
        Outcome::Scored,
        Outcome::Failed,
        Outcome::ClaimedElsewhere,
        Outcome::InBatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::SkippedShort => "skipped_short",
            Outcome::UnknownOperator => "unknown_operator",
            Outcome::NoTranscript => "no_transcript",
            Outcome::AlreadyScored => "already_scored",
            Outcome::NotSales => "not_sales",
            Outcome::Scored => "scored",
            Outcome::Failed => "failed",
            Outcome::ClaimedElsewhere => "claimed_elsewhere",
            Outcome::InBatch => "in_batch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crit(cat: &str, name: &str, max: f64) -> Criterion {
        Criterion::new(cat, name, max)
    }

    #[test]
    fn scores_print_as_written() {
        assert_eq!(format_score(10.0), "10");
        assert_eq!(format_score(2.5), "2.5");
        assert_eq!(format_score(0.1 + 0.2), "0.3");
    }

    #[test]
    fn checklist_version_changes_with_content() {
        let a = Checklist {
            criteria: vec![crit("Приветствие", "Назвал имя", 5.0)],
            custom_instructions: String::new(),
        };
        let mut b = a.clone();
        assert_eq!(a.version(), b.version());
        b.criteria[0].max_score = 10.0;
        assert_ne!(a.version(), b.version());
        assert_eq!(a.version().len(), 16);
    }

    #[test]
    fn categories_keep_sheet_order_once_each() {
        let c = Checklist {
            criteria: vec![
                crit("Б", "x", 1.0),
                crit("А", "y", 2.0),
                crit("Б", "z", 2.5),
            ],
            custom_instructions: String::new(),
        };
        assert_eq!(c.categories(), vec!["Б", "А"]);
        assert_eq!(c.total_max(), 5.5);
    }

    #[test]
    fn transcript_text_marks_speakers_in_order() {
        let t = Transcript {
            phrases: vec![
                Phrase {
                    speaker: Speaker::Operator,
                    text: "Добрый день".into(),
                },
                Phrase {
                    speaker: Speaker::Client,
                    text: "Здравствуйте".into(),
                },
            ],
        };
        assert_eq!(t.to_text(), "operator: Добрый день\nclient: Здравствуйте\n");
    }
}
