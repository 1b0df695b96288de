//! The executor: drives one run by performing the state machine's actions.
//!
//! The loop consumes a closed set of inputs (a step finished, a retry timer
//! fired, cancel, interrupt, lease renewal) and never polls. Each pass it
//! decides until nothing is left to decide, appends every event produced
//! since the last append in one durable batch (a step's result and the start
//! of the steps that follow it share one flush), and only then launches the
//! steps it started.

use chrono::{DateTime, Utc};
use runbook_storage::{KvState, LeaseHolder, LeaseOutcome};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod children;

use crate::artifact::{ArtifactSink, DEFAULT_CAPTURE_CAP_BYTES};
use crate::duration::format_duration;
use crate::error::{EngineError, Result};
use crate::event::{Event, EventKind, ParentRef, RunStarted};
use crate::ids::{Attempt, RunId, Seq, StepId};
use crate::journal::{Journal, changes_summary};
use crate::load::LoadedWorkflow;
use crate::mask::Masker;
use crate::state::{Action, Attempted, Judging, RunState, RunStatus, StepPhase, decide, resolve_duration};
use crate::step::{ChildRuns, Registry, StepRequest, StepResult};
use crate::template::Templates;
use children::ChildContext;

/// How long a lease lasts without renewal; renewed at a third of it.
const LEASE_TTL: Duration = Duration::from_secs(30);

/// An event as it became durable, for whoever follows a run.
#[derive(Debug, Clone)]
pub struct Observed {
    pub run_id: RunId,
    pub seq: Seq,
    pub event: Event,
}

/// Where observed events go; `None` when nobody follows.
pub type Observer = Option<mpsc::UnboundedSender<Observed>>;

/// Ways to act on a run from outside while it executes.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// `runbook cancel`: stop the steps and end the run as `cancelled`.
    pub cancel: CancellationToken,
    /// Why `cancel` was cancelled, when not by an operator; see [`RunControl::cancel_because`].
    cancel_reason: Arc<std::sync::OnceLock<String>>,
    /// Ctrl-C or shutdown: stop the steps and record `run_interrupted`; `resume` goes on.
    pub interrupt: CancellationToken,
    /// A shutdown's grace period: start no new step; once the running ones
    /// have ended, record `run_interrupted` (unless the run ended); `resume`
    /// goes on. `interrupt` still stops the steps when the grace is over.
    pub drain: CancellationToken,
    /// `runbook approve` / `reject`: answers for `approval` steps, recorded by the executor.
    pub answers: Arc<AnswerInbox>,
}

/// An operator's answer on its way to the executor, with a channel for the outcome.
#[derive(Debug)]
pub struct AnswerRequest {
    pub step: StepId,
    pub approved: bool,
    pub by: String,
    pub comment: Option<String>,
    pub reply: tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
}

/// Where answers wait until the executor takes them.
#[derive(Debug)]
pub struct AnswerInbox {
    sender: mpsc::UnboundedSender<AnswerRequest>,
    receiver: std::sync::Mutex<Option<mpsc::UnboundedReceiver<AnswerRequest>>>,
}

impl Default for AnswerInbox {
    fn default() -> AnswerInbox {
        let (sender, receiver) = mpsc::unbounded_channel();
        AnswerInbox { sender, receiver: std::sync::Mutex::new(Some(receiver)) }
    }
}

impl RunControl {
    /// Cancels the run, recording `reason` in its `run_cancelled` (the first reason given stays).
    pub fn cancel_because(&self, reason: impl Into<String>) {
        let _ = self.cancel_reason.set(reason.into());
        self.cancel.cancel();
    }

    /// Hands an answer to the executor and waits until it is recorded (or refused).
    pub async fn answer(
        &self,
        step: StepId,
        approved: bool,
        by: String,
        comment: Option<String>,
    ) -> std::result::Result<(), String> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.answers
            .sender
            .send(AnswerRequest { step, approved, by, comment, reply })
            .map_err(|_| "the run stopped executing; try again".to_owned())?;
        outcome.await.map_err(|_| "the run stopped executing before recording the answer".to_owned())?
    }
}

