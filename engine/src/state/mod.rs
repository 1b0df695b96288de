//! The run state machine: `apply` folds events into a [`RunState`], `decide`
//! says what should happen next. Both are pure: no IO, no clock (the time is
//! a parameter), no async. The executor performs the actions and records the
//! resulting events; a resume is a fold of the log followed by `decide`.
//!
//! Step life cycle (phase, event → phase):
//!
//! | from                          | event                              | to            |
//! |-------------------------------|------------------------------------|---------------|
//! | Pending, WaitingRetry, Orphan | `step_started`                     | Running       |
//! | Running                       | `step_succeeded`                   | Succeeded     |
//! | Running                       | `step_failed` with `retry_at`      | WaitingRetry  |
//! | Running                       | `step_failed` without `retry_at`   | Failed        |
//! | Running                       | `step_polled` (`until` not met)    | WaitingRetry  |
//! | Pending (condition error)     | `step_failed` (attempt 0)          | Failed        |
//! | Pending, WaitingRetry, Orphan | `step_skipped`                     | Skipped       |
//! | Running                       | `run_interrupted`, `run_resumed`   | Orphan        |
//! | Orphan                        | `run_resumed` naming it in `rerun` | Pending       |
//! | Orphan (with a `check`)       | `step_check_started`               | Checking      |
//! | Checking                      | `step_checked`, done               | Succeeded     |
//! | Checking                      | `step_checked`, not done           | Pending       |
//! | Checking                      | `step_checked` with an error       | Orphan (needs attention) |
//! | Checking                      | `run_interrupted`, `run_resumed`   | Orphan        |
//! | Running, Orphan               | `step_approved`, `step_rejected`   | (unchanged: the answer is kept for the step) |
//! | Orphan, Pending               | `run_resumed` naming it in `skip`  | Skipped       |
//! | Failed (counting), Skipped    | `run_resumed` of a failed run      | Pending       |
//!
//! Run status: `running` from `run_started` and `run_resumed`; `succeeded`,
//! `failed`, `cancelled`, `needs_attention`, `interrupted` from the events of
//! those names. A run that is `running` in the log with no live executor is
//! shown as `interrupted` by the caller, who knows which runs execute.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::event::{Event, EventKind, Outputs, ParentRef, RunStarted};
use crate::ids::{Attempt, RunId, StepId};
use crate::mask::Masker;
use crate::model::Workflow;
use crate::template::Templates;

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    NeedsAttention,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::NeedsAttention => "needs_attention",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        Some(match text {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            "needs_attention" => RunStatus::NeedsAttention,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended for good (it can still be resumed when failed).
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// Where a step is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPhase {
    Pending,
    Running,
    /// Failed, with another attempt due at `retry_at`.
    WaitingRetry,
    /// Started but unfinished when its executor stopped.
    Orphan,
    /// An orphan whose `check` is finding out whether its effect happened.
    Checking,
    Succeeded,
    Failed,
    Skipped,
}

impl StepPhase {
    /// The status users see: `pending`, `running`, `succeeded`, `failed`, `skipped`.
    pub fn status(self) -> &'static str {
        match self {
            StepPhase::Pending | StepPhase::WaitingRetry => "pending",
            StepPhase::Running | StepPhase::Orphan | StepPhase::Checking => "running",
            StepPhase::Succeeded => "succeeded",
            StepPhase::Failed => "failed",
            StepPhase::Skipped => "skipped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, StepPhase::Succeeded | StepPhase::Failed | StepPhase::Skipped)
    }
}

/// What the log says of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub phase: StepPhase,
    /// The last attempt started (0 before the first).
    pub attempt: Attempt,
    /// Attempts that do not count against the current retry budget (a resume of a failed run grants a fresh one).
    pub budget_start: u32,
    pub outputs: Outputs,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    /// When the first attempt of the current budget started: a poll's deadline counts from it.
    pub first_started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
    pub skip_reason: Option<String>,
    /// Skipped on an operator's `--skip`: stays skipped when a failed run is resumed.
    pub skipped_by_operator: bool,
    /// An operator's answer to an `approval` step, for the current attempt budget.
    pub decision: Option<Answer>,
    /// Why the step's `check` could not tell whether its effect happened.
    pub check_error: Option<String>,
}

/// An operator's answer to an `approval` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub approved: bool,
    pub by: String,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

