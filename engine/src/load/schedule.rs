//! The workflow's `schedule`: one cron string, one mapping, or a list of either, and the
//! inputs each entry gives its runs, checked once the workflow's inputs are known.

use std::collections::BTreeMap;

use crate::diag::{Position, did_you_mean};
use crate::model::{InputSpec, ScheduleSpec};
use crate::schedule::{parse_cron, parse_timezone};
use crate::yaml::{Key, Node, Value};

use super::{Checker, join};

const SCHEDULE_KEYS: &[&str] =
    &["cron", "timezone", "inputs", "overlap", "catch_up", "starting_deadline", "pause_while_escalated", "cooldown"];

/// The inputs one schedule entry gives (none for a bare cron string), where it gives them.
pub(super) struct ScheduleInputs {
    field: String,
    position: Position,
    values: Vec<(Key, Node)>,
}

impl Checker<'_> {
    pub(super) fn schedules(&mut self, node: &Node) -> Vec<ScheduleSpec> {
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
    pub(super) fn check_schedule_inputs(&mut self, inputs: &[InputSpec]) {
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
}
