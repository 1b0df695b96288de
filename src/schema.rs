//! The JSON Schema of the workflow file, `docs/workflow.schema.json`, for editors (yaml-language-server).
//!
//! Workflows are validated by hand in `runbook_engine::load` and by each step
//! kind's `check_config`, which report every problem with its line; that stays
//! the source of truth. The types here mirror the file as it is written, one
//! struct per mapping, so that schemars can describe it: doc comments become
//! descriptions, `deny_unknown_fields` rejects unknown keys as `runbook
//! validate` does. They are never built; they exist to be described.
//!
//! The schema is deliberately a little more lenient than the validator about
//! values (it cannot check references between steps, or render templates),
//! never stricter: a file `runbook validate` accepts is valid against it.
//! `tests/ux.rs` checks both that the checked-in file is up to date
//! (`runbook schema > docs/workflow.schema.json` regenerates it) and that it
//! knows exactly the keys the validator knows.

// The types are only described, never constructed or read.
#![allow(dead_code)]

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The schema, as pretty JSON with a final newline: what `runbook schema` prints.
pub fn workflow_schema_json() -> String {
    let mut settings = schemars::generate::SchemaSettings::draft07();
    // Before the draft-07 transforms, which wrap a `$ref` with siblings in `allOf`.
    settings.transforms.insert(0, Box::new(drop_null));
    let mut schema = settings.into_generator().into_root_schema_for::<WorkflowFile>();
    schema.insert("title".to_owned(), "runbook workflow".into());
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Optional keys are described without `null`: YAML leaves a key out by
/// omitting it, and `key:` with no value is an error to the validator.
fn drop_null(schema: &mut Schema) {
    schemars::transform::transform_subschemas(&mut drop_null, schema);
    let Some(object) = schema.as_object_mut() else { return };
    if let Some(serde_json::Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            object.insert("type".to_owned(), single);
        }
    }
    if let Some(serde_json::Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(serde_json::Value::Array(alternatives)) = object.get_mut("anyOf") {
        alternatives.retain(|a| a.get("type").is_none_or(|t| t != "null"));
        if alternatives.len() == 1 {
            let only = alternatives.remove(0);
            object.remove("anyOf");
            if let serde_json::Value::Object(fields) = only {
                for (key, value) in fields {
                    object.entry(key).or_insert(value);
                }
            }
        }
    }
}

/// The step kinds, each a key of a step; a step has exactly one.
pub const KINDS: &[&str] = &["run", "set", "http", "tcp", "ping", "workflow", "approval", "bundle"];

/// A runbook workflow: inputs, secrets and a graph of steps. See docs/workflow-reference.md.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// How runs and `runbook runs --workflow` name it: lowercase letters, digits and `-`.
    #[schemars(regex(pattern = r"^[a-z0-9-]+$"))]
    pub name: String,
    /// What the workflow is for.
    pub description: Option<String>,
    /// Typed inputs by name, given as `runbook run WORKFLOW -i name=value`.
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z_][a-z0-9_]*$" }))]
    pub inputs: Option<BTreeMap<String, Input>>,
    /// Names of environment variables whose values are masked everywhere the engine writes or shows anything.
    pub secrets: Option<Vec<EnvName>>,
    /// The steps; `needs` makes the graph, and steps whose needs are met run in parallel.
    #[schemars(length(min = 1))]
    pub steps: Vec<StepFile>,
    /// Name → template over inputs and any step, evaluated when the run ends: what a parent's `workflow` step receives.
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z_][a-z0-9_]*$" }))]
    pub outputs: Option<BTreeMap<String, Text>>,
    /// Steps that run once every other step has finished and the run is failing, or `{ workflow: NAME, inputs: {...} }`.
    pub on_failure: Option<OnFailure>,
    /// A cron expression (5 fields, or 6 with seconds first), or a list of them, for `runbook daemon`.
    pub schedule: Option<Schedule>,
    /// How many steps of one run may execute at once (default 8).
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u64>,
}

/// A declared input: its type, or a mapping with `type`, `required`, `default`, `description`.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Input {
    /// Short for `{ type: TYPE, required: true }`.
    Type(InputType),
    Full(InputSpec),
}

/// An input's declaration.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type")]
    pub input_type: InputType,
    /// Defaults to true without a `default`, false with one; an input with a default cannot be required.
    pub required: Option<bool>,
    /// The value when none is given; checked against the type.
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
    /// For `string` inputs: a regular expression the whole value must match.
    pub pattern: Option<String>,
}