impl StepState {
    fn new() -> StepState {
        StepState {
            phase: StepPhase::Pending,
            attempt: Attempt(0),
            budget_start: 0,
            outputs: Outputs::new(),
            error: None,
            exit_code: None,
            started_at: None,
            first_started_at: None,
            finished_at: None,
            retry_at: None,
            skip_reason: None,
            skipped_by_operator: false,
            decision: None,
            check_error: None,
        }
    }

    /// `success`, `failure` or `skipped` once terminal, as `if` expressions see it.
    pub fn outcome(&self) -> Option<&'static str> {
        match self.phase {
            StepPhase::Succeeded => Some("success"),
            StepPhase::Failed => Some("failure"),
            StepPhase::Skipped => Some("skipped"),
            StepPhase::Pending
            | StepPhase::Running
            | StepPhase::WaitingRetry
            | StepPhase::Orphan
            | StepPhase::Checking => None,
        }
    }

    /// Attempts made within the current budget.
    pub fn attempts_in_budget(&self) -> u32 {
        self.attempt.0.saturating_sub(self.budget_start)
    }
}

/// The fold of a run's events.
#[derive(Debug, Clone)]
pub struct RunState {
    pub run_id: RunId,
    pub workflow: Arc<Workflow>,
    pub inputs: serde_json::Map<String, serde_json::Value>,
    pub source_hash: String,
    pub source_path: String,
    pub parent: Option<ParentRef>,
    pub status: RunStatus,
    /// In the order of `workflow.steps`.
    pub steps: Vec<StepState>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run needs attention, or was interrupted or cancelled.
    pub reason: Option<String>,
    /// Events applied so far (the seq of the last one).
    pub events: u64,
    /// The workflow's `outputs`, once the run has finished.
    pub outputs: Outputs,
    /// What the run did to escalate, and whether someone acknowledged it.
    pub escalation: Escalation,
    /// Position of each step in `workflow.steps`: events and needs name steps, and a
    /// linear search per lookup made a fold and each `decide` quadratic in the steps.
    step_indices: Arc<HashMap<StepId, usize>>,
    /// For each step, the positions of its `needs` (`None` for a name the workflow does not
    /// have): `decide` checks the needs of a step it may start.
    need_indices: Arc<Vec<Vec<Option<usize>>>>,
    /// For each step, the positions of the steps that need it (once per mention).
    dependents: Arc<Vec<Vec<usize>>>,
    /// What `decide` looks at, kept in step by `apply`.
    frontier: Frontier,
}

/// The part of a run `decide` looks at, kept up to date by every change of a step's phase, so
/// that a decision costs what may happen next, not a walk over every step of the run.
///
/// Derived from the steps' phases alone: [`RunState::set_phase`] is the one place that changes a
/// phase and updates this with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Frontier {
    /// Per step, how many of its needs have not finished; a need the workflow does not have
    /// never finishes.
    open_needs: Vec<u32>,
    /// The steps `decide` may act on, by position: pending ones whose needs have all finished
    /// (and pending `on_failure` handlers, which wait for the whole run instead), those
    /// waiting for a retry or a poll, and orphans.
    candidates: BTreeSet<usize>,
    /// Orphans, by position: `decide` looks at them first.
    orphans: BTreeSet<usize>,
    running: usize,
    checking: usize,
    /// Steps not finished, and those of them that are not `on_failure` handlers.
    unfinished: usize,
    unfinished_main: usize,
    /// Failed steps without `continue_on_error`, by position: they make the run fail.
    failed: BTreeSet<usize>,
}

impl Frontier {
    fn new(workflow: &Workflow, need_indices: &[Vec<Option<usize>>]) -> Frontier {
        let mut frontier = Frontier {
            open_needs: need_indices.iter().map(|needs| u32::try_from(needs.len()).unwrap_or(u32::MAX)).collect(),
            unfinished: workflow.steps.len(),
            unfinished_main: workflow.steps.iter().filter(|spec| !spec.handler).count(),
            ..Frontier::default()
        };
        for (i, spec) in workflow.steps.iter().enumerate() {
            frontier.refresh(i, StepPhase::Pending, spec.handler);
        }
        frontier
    }

    /// The frontier of `state` worked out from its steps' phases alone: what the kept one
    /// must always equal.
    #[cfg(test)]
    fn of(state: &RunState) -> Frontier {
        let mut frontier = Frontier::new(&state.workflow, &state.need_indices);
        for (i, step) in state.steps.iter().enumerate() {
            let spec = &state.workflow.steps[i];
            frontier.enter(i, step.phase, spec.continue_on_error);
            if step.phase.is_terminal() {
                frontier.count_unfinished(spec.handler, false);
                for &dependent in &state.dependents[i] {
                    frontier.open_needs[dependent] -= 1;
                }
            }
        }
        for (i, step) in state.steps.iter().enumerate() {
            frontier.refresh(i, step.phase, state.workflow.steps[i].handler);
        }
        frontier
    }

