//! Exit codes of the contract, and the one place that turns a command's outcome into one.
//!
//! `main` (a command started here) and the store's socket (a command served to another
//! process) both end with [`code`], so that an error prints and exits the same either way.

use runbook_engine::error::EngineError;
use runbook_engine::state::RunStatus;

use crate::term::Term;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const INVALID: u8 = 2;
pub const NEEDS_ATTENTION: u8 = 3;
pub const INTERRUPTED: u8 = 130;

/// A mistake in how the command was called (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The command was run by the process that holds the store, which has printed its output
/// here already; this is its exit code. It ends the command as an error does (nothing more
/// happens here), but it is not one: [`code`] prints nothing for it.
#[derive(Debug)]
pub struct Served(pub u8);

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the store's holder ran the command (exit {})", self.0)
    }
}

impl std::error::Error for Served {}

/// A command's exit code: its own on success; for an error, the error's text on stderr
/// and 2 for what the caller got wrong, 3 for a run that needs a decision, else 1.
pub fn code(outcome: anyhow::Result<u8>, term: &Term) -> u8 {
    let error = match outcome {
        Ok(code) => return code,
        Err(error) => error,
    };
    if let Some(Served(code)) = error.downcast_ref::<Served>() {
        return *code;
    }
    term.err(error_text(&error));
    if error.downcast_ref::<UsageError>().is_some() {
        return INVALID;
    }
    match error.downcast_ref::<EngineError>() {
        Some(
            EngineError::Invalid(_)
            | EngineError::Inputs { .. }
            | EngineError::UnknownRun(_)
            | EngineError::UnknownStep { .. }
            | EngineError::MissingSecret { .. },
        ) => INVALID,
        Some(EngineError::NotResumable { status: RunStatus::NeedsAttention, .. }) => NEEDS_ATTENTION,
        _ => FAILED,
    }
}

/// The exit code for a run's final status.
pub fn of_run(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => OK,
        RunStatus::Failed | RunStatus::Cancelled => FAILED,
        RunStatus::NeedsAttention => NEEDS_ATTENTION,
        RunStatus::Interrupted | RunStatus::Running => INTERRUPTED,
    }
}

/// The message for an error: diagnostics as they are, anything else as its chain.
pub fn error_text(error: &anyhow::Error) -> String {
    if let Some(EngineError::Invalid(diagnostics)) = error.downcast_ref::<EngineError>() {
        return diagnostics.to_string();
    }
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
    }
    text
}
