//! The workflow's `inputs` (the short form `port: int`, or a mapping with `type`, `required`,
//! `default`, `description`, `pattern`) and its `secrets`.

use crate::diag::{Position, did_you_mean};
use crate::ids::StepId;
use crate::model::{InputSpec, InputType, whole_match};
use crate::yaml::{Node, Value};

use super::{Checker, is_env_name, join};

const INPUT_KEYS: &[&str] = &["type", "required", "default", "description", "pattern"];

impl Checker<'_> {
    pub(super) fn inputs(&mut self, node: &Node) -> Vec<InputSpec> {
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
                        match whole_match(&text) {
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

    pub(super) fn secrets(&mut self, node: &Node) -> Vec<String> {
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
}
