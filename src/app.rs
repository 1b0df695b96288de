//! The commands that work on an open store, for this process or for another
//! `runbook` process served over the store's socket.

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};
use runbook_engine::error::EngineError;
use runbook_engine::event::{Event, EventKind};
use runbook_engine::executor::{Engine, Observed, RunControl, RunEnvironment};
use runbook_engine::ids::{RunId, StepId};
use runbook_engine::inputs::{parse_assignment, resolve_inputs};
use runbook_engine::journal::RunSummary;
use runbook_engine::load::{LoadedWorkflow, load_file};
use runbook_engine::state::{RunState, RunStatus};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::flags::{Command, ResumeArgs, RunArgs};
use crate::progress::{self, Progress};
use crate::term::Term;

/// Exit codes of the contract.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const NEEDS_ATTENTION: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

/// Everything a command needs that lives as long as the open store.
pub struct App {
    pub engine: Arc<Engine>,
    /// Cancelled on Ctrl-C/SIGTERM: every run executing here is interrupted.
    pub shutdown: CancellationToken,
}

/// Where a command came from: this process, or another process through the socket.
#[derive(Debug, Clone)]
pub struct Caller {
    pub environment: RunEnvironment,
    /// The caller's `--workflows` directory, absolute.
    pub workflows_dir: PathBuf,
    /// Cancelled when the caller goes away (Ctrl-C in the other process).
    pub gone: CancellationToken,
}

impl App {
    pub fn new(engine: Arc<Engine>) -> Arc<App> {
        Arc::new(App { engine, shutdown: CancellationToken::new() })
    }

    fn active_control(&self, run: RunId) -> Option<RunControl> {
        self.engine.control_of(run)
    }

    /// Whether this process is executing the run. The store admits one process,
    /// so a run nobody here executes is executed nowhere.
    pub fn is_executing(&self, run: RunId) -> bool {
        self.active_control(run).is_some()
    }

    /// A run's status as users see it: `running` in the log but executed by nobody is `interrupted`.
    fn visible_status(&self, run: RunId, logged: RunStatus) -> RunStatus {
        if logged == RunStatus::Running && !self.is_executing(run) { RunStatus::Interrupted } else { logged }
    }

    pub fn registry(&self) -> &runbook_engine::step::Registry {
        self.engine.registry()
    }

    /// Runs one command and returns its exit code.
    pub async fn dispatch(self: &Arc<App>, command: Command, term: &Term, caller: &Caller) -> Result<u8> {
        match command {
            Command::Validate { paths } => Ok(validate(self.registry(), &paths, term, &caller.environment)),
            Command::Run(args) => self.run(args, term, caller).await,
            Command::Resume(args) => self.resume(args, term, caller).await,
            Command::Status { run_id, json } => self.status(&run_id, json, term),
            Command::Runs { workflow, status, json } => self.runs(workflow.as_deref(), status.as_deref(), json, term),
            Command::Events { run_id, json: _ } => self.events(&run_id, term),
            Command::Logs { run_id, step, attempt } => self.logs(&run_id, step.as_deref(), attempt, term),
            Command::Cancel { run_id } => self.cancel(&run_id, term).await,
            Command::Demo { scenario, json } => crate::demo::demo(self, &scenario, json, term, caller).await,
            Command::Approve { run_id, step, comment } => {
                self.answer(&run_id, &step, true, comment, term, caller).await
            }
            Command::Reject { run_id, step, comment } => {
                self.answer(&run_id, &step, false, comment, term, caller).await
            }
            Command::Ack { run_id, comment } => self.acknowledge(&run_id, comment, term, caller).await,
            Command::Verify { run_id, json } => self.verify(run_id.as_deref(), json, term),
            Command::Prune { older_than, keep_failed, dry_run, json } => {
                self.prune(older_than, keep_failed, dry_run, json, term)
            }
            Command::Bundle { run_id, out, email } => self.bundle(&run_id, out, email, term, caller).await,
            Command::Bench { json, quick } => {
                crate::bench::run(self.engine.journal().store().path(), json, quick, term).await
            }
            Command::Graph { target, format } => self.graph(&target, format, term, caller),
            Command::Daemon(args) => crate::daemon::run(self, args, term, caller).await,
            Command::Schedules { json } => crate::daemon::schedules(self, json, term, caller),
            Command::Schema => Ok(crate::completions::schema(term)),
            Command::Completions { shell } => Ok(crate::completions::completions(shell, term)),
            Command::Man { out } => crate::completions::man(out.as_deref(), term),
        }
    }

