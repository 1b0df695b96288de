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
    /// A step that is not safe to repeat was found started but unfinished: its `check` runs now.
    StepCheckStarted {
        step: StepId,
        attempt: Attempt,
    },
    /// What the `check` found: the step's effect is there (`done`: the step succeeded, with the
    /// check's outputs) or not (the step runs again); with `error`, the check itself failed.
    StepChecked {
        step: StepId,
        attempt: Attempt,
        done: bool,
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        outputs: Outputs,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        artifacts: Vec<ArtifactRef>,
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
            EventKind::StepCheckStarted { .. } => "step_check_started",
            EventKind::StepChecked { .. } => "step_checked",
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
            | EventKind::StepCheckStarted { step, .. }
            | EventKind::StepChecked { step, .. }
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
            | EventKind::StepCheckStarted { .. }
            | EventKind::StepChecked { .. }
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

/// Decoding without buffering, for the layout [`encode`] writes: `at`, then `type`, then the
/// fields of the kind.
///
/// The derived decoder of [`Event`] (a flattened, internally tagged enum) buffers every field,
/// the whole workflow of `run_started` included, and decodes it a second time; replay spends
/// most of its time there. Here `at` and `type` are read first and the rest of the object goes
/// straight to the fields of that kind. Any other layout falls back to the derived decoder.
mod layout {
    use serde::de::{
        self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess, Visitor,
    };
    use std::borrow::Cow;
    use std::fmt;

    use super::*;

    /// [`EventKind`] as an externally tagged enum, for serde's remote derive: the compiler checks
    /// that every variant and field matches `EventKind`; keep the field attributes identical.
    #[derive(Deserialize)]
    #[serde(remote = "EventKind", rename_all = "snake_case")]
    #[allow(dead_code, reason = "only its derived decoder is used, which builds `EventKind`")]
    enum EventKindLayout {
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
        StepCheckStarted {
            step: StepId,
            attempt: Attempt,
        },
        StepChecked {
            step: StepId,
            attempt: Attempt,
            done: bool,
            #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
            outputs: Outputs,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            error: Option<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            artifacts: Vec<ArtifactRef>,
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

    /// Decodes `{"at": ..., "type": ..., ...}`; an error means "not this layout" as much as "not an event".
    pub(super) fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let event = deserializer.deserialize_map(EventVisitor)?;
        deserializer.end()?;
        Ok(event)
    }

    struct EventVisitor;

    impl<'de> Visitor<'de> for EventVisitor {
        type Value = Event;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an event object that starts with `at` and `type`")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
            if map.next_key_seed(Text)?.as_deref() != Some("at") {
                return Err(de::Error::custom("the first field is not `at`"));
            }
            let at: DateTime<Utc> = map.next_value()?;
            if map.next_key_seed(Text)?.as_deref() != Some("type") {
                return Err(de::Error::custom("the second field is not `type`"));
            }
            let tag = map.next_value_seed(Text)?;
            let kind = EventKindLayout::deserialize(Kind { tag, map })?;
            Ok(Event { at, kind })
        }
    }

    /// A string, borrowed from the input when it has no escapes.
    struct Text;

    impl<'de> DeserializeSeed<'de> for Text {
        type Value = Cow<'de, str>;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Text {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(text))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(text.to_owned()))
        }
    }

    /// The kind's tag, already read, and the rest of the object: its fields.
    struct Kind<'de, A> {
        tag: Cow<'de, str>,
        map: A,
    }

    impl<'de, A: MapAccess<'de>> Deserializer<'de> for Kind<'de, A> {
        type Error = A::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, A::Error> {
            Err(de::Error::custom("an event kind decodes only as an enum"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            visitor.visit_enum(self)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }

    impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Kind<'de, A> {
        type Error = A::Error;
        type Variant = Fields<A>;

        fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Fields<A>), A::Error> {
            let variant = seed.deserialize(self.tag.into_deserializer())?;
            Ok((variant, Fields { map: self.map }))
        }
    }

    /// The fields of a kind: the rest of the event's object.
    struct Fields<A> {
        map: A,
    }

    impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Fields<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            Err(de::Error::custom("an event kind has fields"))
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
            seed.deserialize(de::value::MapAccessDeserializer::new(self.map))
        }

        fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, A::Error> {
            Err(de::Error::custom("an event kind has named fields"))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            visitor.visit_map(self.map)
        }
    }
}

/// Encodes an event as the bytes the log stores (JSON).
pub fn encode(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(event)
}