    fn leave(&mut self, i: usize, phase: StepPhase, continue_on_error: bool) {
        match phase {
            StepPhase::Running => self.running = self.running.saturating_sub(1),
            StepPhase::Checking => self.checking = self.checking.saturating_sub(1),
            StepPhase::Orphan => {
                self.orphans.remove(&i);
            }
            StepPhase::Failed if !continue_on_error => {
                self.failed.remove(&i);
            }
            StepPhase::Failed
            | StepPhase::Pending
            | StepPhase::WaitingRetry
            | StepPhase::Succeeded
            | StepPhase::Skipped => {}
        }
    }

    fn enter(&mut self, i: usize, phase: StepPhase, continue_on_error: bool) {
        match phase {
            StepPhase::Running => self.running += 1,
            StepPhase::Checking => self.checking += 1,
            StepPhase::Orphan => {
                self.orphans.insert(i);
            }
            StepPhase::Failed if !continue_on_error => {
                self.failed.insert(i);
            }
            StepPhase::Failed
            | StepPhase::Pending
            | StepPhase::WaitingRetry
            | StepPhase::Succeeded
            | StepPhase::Skipped => {}
        }
    }

    fn count_unfinished(&mut self, handler: bool, more: bool) {
        let step = |count: &mut usize| *count = if more { *count + 1 } else { count.saturating_sub(1) };
        step(&mut self.unfinished);
        if !handler {
            step(&mut self.unfinished_main);
        }
    }

    /// Whether step `i`, now in `phase`, is a candidate for `decide`.
    fn refresh(&mut self, i: usize, phase: StepPhase, handler: bool) {
        let candidate = match phase {
            StepPhase::WaitingRetry | StepPhase::Orphan => true,
            StepPhase::Pending => handler || self.open_needs.get(i).is_some_and(|open| *open == 0),
            StepPhase::Running
            | StepPhase::Checking
            | StepPhase::Succeeded
            | StepPhase::Failed
            | StepPhase::Skipped => false,
        };
        if candidate {
            self.candidates.insert(i);
        } else {
            self.candidates.remove(&i);
        }
    }
}

/// The escalation facts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Escalation {
    /// The archive of the last bundle written.
    pub bundle: Option<String>,
    /// When the last bundle was written.
    pub bundled_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
    pub email_error: Option<String>,
    pub ticket: Option<String>,
    pub acknowledged_by: Option<String>,
}

impl Escalation {
    /// Escalated: a bundle was written for support.
    pub fn is_escalated(&self) -> bool {
        self.bundle.is_some()
    }
}