/// The type of an input.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any text.
    String,
    /// A whole number.
    Int,
    /// true or false.
    Bool,
    /// An IPv4 or IPv6 address.
    Ip,
    /// `address/prefix`, like 203.0.113.25/32.
    Cidr,
}

/// `on_failure`: a list of steps, or one child workflow.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum OnFailure {
    Steps(Vec<StepFile>),
    Workflow(OnFailureWorkflow),
}

/// `on_failure: { workflow: NAME, inputs: {...} }`: one `workflow` step named `on_failure`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnFailureWorkflow {
    /// The workflow to run: a name (NAME.yaml beside this file) or a path.
    pub workflow: String,
    /// Its inputs; values are templates.
    pub inputs: Option<BTreeMap<String, serde_json::Value>>,
}

/// One cron expression, one entry, or a list of them.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Schedule {
    One(ScheduleItem),
    Many(Vec<ScheduleItem>),
}

/// A cron expression, or an entry with `cron` and its options.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum ScheduleItem {
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or `@daily`.
    Cron(String),
    Entry(ScheduleEntry),
}

/// A schedule entry.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or `@daily`.
    pub cron: String,
    /// An IANA time zone name (Europe/Paris); UTC without it.
    pub timezone: Option<String>,
    /// Inputs of the scheduled runs; every required input must be given.
    pub inputs: Option<BTreeMap<String, serde_json::Value>>,
    /// What to do when the previous scheduled run is still going.
    pub overlap: Option<Overlap>,
    /// What to do about times missed while the daemon was down.
    pub catch_up: Option<CatchUp>,
    /// A fire later than this after its scheduled time is dropped, with the reason recorded.
    pub starting_deadline: Option<Duration>,
    /// No fire while the last run (or a child) is escalated and not acknowledged (`runbook ack`).
    pub pause_while_escalated: Option<bool>,
    /// No fire for this long after an escalation of the last run.
    pub cooldown: Option<Duration>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    Skip,
    QueueOne,
    Allow,
    CancelPrevious,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    Once,
    None,
}

/// A step: an `id`, exactly one kind key (`run`, `set`, `http`, `tcp`, `ping`, `workflow`, `approval`, `bundle`) and options.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = exactly_one_kind)]
pub struct StepFile {
    /// The step's name, unique in the workflow: lowercase letters, digits and `_`, not starting with a digit.
    pub id: StepName,
    /// What the step does.
    pub description: Option<String>,
    /// A step id or a list of them: this step waits for them.
    pub needs: Option<Needs>,
    /// A bare expression (`steps.probe.outcome == 'failure'`); without it, a step runs when every need succeeded.
    #[serde(rename = "if")]
    pub condition: Option<Text>,
    /// The longest one attempt may take; on expiry the step's processes are stopped.
    pub timeout: Option<Duration>,
    /// `attempts` (every attempt, the first included), or a mapping with the backoff; `retry: 3` is `{ attempts: 3 }`.
    pub retry: Option<Retry>,
    /// The run goes on and ends green although this step failed; its `outcome` is still `failure`.
    pub continue_on_error: Option<bool>,
    /// Safe to run again when a crash left it started but unfinished; with `false` a resume asks an operator.
    pub idempotent: Option<bool>,
    /// Output name → template, evaluated when the step succeeds.
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z_][a-z0-9_]*$" }))]
    pub outputs: Option<BTreeMap<String, Text>>,
    /// Environment variables for the step; values are templates.
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }))]
    pub env: Option<BTreeMap<String, Text>>,
    /// Polling: the step runs again every `poll.interval` until this expression (which sees `outputs`) is true.
    pub until: Option<Text>,
    /// How often a step with `until` polls, and for how long at most.
    pub poll: Option<Poll>,
    /// For a step marked `idempotent: false`: a read-only look that tells, after a crash left the
    /// step started but unfinished, whether its effect already happened.
    pub check: Option<Check>,

    /// A bash script, run as `bash -euo pipefail -c SCRIPT`; interpolated values are shell-quoted.
    pub run: Option<String>,
    /// Values computed from expressions, with no IO; every name becomes an output of the step.
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z_][a-z0-9_]*$" }), extend("minProperties" = 1))]
    pub set: Option<BTreeMap<String, serde_json::Value>>,
    /// One HTTP request; a string is the `url`.
    pub http: Option<Http>,
    /// Opens a TCP connection and closes it, telling "nothing listening" from "the SYN gets no answer".
    pub tcp: Option<TcpConfig>,
    /// ICMP echo through the system `ping`; a string is the `host`.
    pub ping: Option<Ping>,
    /// Runs another workflow as a child run; a string is its `name`.
    pub workflow: Option<ChildWorkflow>,
    /// A human gate: waits for `runbook approve RUN STEP` or `runbook reject RUN STEP`.
    pub approval: Option<ApprovalConfig>,
    /// Writes an escalation bundle for the cloud vendor's support, and emails it.
    pub bundle: Option<BundleConfig>,
}

