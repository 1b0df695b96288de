//! Child runs of `workflow` steps: started under a durable link from the parent's step, taken
//! up where they stopped when the parent is resumed, and executed by the same engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Engine, Observed, Observer, RunControl, RunEnvironment};
use crate::event::ParentRef;
use crate::ids::RunId;
use crate::journal::CHILDREN_NAMESPACE;
use crate::state::{RunState, RunStatus, StepPhase};
use crate::step::{ChildOutcome, ChildRequest, ChildRuns};
use runbook_storage::KvState;

/// What a `workflow` step of one run needs to start or take up its child run.
pub(super) struct ChildContext {
    pub(super) engine: Arc<Engine>,
    pub(super) parent: ParentRef,
    pub(super) parent_source: PathBuf,
    pub(super) environment: RunEnvironment,
    pub(super) observer: Observer,
}

impl ChildContext {
    fn key(&self) -> Vec<u8> {
        let mut key = self.parent.run_id.get().to_be_bytes().to_vec();
        key.extend_from_slice(self.parent.step.as_str().as_bytes());
        key
    }

    /// The workflow file a name refers to: beside the parent's file, then in the workflows directory.
    fn resolve(&self, workflow: &str) -> std::result::Result<PathBuf, String> {
        let as_path = Path::new(workflow);
        let mut candidates = Vec::new();
        if as_path.is_absolute() {
            candidates.push(as_path.to_path_buf());
        }
        let mut dirs = Vec::new();
        if let Some(dir) = self.parent_source.parent() {
            dirs.push(dir.to_path_buf());
        }
        if let Some(dir) = &self.environment.workflows_dir {
            dirs.push(dir.clone());
        }
        for dir in &dirs {
            candidates.push(dir.join(workflow));
            candidates.push(dir.join(format!("{workflow}.yaml")));
            candidates.push(dir.join(format!("{workflow}.yml")));
        }
        candidates.into_iter().find(|c| c.is_file()).ok_or_else(|| {
            let places: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!("no workflow `{workflow}` in {}", places.join(" or "))
        })
    }

    async fn start(&self, request: &ChildRequest) -> Result<RunId, String> {
        let path = self.resolve(&request.workflow)?;
        let loaded = crate::load::load_file(&path, &self.engine.registry)
            .map_err(|d| format!("child workflow is invalid:\n{d}"))?;
        let inputs =
            crate::inputs::resolve_input_values(&loaded.workflow, &request.inputs).map_err(|e| e.to_string())?;
        let run_id = self.engine.journal.allocate_run_id().map_err(|e| e.to_string())?;
        // The link is durable before the child starts: a resume finds the child, never starts a second one.
        self.engine
            .journal
            .store()
            .kv_put(CHILDREN_NAMESPACE, &self.key(), &run_id.get().to_be_bytes())
            .map_err(|e| e.to_string())?;
        self.engine
            .start_run_as(run_id, &loaded, inputs, Some(self.parent.clone()), &self.environment)
            .await
            .map_err(|e| e.to_string())
    }

    /// The child an earlier attempt started, if its `run_started` is on disk.
    fn existing(&self) -> Option<(RunId, RunState)> {
        let bytes = self.engine.journal.store().kv_get(CHILDREN_NAMESPACE, &self.key()).ok()??;
        let run_id = RunId::new(u64::from_be_bytes(<[u8; 8]>::try_from(bytes.as_slice()).ok()?))?;
        let (state, _) = self.engine.journal.load(run_id).ok()?;
        Some((run_id, state))
    }
}

#[async_trait::async_trait]
impl ChildRuns for ChildContext {
    async fn run_child(&self, request: ChildRequest) -> ChildOutcome {
        let failed = |run_id: Option<RunId>, error: String| ChildOutcome {
            run_id,
            status: None,
            outputs: serde_json::Map::new(),
            error: Some(error),
        };
        let run_id = match self.existing() {
            Some((run_id, state)) => match state.status {
                RunStatus::Succeeded => return outcome_of(&state),
                RunStatus::Cancelled => match self.start(&request).await {
                    Ok(run_id) => run_id,
                    Err(error) => return failed(None, error),
                },
                RunStatus::Running | RunStatus::Interrupted | RunStatus::Failed | RunStatus::NeedsAttention => {
                    // Take the child up where it stopped: its finished steps are not run again.
                    if let Err(error) = self.engine.resume_run(run_id, Vec::new(), Vec::new()).await {
                        return failed(Some(run_id), format!("child run {run_id}: {error}"));
                    }
                    run_id
                }
            },
            None => match self.start(&request).await {
                Ok(run_id) => run_id,
                Err(error) => return failed(None, error),
            },
        };
        // Whoever follows the parent learns of the child from its first event.
        if let (Some(observer), Some(Ok((seq, event)))) = (&self.observer, self.engine.journal.events(run_id).next()) {
            let _ = observer.send(Observed { run_id, seq, event });
        }
        let control = RunControl { interrupt: request.cancel.child_token(), ..RunControl::default() };
        if let Err(error) = self.engine.execute(run_id, control, self.environment.clone(), self.observer.clone()).await
        {
            return failed(Some(run_id), format!("child run {run_id}: {error}"));
        }
        match self.engine.journal.load(run_id) {
            Ok((state, _)) => outcome_of(&state),
            Err(error) => failed(Some(run_id), format!("child run {run_id}: {error}")),
        }
    }
}

fn outcome_of(state: &RunState) -> ChildOutcome {
    let error = match state.status {
        RunStatus::Succeeded => None,
        status => {
            let failed: Vec<String> = state
                .workflow
                .steps
                .iter()
                .zip(&state.steps)
                .filter(|(spec, s)| s.phase == StepPhase::Failed && !spec.continue_on_error)
                .map(|(spec, _)| format!("`{}`", spec.id))
                .collect();
            let detail = match (&state.reason, failed.is_empty()) {
                (Some(reason), _) => format!(": {reason}"),
                (None, false) => format!(": {} failed", failed.join(", ")),
                (None, true) => String::new(),
            };
            Some(format!("child run {} ({}) {}{detail}", state.run_id, state.workflow.name, status.as_str()))
        }
    };
    ChildOutcome {
        run_id: Some(state.run_id),
        status: Some(state.status.as_str().to_owned()),
        outputs: state.outputs.clone(),
        error,
    }
}
