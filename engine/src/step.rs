//! The step trait: what the engine asks of every step kind, and the registry the CLI builds.
//!
//! The engine knows no concrete kind. A kind is selected in YAML by its key
//! (`run: ...`), checks its own configuration at load time, and executes with
//! a [`StepRequest`] that carries everything it may use.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::artifact::{ArtifactRef, ArtifactSink};
use crate::diag::{Diagnostic, Position};
use crate::ids::{Attempt, RunId, StepId};
use crate::template::Templates;
use crate::yaml::Node;

/// Collects problems found in a step kind's configuration.
pub struct ConfigCheck<'a> {
    file: &'a std::path::Path,
    field: String,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl<'a> ConfigCheck<'a> {
    pub(crate) fn new(
        file: &'a std::path::Path,
        field: String,
        diagnostics: &'a mut Vec<Diagnostic>,
    ) -> ConfigCheck<'a> {
        ConfigCheck { file, field, diagnostics }
    }

    /// The field path of the kind's key (`steps[2].run`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The workflow file being checked.
    pub fn file(&self) -> &std::path::Path {
        self.file
    }

    /// Reports a problem at `position` in the sub-field `sub` (empty for the kind's key itself).
    pub fn error(&mut self, position: Position, sub: &str, message: impl Into<String>) {
        let field = if sub.is_empty() { self.field.clone() } else { format!("{}.{sub}", self.field) };
        self.diagnostics.push(Diagnostic::new(self.file, position, field, message));
    }
}

/// What a step kind gets to execute one attempt.
pub struct StepRequest {
    pub run_id: RunId,
    pub step: StepId,
    pub attempt: Attempt,
    /// The kind's configuration as written; render its templates with `templates` and `context`.
    pub config: serde_json::Value,
    /// The template context: `inputs`, `steps` (ancestors' outcomes and outputs), `run`.
    pub context: serde_json::Value,
    pub templates: Arc<Templates>,
    /// The step's `env`, rendered.
    pub env: Vec<(String, String)>,
    /// Cancelled on timeout, `runbook cancel` or interruption: stop, kill what was started, return.
    pub cancel: CancellationToken,
    /// Where to keep captured output.
    pub artifacts: ArtifactSink,
    /// The complete environment processes start with, when it is not this process's own.
    pub inherited_env: Option<Arc<Vec<(String, String)>>>,
    /// The directory processes start in, when it is not this process's own.
    pub working_dir: Option<std::path::PathBuf>,
    /// When the first attempt of the current budget started: deadlines that
    /// must survive a resume (an approval's timeout) count from it.
    pub first_started_at: chrono::DateTime<chrono::Utc>,
    /// Runs child workflows for the `workflow` kind.
    pub children: Arc<dyn ChildRuns>,
    /// Read access to recorded runs, for kinds that report on them (`bundle`).
    pub history: Arc<dyn RunHistory>,
    /// An operator's answer to this step (`runbook approve` / `reject`), as soon as there is one.
    pub answer: tokio::sync::watch::Receiver<Option<crate::state::Answer>>,
}

/// What a step may read of the store: runs' events, their child runs, and where artifacts are.
pub trait RunHistory: Send + Sync {
    /// Every event of a run, in order; an unreadable record is an error, never skipped.
    fn events(&self, run: RunId) -> Result<Vec<(crate::ids::Seq, crate::event::Event)>, String>;
    /// The child runs started by a run's `workflow` steps, with the step that started each.
    fn children(&self, run: RunId) -> Result<Vec<(StepId, RunId)>, String>;
    /// The store directory; artifact paths in events are relative to it.
    fn store_dir(&self) -> std::path::PathBuf;
}

/// A child workflow a step asks for.
#[derive(Debug, Clone)]
pub struct ChildRequest {
    /// A workflow name (looked up beside the parent's file, then in the workflows directory) or a path.
    pub workflow: String,
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// Cancelled when the parent step is stopped: the child is interrupted, resumable.
    pub cancel: CancellationToken,
}

/// How a child run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildOutcome {
    /// The child run, once one exists.
    pub run_id: Option<RunId>,
    /// `succeeded`, `failed`, ...; `None` when no child could be started.
    pub status: Option<String>,
    /// The child workflow's `outputs`.
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Why the child did not succeed.
    pub error: Option<String>,
}

