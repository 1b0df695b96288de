//! `runbook graph`: the step graph of a workflow file, or of a recorded run
//! with its steps coloured by status. The drawing is `runbook_engine::graph`,
//! shared with the escalation bundle's SUMMARY.md.

use anyhow::Result;
use runbook_engine::error::EngineError;
use runbook_engine::load::load_file;
use runbook_engine::model::Workflow;
use runbook_engine::state::StepState;
use runbook_engine::step::Registry;
use std::path::Path;

use crate::app::{exit, resolve_workflow};
use crate::flags::GraphFormat;
use crate::term::Term;

/// The graph as text in the chosen format.
pub fn render(workflow: &Workflow, states: Option<&[StepState]>, format: GraphFormat) -> String {
    match format {
        GraphFormat::Mermaid => runbook_engine::graph::mermaid(workflow, states),
        GraphFormat::Dot => runbook_engine::graph::dot(workflow, states),
    }
}

/// Whether the argument names a run: a number that is not also a workflow file.
pub fn is_run_id(target: &str, workflows_dir: &Path, cwd: Option<&Path>) -> bool {
    !target.is_empty()
        && target.chars().all(|c| c.is_ascii_digit())
        && resolve_workflow(target, workflows_dir, cwd).is_err()
}

/// `runbook graph WORKFLOW`: no store needed.
pub fn of_workflow(
    target: &str,
    workflows_dir: &Path,
    cwd: Option<&Path>,
    registry: &Registry,
    format: GraphFormat,
    term: &Term,
) -> Result<u8> {
    let path = resolve_workflow(target, workflows_dir, cwd)?;
    let loaded = load_file(&path, registry).map_err(EngineError::Invalid)?;
    term.out(render(&loaded.workflow, None, format).trim_end());
    Ok(exit::OK)
}
