//! The validated workflow model. Built from YAML by [`crate::load`]; stored as
//! canonical JSON in `run_started` so that a resumed run uses exactly the
//! definition it started with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::StepId;

/// A workflow: inputs, secrets, steps and schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Inputs in the order the file declares them.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// Names of environment variables whose values are masked everywhere.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Steps in the order the file lists them.
    pub steps: Vec<StepSpec>,
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
    /// Name → template, evaluated when the run finishes: what a parent's `workflow` step receives.
    #[serde(default)]
    pub outputs: Vec<(String, String)>,
    /// How many steps of one run may execute at once.
    pub max_parallel: usize,
}

impl Workflow {
    pub fn step(&self, id: &StepId) -> Option<&StepSpec> {
        self.steps.iter().find(|s| &s.id == id)
    }
    pub fn step_index(&self, id: &StepId) -> Option<usize> {
        self.steps.iter().position(|s| &s.id == id)
    }
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// The default bound on steps running at once in one run.
pub const DEFAULT_MAX_PARALLEL: usize = 8;

/// A declared input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub input_type: InputType,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: String,
    /// For `string` inputs: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

impl InputSpec {
    /// Text from the command line as a value of this input, type and pattern checked.
    pub fn parse_text(&self, text: &str) -> Result<serde_json::Value, String> {
        self.input_type.parse_text(text).and_then(|value| self.check_pattern(value))
    }

    /// A value from YAML or JSON as a value of this input, type and pattern checked.
    pub fn check_value(&self, value: &serde_json::Value) -> Result<serde_json::Value, String> {
        self.input_type.check_value(value).and_then(|value| self.check_pattern(value))
    }

    fn check_pattern(&self, value: serde_json::Value) -> Result<serde_json::Value, String> {
        let (Some(pattern), Some(text)) = (&self.pattern, value.as_str()) else { return Ok(value) };
        let regex = whole_match(pattern)?;
        if regex.is_match(text) { Ok(value) } else { Err(format!("`{text}` does not match the pattern `{pattern}`")) }
    }
}

/// A regular expression that must match a whole value, not a part of it.
pub fn whole_match(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("`{pattern}` is not a regular expression: {e}"))
}

/// The types an input may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Int,
    Bool,
    Ip,
    Cidr,
}

impl InputType {
    pub const NAMES: [&'static str; 5] = ["string", "int", "bool", "ip", "cidr"];

    pub fn from_name(name: &str) -> Option<InputType> {
        Some(match name {
            "string" => InputType::String,
            "int" => InputType::Int,
            "bool" => InputType::Bool,
            "ip" => InputType::Ip,
            "cidr" => InputType::Cidr,
            _ => return None,
        })
    }

    /// Turns text given on the command line into a value of this type.
    pub fn parse_text(self, text: &str) -> Result<serde_json::Value, String> {
        match self {
            InputType::String => Ok(serde_json::Value::String(text.to_owned())),
            InputType::Int => text
                .trim()
                .parse::<i64>()
                .map(serde_json::Value::from)
                .map_err(|_| format!("`{text}` is not an integer")),
            InputType::Bool => match text.trim() {
                "true" | "yes" | "1" => Ok(serde_json::Value::Bool(true)),
                "false" | "no" | "0" => Ok(serde_json::Value::Bool(false)),
                _ => Err(format!("`{text}` is not a boolean (true or false)")),
            },
            InputType::Ip => check_ip(text).map(|()| serde_json::Value::String(text.trim().to_owned())),
            InputType::Cidr => check_cidr(text).map(|()| serde_json::Value::String(text.trim().to_owned())),
        }
    }

    /// Checks a value given in YAML (a default) and returns it in canonical form.
    pub fn check_value(self, value: &serde_json::Value) -> Result<serde_json::Value, String> {
        match (self, value) {
            (InputType::String, serde_json::Value::String(_)) => Ok(value.clone()),
            (InputType::String, serde_json::Value::Number(n)) => Ok(serde_json::Value::String(n.to_string())),
            (InputType::Int, serde_json::Value::Number(n)) if n.is_i64() => Ok(value.clone()),
            (InputType::Bool, serde_json::Value::Bool(_)) => Ok(value.clone()),
            (InputType::Ip | InputType::Cidr | InputType::Int | InputType::Bool, serde_json::Value::String(s)) => {
                self.parse_text(s)
            }
            _ => Err(format!("{} is not a valid {}", describe_json(value), self.name())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Int => "int",
            InputType::Bool => "bool",
            InputType::Ip => "ip",
            InputType::Cidr => "cidr",
        }
    }
}

fn describe_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn check_ip(text: &str) -> Result<(), String> {
    text.trim().parse::<std::net::IpAddr>().map(drop).map_err(|_| format!("`{text}` is not an IP address"))
}

fn check_cidr(text: &str) -> Result<(), String> {
    let bad = || format!("`{text}` is not a CIDR block (like 203.0.113.25/32)");
    let (address, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
    let address: std::net::IpAddr = address.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(())
}

/// A step: when it runs, what it runs, how it is retried, what it outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    pub id: StepId,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub needs: Vec<StepId>,
    /// The `if` expression; without one a step runs when its needs succeeded.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The step kind, the YAML key that selected it (`run`).
    pub kind: String,
    /// The kind's configuration as written (templates not yet rendered).
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `timeout` written as a template, rendered when the step starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_template: Option<String>,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub continue_on_error: bool,
    /// Safe to run again when a crash left it started but unfinished.
    pub idempotent: bool,
    /// Output name → template, in file order.
    #[serde(default)]
    pub outputs: Vec<(String, String)>,
    /// Environment variables for the step, values are templates.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Polling: the step runs again every `poll.interval` until this expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// A step of the workflow's `on_failure` handler: it runs only once every
    /// other step has finished and the run is failing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handler: bool,
    /// For a step that is not safe to repeat: how to find out, after a crash, whether it took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    #[serde(default)]
    pub poll: PollPolicy,
}

/// A read-only look that tells whether a step's effect already happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// The step kind that looks (`run`), and its configuration.
    pub kind: String,
    pub config: serde_json::Value,
    /// True when the effect is there; sees the look's values (`stdout`, `json`) as the step's `outputs` do.
    pub done: String,
}

/// How often a step with `until` polls, and for how long at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollPolicy {
    pub interval_ms: u64,
    /// Counted from the start of the first poll; past it the step fails.
    pub timeout_ms: u64,
    /// `interval` written as a template (`{{ inputs.poll_interval }}`), rendered when the step runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_template: Option<String>,
}

