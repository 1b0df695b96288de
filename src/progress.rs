//! What people read: progress while a run goes, the final line, and the status and runs tables.
//!
//! Progress comes in two forms, chosen by [`Progress::new`]:
//! - plain: one stable line per step transition, with no escape codes. Used
//!   when stdout is not a terminal, with `NO_COLOR` or `TERM=dumb`, and for a
//!   command served to another process over the store's socket. Tests and
//!   scripts read these lines: keep them stable.
//! - live (indicatif): one line per step, redrawn in place, with a spinner
//!   while the step runs, its attempt (`2/3`, next retry in N s) and duration.
//!   Finished steps stay; steps of child runs appear indented under the
//!   `workflow` step that started them.
//!
//! Both end with [`final_line`]: the outcome and the next command to type.

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runbook_engine::duration::format_elapsed_ms as ms;
use runbook_engine::event::EventKind;
use runbook_engine::executor::Observed;
use runbook_engine::ids::{RunId, StepId};
use runbook_engine::journal::RunSummary;
use runbook_engine::model::Workflow;
use runbook_engine::state::{RunState, RunStatus, StepPhase};
use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::term::Term;

/// Reads a run's state from the log: how live progress learns what a resumed child run already did.
pub type RunLoader = Box<dyn Fn(RunId) -> Option<RunState> + Send>;

/// Follows a run's events (and its child runs') and shows them.
pub struct Progress {
    term: Term,
    view: View,
}

enum View {
    Plain(Plain),
    Live(Box<Live>),
}

impl Progress {
    /// Live progress when this process writes to a terminal that wants it, plain lines otherwise.
    pub fn new(term: Term, state: &RunState, load: RunLoader) -> Progress {
        let view = if wants_live(&term) {
            View::Live(Box::new(Live::new(state, load)))
        } else {
            View::Plain(Plain::new(term.clone(), state))
        };
        Progress { term, view }
    }

    /// The first line: which run, which workflow.
    pub fn header(&self, state: &RunState) {
        self.term.out(format!("run {}: {} ({} steps)", state.run_id, state.workflow.name, state.workflow.steps.len()));
    }

    fn show(&mut self, observed: &Observed) {
        match &mut self.view {
            View::Plain(plain) => plain.show(observed),
            View::Live(live) => live.show(observed),
        }
    }
}

/// Whether to draw live progress: a local terminal, colours allowed, a terminal that can move the cursor.
fn wants_live(term: &Term) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    matches!(term, Term::Local) && std::io::stdout().is_terminal() && !no_color && !dumb
}

/// Shows progress until the run's event stream closes.
pub async fn follow(mut progress: Progress, mut events: mpsc::UnboundedReceiver<Observed>) {
    if matches!(progress.view, View::Plain(_)) {
        while let Some(observed) = events.recv().await {
            progress.show(&observed);
        }
        return;
    }
    // Live: redraw spinners, elapsed times and countdowns between events.
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            observed = events.recv() => match observed {
                Some(observed) => progress.show(&observed),
                None => break,
            },
            _ = ticker.tick() => {
                if let View::Live(live) = &mut progress.view {
                    live.tick(Utc::now());
                }
            }
        }
    }
    if let View::Live(live) = &mut progress.view {
        live.finish(Utc::now());
    }
}

/// Plain progress: one line per step transition.
struct Plain {
    term: Term,
    width: usize,
    /// The run being followed.
    root: RunId,
    /// How each child run's steps are named: `diagnose › probe_tcp`.
    prefixes: HashMap<RunId, String>,
    /// Retry budget of each step, for `attempt 2/3`.
    attempts: HashMap<(RunId, String), u32>,
}

impl Plain {
    fn new(term: Term, state: &RunState) -> Plain {
        let mut plain =
            Plain { term, width: 4, root: state.run_id, prefixes: HashMap::new(), attempts: HashMap::new() };
        plain.learn(state.run_id, &state.workflow, String::new());
        plain
    }

    fn learn(&mut self, run: RunId, workflow: &Workflow, prefix: String) {
        for step in &workflow.steps {
            self.width = self.width.max(prefix.chars().count() + step.id.as_str().len());
            self.attempts.insert((run, step.id.to_string()), step.retry.attempts);
        }
        self.prefixes.insert(run, prefix);
    }

