//! The `bundle` kind's configuration: read from its JSON form, the same way at
//! load time (values written literally; templates are judged once rendered)
//! and at execution (everything rendered).

use runbook_engine::diag::did_you_mean;
use runbook_engine::duration::parse_duration;
use runbook_engine::ids::StepId;
use std::time::Duration;

/// The default cap on the files of a bundle (SUMMARY.md and manifest.json not counted).
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;
/// The default cap on the archive attached to the email.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
/// Tries to send an email before giving up, the first included.
pub const DEFAULT_EMAIL_ATTEMPTS: u32 = 3;
/// The wait after the first failed try; it doubles after each.
pub const DEFAULT_EMAIL_DELAY: Duration = Duration::from_secs(2);

pub(crate) const KEYS: &[&str] = &[
    "title",
    "name",
    "summary",
    "facts",
    "healthy",
    "remediations",
    "question",
    "run",
    "files",
    "captures_from",
    "captures",
    "redact",
    "max_bytes",
    "out",
    "email",
    "ticket",
];
const SUMMARY_KEYS: &[&str] = &["symptom", "impact", "since"];
const REMEDIATION_KEYS: &[&str] = &["step", "name", "changed", "rolled_back"];
const FILE_KEYS: &[&str] = &["step", "stream", "path"];
const EMAIL_KEYS: &[&str] = &["attempts", "delay", "max_attachment", "subject"];
const TICKET_KEYS: &[&str] = &[
    "create",
    "dry_run",
    "name",
    "title",
    "severity",
    "problem_classification",
    "technical_resource",
    "start_time",
    "diagnostic_consent",
    "require_24x7",
    "contact",
];
const CONTACT_KEYS: &[&str] =
    &["first_name", "last_name", "method", "email", "additional_emails", "phone", "timezone", "country", "language"];
/// Severities `az support ... tickets create --severity` takes.
pub const SEVERITIES: &[&str] = &["minimal", "moderate", "critical", "highestcriticalimpact"];

/// Which run a bundle reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The run the step belongs to, with its child runs.
    This,
    /// The run that started this one (an `escalate` child reporting on the umbrella run), with all its children.
    Parent,
}

/// The issue summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub symptom: Option<String>,
    pub impact: Option<String>,
    /// Since when, as written (shown in UTC when it is an RFC 3339 time).
    pub since: Option<String>,
}

/// A remediation the summary reports on: its outcome comes from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Remediation {
    /// `STEP` or `WORKFLOW.STEP`, found in the reported run or any child run.
    pub step: StepRef,
    pub name: Option<String>,
    pub changed: Option<String>,
    pub rolled_back: Option<String>,
}

/// A step named in the configuration: `STEP`, or `WORKFLOW.STEP` to pick the run of one workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    pub workflow: Option<String>,
    pub step: StepId,
}

impl StepRef {
    pub fn parse(text: &str) -> Result<StepRef, String> {
        let (workflow, step) = match text.rsplit_once('.') {
            Some((workflow, step)) => (Some(workflow.to_owned()), step),
            None => (None, text),
        };
        if let Some(workflow) = &workflow {
            runbook_engine::ids::check_workflow_name(workflow)?;
        }
        Ok(StepRef { workflow, step: StepId::new(step)? })
    }
}

impl std::fmt::Display for StepRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.workflow {
            Some(workflow) => write!(f, "{workflow}.{}", self.step),
            None => write!(f, "{}", self.step),
        }
    }
}

/// Where a named diagnostics file comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSource {
    /// A captured stream (`stdout`, `stderr`, or another artifact name) of a step's last attempt.
    Step { step: StepRef, stream: String },
    /// A file on the operator's machine.
    Path(String),
}

/// An extra redaction pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// What `[REDACTED:kind]` says.
    pub kind: String,
    pub regex: String,
}

/// How the bundle is emailed.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailOptions {
    pub attempts: u32,
    pub delay: Duration,
    pub max_attachment_bytes: u64,
    pub subject: Option<String>,
}

impl Default for EmailOptions {
    fn default() -> EmailOptions {
        EmailOptions {
            attempts: DEFAULT_EMAIL_ATTEMPTS,
            delay: DEFAULT_EMAIL_DELAY,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            subject: None,
        }
    }
}

