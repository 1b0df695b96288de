//! One step, read on its own: its common keys (`id`, `description`, `continue_on_error`,
//! `idempotent`), its kind and the kind's configuration, `check`, `outputs` and `env`.
//! The flow keys are read by `flow`; what the step's templates refer to is checked
//! later, by `references`, once every step is known.

use std::sync::Arc;

use crate::diag::Position;
use crate::ids::StepId;
use crate::model::{CheckSpec, StepSpec};
use crate::step::{ConfigCheck, StepKind};
use crate::yaml::{Key, Node, Value};

use super::flow::Flow;
use super::{Checker, TemplateSite, is_env_name, join};

/// Every key a step may have besides its kind, in the order messages list them.
const STEP_KEYS: &[&str] = &[
    "id",
    "description",
    "needs",
    "if",
    "timeout",
    "retry",
    "continue_on_error",
    "idempotent",
    "outputs",
    "env",
    "until",
    "poll",
    "check",
];

/// A step as read, before the graph checks.
pub(super) struct DraftStep {
    pub(super) spec: StepSpec,
    pub(super) position: Position,
    pub(super) field: String,
    /// Positions of the `needs` entries, for messages about them.
    pub(super) needs_positions: Vec<Position>,
    /// Every template in the step with where it is and which locals it may use.
    pub(super) templates: Vec<TemplateSite>,
    pub(super) condition_position: Option<Position>,
    pub(super) until_position: Option<Position>,
    /// Where the `check`'s `done` expression is.
    pub(super) check_done_position: Option<Position>,
    pub(super) output_locals: &'static [&'static str],
    /// Outputs the kind provides without a declaration.
    pub(super) provided_outputs: Vec<String>,
}

/// The keys of one step as read, before its kind is resolved.
#[derive(Default)]
struct StepKeys<'n> {
    id: Option<StepId>,
    description: String,
    continue_on_error: bool,
    idempotent: Option<bool>,
    flow: Flow,
    /// `check`, read once the step's kind and `idempotent` are known.
    check: Option<(&'n Key, &'n Node)>,
    outputs: Vec<(String, String)>,
    env: Vec<(String, String)>,
    /// Keys that name a registered kind: a step has exactly one.
    kinds: Vec<(&'n Key, &'n Node)>,
    templates: Vec<TemplateSite>,
}

