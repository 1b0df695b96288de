//! The `approval` kind: a human gate.
//!
//! ```yaml
//! - id: approve_recreate
//!   approval:
//!     prompt: "Recreate Service {{ inputs.service }}? Expect 1-2 minutes of outage."
//!     approvers: [alice, bob]   # who may answer (their login name); anyone when absent
//!     timeout: 30m              # counted from the first time the step started, across resumes
//!     on_timeout: reject        # or approve
//! ```
//!
//! The step waits for `runbook approve RUN STEP [--comment C]` or `runbook
//! reject RUN STEP`, recorded as `step_approved` / `step_rejected` events
//! with who answered. A rejection, or a timeout with `on_timeout: reject`, is
//! the step's failure, so the graph can branch (`if: steps.x.outcome ==
//! 'failure'`). The deadline comes from the log, so a resumed run neither
//! restarts the clock nor silently goes on when it has expired.

use async_trait::async_trait;
use chrono::Utc;
use runbook_engine::diag::did_you_mean;
use runbook_engine::duration::{format_duration, parse_duration};
use runbook_engine::state::Answer;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::{Node, Value};
use std::time::Duration;

/// The `approval` step kind.
pub struct ApprovalKind;

const KEYS: &[&str] = &["prompt", "approvers", "timeout", "on_timeout"];
/// How long an approval waits when the workflow does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

#[async_trait]
impl StepKind for ApprovalKind {
    fn name(&self) -> &'static str {
        "approval"
    }

    fn takes_answers(&self) -> bool {
        true
    }

    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        ["approved", "by", "comment", "prompt"].map(str::to_owned).to_vec()
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        let Value::Map(entries) = &config.value else {
            check.error(
                config.position,
                "",
                "expected a mapping with `prompt` (and `approvers`, `timeout`, `on_timeout`)",
            );
            return config.to_json();
        };
        let mut json = serde_json::Map::new();
        for (key, value) in entries {
            match key.name.as_str() {
                "prompt" => match &value.value {
                    Value::String(text) => {
                        json.insert("prompt".to_owned(), serde_json::Value::String(text.clone()));
                    }
                    _ => check.error(value.position, "prompt", "expected the question to ask"),
                },
                "approvers" => match &value.value {
                    Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::String(_))) => {
                        json.insert("approvers".to_owned(), value.to_json());
                    }
                    _ => check.error(value.position, "approvers", "expected a list of login names"),
                },
                "timeout" if matches!(&value.value, Value::String(t) if t.contains("{{")) => {
                    // Rendered when the step runs.
                    json.insert("timeout".to_owned(), value.to_json());
                }
                "timeout" => match value.scalar_text().map(|t| parse_duration(&t)) {
                    Some(Ok(duration)) if !duration.is_zero() => {
                        json.insert("timeout_ms".to_owned(), serde_json::Value::from(duration.as_millis() as u64));
                    }
                    Some(Err(message)) => check.error(value.position, "timeout", message),
                    _ => check.error(value.position, "timeout", "expected a duration longer than 0s, like 30m"),
                },
                "on_timeout" => match &value.value {
                    Value::String(choice) if choice == "reject" || choice == "approve" => {
                        json.insert("on_timeout".to_owned(), serde_json::Value::String(choice.clone()));
                    }
                    _ => check.error(value.position, "on_timeout", "expected `reject` or `approve`"),
                },
                other => {
                    let hint = did_you_mean(other, KEYS.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    check.error(
                        key.position,
                        other,
                        format!("unknown key `{other}`{hint}; expected one of: {}", KEYS.join(", ")),
                    );
                }
            }
        }
        if !json.contains_key("prompt") && !entries.iter().any(|(k, _)| k.name == "prompt") {
            check.error(config.position, "", "missing key `prompt`: the question the approver answers");
        }
        serde_json::Value::Object(json)
    }

    async fn execute(&self, mut request: StepRequest) -> StepResult {
        let template = request.config.get("prompt").and_then(|p| p.as_str()).unwrap_or_default().to_owned();
        let prompt = match request.templates.render_text(&template, &request.context) {
            Ok(prompt) => prompt,
            Err(problem) => return StepResult::failed(format!("cannot render the prompt: {problem}")),
        };
        let timeout = match request.config.get("timeout").and_then(|t| t.as_str()) {
            Some(template) => {
                let rendered = match request.templates.render_text(template, &request.context) {
                    Ok(text) => text,
                    Err(problem) => return StepResult::failed(format!("cannot render the timeout: {problem}")),
                };
                match parse_duration(&rendered) {
                    Ok(duration) if !duration.is_zero() => duration,
                    Ok(_) => return StepResult::failed("the approval timeout is 0s"),
                    Err(message) => return StepResult::failed(format!("timeout: {message}")),
                }
            }
            None => {
                request.config.get("timeout_ms").and_then(|t| t.as_u64()).map_or(DEFAULT_TIMEOUT, Duration::from_millis)
            }
        };
        let approve_on_timeout = request.config.get("on_timeout").and_then(|t| t.as_str()) == Some("approve");
        let deadline = request.first_started_at + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let mut values = serde_json::Map::new();
        values.insert("prompt".to_owned(), serde_json::Value::String(prompt.clone()));
        loop {
            let current: Option<Answer> = request.answer.borrow_and_update().clone();
            if let Some(answer) = current {
                values.insert("approved".to_owned(), serde_json::Value::Bool(answer.approved));
                values.insert("by".to_owned(), serde_json::Value::String(answer.by.clone()));
                values.insert(
                    "comment".to_owned(),
                    answer.comment.clone().map_or(serde_json::Value::Null, serde_json::Value::String),
                );
                if answer.approved {
                    return StepResult::succeeded(values);
                }
                let why = answer.comment.map(|c| format!(": {c}")).unwrap_or_default();
                return StepResult::failed_with(format!("rejected by {}{why}", answer.by), values);
            }
            let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                values.insert("approved".to_owned(), serde_json::Value::Bool(approve_on_timeout));
                values.insert("by".to_owned(), serde_json::Value::String("timeout".to_owned()));
                values.insert("comment".to_owned(), serde_json::Value::Null);
                let waited = format_duration(timeout);
                if approve_on_timeout {
                    return StepResult::succeeded(values);
                }
                return StepResult::failed_with(format!("no answer within {waited}; on_timeout: reject"), values);
            }
            tokio::select! {
                changed = request.answer.changed() => {
                    if changed.is_err() {
                        // The executor went away: it is stopping this step.
                        return StepResult::failed_with("stopped", values);
                    }
                }
                () = tokio::time::sleep(left) => {}
                () = request.cancel.cancelled() => return StepResult::failed_with("stopped", values),
            }
        }
    }
}
