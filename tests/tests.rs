//! End-to-end tests: they drive the built `runbook` binary against real
//! stores on disk, real bash processes and real signals.
//!
//! What belongs where:
//! - `util`: running the binary, temporary stores, workflow files.
//! - `validate`: malformed workflows, each rejected with exit 2 and its `file:line`.
//! - `run`: graphs, outputs, retries, conditions, shell quoting, secrets.
//! - `kinds`: `set`, polling with `until`, child runs with `workflow`.
//! - `resume`: crashes (SIGKILL, `RUNBOOK_CRASH_AFTER_EVENTS`), Ctrl-C, needs-attention decisions.
//! - `sharing`: a second process using the store while a run holds it.
//! - `net`: the `http`, `tcp` and `ping` kinds against loopback servers and, as root, network namespaces.
//! - `architecture`: the dependency direction between the crates.

mod architecture;
mod kinds;
mod net;
mod resume;
mod run;
mod sharing;
mod util;
mod validate;
