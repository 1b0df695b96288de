//! runbook-engine: the workflow model and its validation, templates, the pure
//! run state machine, and the tokio executor that drives it over the event log.
//!
//! The engine knows no concrete step kind: callers hand it a
//! [`step::Registry`]. It depends on storage only through
//! `runbook_storage`'s log and key/value traits.

pub mod artifact;
pub mod diag;
pub mod duration;
pub mod error;
pub mod event;
pub mod executor;
pub mod graph;
pub mod ids;
pub mod inputs;
pub mod integrity;
pub mod journal;
pub mod load;
pub mod mask;
pub mod model;
pub mod schedule;
pub mod scheduler;
pub mod schedules;
pub mod state;
pub mod step;
pub mod template;
pub mod yaml;

#[cfg(test)]
pub(crate) mod testkit;