/// An event that does not fit the state it is applied to: the log is not one this engine wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    pub message: String,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl RunState {
    /// The state after the first event, which must be `run_started`.
    pub fn start(run_id: RunId, first: &Event) -> Result<RunState, ApplyError> {
        let EventKind::RunStarted(started) = &first.kind else {
            return Err(ApplyError {
                message: format!("the first event is `{}`, not `run_started`", first.kind.type_name()),
            });
        };
        let RunStarted { workflow, source_hash, source_path, inputs, parent } = started.as_ref();
        let mut step_indices = HashMap::with_capacity(workflow.steps.len());
        for (index, spec) in workflow.steps.iter().enumerate() {
            // The first of a (never valid) duplicate id wins, as with a search from the start.
            step_indices.entry(spec.id.clone()).or_insert(index);
        }
        let need_indices: Vec<Vec<Option<usize>>> = workflow
            .steps
            .iter()
            .map(|spec| spec.needs.iter().map(|need| step_indices.get(need).copied()).collect())
            .collect();
        let mut dependents = vec![Vec::new(); workflow.steps.len()];
        for (dependent, needs) in need_indices.iter().enumerate() {
            for need in needs.iter().flatten() {
                dependents[*need].push(dependent);
            }
        }
        let frontier = Frontier::new(workflow, &need_indices);
        Ok(RunState {
            run_id,
            steps: workflow.steps.iter().map(|_| StepState::new()).collect(),
            workflow: Arc::new(workflow.clone()),
            inputs: inputs.clone(),
            source_hash: source_hash.clone(),
            source_path: source_path.clone(),
            parent: parent.clone(),
            status: RunStatus::Running,
            started_at: first.at,
            finished_at: None,
            reason: None,
            events: 1,
            outputs: Outputs::new(),
            escalation: Escalation::default(),
            step_indices: Arc::new(step_indices),
            need_indices: Arc::new(need_indices),
            dependents: Arc::new(dependents),
            frontier,
        })
    }

    fn index(&self, step: &StepId) -> Result<usize, ApplyError> {
        self.step_index(step).ok_or_else(|| ApplyError {
            message: format!("event names step `{step}`, which the workflow does not have"),
        })
    }

    /// The position of a step in `workflow.steps` (and in `steps`), in constant time.
    pub fn step_index(&self, id: &StepId) -> Option<usize> {
        self.step_indices.get(id).copied()
    }

    pub fn step(&self, id: &StepId) -> Option<&StepState> {
        self.step_index(id).map(|i| &self.steps[i])
    }

    /// The positions of the steps `names`, ascending, for [`RunState::template_context_of`];
    /// `None` (every step) when `names` is, or when one is not a step of the workflow.
    pub fn step_positions(&self, names: Option<&BTreeSet<String>>) -> Option<Vec<usize>> {
        let mut positions = Vec::with_capacity(names?.len());
        for name in names? {
            positions.push(self.step_index(&StepId::new(name).ok()?)?);
        }
        positions.sort_unstable();
        Some(positions)
    }

    /// Folds one more event in.
    pub fn apply(&mut self, event: &Event) -> Result<(), ApplyError> {
        self.events += 1;
        match &event.kind {
            EventKind::RunStarted(_) => {
                return Err(ApplyError { message: "a second `run_started` in one run".to_owned() });
            }
            EventKind::StepStarted { step, attempt } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                if !matches!(state.phase, StepPhase::Pending | StepPhase::WaitingRetry | StepPhase::Orphan) {
                    return Err(ApplyError { message: format!("step `{step}` started while {:?}", state.phase) });
                }
                state.attempt = *attempt;
                state.started_at = Some(event.at);
                state.first_started_at.get_or_insert(event.at);
                state.finished_at = None;
                state.retry_at = None;
                self.set_phase(i, StepPhase::Running);
            }
            EventKind::StepSucceeded { step, attempt, outputs, exit_code, .. } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                check_running(state, step, *attempt)?;
                state.outputs = outputs.clone();
                state.exit_code = *exit_code;
                state.error = None;
                state.finished_at = Some(event.at);
                self.set_phase(i, StepPhase::Succeeded);
            }
            EventKind::StepCheckStarted { step, attempt } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                if state.phase != StepPhase::Orphan || state.attempt != *attempt {
                    return Err(ApplyError {
                        message: format!("check of step `{step}` started while {:?}", state.phase),
                    });
                }
                self.set_phase(i, StepPhase::Checking);
            }
            EventKind::StepChecked { step, attempt, done, outputs, error, .. } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                if state.phase != StepPhase::Checking || state.attempt != *attempt {
                    return Err(ApplyError {
                        message: format!("check of step `{step}` ended while {:?}", state.phase),
                    });
                }
                let phase = match (error, done) {
                    (Some(error), _) => {
                        state.check_error = Some(error.clone());
                        StepPhase::Orphan
                    }
                    (None, true) => {
                        state.outputs = outputs.clone();
                        state.error = None;
                        state.finished_at = Some(event.at);
                        StepPhase::Succeeded
                    }
                    (None, false) => {
                        // The effect is not there: the step runs again, on a fresh budget.
                        state.budget_start = state.attempt.0;
                        state.first_started_at = None;
                        StepPhase::Pending
                    }
                };
                self.set_phase(i, phase);
            }
            EventKind::StepPolled { step, attempt, outputs, next_at, .. } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                check_running(state, step, *attempt)?;
                state.retry_at = Some(*next_at);
                state.outputs = outputs.clone();
                state.error = None;
                state.finished_at = Some(event.at);
                self.set_phase(i, StepPhase::WaitingRetry);
            }
            EventKind::StepFailed { step, attempt, error, retry_at, exit_code, outputs, .. } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                if attempt.0 == 0 {
                    // A step that could not even start (its condition failed to evaluate).
                    if state.phase != StepPhase::Pending {
                        return Err(ApplyError {
                            message: format!("step `{step}` failed to start while {:?}", state.phase),
                        });
                    }
                } else {
                    check_running(state, step, *attempt)?;
                }
                state.retry_at = *retry_at;
                state.outputs = outputs.clone();
                state.error = Some(error.clone());
                state.exit_code = *exit_code;
                state.finished_at = Some(event.at);
                self.set_phase(i, if retry_at.is_some() { StepPhase::WaitingRetry } else { StepPhase::Failed });
            }
            EventKind::StepApproved { step, by, comment } | EventKind::StepRejected { step, by, comment } => {
                let approved = matches!(event.kind, EventKind::StepApproved { .. });
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                if !matches!(state.phase, StepPhase::Running | StepPhase::Orphan) || state.decision.is_some() {
                    return Err(ApplyError {
                        message: format!(
                            "step `{step}` answered while {:?} (answered before: {})",
                            state.phase,
                            state.decision.is_some()
                        ),
                    });
                }
                state.decision = Some(Answer { approved, by: by.clone(), comment: comment.clone(), at: event.at });
            }
            EventKind::StepSkipped { step, reason } => {
                let i = self.index(step)?;
                let state = &mut self.steps[i];
                if state.phase.is_terminal() || state.phase == StepPhase::Running {
                    return Err(ApplyError { message: format!("step `{step}` skipped while {:?}", state.phase) });
                }
                state.skip_reason = Some(reason.clone());
                state.finished_at = Some(event.at);
                self.set_phase(i, StepPhase::Skipped);
            }
            EventKind::RunSucceeded { outputs } => {
                self.outputs = outputs.clone();
                self.finish(RunStatus::Succeeded, event.at, None);
            }
            EventKind::RunFailed { outputs, error, .. } => {
                self.outputs = outputs.clone();
                self.finish(RunStatus::Failed, event.at, error.clone());
            }
            EventKind::BundleCreated { archive, .. } => {
                self.escalation.bundle = Some(archive.clone());
                self.escalation.bundled_at = Some(event.at);
            }
            EventKind::EmailSent { message_id, .. } => self.escalation.message_id = Some(message_id.clone()),
            EventKind::EmailFailed { error, .. } => self.escalation.email_error = Some(error.clone()),
            EventKind::SupportTicketCreated { ticket, .. } => self.escalation.ticket = Some(ticket.clone()),
            EventKind::RunAcknowledged { by, .. } => self.escalation.acknowledged_by = Some(by.clone()),
            EventKind::RunCancelled { reason } => {
                self.orphan_running();
                self.finish(RunStatus::Cancelled, event.at, Some(reason.clone()));
            }
            EventKind::RunInterrupted { reason, .. } => {
                self.orphan_running();
                self.status = RunStatus::Interrupted;
                self.reason = Some(reason.clone());
            }
            EventKind::RunNeedsAttention { reason, .. } => {
                self.status = RunStatus::NeedsAttention;
                self.reason = Some(reason.clone());
            }
            EventKind::RunResumed { rerun, skip } => self.resume(rerun, skip, event.at)?,
        }
        Ok(())
    }

    fn finish(&mut self, status: RunStatus, at: DateTime<Utc>, reason: Option<String>) {
        self.status = status;
        self.finished_at = Some(at);
        self.reason = reason;
    }

    fn orphan_running(&mut self) {
        if self.frontier.running == 0 && self.frontier.checking == 0 {
            return;
        }
        for i in 0..self.steps.len() {
            if matches!(self.steps[i].phase, StepPhase::Running | StepPhase::Checking) {
                self.set_phase(i, StepPhase::Orphan);
            }
        }
    }

    /// Moves step `i` to `phase`, keeping the frontier (what `decide` looks at) in step.
    /// Every change of a step's phase goes through here.
    fn set_phase(&mut self, i: usize, phase: StepPhase) {
        let old = self.steps[i].phase;
        if old == phase {
            return;
        }
        self.steps[i].phase = phase;
        let spec = &self.workflow.steps[i];
        let frontier = &mut self.frontier;
        frontier.leave(i, old, spec.continue_on_error);
        frontier.enter(i, phase, spec.continue_on_error);
        if old.is_terminal() != phase.is_terminal() {
            let finished = phase.is_terminal();
            frontier.count_unfinished(spec.handler, !finished);
            for &dependent in &self.dependents[i] {
                let open = &mut frontier.open_needs[dependent];
                *open = if finished { open.saturating_sub(1) } else { open.saturating_add(1) };
                frontier.refresh(dependent, self.steps[dependent].phase, self.workflow.steps[dependent].handler);
            }
        }
        frontier.refresh(i, phase, spec.handler);
    }

    fn resume(&mut self, rerun: &[StepId], skip: &[StepId], at: DateTime<Utc>) -> Result<(), ApplyError> {
        self.orphan_running();
        let was_failed = self.status == RunStatus::Failed;
        let workflow = Arc::clone(&self.workflow);
        for (i, spec) in workflow.steps.iter().enumerate() {
            if was_failed {
                let state = &mut self.steps[i];
                let counted_failure = state.phase == StepPhase::Failed && !spec.continue_on_error;
                if counted_failure {
                    state.budget_start = state.attempt.0;
                    state.decision = None;
                    state.first_started_at = None;
                    state.error = None;
                    self.set_phase(i, StepPhase::Pending);
                }
                let state = &mut self.steps[i];
                if state.phase == StepPhase::Skipped && !state.skipped_by_operator {
                    state.skip_reason = None;
                    self.set_phase(i, StepPhase::Pending);
                }
            }
            let state = &mut self.steps[i];
            if rerun.contains(&spec.id) && state.phase == StepPhase::Orphan {
                state.check_error = None;
                state.budget_start = state.attempt.0;
                state.first_started_at = None;
                self.set_phase(i, StepPhase::Pending);
            }
            let state = &mut self.steps[i];
            if skip.contains(&spec.id) && !state.phase.is_terminal() {
                state.skipped_by_operator = true;
                state.skip_reason = Some("skipped by the operator at resume".to_owned());
                state.finished_at = Some(at);
                self.set_phase(i, StepPhase::Skipped);
            }
        }
        self.status = RunStatus::Running;
        self.finished_at = None;
        self.reason = None;
        Ok(())
    }

    /// Steps that failed without `continue_on_error`: they make the run fail.
    pub fn failed_steps(&self) -> Vec<StepId> {
        self.frontier.failed.iter().map(|&i| self.workflow.steps[i].id.clone()).collect()
    }

    /// The template context: `inputs`, `run`, `steps` with each finished step's outcome and
    /// outputs, and `failure.steps` (each failed step's id and error) for `on_failure` handlers.
    pub fn template_context(&self) -> serde_json::Value {
        self.template_context_of(None)
    }

    /// The template context with `steps` limited to the steps at `only` (positions in
    /// `workflow.steps`, ascending), or every step on `None`: enough for templates that
    /// name those steps (see `Templates::named_steps`), and it does not grow with the run.
    pub fn template_context_of(&self, only: Option<&[usize]>) -> serde_json::Value {
        let mut steps = serde_json::Map::new();
        let mut add = |index: usize| {
            let (spec, state) = (&self.workflow.steps[index], &self.steps[index]);
            if let Some(outcome) = state.outcome() {
                steps.insert(spec.id.to_string(), serde_json::json!({ "outcome": outcome, "outputs": state.outputs }));
            }
        };
        match only {
            None => (0..self.steps.len()).for_each(&mut add),
            Some(indices) => indices.iter().copied().filter(|&index| index < self.steps.len()).for_each(&mut add),
        }
        let failed: Vec<serde_json::Value> = self
            .frontier
            .failed
            .iter()
            .map(|&i| (&self.workflow.steps[i], &self.steps[i]))
            .filter(|(spec, _)| !spec.handler)
            .map(|(spec, s)| serde_json::json!({ "id": spec.id, "error": s.error }))
            .collect();
        serde_json::json!({
            "inputs": self.inputs,
            "steps": steps,
            "run": { "id": self.run_id.get(), "workflow": self.workflow.name },
            "failure": { "steps": failed },
        })
    }

    /// When the next attempt is due after attempt `attempt` failed at `now`;
    /// `None` when the policy allows no more attempts in the current budget.
    pub fn retry_at_after_failure(
        &self,
        step: &StepId,
        attempt: Attempt,
        now: DateTime<Utc>,
        jitter_seed: u64,
    ) -> Option<DateTime<Utc>> {
        let i = self.step_index(step)?;
        let spec = &self.workflow.steps[i];
        let used = attempt.0.saturating_sub(self.steps[i].budget_start);
        (used < spec.retry.attempts).then(|| {
            let delay = spec.retry.delay_for(used, jitter_seed);
            now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
        })
    }
}

