//! Integrity and retention of a store: `verify` checks every record, every run's fold and the
//! projections built from them; `prune` removes old finished runs whole.
//!
//! `verify` reads everything and writes nothing. It reports, one [`Problem`] each:
//! - a record whose checksum does not match, a gap in a stream's seqs, a stream whose
//!   head disagrees with its records (the storage crate's `Corrupt`);
//! - an event that does not decode, or does not fold onto the run's state;
//! - a run index entry (kv `runs`) that `runbook runs` trusts (a finished run) but that
//!   differs from a fresh fold; one it does not trust (missing, or unfinished) is
//!   repaired by `runs` and is not a problem;
//! - a child link (kv `children`) that does not decode, names a parent step that is not
//!   a `workflow` step, or names a child run whose `run_started` names another parent;
//! - an artifact an event names that is missing or whose size or sha256 differ.
//!
//! `prune` removes trees of runs (a top-level run and its child runs, recursively) that
//! ended before a cutoff. Deletion order makes a crash mid-way harmless: for each run,
//! children first, its child links, then its index entry, then its events (the run is
//! gone for every reader at this point), then its artifacts; leftovers of an interrupted
//! prune (artifact directories and index entries of runs without events, links from
//! runs without events) are swept by the next prune.

use chrono::{DateTime, Utc};
use runbook_storage::{EventLog, KvState, StorageError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::event::{self, EventKind};
use crate::ids::{RunId, StepId};
use crate::journal::{CHILDREN_NAMESPACE, Journal, RUNS_NAMESPACE, RunSummary};
use crate::state::{RunState, RunStatus};
use crate::step::Registry;

/// Problems reported per run before the rest are summarised in one line.
const MAX_PROBLEMS_PER_RUN: usize = 20;

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The run it is about, when it is about one.
    pub run: Option<RunId>,
    /// The event it is about, when it is about one.
    pub seq: Option<u64>,
    /// What is wrong, lowercase, naming the object.
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.run, self.seq) {
            (Some(run), Some(seq)) => write!(f, "run {run} seq {seq}: {}", self.problem),
            (Some(run), None) => write!(f, "run {run}: {}", self.problem),
            (None, _) => f.write_str(&self.problem),
        }
    }
}

/// What `verify` looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Runs (event streams) checked.
    pub runs: u64,
    /// Records read and checked.
    pub events: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// The one-line summary: `3 runs, 42 events checked, no problems`.
    pub fn summary(&self) -> String {
        let problems = match self.problems.len() {
            0 => "no problems".to_owned(),
            n => plural(n as u64, "problem"),
        };
        format!("{}, {} checked, {problems}", plural(self.runs, "run"), plural(self.events, "event"))
    }
}

/// Checks every run of the store, or only `only` (and the child links to and from it).
/// `registry` says which step kinds start child runs.
pub fn verify(journal: &Journal, registry: &Registry, only: Option<RunId>) -> Result<VerifyReport> {
    let store = journal.store();
    let streams: BTreeSet<u64> = store.streams()?.into_iter().collect();
    let runs: Vec<RunId> = match only {
        Some(run) if streams.contains(&run.get()) => vec![run],
        Some(run) => return Err(EngineError::UnknownRun(run)),
        None => streams.iter().filter_map(|&stream| RunId::new(stream)).collect(),
    };
    let mut report = VerifyReport::default();
    let mut folded = BTreeMap::new();
    for run in runs {
        report.runs += 1;
        let mut problems = Vec::new();
        let (events, state) = check_run(journal, run, &mut problems)?;
        report.events += events;
        if let Some(state) = state {
            check_index(journal, &state, &mut problems)?;
            if let Some(parent) = &state.parent
                && !streams.contains(&parent.run_id.get())
            {
                problems.push(problem(run, None, format!("its parent run {} is not in the store", parent.run_id)));
            }
            folded.insert(run, state);
        }
        if problems.len() > MAX_PROBLEMS_PER_RUN {
            let more = problems.len() - MAX_PROBLEMS_PER_RUN;
            problems.truncate(MAX_PROBLEMS_PER_RUN);
            problems.push(problem(run, None, format!("{more} more problems not listed")));
        }
        report.problems.extend(problems);
    }
    check_children(journal, registry, only, &streams, &folded, &mut report.problems)?;
    Ok(report)
}

