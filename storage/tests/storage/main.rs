//! Integration tests of runbook-storage, on real sled stores in temporary directories.
//!
//! What belongs where:
//! - `conformance`: the suite every `EventLog` backend must pass, run for `SledStore`;
//! - `concurrency`: many writers on threads and tasks, group commit, throughput figures;
//! - `corruption`: damaged records are reported with their seq, never skipped;
//! - `crash`: appends acknowledged before a SIGKILL are all there after reopening;
//! - `kv`: key/value namespaces;
//! - `log`: the write-ahead log: replay after a kill, a torn tail, a damaged segment;
//! - `leases`: every lease rule, with an injected clock and real dead processes;
//! - `locking`: a store held by another process or handle is refused with `Locked`;
//! - `opening`: what opening a store creates, and how it fails;
//! - `support`: temporary stores and re-running this binary as a child process.

// A test reports failure by panicking; unwrap says so most directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod conformance;
mod corruption;
mod crash;
mod kv;
mod leases;
mod locking;
mod log;
mod opening;
mod support;