    fn line(&self, run: RunId, step: &str, text: String) {
        let prefix = self.prefixes.get(&run).map(String::as_str).unwrap_or_default();
        let label = format!("{prefix}{step}");
        self.term.out(format!("  {label:<width$}  {text}", width = self.width));
    }

    fn attempt_text(&self, run: RunId, step: &str, attempt: u32) -> String {
        match self.attempts.get(&(run, step.to_owned())) {
            Some(&budget) if budget > 1 => format!("attempt {attempt}/{budget}"),
            _ => format!("attempt {attempt}"),
        }
    }

    fn show(&mut self, observed: &Observed) {
        let run = observed.run_id;
        match &observed.event.kind {
            EventKind::RunStarted(started) => {
                if let Some(parent) = started.parent.as_ref().filter(|_| run != self.root) {
                    let parent_prefix = self.prefixes.get(&parent.run_id).cloned().unwrap_or_default();
                    let prefix = format!("{parent_prefix}{} › ", parent.step);
                    self.line(
                        parent.run_id,
                        parent.step.as_str(),
                        format!("child run {run}: {}", started.workflow.name),
                    );
                    self.learn(run, &started.workflow, prefix);
                }
            }
            EventKind::RunResumed { .. } => {}
            EventKind::BundleCreated { step, archive, .. } => {
                self.line(run, step.as_ref().map_or("bundle", |s| s.as_str()), format!("bundle written: {archive}"));
            }
            EventKind::EmailSent { step, to, .. } => {
                self.line(run, step.as_ref().map_or("email", |s| s.as_str()), format!("emailed to {}", to.join(", ")));
            }
            EventKind::EmailFailed { step, error } => {
                self.line(run, step.as_ref().map_or("email", |s| s.as_str()), format!("email failed: {error}"));
            }
            EventKind::SupportTicketCreated { step, ticket, dry_run } => {
                let what = if *dry_run { "support ticket (dry run)" } else { "support ticket" };
                self.line(run, step.as_ref().map_or("ticket", |s| s.as_str()), format!("{what}: {ticket}"));
            }
            EventKind::StepStarted { step, attempt } => {
                self.line(
                    run,
                    step.as_str(),
                    format!("started ({})", self.attempt_text(run, step.as_str(), attempt.0)),
                );
            }
            EventKind::StepSucceeded { step, duration_ms, .. } => {
                self.line(run, step.as_str(), format!("succeeded in {}", ms(*duration_ms)));
            }
            EventKind::StepFailed { step, attempt, error, retry_at, duration_ms, .. } => {
                let retry = match retry_at {
                    Some(at) => {
                        let wait = (*at - observed.event.at).num_milliseconds().max(0);
                        format!("; retrying in {}", ms(wait as u64))
                    }
                    None => String::new(),
                };
                let after = if attempt.0 == 0 { String::new() } else { format!(" after {}", ms(*duration_ms)) };
                self.line(run, step.as_str(), format!("failed{after}: {error}{retry}"));
            }
            EventKind::StepPolled { step, attempt, next_at, .. } => {
                let wait = (*next_at - observed.event.at).num_milliseconds().max(0);
                self.line(
                    run,
                    step.as_str(),
                    format!("polled (attempt {attempt}): not yet; next poll in {}", ms(wait as u64)),
                );
            }
            EventKind::StepCheckStarted { step, attempt } => self.line(
                run,
                step.as_str(),
                format!("attempt {attempt} had no result after a crash: checking whether it took effect"),
            ),
            EventKind::StepChecked { step, done, error, .. } => {
                let text = match (error, done) {
                    (Some(error), _) => format!("check failed: {error}"),
                    (None, true) => "check: it took effect; recorded as succeeded".to_owned(),
                    (None, false) => "check: it did not take effect; running it again".to_owned(),
                };
                self.line(run, step.as_str(), text);
            }
            EventKind::StepApproved { step, by, .. } => self.line(run, step.as_str(), format!("approved by {by}")),
            EventKind::StepRejected { step, by, .. } => self.line(run, step.as_str(), format!("rejected by {by}")),
            EventKind::StepSkipped { step, reason } => self.line(run, step.as_str(), format!("skipped: {reason}")),
            EventKind::RunNeedsAttention { reason, .. } => {
                self.term.out(format!("run {run}: needs attention: {reason}"))
            }
            EventKind::RunInterrupted { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::RunAcknowledged { .. }
            | EventKind::RunSucceeded { .. }
            | EventKind::RunFailed { .. } => {}
        }
    }
}

/// Where a step is, as the live view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Pending,
    Running,
    /// Failed, with another attempt due at `wake_at`.
    Retrying,
    /// Polled, with the next poll due at `wake_at`.
    Polling,
    Succeeded,
    Failed,
    Skipped,
    /// Still running or waiting when the view closed: the run was interrupted.
    Stopped,
}