/// `1 run`, `2 runs`.
pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

fn problem(run: RunId, seq: Option<u64>, text: impl Into<String>) -> Problem {
    Problem { run: Some(run), seq, problem: text.into() }
}

/// Reads a run's records (all of them, past any corrupt one), decodes and folds them, and
/// checks the artifacts they name. Returns the records read and the state, if it folded.
fn check_run(journal: &Journal, run: RunId, problems: &mut Vec<Problem>) -> Result<(u64, Option<RunState>)> {
    let store = journal.store();
    // A run executing meanwhile appends: its head may move on while its records are read.
    let head = store.next_seq(run.get())?.saturating_sub(1);
    let mut read = 0u64;
    let mut last_seq = 0u64;
    let mut state: Option<RunState> = None;
    // The fold stops at the first record it cannot use; the checksums are still checked.
    let mut folding = true;
    let mut from = 1u64;
    'records: loop {
        for item in store.read(run.get(), from) {
            match item {
                Ok((seq, bytes)) => {
                    read += 1;
                    last_seq = seq;
                    if !folding {
                        continue;
                    }
                    match event::decode(&bytes) {
                        Err(error) => {
                            problems.push(problem(run, Some(seq), format!("event cannot be decoded: {error}")));
                            folding = false;
                        }
                        Ok(event) => {
                            let applied = match &mut state {
                                None if seq == 1 => RunState::start(run, &event).map(|s| state = Some(s)),
                                None => Ok(()),
                                Some(state) => state.apply(&event),
                            };
                            match applied {
                                Ok(()) => check_artifacts(journal, run, seq, &event.kind, problems),
                                Err(error) => {
                                    problems.push(problem(
                                        run,
                                        Some(seq),
                                        format!("event `{}` does not fold: {error}", event.kind.type_name()),
                                    ));
                                    folding = false;
                                }
                            }
                        }
                    }
                }
                Err(StorageError::Corrupt { seq, reason, .. }) => {
                    // Checked, and found wanting.
                    read += 1;
                    problems.push(problem(run, Some(seq), format!("corrupt record: {reason}")));
                    folding = false;
                    last_seq = last_seq.max(seq);
                    if problems.len() > MAX_PROBLEMS_PER_RUN {
                        // Enough to say the run is damaged; a long gap would repeat this line per seq.
                        return Ok((read, None));
                    }
                    if seq < head {
                        // Reading stops at a corrupt record; go on after it.
                        from = seq + 1;
                        continue 'records;
                    }
                    break 'records;
                }
                Err(error) => {
                    problems.push(problem(run, None, format!("cannot read the run's events: {error}")));
                    return Ok((read, None));
                }
            }
        }
        break;
    }
    let head_after = store.next_seq(run.get())?.saturating_sub(1);
    if last_seq < head {
        problems.push(problem(
            run,
            Some(last_seq + 1),
            format!("the stream's head is seq {head}, but its records end at seq {last_seq}"),
        ));
    } else if last_seq > head_after {
        problems.push(problem(
            run,
            Some(head_after + 1),
            format!("records go on to seq {last_seq} beyond the stream's head seq {head_after}"),
        ));
    }
    Ok((read, if folding { state } else { None }))
}

