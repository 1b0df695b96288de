//! What a bundle reports: the run and its child runs as the log records them,
//! SUMMARY.md (facts only: nothing that was not recorded or given), and the
//! raw events as JSON lines.

use chrono::{DateTime, SecondsFormat, Utc};
use runbook_engine::artifact::ArtifactRef;
use runbook_engine::duration::format_elapsed_ms;
use runbook_engine::event::{Event, EventKind, Outputs};
use runbook_engine::ids::{RunId, Seq, StepId};
use runbook_engine::state::RunState;
use runbook_engine::step::RunHistory;
use std::fmt::Write as _;

use super::config::{BundleConfig, StepRef};
use super::redact::{Counts, Redactor};

/// One run of the tree, folded.
pub struct RunRecord {
    pub run_id: RunId,
    pub state: RunState,
    pub events: Vec<(Seq, Event)>,
    /// The step of the parent run that started this one.
    pub parent_step: Option<StepId>,
    pub depth: usize,
    /// Child runs, with the step that started each, in workflow order.
    pub children: Vec<(StepId, RunId)>,
}

/// A run and all its descendants, parents before children.
pub struct RunTree {
    pub root: RunId,
    pub runs: Vec<RunRecord>,
}

/// The last recorded result of a step: what it produced and kept.
pub struct StepResultRef<'a> {
    pub run: &'a RunRecord,
    pub attempt: u32,
    pub outputs: &'a Outputs,
    pub artifacts: &'a [ArtifactRef],
}

impl RunTree {
    /// Reads a run and every child run, depth first.
    pub fn load(history: &dyn RunHistory, root: RunId) -> Result<RunTree, String> {
        let mut runs = Vec::new();
        let mut stack = vec![(root, None, 0usize)];
        while let Some((run_id, parent_step, depth)) = stack.pop() {
            if runs.iter().any(|r: &RunRecord| r.run_id == run_id) || depth > 32 {
                continue;
            }
            let events = history.events(run_id)?;
            let state = fold(run_id, &events)?;
            let mut children = history.children(run_id)?;
            // Workflow order, so the timeline reads as the graph does.
            children.sort_by_key(|(step, _)| state.workflow.step_index(step).unwrap_or(usize::MAX));
            for (step, child) in children.iter().rev() {
                stack.push((*child, Some(step.clone()), depth + 1));
            }
            runs.push(RunRecord { run_id, state, events, parent_step, depth, children });
        }
        Ok(RunTree { root, runs })
    }

    pub fn get(&self, run: RunId) -> Option<&RunRecord> {
        self.runs.iter().find(|r| r.run_id == run)
    }

    pub fn root_record(&self) -> Option<&RunRecord> {
        self.get(self.root)
    }

    /// The last recorded result of a step anywhere in the tree (the latest when several runs have it).
    pub fn last_result(&self, step: &StepRef) -> Option<StepResultRef<'_>> {
        let mut best: Option<(DateTime<Utc>, StepResultRef<'_>)> = None;
        for run in &self.runs {
            if step.workflow.as_ref().is_some_and(|w| *w != run.state.workflow.name) {
                continue;
            }
            for (_, event) in &run.events {
                let (id, attempt, outputs, artifacts) = match &event.kind {
                    EventKind::StepSucceeded { step, attempt, outputs, artifacts, .. }
                    | EventKind::StepFailed { step, attempt, outputs, artifacts, .. }
                    | EventKind::StepPolled { step, attempt, outputs, artifacts, .. } => {
                        (step, attempt, outputs, artifacts)
                    }
                    _ => continue,
                };
                if *id != step.step {
                    continue;
                }
                if best.as_ref().is_none_or(|(at, _)| event.at >= *at) {
                    best = Some((event.at, StepResultRef { run, attempt: attempt.0, outputs, artifacts }));
                }
            }
        }
        best.map(|(_, result)| result)
    }

    /// A step's state in the first run (in tree order) that has it.
    fn step_state(&self, step: &StepRef) -> Option<(&RunRecord, &runbook_engine::state::StepState)> {
        self.runs
            .iter()
            .filter(|run| step.workflow.as_ref().is_none_or(|w| *w == run.state.workflow.name))
            .find_map(|run| run.state.step(&step.step).map(|s| (run, s)))
    }