/// `az support in-subscription tickets create` parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketOptions {
    pub create: bool,
    pub dry_run: bool,
    pub name: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub problem_classification: Option<String>,
    pub technical_resource: Option<String>,
    pub start_time: Option<String>,
    pub diagnostic_consent: Option<bool>,
    pub require_24x7: Option<bool>,
    pub contact: Contact,
}

/// The contact details of a ticket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub method: Option<String>,
    pub email: Option<String>,
    pub additional_emails: Vec<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
}

/// A `bundle` step's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleConfig {
    pub title: String,
    /// The incident's slug in the bundle's name; by default made from the title.
    pub name: Option<String>,
    pub summary: Summary,
    /// Label → value, in order: SUMMARY.md's environment table.
    pub facts: Vec<(String, String)>,
    pub healthy: Vec<String>,
    pub remediations: Vec<Remediation>,
    pub question: Option<String>,
    pub scope: Scope,
    /// Name under `diagnostics/` → source, in order.
    pub files: Vec<(String, FileSource)>,
    pub captures_from: Vec<StepRef>,
    pub captures: Vec<String>,
    pub redact: Vec<Pattern>,
    pub max_bytes: u64,
    pub out: Option<String>,
    pub email: Option<EmailOptions>,
    pub ticket: Option<TicketOptions>,
}

impl BundleConfig {
    /// The configuration `runbook bundle` uses for a run without a `bundle` step.
    pub fn generic(title: String) -> BundleConfig {
        BundleConfig {
            title,
            name: None,
            summary: Summary::default(),
            facts: Vec::new(),
            healthy: Vec::new(),
            remediations: Vec::new(),
            question: None,
            scope: Scope::This,
            files: Vec::new(),
            captures_from: Vec::new(),
            captures: Vec::new(),
            redact: Vec::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            out: None,
            email: None,
            ticket: None,
        }
    }
}

/// A problem with the configuration: where (`files.svc.step`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Vec<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join("."), self.message)
        }
    }
}

/// Whether a value holds a template anywhere.
pub(crate) fn has_template(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains("{{") || s.contains("{%"),
        serde_json::Value::Array(items) => items.iter().any(has_template),
        serde_json::Value::Object(map) => map.values().any(has_template),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => false,
    }
}

/// Reads a configuration, collecting every problem. With `lenient` (load
/// time), values that are templates are accepted as they are and judged
/// after rendering.
pub fn parse(value: &serde_json::Value, lenient: bool) -> Result<BundleConfig, Vec<Problem>> {
    let mut reader = Reader { lenient, problems: Vec::new(), path: Vec::new() };
    let config = reader.config(value);
    match config {
        Some(config) if reader.problems.is_empty() => Ok(config),
        _ => Err(reader.problems),
    }
}

struct Reader {
    lenient: bool,
    problems: Vec<Problem>,
    path: Vec<String>,
}

type Map = serde_json::Map<String, serde_json::Value>;

