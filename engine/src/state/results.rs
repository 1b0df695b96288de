//! What a finished attempt means for its run: the state machine's judgement of a step's
//! result, its `check`'s result and the workflow's outputs. Pure like `apply` and `decide`:
//! the executor hands in the result, the step's template context (which holds the run's
//! secrets, never kept in the state), the time and a jitter seed, and records the events
//! that come back.
//!
//! | the attempt                          | `until`              | event                                       |
//! |--------------------------------------|----------------------|---------------------------------------------|
//! | succeeded, its `outputs` evaluate    | none, or true        | `step_succeeded`                            |
//! | succeeded, its `outputs` evaluate    | false, before the poll's deadline | `step_polled` with `next_at`   |
//! | succeeded, its `outputs` evaluate    | false at the deadline | `step_failed` (`... still false after ...`) |
//! | succeeded, its `outputs` evaluate    | does not evaluate    | `step_failed`                               |
//! | succeeded, an `outputs` template fails | —                  | `step_failed` (`output NAME: ...`)          |
//! | failed                               | —                    | `step_failed`                               |
//!
//! A `step_failed` carries `retry_at` while the step's retry policy has attempts left in the
//! current budget (the delay drawn with the given jitter seed); a poll's deadline counts from
//! the first attempt of the budget. Notes the kind reported (`email_sent`, ...) come first.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::RunState;
use crate::duration::format_duration;
use crate::event::{EventKind, Outputs};
use crate::ids::{Attempt, StepId};
use crate::mask::Masker;
use crate::model::StepSpec;
use crate::step::StepResult;
use crate::template::Templates;

/// One finished attempt of a step, or of its `check`, as the executor saw it end.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub step: StepId,
    pub attempt: Attempt,
    pub result: StepResult,
    pub duration_ms: u64,
}

/// What judging a result needs besides the run's state: values only.
#[derive(Debug, Clone, Copy)]
pub struct Judging<'a> {
    pub templates: &'a Templates,
    /// Masks the run's secrets in everything recorded.
    pub masker: &'a Masker,
    /// The step's template context, secrets included (see `template_context_of`).
    pub context: &'a serde_json::Value,
    /// The outputs the kind (of the step, or of its check) provides without `outputs` templates.
    pub provided: &'a [String],
    pub now: DateTime<Utc>,
    /// Draws the retry delay's jitter.
    pub jitter_seed: u64,
}

impl RunState {
    /// The events that record a finished attempt of a step: the kind's notes (masked), then
    /// its result (see the table above). Nothing for a step the workflow does not have.
    pub fn on_step_finished(&self, attempted: Attempted, judging: Judging<'_>) -> Vec<EventKind> {
        let Attempted { step, attempt, result, duration_ms } = attempted;
        let Some(spec) = self.step_index(&step).map(|i| &self.workflow.steps[i]) else { return Vec::new() };
        let Judging { templates, masker, now, .. } = judging;
        let (outputs, output_error) = step_outputs(spec, &result.values, judging);
        let StepResult { error, exit_code, artifacts, notes, .. } = result;
        let mut events: Vec<EventKind> =
            notes.into_iter().filter(EventKind::is_note).map(|note| mask_event(masker, note)).collect();
        let mut error = error.or(output_error).map(|e| masker.mask(&e));
        let mut polled = None;
        if error.is_none()
            && let Some(until) = &spec.until
        {
            let mut context = judging.context.clone();
            if let serde_json::Value::Object(map) = &mut context {
                map.insert("outputs".to_owned(), serde_json::Value::Object(outputs.clone()));
            }
            match templates.eval_condition(until, &context) {
                Ok(true) => {}
                Ok(false) => {
                    let first = self.step(&step).and_then(|s| s.first_started_at).unwrap_or(now);
                    match next_poll(templates, spec, &context, first, now) {
                        Ok(next_at) => polled = Some(next_at),
                        Err(problem) => error = Some(problem),
                    }
                }
                Err(problem) => error = Some(format!("`until: {until}` could not be evaluated: {problem}")),
            }
        }
        events.push(match (error, polled) {
            (None, Some(next_at)) => EventKind::StepPolled { step, attempt, outputs, next_at, artifacts, duration_ms },
            (None, None) => EventKind::StepSucceeded { step, attempt, outputs, exit_code, artifacts, duration_ms },
            (Some(error), _) => {
                let retry_at = self.retry_at_after_failure(&step, attempt, now, judging.jitter_seed);
                EventKind::StepFailed { step, attempt, error, outputs, retry_at, exit_code, artifacts, duration_ms }
            }
        });
        events
    }