    async fn run(self: &Arc<App>, args: RunArgs, term: &Term, caller: &Caller) -> Result<u8> {
        let path = resolve_workflow(&args.workflow, &caller.workflows_dir, caller.environment.dir.as_deref())?;
        let loaded: LoadedWorkflow = load_file(&path, self.registry()).map_err(EngineError::Invalid)?;
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
        let run_id = self.engine.start_run(&loaded, inputs, None, &caller.environment).await?;
        self.execute_and_follow(run_id, Follow::from_json(args.json), term, caller).await
    }

    async fn resume(self: &Arc<App>, args: ResumeArgs, term: &Term, caller: &Caller) -> Result<u8> {
        let run_id = parse_run(&args.run_id)?;
        if self.is_executing(run_id) {
            return Err(EngineError::Busy {
                run: run_id,
                holder: format!("this store's holder (process {})", std::process::id()),
            }
            .into());
        }
        let rerun = parse_steps(&args.rerun)?;
        let skip = parse_steps(&args.skip)?;
        let (state, _) = self.engine.journal().load(run_id)?;
        let stored = &state.source_path;
        warn_if_changed(stored, &state.source_hash, term);
        self.engine.resume_run(run_id, rerun, skip).await?;
        self.execute_and_follow(run_id, Follow::from_json(args.json), term, caller).await
    }

