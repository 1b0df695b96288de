//! `runbook graph`: the step graph of a workflow file, or of a recorded run
//! with its steps coloured by status. The drawing is `runbook_engine::graph`,
//! shared with the escalation bundle's SUMMARY.md. A workflow file needs no store.

use anyhow::Result;
use runbook_engine::error::EngineError;
use runbook_engine::load::load_file;
use runbook_engine::model::Workflow;
use runbook_engine::state::StepState;
use std::path::Path;

use crate::context::{Context, parse_run, resolve_workflow};
use crate::exit;
use crate::flags::GraphFormat;

/// `runbook graph WORKFLOW|RUN_ID`: a run's graph from the definition it started with.
pub async fn graph(context: &mut Context, target: &str, format: GraphFormat) -> Result<u8> {
    let workflows_dir = &context.caller.workflows_dir;
    let cwd = context.caller.environment.dir.as_deref();
    if !is_run_id(target, workflows_dir, cwd) {
        let path = resolve_workflow(target, workflows_dir, cwd)?;
        let loaded = load_file(&path, context.registry()).map_err(EngineError::Invalid)?;
        context.term.out(render(&loaded.workflow, None, format).trim_end());
        return Ok(exit::OK);
    }
    let app = context.app().await?;
    let run_id = parse_run(target)?;
    let (state, _) = app.journal().load(run_id)?;
    context.term.out(render(&state.workflow, Some(&state.steps), format).trim_end());
    Ok(exit::OK)
}

/// The graph as text in the chosen format.
fn render(workflow: &Workflow, states: Option<&[StepState]>, format: GraphFormat) -> String {
    match format {
        GraphFormat::Mermaid => runbook_engine::graph::mermaid(workflow, states),
        GraphFormat::Dot => runbook_engine::graph::dot(workflow, states),
    }
}

/// Whether the argument names a run: a number that is not also a workflow file.
fn is_run_id(target: &str, workflows_dir: &Path, cwd: Option<&Path>) -> bool {
    !target.is_empty()
        && target.chars().all(|c| c.is_ascii_digit())
        && resolve_workflow(target, workflows_dir, cwd).is_err()
}