/// Decodes an event from the log: the layout [`encode`] writes without buffering, any other
/// through the derived decoder (whose error is the one reported).
pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
    layout::decode(bytes).or_else(|_| serde_json::from_slice(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RunId;
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

    /// One event of every kind, with every optional field set.
    fn one_of_each() -> Vec<Event> {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).single().expect("valid date");
        let step = StepId::new("probe").expect("valid id");
        let mut outputs = Outputs::new();
        outputs.insert("n".to_owned(), serde_json::json!(3));
        outputs.insert("nested".to_owned(), serde_json::json!({"list": [1, "two", null, 2.5], "escaped": "a\"b\\c"}));
        let artifacts = vec![ArtifactRef {
            name: "stdout".to_owned(),
            path: "artifacts/1/probe.1.stdout".to_owned(),
            size: 12,
            sha256: "00".repeat(32),
            dropped_bytes: 4,
        }];
        let loaded = crate::testkit::workflow(
            "name: codec\ninputs:\n  ip: { type: ip, required: true }\nsteps:\n  - id: probe\n    run: echo {{ inputs.ip }}\n    retry: { attempts: 2, delay: 1s }\n",
        );
        let kinds = vec![
            EventKind::RunStarted(Box::new(RunStarted {
                workflow: loaded.workflow,
                source_hash: loaded.source_hash,
                source_path: "codec.yaml".to_owned(),
                inputs: outputs.clone(),
                parent: Some(ParentRef { run_id: RunId::new(7).expect("non-zero"), step: step.clone() }),
            })),
            EventKind::StepStarted { step: step.clone(), attempt: Attempt(2) },
            EventKind::StepSucceeded {
                step: step.clone(),
                attempt: Attempt(2),
                outputs: outputs.clone(),
                exit_code: Some(0),
                artifacts: artifacts.clone(),
                duration_ms: 17,
            },
            EventKind::StepFailed {
                step: step.clone(),
                attempt: Attempt(1),
                error: "exited with status 1: \"quoted\"".to_owned(),
                outputs: outputs.clone(),
                retry_at: Some(at),
                exit_code: Some(1),
                artifacts: artifacts.clone(),
                duration_ms: 5,
            },
            EventKind::StepPolled {
                step: step.clone(),
                attempt: Attempt(3),
                outputs: outputs.clone(),
                next_at: at,
                artifacts,
                duration_ms: 1,
            },
            EventKind::StepSkipped { step: step.clone(), reason: "needs `a`, which failed".to_owned() },
            EventKind::StepApproved { step: step.clone(), by: "ops".to_owned(), comment: Some("ok".to_owned()) },
            EventKind::StepRejected { step: step.clone(), by: "ops".to_owned(), comment: None },
            EventKind::RunSucceeded { outputs: outputs.clone() },
            EventKind::RunFailed { failed_steps: vec![step.clone()], outputs, error: Some("output `x`".to_owned()) },
            EventKind::RunResumed { rerun: vec![step.clone()], skip: vec![step.clone()] },
            EventKind::RunInterrupted { reason: "interrupted".to_owned(), running: vec![step.clone()] },
            EventKind::RunNeedsAttention { steps: vec![step.clone()], reason: "not idempotent".to_owned() },
            EventKind::BundleCreated {
                step: Some(step.clone()),
                directory: "/tmp/b".to_owned(),
                archive: "/tmp/b.zip".to_owned(),
                sha256: "11".repeat(32),
                size: 99,
            },
            EventKind::EmailSent {
                step: None,
                message_id: "<m@x>".to_owned(),
                to: vec!["a@b".to_owned()],
                archive: "/tmp/b.zip".to_owned(),
                attached: true,
            },
            EventKind::EmailFailed { step: Some(step.clone()), error: "refused".to_owned() },
            EventKind::SupportTicketCreated { step: Some(step), ticket: "T-1".to_owned(), dry_run: true },
            EventKind::RunAcknowledged { by: "ops".to_owned(), comment: Some("seen".to_owned()) },
            EventKind::RunCancelled { reason: "cancelled by the operator".to_owned() },
        ];
        kinds.into_iter().map(|kind| Event { at, kind }).collect()
    }

    #[test]
    fn the_unbuffered_decoder_reads_every_kind_as_the_derived_one_does() {
        let events = one_of_each();
        let names: std::collections::BTreeSet<&str> = events.iter().map(|e| e.kind.type_name()).collect();
        assert_eq!(names.len(), events.len(), "one event per kind");
        for event in &events {
            let bytes = encode(event).expect("encodes");
            let derived: Event = serde_json::from_slice(&bytes).expect("the derived decoder reads it");
            let unbuffered = layout::decode(&bytes).expect("the unbuffered decoder reads what `encode` writes");
            assert_eq!(unbuffered, *event, "{}", String::from_utf8_lossy(&bytes));
            assert_eq!(derived, *event);
            assert_eq!(decode(&bytes).expect("decodes"), *event);
        }
    }

    #[test]
    fn events_in_another_layout_or_with_defaults_left_out_still_decode() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).single().expect("valid date");
        let step = StepId::new("probe").expect("valid id");
        // `type` first, as a tool might write it, and optional fields absent.
        let text = br#"{"type":"step_succeeded","step":"probe","attempt":1,"at":"2026-11-26T06:00:00Z"}"#;
        let expected = Event {
            at,
            kind: EventKind::StepSucceeded {
                step: step.clone(),
                attempt: Attempt(1),
                outputs: Outputs::new(),
                exit_code: None,
                artifacts: Vec::new(),
                duration_ms: 0,
            },
        };
        assert!(layout::decode(text).is_err());
        assert_eq!(decode(text).expect("decodes"), expected);
        let text = br#"{"at":"2026-11-26T06:00:00Z","type":"step_succeeded","step":"probe","attempt":1,"later":true}"#;
        assert_eq!(layout::decode(text).expect("unknown fields are ignored"), expected);
        let error =
            decode(br#"{"at":"2026-11-26T06:00:00Z","type":"step_exploded","step":"probe"}"#).expect_err("unknown");
        assert!(error.to_string().contains("unknown variant `step_exploded`"), "{error}");
        assert!(
            decode(br#"{"at":"2026-11-26T06:00:00Z","type":"step_started","step":"probe","attempt":1} x"#).is_err()
        );
    }
}