    /// Executes a run here and shows it as `follow` says; returns the run's exit code.
    pub async fn execute_and_follow(
        self: &Arc<App>,
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
        let shutdown = self.shutdown.clone();
        let watcher = tokio::spawn(async move {
            tokio::select! {
                () = gone.cancelled() => interrupt.cancel(),
                () = shutdown.cancelled() => interrupt.cancel(),
                () = interrupt.cancelled() => {}
            }
        });
        let (tx, rx) = mpsc::unbounded_channel::<Observed>();
        let printer = (!json).then(|| {
            let (state, _) = match self.engine.journal().load(run_id) {
                Ok(loaded) => loaded,
                Err(_) => return None,
            };
            let journal = Arc::clone(self.engine.journal());
            let load: progress::RunLoader = Box::new(move |run| journal.load(run).ok().map(|(state, _)| state));
            let progress = Progress::new(term.clone(), &state, load);
            progress.header(&state);
            Some(tokio::spawn(progress::follow(progress, rx)))
        });
        let result = self.engine.execute(run_id, control.clone(), caller.environment.clone(), Some(tx)).await;
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
                term.err(crate::error_text(&anyhow::Error::from(error)));
                term.err(format!(
                    "run {run_id} is interrupted: its events cannot be written to the store; make room (or make the store writable), then `runbook resume {run_id}`"
                ));
                return Ok(exit::INTERRUPTED);
            }
            Err(error) => return Err(error.into()),
        };
        let (state, _) = self.engine.journal().load(run_id)?;
        match follow {
            Follow::StatusJson => term.out(serde_json::to_string_pretty(&status_json(&state, status))?),
            Follow::Progress => progress::final_line(term, &self.run_tree(state, status, 0)),
            Follow::Quiet => {}
        }
        Ok(exit_code(status))
    }

    fn status(&self, run_id: &str, json: bool, term: &Term) -> Result<u8> {
        let run_id = parse_run(run_id)?;
        let (state, _) = self.engine.journal().load(run_id)?;
        let status = self.visible_status(run_id, state.status);
        if json {
            term.out(serde_json::to_string_pretty(&status_json(&state, status))?);
        } else {
            progress::status_table(term, &self.run_tree(state, status, 0));
        }
        Ok(exit::OK)
    }

    /// A run with the child runs of its `workflow` steps, as far as they can be read.
    fn run_tree(&self, state: RunState, status: RunStatus, depth: usize) -> progress::RunTree {
        use runbook_engine::step::RunHistory as _;
        let mut tree = progress::RunTree::single(state, status);
        // Child runs nest as deep as workflows call workflows; a loop in the links must not hang `status`.
        if depth >= 16 {
            return tree;
        }
        let journal = self.engine.journal();
        for (step, child) in journal.children(tree.state.run_id).unwrap_or_default() {
            if let Ok((child_state, _)) = journal.load(child) {
                let child_status = self.visible_status(child, child_state.status);
                tree.children.push((step, self.run_tree(child_state, child_status, depth + 1)));
            }
        }
        tree
    }

    fn runs(&self, workflow: Option<&str>, status: Option<&str>, json: bool, term: &Term) -> Result<u8> {
        let wanted = match status {
            Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
                anyhow!(UsageError(format!(
                    "unknown status `{text}`: one of running, succeeded, failed, interrupted, needs_attention, cancelled"
                )))
            })?),
            None => None,
        };
        let listing = self.engine.journal().runs()?;
        let runs: Vec<RunSummary> = listing
            .runs
            .into_iter()
            .map(|mut summary| {
                summary.status = self.visible_status(summary.run_id, summary.status);
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

    /// `runbook verify`: a line per problem and exit 1, or a one-line summary and exit 0.
    fn verify(&self, run_id: Option<&str>, json: bool, term: &Term) -> Result<u8> {
        let only = run_id.map(parse_run).transpose()?;
        let report = runbook_engine::integrity::verify(self.engine.journal(), self.registry(), only)?;
        if json {
            term.out(serde_json::to_string_pretty(&report)?);
        } else {
            for problem in &report.problems {
                term.out(problem.to_string());
            }
            term.out(report.summary());
        }
        Ok(if report.problems.is_empty() { exit::OK } else { exit::FAILED })
    }

    /// `runbook prune`: removes old finished runs whole and says what it freed.
    fn prune(
        &self,
        older_than: std::time::Duration,
        keep_failed: bool,
        dry_run: bool,
        json: bool,
        term: &Term,
    ) -> Result<u8> {
        use runbook_engine::integrity::{PruneOptions, plural, prune};
        let cutoff = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|age| Utc::now().checked_sub_signed(age))
            .ok_or_else(|| anyhow!(UsageError("--older-than reaches back before the calendar starts".to_owned())))?;
        let options = PruneOptions { cutoff, keep_failed, dry_run };
        let is_executing = |run: RunId| self.is_executing(run);
        let report = prune(self.engine.journal(), &options, &is_executing)?;
        if json {
            term.out(serde_json::to_string_pretty(&report)?);
            return Ok(exit::OK);
        }
        for kept in &report.kept {
            term.out(format!("kept run {}: {}", kept.run_id, kept.reason));
        }
        let verb = if dry_run { "would prune" } else { "pruned" };
        let leftovers = match report.leftovers {
            0 => String::new(),
            n => format!(", and {} of an interrupted prune", plural(n, "leftover")),
        };
        if report.runs.is_empty() {
            term.out(format!(
                "nothing to prune: no finished run to remove ended before {}{leftovers}",
                cutoff.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        } else {
            let ids: Vec<String> = report.runs.iter().map(ToString::to_string).collect();
            term.out(format!(
                "{verb} {} ({}): {}, {} of artifacts{leftovers}",
                plural(report.runs.len() as u64, "run"),
                ids.join(", "),
                plural(report.events, "event"),
                human_bytes(report.artifact_bytes),
            ));
        }
        Ok(exit::OK)
    }

    fn events(&self, run_id: &str, term: &Term) -> Result<u8> {
        let run_id = parse_run(run_id)?;
        let mut any = false;
        for item in self.engine.journal().events(run_id) {
            let (seq, event) = item?;
            any = true;
            term.out(serde_json::to_string(&event_json(seq.0, &event)?)?);
        }
        if !any {
            return Err(EngineError::UnknownRun(run_id).into());
        }
        Ok(exit::OK)
    }

    fn logs(&self, run_id: &str, step: Option<&str>, attempt: Option<u32>, term: &Term) -> Result<u8> {
        let run_id = parse_run(run_id)?;
        let (state, _) = self.engine.journal().load(run_id)?;
        let step = match step {
            Some(text) => {
                let id = StepId::new(text).map_err(|m| anyhow!(UsageError(m)))?;
                if state.workflow.step(&id).is_none() {
                    return Err(EngineError::UnknownStep { run: run_id, step: id }.into());
                }
                Some(id)
            }
            None => None,
        };
        let store_dir = self.engine.journal().store().path().to_path_buf();
        let mut shown = 0;
        for item in self.engine.journal().events(run_id) {
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
                    term.out(format!(
                        "[{} more bytes were not kept: the capture cap was reached]",
                        artifact.dropped_bytes
                    ));
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

    /// `runbook approve` / `reject`: answers an `approval` step, through the executor when the run executes here.
    async fn answer(
        &self,
        run_id: &str,
        step: &str,
        approved: bool,
        comment: Option<String>,
        term: &Term,
        caller: &Caller,
    ) -> Result<u8> {
        let run_id = parse_run(run_id)?;
        let step = StepId::new(step).map_err(|m| anyhow!(UsageError(m)))?;
        let (state, next) = self.engine.journal().load(run_id)?;
        let Some(spec) = state.workflow.step(&step) else {
            return Err(EngineError::UnknownStep { run: run_id, step }.into());
        };
        if spec.kind != "approval" {
            return Err(anyhow!(UsageError(format!(
                "step `{step}` of run {run_id} is a `{}` step, not an approval",
                spec.kind
            ))));
        }
        let by = operator(caller);
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
        let word = if approved { "approved" } else { "rejected" };
        if let Some(control) = self.engine.control_of(run_id) {
            control.answer(step.clone(), approved, by.clone(), comment).await.map_err(|m| anyhow!(UsageError(m)))?;
            term.out(format!("run {run_id}: step `{step}` {word} by {by}"));
            return Ok(exit::OK);
        }
        let waiting = state
            .step(&step)
            .is_some_and(|s| matches!(s.phase, runbook_engine::state::StepPhase::Orphan) && s.decision.is_none());
        if !waiting {
            return Err(anyhow!(UsageError(format!(
                "step `{step}` of run {run_id} is not waiting for an answer (see `runbook status {run_id}`)"
            ))));
        }
        let kind = if approved {
            EventKind::StepApproved { step: step.clone(), by: by.clone(), comment }
        } else {
            EventKind::StepRejected { step: step.clone(), by: by.clone(), comment }
        };
        self.engine.journal().append(run_id, next, &[Event { at: Utc::now(), kind }]).await?;
        term.out(format!(
            "run {run_id}: step `{step}` {word} by {by}; the run is not executing: `runbook resume {run_id}` goes on"
        ));
        Ok(exit::OK)
    }

    /// `runbook ack`: records that an operator has seen an escalated run.
    async fn acknowledge(&self, run_id: &str, comment: Option<String>, term: &Term, caller: &Caller) -> Result<u8> {
        let run_id = parse_run(run_id)?;
        if self.is_executing(run_id) {
            return Err(EngineError::Busy {
                run: run_id,
                holder: format!("this store's holder (process {})", std::process::id()),
            }
            .into());
        }
        let (state, next) = self.engine.journal().load(run_id)?;
        if !state.escalation.is_escalated() {
            return Err(anyhow!(UsageError(format!(
                "run {run_id} was not escalated: there is nothing to acknowledge"
            ))));
        }
        let by = operator(caller);
        let event = Event { at: Utc::now(), kind: EventKind::RunAcknowledged { by: by.clone(), comment } };
        self.engine.journal().append(run_id, next, &[event]).await?;
        let (state, _) = self.engine.journal().load(run_id)?;
        self.engine.journal().index(&state)?;
        term.out(format!("run {run_id} acknowledged by {by}"));
        Ok(exit::OK)
    }

    /// `runbook bundle`: the work is in `runbook_steps::bundle`, shared with the `bundle` step kind.
    async fn bundle(
        &self,
        run_id: &str,
        out: Option<PathBuf>,
        email: bool,
        term: &Term,
        caller: &Caller,
    ) -> Result<u8> {
        use runbook_steps::bundle::{CommandError, CommandOptions, run_command};
        let run = parse_run(run_id)?;
        let options = CommandOptions { run, out, email };
        let is_executing = |run: RunId| self.is_executing(run);
        let outcome = match run_command(self.engine.journal(), &caller.environment, options, &is_executing).await {
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

    /// `runbook graph`: a run's graph from the definition it started with, coloured by its steps' status.
    fn graph(&self, target: &str, format: crate::flags::GraphFormat, term: &Term, caller: &Caller) -> Result<u8> {
        let cwd = caller.environment.dir.as_deref();
        if !crate::graph::is_run_id(target, &caller.workflows_dir, cwd) {
            return crate::graph::of_workflow(target, &caller.workflows_dir, cwd, self.registry(), format, term);
        }
        let run_id = parse_run(target)?;
        let (state, _) = self.engine.journal().load(run_id)?;
        term.out(crate::graph::render(&state.workflow, Some(&state.steps), format).trim_end());
        Ok(exit::OK)
    }

    async fn cancel(&self, run_id: &str, term: &Term) -> Result<u8> {
        let run_id = parse_run(run_id)?;
        if let Some(control) = self.active_control(run_id) {
            control.cancel.cancel();
            term.out(format!("cancelling run {run_id}: its steps are being stopped"));
            return Ok(exit::OK);
        }
        let (state, next) = self.engine.journal().load(run_id)?;
        if state.status.is_finished() {
            return Err(anyhow!(UsageError(format!("run {run_id} has already finished ({})", state.status.as_str()))));
        }
        let event =
            Event { at: Utc::now(), kind: EventKind::RunCancelled { reason: "cancelled by the operator".to_owned() } };
        self.engine.journal().append(run_id, next, std::slice::from_ref(&event)).await?;
        let (state, _) = self.engine.journal().load(run_id)?;
        self.engine.journal().index(&state)?;
        term.out(format!("run {run_id} cancelled"));
        Ok(exit::OK)
    }
}

/// Bytes for people: `512 bytes`, `12.3 KiB`, `4.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

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

/// A mistake in how the command was called (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

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

/// Who is answering: the caller's login name.
fn operator(caller: &Caller) -> String {
    caller
        .environment
        .var("USER")
        .or_else(|| caller.environment.var("LOGNAME"))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn parse_run(text: &str) -> Result<RunId> {
    text.parse::<RunId>().map_err(|m| anyhow!(UsageError(m)))
}

fn parse_steps(texts: &[String]) -> Result<Vec<StepId>> {
    texts.iter().map(|t| StepId::new(t).map_err(|m| anyhow!(UsageError(m)))).collect()
}

/// The exit code for a run's final status.
pub fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Failed | RunStatus::Cancelled => exit::FAILED,
        RunStatus::NeedsAttention => exit::NEEDS_ATTENTION,
        RunStatus::Interrupted | RunStatus::Running => exit::INTERRUPTED,
    }
}

/// A workflow argument: a path to a file, or a name in the workflows directory.
pub fn resolve_workflow(argument: &str, workflows_dir: &Path, cwd: Option<&Path>) -> Result<PathBuf> {
    let absolute = |p: &Path| match cwd {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    };
    let as_path = absolute(Path::new(argument));
    if as_path.is_file() {
        return Ok(as_path);
    }
    let dir = absolute(workflows_dir);
    for candidate in [dir.join(format!("{argument}.yaml")), dir.join(format!("{argument}.yml")), dir.join(argument)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(anyhow!(UsageError(format!(
        "no workflow `{argument}`: not a file, and not found as {}/{argument}.yaml (set the directory with --workflows DIR)",
        dir.display()
    ))))
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

/// `runbook validate`: every file, every problem.
pub fn validate(
    registry: &runbook_engine::step::Registry,
    paths: &[PathBuf],
    term: &Term,
    environment: &RunEnvironment,
) -> u8 {
    let mut files = Vec::new();
    for path in paths {
        let path = match &environment.dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.clone(),
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            files.extend(found);
        } else {
            files.push(path);
        }
    }
    let mut invalid = 0;
    for file in &files {
        match load_file(file, registry) {
            Ok(loaded) => term.out(format!("{}: ok ({} steps)", file.display(), loaded.workflow.steps.len())),
            Err(diagnostics) => {
                invalid += 1;
                term.err(diagnostics.to_string());
            }
        }
    }
    if invalid > 0 {
        term.err(format!("{invalid} of {} workflow files are invalid", files.len()));
        exit::INVALID
    } else {
        exit::OK
    }
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

/// Seconds, minutes or hours between two instants, for people.
pub fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = u64::try_from((to - from).num_milliseconds()).unwrap_or(0);
    runbook_engine::duration::format_elapsed_ms(ms)
}
