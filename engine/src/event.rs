//! The events of a run: the facts the log records. Their `type` names are a
//! contract (users read `runbook events`, tests and tools parse it): add
//! fields compatibly, with `#[serde(default)]`, and never reuse a name.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactRef;
use crate::ids::{Attempt, RunId, StepId};
use crate::model::Workflow;

/// One recorded fact with the time it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Output values of a step, by name.
pub type Outputs = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The first event of every run: the full definition, so a resume never depends on the file.
    RunStarted(Box<RunStarted>),
    /// Durable before the step's work begins.
    StepStarted {
        step: StepId,
        attempt: Attempt,
    },
    StepSucceeded {
        step: StepId,
        attempt: Attempt,
        #[serde(default)]
        outputs: Outputs,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        artifacts: Vec<ArtifactRef>,
        #[serde(default)]
        duration_ms: u64,
    },
    /// With `retry_at` when another attempt is due then; without, the step has failed for good.
    StepFailed {
        step: StepId,
        attempt: Attempt,
        error: String,
        /// What the attempt produced before failing (`result: timed_out`).
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        outputs: Outputs,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        artifacts: Vec<ArtifactRef>,
        #[serde(default)]
        duration_ms: u64,
    },
    /// A polling attempt whose `until` condition is not met yet; the next poll is due at `next_at`.
    StepPolled {
        step: StepId,
        attempt: Attempt,
        #[serde(default)]
        outputs: Outputs,
        next_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        artifacts: Vec<ArtifactRef>,
        #[serde(default)]
        duration_ms: u64,
    },
    StepSkipped {
        step: StepId,
        reason: String,
    },
    /// An operator answered an `approval` step: yes.
    StepApproved {
        step: StepId,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// An operator answered an `approval` step: no.
    StepRejected {
        step: StepId,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    RunSucceeded {
        /// The workflow's `outputs`, evaluated at the end.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        outputs: Outputs,
    },
    RunFailed {
        #[serde(default)]
        failed_steps: Vec<StepId>,
        /// The workflow's `outputs` that could be evaluated.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        outputs: Outputs,
        /// Why the run failed when it is not (only) failed steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An executor took the run up again. Steps that were running become
    /// orphans; `rerun` and `skip` are the operator's decisions about them.
    RunResumed {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rerun: Vec<StepId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skip: Vec<StepId>,
    },
    /// The executor stopped on request (Ctrl-C, shutdown, a failed append); `runbook resume` goes on.
    RunInterrupted {
        reason: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        running: Vec<StepId>,
    },
    /// Steps were found started but unfinished and are not safe to repeat; an operator decides.
    RunNeedsAttention {
        steps: Vec<StepId>,
        reason: String,
    },
    /// An escalation bundle was written (by a `bundle` step or `runbook bundle`).
    BundleCreated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepId>,
        /// The bundle directory and its archive, on the operator's machine.
        directory: String,
        archive: String,
        sha256: String,
        size: u64,
    },
    /// The bundle was emailed; recorded so that it is never sent again.
    EmailSent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepId>,
        message_id: String,
        to: Vec<String>,
        archive: String,
        /// Whether the archive was attached (or too large, and only named).
        attached: bool,
    },
    EmailFailed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepId>,
        error: String,
    },
    /// A support ticket was opened (or would have been, on a dry run).
    SupportTicketCreated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepId>,
        ticket: String,
        dry_run: bool,
    },
    /// An operator acknowledged an escalated run (`runbook ack`).
    RunAcknowledged {
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    RunCancelled {
        reason: String,
    },
}

/// The definition and inputs a run started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub workflow: Workflow,
    /// sha256 of the workflow file the run started from.
    pub source_hash: String,
    #[serde(default)]
    pub source_path: String,
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// Set on a child run started by a `workflow` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
}

/// The run and step that started a child run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub run_id: RunId,
    pub step: StepId,
}