fn check_running(state: &StepState, step: &StepId, attempt: Attempt) -> Result<(), ApplyError> {
    if state.phase != StepPhase::Running || state.attempt != attempt {
        return Err(ApplyError {
            message: format!(
                "result of step `{step}` attempt {attempt} while the step is {:?} at attempt {}",
                state.phase, state.attempt
            ),
        });
    }
    Ok(())
}

/// Something the executor should do. Each becomes an event, recorded before anything happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    StartStep {
        step: StepId,
        attempt: Attempt,
    },
    /// Run the `check` of an orphan that is not safe to repeat.
    CheckStep {
        step: StepId,
        attempt: Attempt,
    },
    SkipStep {
        step: StepId,
        reason: String,
    },
    /// A step that cannot start because its condition does not evaluate.
    FailStep {
        step: StepId,
        error: String,
    },
    NeedsAttention {
        steps: Vec<StepId>,
        reason: String,
    },
    /// Every step has finished: the run succeeds unless a step failed or one of the
    /// workflow's `outputs` does not evaluate (`error`, the first that does not).
    FinishRun {
        succeeded: bool,
        failed_steps: Vec<StepId>,
        outputs: Outputs,
        error: Option<String>,
    },
}

impl Action {
    /// The event that records this action, with the run's secrets masked in what it says.
    pub fn event_kind(&self, masker: &Masker) -> EventKind {
        match self {
            Action::StartStep { step, attempt } => EventKind::StepStarted { step: step.clone(), attempt: *attempt },
            Action::CheckStep { step, attempt } => {
                EventKind::StepCheckStarted { step: step.clone(), attempt: *attempt }
            }
            Action::SkipStep { step, reason } => EventKind::StepSkipped { step: step.clone(), reason: reason.clone() },
            Action::FailStep { step, error } => EventKind::StepFailed {
                step: step.clone(),
                attempt: Attempt(0),
                error: masker.mask(error),
                outputs: Outputs::new(),
                retry_at: None,
                exit_code: None,
                artifacts: Vec::new(),
                duration_ms: 0,
            },
            Action::NeedsAttention { steps, reason } => {
                EventKind::RunNeedsAttention { steps: steps.clone(), reason: reason.clone() }
            }
            Action::FinishRun { succeeded: true, outputs, .. } => {
                EventKind::RunSucceeded { outputs: masker.mask_outputs(outputs) }
            }
            Action::FinishRun { succeeded: false, failed_steps, outputs, error } => EventKind::RunFailed {
                failed_steps: failed_steps.clone(),
                outputs: masker.mask_outputs(outputs),
                error: error.as_deref().map(|error| masker.mask(error)),
            },
        }
    }
}