    /// The declared secret names of every run.
    pub fn secret_names(&self) -> Vec<(String, String)> {
        let mut names = Vec::new();
        for run in &self.runs {
            for name in &run.state.workflow.secrets {
                if !names.iter().any(|(n, _): &(String, String)| n == name) {
                    names.push((name.clone(), run.state.workflow.name.clone()));
                }
            }
        }
        names
    }
}

fn fold(run_id: RunId, events: &[(Seq, Event)]) -> Result<RunState, String> {
    let Some((_, first)) = events.first() else {
        return Err(format!("run {run_id} has no events"));
    };
    let mut state = RunState::start(run_id, first).map_err(|e| format!("run {run_id}: {e}"))?;
    for (seq, event) in &events[1..] {
        state.apply(event).map_err(|e| format!("run {run_id} event {seq}: {e}"))?;
    }
    Ok(state)
}

/// Times as support reads them: UTC, to the second, with `Z`.
pub fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A time given in the configuration, in UTC when it parses as one.
pub fn since_text(since: &str) -> String {
    match DateTime::parse_from_rfc3339(since.trim()) {
        Ok(at) => utc(at.with_timezone(&Utc)),
        Err(_) => since.trim().to_owned(),
    }
}

/// One line of text: newlines folded, for list items and table cells.
fn one_line(text: &str) -> String {
    text.split('\n').map(str::trim_end).filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" / ")
}

fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// A remediation's outcome as the log records it.
pub struct RemediationOutcome {
    pub name: String,
    pub step: String,
    pub run: Option<RunId>,
    pub outcome: String,
    pub changed: String,
    pub rolled_back: String,
}

/// Each configured remediation with the outcome its step recorded.
pub fn remediation_outcomes(config: &BundleConfig, tree: &RunTree) -> Vec<RemediationOutcome> {
    config
        .remediations
        .iter()
        .map(|remediation| {
            let found = tree.step_state(&remediation.step);
            let outcome = match found {
                Some((_, state)) => {
                    let mut text = state.phase.status().to_owned();
                    if let Some(error) = &state.error {
                        text.push_str(&format!(": {}", one_line(error)));
                    }
                    if let Some(reason) = &state.skip_reason {
                        text.push_str(&format!(": {}", one_line(reason)));
                    }
                    text
                }
                None => "not run (no such step in the run or its child runs)".to_owned(),
            };
            RemediationOutcome {
                name: remediation.name.clone().unwrap_or_else(|| remediation.step.to_string()),
                step: remediation.step.to_string(),
                run: found.map(|(run, _)| run.run_id),
                outcome,
                changed: remediation.changed.clone().unwrap_or_else(|| "not stated".to_owned()),
                rolled_back: remediation.rolled_back.clone().unwrap_or_else(|| "not stated".to_owned()),
            }
        })
        .collect()
}

/// What the summary says of the bundle's own files.
pub struct FilesNote<'a> {
    pub name: &'a str,
    pub created_at: DateTime<Utc>,
    pub version: &'a str,
    pub files: usize,
    pub redactions: u64,
    /// Bundle path, size, where it is on the operator's machine.
    pub left_out: &'a [(String, u64, String)],
    /// Bundle path and why it is missing.
    pub missing: &'a [(String, String)],
}