/// The environment a run's steps see: by default this process's; a run
/// handed over by another `runbook` process uses that process's variables
/// and working directory, so secrets and relative paths mean what the
/// operator meant.
#[derive(Debug, Clone, Default)]
pub struct RunEnvironment {
    pub vars: Option<Arc<Vec<(String, String)>>>,
    pub dir: Option<PathBuf>,
    /// Where `workflow` steps look up workflows by name, after the parent's own directory.
    pub workflows_dir: Option<PathBuf>,
}

impl RunEnvironment {
    /// The value of an environment variable as the run sees it.
    pub fn var(&self, name: &str) -> Option<String> {
        match &self.vars {
            Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            None => std::env::var(name).ok(),
        }
    }
}

/// Runs workflows over a journal with a registry of step kinds.
pub struct Engine {
    journal: Arc<Journal>,
    /// Runs executing in this process (children included), with the means to act on them.
    active: std::sync::Mutex<HashMap<RunId, RunControl>>,
    registry: Registry,
    templates: Arc<Templates>,
    store_dir: PathBuf,
    owner: LeaseHolder,
    capture_cap_bytes: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("store", &self.store_dir).finish()
    }
}

fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// This machine's host name, for leases.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Engine {
    pub fn new(journal: Arc<Journal>, registry: Registry) -> Engine {
        let store_dir = journal.store().path().to_path_buf();
        let host = host_name();
        let pid = std::process::id();
        let owner = LeaseHolder {
            owner: format!("{host}:{pid}:{}", Utc::now().timestamp_nanos_opt().unwrap_or(0)),
            host,
            pid,
            expires_at_ms: 0,
        };
        Engine {
            journal,
            active: std::sync::Mutex::new(HashMap::new()),
            registry,
            templates: Arc::new(Templates::new()),
            store_dir,
            owner,
            capture_cap_bytes: DEFAULT_CAPTURE_CAP_BYTES,
        }
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records `run_started` for a validated workflow with resolved inputs and returns the new run's id.
    pub async fn start_run(
        &self,
        loaded: &LoadedWorkflow,
        inputs: serde_json::Map<String, serde_json::Value>,
        parent: Option<ParentRef>,
        environment: &RunEnvironment,
    ) -> Result<RunId> {
        let run_id = self.journal.allocate_run_id()?;
        self.start_run_as(run_id, loaded, inputs, parent, environment).await
    }

    /// Records `run_started` under an id allocated beforehand.
    pub async fn start_run_as(
        &self,
        run_id: RunId,
        loaded: &LoadedWorkflow,
        inputs: serde_json::Map<String, serde_json::Value>,
        parent: Option<ParentRef>,
        environment: &RunEnvironment,
    ) -> Result<RunId> {
        let masker = secrets_masker(run_id, &loaded.workflow.secrets, environment)?;
        let inputs = match masker.mask_json(&serde_json::Value::Object(inputs)) {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let first = Event {
            at: Utc::now(),
            kind: EventKind::RunStarted(Box::new(RunStarted {
                workflow: loaded.workflow.clone(),
                source_hash: loaded.source_hash.clone(),
                source_path: loaded.path.display().to_string(),
                inputs,
                parent,
            })),
        };
        // The first event is checked like every other: it must start a state before it is recorded.
        let state = RunState::start(run_id, &first).map_err(|e| EngineError::Apply {
            run: run_id,
            seq: 1,
            message: e.message,
        })?;
        self.journal.append(run_id, Seq(1), std::slice::from_ref(&first)).await?;
        self.journal.index(&state)?;
        Ok(run_id)
    }

    /// Records `run_resumed` (with the operator's decisions) for a run that may be resumed.
    pub async fn resume_run(&self, run_id: RunId, rerun: Vec<StepId>, skip: Vec<StepId>) -> Result<()> {
        let (state, next) = self.journal.load(run_id)?;
        let hint = match state.status {
            RunStatus::Succeeded => Some("there is nothing to resume".to_owned()),
            RunStatus::Cancelled => {
                Some("a cancelled run is not resumed; start a new one with `runbook run`".to_owned())
            }
            RunStatus::Running | RunStatus::Failed | RunStatus::Interrupted | RunStatus::NeedsAttention => None,
        };
        if let Some(hint) = hint {
            return Err(EngineError::NotResumable { run: run_id, status: state.status, hint });
        }
        for step in rerun.iter().chain(&skip) {
            if state.workflow.step(step).is_none() {
                return Err(EngineError::UnknownStep { run: run_id, step: step.clone() });
            }
        }
        if state.status == RunStatus::NeedsAttention {
            let undecided: Vec<String> = state
                .workflow
                .steps
                .iter()
                .zip(&state.steps)
                .filter(|(spec, s)| {
                    s.phase == StepPhase::Orphan
                        && !spec.idempotent
                        && !rerun.contains(&spec.id)
                        && !skip.contains(&spec.id)
                })
                .map(|(spec, _)| spec.id.to_string())
                .collect();
            if !undecided.is_empty() {
                let step = &undecided[0];
                return Err(EngineError::NotResumable {
                    run: run_id,
                    status: state.status,
                    hint: format!(
                        "{}; decide with `runbook resume {run_id} --rerun {step}` (run it again) or `runbook resume {run_id} --skip {step}` (treat it as skipped)",
                        state.reason.clone().unwrap_or_default()
                    ),
                });
            }
        }
        let event = Event { at: Utc::now(), kind: EventKind::RunResumed { rerun, skip } };
        self.journal.append(run_id, next, &[event]).await?;
        Ok(())
    }

    /// Executes a run until it finishes, needs attention, is cancelled or interrupted.
    pub async fn execute(
        self: &Arc<Self>,
        run_id: RunId,
        control: RunControl,
        environment: RunEnvironment,
        observer: Observer,
    ) -> Result<RunStatus> {
        let span = tracing::info_span!("run", run = %run_id);
        {
            let mut active = self.active.lock().map_err(|_| EngineError::Busy {
                run: run_id,
                holder: "this process (its table of runs is poisoned)".to_owned(),
            })?;
            if active.contains_key(&run_id) {
                return Err(EngineError::Busy {
                    run: run_id,
                    holder: format!("this process ({})", std::process::id()),
                });
            }
            active.insert(run_id, control.clone());
        }
        let result = self.execute_inner(run_id, control, environment, observer).instrument(span).await;
        if let Ok(mut active) = self.active.lock() {
            active.remove(&run_id);
        }
        result
    }

    /// The controls of a run executing in this process.
    pub fn control_of(&self, run_id: RunId) -> Option<RunControl> {
        self.active.lock().ok().and_then(|active| active.get(&run_id).cloned())
    }

    async fn execute_inner(
        self: &Arc<Self>,
        run_id: RunId,
        control: RunControl,
        environment: RunEnvironment,
        observer: Observer,
    ) -> Result<RunStatus> {
        let (state, next) = self.journal.load(run_id)?;
        if state.status != RunStatus::Running {
            return Ok(state.status);
        }
        self.lease_off_runtime(run_id, Engine::acquire_lease).await.unwrap_or_else(|| {
            Err(EngineError::Stuck { run: run_id, message: "the process is shutting down".to_owned() })
        })?;
        self.reap_orphans(&state);
        let masker = match secrets_masker(run_id, &state.workflow.secrets, &environment) {
            Ok(masker) => Arc::new(masker),
            Err(error) => {
                self.lease_off_runtime(run_id, Engine::release_lease).await;
                return Err(error);
            }
        };
        let mut run = RunLoop {
            engine: Arc::clone(self),
            run_id,
            state,
            next,
            pending: Vec::new(),
            running: HashMap::new(),
            answer_senders: HashMap::new(),
            masker,
            observer,
            environment,
            scopes: HashMap::new(),
        };
        let result = run.drive(&control).await;
        if let Err(error) = &result {
            // Leave the run resumable: record why it stopped, if the log still takes writes.
            let _ = run.stop(EventKind::RunInterrupted { reason: error.to_string(), running: Vec::new() }).await;
        }
        self.lease_off_runtime(run_id, Engine::release_lease).await;
        result
    }

    /// Runs a lease operation, which waits for a flush, on a blocking thread: the runtime's
    /// threads go on serving other runs meanwhile, and the leases of runs that start or end
    /// together share one flush. `None` only when the runtime is shutting down.
    async fn lease_off_runtime<T: Send + 'static>(
        self: &Arc<Self>,
        run_id: RunId,
        operation: impl FnOnce(&Engine, RunId) -> T + Send + 'static,
    ) -> Option<T> {
        let engine = Arc::clone(self);
        let span = tracing::Span::current();
        match tokio::task::spawn_blocking(move || span.in_scope(|| operation(&engine, run_id))).await {
            Ok(value) => Some(value),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => None,
        }
    }

    /// Steps started by an executor that died (the log has no result for them) may have left
    /// processes behind: their kinds stop them now, under the lease, before anything runs again.
    /// A step's `check` may have been what was running: its kind reaps too.
    fn reap_orphans(&self, state: &RunState) {
        for (spec, step) in state.workflow.steps.iter().zip(&state.steps) {
            if !matches!(step.phase, StepPhase::Orphan | StepPhase::Running | StepPhase::Checking)
                || step.attempt.0 == 0
            {
                continue;
            }
            let prefix =
                self.store_dir.join(crate::step::attempt_artifacts_prefix(state.run_id, &spec.id, step.attempt));
            let check_kind = spec.check.as_ref().map(|check| check.kind.as_str()).filter(|kind| *kind != spec.kind);
            for name in std::iter::once(spec.kind.as_str()).chain(check_kind) {
                if let Some(kind) = self.registry.get(name) {
                    kind.reap_orphan(&prefix);
                }
            }
        }
    }

    fn acquire_lease(&self, run_id: RunId) -> Result<()> {
        let me = LeaseHolder { expires_at_ms: now_ms() + LEASE_TTL.as_millis() as u64, ..self.owner.clone() };
        match self.journal.store().acquire_lease(run_id.get(), &me, now_ms())? {
            LeaseOutcome::Acquired => Ok(()),
            LeaseOutcome::TakenOver { reason, .. } => {
                tracing::info!(%reason, "took over the run's lease");
                Ok(())
            }
            LeaseOutcome::Held(holder) => {
                Err(EngineError::Busy { run: run_id, holder: format!("process {} on {}", holder.pid, holder.host) })
            }
        }
    }

    fn renew_lease(&self, run_id: RunId) -> Result<bool> {
        let me = LeaseHolder { expires_at_ms: now_ms() + LEASE_TTL.as_millis() as u64, ..self.owner.clone() };
        Ok(self.journal.store().renew_lease(run_id.get(), &me, now_ms())?)
    }

    fn release_lease(&self, run_id: RunId) {
        if let Err(error) = self.journal.store().release_lease(run_id.get(), &self.owner.owner) {
            tracing::warn!(%error, "cannot release the run's lease");
        }
    }
}

