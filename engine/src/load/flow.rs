//! A step's flow keys: when it may start (`needs`, `if`), how long an attempt may take
//! (`timeout`), and how it is repeated (`retry`, and `until` with `poll`).

use crate::diag::Position;
use crate::ids::StepId;
use crate::model::{PollPolicy, RetryPolicy};
use crate::yaml::{Key, Node, Value};

use super::{Checker, TemplateSite, join};

/// More attempts than this is a loop, not a retry policy.
const MAX_ATTEMPTS: u32 = 10_000;
const POLL_KEYS: &[&str] = &["interval", "timeout"];
const RETRY_KEYS: &[&str] = &["attempts", "delay", "backoff", "max_delay", "jitter"];

/// A step's flow keys as read; the defaults for those it does not have.
#[derive(Default)]
pub(super) struct Flow {
    pub(super) needs: Vec<StepId>,
    /// Where each entry of `needs` is, for messages about it.
    pub(super) needs_positions: Vec<Position>,
    /// The `if` expression and where it is.
    pub(super) condition: Option<(String, Position)>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) timeout_template: Option<String>,
    pub(super) retry: RetryPolicy,
    /// The `until` expression and where it is.
    pub(super) until: Option<(String, Position)>,
    pub(super) poll: PollPolicy,
}

impl Checker<'_> {
    /// Reads `key` into `flow` when it is a flow key (`sub` is its field); false for any other key.
    pub(super) fn flow_key(
        &mut self,
        key: &Key,
        value: &Node,
        sub: &str,
        flow: &mut Flow,
        templates: &mut Vec<TemplateSite>,
    ) -> bool {
        match key.name.as_str() {
            "needs" => self.needs(value, sub, flow),
            "if" => {
                if let Some(expression) = self.condition(value, sub) {
                    flow.condition = Some((expression, value.position));
                }
            }
            "timeout" => self.timeout(value, sub, flow, templates),
            "retry" => {
                if let Some(policy) = self.retry(value, sub) {
                    flow.retry = policy;
                }
            }
            "until" => {
                if let Some(expression) = self.condition(value, sub) {
                    flow.until = Some((expression, value.position));
                }
            }
            "poll" => {
                if let Some(policy) = self.poll(value, sub, templates) {
                    flow.poll = policy;
                }
            }
            _ => return false,
        }
        true
    }

    /// `needs`: one step id or a list of them. Whether they name steps is checked with the graph.
    fn needs(&mut self, value: &Node, field: &str, flow: &mut Flow) {
        let items: Vec<&Node> = match &value.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![value],
        };
        for item in items {
            let Some(text) = self.scalar_text(item, field) else {
                continue;
            };
            match StepId::new(&text) {
                Ok(need) => {
                    flow.needs.push(need);
                    flow.needs_positions.push(item.position);
                }
                Err(message) => {
                    self.error(item.position, field, message);
                }
            }
        }
    }

    /// `timeout`: a duration longer than 0s, or a template rendered when the step runs.
    fn timeout(&mut self, value: &Node, field: &str, flow: &mut Flow, templates: &mut Vec<TemplateSite>) {
        match template_text(value) {
            Some(template) => {
                templates.push(TemplateSite {
                    field: field.to_owned(),
                    position: value.position,
                    source: template.clone(),
                    in_outputs: false,
                });
                flow.timeout_template = Some(template);
            }
            None => match self.duration_ms(value, field) {
                Some(0) => self.error(value.position, field, "a timeout must be longer than 0s"),
                Some(ms) => flow.timeout_ms = Some(ms),
                None => {}
            },
        }
    }

    /// A bare expression (`if`, `until`); `{{ expr }}` is accepted as the same expression.
    pub(super) fn condition(&mut self, value: &Node, field: &str) -> Option<String> {
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

    /// `poll`: how often a step with `until` runs again, and for how long at most.
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

    /// `retry`: a number of attempts, or a mapping with `attempts`, `delay`, `backoff`, `max_delay`, `jitter`.
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