/// A step's `check`: one read-only kind key (usually `run`) and `done`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// True when the effect is there; sees the look's values (`stdout`, `json`), as `outputs` do.
    pub done: Text,
    /// A read-only bash script.
    pub run: Option<String>,
    /// A read-only HTTP request.
    pub http: Option<Http>,
    /// A TCP connection.
    pub tcp: Option<TcpConfig>,
    /// An ICMP echo.
    pub ping: Option<Ping>,
    /// Values computed from expressions.
    pub set: Option<BTreeMap<String, serde_json::Value>>,
}

/// `oneOf` "has `run`", "has `set`", ...: a step has exactly one kind key.
fn exactly_one_kind(schema: &mut Schema) {
    let one_of: Vec<serde_json::Value> = KINDS.iter().map(|kind| serde_json::json!({ "required": [kind] })).collect();
    schema.insert("oneOf".to_owned(), serde_json::Value::Array(one_of));
}

/// A step id or a list of them.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Needs {
    One(StepName),
    Many(Vec<StepName>),
}

/// `attempts`, or the whole policy.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Retry {
    /// Every attempt, the first included.
    Attempts(#[schemars(range(min = 1, max = 10000))] u32),
    Policy(RetryPolicy),
}

/// How a failed step is retried: the wait after failed attempt n is `delay * backoff^(n-1)`, capped at `max_delay`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Every attempt, the first included (at least 1).
    #[schemars(range(min = 1, max = 10000))]
    pub attempts: Option<u32>,
    /// The wait after the first failed attempt (default 1s).
    pub delay: Option<Duration>,
    /// The factor between successive waits (default 2.0).
    #[schemars(range(min = 1.0))]
    pub backoff: Option<f64>,
    /// The longest wait (default 5m).
    pub max_delay: Option<Duration>,
    /// Draw each wait from the upper half of its value (default false).
    pub jitter: Option<bool>,
}

/// How often a step with `until` polls.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// Between polls (default 5s).
    pub interval: Option<Duration>,
    /// Counted from the start of the first poll; past it the step fails (default 10m).
    pub timeout: Option<Duration>,
}

/// `http: URL` or the request's mapping.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Http {
    Url(String),
    Request(HttpConfig),
}

/// One HTTP/1.1 request. Every value may be a template.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS, in any case.
    pub method: Option<Method>,
    /// Header names to values.
    pub headers: Option<BTreeMap<String, Text>>,
    /// Text is sent as it is; a mapping or a list is sent as JSON.
    pub body: Option<serde_json::Value>,
    /// How long the whole request may take (default 10s).
    pub timeout: Option<Duration>,
    /// `false` accepts any certificate; the connection is still encrypted (default true).
    pub verify_tls: Option<Flag>,
    /// Follow up to 10 redirects and report the last answer (default false).
    pub follow_redirects: Option<Flag>,
    /// A status (200), a class (3xx), or a list of them (default 2xx).
    pub expect_status: Option<ExpectStatus>,
    /// Text the body must contain (case-sensitive).
    pub expect_body: Option<Text>,
}

/// A status, a class, or a list of them.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum ExpectStatus {
    One(Status),
    Many(Vec<Status>),
}

/// `tcp: { host, port, timeout }`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// A host name, an IPv4 address or an IPv6 address.
    pub host: Text,
    /// 1 to 65535.
    pub port: Port,
    /// How long to wait for the connection, name resolution included (default 5s).
    pub timeout: Option<Duration>,
}

/// `ping: HOST` or the probe's mapping.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Ping {
    Host(String),
    Probe(PingConfig),
}

/// `ping: { host, count, interval, timeout }`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingConfig {
    /// A host name or address.
    pub host: Text,
    /// Echo requests to send, 1 to 1000 (default 3).
    pub count: Option<Count>,
    /// Time between requests, at least 200ms (default 1s).
    pub interval: Option<Duration>,
    /// The longest the whole probe takes (default 10s).
    pub timeout: Option<Duration>,
}