/// What to do now, and when to look again if nothing happens before.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// The earliest `retry_at` still in the future.
    pub wake_at: Option<DateTime<Utc>>,
}

/// Decides the next actions for a run at time `now`.
///
/// Skips and condition failures change what later steps may do, so the
/// caller applies the actions' events and decides again until no action is
/// left (a fixpoint); starts are bounded by `max_parallel`.
///
/// A decision looks only at the run's frontier (steps that may start, retry or need a look
/// after a crash), which `apply` keeps: its cost does not grow with the steps already finished.
pub fn decide(state: &RunState, now: DateTime<Utc>, templates: &Templates) -> Decision {
    let mut decision = Decision::default();
    if state.status != RunStatus::Running {
        return decision;
    }
    let workflow = &state.workflow;
    let frontier = &state.frontier;

    // Orphans first: repeat the safe ones; look with their `check` at those that declare one;
    // stop for the others.
    let mut unsafe_orphans = Vec::new();
    let mut check_errors = Vec::new();
    let mut checks = Vec::new();
    for &i in &frontier.orphans {
        let (spec, s) = (&workflow.steps[i], &state.steps[i]);
        if spec.idempotent {
            continue;
        }
        match (&spec.check, &s.check_error) {
            (Some(_), None) => checks.push(Action::CheckStep { step: spec.id.clone(), attempt: s.attempt }),
            (Some(_), Some(error)) => {
                check_errors.push(format!("the check of `{}` failed: {error}", spec.id));
                unsafe_orphans.push(spec.id.clone());
            }
            (None, _) => unsafe_orphans.push(spec.id.clone()),
        }
    }
    if !unsafe_orphans.is_empty() {
        let names: Vec<String> = unsafe_orphans.iter().map(|s| format!("`{s}`")).collect();
        let mut reason = format!(
            "step {} was started but has no result, and is marked `idempotent: false`: check whether it took effect, then resume with --rerun STEP or --skip STEP",
            names.join(", ")
        );
        for error in check_errors {
            reason.push_str("; ");
            reason.push_str(&error);
        }
        decision.actions.push(Action::NeedsAttention { steps: unsafe_orphans, reason });
        return decision;
    }
    if !checks.is_empty() {
        // Nothing else starts while the run finds out what the crash left behind.
        decision.actions = checks;
        return decision;
    }
    if frontier.checking > 0 {
        return decision;
    }

    let mut running = frontier.running;
    // The `on_failure` handler waits for every other step, and runs only when the run is failing.
    let main_done = frontier.unfinished_main == 0;
    let failing = !frontier.failed.is_empty();
    for &position in &frontier.candidates {
        let (spec, step) = (&workflow.steps[position], &state.steps[position]);
        if spec.handler && step.phase == StepPhase::Pending {
            if !main_done {
                continue;
            }
            if !failing {
                decision
                    .actions
                    .push(Action::SkipStep { step: spec.id.clone(), reason: "the run did not fail".to_owned() });
                continue;
            }
        }
        match step.phase {
            StepPhase::Orphan => {
                if running < workflow.max_parallel {
                    running += 1;
                    decision.actions.push(Action::StartStep { step: spec.id.clone(), attempt: step.attempt.next() });
                }
            }
            StepPhase::WaitingRetry => match step.retry_at {
                Some(at) if at > now => {
                    decision.wake_at = Some(decision.wake_at.map_or(at, |w| w.min(at)));
                }
                _ => {
                    if running < workflow.max_parallel {
                        running += 1;
                        decision
                            .actions
                            .push(Action::StartStep { step: spec.id.clone(), attempt: step.attempt.next() });
                    }
                }
            },
            StepPhase::Pending => {
                let Some(readiness) = readiness(state, position) else { continue };
                let action = match &spec.condition {
                    Some(condition) => {
                        // Only the steps the condition names: a context of every finished step
                        // per decision made a long run quadratic.
                        let named = templates.named_steps([], [condition.as_str()]);
                        let context = state.template_context_of(state.step_positions(named.as_ref()).as_deref());
                        match templates.eval_condition(condition, &context) {
                            Ok(true) => None,
                            Ok(false) => Some(Action::SkipStep {
                                step: spec.id.clone(),
                                reason: format!("condition `{condition}` is false"),
                            }),
                            Err(problem) => Some(Action::FailStep {
                                step: spec.id.clone(),
                                error: format!("condition `{condition}` could not be evaluated: {problem}"),
                            }),
                        }
                    }
                    None => match readiness {
                        Readiness::AllSucceeded => None,
                        Readiness::Blocked(reason) => Some(Action::SkipStep { step: spec.id.clone(), reason }),
                    },
                };
                match action {
                    Some(action) => decision.actions.push(action),
                    None if running < workflow.max_parallel => {
                        running += 1;
                        decision
                            .actions
                            .push(Action::StartStep { step: spec.id.clone(), attempt: step.attempt.next() });
                    }
                    None => {}
                }
            }
            StepPhase::Running
            | StepPhase::Checking
            | StepPhase::Succeeded
            | StepPhase::Failed
            | StepPhase::Skipped => {}
        }
    }

    if decision.actions.is_empty() && frontier.unfinished == 0 {
        let failed_steps = state.failed_steps();
        let (outputs, output_error) = state.workflow_outputs(templates);
        // A failed run's outputs are kept as far as they evaluate; only a run that would
        // succeed fails for an output that does not.
        let error = if failed_steps.is_empty() { output_error } else { None };
        decision.actions.push(Action::FinishRun {
            succeeded: failed_steps.is_empty() && error.is_none(),
            failed_steps,
            outputs,
            error,
        });
    }
    decision
}

