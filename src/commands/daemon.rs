//! `runbook daemon`: fires the workflows' schedules and executes runs in the
//! process that holds the store (which goes on serving other `runbook`
//! commands on its socket), resumes interrupted runs at start, reloads
//! workflows on SIGHUP and when their files change, and stops on SIGTERM or
//! SIGINT after a grace period. Also `runbook schedules`.
//!
//! What fires when is decided by `runbook_engine::scheduler` (pure); this
//! module performs the decisions: it records each as the entry's state
//! (`Journal::put_schedule_state`, durably, before the run a fire starts),
//! starts and cancels runs, and tells the operator on stderr. What it needs to
//! know of past runs (their escalations) it asks the engine
//! (`Journal::escalation_of_tree`).

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, SecondsFormat, Utc};
use runbook_engine::error::EngineError;
use runbook_engine::executor::{RunControl, RunEnvironment};
use runbook_engine::ids::RunId;
use runbook_engine::journal::Journal;
use runbook_engine::load::{LoadedWorkflow, load_file};
use runbook_engine::model::ScheduleSpec;
use runbook_engine::scheduler::{Decision, Entry, Previous, ScheduleState, decide, entry_key, pause_reason, wake_at};
use runbook_engine::state::RunStatus;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::{App, Context};
use crate::exit::{self, UsageError};
use crate::flags::DaemonArgs;
use crate::term::Term;

/// The longest the loop sleeps without looking at the wall clock again (it may have been set).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long `cancel_previous` waits for the cancelled run to stop before starting the next.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// `runbook daemon`.
pub async fn daemon(context: &mut Context, args: DaemonArgs) -> Result<u8> {
    let app = context.app_handling_signals_itself().await?;
    let (term, caller) = (&context.term, &context.caller);
    if matches!(term, Term::Remote(_)) {
        return Err(anyhow!(UsageError(format!(
            "the store is held by process {} (a daemon or a run); `runbook daemon` must hold the store itself: stop that process first",
            std::process::id()
        ))));
    }
    let dir = caller.workflows_dir.clone();
    if !dir.is_dir() {
        return Err(anyhow!(UsageError(format!(
            "no workflows directory {}: pass the directory of the workflow files with --workflows DIR",
            dir.display()
        ))));
    }
    let signals = Signals::listen()?;
    let mut daemon = Daemon {
        app: Arc::clone(&app),
        term: term.clone(),
        environment: RunEnvironment { workflows_dir: Some(dir.clone()), ..caller.environment.clone() },
        dir,
        online_since: Utc::now(),
        entries: BTreeMap::new(),
        signature: Vec::new(),
        runs: HashMap::new(),
        tasks: JoinSet::new(),
    };
    daemon.say(format!(
        "starting: process {}, store {}, workflows {}",
        std::process::id(),
        app.journal().store().path().display(),
        daemon.dir.display()
    ));
    daemon.resume_interrupted().await;
    daemon.reload(true).await;
    let workflows =
        daemon.entries.values().map(|e| &e.workflow.workflow.name).collect::<std::collections::BTreeSet<_>>();
    daemon.say(format!(
        "ready: {} from {}",
        plural(daemon.entries.len(), "schedule entry", "schedule entries"),
        plural(workflows.len(), "workflow", "workflows")
    ));
    daemon.serve(&args, signals).await
}

/// SIGTERM/SIGINT (stop; a second one: stop at once) and SIGHUP (reload).
struct Signals {
    stop: CancellationToken,
    hurry: CancellationToken,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let stop = CancellationToken::new();
        let hurry = CancellationToken::new();
        let (first, second) = (stop.clone(), hurry.clone());
        tokio::spawn(async move {
            for token in [first, second] {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                token.cancel();
            }
        });
        Ok(Signals { stop, hurry, hangup })
    }
}

/// One schedule entry of a loaded workflow, with its state.
struct Scheduled {
    workflow: Arc<LoadedWorkflow>,
    index: usize,
    spec: ScheduleSpec,
    entry: Entry,
    state: ScheduleState,
    /// When to decide about the entry next.
    wake: Option<DateTime<Utc>>,
}

impl Scheduled {
    fn label(&self) -> String {
        format!("{} schedule[{}] `{}`", self.workflow.workflow.name, self.index, self.spec.cron)
    }
}

