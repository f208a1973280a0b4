//! What `fleetctl up` reports at the end: counts per event type, per-worker counters, dedupe
//! hits, dead-letter entries with reasons, the scenario's steps and the final records.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dlq::DeadLetterEntry;
use crate::records::ShownRecord;
use crate::scenario::{StepReport, StepStatus};

/// Counters of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSummary {
    /// The worker.
    pub name: String,
    /// Messages received.
    pub received: u64,
    /// Messages and timer windows handled and committed.
    pub handled: u64,
    /// Deliveries completed as duplicates (inbox hit), not re-handled.
    pub dedupe_hits: u64,
    /// Delayed retries scheduled.
    pub retried: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Timer windows run.
    pub timer_runs: u64,
}

/// The end-of-run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The data directory.
    pub data_dir: String,
    /// The scenario run, if any.
    pub scenario: Option<String>,
    /// Speed of simulated time during the scenario (1 = real time).
    pub speed: f64,
    /// Real time the run took, in milliseconds.
    pub wall_ms: u64,
    /// Simulated time that passed, in seconds.
    pub simulated_secs: f64,
    /// Catalog workers this build does not have.
    pub missing_workers: Vec<String>,
    /// Per-worker counters.
    pub workers: Vec<WorkerSummary>,
    /// Messages published to the topic, per event type.
    pub events: BTreeMap<String, u64>,
    /// Duplicate deliveries completed without handling, over all workers.
    pub dedupe_hits: u64,
    /// Scenario steps.
    pub steps: Vec<StepReport>,
    /// `--publish` lines the broker refused.
    pub refused_input: Vec<String>,
    /// Every dead-letter entry.
    pub dead_letters: Vec<DeadLetterEntry>,
    /// The final records, per view name.
    pub records: BTreeMap<String, Vec<ShownRecord>>,
}

impl Summary {
    /// Whether every scenario step that ran succeeded.
    pub fn scenario_ok(&self) -> bool {
        self.steps.iter().all(|s| s.status != StepStatus::Failed)
    }

    /// The human-readable summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "\nSummary — {} real, {:.0} s simulated (speed {}×){}\n",
            format_ms(self.wall_ms),
            self.simulated_secs,
            self.speed,
            self.scenario
                .as_ref()
                .map(|s| format!(", scenario {s}"))
                .unwrap_or_default()
        ));
        if !self.steps.is_empty() {
            out.push_str("\nScenario steps:\n");
            for s in &self.steps {
                let status = match s.status {
                    StepStatus::Done => "done",
                    StepStatus::Skipped => "skipped",
                    StepStatus::Failed => "FAILED",
                };
                out.push_str(&format!("  {:<20} {:<8} {}\n", s.name, status, s.detail));
            }
        }
        out.push_str("\nEvents published:\n");
        for (t, n) in &self.events {
            out.push_str(&format!("  {t:<30} {n}\n"));
        }
        out.push_str("\nWorkers:\n");
        let rows: Vec<Vec<String>> = self
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.name.clone(),
                    w.received.to_string(),
                    w.handled.to_string(),
                    w.timer_runs.to_string(),
                    w.dedupe_hits.to_string(),
                    w.retried.to_string(),
                    w.dead_lettered.to_string(),
                ]
            })
            .collect();
        let table = crate::records::table(
            &[
                "WORKER",
                "RECEIVED",
                "HANDLED",
                "TIMER RUNS",
                "DEDUPE HITS",
                "RETRIED",
                "DEAD-LETTERED",
            ],
            &rows,
        );
        for line in table.lines() {
            out.push_str(&format!("  {line}\n"));
        }
        if !self.missing_workers.is_empty() {
            out.push_str(&format!(
                "  (not in this build: {})\n",
                self.missing_workers.join(", ")
            ));
        }
        out.push_str(&format!("\nDedupe hits: {}\n", self.dedupe_hits));
        out.push_str(&format!("\nDead letters: {}\n", self.dead_letters.len()));
        for d in &self.dead_letters {
            out.push_str(&format!(
                "  #{:<5} {:<20} {:<22} {} {}\n",
                d.sequence_number,
                d.subscription,
                d.reason,
                d.event_type.as_deref().unwrap_or("-"),
                first_line(&d.description),
            ));
        }
        for r in &self.refused_input {
            out.push_str(&format!("  refused by the broker: {r}\n"));
        }
        out.push_str("\nRecords:\n");
        for (view, records) in &self.records {
            out.push_str(&format!("  {view:<12} {}\n", records.len()));
        }
        out
    }
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(100) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

fn format_ms(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}
