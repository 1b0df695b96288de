//! Loading a workflow: YAML text → [`Node`] tree → validated [`Workflow`].
//!
//! Validation never stops at the first problem: it walks the whole file and
//! returns every [`Diagnostic`], each with `file:line:col` and the field, so
//! that one `runbook validate` shows all there is to fix. Nothing runs until
//! a workflow loads without diagnostics.
//!
//! One `Checker` walks the file; each part of the file adds its methods to it
//! in a module of its own:
//!
//! - this module: the entry points, and readers of the scalars and mappings every part uses;
//! - `document`: the top-level keys, the order in which the parts are checked, `on_failure`
//!   and the workflow's `outputs`;
//! - `inputs`: `inputs` and `secrets`;
//! - `schedule`: `schedule` entries, and the inputs they give once the inputs are known;
//! - `step`: one step: its common keys, its kind and the kind's configuration, `check`,
//!   `outputs` and `env`;
//! - `flow`: a step's flow keys: `needs`, `if`, `timeout`, `retry`, `until`, `poll`;
//! - `graph`: the checks across steps, once all are read: ids, `needs`, cycles, ancestors;
//! - `references`: what each template and expression may name, checked against the graph.
//!
//! A step kind checks its own configuration (`StepKind::check_config`): the loader
//! knows no kind, only the registry's names.
//!
//! Diagnostics are sorted by position before they are returned (a stable sort), so
//! each part checks in the order that reads best; problems found at one place keep
//! the order in which they were found.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, Position, did_you_mean};
use crate::duration::parse_duration;
use crate::model::Workflow;
use crate::step::Registry;
use crate::template::Templates;
use crate::yaml::{self, Key, Node, Value};

mod document;
mod flow;
mod graph;
mod inputs;
mod references;
mod schedule;
mod step;
#[cfg(test)]
mod tests;

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

/// Walks one workflow file and collects what is wrong with it.
struct Checker<'a> {
    file: &'a Path,
    registry: &'a Registry,
    diagnostics: Vec<Diagnostic>,
    templates: Templates,
    /// Inputs given by schedule entries, checked once the inputs are known.
    schedule_inputs: Vec<schedule::ScheduleInputs>,
    /// The workflow's declared secrets, which templates may name as `secrets.NAME`.
    secret_names: Vec<String>,
}

/// A template of a step, with where it is, checked once the steps it may refer to are known.
struct TemplateSite {
    field: String,
    position: Position,
    source: String,
    /// In `outputs`, the kind's locals (`stdout`, `json`) are in scope.
    in_outputs: bool,
}

/// Reporting, and readers of the values every part of the file has: a reader that finds
/// something else reports what it expected and gives `None`.
impl Checker<'_> {
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
}

/// A name an environment variable may have: letters, digits and `_`, not starting with a digit.
fn is_env_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The field path of `key` under `field` (`steps[0]` and `retry` give `steps[0].retry`).
fn join(field: &str, key: &str) -> String {
    if field.is_empty() { key.to_owned() } else { format!("{field}.{key}") }
}