/// Reads the values of a workflow's secrets from the environment.
fn secrets_masker(run_id: RunId, names: &[String], environment: &RunEnvironment) -> Result<Masker> {
    let mut values = Vec::new();
    for name in names {
        match environment.var(name) {
            Some(value) => values.push(value),
            None => return Err(EngineError::MissingSecret { run: run_id, name: name.clone() }),
        }
    }
    Ok(Masker::new(values))
}

/// What a finished step task reports.
struct Finished {
    step: StepId,
    attempt: Attempt,
    result: StepResult,
    duration: Duration,
    /// The result is the step's `check`, not the step.
    check: bool,
}

/// An attempt of a kind that runs inline, for the run's own task to await.
type InlineAttempt = std::pin::Pin<Box<dyn std::future::Future<Output = Finished> + Send>>;

/// Steps to launch after the next flush (with `true` for a step's `check`), and when to wake up
/// if nothing else happens.
type Launches = (Vec<(StepId, Attempt, bool)>, Option<DateTime<Utc>>);

struct RunLoop {
    engine: Arc<Engine>,
    run_id: RunId,
    state: RunState,
    next: Seq,
    /// Applied to `state`, not yet durable.
    pending: Vec<Event>,
    running: HashMap<StepId, CancellationToken>,
    /// Where each running step hears of an operator's answer.
    answer_senders: HashMap<StepId, tokio::sync::watch::Sender<Option<crate::state::Answer>>>,
    masker: Arc<Masker>,
    observer: Observer,
    environment: RunEnvironment,
    /// For each step launched so far, the positions of the steps its templates name
    /// (`None`: every step); see [`RunLoop::step_context`].
    scopes: HashMap<StepId, Option<Arc<[usize]>>>,
}

