//! The journal: a run's events on the storage crate's log, typed, and the run
//! index (a projection of every run's status, rebuildable from the events).

use chrono::{DateTime, Utc};
use runbook_storage::{EventLog, KvState, SledStore, StorageError};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{EngineError, Result};
use crate::event::{self, Event, EventKind, ParentRef};
use crate::ids::{RunId, Seq};
use crate::state::{RunState, RunStatus};

/// The key/value namespace of the run index.
pub const RUNS_NAMESPACE: &str = "runs";

/// The store the engine works on.
pub type Store = SledStore;

/// One run in the index: what `runbook runs` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: RunId,
    pub workflow: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// Events in the run's stream when this entry was written.
    #[serde(default)]
    pub events: u64,
}

impl<'de> Deserialize<'de> for RunStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<RunStatus, D::Error> {
        let text = String::deserialize(deserializer)?;
        RunStatus::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown run status `{text}`")))
    }
}

impl RunSummary {
    pub fn of(state: &RunState) -> RunSummary {
        RunSummary {
            run_id: state.run_id,
            workflow: state.workflow.name.clone(),
            status: state.status,
            started_at: state.started_at,
            finished_at: state.finished_at,
            parent: state.parent.clone(),
            events: state.events,
        }
    }
}

/// What [`Journal::runs`] found.
#[derive(Debug)]
pub struct RunListing {
    /// Every run that could be read, newest first.
    pub runs: Vec<RunSummary>,
    /// Runs whose events cannot be read, newest first: listed apart rather than failing the whole listing.
    pub unreadable: Vec<UnreadableRun>,
}

/// A run whose events cannot be read or folded.
#[derive(Debug)]
pub struct UnreadableRun {
    pub run_id: RunId,
    /// Its index entry, if it has one (it may be stale): the workflow name, when it started.
    pub indexed: Option<RunSummary>,
    /// Why it cannot be read, naming the run and the event.
    pub error: EngineError,
}

/// Typed access to runs' event streams.
pub struct Journal {
    store: Store,
    /// With `RUNBOOK_CRASH_AFTER_EVENTS=N`: abort right after the N-th event this process appended is durable.
    crash_after_events: Option<u64>,
    appended: AtomicU64,
    /// The last folds [`Journal::load`] made, newest last: a run is often folded again soon
    /// (`resume` folds it to check it, then the executor folds it to run it), and a fold
    /// extended by the events appended since equals a fold of the whole log.
    recent_folds: Mutex<VecDeque<(RunId, RunState, Seq)>>,
}

/// How many folds [`Journal::load`] keeps.
const RECENT_FOLDS: usize = 8;

/// From this many events on, a fold reads the log on a second thread (see [`Journal::fold_from`]).
const PARALLEL_FOLD_EVENTS: u64 = 4_096;

/// Records per batch handed from the reading thread to the folding one.
const FOLD_BATCH: usize = 256;

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("store", &self.store.path()).finish()
    }
}

