//! The engine's one error type; every variant names the run, step or file it is about.

use runbook_storage::StorageError;

use crate::diag::Diagnostics;
use crate::ids::{RunId, StepId};
use crate::state::RunStatus;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(Diagnostics),

    /// Inputs given on the command line that do not fit the workflow; one problem per line.
    #[error("invalid inputs for workflow `{workflow}`:\n{}", problems.join("\n"))]
    Inputs { workflow: String, problems: Vec<String> },

    #[error("run {run} uses secret `{name}`, which is not set in the environment: export {name} and try again")]
    MissingSecret { run: RunId, name: String },

    #[error("no run {0} in this store (see `runbook runs`)")]
    UnknownRun(RunId),

    #[error("run {run}: event {seq} cannot be read: {message}")]
    Decode { run: RunId, seq: u64, message: String },

    #[error("run {run}: event {seq} does not fit the run's history: {message}")]
    Apply { run: RunId, seq: u64, message: String },

    /// A damaged record in the run's log: reading stops there, so the run can be neither shown nor resumed.
    #[error(
        "run {run}: event {seq} is corrupt ({reason}); the run cannot be read or resumed, `runbook verify {run}` lists every problem"
    )]
    Corrupt { run: RunId, seq: u64, reason: String },

    #[error("run {run}: {source}")]
    Storage {
        run: RunId,
        #[source]
        source: StorageError,
    },

    #[error(transparent)]
    Store(#[from] StorageError),

    #[error("run {run} is being executed by {holder}; wait for it to finish, or `runbook cancel {run}`")]
    Busy { run: RunId, holder: String },

    #[error("run {run} is {status}, {hint}", status = status.as_str())]
    NotResumable { run: RunId, status: RunStatus, hint: String },

    #[error("run {run} has no step `{step}` (`runbook status {run}` lists its steps)")]
    UnknownStep { run: RunId, step: StepId },

    #[error("cannot encode an event of run {run}: {message}")]
    Encode { run: RunId, message: String },

    #[error("run {run} stopped making progress: {message}")]
    Stuck { run: RunId, message: String },
}

impl EngineError {
    pub(crate) fn storage(run: RunId, source: StorageError) -> EngineError {
        match source {
            StorageError::Corrupt { seq, reason, .. } => EngineError::Corrupt { run, seq, reason },
            source => EngineError::Storage { run, source },
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