/// A run the daemon executes.
struct Executing {
    control: RunControl,
    /// Cancelled when the run's task has ended.
    done: CancellationToken,
    workflow: String,
}

/// Files in the workflows directory with their modification time and size: a change means reload.
type Signature = Vec<(PathBuf, Option<SystemTime>, u64)>;

struct Daemon {
    app: Arc<App>,
    term: Term,
    dir: PathBuf,
    environment: RunEnvironment,
    /// When this daemon came up: scheduled times before it were missed.
    online_since: DateTime<Utc>,
    entries: BTreeMap<String, Scheduled>,
    signature: Signature,
    runs: HashMap<RunId, Executing>,
    tasks: JoinSet<(RunId, std::result::Result<RunStatus, EngineError>)>,
}

impl Daemon {
    fn journal(&self) -> &Arc<Journal> {
        self.app.journal()
    }

    /// A line for the operator on stderr (journald keeps it), and the same as a trace event.
    fn say(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        tracing::info!(target: "runbook::daemon", "{text}");
        self.term.err(format!("{} runbook daemon: {text}", time_text(Utc::now())));
    }

    async fn serve(mut self, args: &DaemonArgs, mut signals: Signals) -> Result<u8> {
        let mut watch = (!args.watch_every.is_zero()).then(|| interval_after(args.watch_every));
        let mut prune = args.prune_older_than.map(|_| interval_after(args.prune_every));
        loop {
            self.fire_due().await;
            let sleep = match self.entries.values().filter_map(|e| e.wake).min() {
                Some(wake) => (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => self.finished(joined),
                _ = signals.hangup.recv() => {
                    self.say("SIGHUP: reloading the workflows");
                    self.reload(false).await;
                }
                Some(_) = tick(&mut watch) => {
                    if signature(&self.dir) != self.signature {
                        self.say("workflow files changed: reloading");
                        self.reload(false).await;
                    }
                }
                Some(_) = tick(&mut prune) => {
                    if let Some(older_than) = args.prune_older_than {
                        self.prune(older_than, args.prune_keep_failed).await;
                    }
                }
                () = signals.stop.cancelled() => break,
            }
        }
        self.shut_down(args.grace, &signals.hurry).await;
        Ok(exit::OK)
    }

    /// Decides about every entry whose time has come, and performs the decisions.
    async fn fire_due(&mut self) {
        let now = Utc::now();
        let due: Vec<String> =
            self.entries.iter().filter(|(_, e)| e.wake.is_some_and(|w| w <= now)).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.handle(&key).await;
        }
    }

    /// What the daemon knows of the run an entry started last.
    fn previous(&self, entry: &Scheduled) -> Previous {
        previous_of(&self.app, &entry.entry, &entry.state, |run| self.runs.contains_key(&run))
    }

    async fn handle(&mut self, key: &str) {
        let Some(scheduled) = self.entries.get(key) else { return };
        let previous = self.previous(scheduled);
        let now = Utc::now();
        let decision = decide(&scheduled.entry, &scheduled.state, &previous, self.online_since, now);
        let label = scheduled.label();
        match &decision {
            Decision::Wait { until } => {
                let wake = match until {
                    // The scheduler says wait although the entry was due: look again in a second rather than spin.
                    Some(t) if *t <= now => Some(now + chrono::TimeDelta::seconds(1)),
                    other => *other,
                };
                if let Some(scheduled) = self.entries.get_mut(key) {
                    scheduled.wake = wake;
                }
                return;
            }
            Decision::Skip { at, reason } => {
                let reason = reason.to_string();
                // A paused per-minute schedule says so once, not every minute until someone acknowledges.
                if scheduled.state.last_skip.as_ref().is_none_or(|last| last.reason != reason) {
                    self.say(format!("{label}: not firing for {}: {reason}", time_text(*at)));
                }
                let state = scheduled.state.after(&decision, None, now);
                self.record(key, state);
            }
            Decision::Queue { at, .. } => {
                let state = scheduled.state.after(&decision, None, now);
                if let Some(note) = &state.last_note {
                    self.say(format!("{label}: fire for {}: {}", time_text(*at), note.reason));
                }
                self.record(key, state);
            }
            Decision::Fire { at, cancel, .. } => {
                if let Some(previous) = cancel {
                    self.cancel_previous(*previous, &label).await;
                }
                if !self.fire(key, &decision, *at, now).await {
                    // Nothing was recorded: try again shortly rather than at once.
                    if let Some(scheduled) = self.entries.get_mut(key) {
                        scheduled.wake = Some(now + chrono::TimeDelta::seconds(5));
                    }
                    return;
                }
            }
        }
        if let Some(scheduled) = self.entries.get_mut(key) {
            let running = scheduled.state.last_run.is_some_and(|r| self.runs.contains_key(&r));
            scheduled.wake = wake_at(&scheduled.entry, &scheduled.state, running);
        }
    }

