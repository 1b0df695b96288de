//! Reading runs: `runbook status`, `runs`, `events` and `logs`; also the run tree and the
//! status JSON that `run` and `resume` print at the end.

use anyhow::{Context as _, Result, anyhow};
use runbook_engine::error::EngineError;
use runbook_engine::event::{Event, EventKind};
use runbook_engine::ids::RunId;
use runbook_engine::journal::RunSummary;
use runbook_engine::state::{RunState, RunStatus};
use runbook_engine::step::RunHistory as _;
use sha2::{Digest, Sha256};

use crate::context::{App, Context, parse_run, parse_step};
use crate::exit::{self, UsageError};
use crate::progress;

/// How deep `status` follows child runs: as deep as workflows call workflows, and a loop in
/// the links must not hang it.
const MAX_TREE_DEPTH: usize = 16;

/// `runbook status RUN [--json]`.
pub async fn status(context: &mut Context, run_id: &str, json: bool) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let run_id = parse_run(run_id)?;
    let (state, _) = app.journal().load(run_id)?;
    let status = app.visible_status(run_id, state.status);
    if json {
        term.out(serde_json::to_string_pretty(&status_json(&state, status))?);
    } else {
        progress::status_table(term, &run_tree(&app, state, status));
    }
    Ok(exit::OK)
}

/// A run with the child runs of its `workflow` steps, as far as they can be read.
pub fn run_tree(app: &App, state: RunState, status: RunStatus) -> progress::RunTree {
    run_tree_at(app, state, status, 0)
}

fn run_tree_at(app: &App, state: RunState, status: RunStatus, depth: usize) -> progress::RunTree {
    let mut tree = progress::RunTree::single(state, status);
    if depth >= MAX_TREE_DEPTH {
        return tree;
    }
    let journal = app.journal();
    for (step, child) in journal.children(tree.state.run_id).unwrap_or_default() {
        if let Ok((child_state, _)) = journal.load(child) {
            let child_status = app.visible_status(child, child_state.status);
            tree.children.push((step, run_tree_at(app, child_state, child_status, depth + 1)));
        }
    }
    tree
}

/// `runbook runs [--workflow NAME] [--status S] [--json]`, newest first.
pub async fn runs(context: &mut Context, workflow: Option<&str>, status: Option<&str>, json: bool) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let wanted = match status {
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            anyhow!(UsageError(format!(
                "unknown status `{text}`: one of running, succeeded, failed, interrupted, needs_attention, cancelled"
            )))
        })?),
        None => None,
    };
    let listing = app.journal().runs()?;
    let runs: Vec<RunSummary> = listing
        .runs
        .into_iter()
        .map(|mut summary| {
            summary.status = app.visible_status(summary.run_id, summary.status);
            summary
        })
        .filter(|s| workflow.is_none_or(|w| s.workflow == w))
        .filter(|s| wanted.is_none_or(|w| s.status == w))
        .collect();
    // A run that cannot be read is never left out silently: a warning line each, and in
    // `--json` (unless filtered by status) an entry with status `unreadable` and the error.
    let unreadable: Vec<&runbook_engine::journal::UnreadableRun> = listing
        .unreadable
        .iter()
        .filter(|u| workflow.is_none_or(|w| u.indexed.as_ref().is_none_or(|s| s.workflow == w)))
        .collect();
    if json {
        let mut items: Vec<(RunId, serde_json::Value)> = runs
            .iter()
            .map(|s| {
                let item = serde_json::json!({
                    "run_id": s.run_id,
                    "workflow": s.workflow,
                    "status": s.status.as_str(),
                    "started_at": s.started_at,
                    "finished_at": s.finished_at,
                });
                (s.run_id, item)
            })
            .collect();
        if wanted.is_none() {
            for run in &unreadable {
                let indexed = run.indexed.as_ref();
                let item = serde_json::json!({
                    "run_id": run.run_id,
                    "workflow": indexed.map(|s| s.workflow.clone()),
                    "status": "unreadable",
                    "started_at": indexed.map(|s| s.started_at),
                    "finished_at": indexed.and_then(|s| s.finished_at),
                    "error": run.error.to_string(),
                });
                items.push((run.run_id, item));
            }
            items.sort_by_key(|(run, _)| std::cmp::Reverse(*run));
        }
        let items: Vec<serde_json::Value> = items.into_iter().map(|(_, item)| item).collect();
        term.out(serde_json::to_string_pretty(&items)?);
    } else {
        progress::runs_table(term, &runs);
    }
    for run in unreadable {
        term.err(format!("warning: not listed: {}", run.error));
    }
    Ok(exit::OK)
}