/// One step's line in the live view.
struct Line {
    run: RunId,
    step: StepId,
    /// 0 for the followed run's steps, 1 for its child runs' steps, ...
    depth: usize,
    kind: String,
    /// Attempts in the retry budget (`attempt 2/3`).
    budget: u32,
    shown: Shown,
    attempt: u32,
    started_at: Option<DateTime<Utc>>,
    duration_ms: Option<u64>,
    wake_at: Option<DateTime<Utc>>,
    /// The error, skip reason or child run; one line.
    detail: String,
    /// An escalation fact about the step (`bundle written: ...`).
    note: String,
    bar: ProgressBar,
}

/// Live progress: a line per step, redrawn in place.
struct Live {
    multi: MultiProgress,
    /// In the order the multi-progress shows them.
    lines: Vec<Line>,
    root: RunId,
    load: RunLoader,
    /// Width of the step column, over every line.
    width: usize,
    running_style: ProgressStyle,
    still_style: ProgressStyle,
    /// Keeps the terminal from echoing while the lines are redrawn.
    _quiet: QuietTerminal,
}

/// Turns the terminal's echo off while live progress draws, and back on when dropped.
///
/// indicatif fills each line to the last column, so anything the terminal
/// echoes (the `^C` of Ctrl-C, keys typed meanwhile) starts a line that its
/// next redraw does not know of, and a stale line stays on the screen.
struct QuietTerminal {
    saved: Option<rustix::termios::Termios>,
}

impl QuietTerminal {
    fn new() -> QuietTerminal {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdout = std::io::stdout();
        let Ok(saved) = tcgetattr(&stdout) else { return QuietTerminal { saved: None } };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO | LocalModes::ECHOCTL);
        match tcsetattr(&stdout, OptionalActions::Now, &quiet) {
            Ok(()) => QuietTerminal { saved: Some(saved) },
            Err(_) => QuietTerminal { saved: None },
        }
    }
}