impl RunLoop {
    async fn drive(&mut self, control: &RunControl) -> Result<RunStatus> {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let taken = control.answers.receiver.lock().ok().and_then(|mut slot| slot.take());
        // Another executor of the same control (a retried execute) may have taken the inbox; then nobody answers here.
        let (_unused, fallback) = mpsc::unbounded_channel();
        let mut answers_rx = taken.unwrap_or(fallback);
        let mut renew = tokio::time::interval(LEASE_TTL / 3);
        renew.tick().await;
        let mut draining = control.drain.is_cancelled();
        loop {
            let (launches, wake_at) = self.decide_all(draining)?;
            self.flush().await?;
            let mut inline = Vec::new();
            for (step, attempt, check) in launches {
                inline.extend(self.launch(step, attempt, check, done_tx.clone()));
            }
            // Kinds that run inline finish in this task, without a hand-off to another thread;
            // their results go through the same channel as the others, so that the select
            // below still sees a cancel, an interrupt, a drain or a lease renewal first.
            for attempt in inline {
                let _ = done_tx.send(attempt.await);
            }
            if self.state.status != RunStatus::Running {
                return Ok(self.state.status);
            }
            if draining && self.running.is_empty() {
                let reason = "stopped before its next step: the process is shutting down".to_owned();
                self.stop(EventKind::RunInterrupted { reason, running: Vec::new() }).await?;
                return Ok(RunStatus::Interrupted);
            }
            if self.running.is_empty() && wake_at.is_none() {
                return Err(EngineError::Stuck {
                    run: self.run_id,
                    message: "no step is running, none is due, and the run has not finished".to_owned(),
                });
            }
            let sleep = wake_at.map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
            tokio::select! {
                // Controls first: a chain of inline steps always has a result ready.
                biased;
                () = control.drain.cancelled(), if !draining => draining = true,
                () = control.cancel.cancelled() => {
                    let running = self.stop_steps(&mut done_rx).await;
                    let _ = running;
                    let reason =
                        control.cancel_reason.get().cloned().unwrap_or_else(|| "cancelled by the operator".to_owned());
                    self.stop(EventKind::RunCancelled { reason }).await?;
                    return Ok(RunStatus::Cancelled);
                }
                () = control.interrupt.cancelled() => {
                    let running = self.stop_steps(&mut done_rx).await;
                    self.stop(EventKind::RunInterrupted { reason: "interrupted".to_owned(), running }).await?;
                    return Ok(RunStatus::Interrupted);
                }
                _ = renew.tick() => {
                    if !self.engine.lease_off_runtime(self.run_id, Engine::renew_lease).await.unwrap_or(Ok(false))? {
                        let running = self.stop_steps(&mut done_rx).await;
                        let _ = running;
                        return Err(EngineError::Busy { run: self.run_id, holder: "another process that took over the lease".to_owned() });
                    }
                }
                Some(finished) = done_rx.recv() => self.finished(finished),
                Some(request) = answers_rx.recv() => self.answer(request).await,
                () = sleep_for(sleep) => {}
            }
        }
    }