    /// The event that records a finished `check` of an orphan: the effect is there (the step
    /// succeeded, its outputs evaluated on what the check saw), it is not (the step runs
    /// again), or the check could not tell (an operator decides). `None` for a step the
    /// workflow does not have, or that has no check.
    pub fn on_check_finished(&self, attempted: Attempted, judging: Judging<'_>) -> Option<EventKind> {
        let Attempted { step, attempt, result, .. } = attempted;
        let spec = self.step_index(&step).map(|i| &self.workflow.steps[i])?;
        let look = spec.check.as_ref()?;
        let Judging { templates, masker, .. } = judging;
        let StepResult { values, error, artifacts, .. } = result;
        let (done, outputs, error) = match error {
            Some(error) => (false, Outputs::new(), Some(masker.mask(&error))),
            None => {
                let context = with_values(judging.context, &values);
                match templates.eval_condition(&look.done, &context) {
                    Err(problem) => (
                        false,
                        Outputs::new(),
                        Some(format!("`done: {}` could not be evaluated: {problem}", look.done)),
                    ),
                    Ok(false) => (false, Outputs::new(), None),
                    Ok(true) => match step_outputs(spec, &values, judging) {
                        (outputs, None) => (true, outputs, None),
                        (_, Some(problem)) => (false, Outputs::new(), Some(problem)),
                    },
                }
            }
        };
        Some(EventKind::StepChecked { step, attempt, done, outputs, error, artifacts })
    }

    /// The workflow's `outputs`, evaluated on the finished run, and the first that does not
    /// evaluate (the others are still kept). Masked when recorded (`Action::event_kind`).
    pub fn workflow_outputs(&self, templates: &Templates) -> (Outputs, Option<String>) {
        let mut outputs = Outputs::new();
        let mut first_error = None;
        if self.workflow.outputs.is_empty() {
            return (outputs, None);
        }
        let context = self.template_context();
        for (name, template) in &self.workflow.outputs {
            match templates.eval_value(template, &context) {
                Ok(value) => {
                    outputs.insert(name.clone(), value);
                }
                Err(problem) => {
                    first_error.get_or_insert_with(|| format!("workflow output `{name}`: {problem}"));
                }
            }
        }
        (outputs, first_error)
    }
}

/// When a poll whose `until` is still false looks again, or why it does not: the deadline
/// (`poll.timeout`, counted from `first`, the budget's first attempt) would be passed.
fn next_poll(
    templates: &Templates,
    spec: &StepSpec,
    context: &serde_json::Value,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let poll = &spec.poll;
    let interval = resolve_duration(templates, poll.interval_template.as_deref(), Some(poll.interval_ms), context);
    let limit = resolve_duration(templates, poll.timeout_template.as_deref(), Some(poll.timeout_ms), context);
    match (interval, limit) {
        (Ok(Some(interval)), Ok(Some(limit))) => {
            let interval_at = now + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
            let deadline = first + chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
            if interval_at > deadline {
                let until = spec.until.as_deref().unwrap_or_default();
                Err(format!("`until: {until}` was still false after {}", format_duration(limit)))
            } else {
                Ok(interval_at)
            }
        }
        (Err(problem), _) => Err(format!("poll.interval: {problem}")),
        (_, Err(problem)) => Err(format!("poll.timeout: {problem}")),
        _ => Err("poll: no interval or timeout".to_owned()),
    }
}

/// The step's context with the attempt's values (`stdout`, `json`, ...) in scope.
fn with_values(context: &serde_json::Value, values: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let mut context = context.clone();
    if let serde_json::Value::Object(map) = &mut context {
        for (name, value) in values {
            map.insert(name.clone(), value.clone());
        }
    }
    context
}

/// A step's outputs: the kind's provided values, then its `outputs` templates evaluated with
/// the kind's values in scope, masked. The first template that does not evaluate is returned
/// as an error (the others are still kept).
fn step_outputs(
    spec: &StepSpec,
    values: &serde_json::Map<String, serde_json::Value>,
    judging: Judging<'_>,
) -> (Outputs, Option<String>) {
    let Judging { templates, masker, provided, .. } = judging;
    let mut outputs = Outputs::new();
    for name in provided {
        if let Some(value) = values.get(name) {
            outputs.insert(name.clone(), masker.mask_json(value));
        }
    }
    if spec.outputs.is_empty() {
        return (outputs, None);
    }
    let context = with_values(judging.context, values);
    let mut first_error = None;
    for (name, template) in &spec.outputs {
        match templates.eval_value(template, &context) {
            Ok(value) => {
                outputs.insert(name.clone(), masker.mask_json(&value));
            }
            Err(problem) => {
                let hint = if template.contains("json") && !values.contains_key("json") {
                    " (the step's output is not JSON)"
                } else {
                    ""
                };
                first_error.get_or_insert_with(|| format!("output `{name}`: {problem}{hint}"));
            }
        }
    }
    (outputs, first_error)
}

/// An event with the run's secrets masked in every string it holds (a kind's notes).
pub fn mask_event(masker: &Masker, event: EventKind) -> EventKind {
    if masker.is_empty() {
        return event;
    }
    match serde_json::to_value(&event) {
        Ok(value) => serde_json::from_value::<EventKind>(masker.mask_json(&value)).unwrap_or(event),
        Err(_) => event,
    }
}

/// A duration that may be written as a template: rendered and parsed, or the fixed value.
pub fn resolve_duration(
    templates: &Templates,
    template: Option<&str>,
    fixed_ms: Option<u64>,
    context: &serde_json::Value,
) -> Result<Option<Duration>, String> {
    match template {
        None => Ok(fixed_ms.map(Duration::from_millis)),
        Some(template) => {
            let text = templates.render_text(template, context).map_err(|p| p.to_string())?;
            let duration = crate::duration::parse_duration(&text)?;
            if duration.is_zero() {
                return Err(format!("`{text}` is not longer than 0s"));
            }
            Ok(Some(duration))
        }
    }
}