impl Drop for QuietTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(std::io::stdout(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✔"];

impl Live {
    fn new(state: &RunState, load: RunLoader) -> Live {
        let mut live = Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            lines: Vec::new(),
            root: state.run_id,
            load,
            width: 4,
            running_style: running_style(),
            still_style: still_style(),
            _quiet: QuietTerminal::new(),
        };
        // Drawn from the first tick on, after the header line.
        live.add_run(state, 0, None);
        live
    }

    /// Adds the lines of a run's steps, after line `after` (or at the end).
    fn add_run(&mut self, state: &RunState, depth: usize, after: Option<usize>) {
        let first = after.map_or(self.lines.len(), |i| i + 1);
        for (position, (spec, step)) in (first..).zip(state.workflow.steps.iter().zip(&state.steps)) {
            let (shown, wake_at) = match step.phase {
                StepPhase::Pending | StepPhase::Running | StepPhase::Orphan | StepPhase::Checking => {
                    (Shown::Pending, None)
                }
                StepPhase::WaitingRetry => (Shown::Retrying, step.retry_at),
                StepPhase::Succeeded => (Shown::Succeeded, None),
                StepPhase::Failed => (Shown::Failed, None),
                StepPhase::Skipped => (Shown::Skipped, None),
            };
            let duration_ms = match (step.started_at, step.finished_at) {
                (Some(start), Some(end)) if step.phase.is_terminal() => {
                    Some(u64::try_from((end - start).num_milliseconds()).unwrap_or(0))
                }
                _ => None,
            };
            let detail = match step.phase {
                StepPhase::Skipped => step.skip_reason.clone().unwrap_or_default(),
                _ => step.error.clone().unwrap_or_default(),
            };
            let bar = ProgressBar::hidden();
            let bar = match position.checked_sub(1).and_then(|i| self.lines.get(i)) {
                Some(previous) => self.multi.insert_after(&previous.bar, bar),
                None => self.multi.insert(0, bar),
            };
            self.width = self.width.max(2 * depth + spec.id.as_str().len());
            self.lines.insert(
                position,
                Line {
                    run: state.run_id,
                    step: spec.id.clone(),
                    depth,
                    kind: spec.kind.clone(),
                    budget: spec.retry.attempts,
                    shown,
                    attempt: step.attempt.0,
                    started_at: step.started_at,
                    duration_ms,
                    wake_at,
                    detail: one_line(&detail),
                    note: String::new(),
                    bar,
                },
            );
        }
    }

    fn index(&self, run: RunId, step: &StepId) -> Option<usize> {
        self.lines.iter().position(|l| l.run == run && &l.step == step)
    }

    /// The last line of a step's subtree: the step and the lines of its child runs.
    fn subtree_end(&self, index: usize) -> usize {
        let depth = self.lines[index].depth;
        let mut end = index;
        while self.lines.get(end + 1).is_some_and(|l| l.depth > depth) {
            end += 1;
        }
        end
    }

    fn line_mut(&mut self, run: RunId, step: &StepId) -> Option<&mut Line> {
        let index = self.index(run, step)?;
        Some(&mut self.lines[index])
    }

    fn show(&mut self, observed: &Observed) {
        let run = observed.run_id;
        let at = observed.event.at;
        match &observed.event.kind {
            EventKind::RunStarted(started) => {
                let Some(parent) = started.parent.as_ref().filter(|_| run != self.root) else { return };
                if self.lines.iter().any(|l| l.run == run) {
                    return;
                }
                // A resumed child has history: show where it is, not a fresh start.
                let state = (self.load)(run).or_else(|| RunState::start(run, &observed.event).ok());
                let Some(state) = state else { return };
                let (depth, after) = match self.index(parent.run_id, &parent.step) {
                    Some(index) => (self.lines[index].depth + 1, Some(self.subtree_end(index))),
                    None => (1, None),
                };
                if let Some(line) = self.line_mut(parent.run_id, &parent.step) {
                    line.detail = format!("child run {run}: {}", started.workflow.name);
                }
                self.add_run(&state, depth, after);
            }
            EventKind::StepStarted { step, attempt } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.shown = Shown::Running;
                    line.attempt = attempt.0;
                    line.started_at = Some(at);
                    line.wake_at = None;
                    line.duration_ms = None;
                    line.detail = if line.kind == "approval" {
                        format!(
                            "waiting for an answer: `runbook approve {run} {step}` or `runbook reject {run} {step}`"
                        )
                    } else {
                        String::new()
                    };
                }
            }
            EventKind::StepSucceeded { step, attempt, duration_ms, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.shown = Shown::Succeeded;
                    line.attempt = attempt.0;
                    line.duration_ms = Some(*duration_ms);
                    line.wake_at = None;
                    if !line.detail.starts_with("child run") {
                        line.detail.clear();
                    }
                }
            }
            EventKind::StepFailed { step, attempt, error, retry_at, duration_ms, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.shown = if retry_at.is_some() { Shown::Retrying } else { Shown::Failed };
                    line.attempt = attempt.0;
                    line.duration_ms = Some(*duration_ms);
                    line.wake_at = *retry_at;
                    line.detail = one_line(error);
                }
            }
            EventKind::StepPolled { step, attempt, next_at, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.shown = Shown::Polling;
                    line.attempt = attempt.0;
                    line.wake_at = Some(*next_at);
                }
            }
            EventKind::StepSkipped { step, reason } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.shown = Shown::Skipped;
                    line.detail = one_line(reason);
                }
            }
            EventKind::StepCheckStarted { step, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.detail = "checking whether the interrupted attempt took effect".to_owned();
                }
            }
            EventKind::StepChecked { step, done, error, outputs: _, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    match (error, done) {
                        (Some(error), _) => line.detail = format!("check failed: {}", one_line(error)),
                        (None, true) => {
                            line.shown = Shown::Succeeded;
                            line.detail = "its check found the effect".to_owned();
                        }
                        (None, false) => line.detail = "its check found no effect: running it again".to_owned(),
                    }
                }
            }
            EventKind::StepApproved { step, by, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.detail = format!("approved by {by}");
                }
            }
            EventKind::StepRejected { step, by, .. } => {
                if let Some(line) = self.line_mut(run, step) {
                    line.detail = format!("rejected by {by}");
                }
            }
            EventKind::BundleCreated { step, archive, .. } => {
                self.note(run, step.as_ref(), format!("bundle {archive}"))
            }
            EventKind::EmailSent { step, to, .. } => {
                self.note(run, step.as_ref(), format!("emailed to {}", to.join(", ")))
            }
            EventKind::EmailFailed { step, error } => {
                self.note(run, step.as_ref(), format!("email failed: {}", one_line(error)))
            }
            EventKind::SupportTicketCreated { step, ticket, dry_run } => {
                let what = if *dry_run { "support ticket (dry run)" } else { "support ticket" };
                self.note(run, step.as_ref(), format!("{what}: {ticket}"));
            }
            EventKind::RunNeedsAttention { reason, .. } => {
                // The followed run's final line says it; a child's would be lost.
                if run != self.root {
                    let _ = self.multi.println(format!("  run {run}: needs attention: {reason}"));
                }
            }
            EventKind::RunResumed { .. }
            | EventKind::RunInterrupted { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::RunAcknowledged { .. }
            | EventKind::RunSucceeded { .. }
            | EventKind::RunFailed { .. } => {}
        }
        self.redraw(Utc::now());
    }

    fn note(&mut self, run: RunId, step: Option<&StepId>, text: String) {
        match step.and_then(|s| self.line_mut(run, s)) {
            Some(line) => line.note = text,
            None => {
                let _ = self.multi.println(format!("  run {run}: {text}"));
            }
        }
    }

    fn tick(&mut self, now: DateTime<Utc>) {
        self.redraw(now);
        for line in &self.lines {
            if line.shown == Shown::Running {
                line.bar.tick();
            }
        }
    }

    fn redraw(&mut self, now: DateTime<Utc>) {
        // Lines end short of the last column: a full line leaves the cursor in the terminal's
        // pending-wrap state, and the `^C` the terminal echoes would then start a new line
        // that the next redraw does not know of.
        let columns = usize::from(console::Term::stdout().size().1);
        let room = columns.saturating_sub(5).max(20);
        for line in &self.lines {
            let running = line.shown == Shown::Running;
            let style = if running { &self.running_style } else { &self.still_style };
            line.bar.set_style(style.clone());
            let text = render(line, now, self.width);
            line.bar.set_message(console::truncate_str(&text, room, "…").into_owned());
        }
    }

    /// Leaves every line on the screen as it is now; steps still running or waiting are marked stopped.
    fn finish(&mut self, now: DateTime<Utc>) {
        for line in &mut self.lines {
            if matches!(line.shown, Shown::Running | Shown::Retrying | Shown::Polling) {
                line.shown = Shown::Stopped;
            }
        }
        self.redraw(now);
        for line in &self.lines {
            line.bar.finish();
        }
    }
}