    /// Decides until nothing is left to decide; returns the steps to launch and the next wake-up.
    /// While `draining`, starts (and checks) are left undone, to be decided again on resume.
    fn decide_all(&mut self, draining: bool) -> Result<Launches> {
        let mut launches = Vec::new();
        loop {
            let now = Utc::now();
            let decision = decide(&self.state, now, &self.engine.templates);
            let starts = |action: &Action| matches!(action, Action::StartStep { .. } | Action::CheckStep { .. });
            if decision.actions.iter().all(|action| draining && starts(action)) {
                return Ok((launches, decision.wake_at));
            }
            for action in decision.actions {
                match &action {
                    _ if draining && starts(&action) => continue,
                    Action::StartStep { step, attempt } => launches.push((step.clone(), *attempt, false)),
                    Action::CheckStep { step, attempt } => launches.push((step.clone(), *attempt, true)),
                    _ => {}
                }
                self.record(Event { at: now, kind: action.event_kind(&self.masker) })?;
            }
        }
    }

    /// Applies an event to the state; it becomes durable with the next flush.
    fn record(&mut self, event: Event) -> Result<()> {
        self.state.apply(&event).map_err(|e| EngineError::Apply {
            run: self.run_id,
            seq: self.next.0 + self.pending.len() as u64,
            message: e.message,
        })?;
        self.pending.push(event);
        Ok(())
    }