/// `workflow: NAME` or `{ name, inputs }`.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum ChildWorkflow {
    Name(String),
    Call(ChildWorkflowConfig),
}

/// A child run.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildWorkflowConfig {
    /// A workflow name (NAME.yaml beside this file, then in --workflows) or a path.
    pub name: String,
    /// The child's inputs; values are templates.
    pub inputs: Option<BTreeMap<String, serde_json::Value>>,
}

/// An approval.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// The question the approver answers (a template).
    pub prompt: String,
    /// Login names of who may answer; anyone when absent.
    pub approvers: Option<Vec<String>>,
    /// How long to wait, counted from the first time the step started, across resumes (default 1h).
    pub timeout: Option<Duration>,
    /// What a timeout means (default reject).
    pub on_timeout: Option<OnTimeout>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Reject,
    Approve,
}

/// An escalation bundle. Every value may be a template.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleConfig {
    /// The one-line description of the incident.
    pub title: Text,
    /// The incident's slug in the bundle's name (lowercase letters, digits, `-`); by default made from the title.
    pub name: Option<Text>,
    /// The issue summary.
    pub summary: Option<BundleSummary>,
    /// Label → value, in order: SUMMARY.md's environment table.
    pub facts: Option<BTreeMap<String, Text>>,
    /// What was checked and is fine.
    pub healthy: Option<Texts>,
    /// Remediations tried; their outcome comes from the log.
    pub remediations: Option<Vec<BundleRemediation>>,
    /// The question for support.
    pub question: Option<Text>,
    /// Which run to report on: `self` (default) or `parent` (the run that started this one, with all its children).
    pub run: Option<Text>,
    /// Name under `diagnostics/` → a step's captured output or a file.
    pub files: Option<BTreeMap<String, BundleFile>>,
    /// Steps (`STEP` or `WORKFLOW.STEP`) whose artifacts are packet captures to include.
    pub captures_from: Option<Texts>,
    /// Paths of packet captures to include.
    pub captures: Option<Texts>,
    /// Extra redaction patterns: a regular expression, or `{ kind, pattern }`.
    pub redact: Option<Redactions>,
    /// The cap on the bundle's files, like 20MiB.
    pub max_bytes: Option<Text>,
    /// Where to write the bundle (default STORE/bundles).
    pub out: Option<Text>,
    /// Email the bundle: true, or the options.
    pub email: Option<BundleEmail>,
    /// A support ticket with `az support in-subscription tickets create`.
    pub ticket: Option<BundleTicket>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleSummary {
    pub symptom: Option<Text>,
    pub impact: Option<Text>,
    /// Since when (shown in UTC when it is an RFC 3339 time).
    pub since: Option<Text>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRemediation {
    /// `STEP` or `WORKFLOW.STEP`, found in the reported run or any child run.
    pub step: Text,
    pub name: Option<Text>,
    pub changed: Option<Text>,
    pub rolled_back: Option<Text>,
}

/// A step's captured output (`step`, `stream`) or a file (`path`).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    /// `STEP` or `WORKFLOW.STEP`: the step's last attempt.
    pub step: Option<Text>,
    /// Which captured stream (default stdout).
    pub stream: Option<Text>,
    /// A file on the operator's machine.
    pub path: Option<Text>,
}

/// One pattern or a list.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Redactions {
    One(Redaction),
    Many(Vec<Redaction>),
}

/// A regular expression, or `{ kind, pattern }`.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Redaction {
    Regex(String),
    Named(NamedRedaction),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedRedaction {
    /// What `[REDACTED:kind]` says.
    pub kind: Option<Text>,
    pub pattern: String,
}

