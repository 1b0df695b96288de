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

    /// The steps that `templates` (text) and `expressions` name as `steps.NAME`, or `None` when
    /// one uses `steps` otherwise (as a whole, or with a computed name) or does not parse.
    ///
    /// A context that carries these steps (or every step, on `None`) evaluates the templates
    /// exactly as the full context does, at a cost that does not grow with the run's length.
    pub fn named_steps<'a>(
        &self,
        templates: impl IntoIterator<Item = &'a str>,
        expressions: impl IntoIterator<Item = &'a str>,
    ) -> Option<BTreeSet<String>> {
        let templates: Vec<&str> = templates.into_iter().collect();
        let expressions: Vec<&str> = expressions.into_iter().collect();
        let sources: Vec<&str> = templates.iter().chain(&expressions).copied().collect();
        let mut variables = BTreeSet::new();
        for template in templates {
            // What `render_text` and `render_shell` return unrendered refers to nothing.
            if template.contains("{{") || template.contains("{%") {
                variables.extend(self.template_variables(template).ok()?);
            }
        }
        for expression in expressions {
            variables.extend(self.expression_variables(expression).ok()?);
        }
        let mut steps = BTreeSet::new();
        for variable in &variables {
            let mut parts = variable.split('.');
            if parts.next() == Some("steps") {
                steps.insert(parts.next()?.to_owned());
            }
        }
        // minijinja's list misses variables in some places (inside a filter's
        // arguments, for one), so the text itself is read too: every `steps`
        // must be followed by `.NAME`, else the whole context is needed.
        for source in sources {
            steps.extend(steps_named_in(source)?);
        }
        Some(steps)
    }
}

/// The step names a template or expression text refers to as `steps.NAME`;
/// `None` when it uses `steps` any other way (`steps[name]`, `steps | tojson`).
fn steps_named_in(source: &str) -> Option<BTreeSet<String>> {
    let bytes = source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(found) = source[from..].find("steps") {
        let start = from + found;
        let end = start + "steps".len();
        from = end;
        let standalone = (start == 0 || !is_ident(bytes[start - 1]) && bytes[start - 1] != b'.')
            && (end == bytes.len() || !is_ident(bytes[end]));
        if !standalone {
            continue;
        }
        let rest = source[end..].trim_start();
        let name: String =
            rest.strip_prefix('.')?.trim_start().bytes().take_while(|&b| is_ident(b)).map(char::from).collect();
        if name.is_empty() {
            return None;
        }
        names.insert(name);
    }
    Some(names)
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
    fn named_steps_are_those_a_context_must_carry() {
        let t = Templates::new();
        let named = |templates: &[&str], expressions: &[&str]| {
            t.named_steps(templates.iter().copied(), expressions.iter().copied())
                .map(|steps| steps.into_iter().collect::<Vec<_>>())
        };
        let some = |names: &[&str]| Some(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            named(&["echo {{ steps.a.outputs.x }} {{ inputs.y }}"], &["steps.b.outcome == 'success'"]),
            some(&["a", "b"])
        );
        assert_eq!(named(&["plain text", "{{ inputs.y }}"], &[]), some(&[]));
        assert_eq!(named(&["{{ steps | tojson }}"], &[]), None);
        assert_eq!(named(&[], &["steps[inputs.name].outcome == 'success'"]), None);
        assert_eq!(named(&["{{ unclosed"], &[]), None);
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