/// `runbook events RUN`: one JSON object per line.
pub async fn events(context: &mut Context, run_id: &str) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let run_id = parse_run(run_id)?;
    let mut any = false;
    for item in app.journal().events(run_id) {
        let (seq, event) = item?;
        any = true;
        term.out(serde_json::to_string(&event_json(seq.0, &event)?)?);
    }
    if !any {
        return Err(EngineError::UnknownRun(run_id).into());
    }
    Ok(exit::OK)
}

/// `runbook logs RUN [STEP] [--attempt N]`: what steps wrote to stdout and stderr (secrets masked).
pub async fn logs(context: &mut Context, run_id: &str, step: Option<&str>, attempt: Option<u32>) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let run_id = parse_run(run_id)?;
    let (state, _) = app.journal().load(run_id)?;
    let step = match step {
        Some(text) => {
            let id = parse_step(text)?;
            if state.workflow.step(&id).is_none() {
                return Err(EngineError::UnknownStep { run: run_id, step: id }.into());
            }
            Some(id)
        }
        None => None,
    };
    let store_dir = app.journal().store().path().to_path_buf();
    let mut shown = 0;
    for item in app.journal().events(run_id) {
        let (_, event) = item?;
        let (id, n, artifacts) = match &event.kind {
            EventKind::StepSucceeded { step, attempt, artifacts, .. }
            | EventKind::StepFailed { step, attempt, artifacts, .. }
            | EventKind::StepPolled { step, attempt, artifacts, .. } => (step, attempt, artifacts),
            _ => continue,
        };
        if step.as_ref().is_some_and(|s| s != id) || attempt.is_some_and(|a| a != n.0) {
            continue;
        }
        for artifact in artifacts {
            if artifact.size == 0 {
                continue;
            }
            term.out(format!("==> {id} attempt {n} {} <==", artifact.name));
            let path = store_dir.join(&artifact.path);
            let bytes = std::fs::read(&path).with_context(|| {
                format!("cannot read the output step `{id}` of run {run_id} captured in {}", path.display())
            })?;
            let digest = hex::encode(Sha256::digest(&bytes));
            if digest != artifact.sha256 {
                term.err(format!(
                    "warning: {} does not match the checksum recorded in the run's events",
                    path.display()
                ));
            }
            term.out_bytes(&bytes);
            if !bytes.ends_with(b"\n") {
                term.out("");
            }
            if artifact.dropped_bytes > 0 {
                term.out(format!("[{} more bytes were not kept: the capture cap was reached]", artifact.dropped_bytes));
            }
            shown += 1;
        }
    }
    if shown == 0 {
        let what = step.map_or_else(|| "any step".to_owned(), |s| format!("step `{s}`"));
        term.err(format!(
            "no output was captured for {what} of run {run_id}: it printed nothing, or has not run (`runbook status {run_id}` shows it)"
        ));
    }
    Ok(exit::OK)
}

/// `status --json`: the contract's shape.
pub fn status_json(state: &RunState, status: RunStatus) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = state
        .workflow
        .steps
        .iter()
        .zip(&state.steps)
        .map(|(spec, s)| {
            let mut step = serde_json::json!({
                "id": spec.id,
                "status": s.phase.status(),
                "attempts": s.attempt.0,
                "outputs": s.outputs,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
            });
            if let (Some(error), serde_json::Value::Object(map)) = (&s.error, &mut step) {
                map.insert("error".to_owned(), serde_json::Value::String(error.clone()));
            }
            step
        })
        .collect();
    let mut value = serde_json::json!({
        "run_id": state.run_id,
        "workflow": state.workflow.name,
        "status": status.as_str(),
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "steps": steps,
    });
    if let (Some(reason), serde_json::Value::Object(map)) = (&state.reason, &mut value) {
        map.insert("reason".to_owned(), serde_json::Value::String(reason.clone()));
    }
    value
}

/// An event as `runbook events` prints it: `seq` first, then the event's own fields.
fn event_json(seq: u64, event: &Event) -> Result<serde_json::Value> {
    let mut object = serde_json::Map::new();
    object.insert("seq".to_owned(), serde_json::Value::from(seq));
    if let serde_json::Value::Object(fields) = serde_json::to_value(event)? {
        object.insert("at".to_owned(), fields.get("at").cloned().unwrap_or_default());
        object.insert("type".to_owned(), fields.get("type").cloned().unwrap_or_default());
        for (key, value) in fields {
            object.entry(key).or_insert(value);
        }
    }
    Ok(serde_json::Value::Object(object))
}
