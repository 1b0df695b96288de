//! The document: its top-level keys, the order in which its parts are checked, the
//! list of `steps`, `on_failure` and the workflow's `outputs`.

use crate::ids::{StepId, check_workflow_name};
use crate::model::{DEFAULT_MAX_PARALLEL, InputSpec, Workflow};
use crate::yaml::{Key, Node, Value};

use super::references::workflow_output_reference;
use super::step::DraftStep;
use super::{Checker, join};

const WORKFLOW_KEYS: &[&str] =
    &["name", "description", "inputs", "secrets", "steps", "outputs", "on_failure", "schedule", "max_parallel"];

/// The key of the `on_failure: { workflow: NAME, inputs: {...} }` shorthand. It is spelled
/// like the step kind it stands for, a `workflow` step that runs another workflow as a
/// child run: the handler step it builds selects that kind by this same key.
const SHORTHAND_KIND: &str = "workflow";

impl Checker<'_> {
    /// The whole workflow. Steps are checked once `inputs` and `secrets` are known, and
    /// the workflow's `outputs` and the schedules' inputs once the steps are.
    pub(super) fn workflow(&mut self, root: &Node) -> Option<Workflow> {
        let entries = self.mapping(root, "", "a mapping with `name` and `steps`")?;
        let mut name = None;
        let mut description = String::new();
        let mut inputs = Vec::new();
        let mut secrets = Vec::new();
        let mut steps_node = None;
        let mut outputs_node = None;
        let mut on_failure_node = None;
        let mut schedules = Vec::new();
        let mut max_parallel = DEFAULT_MAX_PARALLEL;
        for (key, value) in entries {
            match key.name.as_str() {
                "name" => {
                    if let Some(text) = self.string(value, "name") {
                        match check_workflow_name(&text) {
                            Ok(()) => name = Some(text),
                            Err(message) => self.error(value.position, "name", message),
                        }
                    }
                }
                "description" => description = self.string(value, "description").unwrap_or_default(),
                "inputs" => inputs = self.inputs(value),
                "secrets" => secrets = self.secrets(value),
                "steps" => steps_node = Some(value),
                "outputs" => outputs_node = Some(value),
                "on_failure" => on_failure_node = Some(value),
                "schedule" => schedules = self.schedules(value),
                "max_parallel" => match &value.value {
                    Value::Int(n) if *n >= 1 => max_parallel = usize::try_from(*n).unwrap_or(usize::MAX),
                    _ => self.error(value.position, "max_parallel", "expected a whole number of at least 1"),
                },
                _ => self.unknown_key(key, "", WORKFLOW_KEYS),
            }
        }
        if name.is_none() && !entries.iter().any(|(k, _)| k.name == "name") {
            self.error(root.position, "name", "missing key `name`: every workflow has a name ([a-z0-9-]+)");
        }
        self.secret_names = secrets.clone();
        let mut outputs = Vec::new();
        let mut steps = Vec::new();
        match steps_node {
            Some(node) => {
                // Without a list of steps there is no graph to check, nor outputs to check against it.
                if let Some(drafts) = self.steps(node, on_failure_node) {
                    self.check_graph(&drafts, &inputs);
                    if let Some(outputs_node) = outputs_node {
                        outputs = self.workflow_outputs(outputs_node, &drafts, &inputs);
                    }
                    steps = drafts.into_iter().map(|d| d.spec).collect();
                }
            }
            None => self.error(root.position, "steps", "missing key `steps`: a workflow needs at least one step"),
        }
        self.check_schedule_inputs(&inputs);
        Some(Workflow { name: name?, description, inputs, secrets, steps, schedules, outputs, max_parallel })
    }

    /// The `steps` and then the `on_failure` steps, each as read; `None` when `steps` is not a list of steps.
    fn steps(&mut self, node: &Node, on_failure: Option<&Node>) -> Option<Vec<DraftStep>> {
        let Value::Seq(items) = &node.value else {
            self.error(node.position, "steps", format!("expected a list of steps, found {}", node.value.kind_name()));
            return None;
        };
        if items.is_empty() {
            self.error(node.position, "steps", "a workflow needs at least one step");
            return None;
        }
        let mut drafts: Vec<DraftStep> =
            items.iter().enumerate().filter_map(|(i, item)| self.step(item, &format!("steps[{i}]"))).collect();
        if let Some(node) = on_failure {
            drafts.extend(self.handlers(node));
        }
        Some(drafts)
    }

    /// The workflow's `outputs`: templates over inputs and any step, evaluated when the run ends.
    fn workflow_outputs(&mut self, node: &Node, drafts: &[DraftStep], inputs: &[InputSpec]) -> Vec<(String, String)> {
        let Some(entries) = self.mapping(node, "outputs", "a mapping of output names to templates") else {
            return Vec::new();
        };
        let mut outputs = Vec::new();
        for (key, value) in entries {
            let field = join("outputs", &key.name);
            if StepId::new(&key.name).is_err() {
                let message =
                    format!("`{}` is not a valid output name: use lowercase letters, digits and `_`", key.name);
                self.error(key.position, &field, message);
                continue;
            }
            let Some(template) = self.scalar_text(value, &field) else { continue };
            match self.templates.template_variables(&template) {
                Ok(variables) => {
                    for variable in variables {
                        if let Err(message) = workflow_output_reference(&variable, drafts, inputs) {
                            self.error(value.position, &field, message);
                        }
                    }
                }
                Err(problem) => self.error(value.position, &field, format!("malformed template: {problem}")),
            }
            outputs.push((key.name.clone(), template));
        }
        outputs
    }

    /// `on_failure`: a list of steps, or `{ workflow: NAME, inputs: {...} }` for one `workflow` step.
    fn handlers(&mut self, node: &Node) -> Vec<DraftStep> {
        let mut drafts = Vec::new();
        match &node.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    drafts.extend(self.step(item, &format!("on_failure[{i}]")));
                }
            }
            Value::Map(entries) if entries.iter().any(|(k, _)| k.name == SHORTHAND_KIND) => {
                let mut config = Vec::new();
                for (key, value) in entries {
                    match key.name.as_str() {
                        SHORTHAND_KIND => {
                            config.push((Key { name: "name".to_owned(), position: key.position }, value.clone()))
                        }
                        "inputs" => config.push((key.clone(), value.clone())),
                        _ => self.unknown_key(key, "on_failure", &[SHORTHAND_KIND, "inputs"]),
                    }
                }
                let id = Node { value: Value::String("on_failure".to_owned()), position: node.position };
                let step = Node {
                    value: Value::Map(vec![
                        (Key { name: "id".to_owned(), position: node.position }, id),
                        (
                            Key { name: SHORTHAND_KIND.to_owned(), position: node.position },
                            Node { value: Value::Map(config), position: node.position },
                        ),
                    ]),
                    position: node.position,
                };
                drafts.extend(self.step(&step, "on_failure"));
            }
            other => self.error(
                node.position,
                "on_failure",
                format!("expected a list of steps or a mapping with `workflow`, found {}", other.kind_name()),
            ),
        }
        for draft in &mut drafts {
            draft.spec.handler = true;
        }
        drafts
    }
}