impl EventKind {
    /// The contract name of the event (`step_started`).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::RunStarted(_) => "run_started",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::StepSucceeded { .. } => "step_succeeded",
            EventKind::StepFailed { .. } => "step_failed",
            EventKind::StepPolled { .. } => "step_polled",
            EventKind::StepSkipped { .. } => "step_skipped",
            EventKind::StepApproved { .. } => "step_approved",
            EventKind::StepRejected { .. } => "step_rejected",
            EventKind::RunSucceeded { .. } => "run_succeeded",
            EventKind::RunFailed { .. } => "run_failed",
            EventKind::RunResumed { .. } => "run_resumed",
            EventKind::RunInterrupted { .. } => "run_interrupted",
            EventKind::RunNeedsAttention { .. } => "run_needs_attention",
            EventKind::RunCancelled { .. } => "run_cancelled",
            EventKind::BundleCreated { .. } => "bundle_created",
            EventKind::EmailSent { .. } => "email_sent",
            EventKind::EmailFailed { .. } => "email_failed",
            EventKind::SupportTicketCreated { .. } => "support_ticket_created",
            EventKind::RunAcknowledged { .. } => "run_acknowledged",
        }
    }

    /// The step the event is about, if any.
    pub fn step(&self) -> Option<&StepId> {
        match self {
            EventKind::StepStarted { step, .. }
            | EventKind::StepSucceeded { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::StepPolled { step, .. }
            | EventKind::StepSkipped { step, .. }
            | EventKind::StepApproved { step, .. }
            | EventKind::StepRejected { step, .. } => Some(step),
            EventKind::RunStarted(_)
            | EventKind::RunSucceeded { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunResumed { .. }
            | EventKind::RunInterrupted { .. }
            | EventKind::RunNeedsAttention { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::BundleCreated { .. }
            | EventKind::EmailSent { .. }
            | EventKind::EmailFailed { .. }
            | EventKind::SupportTicketCreated { .. }
            | EventKind::RunAcknowledged { .. } => None,
        }
    }

    /// Whether this is an escalation note: a fact about the run that changes no step's phase,
    /// which a step kind may ask to record (see `StepResult::notes`).
    pub fn is_note(&self) -> bool {
        match self {
            EventKind::BundleCreated { .. }
            | EventKind::EmailSent { .. }
            | EventKind::EmailFailed { .. }
            | EventKind::SupportTicketCreated { .. } => true,
            EventKind::RunStarted(_)
            | EventKind::StepStarted { .. }
            | EventKind::StepSucceeded { .. }
            | EventKind::StepFailed { .. }
            | EventKind::StepPolled { .. }
            | EventKind::StepSkipped { .. }
            | EventKind::StepApproved { .. }
            | EventKind::StepRejected { .. }
            | EventKind::RunSucceeded { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunResumed { .. }
            | EventKind::RunInterrupted { .. }
            | EventKind::RunNeedsAttention { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::RunAcknowledged { .. } => false,
        }
    }
}

/// Encodes an event as the bytes the log stores (JSON).
pub fn encode(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(event)
}

/// Decodes an event from the log.
pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn events_carry_their_contract_type_name() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).single().expect("valid date");
        let step = StepId::new("probe").expect("valid id");
        let event = Event { at, kind: EventKind::StepStarted { step, attempt: Attempt(2) } };
        let json: serde_json::Value = serde_json::from_slice(&encode(&event).expect("encodes")).expect("json");
        assert_eq!(json["type"], "step_started");
        assert_eq!(json["step"], "probe");
        assert_eq!(json["attempt"], 2);
        assert_eq!(json["at"], "2026-11-26T06:00:00Z");
        assert_eq!(decode(&encode(&event).expect("encodes")).expect("decodes"), event);
        let finished = Event { at, kind: EventKind::RunSucceeded { outputs: Outputs::new() } };
        let json: serde_json::Value = serde_json::from_slice(&encode(&finished).expect("encodes")).expect("json");
        assert_eq!(json["type"], "run_succeeded");
    }
}