enum Readiness {
    AllSucceeded,
    /// Some need failed or was skipped: why a step without `if` does not run.
    Blocked(String),
}

/// Whether every need of the step at `position` has finished, and how.
fn readiness(state: &RunState, position: usize) -> Option<Readiness> {
    let mut blocked = None;
    let needs = state.workflow.steps[position].needs.iter().zip(state.need_indices.get(position)?);
    for (need, index) in needs {
        let index = (*index)?;
        let need_state = &state.steps[index];
        let need_spec = &state.workflow.steps[index];
        match need_state.phase {
            StepPhase::Succeeded => {}
            StepPhase::Failed if need_spec.continue_on_error => {}
            StepPhase::Failed => {
                blocked.get_or_insert_with(|| format!("needs `{need}`, which failed"));
            }
            StepPhase::Skipped => {
                blocked.get_or_insert_with(|| format!("needs `{need}`, which was skipped"));
            }
            StepPhase::Pending
            | StepPhase::Running
            | StepPhase::WaitingRetry
            | StepPhase::Orphan
            | StepPhase::Checking => return None,
        }
    }
    Some(blocked.map_or(Readiness::AllSucceeded, Readiness::Blocked))
}

mod results;
pub use results::{Attempted, Judging, mask_event, resolve_duration};

#[cfg(test)]
mod tests;
