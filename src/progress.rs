//! What people read: progress lines while a run goes, the final line, and the status and runs tables.
//! Plain, stable lines with no escape codes.

use chrono::{DateTime, Utc};
use runbook_engine::event::EventKind;
use runbook_engine::executor::Observed;
use runbook_engine::ids::RunId;
use runbook_engine::journal::RunSummary;
use runbook_engine::model::Workflow;
use runbook_engine::state::{RunState, RunStatus, StepPhase};
use std::collections::HashMap;
use tokio::sync::mpsc;

use crate::app::elapsed;
use crate::term::Term;

/// Follows a run's events (and its child runs') and prints a line for each step transition.
pub struct Progress {
    term: Term,
    width: usize,
    /// The run being followed.
    root: RunId,
    /// How each child run's steps are named: `diagnose › probe_tcp`.
    prefixes: HashMap<RunId, String>,
    /// Retry budget of each step, for `attempt 2/3`.
    attempts: HashMap<(RunId, String), u32>,
}

impl Progress {
    pub fn new(term: Term, state: &RunState) -> Progress {
        let mut progress =
            Progress { term, width: 4, root: state.run_id, prefixes: HashMap::new(), attempts: HashMap::new() };
        progress.learn(state.run_id, &state.workflow, String::new());
        progress
    }

    fn learn(&mut self, run: RunId, workflow: &Workflow, prefix: String) {
        for step in &workflow.steps {
            self.width = self.width.max(prefix.chars().count() + step.id.as_str().len());
            self.attempts.insert((run, step.id.to_string()), step.retry.attempts);
        }
        self.prefixes.insert(run, prefix);
    }

    /// The first line: which run, which workflow.
    pub fn header(&self, state: &RunState) {
        self.term.out(format!("run {}: {} ({} steps)", state.run_id, state.workflow.name, state.workflow.steps.len()));
    }

    fn line(&self, run: RunId, step: &str, text: String) {
        let prefix = self.prefixes.get(&run).map(String::as_str).unwrap_or_default();
        let label = format!("{prefix}{step}");
        self.term.out(format!("  {label:<width$}  {text}", width = self.width));
    }

    fn attempt_text(&self, run: RunId, step: &str, attempt: u32) -> String {
        match self.attempts.get(&(run, step.to_owned())) {
            Some(&budget) if budget > 1 => format!("attempt {attempt}/{budget}"),
            _ => format!("attempt {attempt}"),
        }
    }

