//! What `runbook daemon` keeps in the store and asks of it: each schedule entry's state (one
//! JSON value per entry in the `schedules` namespace, written durably before the run a fire
//! starts), and the escalation of the run tree an entry last started, from folds of its runs.
//!
//! The decisions are `scheduler`'s (pure); these are the reads and writes around them, so that
//! the daemon neither folds events nor touches the key/value store itself.

use runbook_storage::{EventLog as _, KvState as _, StorageError};

use crate::error::{EngineError, Result};
use crate::ids::RunId;
use crate::journal::Journal;
use crate::scheduler::{Escalated, SCHEDULES_NAMESPACE, ScheduleState};
use crate::step::RunHistory as _;

/// How deep child runs are followed when looking for an escalation: workflows calling workflows
/// nest far less; a loop in the child links must not hang the daemon.
const MAX_TREE_DEPTH: usize = 16;

impl Journal {
    /// The stored state of a schedule entry (keyed by `scheduler::entry_key`), or `None` when no
    /// daemon has seen the entry yet.
    pub fn schedule_state(&self, key: &str) -> Result<Option<ScheduleState>> {
        let Some(bytes) = self.store().kv_get(SCHEDULES_NAMESPACE, key.as_bytes())? else { return Ok(None) };
        let state = serde_json::from_slice(&bytes).map_err(|error| {
            EngineError::Store(StorageError::Backend {
                context: format!("schedule state {key}"),
                message: format!("not valid JSON: {error}"),
            })
        })?;
        Ok(Some(state))
    }

    /// Stores a schedule entry's state durably: it returns once the state would survive a crash,
    /// so that a fire recorded before its run starts is never fired again.
    pub fn put_schedule_state(&self, key: &str, state: &ScheduleState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(|error| {
            EngineError::Store(StorageError::Backend {
                context: format!("schedule state {key}"),
                message: format!("cannot be encoded: {error}"),
            })
        })?;
        self.store().kv_put(SCHEDULES_NAMESPACE, key.as_bytes(), &bytes)?;
        Ok(())
    }

    /// The keys of every stored schedule entry, in key order.
    pub fn schedule_keys(&self) -> Result<Vec<String>> {
        let stored = self.store().kv_scan(SCHEDULES_NAMESPACE)?;
        Ok(stored.into_iter().map(|(key, _)| String::from_utf8_lossy(&key).into_owned()).collect())
    }

    /// Forgets a schedule entry's state (an entry that no longer exists).
    pub fn delete_schedule_state(&self, key: &str) -> Result<()> {
        self.store().kv_delete(SCHEDULES_NAMESPACE, key.as_bytes())?;
        Ok(())
    }

    /// Whether a run id a fire allocated names a run: `false` when the fire was recorded but the
    /// process stopped before the run's `run_started` was (the daemon starts it under that id).
    pub fn has_started(&self, run: RunId) -> Result<bool> {
        let next = self.store().next_seq(run.get()).map_err(|error| EngineError::storage(run, error))?;
        Ok(next > 1)
    }

    /// The latest escalation in a run and its child runs (the last bundle written, by whichever
    /// run of the tree), and whether every escalated run of them was acknowledged, or the top run
    /// was. `None` when no run of the tree escalated. A run that cannot be read counts as not
    /// escalated; its child runs are still looked at.
    pub fn escalation_of_tree(&self, root: RunId) -> Option<Escalated> {
        let mut latest: Option<(RunId, chrono::DateTime<chrono::Utc>)> = None;
        let mut all_acknowledged = true;
        let mut root_acknowledged = false;
        let mut queue = vec![(root, 0)];
        while let Some((run, depth)) = queue.pop() {
            if let Ok((state, _)) = self.load(run) {
                let escalation = &state.escalation;
                let acknowledged = escalation.acknowledged_by.is_some();
                if run == root {
                    root_acknowledged = acknowledged;
                }
                if let Some(at) = escalation.bundled_at {
                    all_acknowledged &= acknowledged;
                    if latest.is_none_or(|(_, t)| at > t) {
                        latest = Some((run, at));
                    }
                }
            }
            if depth < MAX_TREE_DEPTH {
                for (_, child) in self.children(run).unwrap_or_default() {
                    queue.push((child, depth + 1));
                }
            }
        }
        let (run, at) = latest?;
        Some(Escalated { run, at, acknowledged: all_acknowledged || root_acknowledged })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone as _, Utc};
    use runbook_storage::SledStore;