fn running_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner:.yellow} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_strings(SPINNER)
}

fn still_style() -> ProgressStyle {
    ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// A line's text after the spinner (running) or with its status symbol in front.
fn render(line: &Line, now: DateTime<Utc>, width: usize) -> String {
    use console::style;
    let label = format!("{}{}", "  ".repeat(line.depth), line.step);
    let label = format!("{label:<width$}");
    let attempt = match (line.budget, line.attempt) {
        (budget, attempt) if budget > 1 && attempt > 0 => format!("  attempt {attempt}/{budget}"),
        (_, attempt) if attempt > 1 => format!("  attempt {attempt}"),
        _ => String::new(),
    };
    let took = line.duration_ms.map(|d| format!("  {}", ms(d))).unwrap_or_default();
    let detail = if line.detail.is_empty() { String::new() } else { format!("  {}", line.detail) };
    let note = if line.note.is_empty() { String::new() } else { format!("  ({})", line.note) };
    let wait = |at: Option<DateTime<Utc>>| {
        let left_ms = at.map_or(0, |at| (at - now).num_milliseconds().max(0));
        let seconds = (left_ms + 999) / 1_000;
        format!("{seconds}s")
    };
    match line.shown {
        Shown::Pending => format!("{} {}", style("·").dim(), style(format!("{label}  pending{detail}")).dim()),
        Shown::Running => {
            let running = line.started_at.map(|start| format!("  {}", elapsed(start, now))).unwrap_or_default();
            format!("{label}  {}{attempt}{running}{}{note}", style("running").yellow(), style(detail).dim())
        }
        Shown::Retrying => {
            let after = line.duration_ms.map(|d| format!(" after {}", ms(d))).unwrap_or_default();
            format!(
                "{} {label}  {}{attempt} failed{after}: {} · next retry in {}",
                style("↻").yellow(),
                style("retrying").yellow(),
                style(&line.detail).red(),
                wait(line.wake_at)
            )
        }
        Shown::Polling => format!(
            "{} {label}  {}{attempt}  not yet; next poll in {}",
            style("…").yellow(),
            style("polling").yellow(),
            wait(line.wake_at)
        ),
        Shown::Succeeded => {
            format!(
                "{} {label}  {}{attempt}{took}{}{note}",
                style("✔").green(),
                style("succeeded").green(),
                style(detail).dim()
            )
        }
        Shown::Failed => format!(
            "{} {label}  {}{attempt}{took}{}{note}",
            style("✘").red().bold(),
            style("failed").red().bold(),
            style(detail).red()
        ),
        Shown::Skipped => format!("{} {}", style("↷").dim(), style(format!("{label}  skipped{detail}")).dim()),
        Shown::Stopped => format!("{} {label}  {}{attempt}{detail}", style("■").yellow(), style("stopped").yellow()),
    }
}

/// The first line of a message, for a one-line view.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    if text.lines().nth(1).is_some() { format!("{first} …") } else { first.to_owned() }
}

