//! End-to-end tests: they drive the built `runbook` binary against real
//! stores on disk, real bash processes and real signals.
//!
//! What belongs where:
//! - `util`: running the binary, temporary stores, workflow files.
//! - `validate`: malformed workflows, each rejected with exit 2 and its `file:line`.
//! - `run`: graphs, outputs, retries, conditions, shell quoting, secrets.
//! - `kinds`: `set`, polling with `until`, child runs with `workflow`.
//! - `incident`: the shipped LoadBalancer runbooks in every simulator scenario, through `runbook demo`.
//! - `resume`: crashes (SIGKILL, `RUNBOOK_CRASH_AFTER_EVENTS`), Ctrl-C, needs-attention decisions.
//! - `durability`: `verify` and `prune`, a corrupt record, orphaned step processes, a full disk, lease takeover, the random-kill soak.
//! - `sharing`: a second process using the store while a run holds it.
//! - `net`: the `http`, `tcp` and `ping` kinds against loopback servers and, as root, network namespaces.
//! - `escalation`: the `bundle` kind and `runbook bundle`, emailed to an aiosmtpd server on loopback.
//! - `ux`: plain progress, `status` tables, `graph` (through Graphviz), the workflow JSON Schema, completions, live progress on a terminal.
//! - `daemon`: `runbook daemon` firing seconds schedules (overlap, catch-up, restarts, SIGTERM, SIGHUP, escalation pauses) and `runbook schedules`.
//! - `bench`: `runbook bench --quick`, its JSON keys, and that it runs beside a held store.
//! - `architecture`: the dependency direction between the crates.

mod architecture;
mod bench;
mod daemon;
mod durability;
mod escalation;
mod incident;
mod kinds;
mod net;
mod resume;
mod run;
mod sharing;
mod util;
mod ux;
mod validate;
