//! `runbook bundle RUN [--out DIR] [--email]`: the work is in `runbook_steps::bundle`, shared
//! with the `bundle` step kind.

use anyhow::{Result, anyhow};
use runbook_steps::bundle::{CommandError, CommandOptions, run_command};
use std::path::PathBuf;

use crate::context::{Context, parse_run};
use crate::exit::{self, UsageError};

pub async fn bundle(context: &mut Context, run_id: &str, out: Option<PathBuf>, email: bool) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let run = parse_run(run_id)?;
    let options = CommandOptions { run, out, email };
    let is_executing = |run| app.is_executing(run);
    let outcome = match run_command(app.journal(), &context.caller.environment, options, &is_executing).await {
        Ok(outcome) => outcome,
        Err(CommandError::Usage(message)) => return Err(anyhow!(UsageError(message))),
        Err(error) => return Err(error.into()),
    };
    for line in outcome.lines {
        term.out(line);
    }
    match outcome.error {
        Some(error) => {
            term.err(format!("error: {error}"));
            Ok(exit::FAILED)
        }
        None => Ok(exit::OK),
    }
}