impl Journal {
    pub fn new(store: Store, crash_after_events: Option<u64>) -> Arc<Journal> {
        Arc::new(Journal {
            store,
            crash_after_events,
            appended: AtomicU64::new(0),
            recent_folds: Mutex::new(VecDeque::with_capacity(RECENT_FOLDS)),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new run id.
    pub fn allocate_run_id(&self) -> Result<RunId> {
        let id = self.store.allocate_stream_id()?;
        RunId::new(id).ok_or_else(|| {
            EngineError::Store(StorageError::Backend {
                context: "allocating a run id".to_owned(),
                message: "the store handed out stream id 0".to_owned(),
            })
        })
    }

    /// Every event of a run in order, decoded; a corrupt or undecodable record is an error, never skipped.
    pub fn events(&self, run: RunId) -> impl Iterator<Item = Result<(Seq, Event)>> + '_ {
        self.events_from(run, Seq(1))
    }

    /// The events of a run from seq `from` on, like [`Journal::events`].
    fn events_from(&self, run: RunId, from: Seq) -> impl Iterator<Item = Result<(Seq, Event)>> + '_ {
        self.store.read(run.get(), from.0).map(move |record| {
            let (seq, bytes) = record.map_err(|e| EngineError::storage(run, e))?;
            let event = event::decode(&bytes).map_err(|e| EngineError::Decode { run, seq, message: e.to_string() })?;
            Ok((Seq(seq), event))
        })
    }

    /// The fold of a run's whole log, and the seq its next event must use.
    ///
    /// Events are read one at a time (memory holds the state, not the log). A run folded
    /// recently is taken up where that fold stopped: only the events appended since are read.
    pub fn load(&self, run: RunId) -> Result<(RunState, Seq)> {
        let head = Seq(self.store.next_seq(run.get()).map_err(|e| EngineError::storage(run, e))?);
        let recent = {
            let mut folds = self.recent_folds.lock().unwrap_or_else(PoisonError::into_inner);
            let position = folds.iter().position(|(id, _, _)| *id == run);
            position.and_then(|position| folds.remove(position))
        };
        let (mut state, mut next) = match recent {
            // A shorter log than folded means the run was deleted (ids are never reused): read it anew.
            Some((_, state, next)) if next.0 <= head.0 => (state, next),
            Some(_) | None => {
                let mut events = self.events(run);
                let Some(first) = events.next() else {
                    return Err(EngineError::UnknownRun(run));
                };
                let (_, first) = first?;
                let state =
                    RunState::start(run, &first).map_err(|e| EngineError::Apply { run, seq: 1, message: e.message })?;
                (state, Seq(2))
            }
        };
        if next.0 < head.0 {
            next = self.fold_from(run, &mut state, next, head)?;
        }
        let mut folds = self.recent_folds.lock().unwrap_or_else(PoisonError::into_inner);
        // A load of the same run that ran meanwhile may have put its fold back: keep one.
        folds.retain(|(id, _, _)| *id != run);
        if folds.len() == RECENT_FOLDS {
            folds.pop_front();
        }
        folds.push_back((run, state.clone(), next));
        Ok((state, next))
    }

    /// Applies the events from `from` on to `state` and returns the seq after the last one.
    ///
    /// Reading a record from sled costs about as much as decoding it, so a long run is read on a
    /// second thread while this one decodes and applies: a replay goes nearly twice as fast on
    /// two cores. A few batches are in flight at most; memory holds the state, not the log.
    fn fold_from(&self, run: RunId, state: &mut RunState, from: Seq, head: Seq) -> Result<Seq> {
        let apply = |state: &mut RunState, seq: u64, bytes: &[u8]| -> Result<Seq> {
            let event = event::decode(bytes).map_err(|e| EngineError::Decode { run, seq, message: e.to_string() })?;
            state.apply(&event).map_err(|e| EngineError::Apply { run, seq, message: e.message })?;
            Ok(Seq(seq + 1))
        };
        let mut next = from;
        if head.0.saturating_sub(from.0) < PARALLEL_FOLD_EVENTS {
            for record in self.store.read(run.get(), from.0) {
                let (seq, bytes) = record.map_err(|e| EngineError::storage(run, e))?;
                next = apply(state, seq, &bytes)?;
            }
            return Ok(next);
        }
        std::thread::scope(|scope| {
            let (batches, received) = std::sync::mpsc::sync_channel::<Vec<_>>(4);
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(FOLD_BATCH);
                for record in self.store.read(run.get(), from.0) {
                    // A failed read ends the stream: it is the last record sent.
                    let failed = record.is_err();
                    batch.push(record);
                    if batch.len() == FOLD_BATCH || failed {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(FOLD_BATCH));
                        // The receiver is gone when the fold stopped at an error.
                        if batches.send(full).is_err() || failed {
                            return;
                        }
                    }
                }
                let _ = batches.send(batch);
            });
            for batch in received {
                for record in batch {
                    let (seq, bytes) = record.map_err(|e| EngineError::storage(run, e))?;
                    next = apply(state, seq, &bytes)?;
                }
            }
            Ok(next)
        })
    }

    /// Records events on a run from outside its executor (an operator's answer, a cancel, an
    /// acknowledgement, a bundle): folds the run, checks each event with `apply` (an event that
    /// does not fit the run is refused, nothing is appended), appends them at the stream's end
    /// (refused if another writer appended meanwhile) and refreshes the run index. Returns the
    /// state after them.
    pub async fn record(&self, run: RunId, kinds: Vec<EventKind>) -> Result<RunState> {
        let (mut state, next) = self.load(run)?;
        let at = chrono::Utc::now();
        let events: Vec<Event> = kinds.into_iter().map(|kind| Event { at, kind }).collect();
        for (offset, event) in events.iter().enumerate() {
            state.apply(event).map_err(|e| EngineError::Apply {
                run,
                seq: next.0 + offset as u64,
                message: e.message,
            })?;
        }
        self.append(run, next, &events).await?;
        if events.iter().any(|event| changes_summary(&event.kind)) {
            self.index(&state)?;
        }
        Ok(state)
    }

    /// Appends events at `expected_next`, durably, and returns the next seq.
    /// Honours `RUNBOOK_CRASH_AFTER_EVENTS`: the events up to the N-th are
    /// appended and the process aborts once they are durable.
    pub(crate) async fn append(&self, run: RunId, expected_next: Seq, events: &[Event]) -> Result<Seq> {
        if events.is_empty() {
            return Ok(expected_next);
        }
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            records.push(event::encode(event).map_err(|e| EngineError::Encode { run, message: e.to_string() })?);
        }
        let mut crash = false;
        if let Some(limit) = self.crash_after_events {
            let before = self.appended.load(Ordering::SeqCst);
            let room = limit.saturating_sub(before);
            if (records.len() as u64) >= room {
                records.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                crash = true;
            }
        }
        let count = records.len() as u64;
        let next = if records.is_empty() {
            expected_next
        } else {
            let next = self
                .store
                .append_async(run.get(), expected_next.0, records)
                .await
                .map_err(|e| EngineError::storage(run, e))?;
            Seq(next)
        };
        self.appended.fetch_add(count, Ordering::SeqCst);
        if crash {
            eprintln!("RUNBOOK_CRASH_AFTER_EVENTS reached: aborting after event {} of run {run}", next.0 - 1);
            std::process::abort();
        }
        Ok(next)
    }

    /// Records a run's summary in the index. The index is a projection: a
    /// lost write is repaired from the events by [`Journal::runs`].
    pub fn index(&self, state: &RunState) -> Result<()> {
        let summary = RunSummary::of(state);
        let bytes = serde_json::to_vec(&summary)
            .map_err(|e| EngineError::Encode { run: state.run_id, message: e.to_string() })?;
        self.store.kv_put_unsynced(RUNS_NAMESPACE, &state.run_id.get().to_be_bytes(), &bytes)?;
        Ok(())
    }

    /// Every run, newest first, from the index; entries that may be stale
    /// (missing, or not finished) are checked against the events and repaired.
    /// A run whose events cannot be read (a corrupt record) does not fail the
    /// listing: it is listed apart, in [`RunListing::unreadable`].
    pub fn runs(&self) -> Result<RunListing> {
        let mut indexed = std::collections::BTreeMap::new();
        for (key, value) in self.store.kv_scan(RUNS_NAMESPACE)? {
            let Ok(bytes) = <[u8; 8]>::try_from(key.as_slice()) else { continue };
            let Some(run) = RunId::new(u64::from_be_bytes(bytes)) else { continue };
            if let Ok(summary) = serde_json::from_slice::<RunSummary>(&value) {
                indexed.insert(run, summary);
            }
        }
        let mut runs = Vec::new();
        let mut unreadable = Vec::new();
        for stream in self.store.streams()? {
            let Some(run) = RunId::new(stream) else { continue };
            match indexed.remove(&run) {
                Some(summary) if summary.status.is_finished() => runs.push(summary),
                entry => match self.load(run) {
                    Ok((state, _)) => {
                        self.index(&state)?;
                        runs.push(RunSummary::of(&state));
                    }
                    Err(error) => unreadable.push(UnreadableRun { run_id: run, indexed: entry, error }),
                },
            }
        }
        // Index entries without events belong to pruned runs.
        for run in indexed.keys() {
            self.store.kv_delete(RUNS_NAMESPACE, &run.get().to_be_bytes())?;
        }
        runs.sort_by_key(|run| std::cmp::Reverse(run.run_id));
        unreadable.sort_by_key(|run| std::cmp::Reverse(run.run_id));
        Ok(RunListing { runs, unreadable })
    }

    /// The indexed summary of one run, without repair.
    pub fn indexed(&self, run: RunId) -> Result<Option<RunSummary>> {
        let value = self.store.kv_get(RUNS_NAMESPACE, &run.get().to_be_bytes())?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

/// Whether an event changes what the run index says.
pub fn changes_summary(kind: &EventKind) -> bool {
    match kind {
        EventKind::RunStarted(_)
        | EventKind::RunSucceeded { .. }
        | EventKind::RunFailed { .. }
        | EventKind::RunResumed { .. }
        | EventKind::RunInterrupted { .. }
        | EventKind::RunNeedsAttention { .. }
        | EventKind::RunCancelled { .. }
        | EventKind::BundleCreated { .. }
        | EventKind::EmailSent { .. }
        | EventKind::RunAcknowledged { .. } => true,
        EventKind::EmailFailed { .. } | EventKind::SupportTicketCreated { .. } => false,
        EventKind::StepStarted { .. }
        | EventKind::StepSucceeded { .. }
        | EventKind::StepFailed { .. }
        | EventKind::StepPolled { .. }
        | EventKind::StepCheckStarted { .. }
        | EventKind::StepChecked { .. }
        | EventKind::StepSkipped { .. }
        | EventKind::StepApproved { .. }
        | EventKind::StepRejected { .. } => false,
    }
}

/// The key/value namespace linking a parent run's step to its child run:
/// key = parent run id (big-endian) then the step id; value = the child run id.
pub const CHILDREN_NAMESPACE: &str = "children";

impl crate::step::RunHistory for Journal {
    fn events(&self, run: RunId) -> std::result::Result<Vec<(Seq, Event)>, String> {
        let events: Vec<(Seq, Event)> = Journal::events(self, run).collect::<Result<_>>().map_err(|e| e.to_string())?;
        if events.is_empty() {
            return Err(EngineError::UnknownRun(run).to_string());
        }
        Ok(events)
    }

    fn children(&self, run: RunId) -> std::result::Result<Vec<(crate::ids::StepId, RunId)>, String> {
        let prefix = run.get().to_be_bytes();
        let mut children = Vec::new();
        for (key, value) in self.store.kv_scan(CHILDREN_NAMESPACE).map_err(|e| e.to_string())? {
            let Some(step) = key.strip_prefix(&prefix[..]) else { continue };
            let Ok(step) = crate::ids::StepId::new(&String::from_utf8_lossy(step)) else { continue };
            let Some(child) =
                <[u8; 8]>::try_from(value.as_slice()).ok().and_then(|b| RunId::new(u64::from_be_bytes(b)))
            else {
                continue;
            };
            // A link whose child never recorded `run_started` names no run.
            if self.store.next_seq(child.get()).map_err(|e| e.to_string())? > 1 {
                children.push((step, child));
            }
        }
        Ok(children)
    }

    fn store_dir(&self) -> std::path::PathBuf {
        self.store.path().to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::event::{Outputs, RunStarted};
    use crate::ids::{Attempt, StepId};

    /// A run of `events` events: a step polling with `until`, started and polled again and again.
    fn polling_events(events: u64) -> Vec<Event> {
        let loaded = crate::testkit::workflow(
            "name: poll\nsteps:\n  - id: wait\n    run: echo no\n    outputs:\n      ready: \"{{ stdout }}\"\n    until: outputs.ready == 'yes'\n    poll: { interval: 1s, timeout: 1000h }\n",
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).single().expect("valid date");
        let started = Event {
            at,
            kind: EventKind::RunStarted(Box::new(RunStarted {
                workflow: loaded.workflow,
                source_hash: loaded.source_hash,
                source_path: "poll.yaml".to_owned(),
                inputs: serde_json::Map::new(),
                parent: None,
            })),
        };
        let step = StepId::new("wait").expect("valid id");
        let polls = (1..).flat_map(|attempt| {
            let mut outputs = Outputs::new();
            outputs.insert("ready".to_owned(), serde_json::json!(format!("no {attempt}")));
            [
                Event { at, kind: EventKind::StepStarted { step: step.clone(), attempt: Attempt(attempt) } },
                Event {
                    at,
                    kind: EventKind::StepPolled {
                        step: step.clone(),
                        attempt: Attempt(attempt),
                        outputs,
                        next_at: at,
                        artifacts: Vec::new(),
                        duration_ms: 1,
                    },
                },
            ]
        });
        std::iter::once(started).chain(polls).take(usize::try_from(events).expect("fits")).collect()
    }

    fn append(journal: &Journal, run: RunId, from: Seq, events: &[Event]) -> Seq {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let mut next = from;
        for chunk in events.chunks(1_000) {
            next = runtime.block_on(journal.append(run, next, chunk)).expect("append");
        }
        next
    }

    /// The fold of every event, one by one, as the reference.
    #[track_caller]
    fn check_equals_plain_fold(journal: &Journal, run: RunId, loaded: &(RunState, Seq)) {
        let events: Vec<Event> = journal.events(run).map(|item| item.expect("readable").1).collect();
        let mut state = RunState::start(run, &events[0]).expect("run_started");
        for event in &events[1..] {
            state.apply(event).expect("fits");
        }
        assert_eq!(loaded.1, Seq(events.len() as u64 + 1));
        assert_eq!(format!("{:?}", loaded.0), format!("{state:?}"));
    }

    #[test]
    fn a_long_fold_read_on_a_second_thread_and_a_remembered_fold_equal_the_plain_fold() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Journal::new(SledStore::open(dir.path()).expect("store"), None);
        let run = journal.allocate_run_id().expect("run id");
        let events = polling_events(PARALLEL_FOLD_EVENTS + 1_001);
        let next = append(&journal, run, Seq(1), &events);
        let loaded = journal.load(run).expect("loads");
        check_equals_plain_fold(&journal, run, &loaded);
        // Remembered, then extended by what was appended since.
        check_equals_plain_fold(&journal, run, &journal.load(run).expect("loads again"));
        let more = polling_events(events.len() as u64 + 10);
        append(&journal, run, next, &more[events.len()..]);
        check_equals_plain_fold(&journal, run, &journal.load(run).expect("loads the longer log"));
    }

    #[test]
    fn a_bad_record_stops_a_long_fold_and_a_remembered_one_at_its_seq() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Journal::new(SledStore::open(dir.path()).expect("store"), None);
        let run = journal.allocate_run_id().expect("run id");
        let events = polling_events(PARALLEL_FOLD_EVENTS + 1_001);
        let next = append(&journal, run, Seq(1), &[events[0].clone()]);
        // Remembered at seq 2, then a long tail with an undecodable record in it.
        journal.load(run).expect("loads");
        let mut next = append(&journal, run, next, &events[1..3_001]);
        let bad = next;
        next = Seq(journal.store().append(run.get(), next.0, &[b"not an event".as_slice()]).expect("raw append"));
        let tail: Vec<Vec<u8>> = events[3_001..].iter().map(|e| event::encode(e).expect("encodes")).collect();
        let tail: Vec<&[u8]> = tail.iter().map(Vec::as_slice).collect();
        journal.store().append(run.get(), next.0, &tail).expect("raw append");
        match journal.load(run) {
            Err(EngineError::Decode { seq, .. }) => assert_eq!(seq, bad.0),
            other => panic!("expected a decode error at seq {}, got {other:?}", bad.0),
        }
        // Nothing was remembered past the error: a new load reports it again.
        assert!(matches!(journal.load(run), Err(EngineError::Decode { seq, .. }) if seq == bad.0));
    }
}
