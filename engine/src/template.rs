//! Templates (`{{ ... }}` in step fields) and expressions (`if`, `until`), on minijinja in strict mode.
//!
//! Two environments share one configuration: the text one renders values as
//! plain text, the shell one renders every interpolated value shell-quoted so
//! that an input can never inject a command into a `run:` script. In both,
//! booleans render as `true`/`false` and lists and mappings as JSON, the way a
//! YAML author expects, rather than Python's `True` and `{'a': 1}`.

use minijinja::value::{Serde, Value as TemplateValue, ValueKind};
use minijinja::{Environment, Error as TemplateError, Output, State, UndefinedBehavior};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Renders templates and evaluates expressions against a JSON context.
pub struct Templates {
    text: Environment<'static>,
    shell: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Templates {
        Templates::new()
    }
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

fn environment(shell: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    if shell {
        env.set_formatter(|out: &mut Output, _: &mut State, value: &TemplateValue| {
            let text = plain_text(value)?;
            out.write_str(&shell_quote(&text)).map_err(TemplateError::from)
        });
    } else {
        env.set_formatter(|out: &mut Output, _: &mut State, value: &TemplateValue| {
            let text = plain_text(value)?;
            out.write_str(&text).map_err(TemplateError::from)
        });
    }
    env
}

/// How a value looks when written into text.
fn plain_text(value: &TemplateValue) -> Result<String, TemplateError> {
    if value.is_undefined() {
        return Err(TemplateError::new(minijinja::ErrorKind::UndefinedError, "undefined value"));
    }
    Ok(match value.kind() {
        ValueKind::None | ValueKind::Undefined => String::new(),
        ValueKind::Bool => if value.is_true() { "true" } else { "false" }.to_owned(),
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        ValueKind::Number => value.to_string(),
        _ => serde_json::to_string(value).map_err(|e| {
            TemplateError::new(minijinja::ErrorKind::BadSerialization, format!("cannot write value as JSON: {e}"))
        })?,
    })
}

/// Quotes `text` for bash so that it is one word with exactly this content.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b)) {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// A template or expression problem, with the line inside the template when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    pub line_in_template: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn problem(error: &TemplateError) -> TemplateProblem {
    let mut message = match error.detail() {
        Some(detail) => format!("{}: {detail}", kind_text(error)),
        None => kind_text(error),
    };
    // minijinja names undefined values in its detail only sometimes; keep the message short.
    if message.ends_with(": undefined value") {
        message.truncate(message.len() - ": undefined value".len());
    }
    TemplateProblem { line_in_template: error.line(), message }
}

fn kind_text(error: &TemplateError) -> String {
    match error.kind() {
        minijinja::ErrorKind::UndefinedError => "undefined value".to_owned(),
        minijinja::ErrorKind::SyntaxError => "syntax error".to_owned(),
        minijinja::ErrorKind::UnknownFilter => "unknown filter".to_owned(),
        minijinja::ErrorKind::UnknownFunction => "unknown function".to_owned(),
        minijinja::ErrorKind::UnknownTest => "unknown test".to_owned(),
        minijinja::ErrorKind::InvalidOperation => "invalid operation".to_owned(),
        other => {
            let mut text = String::new();
            let _ = write!(text, "{other}");
            text
        }
    }
}

impl Templates {
    pub fn new() -> Templates {
        Templates { text: environment(false), shell: environment(true) }
    }