/// Checks the files an event names against their recorded size and sha256.
fn check_artifacts(journal: &Journal, run: RunId, seq: u64, kind: &EventKind, problems: &mut Vec<Problem>) {
    let artifacts = match kind {
        EventKind::StepSucceeded { artifacts, .. }
        | EventKind::StepFailed { artifacts, .. }
        | EventKind::StepPolled { artifacts, .. } => artifacts,
        _ => return,
    };
    for artifact in artifacts {
        let path = journal.store().path().join(&artifact.path);
        match std::fs::read(&path) {
            Err(error) => {
                problems.push(problem(run, Some(seq), format!("artifact {} cannot be read: {error}", path.display())))
            }
            Ok(bytes) if bytes.len() as u64 != artifact.size => problems.push(problem(
                run,
                Some(seq),
                format!("artifact {} is {} bytes, the event says {}", path.display(), bytes.len(), artifact.size),
            )),
            Ok(bytes) => {
                let digest = hex::encode(Sha256::digest(&bytes));
                if digest != artifact.sha256 {
                    problems.push(problem(
                        run,
                        Some(seq),
                        format!("artifact {} does not match the sha256 the event records", path.display()),
                    ));
                }
            }
        }
    }
}

/// Compares the run index entry with a fresh fold, where `runbook runs` trusts the entry.
fn check_index(journal: &Journal, state: &RunState, problems: &mut Vec<Problem>) -> Result<()> {
    let run = state.run_id;
    let Some(bytes) = journal.store().kv_get(RUNS_NAMESPACE, &run.get().to_be_bytes())? else {
        // Not indexed yet, or the write was lost in a crash: `runs` repairs it.
        return Ok(());
    };
    let indexed: RunSummary = match serde_json::from_slice(&bytes) {
        Ok(indexed) => indexed,
        Err(error) => {
            problems.push(problem(run, None, format!("run index entry cannot be decoded: {error}")));
            return Ok(());
        }
    };
    if !indexed.status.is_finished() {
        // `runs` checks unfinished entries against the events every time.
        return Ok(());
    }
    let fresh = RunSummary::of(state);
    let mut differences = Vec::new();
    if indexed.run_id != fresh.run_id {
        differences.push(format!("run id {} (the events: {})", indexed.run_id, fresh.run_id));
    }
    if indexed.workflow != fresh.workflow {
        differences.push(format!("workflow `{}` (the events: `{}`)", indexed.workflow, fresh.workflow));
    }
    if indexed.status != fresh.status {
        differences.push(format!("status {} (the events: {})", indexed.status.as_str(), fresh.status.as_str()));
    }
    if indexed.started_at != fresh.started_at || indexed.finished_at != fresh.finished_at {
        differences.push("start or end time".to_owned());
    }
    if indexed.parent != fresh.parent {
        differences.push("parent run".to_owned());
    }
    if !differences.is_empty() {
        problems.push(problem(
            run,
            None,
            format!("run index entry differs from the events: {}", differences.join(", ")),
        ));
    }
    Ok(())
}

/// A decoded child link: parent run and step, and the child run.
struct ChildLink {
    parent: RunId,
    step: StepId,
    child: RunId,
}

fn decode_link(key: &[u8], value: &[u8]) -> std::result::Result<ChildLink, String> {
    let (parent, step) = key.split_first_chunk::<8>().ok_or_else(|| format!("a key of {} bytes", key.len()))?;
    let parent = RunId::new(u64::from_be_bytes(*parent)).ok_or("a key naming run 0")?;
    let step = StepId::new(&String::from_utf8_lossy(step)).map_err(|e| format!("a key naming run {parent}: {e}"))?;
    let child = <[u8; 8]>::try_from(value)
        .ok()
        .and_then(|bytes| RunId::new(u64::from_be_bytes(bytes)))
        .ok_or_else(|| format!("step `{step}` of run {parent} linked to a value of {} bytes", value.len()))?;
    Ok(ChildLink { parent, step, child })
}

