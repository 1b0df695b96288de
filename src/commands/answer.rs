//! An operator's answers to a run: `runbook approve` and `reject` (an `approval` step),
//! `ack` (an escalated run) and `cancel`. To a run executing here, through its executor;
//! to any other, as events recorded with `Journal::record`, which checks them against the run.

use anyhow::{Result, anyhow};
use runbook_engine::error::EngineError;
use runbook_engine::event::EventKind;
use runbook_engine::state::StepPhase;

use crate::context::{Caller, Context, parse_run, parse_step};
use crate::exit::{self, UsageError};

/// `runbook approve RUN STEP [--comment C]`.
pub async fn approve(context: &mut Context, run_id: &str, step: &str, comment: Option<String>) -> Result<u8> {
    answer(context, run_id, step, Answer::Approved, comment).await
}

/// `runbook reject RUN STEP [--comment C]`: the step fails.
pub async fn reject(context: &mut Context, run_id: &str, step: &str, comment: Option<String>) -> Result<u8> {
    answer(context, run_id, step, Answer::Rejected, comment).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Approved,
    Rejected,
}

/// Answers an `approval` step, through the executor when the run executes here.
async fn answer(
    context: &mut Context,
    run_id: &str,
    step: &str,
    answer: Answer,
    comment: Option<String>,
) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let run_id = parse_run(run_id)?;
    let step = parse_step(step)?;
    let (state, _) = app.journal().load(run_id)?;
    let Some(spec) = state.workflow.step(&step) else {
        return Err(EngineError::UnknownStep { run: run_id, step }.into());
    };
    if !app.registry().get(&spec.kind).is_some_and(|kind| kind.takes_answers()) {
        return Err(anyhow!(UsageError(format!(
            "step `{step}` of run {run_id} is a `{}` step, not an approval",
            spec.kind
        ))));
    }
    let by = operator(&context.caller);
    let approvers: Vec<&str> = spec
        .config
        .get("approvers")
        .and_then(|a| a.as_array())
        .map(|list| list.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !approvers.is_empty() && !approvers.contains(&by.as_str()) {
        return Err(anyhow!(UsageError(format!(
            "{by} may not answer step `{step}` of run {run_id}; its approvers are {}",
            approvers.join(", ")
        ))));
    }
    let approved = answer == Answer::Approved;
    let word = if approved { "approved" } else { "rejected" };
    if let Some(control) = app.control_of(run_id) {
        control.answer(step.clone(), approved, by.clone(), comment).await.map_err(|m| anyhow!(UsageError(m)))?;
        term.out(format!("run {run_id}: step `{step}` {word} by {by}"));
        return Ok(exit::OK);
    }
    let waiting = state.step(&step).is_some_and(|s| matches!(s.phase, StepPhase::Orphan) && s.decision.is_none());
    if !waiting {
        return Err(anyhow!(UsageError(format!(
            "step `{step}` of run {run_id} is not waiting for an answer (see `runbook status {run_id}`)"
        ))));
    }
    let kind = match answer {
        Answer::Approved => EventKind::StepApproved { step: step.clone(), by: by.clone(), comment },
        Answer::Rejected => EventKind::StepRejected { step: step.clone(), by: by.clone(), comment },
    };
    app.journal().record(run_id, vec![kind]).await?;
    term.out(format!(
        "run {run_id}: step `{step}` {word} by {by}; the run is not executing: `runbook resume {run_id}` goes on"
    ));
    Ok(exit::OK)
}

/// `runbook ack RUN [--comment C]`: records that an operator has seen an escalated run.
pub async fn acknowledge(context: &mut Context, run_id: &str, comment: Option<String>) -> Result<u8> {
    let app = context.app().await?;
    let run_id = parse_run(run_id)?;
    if app.is_executing(run_id) {
        return Err(EngineError::Busy {
            run: run_id,
            holder: format!("this store's holder (process {})", std::process::id()),
        }
        .into());
    }
    let (state, _) = app.journal().load(run_id)?;
    if !state.escalation.is_escalated() {
        return Err(anyhow!(UsageError(format!("run {run_id} was not escalated: there is nothing to acknowledge"))));
    }
    let by = operator(&context.caller);
    app.journal().record(run_id, vec![EventKind::RunAcknowledged { by: by.clone(), comment }]).await?;
    context.term.out(format!("run {run_id} acknowledged by {by}"));
    Ok(exit::OK)
}

/// `runbook cancel RUN`: stops a run executing here; marks any other unfinished run cancelled.
pub async fn cancel(context: &mut Context, run_id: &str) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let run_id = parse_run(run_id)?;
    if let Some(control) = app.control_of(run_id) {
        control.cancel.cancel();
        term.out(format!("cancelling run {run_id}: its steps are being stopped"));
        return Ok(exit::OK);
    }
    let (state, _) = app.journal().load(run_id)?;
    if state.status.is_finished() {
        return Err(anyhow!(UsageError(format!("run {run_id} has already finished ({})", state.status.as_str()))));
    }
    let cancelled = EventKind::RunCancelled { reason: "cancelled by the operator".to_owned() };
    app.journal().record(run_id, vec![cancelled]).await?;
    term.out(format!("run {run_id} cancelled"));
    Ok(exit::OK)
}

/// Who is answering: the caller's login name.
fn operator(caller: &Caller) -> String {
    caller
        .environment
        .var("USER")
        .or_else(|| caller.environment.var("LOGNAME"))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