    use super::*;
    use crate::event::{Event, EventKind, RunStarted};
    use crate::ids::Seq;
    use crate::journal::CHILDREN_NAMESPACE;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, second).single().expect("valid time")
    }

    fn journal() -> (tempfile::TempDir, std::sync::Arc<Journal>) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Journal::new(SledStore::open(dir.path()).expect("store"), None);
        (dir, journal)
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(future)
    }

    /// A run whose events after `run_started` are `events`, each at its own time.
    fn run_with(journal: &Journal, events: &[(u32, EventKind)]) -> RunId {
        let loaded = crate::testkit::workflow("name: escalating\nsteps:\n  - id: a\n    run: echo a\n");
        let run = journal.allocate_run_id().expect("run id");
        let started = Event {
            at: at(0),
            kind: EventKind::RunStarted(Box::new(RunStarted {
                workflow: loaded.workflow,
                source_hash: loaded.source_hash,
                source_path: "escalating.yaml".to_owned(),
                inputs: serde_json::Map::new(),
                parent: None,
            })),
        };
        let mut all = vec![started];
        all.extend(events.iter().map(|(second, kind)| Event { at: at(*second), kind: kind.clone() }));
        block_on(journal.append(run, Seq(1), &all)).expect("append");
        run
    }

    fn bundle() -> EventKind {
        EventKind::BundleCreated {
            step: None,
            directory: "/tmp/bundle".to_owned(),
            archive: "/tmp/bundle.tar.gz".to_owned(),
            sha256: String::new(),
            size: 0,
        }
    }

    fn acknowledged() -> EventKind {
        EventKind::RunAcknowledged { by: "alice".to_owned(), comment: None }
    }

    fn link(journal: &Journal, parent: RunId, step: &str, child: RunId) {
        let mut key = parent.get().to_be_bytes().to_vec();
        key.extend_from_slice(step.as_bytes());
        journal.store().kv_put(CHILDREN_NAMESPACE, &key, &child.get().to_be_bytes()).expect("link");
    }

    #[test]
    fn the_latest_bundle_of_a_tree_and_whether_it_was_acknowledged() {
        let (_dir, journal) = journal();
        let quiet = run_with(&journal, &[]);
        assert_eq!(journal.escalation_of_tree(quiet), None);

        // A child escalated at :20 and again at :30; the parent at :10.
        let child = run_with(&journal, &[(20, bundle()), (30, bundle())]);
        let parent = run_with(&journal, &[(10, bundle())]);
        link(&journal, parent, "escalate", child);
        assert_eq!(journal.escalation_of_tree(parent), Some(Escalated { run: child, at: at(30), acknowledged: false }));

        // Acknowledging the child alone leaves the parent's escalation unacknowledged.
        block_on(journal.record(child, vec![acknowledged()])).expect("acknowledge the child");
        assert_eq!(journal.escalation_of_tree(parent), Some(Escalated { run: child, at: at(30), acknowledged: false }));

        // The top run's acknowledgement covers the whole tree.
        block_on(journal.record(parent, vec![acknowledged()])).expect("acknowledge the parent");
        assert_eq!(journal.escalation_of_tree(parent), Some(Escalated { run: child, at: at(30), acknowledged: true }));
    }

    #[test]
    fn schedule_state_is_stored_listed_and_forgotten() {
        let (_dir, journal) = journal();
        assert_eq!(journal.schedule_state("w#0#UTC#* * * * * *").expect("reads"), None);
        let state = ScheduleState { since: Some(at(0)), fires: 2, ..ScheduleState::default() };
        journal.put_schedule_state("w#0#UTC#* * * * * *", &state).expect("stores");
        journal.put_schedule_state("v#1#UTC#0 * * * * *", &ScheduleState::default()).expect("stores");
        assert_eq!(journal.schedule_state("w#0#UTC#* * * * * *").expect("reads"), Some(state));
        assert_eq!(journal.schedule_keys().expect("lists"), ["v#1#UTC#0 * * * * *", "w#0#UTC#* * * * * *"]);
        journal.delete_schedule_state("v#1#UTC#0 * * * * *").expect("deletes");
        assert_eq!(journal.schedule_keys().expect("lists"), ["w#0#UTC#* * * * * *"]);

        journal.store().kv_put(SCHEDULES_NAMESPACE, b"broken", b"{").expect("raw write");
        let error = journal.schedule_state("broken").expect_err("not JSON");
        assert!(error.to_string().contains("schedule state broken: not valid JSON"), "{error}");
    }

    #[test]
    fn a_fired_run_has_started_once_its_run_started_is_recorded() {
        let (_dir, journal) = journal();
        let allocated = journal.allocate_run_id().expect("run id");
        assert!(!journal.has_started(allocated).expect("reads"));
        let run = run_with(&journal, &[]);
        assert!(journal.has_started(run).expect("reads"));
    }
}
