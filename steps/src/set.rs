//! The `set` kind: computes values from expressions, with no IO. Useful to
//! name a decision once (`lb_path_broken: ...`) and for benchmarks of the
//! engine itself.
//!
//! ```yaml
//! - id: verdict
//!   needs: [probe_tcp, probe_ping]
//!   set:
//!     lb_path_broken: "{{ steps.probe_ping.outputs.reachable and steps.probe_tcp.outputs.result == 'timed_out' }}"
//!     summary: "ping {{ steps.probe_ping.outputs.reachable }}, tcp {{ steps.probe_tcp.outputs.result }}"
//! ```
//!
//! Each value is a template; one that is a single `{{ expression }}` keeps
//! the expression's type. Every name becomes an output of the step.

use async_trait::async_trait;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::{Node, Value};

/// The `set` step kind.
pub struct SetKind;

#[async_trait]
impl StepKind for SetKind {
    fn name(&self) -> &'static str {
        "set"
    }

    fn runs_inline(&self) -> bool {
        true
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        match &config.value {
            Value::Map(entries) if !entries.is_empty() => {
                for (key, _) in entries {
                    if runbook_engine::ids::StepId::new(&key.name).is_err() {
                        check.error(
                            key.position,
                            &key.name,
                            format!("`{}` is not a valid output name: use lowercase letters, digits and `_`", key.name),
                        );
                    }
                }
            }
            _ => check.error(config.position, "", "expected a mapping of output names to values or templates"),
        }
        config.to_json()
    }

    /// Every name under `set` is an output.
    fn provided_outputs(&self, config: &serde_json::Value) -> Vec<String> {
        config.as_object().map(|map| map.keys().cloned().collect()).unwrap_or_default()
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        let Some(map) = request.config.as_object() else {
            return StepResult::failed("the `set` configuration is not a mapping");
        };
        let mut values = serde_json::Map::new();
        for (name, value) in map {
            let evaluated = match value {
                serde_json::Value::String(template) => match request.templates.eval_value(template, &request.context) {
                    Ok(value) => value,
                    Err(problem) => return StepResult::failed(format!("`{name}`: {problem}")),
                },
                other => other.clone(),
            };
            values.insert(name.clone(), evaluated);
        }
        StepResult::succeeded(values)
    }
}