impl Reader {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        let mut path = self.path.clone();
        if !key.is_empty() {
            path.push(key.to_owned());
        }
        self.problems.push(Problem { path, message: message.into() });
    }

    fn deferred(&self, value: &serde_json::Value) -> bool {
        self.lenient && has_template(value)
    }

    fn unknown_keys(&mut self, map: &Map, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = match did_you_mean(key, known.iter().copied()) {
                    Some(suggestion) => format!(" (did you mean `{suggestion}`?)"),
                    None => format!("; expected one of {}", known.join(", ")),
                };
                self.problem(key, format!("unknown key `{key}`{hint}"));
            }
        }
    }

    /// A scalar as text; `None` when absent, null, deferred or wrong (reported).
    fn text(&mut self, map: &Map, key: &str) -> Option<String> {
        let value = map.get(key)?;
        if self.deferred(value) {
            return Some(String::new());
        }
        match value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            serde_json::Value::Null => None,
            other => {
                self.problem(key, format!("expected text, found {}", kind_name(other)));
                None
            }
        }
    }

    fn boolean(&mut self, map: &Map, key: &str) -> Option<bool> {
        let value = map.get(key)?;
        if self.deferred(value) {
            return None;
        }
        match value {
            serde_json::Value::Bool(b) => Some(*b),
            serde_json::Value::String(s) if s.trim() == "true" => Some(true),
            serde_json::Value::String(s) if s.trim() == "false" => Some(false),
            other => {
                self.problem(key, format!("expected true or false, found {}", describe(other)));
                None
            }
        }
    }

    fn texts(&mut self, map: &Map, key: &str) -> Vec<String> {
        let Some(value) = map.get(key) else { return Vec::new() };
        if self.deferred(value) {
            return Vec::new();
        }
        match value {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        serde_json::Value::String(s) => out.push(s.clone()),
                        serde_json::Value::Number(n) => out.push(n.to_string()),
                        serde_json::Value::Bool(b) => out.push(b.to_string()),
                        other => {
                            self.problem(&format!("{key}[{i}]"), format!("expected text, found {}", kind_name(other)))
                        }
                    }
                }
                out
            }
            serde_json::Value::Null => Vec::new(),
            other => {
                self.problem(key, format!("expected a list of texts, found {}", kind_name(other)));
                Vec::new()
            }
        }
    }

    fn step_refs(&mut self, map: &Map, key: &str) -> Vec<StepRef> {
        let mut out = Vec::new();
        for (i, text) in self.texts(map, key).into_iter().enumerate() {
            if text.is_empty() && self.lenient {
                continue;
            }
            match StepRef::parse(text.trim()) {
                Ok(step) => out.push(step),
                Err(message) => self.problem(&format!("{key}[{i}]"), message),
            }
        }
        out
    }

    fn object<'v>(&mut self, map: &'v Map, key: &str) -> Option<&'v Map> {
        let value = map.get(key)?;
        match value {
            serde_json::Value::Object(inner) => Some(inner),
            serde_json::Value::Null => None,
            other => {
                if !self.deferred(other) {
                    self.problem(key, format!("expected a mapping, found {}", kind_name(other)));
                }
                None
            }
        }
    }

    fn nested<T>(&mut self, key: &str, f: impl FnOnce(&mut Reader) -> T) -> T {
        self.path.push(key.to_owned());
        let out = f(self);
        self.path.pop();
        out
    }

    fn config(&mut self, value: &serde_json::Value) -> Option<BundleConfig> {
        let serde_json::Value::Object(map) = value else {
            self.problem("", format!("expected a mapping with at least `title`, found {}", kind_name(value)));
            return None;
        };
        self.unknown_keys(map, KEYS);
        let title = self.text(map, "title");
        if title.as_deref().is_none_or(|t| t.trim().is_empty() && !self.lenient) {
            self.problem("", "missing key `title`: the one-line description of the incident");
        }
        let name = self.text(map, "name");
        if let Some(name) = &name
            && !name.is_empty()
            && slug(name) != *name
        {
            self.problem("name", format!("`{name}` is not a slug: use lowercase letters, digits and `-`"));
        }
        let summary = match self.object(map, "summary") {
            Some(inner) => self.nested("summary", |r| {
                r.unknown_keys(inner, SUMMARY_KEYS);
                Summary {
                    symptom: r.text(inner, "symptom"),
                    impact: r.text(inner, "impact"),
                    since: r.text(inner, "since"),
                }
            }),
            None => Summary::default(),
        };
        let mut facts = Vec::new();
        if let Some(inner) = self.object(map, "facts") {
            self.nested("facts", |r| {
                for key in inner.keys() {
                    if let Some(text) = r.text(inner, key) {
                        facts.push((key.clone(), text));
                    }
                }
            });
        }
        let healthy = self.texts(map, "healthy");
        let remediations = self.remediations(map);
        let question = self.text(map, "question");
        let scope = match self.text(map, "run").as_deref().map(str::trim) {
            None | Some("self" | "this") => Scope::This,
            Some("parent") => Scope::Parent,
            Some("") if self.lenient => Scope::This,
            Some(other) => {
                self.problem(
                    "run",
                    format!("`{other}` is not a run to report on: use `self` (the default) or `parent`"),
                );
                Scope::This
            }
        };
        let files = self.files(map);
        let captures_from = self.step_refs(map, "captures_from");
        let captures = self.texts(map, "captures");
        let redact = self.patterns(map);
        let max_bytes = match map.get("max_bytes") {
            Some(value) if !self.deferred(value) => match size(value) {
                Ok(0) => {
                    self.problem("max_bytes", "the cap is zero: nothing would fit");
                    DEFAULT_MAX_BYTES
                }
                Ok(n) => n,
                Err(message) => {
                    self.problem("max_bytes", message);
                    DEFAULT_MAX_BYTES
                }
            },
            _ => DEFAULT_MAX_BYTES,
        };
        let out = self.text(map, "out").filter(|o| !o.trim().is_empty());
        let email = self.email(map);
        let ticket = self.ticket(map);
        Some(BundleConfig {
            title: title.unwrap_or_default(),
            name: name.filter(|n| !n.is_empty()),
            summary,
            facts,
            healthy,
            remediations,
            question,
            scope,
            files,
            captures_from,
            captures,
            redact,
            max_bytes,
            out,
            email,
            ticket,
        })
    }

    fn remediations(&mut self, map: &Map) -> Vec<Remediation> {
        let Some(value) = map.get("remediations") else { return Vec::new() };
        let serde_json::Value::Array(items) = value else {
            if !self.deferred(value) {
                self.problem(
                    "remediations",
                    format!("expected a list of mappings with `step`, found {}", kind_name(value)),
                );
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("remediations[{i}]");
            let serde_json::Value::Object(inner) = item else {
                self.problem(&key, format!("expected a mapping with `step`, found {}", kind_name(item)));
                continue;
            };
            let remediation = self.nested(&key, |r| {
                r.unknown_keys(inner, REMEDIATION_KEYS);
                let step = match r.text(inner, "step") {
                    Some(text) if text.is_empty() && r.lenient => None,
                    Some(text) => match StepRef::parse(text.trim()) {
                        Ok(step) => Some(step),
                        Err(message) => {
                            r.problem("step", message);
                            None
                        }
                    },
                    None => {
                        r.problem("", "missing key `step`: the step whose outcome is reported");
                        None
                    }
                };
                step.map(|step| Remediation {
                    step,
                    name: r.text(inner, "name"),
                    changed: r.text(inner, "changed"),
                    rolled_back: r.text(inner, "rolled_back"),
                })
            });
            out.extend(remediation);
        }
        out
    }

    fn files(&mut self, map: &Map) -> Vec<(String, FileSource)> {
        let Some(inner) = self.object(map, "files") else { return Vec::new() };
        let mut out = Vec::new();
        for (name, value) in inner {
            if let Err(message) = check_file_name(name) {
                self.nested("files", |r| r.problem(name, message));
                continue;
            }
            let source = self.nested("files", |r| match value {
                serde_json::Value::Object(spec) => r.nested(name, |r| {
                    r.unknown_keys(spec, FILE_KEYS);
                    let step = r.text(spec, "step");
                    let path = r.text(spec, "path");
                    match (step, path) {
                        (Some(step), None) => {
                            let stream = r.text(spec, "stream").unwrap_or_else(|| "stdout".to_owned());
                            if step.is_empty() && r.lenient {
                                return None;
                            }
                            match StepRef::parse(step.trim()) {
                                Ok(step) => Some(FileSource::Step { step, stream }),
                                Err(message) => {
                                    r.problem("step", message);
                                    None
                                }
                            }
                        }
                        (None, Some(path)) => Some(FileSource::Path(path)),
                        (Some(_), Some(_)) => {
                            r.problem("", "give either `step` (a step's captured output) or `path` (a file), not both");
                            None
                        }
                        (None, None) => {
                            r.problem("", "missing key `step` (a step's captured output) or `path` (a file)");
                            None
                        }
                    }
                }),
                other if r.deferred(other) => None,
                other => {
                    r.problem(name, format!("expected a mapping with `step` or `path`, found {}", kind_name(other)));
                    None
                }
            });
            if let Some(source) = source {
                out.push((name.clone(), source));
            }
        }
        out
    }

    fn patterns(&mut self, map: &Map) -> Vec<Pattern> {
        let Some(value) = map.get("redact") else { return Vec::new() };
        let items: Vec<serde_json::Value> = match value {
            serde_json::Value::Array(items) => items.clone(),
            serde_json::Value::Null => Vec::new(),
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("redact[{i}]");
            if self.deferred(item) {
                continue;
            }
            let (kind, regex) = match item {
                serde_json::Value::String(regex) => ("custom".to_owned(), regex.clone()),
                serde_json::Value::Object(inner) => {
                    let pair = self.nested(&key, |r| {
                        r.unknown_keys(inner, &["kind", "pattern"]);
                        let kind = r.text(inner, "kind").unwrap_or_else(|| "custom".to_owned());
                        let pattern = r.text(inner, "pattern");
                        if pattern.is_none() {
                            r.problem("", "missing key `pattern`: the regular expression to redact");
                        }
                        if !kind.is_empty() && !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        {
                            r.problem("kind", format!("`{kind}` is not a kind name: use letters, digits, `_` and `-`"));
                        }
                        pattern.map(|p| (kind, p))
                    });
                    match pair {
                        Some(pair) => pair,
                        None => continue,
                    }
                }
                other => {
                    self.problem(&key, format!("expected a regular expression, found {}", kind_name(other)));
                    continue;
                }
            };
            match regex::bytes::Regex::new(&regex) {
                Ok(compiled) if compiled.is_match(b"") => {
                    self.problem(&key, format!("`{regex}` matches empty text, so it would redact everywhere"))
                }
                Ok(_) => out.push(Pattern { kind, regex }),
                Err(error) => self.problem(
                    &key,
                    format!("`{regex}` is not a regular expression: {}", first_line(&error.to_string())),
                ),
            }
        }
        out
    }

    fn email(&mut self, map: &Map) -> Option<EmailOptions> {
        let value = map.get("email")?;
        if self.deferred(value) {
            return None;
        }
        match value {
            serde_json::Value::Bool(false) | serde_json::Value::Null => None,
            serde_json::Value::Bool(true) => Some(EmailOptions::default()),
            serde_json::Value::String(s) if s.trim() == "true" => Some(EmailOptions::default()),
            serde_json::Value::String(s) if s.trim() == "false" => None,
            serde_json::Value::Object(inner) => Some(self.nested("email", |r| {
                r.unknown_keys(inner, EMAIL_KEYS);
                let mut options = EmailOptions::default();
                if let Some(value) = inner.get("attempts").filter(|v| !r.deferred(v)) {
                    match value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok())) {
                        Some(n @ 1..=20) => options.attempts = n as u32,
                        _ => r.problem(
                            "attempts",
                            format!("expected a number of tries from 1 to 20, found {}", describe(value)),
                        ),
                    }
                }
                if let Some(value) = inner.get("delay").filter(|v| !r.deferred(v)) {
                    match value.as_str().map(parse_duration) {
                        Some(Ok(delay)) => options.delay = delay,
                        Some(Err(message)) => r.problem("delay", message),
                        None => r.problem("delay", format!("expected a duration like 2s, found {}", describe(value))),
                    }
                }
                if let Some(value) = inner.get("max_attachment").filter(|v| !r.deferred(v)) {
                    match size(value) {
                        Ok(n) => options.max_attachment_bytes = n,
                        Err(message) => r.problem("max_attachment", message),
                    }
                }
                options.subject = r.text(inner, "subject");
                options
            })),
            other => {
                self.problem("email", format!("expected true, false or a mapping, found {}", describe(other)));
                None
            }
        }
    }

    fn ticket(&mut self, map: &Map) -> Option<TicketOptions> {
        let inner = self.object(map, "ticket")?;
        Some(self.nested("ticket", |r| {
            r.unknown_keys(inner, TICKET_KEYS);
            let mut ticket = TicketOptions {
                create: r.boolean(inner, "create").unwrap_or(false),
                dry_run: r.boolean(inner, "dry_run").unwrap_or(true),
                name: r.text(inner, "name"),
                title: r.text(inner, "title"),
                severity: r.text(inner, "severity"),
                problem_classification: r.text(inner, "problem_classification"),
                technical_resource: r.text(inner, "technical_resource"),
                start_time: r.text(inner, "start_time"),
                diagnostic_consent: r.boolean(inner, "diagnostic_consent"),
                require_24x7: r.boolean(inner, "require_24x7"),
                contact: Contact::default(),
            };
            if let Some(contact) = r.object(inner, "contact") {
                ticket.contact = r.nested("contact", |r| {
                    r.unknown_keys(contact, CONTACT_KEYS);
                    Contact {
                        first_name: r.text(contact, "first_name"),
                        last_name: r.text(contact, "last_name"),
                        method: r.text(contact, "method"),
                        email: r.text(contact, "email"),
                        additional_emails: r.texts(contact, "additional_emails"),
                        phone: r.text(contact, "phone"),
                        timezone: r.text(contact, "timezone"),
                        country: r.text(contact, "country"),
                        language: r.text(contact, "language"),
                    }
                });
            }
            r.check_ticket(&ticket, inner.get("create").is_some_and(|v| r.deferred(v)));
            ticket
        }))
    }

    /// What `az` would refuse, said before anything runs. Required fields are
    /// only required when the ticket may be created.
    fn check_ticket(&mut self, ticket: &TicketOptions, create_deferred: bool) {
        fn literal(value: &Option<String>) -> Option<&str> {
            value.as_deref().filter(|v| !v.is_empty())
        }
        if let Some(severity) = literal(&ticket.severity)
            && !SEVERITIES.contains(&severity.trim())
        {
            self.problem("severity", format!("`{severity}` is not a severity: one of {}", SEVERITIES.join(", ")));
        }
        if let Some(method) = literal(&ticket.contact.method)
            && !matches!(method.trim(), "email" | "phone")
        {
            self.nested("contact", |r| {
                r.problem("method", format!("`{method}` is not a contact method: email or phone"))
            });
        }
        if let Some(country) = literal(&ticket.contact.country)
            && !(country.len() == 3 && country.chars().all(|c| c.is_ascii_alphabetic()))
        {
            self.nested("contact", |r| {
                r.problem("country", format!("`{country}` is not an ISO 3166-1 alpha-3 country code (like USA, DEU)"))
            });
        }
        if let Some(classification) = literal(&ticket.problem_classification)
            && !classification.starts_with("/providers/Microsoft.Support/services/")
        {
            self.problem(
                "problem_classification",
                format!(
                    "`{classification}` is not a problem classification id: give the full id, /providers/Microsoft.Support/services/SERVICE/problemClassifications/ID, as `az support services problem-classifications list` prints it"
                ),
            );
        }
        if !ticket.create && !create_deferred {
            return;
        }
        let mut missing = Vec::new();
        for (key, value) in [("severity", &ticket.severity), ("problem_classification", &ticket.problem_classification)]
        {
            if value.is_none() {
                missing.push(key.to_owned());
            }
        }
        let contact = &ticket.contact;
        for (key, value) in [
            ("first_name", &contact.first_name),
            ("last_name", &contact.last_name),
            ("timezone", &contact.timezone),
            ("country", &contact.country),
            ("language", &contact.language),
        ] {
            if value.is_none() {
                missing.push(format!("contact.{key}"));
            }
        }
        let method = contact.method.as_deref().unwrap_or("email");
        if method == "phone" && contact.phone.is_none() {
            missing.push("contact.phone".to_owned());
        }
        if method == "email" && contact.email.is_none() {
            missing.push("contact.email".to_owned());
        }
        if !missing.is_empty() {
            self.problem(
                "",
                format!(
                    "creating a support ticket needs {}",
                    missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}

/// A name under `diagnostics/`: one relative path without `..`.
fn check_file_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        || name.chars().any(|c| c.is_control() || c == '\\');
    if bad {
        Err(format!("`{name}` is not a file name inside the bundle: use a relative name like kubectl-get-svc.yaml"))
    } else {
        Ok(())
    }
}

/// Lowercase letters, digits and single `-`, at most 48 characters.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    if out.len() > 48 {
        // Cut at a word boundary, so that no word is left half.
        out.truncate(48);
        match out.rfind('-') {
            Some(i) if i > 0 => out.truncate(i),
            _ => {}
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A size: a number of bytes, or a number with `B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`.
pub fn size(value: &serde_json::Value) -> Result<u64, String> {
    let text = match value {
        serde_json::Value::Number(n) => return n.as_u64().ok_or_else(|| format!("`{n}` is not a number of bytes")),
        serde_json::Value::String(s) => s.trim().to_owned(),
        other => return Err(format!("expected a size like 20MiB, found {}", describe(other))),
    };
    let bad = || format!("`{text}` is not a size: write bytes or a number with KiB, MiB or GiB, like 20MiB");
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let number: f64 = text[..digits].parse().map_err(|_| bad())?;
    let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = number * unit as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

fn kind_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

fn describe(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("`{s}`"),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) | serde_json::Value::Null => {
            kind_name(value).to_owned()
        }
        other => format!("`{other}`"),
    }
}

fn first_line(text: &str) -> String {
    text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(text).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn problems(value: serde_json::Value) -> Vec<String> {
        match parse(&value, true) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn reads_a_full_configuration() {
        let config = parse(
            &json!({
                "title": "LB answers ping, TCP times out",
                "facts": {"Public IP": "4.156.121.111", "Port": 80},
                "healthy": ["pods running"],
                "remediations": [{"step": "ingress", "changed": "installed ingress-nginx", "rolled_back": "no"}],
                "run": "parent",
                "files": {"kubectl-get-svc-all.yaml": {"step": "diagnose.svc_yaml"}, "notes.txt": {"path": "/tmp/x"}},
                "captures_from": "capture_download",
                "redact": ["(?i)password=\\S+", {"kind": "token", "pattern": "tok-[0-9]+"}],
                "max_bytes": "5MiB",
                "email": {"attempts": 2, "delay": "100ms"},
                "ticket": {"create": false},
            }),
            false,
        )
        .expect("valid");
        assert_eq!(
            config.facts,
            [("Public IP".to_owned(), "4.156.121.111".to_owned()), ("Port".to_owned(), "80".to_owned())]
        );
        assert_eq!(config.scope, Scope::Parent);
        assert_eq!(config.max_bytes, 5 * 1024 * 1024);
        assert_eq!(config.captures_from[0].step.as_str(), "capture_download");
        assert_eq!(config.files[0].0, "kubectl-get-svc-all.yaml");
        assert!(
            matches!(&config.files[0].1, FileSource::Step { step, stream } if step.workflow.as_deref() == Some("diagnose") && stream == "stdout")
        );
        assert_eq!(config.redact[1].kind, "token");
        let email = config.email.expect("email");
        assert_eq!((email.attempts, email.delay), (2, Duration::from_millis(100)));
        assert!(config.ticket.is_some_and(|t| !t.create && t.dry_run));
    }

    #[test]
    fn reports_every_problem() {
        assert_eq!(problems(json!({"title": "t"})), Vec::<String>::new());
        assert_eq!(problems(json!({})), ["missing key `title`: the one-line description of the incident"]);
        assert_eq!(problems(json!({"title": "t", "tilte": 1})), ["tilte: unknown key `tilte` (did you mean `title`?)"]);
        assert_eq!(problems(json!({"title": "t", "run": "grandparent"})).len(), 1);
        assert_eq!(problems(json!({"title": "t", "redact": ["("]})).len(), 1);
        assert_eq!(
            problems(json!({"title": "t", "redact": ["x*"]})),
            ["redact[0]: `x*` matches empty text, so it would redact everywhere"]
        );
        assert_eq!(problems(json!({"title": "t", "files": {"../etc": {"step": "a"}}})).len(), 1);
        assert_eq!(problems(json!({"title": "t", "files": {"a": {"step": "A"}}})).len(), 1);
        assert_eq!(problems(json!({"title": "t", "max_bytes": "lots"})).len(), 1);
        assert_eq!(problems(json!({"title": "t", "email": "yes"})).len(), 1);
        assert_eq!(problems(json!({"title": "t", "ticket": {"create": true}})).len(), 1);
        assert_eq!(problems(json!({"title": "t", "ticket": {"severity": "urgent"}})).len(), 1);
    }

    #[test]
    fn templates_are_judged_after_rendering() {
        assert_eq!(
            problems(json!({"title": "{{ inputs.t }}", "max_bytes": "{{ inputs.cap }}", "email": "{{ inputs.mail }}"})),
            Vec::<String>::new()
        );
        assert!(parse(&json!({"title": "t", "max_bytes": "lots"}), false).is_err());
    }

    #[test]
    fn sizes_and_slugs() {
        assert_eq!(size(&json!("20MiB")), Ok(20 * 1024 * 1024));
        assert_eq!(size(&json!("1.5 KiB")), Ok(1536));
        assert_eq!(size(&json!(100)), Ok(100));
        assert!(size(&json!("20 parsecs")).is_err());
        assert_eq!(
            slug("AKS LoadBalancer 4.156.121.111 answers ping, TCP 80/443 time out"),
            "aks-loadbalancer-4-156-121-111-answers-ping-tcp"
        );
        assert_eq!(slug("--Hello  World--"), "hello-world");
    }
}