    /// Stores an entry's new state after a skip or a queue (durably) and keeps it; a state that
    /// cannot be stored is kept in memory all the same: at worst a restart decides that time again.
    fn record(&mut self, key: &str, state: ScheduleState) {
        if let Err(error) = self.journal().put_schedule_state(key, &state) {
            self.say(format!("cannot record the state of schedule {key}: {error:#}"));
        }
        if let Some(scheduled) = self.entries.get_mut(key) {
            scheduled.state = state;
        }
    }

    async fn cancel_previous(&mut self, run: RunId, label: &str) {
        let control = self.runs.get(&run).map(|e| (e.control.clone(), e.done.clone()));
        let control = control.or_else(|| self.app.engine.control_of(run).map(|c| (c, CancellationToken::new())));
        let Some((control, done)) = control else { return };
        self.say(format!("{label}: cancelling run {run}, still going (overlap: cancel_previous)"));
        control.cancel_because(format!("{label}: cancelled for the next fire (overlap: cancel_previous)"));
        if tokio::time::timeout(CANCEL_WAIT, done.cancelled()).await.is_err() {
            self.say(format!("run {run} did not stop within {}s; starting the next run anyway", CANCEL_WAIT.as_secs()));
        }
    }

    /// Records the fire (with the id of the run it starts), then starts the run. `false` when
    /// nothing could be recorded, so that the fire is still due.
    async fn fire(&mut self, key: &str, decision: &Decision, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let Some(scheduled) = self.entries.get(key) else { return true };
        let workflow = Arc::clone(&scheduled.workflow);
        let label = scheduled.label();
        let inputs = serde_json::Map::from_iter(scheduled.spec.inputs.clone());
        let run = match self.journal().allocate_run_id() {
            Ok(run) => run,
            Err(error) => {
                self.say(format!("{label}: cannot fire for {}: {error}", time_text(at)));
                return false;
            }
        };
        let state = scheduled.state.after(decision, Some(run), now);
        let note = state.last_note.as_ref().map(|n| format!(" ({})", n.reason)).unwrap_or_default();
        // A fire that is not durably recorded could fire again after a crash: its run does not start.
        if let Err(error) = self.journal().put_schedule_state(key, &state) {
            self.say(format!("{label}: cannot record the fire for {}: {error:#}", time_text(at)));
            return false;
        }
        if let Some(scheduled) = self.entries.get_mut(key) {
            scheduled.state = state;
        }
        match self.start(run, &workflow, inputs).await {
            Ok(()) => self.say(format!("{label}: fired for {} as run {run}{note}", time_text(at))),
            Err(error) => {
                self.say(format!("{label}: fired for {} but run {run} did not start: {error:#}", time_text(at)))
            }
        }
        true
    }

    /// Records `run_started` for a fire under its recorded id, and executes the run in the background.
    async fn start(
        &mut self,
        run: RunId,
        workflow: &LoadedWorkflow,
        inputs: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let inputs = runbook_engine::inputs::resolve_input_values(&workflow.workflow, &inputs)?;
        self.app.engine.start_run_as(run, workflow, inputs, None, &self.environment).await?;
        self.execute(run, workflow.workflow.name.clone());
        Ok(())
    }

    fn execute(&mut self, run: RunId, workflow: String) {
        let control = RunControl::default();
        let done = CancellationToken::new();
        self.runs.insert(run, Executing { control: control.clone(), done: done.clone(), workflow });
        let engine = Arc::clone(&self.app.engine);
        let environment = self.environment.clone();
        self.tasks.spawn(async move {
            let result = engine.execute(run, control, environment, None).await;
            done.cancel();
            (run, result)
        });
    }

