//! Loading a workflow: YAML text → [`Node`] tree → validated [`Workflow`].
//!
//! Validation never stops at the first problem: it walks the whole file and
//! returns every [`Diagnostic`], each with `file:line:col` and the field, so
//! that one `runbook validate` shows all there is to fix. Nothing runs until
//! a workflow loads without diagnostics.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, Position, did_you_mean};
use crate::duration::parse_duration;
use crate::ids::{StepId, check_workflow_name};
use crate::model::{
    DEFAULT_MAX_PARALLEL, InputSpec, InputType, PollPolicy, RetryPolicy, ScheduleSpec, StepSpec, Workflow,
};
use crate::schedule::{parse_cron, parse_timezone};
use crate::step::{ConfigCheck, Registry};
use crate::template::{TemplateProblem, Templates};
use crate::yaml::{self, Key, Node, Value};

/// A workflow that passed validation, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    pub workflow: Workflow,
    /// sha256 of the file's bytes.
    pub source_hash: String,
    pub path: PathBuf,
}

/// Reads and validates a workflow file.
pub fn load_file(path: &Path, registry: &Registry) -> Result<LoadedWorkflow, Diagnostics> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(path, Position::default(), "", format!("cannot read the file: {e}"))])
    })?;
    let source = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Diagnostics(vec![Diagnostic::new(
            path,
            Position::new(clamp(line), clamp(column)),
            "",
            "the file is not UTF-8 text",
        )])
    })?;
    load_str(path, &source, registry)
}

/// Validates workflow text; `path` is used in messages.
pub fn load_str(path: &Path, source: &str, registry: &Registry) -> Result<LoadedWorkflow, Diagnostics> {
    let root = yaml::parse(source).map_err(|e| Diagnostics(vec![Diagnostic::new(path, e.position, "", e.message)]))?;
    let mut checker = Checker {
        file: path,
        registry,
        diagnostics: Vec::new(),
        templates: Templates::new(),
        schedule_inputs: Vec::new(),
        secret_names: Vec::new(),
    };
    let workflow = checker.workflow(&root);
    match workflow {
        Some(workflow) if checker.diagnostics.is_empty() => Ok(LoadedWorkflow {
            workflow,
            source_hash: hex::encode(Sha256::digest(source.as_bytes())),
            path: path.to_path_buf(),
        }),
        _ => {
            let mut diagnostics = checker.diagnostics;
            diagnostics.sort_by_key(|d| d.position);
            diagnostics.dedup();
            Err(Diagnostics(diagnostics))
        }
    }
}

const WORKFLOW_KEYS: &[&str] =
    &["name", "description", "inputs", "secrets", "steps", "outputs", "on_failure", "schedule", "max_parallel"];
const INPUT_KEYS: &[&str] = &["type", "required", "default", "description", "pattern"];
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
/// More attempts than this is a loop, not a retry policy.
const MAX_ATTEMPTS: u32 = 10_000;
const POLL_KEYS: &[&str] = &["interval", "timeout"];
const RETRY_KEYS: &[&str] = &["attempts", "delay", "backoff", "max_delay", "jitter"];
const SCHEDULE_KEYS: &[&str] =
    &["cron", "timezone", "inputs", "overlap", "catch_up", "starting_deadline", "pause_while_escalated", "cooldown"];

struct Checker<'a> {
    file: &'a Path,
    registry: &'a Registry,
    diagnostics: Vec<Diagnostic>,
    templates: Templates,
    /// Inputs given by schedule entries, checked once the inputs are known.
    schedule_inputs: Vec<ScheduleInputs>,
    /// The workflow's declared secrets, which templates may name as `secrets.NAME`.
    secret_names: Vec<String>,
}

struct ScheduleInputs {
    field: String,
    position: Position,
    values: Vec<(Key, Node)>,
}

/// A step as read, before the graph checks.
struct DraftStep {
    spec: StepSpec,
    position: Position,
    field: String,
    /// Positions of the `needs` entries, for messages about them.
    needs_positions: Vec<Position>,
    /// Every template in the step with where it is and which locals it may use.
    templates: Vec<TemplateSite>,
    condition_position: Option<Position>,
    until_position: Option<Position>,
    /// Where the `check`'s `done` expression is.
    check_done_position: Option<Position>,
    output_locals: &'static [&'static str],
    /// Outputs the kind provides without a declaration.
    provided_outputs: Vec<String>,
}

struct TemplateSite {
    field: String,
    position: Position,
    source: String,
    /// In `outputs`, the kind's locals (`stdout`, `json`) are in scope.
    in_outputs: bool,
}

impl<'a> Checker<'a> {
    /// The kind named `name` and its configuration `node` as the kind checks it, the
    /// templates in it collected for the reference checks; `None` for a kind not registered.
    fn kind_config(
        &mut self,
        name: &str,
        node: &Node,
        field: &str,
        templates: &mut Vec<TemplateSite>,
    ) -> Option<(std::sync::Arc<dyn crate::step::StepKind>, serde_json::Value)> {
        let kind = self.registry.get(name)?.clone();
        let kind_field = join(field, name);
        let config = {
            let mut check = ConfigCheck::new(self.file, kind_field.clone(), &mut self.diagnostics);
            kind.check_config(node, &mut check)
        };
        collect_templates(node, &kind_field, templates);
        Some((kind, config))
    }