/// The engine's side of the `workflow` kind: start a child run of the
/// current step, or take up the one an earlier attempt started.
#[async_trait]
pub trait ChildRuns: Send + Sync {
    async fn run_child(&self, request: ChildRequest) -> ChildOutcome;
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepResult {
    /// What the attempt produced, on success and on failure alike: the kind's
    /// built-in outputs (see [`StepKind::builtin_outputs`]) and the locals of
    /// the step's `outputs` templates (see [`StepKind::output_locals`]).
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Why the attempt failed; `None` when it succeeded.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub artifacts: Vec<ArtifactRef>,
    /// Escalation facts to record before the step's result (`email_sent`); see `EventKind::is_note`.
    pub notes: Vec<crate::event::EventKind>,
}

impl StepResult {
    /// A success with these values.
    pub fn succeeded(values: serde_json::Map<String, serde_json::Value>) -> StepResult {
        StepResult { values, ..StepResult::default() }
    }

    /// A failure with nothing to show but its reason.
    pub fn failed(error: impl Into<String>) -> StepResult {
        StepResult { error: Some(error.into()), ..StepResult::default() }
    }

    /// A failure that still produced values (`result: timed_out`).
    pub fn failed_with(error: impl Into<String>, values: serde_json::Map<String, serde_json::Value>) -> StepResult {
        StepResult { values, error: Some(error.into()), ..StepResult::default() }
    }
}

/// A kind of step.
#[async_trait]
pub trait StepKind: Send + Sync + 'static {
    /// The YAML key that selects this kind (`run`).
    fn name(&self) -> &'static str;

    /// Whether a step of this kind, with this (validated) configuration, is
    /// safe to repeat after a crash when the workflow does not say.
    fn idempotent_by_default(&self, config: &serde_json::Value) -> bool {
        let _ = config;
        true
    }

    /// Names the kind makes available to the step's `outputs` templates (`stdout`, `json`).
    fn output_locals(&self) -> &'static [&'static str] {
        &[]
    }

    /// Values that become the step's outputs without being declared under
    /// `outputs`, on success and on failure: `status` of an `http` step,
    /// `result` of a `tcp` step, the names under a `set` step.
    fn provided_outputs(&self, config: &serde_json::Value) -> Vec<String> {
        let _ = config;
        Vec::new()
    }

    /// Whether an attempt of this kind finishes at once, doing no IO and never waiting (it
    /// computes from its configuration and context): the executor then runs it in the run's
    /// own task rather than in a task of its own, and decides on its result without a
    /// hand-off between threads. Such a kind must not block: cancellation and timeouts do not
    /// reach it.
    fn runs_inline(&self) -> bool {
        false
    }

    /// Whether a step of this kind waits for an operator's answer (`runbook approve`,
    /// `reject`), which the executor records and hands over through `StepRequest::answer`;
    /// answers to steps of other kinds are refused.
    fn takes_answers(&self) -> bool {
        false
    }

    /// Whether a step of this kind starts child runs through `StepRequest::children`; a child
    /// link from a step of another kind is a problem `runbook verify` reports.
    fn starts_child_runs(&self) -> bool {
        false
    }

    /// Checks the configuration under the kind's key and returns it as JSON for the model.
    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value;

    /// Executes one attempt. Must return promptly once `request.cancel` fires, having stopped what it started.
    async fn execute(&self, request: StepRequest) -> StepResult;

    /// Stops whatever an attempt that a dead process started may have left running.
    ///
    /// Called when a run is taken up (resumed) for every step found started without a result, before any
    /// step runs again; `artifacts` is that attempt's artifact prefix (see [`attempt_artifacts_prefix`]),
    /// where the kind may have recorded what it started. It may block briefly. The default does nothing.
    fn reap_orphan(&self, artifacts: &std::path::Path) {
        let _ = artifacts;
    }
}

/// Where an attempt's artifacts live, relative to the store: `artifacts/RUN/STEP.ATTEMPT`, then `.NAME`.
pub fn attempt_artifacts_prefix(run: RunId, step: &StepId, attempt: Attempt) -> String {
    format!("artifacts/{run}/{step}.{attempt}")
}

/// The step kinds a workflow may use, built by the caller and handed to the engine.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn StepKind>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a kind; a later kind of the same name replaces an earlier one.
    pub fn with(mut self, kind: impl StepKind) -> Registry {
        self.kinds.insert(kind.name(), Arc::new(kind));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn StepKind>> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}
