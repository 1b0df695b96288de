//! What each template and expression may name: declared inputs and secrets, the steps it
//! comes after (its ancestors), the outputs those steps declare or their kind provides,
//! the run, and, in a step's own `outputs`, `until` and `check.done`, what the step saw.

use std::collections::BTreeSet;

use crate::diag::did_you_mean;
use crate::model::InputSpec;
use crate::template::TemplateProblem;

use super::step::DraftStep;
use super::{Checker, TemplateSite, join};

impl Checker<'_> {
    /// Checks that every template and the `if` of a step refer to declared inputs and to ancestor steps.
    pub(super) fn step_references(
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
pub(super) fn workflow_output_reference(
    variable: &str,
    drafts: &[DraftStep],
    inputs: &[InputSpec],
) -> Result<(), String> {
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