    fn error(&mut self, position: Position, field: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(self.file, position, field, message));
    }

    /// The entries of a mapping, or an error naming what was expected.
    fn mapping<'n>(&mut self, node: &'n Node, field: &str, what: &str) -> Option<&'n [(Key, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            other => {
                self.error(node.position, field, format!("expected {what}, found {}", other.kind_name()));
                None
            }
        }
    }

    fn unknown_key(&mut self, key: &Key, field: &str, known: &[&str]) {
        let hint = match did_you_mean(&key.name, known.iter().copied()) {
            Some(suggestion) => format!(" (did you mean `{suggestion}`?)"),
            None => format!("; expected one of: {}", known.join(", ")),
        };
        let field = join(field, &key.name);
        self.error(key.position, field, format!("unknown key `{}`{hint}", key.name));
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(node.position, field, format!("expected a string, found {}", other.kind_name()));
                None
            }
        }
    }

    /// A scalar written as text: strings as they are, numbers and booleans as written.
    fn scalar_text(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.scalar_text() {
            Some(text) if !matches!(node.value, Value::Null) => Some(text),
            _ => {
                self.error(node.position, field, format!("expected a string, found {}", node.value.kind_name()));
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(node.position, field, format!("expected true or false, found {}", other.kind_name()));
                None
            }
        }
    }

    fn duration_ms(&mut self, node: &Node, field: &str) -> Option<u64> {
        let text = self.scalar_text(node, field)?;
        match parse_duration(&text) {
            Ok(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Err(message) => {
                self.error(node.position, field, message);
                None
            }
        }
    }

    fn workflow(&mut self, root: &Node) -> Option<Workflow> {
        let entries = self.mapping(root, "", "a mapping with `name` and `steps`")?;
        let mut name = None;
        let mut description = String::new();
        let mut inputs = Vec::new();
        let mut secrets = Vec::new();
        let mut steps_node = None;
        let mut outputs_node = None;
        let mut on_failure_node = None;
        let mut outputs = Vec::new();
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
        let steps = match steps_node {
            Some(node) => self.steps(node, &inputs, on_failure_node, outputs_node, &mut outputs),
            None => {
                self.error(root.position, "steps", "missing key `steps`: a workflow needs at least one step");
                Vec::new()
            }
        };
        self.check_schedule_inputs(&inputs);
        Some(Workflow { name: name?, description, inputs, secrets, steps, schedules, outputs, max_parallel })
    }

    fn inputs(&mut self, node: &Node) -> Vec<InputSpec> {
        let Some(entries) = self.mapping(node, "inputs", "a mapping of input names to their types") else {
            return Vec::new();
        };
        let mut inputs = Vec::new();
        for (key, value) in entries {
            let field = format!("inputs.{}", key.name);
            if StepId::new(&key.name).is_err() {
                self.error(
                    key.position,
                    &field,
                    format!("`{}` is not a valid input name: use lowercase letters, digits and `_`", key.name),
                );
            }
            if let Some(spec) = self.input(&key.name, value, &field) {
                inputs.push(spec);
            }
        }
        inputs
    }

    fn input(&mut self, name: &str, node: &Node, field: &str) -> Option<InputSpec> {
        // `port: int` is short for `port: { type: int }`.
        if let Value::String(type_name) = &node.value {
            let input_type = self.input_type(type_name, node.position, field)?;
            return Some(InputSpec {
                name: name.to_owned(),
                input_type,
                required: true,
                default: None,
                description: String::new(),
                pattern: None,
            });
        }
        let entries = self.mapping(node, field, "a mapping with `type` (and `required`, `default`, `description`)")?;
        let mut input_type = None;
        let mut required = None;
        let mut default = None;
        let mut description = String::new();
        let mut pattern = None;
        let mut type_seen = false;
        for (key, value) in entries {
            let sub = join(field, &key.name);
            match key.name.as_str() {
                "type" => {
                    type_seen = true;
                    if let Some(text) = self.string(value, &sub) {
                        input_type = self.input_type(&text, value.position, &sub);
                    }
                }
                "required" => required = self.boolean(value, &sub),
                "default" => default = Some(value),
                "description" => description = self.string(value, &sub).unwrap_or_default(),
                "pattern" => {
                    if let Some(text) = self.string(value, &sub) {
                        match crate::model::whole_match(&text) {
                            Ok(_) => pattern = Some((text, value.position)),
                            Err(message) => self.error(value.position, &sub, message),
                        }
                    }
                }
                _ => self.unknown_key(key, field, INPUT_KEYS),
            }
        }
        if !type_seen {
            self.error(node.position, field, format!("missing key `type`: one of {}", InputType::NAMES.join(", ")));
        }
        let input_type = input_type?;
        if let Some((_, position)) = &pattern
            && input_type != InputType::String
        {
            self.error(
                *position,
                join(field, "pattern"),
                format!("`pattern` applies to string inputs, not {}", input_type.name()),
            );
        }
        let spec = InputSpec {
            name: name.to_owned(),
            input_type,
            required: false,
            default: None,
            description: description.clone(),
            pattern: pattern.map(|(text, _)| text),
        };
        let default = match default {
            Some(value_node) => match spec.check_value(&value_node.to_json()) {
                Ok(value) => Some(value),
                Err(message) => {
                    // Reported; the input stays declared so that its uses are not reported too.
                    self.error(value_node.position, join(field, "default"), message);
                    required = Some(false);
                    None
                }
            },
            None => None,
        };
        if required == Some(true) && default.is_some() {
            self.error(node.position, field, "an input with a default is not required; drop one of the two");
        }
        let required = required.unwrap_or(default.is_none());
        Some(InputSpec { required, default, ..spec })
    }

    fn input_type(&mut self, name: &str, position: Position, field: &str) -> Option<InputType> {
        let found = InputType::from_name(name);
        if found.is_none() {
            let hint =
                did_you_mean(name, InputType::NAMES).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            self.error(
                position,
                field,
                format!("unknown input type `{name}`{hint}; expected one of {}", InputType::NAMES.join(", ")),
            );
        }
        found
    }

    fn secrets(&mut self, node: &Node) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            self.error(node.position, "secrets", "expected a list of environment variable names");
            return Vec::new();
        };
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = format!("secrets[{i}]");
            let Some(name) = self.string(item, &field) else { continue };
            if is_env_name(&name) {
                names.push(name);
            } else {
                self.error(item.position, field, format!("`{name}` is not an environment variable name"));
            }
        }
        names
    }

    fn schedules(&mut self, node: &Node) -> Vec<ScheduleSpec> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.schedule(item, &format!("schedule[{i}]")))
                .collect(),
            _ => self.schedule(node, "schedule").into_iter().collect(),
        }
    }

    fn schedule(&mut self, node: &Node, field: &str) -> Option<ScheduleSpec> {
        if let Value::String(expression) = &node.value {
            self.schedule_inputs.push(ScheduleInputs {
                field: field.to_owned(),
                position: node.position,
                values: Vec::new(),
            });
            return self.cron(expression, node.position, field).map(|cron| ScheduleSpec {
                cron,
                timezone: None,
                inputs: BTreeMap::new(),
                overlap: None,
                catch_up: None,
                starting_deadline_ms: None,
                pause_while_escalated: false,
                cooldown_ms: None,
            });
        }
        let entries = self.mapping(node, field, "a cron expression or a mapping with `cron`")?;
        let mut spec = ScheduleSpec {
            cron: String::new(),
            timezone: None,
            inputs: BTreeMap::new(),
            overlap: None,
            catch_up: None,
            starting_deadline_ms: None,
            pause_while_escalated: false,
            cooldown_ms: None,
        };
        let mut ok = true;
        for (key, value) in entries {
            let sub = join(field, &key.name);
            match key.name.as_str() {
                "cron" => match self.string(value, &sub) {
                    Some(expression) => match self.cron(&expression, value.position, &sub) {
                        Some(cron) => spec.cron = cron,
                        None => ok = false,
                    },
                    None => ok = false,
                },
                "timezone" => {
                    if let Some(name) = self.string(value, &sub) {
                        match parse_timezone(&name) {
                            Ok(_) => spec.timezone = Some(name),
                            Err(message) => {
                                self.error(value.position, &sub, message);
                                ok = false;
                            }
                        }
                    }
                }
                "inputs" => {
                    if let Some(inputs) = self.mapping(value, &sub, "a mapping of input values") {
                        spec.inputs = inputs.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect();
                        self.schedule_inputs.push(ScheduleInputs {
                            field: sub.clone(),
                            position: value.position,
                            values: inputs.to_vec(),
                        });
                    }
                }
                "overlap" => {
                    spec.overlap = self.one_of(value, &sub, &["skip", "queue_one", "allow", "cancel_previous"]);
                }
                "catch_up" => spec.catch_up = self.one_of(value, &sub, &["once", "none"]),
                "starting_deadline" => {
                    spec.starting_deadline_ms = self.duration_ms(value, &sub);
                    if spec.starting_deadline_ms == Some(0) {
                        self.error(
                            value.position,
                            &sub,
                            "a starting deadline of 0s would drop every fire; give it room, like 30s",
                        );
                    }
                }
                "pause_while_escalated" => spec.pause_while_escalated = self.boolean(value, &sub).unwrap_or(false),
                "cooldown" => spec.cooldown_ms = self.duration_ms(value, &sub),
                _ => self.unknown_key(key, field, SCHEDULE_KEYS),
            }
        }
        if !entries.iter().any(|(k, _)| k.name == "inputs") {
            self.schedule_inputs.push(ScheduleInputs {
                field: field.to_owned(),
                position: node.position,
                values: Vec::new(),
            });
        }
        if spec.cron.is_empty() && ok {
            self.error(node.position, field, "missing key `cron`");
            return None;
        }
        ok.then_some(spec)
    }

    /// Schedules run with nobody to pass inputs: every value must fit, every required input must be given.
    fn check_schedule_inputs(&mut self, inputs: &[InputSpec]) {
        for site in std::mem::take(&mut self.schedule_inputs) {
            for (key, value) in &site.values {
                let field = join(&site.field, &key.name);
                match inputs.iter().find(|i| i.name == key.name) {
                    Some(spec) => {
                        if let Err(message) = spec.check_value(&value.to_json()) {
                            self.error(value.position, field, message);
                        }
                    }
                    None => {
                        let hint = did_you_mean(&key.name, inputs.iter().map(|i| i.name.as_str()))
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        self.error(key.position, field, format!("unknown input `{}`{hint}", key.name));
                    }
                }
            }
            for spec in inputs.iter().filter(|i| i.required) {
                if !site.values.iter().any(|(k, _)| k.name == spec.name) {
                    let message = format!(
                        "the schedule does not give required input `{}`, so every scheduled run would fail; add it under `inputs`",
                        spec.name
                    );
                    self.error(site.position, &site.field, message);
                }
            }
        }
    }

    fn one_of(&mut self, node: &Node, field: &str, allowed: &[&str]) -> Option<String> {
        let text = self.string(node, field)?;
        if allowed.contains(&text.as_str()) {
            Some(text)
        } else {
            self.error(node.position, field, format!("`{text}` is not one of {}", allowed.join(", ")));
            None
        }
    }

    fn cron(&mut self, expression: &str, position: Position, field: &str) -> Option<String> {
        match parse_cron(expression) {
            Ok(_) => Some(expression.trim().to_owned()),
            Err(message) => {
                self.error(position, field, message);
                None
            }
        }
    }

    fn steps(
        &mut self,
        node: &Node,
        inputs: &[InputSpec],
        on_failure: Option<&Node>,
        outputs_node: Option<&Node>,
        outputs: &mut Vec<(String, String)>,
    ) -> Vec<StepSpec> {
        let Value::Seq(items) = &node.value else {
            self.error(node.position, "steps", format!("expected a list of steps, found {}", node.value.kind_name()));
            return Vec::new();
        };
        if items.is_empty() {
            self.error(node.position, "steps", "a workflow needs at least one step");
            return Vec::new();
        }
        let mut drafts: Vec<DraftStep> =
            items.iter().enumerate().filter_map(|(i, item)| self.step(item, &format!("steps[{i}]"))).collect();
        if let Some(node) = on_failure {
            drafts.extend(self.handlers(node));
        }

        // Ids are unique.
        let mut seen: HashMap<&StepId, &DraftStep> = HashMap::new();
        for draft in &drafts {
            if let Some(first) = seen.get(&draft.spec.id) {
                let message =
                    format!("duplicate step id `{}` (first used at line {})", draft.spec.id, first.position.line);
                self.error(draft.position, join(&draft.field, "id"), message);
            } else {
                seen.insert(&draft.spec.id, draft);
            }
        }
        // Needs name existing steps, other than the step itself.
        let ids: Vec<&str> = drafts.iter().map(|d| d.spec.id.as_str()).collect();
        for draft in &drafts {
            for (i, need) in draft.spec.needs.iter().enumerate() {
                let position = draft.needs_positions.get(i).copied().unwrap_or(draft.position);
                let field = format!("{}.needs", draft.field);
                let needed_handler = seen.get(need).map(|d| d.spec.handler);
                if need == &draft.spec.id {
                    self.error(position, field, format!("step `{need}` needs itself"));
                } else if needed_handler == Some(true) && !draft.spec.handler {
                    self.error(
                        position,
                        field,
                        format!(
                            "`{need}` is an on_failure step, which runs after every other step: no step can need it"
                        ),
                    );
                } else if needed_handler == Some(false) && draft.spec.handler {
                    self.error(position, field, format!("on_failure steps run after every other step: `needs` names only other on_failure steps, not `{need}`"));
                } else if !seen.contains_key(need) {
                    let hint = did_you_mean(need.as_str(), ids.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    self.error(position, field, format!("unknown step `{need}` in needs{hint}"));
                }
            }
        }
        let cycle = find_cycle(&drafts);
        if let Some(cycle) = &cycle {
            let first = &drafts[cycle[0]];
            let names: Vec<&str> =
                cycle.iter().map(|&i| drafts[i].spec.id.as_str()).chain([first.spec.id.as_str()]).collect();
            self.error(
                first.position,
                format!("{}.needs", first.field),
                format!("the steps form a cycle: {}", names.join(" -> ")),
            );
        }
        // With a cycle "ancestor" means nothing: check the rest of each reference against every step.
        let mut ancestors = match cycle {
            None => ancestors(&drafts),
            Some(_) => vec![(0..drafts.len()).collect(); drafts.len()],
        };
        // A handler runs after every other step, so it may refer to any of them.
        let main: Vec<usize> = (0..drafts.len()).filter(|&i| !drafts[i].spec.handler).collect();
        for (index, draft) in drafts.iter().enumerate() {
            if draft.spec.handler {
                ancestors[index].extend(main.iter().copied());
            }
        }
        for (index, draft) in drafts.iter().enumerate() {
            self.step_references(draft, &ancestors[index], &drafts, inputs);
        }
        if let Some(outputs_node) = outputs_node {
            *outputs = self.workflow_outputs(outputs_node, &drafts, inputs);
        }
        drafts.into_iter().map(|d| d.spec).collect()
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
            Value::Map(entries) if entries.iter().any(|(k, _)| k.name == "workflow") => {
                let mut config = Vec::new();
                for (key, value) in entries {
                    match key.name.as_str() {
                        "workflow" => {
                            config.push((Key { name: "name".to_owned(), position: key.position }, value.clone()))
                        }
                        "inputs" => config.push((key.clone(), value.clone())),
                        _ => self.unknown_key(key, "on_failure", &["workflow", "inputs"]),
                    }
                }
                let id = Node { value: Value::String("on_failure".to_owned()), position: node.position };
                let step = Node {
                    value: Value::Map(vec![
                        (Key { name: "id".to_owned(), position: node.position }, id),
                        (
                            Key { name: "workflow".to_owned(), position: node.position },
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

    fn step(&mut self, node: &Node, field: &str) -> Option<DraftStep> {
        let entries = self.mapping(node, field, "a step (a mapping with `id` and a kind such as `run`)")?;
        let mut id = None;
        let mut description = String::new();
        let mut needs = Vec::new();
        let mut needs_positions = Vec::new();
        let mut condition = None;
        let mut condition_position = None;
        let mut timeout_ms = None;
        let mut timeout_template = None;
        let mut retry = RetryPolicy::default();
        let mut continue_on_error = false;
        let mut idempotent = None;
        let mut until = None;
        let mut check_node = None;
        let mut until_position = None;
        let mut poll = PollPolicy::default();
        let mut outputs = Vec::new();
        let mut env = Vec::new();
        let mut kinds: Vec<(&Key, &Node)> = Vec::new();
        let mut templates = Vec::new();
        for (key, value) in entries {
            let sub = join(field, &key.name);
            match key.name.as_str() {
                "id" => {
                    if let Some(text) = self.scalar_text(value, &sub) {
                        match StepId::new(&text) {
                            Ok(step_id) => id = Some(step_id),
                            Err(message) => self.error(value.position, &sub, message),
                        }
                    }
                }
                "description" => description = self.string(value, &sub).unwrap_or_default(),
                "needs" => {
                    let items: Vec<&Node> = match &value.value {
                        Value::Seq(items) => items.iter().collect(),
                        _ => vec![value],
                    };
                    for item in items {
                        let Some(text) = self.scalar_text(item, &sub) else {
                            continue;
                        };
                        match StepId::new(&text) {
                            Ok(need) => {
                                needs.push(need);
                                needs_positions.push(item.position);
                            }
                            Err(message) => {
                                self.error(item.position, &sub, message);
                            }
                        }
                    }
                }
                "if" => {
                    if let Some(expression) = self.condition(value, &sub) {
                        condition = Some(expression);
                        condition_position = Some(value.position);
                    }
                }
                "timeout" => match template_text(value) {
                    Some(template) => {
                        templates.push(TemplateSite {
                            field: sub.clone(),
                            position: value.position,
                            source: template.clone(),
                            in_outputs: false,
                        });
                        timeout_template = Some(template);
                    }
                    None => match self.duration_ms(value, &sub) {
                        Some(0) => self.error(value.position, &sub, "a timeout must be longer than 0s"),
                        Some(ms) => timeout_ms = Some(ms),
                        None => {}
                    },
                },
                "retry" => {
                    if let Some(policy) = self.retry(value, &sub) {
                        retry = policy;
                    }
                }
                "continue_on_error" => continue_on_error = self.boolean(value, &sub).unwrap_or(false),
                "idempotent" => idempotent = self.boolean(value, &sub),
                "check" => check_node = Some((key, value)),
                "until" => {
                    if let Some(expression) = self.condition(value, &sub) {
                        until = Some(expression);
                        until_position = Some(value.position);
                    }
                }
                "poll" => {
                    if let Some(policy) = self.poll(value, &sub, &mut templates) {
                        poll = policy;
                    }
                }
                "outputs" => {
                    if let Some(items) = self.mapping(value, &sub, "a mapping of output names to templates") {
                        for (out_key, out_value) in items {
                            let out_field = join(&sub, &out_key.name);
                            if StepId::new(&out_key.name).is_err() {
                                self.error(
                                    out_key.position,
                                    &out_field,
                                    format!(
                                        "`{}` is not a valid output name: use lowercase letters, digits and `_`",
                                        out_key.name
                                    ),
                                );
                                continue;
                            }
                            if let Some(template) = self.scalar_text(out_value, &out_field) {
                                templates.push(TemplateSite {
                                    field: out_field,
                                    position: out_value.position,
                                    source: template.clone(),
                                    in_outputs: true,
                                });
                                outputs.push((out_key.name.clone(), template));
                            }
                        }
                    }
                }
                "env" => {
                    if let Some(items) = self.mapping(value, &sub, "a mapping of environment variable names to values")
                    {
                        for (env_key, env_value) in items {
                            let env_field = join(&sub, &env_key.name);
                            if !is_env_name(&env_key.name) {
                                let message = format!(
                                    "`{}` is not an environment variable name: use letters, digits and `_`, not starting with a digit",
                                    env_key.name
                                );
                                self.error(env_key.position, &env_field, message);
                                continue;
                            }
                            if let Some(template) = self.scalar_text(env_value, &env_field) {
                                templates.push(TemplateSite {
                                    field: env_field,
                                    position: env_value.position,
                                    source: template.clone(),
                                    in_outputs: false,
                                });
                                env.push((env_key.name.clone(), template));
                            }
                        }
                    }
                }
                name if self.registry.get(name).is_some() => kinds.push((key, value)),
                _ => {
                    let known: Vec<&str> = STEP_KEYS.iter().copied().chain(self.registry.names()).collect();
                    self.unknown_key(key, field, &known);
                }
            }
        }
        let label = id.as_ref().map_or_else(|| field.to_owned(), |i| format!("step `{i}`"));
        if id.is_none() && !entries.iter().any(|(k, _)| k.name == "id") {
            self.error(node.position, join(field, "id"), "missing key `id`: every step has an id");
        }
        let kind_names: Vec<&str> = self.registry.names().collect();
        let (kind_key, kind_node) = match kinds.as_slice() {
            [one] => *one,
            [] => {
                self.error(
                    node.position,
                    field,
                    format!(
                        "{label} has no kind: add one of {}",
                        kind_names.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
                return None;
            }
            [first, second, ..] => {
                self.error(
                    second.0.position,
                    field,
                    format!("{label} has two kinds, `{}` and `{}`: a step does one thing", first.0.name, second.0.name),
                );
                return None;
            }
        };
        let (kind, config) = self.kind_config(&kind_key.name, kind_node, field, &mut templates)?;
        let mut check_done_position = None;
        let check = match check_node {
            None => None,
            Some((key, node)) => {
                let check = self.check(node, &join(field, "check"), &mut templates);
                if idempotent != Some(false) {
                    self.error(
                        key.position,
                        join(field, "check"),
                        "`check` is for steps marked `idempotent: false`: a step safe to repeat is simply run again",
                    );
                }
                check.map(|(spec, position)| {
                    check_done_position = Some(position);
                    spec
                })
            }
        };
        let spec_config_for_outputs = config.clone();
        let idempotent = idempotent.unwrap_or_else(|| kind.idempotent_by_default(&config));
        let spec = StepSpec {
            id: id?,
            description,
            needs,
            condition,
            kind: kind.name().to_owned(),
            config,
            timeout_ms,
            timeout_template,
            retry,
            continue_on_error,
            handler: false,
            check,
            idempotent,
            outputs,
            env,
            until,
            poll,
        };
        Some(DraftStep {
            spec,
            position: node.position,
            field: field.to_owned(),
            needs_positions,
            templates,
            condition_position,
            until_position,
            check_done_position,
            output_locals: kind.output_locals(),
            provided_outputs: kind.provided_outputs(&spec_config_for_outputs),
        })
    }

    /// A bare expression (`if`, `until`); `{{ expr }}` is accepted as the same expression.
    fn condition(&mut self, value: &Node, field: &str) -> Option<String> {
        let text = self.scalar_text(value, field)?;
        let expression = strip_braces(&text).to_owned();
        match self.templates.expression_variables(&expression) {
            Ok(_) => Some(expression),
            Err(problem) => {
                self.error(value.position, field, format!("malformed condition `{text}`: {problem}"));
                None
            }
        }
    }

    /// `check: { <kind>: CONFIG, done: EXPRESSION }`: a read-only look, and when its result means "it took effect".
    fn check(
        &mut self,
        node: &Node,
        field: &str,
        templates: &mut Vec<TemplateSite>,
    ) -> Option<(crate::model::CheckSpec, Position)> {
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
        Some((crate::model::CheckSpec { kind: kind.name().to_owned(), config, done }, position))
    }

    fn poll(&mut self, node: &Node, field: &str, templates: &mut Vec<TemplateSite>) -> Option<PollPolicy> {
        let entries = self.mapping(node, field, "a mapping with `interval` and `timeout`")?;
        let mut policy = PollPolicy::default();
        for (key, value) in entries {
            let sub = join(field, &key.name);
            if let Some(template) = template_text(value).filter(|_| POLL_KEYS.contains(&key.name.as_str())) {
                templates.push(TemplateSite {
                    field: sub.clone(),
                    position: value.position,
                    source: template.clone(),
                    in_outputs: false,
                });
                if key.name == "interval" {
                    policy.interval_template = Some(template);
                } else {
                    policy.timeout_template = Some(template);
                }
                continue;
            }
            match key.name.as_str() {
                "interval" => match self.duration_ms(value, &sub) {
                    Some(0) => self.error(value.position, &sub, "a poll interval must be longer than 0s"),
                    Some(ms) => policy.interval_ms = ms,
                    None => {}
                },
                "timeout" => {
                    if let Some(ms) = self.duration_ms(value, &sub) {
                        policy.timeout_ms = ms;
                    }
                }
                _ => self.unknown_key(key, field, POLL_KEYS),
            }
        }
        Some(policy)
    }

    fn retry(&mut self, node: &Node, field: &str) -> Option<RetryPolicy> {
        let mut policy = RetryPolicy::default();
        // `retry: 3` is short for `retry: { attempts: 3 }`.
        if let Value::Int(n) = node.value {
            return self
                .attempts(n, node.position, &join(field, "attempts"))
                .map(|attempts| RetryPolicy { attempts, ..policy });
        }
        let entries = self.mapping(node, field, "a number of attempts or a mapping with `attempts`")?;
        let mut ok = true;
        for (key, value) in entries {
            let sub = join(field, &key.name);
            match key.name.as_str() {
                "attempts" => match &value.value {
                    Value::Int(n) => match self.attempts(*n, value.position, &sub) {
                        Some(attempts) => policy.attempts = attempts,
                        None => ok = false,
                    },
                    other => {
                        self.error(
                            value.position,
                            &sub,
                            format!("expected a whole number of at least 1, found {}", other.kind_name()),
                        );
                        ok = false;
                    }
                },
                "delay" => match self.duration_ms(value, &sub) {
                    Some(ms) => policy.delay_ms = ms,
                    None => ok = false,
                },
                "max_delay" => match self.duration_ms(value, &sub) {
                    Some(ms) => policy.max_delay_ms = ms,
                    None => ok = false,
                },
                "backoff" => match value.value {
                    Value::Int(n) if n >= 1 => policy.backoff = n as f64,
                    Value::Float(f) if f >= 1.0 && f.is_finite() => policy.backoff = f,
                    _ => {
                        self.error(
                            value.position,
                            &sub,
                            "expected a number of at least 1.0 (the factor between successive delays)",
                        );
                        ok = false;
                    }
                },
                "jitter" => match self.boolean(value, &sub) {
                    Some(b) => policy.jitter = b,
                    None => ok = false,
                },
                _ => self.unknown_key(key, field, RETRY_KEYS),
            }
        }
        if policy.max_delay_ms < policy.delay_ms {
            policy.max_delay_ms = policy.delay_ms;
        }
        ok.then_some(policy)
    }

    fn attempts(&mut self, n: i64, position: Position, field: &str) -> Option<u32> {
        match u32::try_from(n) {
            Ok(attempts) if (1..=MAX_ATTEMPTS).contains(&attempts) => Some(attempts),
            _ if n > i64::from(MAX_ATTEMPTS) => {
                self.error(position, field, format!("retry.attempts is {n}: at most {MAX_ATTEMPTS}"));
                None
            }
            _ => {
                self.error(
                    position,
                    field,
                    format!("retry.attempts is {n}: it counts every attempt, the first included, so it is at least 1"),
                );
                None
            }
        }
    }

    /// Checks that every template and the `if` of a step refer to declared inputs and to ancestor steps.
    fn step_references(
        &mut self,
        draft: &DraftStep,
        ancestors: &BTreeSet<usize>,
        drafts: &[DraftStep],
        inputs: &[InputSpec],
    ) {
        let secrets = self.secret_names.clone();
        let scope = Scope { ancestors, drafts, inputs, secrets: &secrets, own: draft };
        if let (Some(condition), Some(position)) = (&draft.spec.condition, draft.condition_position)
            && let Ok(variables) = self.templates.expression_variables(condition)
        {
            for variable in variables {
                if let Err(message) = scope.check(&variable, false) {
                    self.error(position, join(&draft.field, "if"), message);
                }
            }
        }
        // `done` sees the look's values (`stdout`, `json`), as the step's `outputs` do.
        if let (Some(check), Some(position)) = (&draft.spec.check, draft.check_done_position)
            && let Ok(variables) = self.templates.expression_variables(&check.done)
        {
            for variable in variables {
                if let Err(message) = scope.check(&variable, true) {
                    self.error(position, join(&draft.field, "check.done"), message);
                }
            }
        }
        if let (Some(until), Some(position)) = (&draft.spec.until, draft.until_position)
            && let Ok(variables) = self.templates.expression_variables(until)
        {
            for variable in variables {
                if let Err(message) = scope.check_until(&variable) {
                    self.error(position, join(&draft.field, "until"), message);
                }
            }
        }
        for site in &draft.templates {
            match self.templates.template_variables(&site.source) {
                Ok(variables) => {
                    for variable in variables {
                        if let Err(message) = scope.check(&variable, site.in_outputs) {
                            self.error(site.position, &site.field, message);
                        }
                    }
                }
                Err(problem) => self.template_problem(site, &problem),
            }
        }
    }

    fn template_problem(&mut self, site: &TemplateSite, problem: &TemplateProblem) {
        self.error(site.position, &site.field, format!("malformed template: {problem}"));
    }
}

/// What a template of one step may refer to.
struct Scope<'s> {
    ancestors: &'s BTreeSet<usize>,
    drafts: &'s [DraftStep],
    inputs: &'s [InputSpec],
    secrets: &'s [String],
    own: &'s DraftStep,
}

impl Scope<'_> {
    /// Checks a variable of a template (`in_outputs`: one of the step's own `outputs`).
    fn check(&self, variable: &str, in_outputs: bool) -> Result<(), String> {
        self.check_in(variable, in_outputs, false)
    }

    /// Checks a variable of the step's `until`, which also sees the step's own `outputs`.
    fn check_until(&self, variable: &str) -> Result<(), String> {
        self.check_in(variable, false, true)
    }

    fn check_in(&self, variable: &str, in_outputs: bool, in_until: bool) -> Result<(), String> {
        let parts: Vec<&str> = variable.split('.').collect();
        match parts[0] {
            "outputs" if in_until => match parts.get(1) {
                None => Ok(()),
                Some(output) => has_output(self.own, self.own.spec.id.as_str(), output),
            },
            "inputs" => match parts.get(1) {
                None => Ok(()),
                Some(name) if self.inputs.iter().any(|i| i.name == *name) => Ok(()),
                Some(name) => {
                    let hint = did_you_mean(name, self.inputs.iter().map(|i| i.name.as_str()))
                        .map(|s| format!(" (did you mean `inputs.{s}`?)"))
                        .unwrap_or_default();
                    Err(format!("unknown input `{name}`{hint}"))
                }
            },
            "steps" => {
                let Some(name) = parts.get(1) else { return Ok(()) };
                let Some(index) = self.drafts.iter().position(|d| d.spec.id.as_str() == *name) else {
                    let hint = did_you_mean(name, self.drafts.iter().map(|d| d.spec.id.as_str()))
                        .map(|s| format!(" (did you mean `steps.{s}`?)"))
                        .unwrap_or_default();
                    return Err(format!("unknown step `{name}`{hint}"));
                };
                if !self.ancestors.contains(&index) {
                    return Err(format!(
                        "step `{}` refers to `steps.{name}`, which is not among its needs (direct or indirect): add `needs: [{name}]`",
                        self.own.spec.id
                    ));
                }
                match parts.get(2) {
                    None | Some(&"outcome") => Ok(()),
                    Some(&"outputs") => match parts.get(3) {
                        None => Ok(()),
                        Some(output) => has_output(&self.drafts[index], name, output),
                    },
                    Some(other) => Err(format!("`steps.{name}.{other}`: a step exposes `outcome` and `outputs`")),
                }
            }
            "failure" if self.own.spec.handler => Ok(()),
            "secrets" => match parts.get(1) {
                Some(name) if self.secrets.iter().any(|s| s == name) => Ok(()),
                Some(name) => {
                    Err(format!("`secrets.{name}` is not declared: add `{name}` to the workflow's `secrets`"))
                }
                None => Err("name the secret: `secrets.NAME`".to_owned()),
            },
            "run" => match parts.get(1) {
                None | Some(&"id") | Some(&"workflow") => Ok(()),
                Some(other) => Err(format!("`run.{other}` is unknown: `run` has `id` and `workflow`")),
            },
            local if in_outputs && self.own.output_locals.contains(&local) => Ok(()),
            local if self.own.output_locals.contains(&local) => Err(format!(
                "`{local}` exists only in the step's `outputs` templates, once the step has run; other steps read `steps.{}.outputs.NAME`",
                self.own.spec.id
            )),
            other => {
                let mut known = vec!["inputs", "steps", "run"];
                if in_outputs {
                    known.extend(self.own.output_locals.iter().copied());
                }
                if in_until {
                    known.push("outputs");
                }
                let hint = did_you_mean(other, known.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                Err(format!("unknown variable `{other}`{hint}; templates may use {}", known.join(", ")))
            }
        }
    }
}

/// Checks a variable of a workflow output: inputs, any step's outcome and outputs, the run.
fn workflow_output_reference(variable: &str, drafts: &[DraftStep], inputs: &[InputSpec]) -> Result<(), String> {
    let parts: Vec<&str> = variable.split('.').collect();
    match (parts[0], parts.get(1)) {
        ("inputs", Some(name)) if !inputs.iter().any(|i| i.name == *name) => Err(format!("unknown input `{name}`")),
        ("inputs" | "run", _) => Ok(()),
        ("steps", None) => Ok(()),
        ("steps", Some(name)) => {
            let Some(step) = drafts.iter().find(|d| d.spec.id.as_str() == *name) else {
                let hint = did_you_mean(name, drafts.iter().map(|d| d.spec.id.as_str()))
                    .map(|s| format!(" (did you mean `steps.{s}`?)"))
                    .unwrap_or_default();
                return Err(format!("unknown step `{name}`{hint}"));
            };
            match (parts.get(2), parts.get(3)) {
                (None | Some(&"outcome"), _) | (Some(&"outputs"), None) => Ok(()),
                (Some(&"outputs"), Some(output)) => has_output(step, name, output),
                (Some(other), _) => Err(format!("`steps.{name}.{other}`: a step exposes `outcome` and `outputs`")),
            }
        }
        (other, _) => Err(format!("unknown variable `{other}`; workflow outputs may use inputs, steps, run")),
    }
}

/// Whether a step declares an output or its kind provides it.
fn has_output(step: &DraftStep, name: &str, output: &str) -> Result<(), String> {
    let declared = step.spec.outputs.iter().map(|(n, _)| n.as_str());
    if step.provided_outputs.iter().any(|n| n == output) || declared.clone().any(|n| n == output) {
        return Ok(());
    }
    let known: Vec<&str> = declared.chain(step.provided_outputs.iter().map(String::as_str)).collect();
    let hint =
        did_you_mean(output, known.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
    Err(format!("step `{name}` has no output `{output}`{hint}"))
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

/// `{{ expr }}` written as an `if` is the same expression.
fn strip_braces(text: &str) -> &str {
    let trimmed = text.trim();
    match trimmed.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
        Some(inner) if !inner.contains("{{") => inner.trim(),
        _ => trimmed,
    }
}

/// A scalar that is a template (`{{ inputs.timeout }}`): checked when the file loads, rendered when the step runs.
fn template_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::String(text) if text.contains("{{") => Some(text.clone()),
        _ => None,
    }
}

fn is_env_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn join(field: &str, key: &str) -> String {
    if field.is_empty() { key.to_owned() } else { format!("{field}.{key}") }
}

/// A cycle in the needs graph as indexes in order, if there is one.
fn find_cycle(drafts: &[DraftStep]) -> Option<Vec<usize>> {
    let index: HashMap<&StepId, usize> = drafts.iter().enumerate().map(|(i, d)| (&d.spec.id, i)).collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; drafts.len()];
    let mut path = Vec::new();
    fn visit(
        node: usize,
        drafts: &[DraftStep],
        index: &HashMap<&StepId, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[node] = 1;
        path.push(node);
        for need in &drafts[node].spec.needs {
            let Some(&next) = index.get(need) else { continue };
            if next == node {
                // Reported as "needs itself".
                continue;
            }
            if state[next] == 1 {
                let start = path.iter().position(|&p| p == next).unwrap_or(0);
                // The path runs from dependents to what they need; report it in run order.
                let mut cycle: Vec<usize> = path[start..].to_vec();
                cycle.reverse();
                return Some(cycle);
            }
            if state[next] == 0
                && let Some(cycle) = visit(next, drafts, index, state, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        state[node] = 2;
        None
    }
    for start in 0..drafts.len() {
        if state[start] == 0
            && let Some(cycle) = visit(start, drafts, &index, &mut state, &mut path)
        {
            return Some(cycle);
        }
    }
    None
}

/// For each step, the indexes of the steps it needs directly or indirectly (the graph has no cycle).
fn ancestors(drafts: &[DraftStep]) -> Vec<BTreeSet<usize>> {
    let index: HashMap<&StepId, usize> = drafts.iter().enumerate().map(|(i, d)| (&d.spec.id, i)).collect();
    let mut result: Vec<Option<BTreeSet<usize>>> = vec![None; drafts.len()];
    fn compute(
        node: usize,
        drafts: &[DraftStep],
        index: &HashMap<&StepId, usize>,
        result: &mut Vec<Option<BTreeSet<usize>>>,
    ) -> BTreeSet<usize> {
        if let Some(done) = &result[node] {
            return done.clone();
        }
        let mut set = BTreeSet::new();
        for need in &drafts[node].spec.needs {
            if let Some(&parent) = index.get(need).filter(|&&p| p != node) {
                set.insert(parent);
                set.extend(compute(parent, drafts, index, result));
            }
        }
        result[node] = Some(set.clone());
        set
    }
    (0..drafts.len()).map(|i| compute(i, drafts, &index, &mut result)).collect()
}

#[cfg(test)]
mod tests;