impl Default for PollPolicy {
    fn default() -> PollPolicy {
        PollPolicy { interval_ms: 5_000, timeout_ms: 600_000, interval_template: None, timeout_template: None }
    }
}

impl StepSpec {
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// How a failed step is retried. `attempts` counts every attempt, the first included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub delay_ms: u64,
    pub backoff: f64,
    pub max_delay_ms: u64,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { attempts: 1, delay_ms: 1_000, backoff: 2.0, max_delay_ms: 300_000, jitter: false }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `failed_attempt` (1-based, counted
    /// within the current attempt budget) before the next one: `delay *
    /// backoff^(n-1)`, capped at `max_delay`. With jitter the wait is drawn
    /// from the upper half of that, `jitter_seed` choosing where, so two
    /// replays of the same seed agree.
    pub fn delay_for(&self, failed_attempt: u32, jitter_seed: u64) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(64) as i32;
        let raw = self.delay_ms as f64 * self.backoff.max(1.0).powi(exponent);
        let capped = raw.min(self.max_delay_ms as f64).max(0.0);
        let ms = if self.jitter {
            let half = capped / 2.0;
            // Map the seed to [0, 1) with 53 bits, the precision of an f64.
            let fraction = (jitter_seed >> 11) as f64 / (1u64 << 53) as f64;
            half + half * fraction
        } else {
            capped
        };
        Duration::from_millis(ms.round() as u64)
    }
}

/// A cron schedule entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub cron: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<String>,
    /// A fire that would start later than this after its time is dropped (with the reason recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_ms: Option<u64>,
    /// No fire while a run this entry started is escalated and not acknowledged (`runbook ack`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_while_escalated: bool,
    /// No fire for this long after a run this entry started escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_cap() {
        let policy = RetryPolicy { attempts: 5, delay_ms: 1_000, backoff: 2.0, max_delay_ms: 5_000, jitter: false };
        let delays: Vec<u128> = (1..=5).map(|n| policy.delay_for(n, 0).as_millis()).collect();
        assert_eq!(delays, vec![1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_is_deterministic() {
        let policy = RetryPolicy { attempts: 3, delay_ms: 1_000, backoff: 2.0, max_delay_ms: 60_000, jitter: true };
        for seed in [0, 1, u64::MAX / 3, u64::MAX] {
            let d = policy.delay_for(2, seed).as_millis();
            assert!((1_000..=2_000).contains(&d), "{d}");
            assert_eq!(policy.delay_for(2, seed), policy.delay_for(2, seed));
        }
        assert_ne!(policy.delay_for(2, 0), policy.delay_for(2, u64::MAX));
    }

    #[test]
    fn input_types() {
        assert!(InputType::Ip.parse_text("4.156.121.111").is_ok());
        assert!(InputType::Ip.parse_text("::1").is_ok());
        assert!(InputType::Ip.parse_text("4.156.121").is_err());
        assert!(InputType::Cidr.parse_text("203.0.113.25/32").is_ok());
        assert!(InputType::Cidr.parse_text("203.0.113.25/33").is_err());
        assert!(InputType::Cidr.parse_text("203.0.113.25").is_err());
        assert!(InputType::Int.parse_text("80").is_ok());
        assert!(InputType::Int.parse_text("eighty").is_err());
        assert!(InputType::Bool.parse_text("maybe").is_err());
    }
}