/// SUMMARY.md.
pub fn summary_markdown(config: &BundleConfig, tree: &RunTree, note: &FilesNote<'_>) -> String {
    let mut md = String::new();
    let root = tree.root_record();
    let _ = writeln!(md, "# {}\n", one_line(&config.title));
    if let Some(root) = root {
        let _ = writeln!(
            md,
            "Escalation bundle `{}`, written {} by runbook {} from run {} (workflow `{}`, {}) and its {} child run(s).\n",
            note.name,
            utc(note.created_at),
            note.version,
            root.run_id,
            root.state.workflow.name,
            root.state.status.as_str(),
            tree.runs.len().saturating_sub(1),
        );
    }
    let _ = writeln!(
        md,
        "All times are UTC. Everything below was recorded by the runs or given by the operator; nothing is estimated.\n"
    );

    let _ = writeln!(md, "## Issue summary\n");
    let summary = &config.summary;
    let _ = writeln!(md, "- **Symptom:** {}", summary.symptom.as_deref().map_or("not given".to_owned(), one_line));
    let _ = writeln!(md, "- **Impact:** {}", summary.impact.as_deref().map_or("not given".to_owned(), one_line));
    let _ = writeln!(md, "- **Since:** {}", summary.since.as_deref().map_or("not given".to_owned(), since_text));
    md.push('\n');

    let _ = writeln!(md, "## Environment\n");
    if config.facts.is_empty() {
        let _ = writeln!(md, "No facts were given.\n");
    } else {
        let _ = writeln!(md, "| | |\n|---|---|");
        for (label, value) in &config.facts {
            let _ = writeln!(md, "| {} | {} |", cell(label), cell(value));
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Confirmed healthy\n");
    if config.healthy.is_empty() {
        let _ = writeln!(md, "Nothing was stated.\n");
    } else {
        for item in &config.healthy {
            let _ = writeln!(md, "- {}", one_line(item));
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Remediations tried\n");
    let outcomes = remediation_outcomes(config, tree);
    if outcomes.is_empty() {
        let _ = writeln!(md, "None were listed; the timeline shows every step.\n");
    } else {
        let _ = writeln!(md, "| Remediation | Step | Outcome | What it changed | Rolled back |\n|---|---|---|---|---|");
        for o in &outcomes {
            let step = match o.run {
                Some(run) => format!("`{}` (run {run})", o.step),
                None => format!("`{}`", o.step),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                cell(&o.name),
                step,
                cell(&o.outcome),
                cell(&o.changed),
                cell(&o.rolled_back)
            );
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Question for support\n");
    let _ = writeln!(md, "{}\n", config.question.as_deref().map_or("Not given.".to_owned(), |q| q.trim().to_owned()));

    let _ = writeln!(md, "## Timeline\n");
    let _ = writeln!(
        md,
        "Every step attempt of the run and its child runs: start → end (duration), outcome, exit code, error.\n"
    );
    if let Some(root) = root {
        timeline(tree, root, 0, &mut md);
    }
    md.push('\n');

    if let Some(root) = root {
        let _ = writeln!(md, "## Steps of run {}\n", root.run_id);
        let _ = writeln!(
            md,
            "```mermaid\n{}```\n",
            runbook_engine::graph::mermaid(&root.state.workflow, Some(&root.state.steps))
        );
    }

    let _ = writeln!(md, "## This bundle\n");
    let _ = writeln!(
        md,
        "- {} file(s); manifest.json lists each with its size, its sha256 and the redactions it received ({} in the files under `diagnostics/`).",
        note.files, note.redactions
    );
    let _ = writeln!(
        md,
        "- `diagnostics/`: each step's captured output, named files, `captures/` and `events.jsonl` (the raw events)."
    );
    for (path, size, source) in note.left_out {
        let _ = writeln!(
            md,
            "- Left out (over the size cap): `{path}`, {size} bytes, on the operator's machine at `{source}`."
        );
    }
    for (path, reason) in note.missing {
        let _ = writeln!(md, "- Missing: `{path}`: {}.", one_line(reason));
    }
    md
}

/// The nested timeline of a run: its events in order, child runs under the step that started them.
fn timeline(tree: &RunTree, run: &RunRecord, indent: usize, md: &mut String) {
    let pad = "  ".repeat(indent);
    let started_by = match (&run.parent_step, &run.state.parent) {
        (Some(step), Some(parent)) => format!(", started by step `{step}` of run {}", parent.run_id),
        _ => String::new(),
    };
    let _ = writeln!(
        md,
        "{pad}- **Run {} `{}`**{started_by}: {}, {} → {}",
        run.run_id,
        run.state.workflow.name,
        run.state.status.as_str(),
        utc(run.state.started_at),
        run.state.finished_at.map_or("not finished".to_owned(), utc),
    );
    let pad = "  ".repeat(indent + 1);
    let mut starts: Vec<(StepId, u32, DateTime<Utc>)> = Vec::new();
    let mut last_line_of_step: Vec<(StepId, usize)> = Vec::new();
    let mut lines: Vec<(Option<StepId>, String)> = Vec::new();
    for (_, event) in &run.events {
        let at = event.at;
        let line = match &event.kind {
            EventKind::RunStarted(_) => continue,
            EventKind::StepStarted { step, attempt } => {
                starts.push((step.clone(), attempt.0, at));
                lines.push((
                    Some(step.clone()),
                    format!("`{step}` attempt {attempt}: started {} and recorded no result", utc(at)),
                ));
                last_line_of_step.push((step.clone(), lines.len() - 1));
                continue;
            }
            EventKind::StepSucceeded { step, attempt, exit_code, duration_ms, .. } => {
                let mut text = attempt_line(step, attempt.0, &starts, at, *duration_ms, "succeeded");
                if let Some(code) = exit_code {
                    text.push_str(&format!(", exit {code}"));
                }
                replace_started(&mut lines, &last_line_of_step, step, text);
                continue;
            }
            EventKind::StepFailed { step, attempt, error, retry_at, exit_code, duration_ms, .. } => {
                let outcome = match retry_at {
                    Some(retry) => format!("failed (retry due {})", utc(*retry)),
                    None => "failed".to_owned(),
                };
                let mut text = if attempt.0 == 0 {
                    format!("`{step}`: could not start, {}", utc(at))
                } else {
                    attempt_line(step, attempt.0, &starts, at, *duration_ms, &outcome)
                };
                if let Some(code) = exit_code {
                    text.push_str(&format!(", exit {code}"));
                }
                text.push_str(&format!(": {}", one_line(error)));
                if attempt.0 == 0 {
                    lines.push((Some(step.clone()), text));
                } else {
                    replace_started(&mut lines, &last_line_of_step, step, text);
                }
                continue;
            }
            EventKind::StepPolled { step, attempt, next_at, duration_ms, .. } => {
                let outcome = format!("condition not met yet (next poll {})", utc(*next_at));
                let text = attempt_line(step, attempt.0, &starts, at, *duration_ms, &outcome);
                replace_started(&mut lines, &last_line_of_step, step, text);
                continue;
            }
            EventKind::StepSkipped { step, reason } => {
                lines.push((Some(step.clone()), format!("`{step}`: skipped {}: {}", utc(at), one_line(reason))));
                continue;
            }
            EventKind::StepApproved { step, by, comment } => {
                let comment = comment.as_deref().map(|c| format!(": {}", one_line(c))).unwrap_or_default();
                format!("{}: `{step}` approved by {by}{comment}", utc(at))
            }
            EventKind::StepCheckStarted { step, attempt } => {
                format!("{}: `{step}` attempt {attempt} had no result after a crash; its check ran", utc(at))
            }
            EventKind::StepChecked { step, done, error, .. } => match (error, done) {
                (Some(error), _) => format!("{}: the check of `{step}` failed: {}", utc(at), one_line(error)),
                (None, true) => format!("{}: the check of `{step}` found its effect: recorded as succeeded", utc(at)),
                (None, false) => format!("{}: the check of `{step}` found no effect: the step runs again", utc(at)),
            },
            EventKind::StepRejected { step, by, comment } => {
                let comment = comment.as_deref().map(|c| format!(": {}", one_line(c))).unwrap_or_default();
                format!("{}: `{step}` rejected by {by}{comment}", utc(at))
            }
            EventKind::RunSucceeded { .. } => format!("{}: run succeeded", utc(at)),
            EventKind::RunFailed { failed_steps, error, .. } => {
                let mut text = format!("{}: run failed", utc(at));
                if !failed_steps.is_empty() {
                    let steps: Vec<String> = failed_steps.iter().map(|s| format!("`{s}`")).collect();
                    text.push_str(&format!(" (failed: {})", steps.join(", ")));
                }
                if let Some(error) = error {
                    text.push_str(&format!(": {}", one_line(error)));
                }
                text
            }
            EventKind::RunResumed { rerun, skip } => {
                let mut text = format!("{}: run resumed", utc(at));
                if !rerun.is_empty() {
                    text.push_str(&format!(", rerun {}", join_steps(rerun)));
                }
                if !skip.is_empty() {
                    text.push_str(&format!(", skip {}", join_steps(skip)));
                }
                text
            }
            EventKind::RunInterrupted { reason, .. } => format!("{}: run interrupted: {}", utc(at), one_line(reason)),
            EventKind::RunNeedsAttention { reason, .. } => {
                format!("{}: run needs attention: {}", utc(at), one_line(reason))
            }
            EventKind::RunCancelled { reason } => format!("{}: run cancelled: {}", utc(at), one_line(reason)),
            EventKind::BundleCreated { archive, .. } => format!("{}: bundle written: `{archive}`", utc(at)),
            EventKind::EmailSent { message_id, to, .. } => {
                format!("{}: bundle emailed to {} as {message_id}", utc(at), to.join(", "))
            }
            EventKind::EmailFailed { error, .. } => format!("{}: email failed: {}", utc(at), one_line(error)),
            EventKind::SupportTicketCreated { ticket, dry_run, .. } => {
                if *dry_run {
                    format!("{}: support ticket `{ticket}` prepared (dry run, not created)", utc(at))
                } else {
                    format!("{}: support ticket {ticket} created", utc(at))
                }
            }
            EventKind::RunAcknowledged { by, .. } => format!("{}: acknowledged by {by}", utc(at)),
        };
        lines.push((None, line));
    }
    // Child runs go under the last line of the step that started them.
    let mut children_after: Vec<(usize, RunId)> = Vec::new();
    for (step, child) in &run.children {
        let line = lines.iter().rposition(|(s, _)| s.as_ref() == Some(step)).unwrap_or(lines.len().saturating_sub(1));
        children_after.push((line, *child));
    }
    for (i, (_, text)) in lines.iter().enumerate() {
        let _ = writeln!(md, "{pad}- {text}");
        for (_, child) in children_after.iter().filter(|(line, _)| *line == i) {
            if let Some(record) = tree.get(*child) {
                timeline(tree, record, indent + 2, md);
            }
        }
    }
    if lines.is_empty() {
        for (_, child) in &children_after {
            if let Some(record) = tree.get(*child) {
                timeline(tree, record, indent + 1, md);
            }
        }
    }
}

fn join_steps(steps: &[StepId]) -> String {
    steps.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

fn attempt_line(
    step: &StepId,
    attempt: u32,
    starts: &[(StepId, u32, DateTime<Utc>)],
    end: DateTime<Utc>,
    duration_ms: u64,
    outcome: &str,
) -> String {
    let start = starts.iter().rev().find(|(s, a, _)| s == step && *a == attempt).map(|(_, _, at)| *at);
    let span = match start {
        Some(start) => format!("{} → {}", utc(start), utc(end)),
        None => format!("→ {}", utc(end)),
    };
    format!("`{step}` attempt {attempt}: {outcome}, {span} ({})", format_elapsed_ms(duration_ms))
}

fn replace_started(lines: &mut [(Option<StepId>, String)], last: &[(StepId, usize)], step: &StepId, text: String) {
    match last.iter().rev().find(|(s, _)| s == step) {
        Some((_, i)) => lines[*i].1 = text,
        None => {
            if let Some(line) = lines.last_mut() {
                line.1.push_str(&format!("; {text}"));
            }
        }
    }
}

/// The raw events of every run of the tree, one JSON object per line with
/// `run_id` and `seq`, each string redacted (counted in `counts`).
pub fn events_jsonl(tree: &RunTree, redactor: &Redactor, counts: &mut Counts) -> Vec<u8> {
    let mut out = Vec::new();
    for run in &tree.runs {
        for (seq, event) in &run.events {
            let mut object = serde_json::Map::new();
            object.insert("run_id".to_owned(), serde_json::Value::from(run.run_id.get()));
            object.insert("seq".to_owned(), serde_json::Value::from(seq.0));
            if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) {
                for (key, value) in fields {
                    object.entry(key).or_insert(value);
                }
            }
            let object = redactor.redact_json(&serde_json::Value::Object(object), counts);
            if let Ok(line) = serde_json::to_vec(&object) {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_for_people() {
        assert_eq!(format_elapsed_ms(850), "850ms");
        assert_eq!(format_elapsed_ms(3_210), "3.2s");
        assert_eq!(format_elapsed_ms(245_000), "4m05s");
        assert_eq!(since_text("2026-01-26T09:30:00+01:00"), "2026-01-26T08:30:00Z");
        assert_eq!(since_text("yesterday morning"), "yesterday morning");
        assert_eq!(one_line("a\n\n b \nc"), "a /  b / c");
        assert_eq!(cell("a|b"), "a\\|b");
    }
}
