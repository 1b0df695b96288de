//! Turning `-i key=value` pairs into a run's typed inputs.

use crate::diag::did_you_mean;
use crate::error::{EngineError, Result};
use crate::model::{InputSpec, Workflow};

/// Typed inputs from `key=value` texts: unknown keys, bad values and missing
/// required inputs are all reported together.
pub fn resolve_inputs(
    workflow: &Workflow,
    given: &[(String, String)],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let given = given.iter().map(|(name, text)| (name.as_str(), text));
    resolve(workflow, given, |spec, text| spec.parse_text(text), "pass -i")
}

/// Typed inputs from JSON values (a parent step's `inputs` for its child, an
/// inputs file, a schedule's): each checked against its declared type,
/// defaults filled in, every problem reported.
pub fn resolve_input_values(
    workflow: &Workflow,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let given = given.iter().map(|(name, value)| (name.as_str(), value));
    resolve(workflow, given, |spec, value| spec.check_value(value), "give it in the inputs or pass -i")
}

/// Checks given values against the declarations, fills in defaults, and reports every problem.
fn resolve<'g, T: 'g>(
    workflow: &Workflow,
    given: impl Iterator<Item = (&'g str, &'g T)>,
    convert: impl Fn(&InputSpec, &T) -> std::result::Result<serde_json::Value, String>,
    how_to_pass: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut values = serde_json::Map::new();
    let mut problems = Vec::new();
    for (name, given) in given {
        match workflow.input(name) {
            Some(spec) => match convert(spec, given) {
                Ok(value) => {
                    values.insert(name.to_owned(), value);
                }
                Err(message) => problems.push(format!("input `{name}`: {message}")),
            },
            None => {
                let hint = did_you_mean(name, workflow.inputs.iter().map(|i| i.name.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                let known: Vec<&str> = workflow.inputs.iter().map(|i| i.name.as_str()).collect();
                let list = if known.is_empty() {
                    "it takes none".to_owned()
                } else {
                    format!("it takes {}", known.join(", "))
                };
                problems.push(format!("unknown input `{name}`{hint}; {list}"));
            }
        }
    }
    for spec in &workflow.inputs {
        if values.contains_key(&spec.name) {
            continue;
        }
        match &spec.default {
            Some(default) => {
                values.insert(spec.name.clone(), default.clone());
            }
            None if spec.required => {
                let about =
                    if spec.description.is_empty() { String::new() } else { format!(" ({})", spec.description) };
                problems.push(format!(
                    "missing required input `{}`{about}: {how_to_pass} {}=<{}>",
                    spec.name,
                    spec.name,
                    spec.input_type.name()
                ));
            }
            None => {
                values.insert(spec.name.clone(), serde_json::Value::Null);
            }
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(EngineError::Inputs { workflow: workflow.name.clone(), problems })
    }
}

/// Splits `key=value`.
pub fn parse_assignment(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::workflow;

    #[test]
    fn inputs_are_typed_defaulted_and_checked_together() {
        let loaded = workflow(
            "
name: i
inputs:
  ip: { type: ip, required: true }
  port: { type: int, default: 80 }
  flag: { type: bool, required: false }
steps:
  - id: a
    run: echo
",
        );
        let ok = resolve_inputs(&loaded.workflow, &[("ip".into(), "127.0.0.1".into())]).expect("valid");
        assert_eq!(ok["port"], serde_json::json!(80));
        assert_eq!(ok["flag"], serde_json::Value::Null);
        let Err(EngineError::Inputs { problems, .. }) =
            resolve_inputs(&loaded.workflow, &[("ipp".into(), "x".into()), ("port".into(), "eighty".into())])
        else {
            panic!("expected input problems")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("did you mean `ip`"), "{problems:?}");
        assert!(problems[1].contains("not an integer"), "{problems:?}");
        assert!(problems[2].contains("missing required input `ip`"), "{problems:?}");
    }
}