    /// A run's task ended: say how, and let entries waiting for it (`queue_one`) go on.
    fn finished(
        &mut self,
        joined: std::result::Result<(RunId, std::result::Result<RunStatus, EngineError>), tokio::task::JoinError>,
    ) {
        let (run, result) = match joined {
            Ok(pair) => pair,
            Err(error) => {
                self.say(format!("a run's task ended abnormally: {error}"));
                return;
            }
        };
        let workflow = self.runs.remove(&run).map(|e| e.workflow).unwrap_or_default();
        match result {
            Ok(status) => {
                let reason = match status {
                    RunStatus::NeedsAttention | RunStatus::Interrupted | RunStatus::Cancelled => self
                        .journal()
                        .load(run)
                        .ok()
                        .and_then(|(state, _)| state.reason)
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                self.say(format!("run {run} ({workflow}) {}{reason}", status.as_str()));
            }
            Err(error) => self.say(format!("run {run} ({workflow}) stopped: {error}")),
        }
        for scheduled in self.entries.values_mut() {
            if scheduled.state.last_run == Some(run) {
                scheduled.wake = wake_at(&scheduled.entry, &scheduled.state, false);
            }
        }
    }

    /// Resumes every top-level run that stopped without finishing; lists those that need a decision.
    async fn resume_interrupted(&mut self) {
        let runs = match self.journal().runs() {
            Ok(runs) => runs,
            Err(error) => {
                self.say(format!("cannot list the runs to resume: {error}"));
                return;
            }
        };
        for unreadable in &runs.unreadable {
            self.say(format!(
                "run {} cannot be read, not resumed: {} (`runbook verify {}` checks it)",
                unreadable.run_id, unreadable.error, unreadable.run_id
            ));
        }
        for summary in runs.runs.into_iter().rev() {
            // A child run is taken up by its parent's `workflow` step when the parent resumes.
            if summary.parent.is_some() || self.app.is_executing(summary.run_id) {
                continue;
            }
            let run = summary.run_id;
            match summary.status {
                RunStatus::Running | RunStatus::Interrupted => {
                    match self.app.engine.resume_run(run, Vec::new(), Vec::new()).await {
                        Ok(()) => {
                            self.say(format!("resuming run {run} ({}), interrupted", summary.workflow));
                            self.execute(run, summary.workflow.clone());
                        }
                        Err(error) => self.say(format!("cannot resume run {run} ({}): {error}", summary.workflow)),
                    }
                }
                RunStatus::NeedsAttention => {
                    let reason = self.journal().load(run).ok().and_then(|(state, _)| state.reason).unwrap_or_default();
                    self.say(format!(
                        "run {run} ({}) needs attention, left as it is: {reason}; `runbook resume {run} --rerun STEP` or `--skip STEP` decides",
                        summary.workflow
                    ));
                }
                RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled => {}
            }
        }
    }

    /// (Re)loads the workflow files: invalid ones are reported and skipped, the others' entries
    /// keep their state; entries whose cron changed start afresh.
    async fn reload(&mut self, at_start: bool) {
        self.signature = signature(&self.dir);
        let (workflows, problems) = load_dir(&self.dir, self.app.registry());
        for (file, text) in &problems {
            self.say(format!("skipping {}: it is invalid, its schedules do not fire:\n{text}", file.display()));
        }
        let now = Utc::now();
        let mut wanted: BTreeMap<String, (Arc<LoadedWorkflow>, usize, ScheduleSpec, Entry)> = BTreeMap::new();
        for workflow in &workflows {
            for (index, spec) in workflow.workflow.schedules.iter().enumerate() {
                match Entry::from_spec(spec) {
                    Ok(entry) => {
                        let key = entry_key(&workflow.workflow.name, index, spec);
                        wanted.insert(key, (Arc::clone(workflow), index, spec.clone(), entry));
                    }
                    Err(error) => self.say(format!("skipping {} schedule[{index}]: {error}", workflow.workflow.name)),
                }
            }
        }
        let removed: Vec<String> = self.entries.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        for key in removed {
            if let Some(old) = self.entries.remove(&key) {
                self.say(format!("{}: removed", old.label()));
            }
        }
        let mut recorded_not_started = Vec::new();
        for (key, (workflow, index, spec, entry)) in wanted {
            if let Some(existing) = self.entries.get_mut(&key) {
                existing.workflow = workflow;
                existing.spec = spec;
                existing.entry = entry;
                let running = existing.state.last_run.is_some_and(|r| self.runs.contains_key(&r));
                existing.wake = wake_at(&existing.entry, &existing.state, running);
                continue;
            }
            let state = match self.journal().schedule_state(&key) {
                Ok(Some(state)) => state,
                Ok(None) => {
                    let state = ScheduleState::first_seen(now);
                    if let Err(error) = self.journal().put_schedule_state(&key, &state) {
                        self.say(format!("cannot record schedule {key}: {error:#}"));
                    }
                    state
                }
                Err(error) => {
                    // Starting afresh could fire a time again; say so loudly and take the safe side: from now on.
                    self.say(format!(
                        "the state of schedule {key} is unreadable ({error:#}); it starts afresh from now"
                    ));
                    ScheduleState::first_seen(now)
                }
            };
            if let Some(run) = state.last_run
                && self.journal().has_started(run).is_ok_and(|started| !started)
            {
                recorded_not_started.push((key.clone(), run));
            }
            let running = state.last_run.is_some_and(|r| self.runs.contains_key(&r));
            let wake = wake_at(&entry, &state, running);
            if !at_start {
                self.say(format!("{} schedule[{index}] `{}`: added", workflow.workflow.name, spec.cron));
            }
            self.entries.insert(key, Scheduled { workflow, index, spec, entry, state, wake });
        }
        // A crash between recording a fire and its `run_started`: start the recorded run now, under its id.
        for (key, run) in recorded_not_started {
            let Some(scheduled) = self.entries.get(&key) else { continue };
            let workflow = Arc::clone(&scheduled.workflow);
            let label = scheduled.label();
            let inputs = serde_json::Map::from_iter(scheduled.spec.inputs.clone());
            match self.start(run, &workflow, inputs).await {
                Ok(()) => self.say(format!("{label}: starting run {run}, recorded as fired but not started")),
                Err(error) => self.say(format!("{label}: run {run} was recorded as fired but cannot start: {error:#}")),
            }
        }
        self.forget_stale_state(&workflows);
        if !at_start {
            self.say(format!("reloaded: {}", plural(self.entries.len(), "schedule entry", "schedule entries")));
        }
    }

    /// Drops stored state of entries that no longer exist in workflows that loaded (an edited
    /// cron, a removed entry); a workflow that failed to load keeps its state for its return.
    fn forget_stale_state(&self, workflows: &[Arc<LoadedWorkflow>]) {
        let Ok(stored) = self.journal().schedule_keys() else { return };
        for key in stored {
            let Some((name, _)) = key.split_once('#') else { continue };
            if workflows.iter().any(|w| w.workflow.name == name) && !self.entries.contains_key(&key) {
                let _ = self.journal().delete_schedule_state(&key);
            }
        }
    }

    /// Retention: prunes finished runs older than `older_than`, off the async threads.
    async fn prune(&self, older_than: Duration, keep_failed: bool) {
        let app = Arc::clone(&self.app);
        let outcome = tokio::task::spawn_blocking(move || prune_finished_runs(&app, older_than, keep_failed)).await;
        match outcome {
            Ok(Ok(summary)) => self.say(format!("retention: {summary}")),
            Ok(Err(error)) => self.say(format!("retention: cannot prune: {error:#}")),
            Err(error) => self.say(format!("retention: the prune stopped abnormally: {error}")),
        }
    }

    /// Stops firing, lets the runs go on for up to `grace`, then interrupts what still runs (resumably).
    async fn shut_down(&mut self, grace: Duration, hurry: &CancellationToken) {
        let busy = self.busy_runs();
        if busy.is_empty() {
            self.say("stopping: no run is going");
        } else {
            self.say(format!(
                "stopping: no more fires and no new steps; waiting up to {} for the running steps of runs {} \
                 (a second signal interrupts them now)",
                runbook_engine::duration::format_duration(grace),
                busy.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        // No run starts a new step from here on; each stops, resumable, once
        // its running steps have ended. A child run is one of its parent's
        // running steps: it goes on until the parent's grace is over.
        for run in &busy {
            let child = self.journal().indexed(*run).ok().flatten().is_some_and(|summary| summary.parent.is_some());
            if let Some(control) = self.app.engine.control_of(*run).filter(|_| !child) {
                control.drain.cancel();
            }
        }
        let deadline = Instant::now() + grace;
        while !self.busy_runs().is_empty() {
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => break,
                () = hurry.cancelled() => break,
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => self.finished(joined),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let left = self.busy_runs();
        if !left.is_empty() {
            self.say(format!(
                "interrupting runs {}: `runbook resume RUN` or the next daemon goes on",
                left.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        // Runs followed by other processes through the socket stop with the shutdown token.
        self.app.shutdown.cancel();
        for executing in self.runs.values() {
            executing.control.interrupt.cancel();
        }
        while let Some(joined) = self.tasks.join_next().await {
            self.finished(joined);
        }
        self.say("stopped");
    }

    /// Runs executing in this process: the daemon's and those handed over through the socket.
    fn busy_runs(&self) -> Vec<RunId> {
        let mut busy: Vec<RunId> = self.runs.keys().copied().collect();
        if let Ok(runs) = self.journal().runs() {
            for summary in runs.runs {
                if summary.status == RunStatus::Running
                    && self.app.is_executing(summary.run_id)
                    && !busy.contains(&summary.run_id)
                {
                    busy.push(summary.run_id);
                }
            }
        }
        busy.sort();
        busy
    }
}

/// Retention with the prune of `runbook prune` (`runbook_engine::integrity::prune`): whole
/// trees of finished runs that ended more than `older_than` ago; nothing executing is touched.
fn prune_finished_runs(app: &Arc<App>, older_than: Duration, keep_failed: bool) -> Result<String> {
    let cutoff =
        Utc::now() - chrono::TimeDelta::from_std(older_than).context("the --prune-older-than duration is too long")?;
    let options = runbook_engine::integrity::PruneOptions { cutoff, keep_failed, dry_run: false };
    let report = runbook_engine::integrity::prune(app.journal(), &options, &|run| app.is_executing(run))?;
    Ok(format!(
        "pruned {} runs ({} events, {} bytes of artifacts) that finished before {}{}",
        report.runs.len(),
        report.events,
        report.artifact_bytes,
        time_text(cutoff),
        if report.kept.is_empty() {
            String::new()
        } else {
            format!("; kept {} old enough but in use", report.kept.len())
        }
    ))
}

/// An interval whose first tick is one period from now.
fn interval_after(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// The next tick of an optional interval; never, without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) -> Option<tokio::time::Instant> {
    match interval {
        Some(interval) => Some(interval.tick().await),
        None => std::future::pending().await,
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The workflow files of a directory (`*.yaml`, `*.yml`), sorted.
fn workflow_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn signature(dir: &Path) -> Signature {
    workflow_files(dir)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (path, modified, len)
        })
        .collect()
}

/// Loads every workflow file of a directory: the valid ones, and each invalid file with its diagnostics.
fn load_dir(
    dir: &Path,
    registry: &runbook_engine::step::Registry,
) -> (Vec<Arc<LoadedWorkflow>>, Vec<(PathBuf, String)>) {
    let mut workflows: Vec<Arc<LoadedWorkflow>> = Vec::new();
    let mut problems = Vec::new();
    for file in workflow_files(dir) {
        match load_file(&file, registry) {
            Ok(loaded) => {
                if let Some(first) = workflows.iter().find(|w| w.workflow.name == loaded.workflow.name) {
                    let text = format!(
                        "{}: workflow `{}` is already defined by {}",
                        file.display(),
                        loaded.workflow.name,
                        first.path.display()
                    );
                    problems.push((file, text));
                } else {
                    workflows.push(Arc::new(loaded));
                }
            }
            Err(diagnostics) => problems.push((file, diagnostics.to_string())),
        }
    }
    (workflows, problems)
}

/// What the scheduler needs to know of the run an entry started last. `ours` says whether the
/// daemon executes a run (its task may not have registered with the engine yet).
fn previous_of(app: &App, entry: &Entry, state: &ScheduleState, ours: impl Fn(RunId) -> bool) -> Previous {
    let Some(run) = state.last_run else { return Previous::default() };
    let running = ours(run) || app.is_executing(run);
    let escalation = if entry.pause_while_escalated || entry.cooldown.is_some() {
        app.journal().escalation_of_tree(run)
    } else {
        None
    };
    Previous { run: Some(run), running, escalation }
}

/// `runbook schedules`: every entry of the workflows in `--workflows`, from the stored state;
/// the same whether a daemon runs or not.
pub async fn schedules(context: &mut Context, json: bool) -> Result<u8> {
    let app = context.app().await?;
    let (term, dir) = (&context.term, &context.caller.workflows_dir);
    if !dir.is_dir() {
        return Err(anyhow!(UsageError(format!(
            "no workflows directory {}: pass the directory of the workflow files with --workflows DIR",
            dir.display()
        ))));
    }
    let (workflows, problems) = load_dir(dir, app.registry());
    for (file, _) in &problems {
        term.err(format!(
            "warning: {} is invalid, its schedules are not listed (`runbook validate {}` says why)",
            file.display(),
            file.display()
        ));
    }
    let journal = app.journal();
    let now = Utc::now();
    let mut rows = Vec::new();
    for workflow in &workflows {
        for (index, spec) in workflow.workflow.schedules.iter().enumerate() {
            let Ok(entry) = Entry::from_spec(spec) else { continue };
            let key = entry_key(&workflow.workflow.name, index, spec);
            let state = journal.schedule_state(&key).ok().flatten();
            let previous = state.as_ref().map(|s| previous_of(&app, &entry, s, |_| false)).unwrap_or_default();
            let last_run = previous.run.map(|run| {
                let status =
                    journal.load(run).ok().map(|(run_state, _)| app.visible_status(run, run_state.status).as_str());
                serde_json::json!({
                    "run_id": run,
                    "status": status,
                    "fired_for": state.as_ref().and_then(|s| s.last_run_for),
                })
            });
            let paused = pause_reason(&entry, &previous, now).map(|r| r.to_string());
            let ms = |v: Option<u64>| v.map(|ms| runbook_engine::duration::format_duration(Duration::from_millis(ms)));
            rows.push(serde_json::json!({
                "workflow": workflow.workflow.name,
                "file": workflow.path,
                "entry": index,
                "cron": spec.cron,
                "timezone": spec.timezone.as_deref().unwrap_or("UTC"),
                "overlap": entry.overlap.as_str(),
                "catch_up": entry.catch_up.as_str(),
                "starting_deadline": ms(spec.starting_deadline_ms),
                "pause_while_escalated": spec.pause_while_escalated,
                "cooldown": ms(spec.cooldown_ms),
                "next": entry.next_fires(now, 3),
                "last_fire": state.as_ref().and_then(|s| s.last_fire),
                "last_run": last_run,
                "pending": state.as_ref().and_then(|s| s.pending),
                "paused": paused,
                "last_skip": state.as_ref().and_then(|s| s.last_skip.clone()),
                "last_note": state.as_ref().and_then(|s| s.last_note.clone()),
                "fires": state.as_ref().map_or(0, |s| s.fires),
                "skips": state.as_ref().map_or(0, |s| s.skips),
                "seen_by_daemon": state.is_some(),
            }));
        }
    }
    if json {
        term.out(serde_json::to_string_pretty(&rows)?);
    } else {
        schedules_table(term, &rows);
    }
    Ok(exit::OK)
}

fn schedules_table(term: &Term, rows: &[serde_json::Value]) {
    if rows.is_empty() {
        term.out("no schedules: no workflow in the directory has a `schedule:`");
        return;
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let short = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".to_owned())
    };
    let header = ["WORKFLOW", "#", "CRON", "ZONE", "NEXT", "LAST RUN", "NOTE"].map(str::to_owned);
    let mut table = vec![header];
    for row in rows {
        let last_run = match &row["last_run"] {
            serde_json::Value::Null => "-".to_owned(),
            run => format!("{} {} (for {})", run["run_id"], text(&run["status"]), short(&run["fired_for"])),
        };
        let note = [&row["paused"], &row["last_skip"]["reason"]]
            .into_iter()
            .find_map(|v| v.as_str().map(str::to_owned))
            .or_else(|| row["pending"].as_str().map(|p| format!("queued fire for {p}")))
            .unwrap_or_default();
        table.push([
            text(&row["workflow"]),
            row["entry"].to_string(),
            text(&row["cron"]),
            text(&row["timezone"]),
            short(&row["next"][0]),
            last_run,
            note,
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in &table {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        term.out(cells.join("  ").trim_end());
    }
}
