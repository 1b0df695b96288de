//! Leases: every acquisition rule with an injected clock, and dead holders found through real processes.

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use runbook_storage::{KvState, LeaseHolder, LeaseOutcome, SledStore, holder_is_alive};

use crate::support::{open, temp_dir};

const HOST: &str = "this-host";
const STREAM: u64 = 7;

fn holder(owner: &str, host: &str, pid: u32, expires_at_ms: u64) -> LeaseHolder {
    LeaseHolder { owner: owner.to_owned(), host: host.to_owned(), pid, expires_at_ms }
}

/// A holder on this host that is certainly running: this test process.
fn live(owner: &str, expires_at_ms: u64) -> LeaseHolder {
    holder(owner, HOST, std::process::id(), expires_at_ms)
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn store_with(current: &LeaseHolder) -> (tempfile::TempDir, SledStore) {
    let dir = temp_dir();
    let store = open(dir.path());
    assert_eq!(store.acquire_lease(STREAM, current, 0).unwrap(), LeaseOutcome::Acquired);
    (dir, store)
}

#[test]
fn a_free_lease_is_acquired() {
    let dir = temp_dir();
    let store = open(dir.path());
    assert_eq!(store.lease_holder(STREAM).unwrap(), None);
    let me = live("me", 1_000);
    assert_eq!(store.acquire_lease(STREAM, &me, 500).unwrap(), LeaseOutcome::Acquired);
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(me));
    // Another stream's lease is separate.
    assert_eq!(store.lease_holder(STREAM + 1).unwrap(), None);
}

#[test]
fn the_same_owner_acquiring_again_renews() {
    let (_dir, store) = store_with(&live("me", 1_000));
    let later = live("me", 5_000);
    assert_eq!(store.acquire_lease(STREAM, &later, 2_000).unwrap(), LeaseOutcome::Acquired);
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(later));
}

#[test]
fn a_live_unexpired_holder_keeps_it() {
    let current = live("them", 1_000);
    let (_dir, store) = store_with(&current);
    let outcome = store.acquire_lease(STREAM, &live("me", 9_000), 999).unwrap();
    assert_eq!(outcome, LeaseOutcome::Held(current.clone()));
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(current));
}

#[test]
fn a_holder_on_another_host_keeps_it_until_expiry() {
    let current = holder("them", "other-host", dead_pid(), 1_000);
    let (_dir, store) = store_with(&current);
    let me = live("me", 9_000);
    // Its pid means nothing here, dead or not: only the clock frees it.
    assert_eq!(store.acquire_lease(STREAM, &me, 999).unwrap(), LeaseOutcome::Held(current.clone()));
    assert_eq!(
        store.acquire_lease(STREAM, &me, 1_000).unwrap(),
        LeaseOutcome::TakenOver { previous: current, reason: "lease expired at 1000 ms".to_owned() }
    );
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(me));
}

#[test]
fn an_expired_lease_of_a_live_holder_is_taken_over() {
    let current = live("them", 1_000);
    let (_dir, store) = store_with(&current);
    let outcome = store.acquire_lease(STREAM, &live("me", 9_000), 1_500).unwrap();
    assert_eq!(outcome, LeaseOutcome::TakenOver { previous: current, reason: "lease expired at 1000 ms".to_owned() });
}

#[test]
fn a_dead_holder_on_this_host_is_taken_over_before_expiry() {
    let pid = dead_pid();
    let current = holder("them", HOST, pid, u64::MAX);
    let (_dir, store) = store_with(&current);
    let me = live("me", 9_000);
    let outcome = store.acquire_lease(STREAM, &me, 0).unwrap();
    assert_eq!(
        outcome,
        LeaseOutcome::TakenOver { previous: current, reason: format!("holder pid {pid} is not running") }
    );
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(me));
}

#[test]
fn renew_succeeds_only_for_the_holder() {
    let (_dir, store) = store_with(&live("me", 1_000));
    let renewed = live("me", 2_000);
    assert!(store.renew_lease(STREAM, &renewed, 900).unwrap());
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(renewed));
    assert!(!store.renew_lease(STREAM, &live("them", 3_000), 900).unwrap());

    // Once taken over, the old holder's renewal fails.
    let them = live("them", 10_000);
    assert!(matches!(store.acquire_lease(STREAM, &them, 2_000).unwrap(), LeaseOutcome::TakenOver { .. }));
    assert!(!store.renew_lease(STREAM, &live("me", 12_000), 2_001).unwrap());
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(them));

    // Nor can anyone renew a lease nobody holds.
    store.release_lease(STREAM, "them").unwrap();
    assert!(!store.renew_lease(STREAM, &live("them", 12_000), 2_002).unwrap());
    assert_eq!(store.lease_holder(STREAM).unwrap(), None);
}

#[test]
fn release_only_removes_our_own_lease() {
    let current = live("them", 1_000);
    let (dir, store) = store_with(&current);
    store.release_lease(STREAM, "me").unwrap();
    assert_eq!(store.lease_holder(STREAM).unwrap(), Some(current));
    store.release_lease(STREAM, "them").unwrap();
    assert_eq!(store.lease_holder(STREAM).unwrap(), None);
    store.release_lease(STREAM, "them").unwrap();
    // The release is durable.
    drop(store);
    assert_eq!(open(dir.path()).lease_holder(STREAM).unwrap(), None);
}

#[test]
fn of_racing_acquirers_exactly_one_wins() {
    const RACERS: usize = 8;
    let dir = temp_dir();
    let store = open(dir.path());
    let start = Arc::new(Barrier::new(RACERS));
    let outcomes: Vec<LeaseOutcome> = (0..RACERS)
        .map(|racer| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                store.acquire_lease(STREAM, &live(&format!("racer {racer}"), 1_000), 0).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect();
    let winners = outcomes.iter().filter(|outcome| **outcome == LeaseOutcome::Acquired).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let holder = store.lease_holder(STREAM).unwrap().unwrap();
    for outcome in outcomes {
        if let LeaseOutcome::Held(seen) = outcome {
            assert_eq!(seen, holder);
        }
    }
}

#[test]
fn liveness_is_asked_of_the_kernel_only_on_this_host() {
    assert!(holder_is_alive(&live("me", 0), HOST));
    assert!(!holder_is_alive(&holder("gone", HOST, dead_pid(), 0), HOST));
    // pid 1 always exists; unprivileged, kill(1, 0) fails with EPERM.
    assert!(holder_is_alive(&holder("init", HOST, 1, 0), HOST));
    assert!(holder_is_alive(&holder("elsewhere", "other-host", dead_pid(), 0), HOST));
    // pid 0 and pids beyond i32 would address process groups, not a holder.
    assert!(!holder_is_alive(&holder("zero", HOST, 0, 0), HOST));
    assert!(!holder_is_alive(&holder("huge", HOST, u32::MAX, 0), HOST));
}