    fn show(&mut self, observed: &Observed) {
        let run = observed.run_id;
        match &observed.event.kind {
            EventKind::RunStarted(started) => {
                if let Some(parent) = started.parent.as_ref().filter(|_| run != self.root) {
                    let parent_prefix = self.prefixes.get(&parent.run_id).cloned().unwrap_or_default();
                    let prefix = format!("{parent_prefix}{} › ", parent.step);
                    self.line(
                        parent.run_id,
                        parent.step.as_str(),
                        format!("child run {run}: {}", started.workflow.name),
                    );
                    self.learn(run, &started.workflow, prefix);
                }
            }
            EventKind::RunResumed { .. } => {}
            EventKind::BundleCreated { step, archive, .. } => {
                self.line(run, step.as_ref().map_or("bundle", |s| s.as_str()), format!("bundle written: {archive}"));
            }
            EventKind::EmailSent { step, to, .. } => {
                self.line(run, step.as_ref().map_or("email", |s| s.as_str()), format!("emailed to {}", to.join(", ")));
            }
            EventKind::EmailFailed { step, error } => {
                self.line(run, step.as_ref().map_or("email", |s| s.as_str()), format!("email failed: {error}"));
            }
            EventKind::SupportTicketCreated { step, ticket, dry_run } => {
                let what = if *dry_run { "support ticket (dry run)" } else { "support ticket" };
                self.line(run, step.as_ref().map_or("ticket", |s| s.as_str()), format!("{what}: {ticket}"));
            }
            EventKind::StepStarted { step, attempt } => {
                self.line(
                    run,
                    step.as_str(),
                    format!("started ({})", self.attempt_text(run, step.as_str(), attempt.0)),
                );
            }
            EventKind::StepSucceeded { step, duration_ms, .. } => {
                self.line(run, step.as_str(), format!("succeeded in {}", ms(*duration_ms)));
            }
            EventKind::StepFailed { step, attempt, error, retry_at, duration_ms, .. } => {
                let retry = match retry_at {
                    Some(at) => {
                        let wait = (*at - observed.event.at).num_milliseconds().max(0);
                        format!("; retrying in {}", ms(wait as u64))
                    }
                    None => String::new(),
                };
                let after = if attempt.0 == 0 { String::new() } else { format!(" after {}", ms(*duration_ms)) };
                self.line(run, step.as_str(), format!("failed{after}: {error}{retry}"));
            }
            EventKind::StepPolled { step, attempt, next_at, .. } => {
                let wait = (*next_at - observed.event.at).num_milliseconds().max(0);
                self.line(
                    run,
                    step.as_str(),
                    format!("polled (attempt {attempt}): not yet; next poll in {}", ms(wait as u64)),
                );
            }
            EventKind::StepApproved { step, by, .. } => self.line(run, step.as_str(), format!("approved by {by}")),
            EventKind::StepRejected { step, by, .. } => self.line(run, step.as_str(), format!("rejected by {by}")),
            EventKind::StepSkipped { step, reason } => self.line(run, step.as_str(), format!("skipped: {reason}")),
            EventKind::RunNeedsAttention { reason, .. } => {
                self.term.out(format!("run {run}: needs attention: {reason}"))
            }
            EventKind::RunInterrupted { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::RunAcknowledged { .. }
            | EventKind::RunSucceeded { .. }
            | EventKind::RunFailed { .. } => {}
        }
    }
}

fn ms(duration_ms: u64) -> String {
    let start = DateTime::<Utc>::UNIX_EPOCH;
    elapsed(start, start + chrono::Duration::milliseconds(i64::try_from(duration_ms).unwrap_or(i64::MAX)))
}

/// Prints progress until the run's event stream closes.
pub async fn follow(mut progress: Progress, mut events: mpsc::UnboundedReceiver<Observed>) {
    while let Some(observed) = events.recv().await {
        progress.show(&observed);
    }
}

/// The last line after a run: the outcome and the command to type next.
pub fn final_line(term: &Term, state: &RunState, status: RunStatus) {
    let run = state.run_id;
    let took = state.finished_at.map(|end| format!(" in {}", elapsed(state.started_at, end))).unwrap_or_default();
    match status {
        RunStatus::Succeeded => term.out(format!("run {run} succeeded{took}")),
        RunStatus::Failed => {
            let failed: Vec<&str> = state
                .workflow
                .steps
                .iter()
                .zip(&state.steps)
                .filter(|(spec, s)| s.phase == StepPhase::Failed && !spec.continue_on_error)
                .map(|(spec, _)| spec.id.as_str())
                .collect();
            let first = failed.first().copied().unwrap_or("STEP");
            term.out(format!(
                "run {run} failed{took}: {} failed; see `runbook logs {run} {first}`, then `runbook resume {run}` to retry",
                failed.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        RunStatus::Cancelled => term.out(format!("run {run} cancelled")),
        RunStatus::Interrupted | RunStatus::Running => {
            term.out(format!("run {run} interrupted; `runbook resume {run}` goes on where it stopped"));
        }
        RunStatus::NeedsAttention => term.out(format!(
            "run {run} needs attention: {}",
            state.reason.clone().unwrap_or_else(|| "see `runbook status`".to_owned())
        )),
    }
}

/// `runbook status RUN`: a table of steps.
pub fn status_table(term: &Term, state: &RunState, status: RunStatus) {
    let run = state.run_id;
    let took = match state.finished_at {
        Some(end) => format!(", took {}", elapsed(state.started_at, end)),
        None => String::new(),
    };
    term.out(format!(
        "run {run}  {}  {}  started {}{took}",
        state.workflow.name,
        status.as_str(),
        state.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
    ));
    if let Some(reason) = &state.reason {
        term.out(format!("  {reason}"));
    }
    let width = state.workflow.steps.iter().map(|s| s.id.as_str().len()).max().unwrap_or(4).max(4);
    term.out(format!(
        "  {:<width$}  {:<9}  {:>8}  {:<8}  {:>8}  ERROR",
        "STEP", "STATUS", "ATTEMPTS", "STARTED", "DURATION"
    ));
    for (spec, s) in state.workflow.steps.iter().zip(&state.steps) {
        let started = s.started_at.map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_else(|| "-".to_owned());
        let duration = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) if s.phase != StepPhase::Running => elapsed(a, b),
            _ => "-".to_owned(),
        };
        let mut error = s.error.clone().unwrap_or_default();
        if let Some(line) = error.lines().next() {
            error = line.chars().take(120).collect();
        }
        if s.phase == StepPhase::Skipped {
            error = s.skip_reason.clone().unwrap_or_default();
        }
        term.out(format!(
            "  {:<width$}  {:<9}  {:>8}  {:<8}  {:>8}  {error}",
            spec.id.as_str(),
            s.phase.status(),
            s.attempt.0,
            started,
            duration
        ));
    }
}

/// `runbook runs`: one line per run.
pub fn runs_table(term: &Term, runs: &[RunSummary]) {
    if runs.is_empty() {
        term.out("no runs yet; start one with `runbook run WORKFLOW`");
        return;
    }
    let width = runs.iter().map(|r| r.workflow.len()).max().unwrap_or(8).max(8);
    term.out(format!("{:>6}  {:<width$}  {:<15}  {:<20}  FINISHED", "RUN", "WORKFLOW", "STATUS", "STARTED"));
    for run in runs {
        term.out(format!(
            "{:>6}  {:<width$}  {:<15}  {:<20}  {}",
            run.run_id,
            run.workflow,
            run.status.as_str(),
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.finished_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".to_owned())
        ));
    }
}