    /// Makes every pending event durable, then tells observers and the index.
    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        let first = self.next;
        self.next = self.engine.journal.append(self.run_id, first, &events).await?;
        let summary_changed = events.iter().any(|e| changes_summary(&e.kind));
        for (i, event) in events.into_iter().enumerate() {
            log_event(&event);
            if let Some(observer) = &self.observer {
                let _ = observer.send(Observed { run_id: self.run_id, seq: Seq(first.0 + i as u64), event });
            }
        }
        if summary_changed {
            self.engine.journal.index(&self.state)?;
        }
        Ok(())
    }

    /// Records a final event (cancelled, interrupted) after the steps stopped.
    async fn stop(&mut self, kind: EventKind) -> Result<()> {
        self.record(Event { at: Utc::now(), kind })?;
        self.flush().await
    }

    /// Cancels every running step and waits for them to stop; returns their ids.
    async fn stop_steps(&mut self, done_rx: &mut mpsc::UnboundedReceiver<Finished>) -> Vec<StepId> {
        let stopped: Vec<StepId> = self.running.keys().cloned().collect();
        for token in self.running.values() {
            token.cancel();
        }
        while !self.running.is_empty() {
            match done_rx.recv().await {
                Some(finished) => {
                    self.running.remove(&finished.step);
                }
                None => break,
            }
        }
        stopped
    }

    /// Starts an attempt (or a check) in a task of its own, which reports on `done`; for a kind
    /// that runs inline, returns the attempt for the caller to await in the run's own task.
    fn launch(
        &mut self,
        step: StepId,
        attempt: Attempt,
        check: bool,
        done: mpsc::UnboundedSender<Finished>,
    ) -> Option<InlineAttempt> {
        let mut spec = self.state.step_index(&step).map(|i| self.state.workflow.steps[i].clone())?;
        if check {
            // The check runs as a step of its own kind, with the step's context and env.
            let look = spec.check.clone()?;
            spec.kind = look.kind;
            spec.config = look.config;
        }
        let context = self.step_context(&spec);
        let token = CancellationToken::new();
        self.running.insert(step.clone(), token.clone());
        let known_answer = self.state.step(&step).and_then(|s| s.decision.clone());
        let (answer_sender, answer) = tokio::sync::watch::channel(known_answer);
        self.answer_senders.insert(step.clone(), answer_sender);
        let engine = &self.engine;
        let kind = engine.registry.get(&spec.kind).cloned();
        let history: Arc<dyn crate::step::RunHistory> = Arc::clone(&engine.journal) as Arc<dyn crate::step::RunHistory>;
        let first_started_at = self.state.step(&step).and_then(|s| s.first_started_at).unwrap_or_else(Utc::now);
        let children: Arc<dyn ChildRuns> = Arc::new(ChildContext {
            engine: Arc::clone(engine),
            parent: ParentRef { run_id: self.run_id, step: step.clone() },
            parent_source: PathBuf::from(&self.state.source_path),
            environment: self.environment.clone(),
            observer: self.observer.clone(),
        });
        let context_for_timeout = context.clone();
        let artifacts = ArtifactSink::new(
            &engine.store_dir,
            if check {
                format!("{}.check", crate::step::attempt_artifacts_prefix(self.run_id, &step, attempt))
            } else {
                crate::step::attempt_artifacts_prefix(self.run_id, &step, attempt)
            },
            Arc::clone(&self.masker),
            engine.capture_cap_bytes,
        );
        let templates = Arc::clone(&engine.templates);
        let environment = self.environment.clone();
        let run_id = self.run_id;
        let span = tracing::info_span!("step", step = %step, attempt = attempt.0);
        let inline = kind.as_ref().is_some_and(|kind| kind.runs_inline());
        let work = async move {
            let started = Instant::now();
            let result = match kind {
                None => StepResult::failed(format!("unknown step kind `{}`", spec.kind)),
                Some(kind) => {
                    let mut env = Vec::new();
                    let mut env_error = None;
                    for (name, template) in &spec.env {
                        match templates.render_text(template, &context) {
                            Ok(value) => env.push((name.clone(), value)),
                            Err(problem) => env_error = Some(format!("env `{name}`: {problem}")),
                        }
                    }
                    match env_error {
                        Some(error) => StepResult::failed(error),
                        None => {
                            let request = StepRequest {
                                run_id,
                                step: step.clone(),
                                attempt,
                                config: spec.config.clone(),
                                context,
                                templates: Arc::clone(&templates),
                                env,
                                cancel: token.clone(),
                                artifacts,
                                inherited_env: environment.vars.clone(),
                                working_dir: environment.dir.clone(),
                                first_started_at,
                                children,
                                history,
                                answer,
                            };
                            match resolve_duration(
                                &templates,
                                spec.timeout_template.as_deref(),
                                spec.timeout_ms,
                                &context_for_timeout,
                            ) {
                                Ok(timeout) => execute_with_timeout(kind.as_ref(), request, timeout, &token).await,
                                Err(error) => StepResult::failed(format!("timeout: {error}")),
                            }
                        }
                    }
                }
            };
            Finished { step, attempt, result, duration: started.elapsed(), check }
        }
        .instrument(span);
        if inline {
            return Some(Box::pin(work));
        }
        tokio::spawn(async move {
            let _ = done.send(work.await);
        });
        None
    }

    /// Records an operator's answer to a waiting `approval` step, durably, then tells the step.
    async fn answer(&mut self, request: AnswerRequest) {
        let AnswerRequest { step, approved, by, comment, reply } = request;
        let waiting = self.state.step(&step).is_some_and(|s| s.phase == StepPhase::Running && s.decision.is_none());
        let takes_answers = self
            .state
            .workflow
            .step(&step)
            .and_then(|spec| self.engine.registry.get(&spec.kind))
            .is_some_and(|kind| kind.takes_answers());
        if !takes_answers || !waiting {
            let _ = reply.send(Err(format!("step `{step}` is not an approval waiting for an answer")));
            return;
        }
        let kind = if approved {
            EventKind::StepApproved { step: step.clone(), by, comment }
        } else {
            EventKind::StepRejected { step: step.clone(), by, comment }
        };
        let recorded = match self.record(Event { at: Utc::now(), kind }) {
            Ok(()) => self.flush().await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if recorded.is_ok()
            && let Some(sender) = self.answer_senders.get(&step)
        {
            sender.send_replace(self.state.step(&step).and_then(|s| s.decision.clone()));
        }
        let _ = reply.send(recorded);
    }

    /// Hands a finished attempt (of a step or of its `check`) to the state machine, which says
    /// what it means, and records the events that come back.
    fn finished(&mut self, finished: Finished) {
        let Finished { step, attempt, result, duration, check } = finished;
        self.running.remove(&step);
        self.answer_senders.remove(&step);
        let Some(spec) = self.state.step_index(&step).map(|i| self.state.workflow.steps[i].clone()) else { return };
        let (kind, config) = match (&spec.check, check) {
            (Some(look), true) => (&look.kind, &look.config),
            _ => (&spec.kind, &spec.config),
        };
        let provided = self.engine.registry.get(kind).map(|kind| kind.provided_outputs(config)).unwrap_or_default();
        let context = self.step_context(&spec);
        let now = Utc::now();
        let judging = Judging {
            templates: &self.engine.templates,
            masker: &self.masker,
            context: &context,
            provided: &provided,
            now,
            jitter_seed: rand::random(),
        };
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let attempted = Attempted { step, attempt, result, duration_ms };
        let events = if check {
            self.state.on_check_finished(attempted, judging).into_iter().collect()
        } else {
            self.state.on_step_finished(attempted, judging)
        };
        for kind in events {
            if let Err(error) = self.record(Event { at: now, kind }) {
                tracing::error!(%error, "a step's result does not fit the run");
            }
        }
    }

    /// The template context for a step's own templates (its configuration, `env`, `outputs`,
    /// `until`, durations): `steps` holds only the steps they name, or every finished step when
    /// one uses `steps` as a whole. They evaluate as with the full context, but the cost of a
    /// step no longer grows with the number of steps finished before it.
    ///
    /// The scope is worked out once per step from the workflow's own spec, its `check` included,
    /// whatever the caller did to its copy (a check runs with the check's kind and configuration).
    fn step_context(&mut self, spec: &crate::model::StepSpec) -> serde_json::Value {
        let positions = match self.scopes.get(&spec.id) {
            Some(positions) => positions.clone(),
            None => {
                let own = self.state.step_index(&spec.id).map(|index| &self.state.workflow.steps[index]);
                let positions: Option<Arc<[usize]>> = own
                    .and_then(|own| {
                        let mut templates = Vec::new();
                        json_strings(&own.config, &mut templates);
                        if let Some(check) = &own.check {
                            json_strings(&check.config, &mut templates);
                        }
                        templates.extend(own.env.iter().chain(&own.outputs).map(|(_, template)| template.as_str()));
                        templates.extend(
                            [&own.timeout_template, &own.poll.interval_template, &own.poll.timeout_template]
                                .into_iter()
                                .filter_map(Option::as_deref),
                        );
                        let expressions = own.until.iter().chain(own.check.iter().map(|check| &check.done));
                        let named = self.engine.templates.named_steps(templates, expressions.map(String::as_str));
                        self.state.step_positions(named.as_ref())
                    })
                    .map(Arc::from);
                self.scopes.insert(spec.id.clone(), positions.clone());
                positions
            }
        };
        let mut context = self.state.template_context_of(positions.as_deref());
        // Secrets are read from the run's environment when a step needs them, never kept in
        // the state or the log; whatever a step makes of one is masked before it is recorded.
        if !self.state.workflow.secrets.is_empty()
            && let serde_json::Value::Object(map) = &mut context
        {
            let secrets: serde_json::Map<String, serde_json::Value> = self
                .state
                .workflow
                .secrets
                .iter()
                .filter_map(|name| self.environment.var(name).map(|value| (name.clone(), value.into())))
                .collect();
            map.insert("secrets".to_owned(), serde_json::Value::Object(secrets));
        }
        context
    }
}

