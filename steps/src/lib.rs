//! runbook-steps: the step kinds, each an implementation of the engine's
//! [`StepKind`](runbook_engine::step::StepKind) trait. The CLI builds the
//! registry with [`registry`]; nothing registers itself.

pub mod approval;
pub mod bundle;
pub mod http;
mod net;
pub mod ping;
pub mod run;
pub mod set;
pub mod tcp;
pub mod workflow;

use runbook_engine::step::Registry;

/// Every step kind this crate provides.
pub fn registry() -> Registry {
    Registry::new()
        .with(run::RunKind)
        .with(set::SetKind)
        .with(http::HttpKind)
        .with(tcp::TcpKind)
        .with(ping::PingKind)
        .with(workflow::WorkflowKind)
        .with(bundle::BundleKind)
        .with(approval::ApprovalKind)
}
