//! The `workflow` kind: runs another workflow as a child run.
//!
//! ```yaml
//! - id: diagnose
//!   workflow:
//!     name: diagnose              # beside this file, then in --workflows; or a path
//!     inputs:
//!       public_ip: "{{ inputs.public_ip }}"
//! ```
//!
//! `workflow: diagnose` is short for `workflow: { name: diagnose }`. The
//! child is its own run with its own event stream, linked to the parent
//! step; its workflow `outputs` become the step's outputs, with `run_id` and
//! `status`. Resuming the parent takes the child up where it stopped, and a
//! retry of the step resumes a failed child rather than starting over.

use async_trait::async_trait;
use runbook_engine::diag::did_you_mean;
use runbook_engine::step::{ChildRequest, ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::{Node, Value};
use std::path::Path;

/// The `workflow` step kind.
pub struct WorkflowKind;

const KEYS: &[&str] = &["name", "inputs"];

#[async_trait]
impl StepKind for WorkflowKind {
    fn name(&self) -> &'static str {
        "workflow"
    }

    fn starts_child_runs(&self) -> bool {
        true
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        let (name, inputs) = match &config.value {
            Value::String(name) => (Some((name.clone(), config.position)), None),
            Value::Map(entries) => {
                let mut name = None;
                let mut inputs = None;
                for (key, value) in entries {
                    match key.name.as_str() {
                        "name" => match &value.value {
                            Value::String(text) if !text.trim().is_empty() => {
                                name = Some((text.clone(), value.position))
                            }
                            _ => check.error(value.position, "name", "expected the name or path of a workflow"),
                        },
                        "inputs" => match &value.value {
                            Value::Map(items) => inputs = Some(items.clone()),
                            _ => check.error(value.position, "inputs", "expected a mapping of input names to values"),
                        },
                        other => {
                            let hint = did_you_mean(other, KEYS.iter().copied())
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            check.error(
                                key.position,
                                other,
                                format!("unknown key `{other}`{hint}; expected name, inputs"),
                            );
                        }
                    }
                }
                if name.is_none() && !entries.iter().any(|(k, _)| k.name == "name") {
                    check.error(config.position, "", "missing key `name`: the workflow to run");
                }
                (name, inputs)
            }
            other => {
                check.error(
                    config.position,
                    "",
                    format!("expected a workflow name or a mapping with `name`, found {}", other.kind_name()),
                );
                (None, None)
            }
        };
        let mut json = serde_json::Map::new();
        if let Some((name, position)) = &name {
            json.insert("name".to_owned(), serde_json::Value::String(name.clone()));
            if !name.contains("{{") {
                match child_interface(check.file(), name) {
                    Some(interface) => {
                        check_inputs(&interface, inputs.as_deref().unwrap_or(&[]), *position, check);
                        json.insert("outputs".to_owned(), serde_json::Value::from(interface.outputs));
                    }
                    None => check.error(
                        *position,
                        "name",
                        format!(
                            "no workflow `{name}` beside {} (a name is looked up as NAME.yaml in the same directory)",
                            check.file().display()
                        ),
                    ),
                }
            }
        }
        let inputs_json: serde_json::Map<String, serde_json::Value> =
            inputs.unwrap_or_default().iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect();
        json.insert("inputs".to_owned(), serde_json::Value::Object(inputs_json));
        serde_json::Value::Object(json)
    }

    fn provided_outputs(&self, config: &serde_json::Value) -> Vec<String> {
        let mut names = vec!["run_id".to_owned(), "status".to_owned()];
        if let Some(outputs) = config.get("outputs").and_then(|o| o.as_array()) {
            names.extend(outputs.iter().filter_map(|o| o.as_str().map(str::to_owned)));
        }
        names
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        let Some(name) = request.config.get("name").and_then(|n| n.as_str()) else {
            return StepResult::failed("the `workflow` configuration has no name");
        };
        let name = match request.templates.render_text(name, &request.context) {
            Ok(name) => name,
            Err(problem) => return StepResult::failed(format!("cannot render the workflow name: {problem}")),
        };
        let mut inputs = serde_json::Map::new();
        if let Some(given) = request.config.get("inputs").and_then(|i| i.as_object()) {
            for (key, value) in given {
                let value = match value {
                    serde_json::Value::String(template) => {
                        match request.templates.eval_value(template, &request.context) {
                            Ok(value) => value,
                            Err(problem) => return StepResult::failed(format!("input `{key}`: {problem}")),
                        }
                    }
                    other => other.clone(),
                };
                inputs.insert(key.clone(), value);
            }
        }
        let outcome =
            request.children.run_child(ChildRequest { workflow: name, inputs, cancel: request.cancel.clone() }).await;
        let mut values = outcome.outputs;
        if let Some(run_id) = outcome.run_id {
            values.insert("run_id".to_owned(), serde_json::Value::from(run_id.get()));
        }
        if let Some(status) = outcome.status {
            values.insert("status".to_owned(), serde_json::Value::String(status));
        }
        match outcome.error {
            None => StepResult::succeeded(values),
            Some(error) => StepResult::failed_with(error, values),
        }
    }
}

/// What the parent needs to know of a child workflow file to check a call to it.
struct ChildInterface {
    /// Input names, and whether each must be given.
    inputs: Vec<(String, bool)>,
    outputs: Vec<String>,
}

/// Reads the inputs and outputs a child workflow declares (the child is validated in full when it starts).
fn child_interface(parent: &Path, name: &str) -> Option<ChildInterface> {
    let dir = parent.parent()?;
    let path = [dir.join(name), dir.join(format!("{name}.yaml")), dir.join(format!("{name}.yml"))]
        .into_iter()
        .find(|p| p.is_file())?;
    let source = std::fs::read_to_string(path).ok()?;
    let root = runbook_engine::yaml::parse(&source).ok()?;
    let Value::Map(entries) = &root.value else {
        return Some(ChildInterface { inputs: Vec::new(), outputs: Vec::new() });
    };
    let mut interface = ChildInterface { inputs: Vec::new(), outputs: Vec::new() };
    for (key, value) in entries {
        match (key.name.as_str(), &value.value) {
            ("inputs", Value::Map(inputs)) => {
                for (input, spec) in inputs {
                    let required = match &spec.value {
                        Value::Map(fields) => {
                            let has_default = fields.iter().any(|(k, _)| k.name == "default");
                            let required = fields.iter().find(|(k, _)| k.name == "required").map(|(_, v)| &v.value);
                            match required {
                                Some(Value::Bool(flag)) => *flag,
                                _ => !has_default,
                            }
                        }
                        _ => true,
                    };
                    interface.inputs.push((input.name.clone(), required));
                }
            }
            ("outputs", Value::Map(outputs)) => interface.outputs.extend(outputs.iter().map(|(k, _)| k.name.clone())),
            _ => {}
        }
    }
    Some(interface)
}

fn check_inputs(
    interface: &ChildInterface,
    given: &[(runbook_engine::yaml::Key, Node)],
    position: runbook_engine::diag::Position,
    check: &mut ConfigCheck<'_>,
) {
    for (key, _) in given {
        if !interface.inputs.iter().any(|(name, _)| name == &key.name) {
            let hint = did_you_mean(&key.name, interface.inputs.iter().map(|(n, _)| n.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            check.error(
                key.position,
                &format!("inputs.{}", key.name),
                format!("the child workflow has no input `{}`{hint}", key.name),
            );
        }
    }
    for (name, required) in &interface.inputs {
        if *required && !given.iter().any(|(k, _)| &k.name == name) {
            check.error(position, "inputs", format!("the child workflow requires input `{name}`"));
        }
    }
}