fn check_children(
    journal: &Journal,
    registry: &Registry,
    only: Option<RunId>,
    streams: &BTreeSet<u64>,
    folded: &BTreeMap<RunId, RunState>,
    problems: &mut Vec<Problem>,
) -> Result<()> {
    for (key, value) in journal.store().kv_scan(CHILDREN_NAMESPACE)? {
        let link = match decode_link(&key, &value) {
            Ok(link) => link,
            Err(what) => {
                if only.is_none() {
                    problems.push(Problem { run: None, seq: None, problem: format!("child link with {what}") });
                }
                continue;
            }
        };
        if only.is_some_and(|run| run != link.parent && run != link.child) {
            continue;
        }
        let ChildLink { parent, step, child } = &link;
        // A run started since the listing may already have linked a child: look again.
        if !streams.contains(&parent.get()) && journal.store().next_seq(parent.get())? <= 1 {
            problems.push(problem(
                *parent,
                None,
                format!("a child link from step `{step}` to run {child} remains, but run {parent} is not in the store"),
            ));
            continue;
        }
        if let Some(state) = folded.get(parent) {
            match state.workflow.step(step) {
                Some(spec) if registry.get(&spec.kind).is_some_and(|kind| kind.starts_child_runs()) => {}
                Some(spec) => problems.push(problem(
                    *parent,
                    None,
                    format!("child link from step `{step}`, a `{}` step, to run {child}", spec.kind),
                )),
                None => problems.push(problem(
                    *parent,
                    None,
                    format!("child link from step `{step}`, which the workflow does not have, to run {child}"),
                )),
            }
        }
        // A link is written before its child's `run_started`: a child without events is a
        // start that a crash cut short, which a resume of the parent replaces.
        let child_state = match folded.get(child) {
            Some(state) => Some(state.clone()),
            None if only.is_some() && streams.contains(&child.get()) => journal.load(*child).ok().map(|(s, _)| s),
            None => None,
        };
        if let Some(child_state) = child_state {
            let names = child_state.parent.as_ref().map(|p| (p.run_id, p.step.clone()));
            if names != Some((*parent, step.clone())) {
                let named = match &names {
                    Some((run, step)) => format!("step `{step}` of run {run}"),
                    None => "no parent".to_owned(),
                };
                problems.push(problem(
                    *parent,
                    None,
                    format!("step `{step}` is linked to child run {child}, whose `run_started` names {named}"),
                ));
            }
        }
    }
    Ok(())
}

/// What to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Runs that finished before this instant are pruned.
    pub cutoff: DateTime<Utc>,
    /// Keep failed runs (and trees with a failed run in them).
    pub keep_failed: bool,
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
}

/// A run left in place although its tree's top run is old enough, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub run_id: RunId,
    pub reason: String,
}

/// What `prune` removed (or, on a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// The runs removed, child runs included, ascending.
    pub runs: Vec<RunId>,
    /// Events removed with them.
    pub events: u64,
    /// Bytes of artifact files removed, leftovers included.
    pub artifact_bytes: u64,
    /// Old enough, but kept: a run in the tree is unfinished, unreadable or executing.
    pub kept: Vec<Kept>,
    /// Leftovers of an interrupted prune swept: artifact directories, index entries and
    /// child links of runs without events.
    pub leftovers: u64,
}

/// What prune needs to know of each run.
struct Candidate {
    status: Option<RunStatus>,
    finished_at: Option<DateTime<Utc>>,
    parent: Option<RunId>,
    events: u64,
    unreadable: Option<String>,
}