/// A run with the child runs its `workflow` steps started, recursively: what `status` and the final line show.
pub struct RunTree {
    pub state: RunState,
    /// The status users see (a run nobody executes is `interrupted`, not `running`).
    pub status: RunStatus,
    /// Child runs by the step that started them.
    pub children: Vec<(StepId, RunTree)>,
}

impl RunTree {
    /// A run alone, without its child runs.
    pub fn single(state: RunState, status: RunStatus) -> RunTree {
        RunTree { state, status, children: Vec::new() }
    }

    fn child(&self, step: &StepId) -> Option<&RunTree> {
        self.children.iter().find(|(s, _)| s == step).map(|(_, tree)| tree)
    }

    /// Failed steps that fail the run (not `continue_on_error`), in workflow order.
    fn failed_steps(&self) -> Vec<&StepId> {
        self.state
            .workflow
            .steps
            .iter()
            .zip(&self.state.steps)
            .filter(|(spec, s)| s.phase == StepPhase::Failed && !spec.continue_on_error)
            .map(|(spec, _)| &spec.id)
            .collect()
    }

    /// The first failed step whose output tells why: a failed `workflow` step leads into its child run.
    fn first_failure(&self) -> Option<(RunId, &StepId)> {
        let step = self.failed_steps().into_iter().next()?;
        match self.child(step).and_then(RunTree::first_failure) {
            Some(deeper) => Some(deeper),
            None => Some((self.state.run_id, step)),
        }
    }
}

/// The last line after a run: the outcome and the command to type next.
pub fn final_line(term: &Term, tree: &RunTree) {
    let state = &tree.state;
    let run = state.run_id;
    let took = state.finished_at.map(|end| format!(" in {}", elapsed(state.started_at, end))).unwrap_or_default();
    match tree.status {
        RunStatus::Succeeded => term.out(format!("run {run} succeeded{took}")),
        RunStatus::Failed => {
            let failed = tree.failed_steps();
            let names = failed.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
            let logs = match tree.first_failure() {
                Some((log_run, step)) => format!("see `runbook logs {log_run} {step}`, then "),
                None => String::new(),
            };
            let what = if names.is_empty() {
                state.reason.clone().unwrap_or_else(|| "see `runbook status`".to_owned())
            } else {
                format!("{names} failed")
            };
            term.out(format!("run {run} failed{took}: {what}; {logs}`runbook resume {run}` to retry"));
        }
        RunStatus::Cancelled => term.out(format!("run {run} cancelled")),
        RunStatus::Interrupted | RunStatus::Running => {
            term.out(format!("run {run} interrupted; `runbook resume {run}` goes on where it stopped"));
        }
        RunStatus::NeedsAttention => term.out(format!(
            "run {run} needs attention: {}",
            state.reason.clone().unwrap_or_else(|| format!("see `runbook status {run}`"))
        )),
    }
}

