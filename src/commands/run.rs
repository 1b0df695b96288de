//! `runbook run` and `runbook resume`: execute a run here and follow it (progress lines, or
//! the final status as JSON); `runbook demo` follows its run the same way.

use anyhow::{Context as _, Result, anyhow};
use runbook_engine::error::EngineError;
use runbook_engine::executor::{Observed, RunControl};
use runbook_engine::ids::RunId;
use runbook_engine::inputs::{parse_assignment, resolve_inputs};
use runbook_engine::load::{LoadedWorkflow, load_file};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::inspect::{run_tree, status_json};
use crate::context::{App, Caller, Context, parse_run, parse_step, resolve_workflow};
use crate::exit::{self, UsageError};
use crate::flags::{ResumeArgs, RunArgs};
use crate::progress::{self, Progress};
use crate::term::Term;

/// How a command shows the run it executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Progress lines (or the live view on a terminal) and a final line.
    Progress,
    /// Nothing while it runs; the status as JSON at the end (`--json`).
    StatusJson,
    /// Nothing at all: the caller reports.
    Quiet,
}

impl Follow {
    pub fn from_json(json: bool) -> Follow {
        if json { Follow::StatusJson } else { Follow::Progress }
    }
}

/// `runbook run WORKFLOW [-i KEY=VALUE] [--inputs-file FILE]`.
pub async fn start(context: &mut Context, args: RunArgs) -> Result<u8> {
    let app = context.app().await?;
    let caller = &context.caller;
    let path = resolve_workflow(&args.workflow, &caller.workflows_dir, caller.environment.dir.as_deref())?;
    let loaded: LoadedWorkflow = load_file(&path, app.registry()).map_err(EngineError::Invalid)?;
    let mut given = Vec::new();
    for text in &args.inputs {
        given.push(parse_assignment(text).map_err(|message| EngineError::Inputs {
            workflow: loaded.workflow.name.clone(),
            problems: vec![message],
        })?);
    }
    let inputs = match &args.inputs_file {
        None => resolve_inputs(&loaded.workflow, &given)?,
        Some(file) => {
            let file = match &caller.environment.dir {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            };
            let mut values = read_inputs_file(&file)?;
            // `-i` wins over the file; its text is typed by the input's declaration.
            for (name, text) in &given {
                let value = match loaded.workflow.input(name) {
                    Some(spec) => spec.parse_text(text).map_err(|message| EngineError::Inputs {
                        workflow: loaded.workflow.name.clone(),
                        problems: vec![format!("input `{name}`: {message}")],
                    })?,
                    None => serde_json::Value::String(text.clone()),
                };
                values.insert(name.clone(), value);
            }
            runbook_engine::inputs::resolve_input_values(&loaded.workflow, &values)?
        }
    };
    let run_id = app.engine.start_run(&loaded, inputs, None, &caller.environment).await?;
    execute_and_follow(&app, run_id, Follow::from_json(args.json), &context.term, caller).await
}

/// `runbook resume RUN [--rerun STEP] [--skip STEP]`.
pub async fn resume(context: &mut Context, args: ResumeArgs) -> Result<u8> {
    let app = context.app().await?;
    let run_id = parse_run(&args.run_id)?;
    if app.is_executing(run_id) {
        return Err(EngineError::Busy {
            run: run_id,
            holder: format!("this store's holder (process {})", std::process::id()),
        }
        .into());
    }
    let rerun = args.rerun.iter().map(|step| parse_step(step)).collect::<Result<Vec<_>>>()?;
    let skip = args.skip.iter().map(|step| parse_step(step)).collect::<Result<Vec<_>>>()?;
    let (state, _) = app.journal().load(run_id)?;
    warn_if_changed(&state.source_path, &state.source_hash, &context.term);
    app.engine.resume_run(run_id, rerun, skip).await?;
    execute_and_follow(&app, run_id, Follow::from_json(args.json), &context.term, &context.caller).await
}

/// Executes a run here and shows it as `follow` says; returns the run's exit code.
pub async fn execute_and_follow(
    app: &Arc<App>,
    run_id: RunId,
    follow: Follow,
    term: &Term,
    caller: &Caller,
) -> Result<u8> {
    let json = follow != Follow::Progress;
    let control = RunControl::default();
    // Ctrl-C here, the caller going away, or a shutdown interrupts the run.
    let interrupt = control.interrupt.clone();
    let gone = caller.gone.clone();
    let shutdown = app.shutdown.clone();
    let watcher = tokio::spawn(async move {
        tokio::select! {
            () = gone.cancelled() => interrupt.cancel(),
            () = shutdown.cancelled() => interrupt.cancel(),
            () = interrupt.cancelled() => {}
        }
    });
    let (tx, rx) = mpsc::unbounded_channel::<Observed>();
    let printer = (!json).then(|| {
        let (state, _) = match app.journal().load(run_id) {
            Ok(loaded) => loaded,
            Err(_) => return None,
        };
        let journal = Arc::clone(app.journal());
        let load: progress::RunLoader = Box::new(move |run| journal.load(run).ok().map(|(state, _)| state));
        let progress = Progress::new(term.clone(), &state, load);
        progress.header(&state);
        Some(tokio::spawn(progress::follow(progress, rx)))
    });
    let result = app.engine.execute(run_id, control.clone(), caller.environment.clone(), Some(tx)).await;
    control.interrupt.cancel();
    let _ = watcher.await;
    if let Some(Some(printer)) = printer {
        let _ = printer.await;
    }
    let status = match result {
        Ok(status) => status,
        // The store refused a write (ENOSPC, EROFS, EIO): the run stopped where its log ends and goes on
        // from there once the store takes writes again, like any interrupted run.
        Err(error @ EngineError::Storage { source: runbook_storage::StorageError::Io { .. }, .. }) => {
            term.err(exit::error_text(&anyhow::Error::from(error)));
            term.err(format!(
                "run {run_id} is interrupted: its events cannot be written to the store; make room (or make the store writable), then `runbook resume {run_id}`"
            ));
            return Ok(exit::INTERRUPTED);
        }
        Err(error) => return Err(error.into()),
    };
    let (state, _) = app.journal().load(run_id)?;
    match follow {
        Follow::StatusJson => term.out(serde_json::to_string_pretty(&status_json(&state, status))?),
        Follow::Progress => progress::final_line(term, &run_tree(app, state, status)),
        Follow::Quiet => {}
    }
    Ok(exit::of_run(status))
}

/// Reads `--inputs-file`: a YAML mapping of input names to values.
fn read_inputs_file(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read inputs file {}", path.display()))?;
    let node = runbook_engine::yaml::parse(&text).map_err(|e| {
        anyhow!(UsageError(format!("{}:{}:{}: {}", path.display(), e.position.line, e.position.column, e.message)))
    })?;
    match node.to_json() {
        serde_json::Value::Object(map) => Ok(map),
        serde_json::Value::Null => Ok(serde_json::Map::new()),
        _ => Err(anyhow!(UsageError(format!("{}: expected a mapping of input names to values", path.display())))),
    }
}

fn warn_if_changed(path: &str, stored_hash: &str, term: &Term) {
    if path.is_empty() {
        return;
    }
    if let Ok(bytes) = std::fs::read(path)
        && hex::encode(Sha256::digest(&bytes)) != stored_hash
    {
        term.err(format!(
            "warning: {path} has changed since the run started; the run goes on with the definition it started with"
        ));
    }
}