/// Removes whole trees of finished runs that ended before `options.cutoff`.
///
/// Never removes a run that is running, interrupted or needs attention, one that cannot be
/// read, one `is_executing` says is executing, nor any run of a tree holding such a run:
/// a tree (a top-level run and its child runs) goes whole or not at all.
pub fn prune(journal: &Journal, options: &PruneOptions, is_executing: &dyn Fn(RunId) -> bool) -> Result<PruneReport> {
    let store = journal.store();
    let mut candidates: BTreeMap<RunId, Candidate> = BTreeMap::new();
    for stream in store.streams()? {
        let Some(run) = RunId::new(stream) else { continue };
        let candidate = match journal.load(run) {
            Ok((state, _)) => Candidate {
                status: Some(state.status),
                finished_at: state.finished_at,
                parent: state.parent.as_ref().map(|p| p.run_id),
                events: state.events,
                unreadable: None,
            },
            Err(error) => Candidate {
                status: None,
                finished_at: None,
                parent: None,
                events: store.next_seq(stream)?.saturating_sub(1),
                unreadable: Some(error.to_string()),
            },
        };
        candidates.insert(run, candidate);
    }
    let mut children: BTreeMap<RunId, BTreeSet<RunId>> = BTreeMap::new();
    for (&run, candidate) in &candidates {
        if let Some(parent) = candidate.parent {
            children.entry(parent).or_default().insert(run);
        }
    }
    for (key, value) in store.kv_scan(CHILDREN_NAMESPACE)? {
        if let Ok(link) = decode_link(&key, &value)
            && candidates.contains_key(&link.child)
            && link.parent != link.child
        {
            children.entry(link.parent).or_default().insert(link.child);
        }
    }
    let mut report = PruneReport { dry_run: options.dry_run, ..PruneReport::default() };
    // A run whose parent is in the store goes with its parent, never alone.
    let roots: Vec<RunId> = candidates
        .iter()
        .filter(|(_, c)| c.parent.is_none_or(|parent| !candidates.contains_key(&parent)))
        .map(|(&run, _)| run)
        .collect();
    for root in roots {
        let root_candidate = &candidates[&root];
        let old_enough = root_candidate.finished_at.is_some_and(|at| at < options.cutoff)
            && root_candidate.status.is_some_and(RunStatus::is_finished);
        if !old_enough {
            continue;
        }
        let tree = tree_of(root, &children);
        let blocker = tree.iter().find_map(|&run| {
            let candidate = &candidates[&run];
            let whose = if run == root { format!("run {run}") } else { format!("its child run {run}") };
            if let Some(error) = &candidate.unreadable {
                return Some(format!("{whose} cannot be read ({error})"));
            }
            if is_executing(run) {
                return Some(format!("{whose} is executing"));
            }
            match candidate.status {
                Some(RunStatus::Failed) if options.keep_failed => Some(format!("{whose} failed (--keep-failed)")),
                Some(status) if !status.is_finished() => Some(format!("{whose} is {}", status.as_str())),
                _ => None,
            }
        });
        if let Some(reason) = blocker {
            report.kept.push(Kept { run_id: root, reason });
            continue;
        }
        // Children before their parent: a crash leaves a smaller tree, never a child without its parent's link.
        for &run in tree.iter().rev() {
            report.events += candidates[&run].events;
            report.artifact_bytes += directory_bytes(&artifacts_dir(journal, run));
            report.runs.push(run);
            if !options.dry_run {
                remove_run(journal, run)?;
            }
        }
    }
    report.runs.sort();
    sweep_leftovers(journal, options.dry_run, &mut report)?;
    Ok(report)
}

/// The runs of the tree under `root`, parents before children.
fn tree_of(root: RunId, children: &BTreeMap<RunId, BTreeSet<RunId>>) -> Vec<RunId> {
    let mut tree = vec![root];
    let mut seen = BTreeSet::from([root]);
    let mut next = 0;
    while next < tree.len() {
        let run = tree[next];
        next += 1;
        for &child in children.get(&run).into_iter().flatten() {
            if seen.insert(child) {
                tree.push(child);
            }
        }
    }
    tree
}

fn artifacts_dir(journal: &Journal, run: RunId) -> PathBuf {
    journal.store().path().join("artifacts").join(run.to_string())
}

/// Child links, index entry, events, artifacts: in that order (see the module doc).
fn remove_run(journal: &Journal, run: RunId) -> Result<()> {
    let store = journal.store();
    let prefix = run.get().to_be_bytes();
    for (key, _) in store.kv_scan(CHILDREN_NAMESPACE)? {
        if key.starts_with(&prefix) {
            store.kv_delete(CHILDREN_NAMESPACE, &key)?;
        }
    }
    store.kv_delete(RUNS_NAMESPACE, &prefix)?;
    store.delete_stream(run.get()).map_err(|e| EngineError::storage(run, e))?;
    remove_dir(&artifacts_dir(journal, run))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(EngineError::Store(StorageError::Io {
            context: format!("removing artifacts {}", dir.display()),
            source: error,
        })),
    }
}

