//! Helpers for the engine's unit tests: a step kind that does nothing, and workflows from YAML text.

use async_trait::async_trait;
use std::path::Path;

use crate::load::{LoadedWorkflow, load_str};
use crate::step::{ConfigCheck, Registry, StepKind, StepRequest, StepResult};
use crate::yaml::{Node, Value};

/// A `run` kind for tests of the model and state machine; it is never executed.
pub struct FakeRun;

#[async_trait]
impl StepKind for FakeRun {
    fn name(&self) -> &'static str {
        "run"
    }
    fn output_locals(&self) -> &'static [&'static str] {
        &["stdout", "json", "exit_code"]
    }
    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        if !matches!(config.value, Value::String(_)) {
            check.error(config.position, "", "expected a command (a string)");
        }
        config.to_json()
    }
    async fn execute(&self, _request: StepRequest) -> StepResult {
        StepResult::failed("the test kind does not execute")
    }
}

/// A second kind so that "two kinds" can be tested.
pub struct FakeSet;

#[async_trait]
impl StepKind for FakeSet {
    fn name(&self) -> &'static str {
        "set"
    }
    fn check_config(&self, config: &Node, _check: &mut ConfigCheck<'_>) -> serde_json::Value {
        config.to_json()
    }
    async fn execute(&self, _request: StepRequest) -> StepResult {
        StepResult::failed("the test kind does not execute")
    }
}

pub fn registry() -> Registry {
    Registry::new().with(FakeRun).with(FakeSet)
}

#[track_caller]
pub fn workflow(yaml: &str) -> LoadedWorkflow {
    match load_str(Path::new("test.yaml"), yaml, &registry()) {
        Ok(loaded) => loaded,
        Err(diagnostics) => panic!("workflow does not load:\n{diagnostics}"),
    }
}
