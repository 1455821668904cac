//! The progress display of a run: a bar on a terminal, a log line every 15 seconds under
//! cron. Log lines are printed above the bar (`logging::active_bar`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::domain::Outcome;
use crate::logging::active_bar;

/// Progress of one run: a bar whose length grows as pages are listed, or a log line every
/// `LOG_EVERY` when stderr is not a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
    done: u64,
    listed: u64,
}

const LOG_EVERY: Duration = Duration::from_secs(15);

impl Progress {
    pub fn new(day: chrono::NaiveDate, enabled: bool) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:40.cyan/blue}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(day.to_string());
            *active_bar().lock().expect("bar lock") = Some(bar.clone());
            bar
        });
        Progress {
            bar,
            last_line: Instant::now(),
            done: 0,
            listed: 0,
        }
    }

    pub fn listed(&mut self, n: u64) {
        self.listed += n;
        if let Some(bar) = &self.bar {
            bar.inc_length(n);
        }
    }

    /// Called every second or so: under cron, a progress line even when no call finishes
    /// (a stalled run shows as a stalled count, not as silence).
    pub fn tick(&mut self, scored: u64, failed: u64) {
        if self.bar.is_none() && self.last_line.elapsed() >= LOG_EVERY {
            self.log_line(scored, failed);
        }
    }

    fn log_line(&mut self, scored: u64, failed: u64) {
        self.last_line = Instant::now();
        tracing::info!(
            "progress: {}/{} calls listed so far done; scored {scored}, failed {failed}",
            self.done,
            self.listed
        );
    }

    pub fn finished(&mut self, outcome: Outcome, scored: u64, failed: u64) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if matches!(outcome, Outcome::Scored | Outcome::Failed) {
                bar.set_message(format!("scored {scored}, failed {failed}"));
            }
        } else if self.last_line.elapsed() >= LOG_EVERY {
            self.log_line(scored, failed);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *active_bar().lock().expect("bar lock") = None;
        }
    }
}