/// `runbook status RUN`: a table of steps, child runs indented under the step that started them, and what to do next.
pub fn status_table(term: &Term, tree: &RunTree) {
    let state = &tree.state;
    let run = state.run_id;
    let took = match state.finished_at {
        Some(end) => format!(", took {}", elapsed(state.started_at, end)),
        None => String::new(),
    };
    term.out(format!(
        "run {run}  {}  {}  started {}{took}",
        state.workflow.name,
        tree.status.as_str(),
        state.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
    ));
    if let Some(reason) = &state.reason {
        term.out(format!("  {}", one_line(reason)));
    }
    let width = label_width(tree, 0).max(4);
    term.out(format!(
        "  {:<width$}  {:<9}  {:>8}  {:<8}  {:>8}  ERROR",
        "STEP", "STATUS", "ATTEMPTS", "STARTED", "DURATION"
    ));
    step_rows(term, tree, 0, width);
    if let Some(hint) = next_command(tree) {
        term.out(hint);
    }
}

/// The widest step label (indentation included) of a tree.
fn label_width(tree: &RunTree, depth: usize) -> usize {
    let own = tree.state.workflow.steps.iter().map(|s| 2 * depth + s.id.as_str().len()).max().unwrap_or(0);
    tree.children.iter().map(|(_, child)| label_width(child, depth + 1)).fold(own, usize::max)
}

fn step_rows(term: &Term, tree: &RunTree, depth: usize, width: usize) {
    let state = &tree.state;
    for (spec, s) in state.workflow.steps.iter().zip(&state.steps) {
        let started = s.started_at.map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_else(|| "-".to_owned());
        let duration = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) if s.phase != StepPhase::Running => elapsed(a, b),
            _ => "-".to_owned(),
        };
        let mut error = s.error.as_deref().map(one_line).unwrap_or_default().chars().take(120).collect::<String>();
        if s.phase == StepPhase::Skipped {
            error = s.skip_reason.as_deref().map(one_line).unwrap_or_default();
        }
        let label = format!("{}{}", "  ".repeat(depth), spec.id);
        term.out(format!(
            "  {label:<width$}  {:<9}  {:>8}  {:<8}  {:>8}  {error}",
            s.phase.status(),
            s.attempt.0,
            started,
            duration
        ));
        if let Some(child) = tree.child(&spec.id) {
            let indent = "  ".repeat(depth + 1);
            term.out(format!(
                "  {indent}↳ run {}: {}, {}",
                child.state.run_id,
                child.state.workflow.name,
                child.status.as_str()
            ));
            step_rows(term, child, depth + 1, width);
        }
    }
}

/// What to type next for a run that did not succeed.
fn next_command(tree: &RunTree) -> Option<String> {
    let run = tree.state.run_id;
    match tree.status {
        RunStatus::Failed => Some(match tree.first_failure() {
            Some((log_run, step)) => {
                format!("next: `runbook logs {log_run} {step}` shows its output; `runbook resume {run}` retries")
            }
            None => format!("next: `runbook resume {run}` retries"),
        }),
        RunStatus::Interrupted => Some(format!("next: `runbook resume {run}` goes on where it stopped")),
        RunStatus::NeedsAttention => {
            let unfinished: Vec<&StepId> = tree
                .state
                .workflow
                .steps
                .iter()
                .zip(&tree.state.steps)
                .filter(|(_, s)| matches!(s.phase, StepPhase::Orphan | StepPhase::Running))
                .map(|(spec, _)| &spec.id)
                .collect();
            let step = unfinished.first().map_or_else(|| "STEP".to_owned(), |s| s.to_string());
            Some(format!(
                "next: `runbook resume {run} --rerun {step}` runs it again, `runbook resume {run} --skip {step}` goes on without it"
            ))
        }
        RunStatus::Running | RunStatus::Succeeded | RunStatus::Cancelled => None,
    }
}

/// `runbook runs`: one line per run.
pub fn runs_table(term: &Term, runs: &[RunSummary]) {
    if runs.is_empty() {
        term.out("no runs yet; start one with `runbook run WORKFLOW`");
        return;
    }
    let width = runs.iter().map(|r| r.workflow.len()).max().unwrap_or(8).max(8);
    term.out(format!("{:>6}  {:<width$}  {:<15}  {:<20}  FINISHED", "RUN", "WORKFLOW", "STATUS", "STARTED"));
    for run in runs {
        term.out(format!(
            "{:>6}  {:<width$}  {:<15}  {:<20}  {}",
            run.run_id,
            run.workflow,
            run.status.as_str(),
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.finished_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".to_owned())
        ));
    }
}

/// Seconds, minutes or hours between two instants, for people.
fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = u64::try_from((to - from).num_milliseconds()).unwrap_or(0);
    runbook_engine::duration::format_elapsed_ms(ms)
}