    /// Renders `source` with values written as plain text.
    pub fn render_text(&self, source: &str, context: &serde_json::Value) -> Result<String, TemplateProblem> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_owned());
        }
        self.text.render_str(source, TemplateValue::from(Serde(context))).map_err(|e| problem(&e))
    }

    /// Renders `source` with every interpolated value shell-quoted.
    pub fn render_shell(&self, source: &str, context: &serde_json::Value) -> Result<String, TemplateProblem> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_owned());
        }
        self.shell.render_str(source, TemplateValue::from(Serde(context))).map_err(|e| problem(&e))
    }

    /// Evaluates a bare expression (`steps.a.outcome == 'failure'`) to a boolean.
    pub fn eval_condition(&self, expression: &str, context: &serde_json::Value) -> Result<bool, TemplateProblem> {
        let compiled = self.text.compile_expression(expression).map_err(|e| problem(&e))?;
        let value = compiled.eval(TemplateValue::from(Serde(context))).map_err(|e| problem(&e))?;
        Ok(value.is_true())
    }

    /// Evaluates an output template. A template that is a single `{{ expression }}`
    /// keeps the expression's JSON type (a number stays a number, a list a list);
    /// anything else renders to text.
    pub fn eval_value(&self, source: &str, context: &serde_json::Value) -> Result<serde_json::Value, TemplateProblem> {
        if let Some(expression) = single_expression(source) {
            let compiled = self.text.compile_expression(expression).map_err(|e| problem(&e))?;
            let value = compiled.eval(TemplateValue::from(Serde(context))).map_err(|e| problem(&e))?;
            if value.is_undefined() {
                return Err(TemplateProblem {
                    line_in_template: None,
                    message: format!("undefined value: `{}` is undefined", expression.trim()),
                });
            }
            return serde_json::to_value(&value).map_err(|e| TemplateProblem {
                line_in_template: None,
                message: format!("cannot turn the value into JSON: {e}"),
            });
        }
        self.render_text(source, context).map(serde_json::Value::String)
    }

    /// The variables a template refers to, as dotted paths (`inputs.host`, `steps.a.outputs.ip`).
    pub fn template_variables(&self, source: &str) -> Result<BTreeSet<String>, TemplateProblem> {
        let template = self.text.template_from_str(source).map_err(|e| problem(&e))?;
        Ok(template.undeclared_variables(true).into_iter().collect())
    }

    /// The variables an expression refers to, as dotted paths.
    pub fn expression_variables(&self, expression: &str) -> Result<BTreeSet<String>, TemplateProblem> {
        let compiled = self.text.compile_expression(expression).map_err(|e| problem(&e))?;
        Ok(compiled.undeclared_variables(true).into_iter().collect())
    }
}

/// `{{ expr }}` with nothing around it, returning `expr`.
fn single_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check_shell(template: &str, context: serde_json::Value, expected: &str) {
        let rendered = Templates::new().render_shell(template, &context).expect("renders");
        assert_eq!(rendered, expected);
    }

    #[test]
    fn shell_rendering_quotes_every_value() {
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": "plain"}}), "echo plain");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": "; touch pwned"}}), "echo '; touch pwned'");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": "$(id)`id`"}}), "echo '$(id)`id`'");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": "it's"}}), "echo 'it'\\''s'");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": ""}}), "echo ''");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": true}}), "echo true");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": 80}}), "echo 80");
        check_shell("echo {{ inputs.x }}", json!({"inputs": {"x": [1, "a"]}}), "echo '[1,\"a\"]'");
    }

    #[test]
    fn strict_mode_rejects_undefined_values() {
        let t = Templates::new();
        let error = t.render_text("{{ inputs.hots }}", &json!({"inputs": {"host": "a"}})).expect_err("undefined");
        assert!(error.message.contains("undefined"), "{error:?}");
        let error = t.render_shell("{{ inputs.hots }}", &json!({"inputs": {}})).expect_err("undefined");
        assert!(error.message.contains("undefined"), "{error:?}");
    }

    #[test]
    fn conditions_and_values() {
        let t = Templates::new();
        let ctx = json!({"steps": {"a": {"outcome": "failure", "outputs": {"n": 3, "l": [1, 2]}}}});
        assert!(t.eval_condition("steps.a.outcome == 'failure'", &ctx).expect("evaluates"));
        assert!(!t.eval_condition("steps.a.outputs.n > 5", &ctx).expect("evaluates"));
        assert_eq!(t.eval_value("{{ steps.a.outputs.n }}", &ctx).expect("value"), json!(3));
        assert_eq!(t.eval_value("{{ steps.a.outputs.l }}", &ctx).expect("value"), json!([1, 2]));
        assert_eq!(t.eval_value("n={{ steps.a.outputs.n }}", &ctx).expect("value"), json!("n=3"));
        assert!(t.eval_value("{{ steps.a.outputs.missing }}", &ctx).is_err());
        assert!(t.eval_condition("steps.a.outcome ==", &ctx).is_err());
    }

    #[test]
    fn variables_are_listed_as_paths() {
        let t = Templates::new();
        let vars = t.template_variables("{{ inputs.a }} {{ steps.b.outputs.c }}").expect("parses");
        assert!(vars.contains("inputs.a"), "{vars:?}");
        assert!(vars.contains("steps.b.outputs.c"), "{vars:?}");
        let vars = t.expression_variables("steps.x.outcome == 'success'").expect("parses");
        assert!(vars.contains("steps.x.outcome"), "{vars:?}");
    }
}