/// Whether a run has events now (not in a listing taken earlier): a run started since
/// then must not lose its artifacts.
fn has_events(journal: &Journal, run: RunId) -> Result<bool> {
    Ok(journal.store().next_seq(run.get())? > 1)
}

/// Removes what an interrupted prune left of runs without events.
fn sweep_leftovers(journal: &Journal, dry_run: bool, report: &mut PruneReport) -> Result<()> {
    let store = journal.store();
    let artifacts = store.path().join("artifacts");
    if let Ok(entries) = std::fs::read_dir(&artifacts) {
        for entry in entries.flatten() {
            let Some(run) = entry.file_name().to_str().and_then(|name| name.parse::<RunId>().ok()) else { continue };
            if report.runs.contains(&run) || has_events(journal, run)? {
                continue;
            }
            report.artifact_bytes += directory_bytes(&entry.path());
            report.leftovers += 1;
            if !dry_run {
                remove_dir(&entry.path())?;
            }
        }
    }
    for (key, _) in store.kv_scan(RUNS_NAMESPACE)? {
        let Some(run) = <[u8; 8]>::try_from(key.as_slice()).ok().and_then(|b| RunId::new(u64::from_be_bytes(b))) else {
            continue;
        };
        if report.runs.contains(&run) || has_events(journal, run)? {
            continue;
        }
        report.leftovers += 1;
        if !dry_run {
            store.kv_delete(RUNS_NAMESPACE, &key)?;
        }
    }
    for (key, value) in store.kv_scan(CHILDREN_NAMESPACE)? {
        let Ok(link) = decode_link(&key, &value) else { continue };
        // A parent writes its links while it runs, so one without events is a leftover.
        if report.runs.contains(&link.parent) || has_events(journal, link.parent)? {
            continue;
        }
        report.leftovers += 1;
        if !dry_run {
            store.kv_delete(CHILDREN_NAMESPACE, &key)?;
        }
    }
    Ok(())
}

/// Bytes of the files under `dir`; 0 when it does not exist.
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn child_links_decode_or_say_what_is_wrong() {
        let mut key = 7u64.to_be_bytes().to_vec();
        key.extend_from_slice(b"diagnose");
        let link = decode_link(&key, &9u64.to_be_bytes()).unwrap();
        assert_eq!((link.parent.get(), link.step.as_str(), link.child.get()), (7, "diagnose", 9));
        assert_eq!(decode_link(&key[..5], &9u64.to_be_bytes()).err().unwrap(), "a key of 5 bytes");
        assert_eq!(decode_link(&key, &[1, 2]).err().unwrap(), "step `diagnose` of run 7 linked to a value of 2 bytes");
        let mut zero = 0u64.to_be_bytes().to_vec();
        zero.extend_from_slice(b"x");
        assert_eq!(decode_link(&zero, &9u64.to_be_bytes()).err().unwrap(), "a key naming run 0");
    }

    #[test]
    fn a_tree_lists_parents_before_children_and_survives_a_cycle() {
        let run = |n| RunId::new(n).unwrap();
        let mut children = BTreeMap::new();
        children.insert(run(1), BTreeSet::from([run(2), run(3)]));
        children.insert(run(3), BTreeSet::from([run(4), run(1)]));
        assert_eq!(tree_of(run(1), &children), vec![run(1), run(2), run(3), run(4)]);
        assert_eq!(tree_of(run(5), &children), vec![run(5)]);
    }

    #[test]
    fn problems_name_run_and_seq() {
        let run = RunId::new(3);
        let line = Problem { run, seq: Some(5), problem: "corrupt record: checksum mismatch".to_owned() };
        assert_eq!(line.to_string(), "run 3 seq 5: corrupt record: checksum mismatch");
        let report = VerifyReport { runs: 2, events: 9, problems: vec![line] };
        assert_eq!(report.summary(), "2 runs, 9 events checked, 1 problem");
        let clean = VerifyReport { runs: 1, events: 1, problems: Vec::new() };
        assert_eq!(clean.summary(), "1 run, 1 event checked, no problems");
    }
}