/// Every string in a JSON value: the templates of a kind's configuration.
fn json_strings<'a>(value: &'a serde_json::Value, strings: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(text) => strings.push(text),
        serde_json::Value::Array(items) => items.iter().for_each(|item| json_strings(item, strings)),
        serde_json::Value::Object(map) => map.values().for_each(|item| json_strings(item, strings)),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
    }
}

async fn sleep_for(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

async fn execute_with_timeout(
    kind: &dyn crate::step::StepKind,
    request: StepRequest,
    timeout: Option<Duration>,
    token: &CancellationToken,
) -> StepResult {
    let execution = kind.execute(request);
    tokio::pin!(execution);
    let Some(limit) = timeout else { return execution.await };
    tokio::select! {
        result = &mut execution => result,
        () = tokio::time::sleep(limit) => {
            token.cancel();
            let mut result = execution.await;
            result.error = Some(format!("timed out after {}", format_duration(limit)));
            result
        }
    }
}

fn log_event(event: &Event) {
    match &event.kind {
        EventKind::StepFailed { step, attempt, error, .. } => {
            tracing::info!(step = %step, attempt = attempt.0, %error, "step failed");
        }
        other => {
            tracing::debug!(event = other.type_name(), step = ?other.step().map(ToString::to_string), "event recorded")
        }
    }
}