impl Checker<'_> {
    /// A step of `steps` or `on_failure`; `None` when it has no valid id or no single kind.
    pub(super) fn step(&mut self, node: &Node, field: &str) -> Option<DraftStep> {
        let entries = self.mapping(node, field, "a step (a mapping with `id` and a kind such as `run`)")?;
        let mut keys = StepKeys::default();
        for (key, value) in entries {
            self.step_key(key, value, field, &mut keys);
        }
        let label = keys.id.as_ref().map_or_else(|| field.to_owned(), |i| format!("step `{i}`"));
        if keys.id.is_none() && !entries.iter().any(|(k, _)| k.name == "id") {
            self.error(node.position, join(field, "id"), "missing key `id`: every step has an id");
        }
        let (kind_key, kind_node) = self.one_kind(&keys.kinds, node, field, &label)?;
        let (kind, config) = self.kind_config(&kind_key.name, kind_node, field, &mut keys.templates)?;
        let (check, check_done_position) = match keys.check {
            Some((key, value)) => self.step_check(key, value, keys.idempotent, field, &mut keys.templates),
            None => (None, None),
        };
        let provided_outputs = kind.provided_outputs(&config);
        let idempotent = keys.idempotent.unwrap_or_else(|| kind.idempotent_by_default(&config));
        let Flow { needs, needs_positions, condition, timeout_ms, timeout_template, retry, until, poll } = keys.flow;
        let (condition, condition_position) = condition.unzip();
        let (until, until_position) = until.unzip();
        let spec = StepSpec {
            id: keys.id?,
            description: keys.description,
            needs,
            condition,
            kind: kind.name().to_owned(),
            config,
            timeout_ms,
            timeout_template,
            retry,
            continue_on_error: keys.continue_on_error,
            handler: false,
            check,
            idempotent,
            outputs: keys.outputs,
            env: keys.env,
            until,
            poll,
        };
        Some(DraftStep {
            spec,
            position: node.position,
            field: field.to_owned(),
            needs_positions,
            templates: keys.templates,
            condition_position,
            until_position,
            check_done_position,
            output_locals: kind.output_locals(),
            provided_outputs,
        })
    }

    /// Reads one key of a step into `keys`: a common key, a flow key, or the name of a kind.
    fn step_key<'n>(&mut self, key: &'n Key, value: &'n Node, field: &str, keys: &mut StepKeys<'n>) {
        let sub = join(field, &key.name);
        if self.flow_key(key, value, &sub, &mut keys.flow, &mut keys.templates) {
            return;
        }
        match key.name.as_str() {
            "id" => {
                if let Some(text) = self.scalar_text(value, &sub) {
                    match StepId::new(&text) {
                        Ok(step_id) => keys.id = Some(step_id),
                        Err(message) => self.error(value.position, &sub, message),
                    }
                }
            }
            "description" => keys.description = self.string(value, &sub).unwrap_or_default(),
            "continue_on_error" => keys.continue_on_error = self.boolean(value, &sub).unwrap_or(false),
            "idempotent" => keys.idempotent = self.boolean(value, &sub),
            "check" => keys.check = Some((key, value)),
            "outputs" => self.step_outputs(value, &sub, &mut keys.outputs, &mut keys.templates),
            "env" => self.step_env(value, &sub, &mut keys.env, &mut keys.templates),
            name if self.registry.get(name).is_some() => keys.kinds.push((key, value)),
            _ => {
                let known: Vec<&str> = STEP_KEYS.iter().copied().chain(self.registry.names()).collect();
                self.unknown_key(key, field, &known);
            }
        }
    }

    /// The one kind among a step's keys; `label` names the step in messages.
    fn one_kind<'n>(
        &mut self,
        kinds: &[(&'n Key, &'n Node)],
        node: &Node,
        field: &str,
        label: &str,
    ) -> Option<(&'n Key, &'n Node)> {
        match kinds {
            [one] => Some(*one),
            [] => {
                let names: Vec<String> = self.registry.names().map(|k| format!("`{k}`")).collect();
                self.error(node.position, field, format!("{label} has no kind: add one of {}", names.join(", ")));
                None
            }
            [first, second, ..] => {
                self.error(
                    second.0.position,
                    field,
                    format!("{label} has two kinds, `{}` and `{}`: a step does one thing", first.0.name, second.0.name),
                );
                None
            }
        }
    }

    /// The kind named `name` and its configuration `node` as the kind checks it, the
    /// templates in it collected for the reference checks; `None` for a kind not registered.
    fn kind_config(
        &mut self,
        name: &str,
        node: &Node,
        field: &str,
        templates: &mut Vec<TemplateSite>,
    ) -> Option<(Arc<dyn StepKind>, serde_json::Value)> {
        let kind = self.registry.get(name)?.clone();
        let kind_field = join(field, name);
        let config = {
            let mut check = ConfigCheck::new(self.file, kind_field.clone(), &mut self.diagnostics);
            kind.check_config(node, &mut check)
        };
        collect_templates(node, &kind_field, templates);
        Some((kind, config))
    }

    /// A step's `check`, which only a step marked `idempotent: false` may have; the check and
    /// where its `done` expression is, when it is valid.
    fn step_check(
        &mut self,
        key: &Key,
        node: &Node,
        idempotent: Option<bool>,
        field: &str,
        templates: &mut Vec<TemplateSite>,
    ) -> (Option<CheckSpec>, Option<Position>) {
        let check = self.check(node, &join(field, "check"), templates);
        if idempotent != Some(false) {
            self.error(
                key.position,
                join(field, "check"),
                "`check` is for steps marked `idempotent: false`: a step safe to repeat is simply run again",
            );
        }
        check.unzip()
    }

    /// `check: { <kind>: CONFIG, done: EXPRESSION }`: a read-only look, and when its result means "it took effect".
    fn check(&mut self, node: &Node, field: &str, templates: &mut Vec<TemplateSite>) -> Option<(CheckSpec, Position)> {
        let entries = self.mapping(node, field, "a mapping with a kind (such as `run`) and `done`")?;
        let mut done = None;
        let mut kinds = Vec::new();
        for (key, value) in entries {
            let sub = join(field, &key.name);
            match key.name.as_str() {
                "done" => done = self.condition(value, &sub).map(|expression| (expression, value.position)),
                name if self.registry.get(name).is_some() => kinds.push((key, value)),
                _ => {
                    let known: Vec<&str> = std::iter::once("done").chain(self.registry.names()).collect();
                    self.unknown_key(key, field, &known);
                }
            }
        }
        let (kind_key, kind_node) = match kinds.as_slice() {
            [one] => *one,
            _ => {
                self.error(node.position, field, "a check has exactly one kind (such as `run`): the read-only look");
                return None;
            }
        };
        let Some((done, position)) = done else {
            if !entries.iter().any(|(k, _)| k.name == "done") {
                self.error(
                    node.position,
                    field,
                    "missing key `done`: the expression that is true when the effect is there",
                );
            }
            return None;
        };
        let (kind, config) = self.kind_config(&kind_key.name, kind_node, field, templates)?;
        Some((CheckSpec { kind: kind.name().to_owned(), config, done }, position))
    }

    /// A step's `outputs`: names and the templates that compute them once the step has run.
    fn step_outputs(
        &mut self,
        node: &Node,
        field: &str,
        outputs: &mut Vec<(String, String)>,
        templates: &mut Vec<TemplateSite>,
    ) {
        let Some(items) = self.mapping(node, field, "a mapping of output names to templates") else { return };
        for (key, value) in items {
            let output_field = join(field, &key.name);
            if StepId::new(&key.name).is_err() {
                self.error(
                    key.position,
                    &output_field,
                    format!("`{}` is not a valid output name: use lowercase letters, digits and `_`", key.name),
                );
                continue;
            }
            if let Some(template) = self.scalar_text(value, &output_field) {
                templates.push(TemplateSite {
                    field: output_field,
                    position: value.position,
                    source: template.clone(),
                    in_outputs: true,
                });
                outputs.push((key.name.clone(), template));
            }
        }
    }

    /// A step's `env`: environment variable names and their values, templates.
    fn step_env(
        &mut self,
        node: &Node,
        field: &str,
        env: &mut Vec<(String, String)>,
        templates: &mut Vec<TemplateSite>,
    ) {
        let Some(items) = self.mapping(node, field, "a mapping of environment variable names to values") else {
            return;
        };
        for (key, value) in items {
            let env_field = join(field, &key.name);
            if !is_env_name(&key.name) {
                let message = format!(
                    "`{}` is not an environment variable name: use letters, digits and `_`, not starting with a digit",
                    key.name
                );
                self.error(key.position, &env_field, message);
                continue;
            }
            if let Some(template) = self.scalar_text(value, &env_field) {
                templates.push(TemplateSite {
                    field: env_field,
                    position: value.position,
                    source: template.clone(),
                    in_outputs: false,
                });
                env.push((key.name.clone(), template));
            }
        }
    }
}

/// Every string under a kind's configuration is a template.
fn collect_templates(node: &Node, field: &str, out: &mut Vec<TemplateSite>) {
    match &node.value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => {
            out.push(TemplateSite {
                field: field.to_owned(),
                position: node.position,
                source: s.clone(),
                in_outputs: false,
            });
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_templates(item, &format!("{field}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                collect_templates(value, &join(field, &key.name), out);
            }
        }
        _ => {}
    }
}