/// `true`, `false`, or the options.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum BundleEmail {
    Enabled(Flag),
    Options(BundleEmailOptions),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleEmailOptions {
    /// Tries before giving up, 1 to 20 (default 3).
    pub attempts: Option<Count>,
    /// The wait after the first failed try; it doubles after each (default 2s).
    pub delay: Option<Duration>,
    /// The largest archive to attach, like 10MiB; a larger one is only named.
    pub max_attachment: Option<Text>,
    pub subject: Option<Text>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleTicket {
    /// Create the ticket (default false).
    pub create: Option<Flag>,
    /// Say what would be created without creating it (default true).
    pub dry_run: Option<Flag>,
    pub name: Option<Text>,
    pub title: Option<Text>,
    /// minimal, moderate, critical or highestcriticalimpact.
    pub severity: Option<Text>,
    /// The full id, as `az support services problem-classifications list` prints it.
    pub problem_classification: Option<Text>,
    pub technical_resource: Option<Text>,
    pub start_time: Option<Text>,
    pub diagnostic_consent: Option<Flag>,
    pub require_24x7: Option<Flag>,
    pub contact: Option<BundleContact>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleContact {
    pub first_name: Option<Text>,
    pub last_name: Option<Text>,
    /// email or phone.
    pub method: Option<Text>,
    pub email: Option<Text>,
    pub additional_emails: Option<Texts>,
    pub phone: Option<Text>,
    pub timezone: Option<Text>,
    /// ISO 3166-1 alpha-3 (USA, DEU).
    pub country: Option<Text>,
    pub language: Option<Text>,
}

/// Matches a value that holds a template.
const TEMPLATE_PATTERN: &str = r"\{\{|\{%";

/// A scalar written as text: a string, or a number or boolean taken as written.
pub struct Text;

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// Text or a list of texts.
pub struct Texts;

impl JsonSchema for Texts {
    fn schema_name() -> Cow<'static, str> {
        "Texts".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
            ]
        })
    }
}

/// `250ms`, `30s`, `5m`, `1h`, `1d` or sums like `1h30m`; or a template.
pub struct Duration;

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number and a unit: 250ms, 30s, 5m, 1h, 1d, or sums like 1h30m; or a template",
            "type": "string",
            "pattern": format!(r"^\s*([0-9]+(ms|s|m|h|d))+\s*$|{TEMPLATE_PATTERN}"),
            "examples": ["250ms", "30s", "5m", "1h30m"]
        })
    }
}

/// A step id.
pub struct StepName;

impl JsonSchema for StepName {
    fn schema_name() -> Cow<'static, str> {
        "StepId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A step id: lowercase letters, digits and `_`, not starting with a digit",
            "type": "string",
            "pattern": "^[a-z_][a-z0-9_]*$"
        })
    }
}

/// An environment variable name.
pub struct EnvName;

impl JsonSchema for EnvName {
    fn schema_name() -> Cow<'static, str> {
        "EnvName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An environment variable name: letters, digits and `_`, not starting with a digit",
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
        })
    }
}

/// `true` or `false`, also as text, or a template.
pub struct Flag;

impl JsonSchema for Flag {
    fn schema_name() -> Cow<'static, str> {
        "Flag".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "boolean" },
                { "type": "string", "pattern": format!(r"^\s*(true|false)\s*$|{TEMPLATE_PATTERN}") }
            ]
        })
    }
}

/// An HTTP method in any case, or a template.
pub struct Method;

impl JsonSchema for Method {
    fn schema_name() -> Cow<'static, str> {
        "HttpMethod".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let any_case = |word: &str| -> String {
            word.chars().map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())).collect()
        };
        let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let alternatives: Vec<String> = methods.iter().map(|m| any_case(m)).collect();
        json_schema!({
            "type": "string",
            "pattern": format!(r"^\s*({})\s*$|{TEMPLATE_PATTERN}", alternatives.join("|")),
            "examples": methods
        })
    }
}

/// An HTTP status (100 to 599) or a class (`2xx`), or a template.
pub struct Status;

impl JsonSchema for Status {
    fn schema_name() -> Cow<'static, str> {
        "HttpStatus".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": format!(r"^\s*([1-5][0-9][0-9]|[1-5][xX][xX])\s*$|{TEMPLATE_PATTERN}") }
            ]
        })
    }
}

/// A TCP port, 1 to 65535, or a template.
pub struct Port;

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "pattern": format!(r"^\s*[0-9]+\s*$|{TEMPLATE_PATTERN}") }
            ]
        })
    }
}

/// A whole number, or a template.
pub struct Count;

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": format!(r"^\s*[0-9]+\s*$|{TEMPLATE_PATTERN}") }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_closes_every_mapping() {
        let schema: serde_json::Value = serde_json::from_str(&workflow_schema_json()).expect("JSON");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["definitions"]["StepFile"]["additionalProperties"], false);
        let one_of = schema["definitions"]["StepFile"]["oneOf"].as_array().expect("oneOf");
        assert_eq!(one_of.len(), KINDS.len());
    }
}
