//! The simulator's own failures (setup, state files), as opposed to the simulated CLI
//! errors a command answers with, which are ordinary results (see `cli::Reply`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown scenario `{name}`; the scenarios are: {known}")]
    UnknownScenario { name: String, known: String },

    #[error("scenario `{name}` is invalid: {message}")]
    Scenario { name: String, message: String },

    #[error("override `{assignment}` cannot be applied: {message}")]
    Override { assignment: String, message: String },

    #[error("AZSIM_STATE is not set: run `azsim init --scenario NAME --state DIR` and export AZSIM_STATE=DIR")]
    NoStateDir,

    #[error("state directory {} holds no simulator state: run `azsim init` first", path.display())]
    NotInitialised { path: PathBuf },

    #[error("state file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("state file {} cannot be read: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },

    #[error("{0}")]
    Usage(String),
}

impl SimError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> SimError {
        SimError::Io { path: path.into(), source }
    }
}
