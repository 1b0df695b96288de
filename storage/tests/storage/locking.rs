//! A store held by another handle or process is refused with `Locked`, and freed when its holder dies.

use runbook_storage::{SledStore, StorageError};

use crate::support::{MESSAGE_MARKER, child_role, open, spawn_child, temp_dir};

#[track_caller]
fn assert_locked(result: Result<SledStore, StorageError>, dir: &std::path::Path) {
    match result {
        Err(error @ StorageError::Locked { .. }) => {
            assert_eq!(error.to_string(), format!("store {} is in use by another process", dir.display()));
        }
        other => panic!("expected the store to be locked, got {other:?}"),
    }
}

#[test]
fn a_second_open_in_the_same_process_is_refused() {
    let dir = temp_dir();
    let store = open(dir.path());
    // sled's lock is an flock on its own open file description, so even
    // this process cannot open the store twice.
    assert_locked(SledStore::open(dir.path()), dir.path());
    drop(store);
    drop(open(dir.path()));
}

#[test]
fn a_store_held_by_another_process_is_refused_until_it_dies() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "hold");
        let _store = open(&dir);
        println!("{MESSAGE_MARKER}holding");
        // Hold the store until the parent kills us or closes our stdin.
        let _ = std::io::stdin().read_line(&mut String::new());
        return;
    }
    let dir = temp_dir();
    let mut holder =
        spawn_child("locking::a_store_held_by_another_process_is_refused_until_it_dies", "hold", dir.path());
    holder.wait_for_message("holding");
    assert_locked(SledStore::open(dir.path()), dir.path());
    // The OS releases the lock of a killed process: no cleanup needed.
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    drop(open(dir.path()));
}
