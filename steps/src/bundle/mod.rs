//! The `bundle` kind and `runbook bundle`: an escalation bundle for the
//! cloud vendor's support, written when every remediation has failed, and
//! emailed.
//!
//! ```yaml
//! - id: bundle
//!   needs: [capture]
//!   bundle:
//!     title: "AKS LoadBalancer {{ inputs.public_ip }} answers ping, TCP 80/443 time out"
//!     summary: { symptom: "...", impact: "...", since: "{{ inputs.since }}" }
//!     facts:                     # SUMMARY.md's environment table, in this order
//!       Subscription: "{{ inputs.subscription }}"
//!       Public IP: "{{ inputs.public_ip }}"
//!     healthy: ["Pods running, endpoints populated"]
//!     remediations:
//!       - { step: ingress, changed: "installed ingress-nginx", rolled_back: "no" }
//!     question: "Why does the LB drop TCP while its probe is healthy?"
//!     run: parent                # report on the run that started this one, and all its children
//!     files:
//!       kubectl-get-svc-all.yaml: { step: svc_yaml }          # stdout of a step's last attempt
//!       az-network-lb-show.json: { step: diagnose.lb_show }   # WORKFLOW.STEP picks the run
//!     captures_from: [capture_download]
//!     redact: ["(?i)password=\\S+"]
//!     max_bytes: 20MiB
//!     email: true                # or { attempts: 3, delay: 2s, max_attachment: 10MiB, subject: ... }
//!     ticket: { create: false, dry_run: true, severity: moderate, ... }
//! ```
//!
//! The bundle is a directory and a `.zip` of it under `out` (default
//! `STORE/bundles/`), named `<incident>-run-<RUN>-<UTC time>`; see
//! [`archive`] for how it is written and docs/workflow-reference.md for
//! every key.
//!
//! At most one email per bundle: the step's name for its bundle comes from
//! when its first attempt started, which a retry or a resume keeps, so a
//! repeated attempt finds the bundle already on disk and the `email_sent`
//! note already in the log, and sends nothing. The one window left: a crash
//! after the SMTP server took the message and before `email_sent` is durable
//! sends the same message (same bundle, same Message-ID) once more on resume.

pub mod archive;
pub mod config;
pub mod email;
pub mod redact;
pub mod report;
pub mod ticket;

mod command;

pub use command::{CommandError, CommandOptions, CommandOutcome, run_command};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_engine::diag::Position;
use runbook_engine::event::{Event, EventKind};
use runbook_engine::ids::{RunId, StepId};
use runbook_engine::step::{ConfigCheck, RunHistory, StepKind, StepRequest, StepResult};
use runbook_engine::template::Templates;
use runbook_engine::yaml::{Node, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::archive::Written;
use self::config::{BundleConfig, EmailOptions, Scope};
use self::redact::Redactor;
use self::report::RunTree;

/// The version written into every manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const OUTPUTS: &[&str] = &[
    "directory",
    "archive",
    "sha256",
    "size",
    "redactions",
    "left_out",
    "email",
    "message_id",
    "ticket",
    "ticket_command",
];

/// The `bundle` step kind.
pub struct BundleKind;

#[async_trait]
impl StepKind for BundleKind {
    fn name(&self) -> &'static str {
        "bundle"
    }

    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        OUTPUTS.iter().map(|s| (*s).to_owned()).collect()
    }

    fn check_config(&self, node: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        let json = node.to_json();
        if let Err(problems) = config::parse(&json, true) {
            for problem in problems {
                let (position, sub) = locate(node, &problem.path);
                check.error(position, &sub, problem.message);
            }
        }
        json
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        execute(request).await
    }
}

/// Where a problem at `path` was written, and the field path to name.
fn locate(node: &Node, path: &[String]) -> (Position, String) {
    let mut current = node;
    let mut position = node.position;
    for segment in path {
        let (key, index) = split_index(segment);
        let next = match &current.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == *segment)
                .or_else(|| entries.iter().find(|(k, _)| k.name == key))
                .map(|(k, v)| {
                    position = k.position;
                    v
                }),
            _ => None,
        };
        let Some(mut next) = next else { break };
        if let (Some(i), Value::Seq(items)) = (index, &next.value)
            && let Some(item) = items.get(i)
        {
            next = item;
            position = item.position;
        }
        current = next;
    }
    (position, path.join("."))
}

fn split_index(segment: &str) -> (&str, Option<usize>) {
    match segment.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
        Some((key, index)) => (key, index.parse().ok()),
        None => (segment, None),
    }
}

/// Renders every template of the configuration; a single `{{ expression }}` keeps its type.
pub fn render(
    templates: &Templates,
    context: &serde_json::Value,
    value: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    Ok(match value {
        serde_json::Value::String(source) if source.contains("{{") || source.contains("{%") => templates
            .eval_value(source, context)
            .map_err(|problem| format!("cannot render `{source}`: {}", problem.message))?,
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items.iter().map(|item| render(templates, context, item)).collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render(templates, context, v)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Reads the rendered configuration.
pub fn read_config(rendered: &serde_json::Value) -> Result<BundleConfig, String> {
    config::parse(rendered, false).map_err(|problems| {
        format!("bundle: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    })
}

/// The values of every secret the runs of the tree declare, read from the environment.
pub fn secret_values(tree: &RunTree, var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    for (name, workflow) in tree.secret_names() {
        match var(&name) {
            Some(value) => values.push(value),
            None => {
                return Err(format!(
                    "secret `{name}` of workflow `{workflow}` is not set in this environment: the bundle masks its value, so set it as the run had it"
                ));
            }
        }
    }
    Ok(values)
}

/// `<incident>-run-<RUN>-<YYYYMMDDTHHMMSSZ>`.
pub fn bundle_name(config: &BundleConfig, run: RunId, at: DateTime<Utc>) -> String {
    let incident = config.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| config::slug(&config.title));
    let incident = if incident.is_empty() { "incident".to_owned() } else { incident };
    format!("{incident}-run-{run}-{}", at.format("%Y%m%dT%H%M%SZ"))
}

/// Where bundles go: `out` (relative to the working directory), else `STORE/bundles`.
pub fn out_dir(config: &BundleConfig, store_dir: &Path, working_dir: &Path) -> PathBuf {
    match &config.out {
        Some(out) if Path::new(out).is_absolute() => PathBuf::from(out),
        Some(out) => working_dir.join(out),
        None => store_dir.join("bundles"),
    }
}

/// What is needed to write a bundle, owned so that the work can move to a blocking thread.
pub struct Job {
    pub config: BundleConfig,
    pub tree: RunTree,
    pub store_dir: PathBuf,
    pub working_dir: PathBuf,
    pub redactor: Redactor,
    pub out_dir: PathBuf,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Writes the bundle, or takes the complete one of the same name already on disk.
pub fn write_or_reuse(job: &Job) -> Result<(Written, bool), String> {
    if let Some(written) = archive::existing(&job.out_dir, &job.name) {
        return Ok((written, true));
    }
    let contents = archive::assemble(&archive::Inputs {
        config: &job.config,
        tree: &job.tree,
        store_dir: &job.store_dir,
        working_dir: &job.working_dir,
        redactor: &job.redactor,
        name: &job.name,
        created_at: job.created_at,
        version: VERSION,
    });
    archive::write(&job.out_dir, &contents, job.created_at).map(|written| (written, false))
}

/// The email about a bundle: key facts as text and HTML, the archive attached unless over the cap.
pub fn compose(
    job: &Job,
    written: &Written,
    options: &EmailOptions,
    redactor: &Redactor,
) -> Result<email::Outgoing, String> {
    let config = &job.config;
    let tree = &job.tree;
    let root = tree.root_record();
    let archive_name =
        written.archive.file_name().map_or_else(|| "bundle.zip".to_owned(), |n| n.to_string_lossy().into_owned());
    let attach = written.size <= options.max_attachment_bytes;
    let host = runbook_engine::executor::host_name();
    let mut text = String::new();
    let mut html = String::from("<html><body style=\"font-family: sans-serif\">\n");
    let h = email::escape_html;
    text.push_str(&format!("{}\n\n", config.title.trim()));
    html.push_str(&format!("<h2>{}</h2>\n", h(config.title.trim())));
    if let Some(root) = root {
        let line =
            format!("Run {} (workflow {}): {}", root.run_id, root.state.workflow.name, root.state.status.as_str());
        text.push_str(&format!("{line}\n"));
        html.push_str(&format!("<p>{}</p>\n", h(&line)));
    }
    let summary = [
        ("Symptom", config.summary.symptom.clone()),
        ("Impact", config.summary.impact.clone()),
        ("Since (UTC)", config.summary.since.as_deref().map(report::since_text)),
    ];
    html.push_str("<ul>\n");
    for (label, value) in &summary {
        if let Some(value) = value {
            text.push_str(&format!("{label}: {}\n", value.trim()));
            html.push_str(&format!("<li><b>{label}:</b> {}</li>\n", h(value.trim())));
        }
    }
    html.push_str("</ul>\n");
    if !config.facts.is_empty() {
        text.push_str("\nEnvironment\n");
        html.push_str("<h3>Environment</h3>\n<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n");
        for (label, value) in &config.facts {
            text.push_str(&format!("  {label}: {value}\n"));
            html.push_str(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>\n", h(label), h(value)));
        }
        html.push_str("</table>\n");
    }
    let outcomes = report::remediation_outcomes(config, tree);
    if !outcomes.is_empty() {
        text.push_str("\nRemediations tried\n");
        html.push_str("<h3>Remediations tried</h3>\n<ul>\n");
        for o in &outcomes {
            let line = format!("{}: {} (changed: {}; rolled back: {})", o.name, o.outcome, o.changed, o.rolled_back);
            text.push_str(&format!("  - {line}\n"));
            html.push_str(&format!("<li>{}</li>\n", h(&line)));
        }
        html.push_str("</ul>\n");
    }
    if let Some(question) = &config.question {
        text.push_str(&format!("\nQuestion for support: {}\n", question.trim()));
        html.push_str(&format!("<h3>Question for support</h3>\n<p>{}</p>\n", h(question.trim())));
    }
    let where_it_is = if attach {
        format!("The bundle {archive_name} ({} bytes, sha256 {}) is attached.", written.size, written.sha256)
    } else {
        format!(
            "The bundle is not attached: at {} bytes it is over the {}-byte attachment cap. It is on {host} at {} (sha256 {}).",
            written.size,
            options.max_attachment_bytes,
            written.archive.display(),
            written.sha256
        )
    };
    let kept = format!("Kept on {host} at {} and {}.", written.directory.display(), written.archive.display());
    text.push_str(&format!(
        "\n{where_it_is}\n{kept}\nSUMMARY.md in the bundle has the timeline of every step and attempt.\n"
    ));
    html.push_str(&format!(
        "<p>{}</p>\n<p>{}</p>\n<p>SUMMARY.md in the bundle has the timeline of every step and attempt.</p>\n",
        h(&where_it_is),
        h(&kept)
    ));
    html.push_str("</body></html>\n");
    let subject = match &options.subject {
        Some(subject) => subject.clone(),
        None => format!("[runbook] {} (run {})", config.title.trim(), tree.root),
    };
    let attachment = if attach {
        let bytes =
            std::fs::read(&written.archive).map_err(|e| format!("cannot read {}: {e}", written.archive.display()))?;
        Some((archive_name, bytes))
    } else {
        None
    };
    Ok(email::Outgoing {
        subject: redactor.redact_text(&subject),
        text: redactor.redact_text(&text),
        html: redactor.redact_text(&html),
        attachment,
        message_id: email::message_id(tree.root.get(), &written.sha256),
    })
}

/// The environment as the run sees it.
fn var_lookup(request: &StepRequest) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let vars = request.inherited_env.clone();
    move |name: &str| match &vars {
        Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        None => std::env::var(name).ok(),
    }
}

/// Events of a run, or none when they cannot be read (the caller reports the error elsewhere).
fn notes_of(history: &dyn RunHistory, run: RunId) -> Vec<Event> {
    history.events(run).map(|events| events.into_iter().map(|(_, e)| e).collect()).unwrap_or_default()
}

async fn execute(request: StepRequest) -> StepResult {
    let rendered = match render(&request.templates, &request.context, &request.config) {
        Ok(rendered) => rendered,
        Err(error) => return StepResult::failed(format!("bundle: {error}")),
    };
    let config = match read_config(&rendered) {
        Ok(config) => config,
        Err(error) => return StepResult::failed(error),
    };
    let var = var_lookup(&request);
    let working_dir =
        request.working_dir.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_else(|| PathBuf::from("."));
    let step = request.step.clone();
    let run_id = request.run_id;
    let history = Arc::clone(&request.history);

    // Email settings are read first so that a mistake there is known, but the bundle is written regardless.
    let settings = config.email.as_ref().map(|_| email::required_settings(&var));
    let smtp_password = settings.as_ref().and_then(|s| s.as_ref().ok()).and_then(|s| s.password().map(str::to_owned));

    let own_events = notes_of(history.as_ref(), run_id);
    let report_run = match config.scope {
        Scope::This => run_id,
        Scope::Parent => own_events
            .first()
            .and_then(|e| match &e.kind {
                EventKind::RunStarted(started) => started.parent.as_ref().map(|p| p.run_id),
                _ => None,
            })
            .unwrap_or(run_id),
    };
    let store_dir = history.store_dir();
    let name = bundle_name(&config, report_run, request.first_started_at);
    let out = out_dir(&config, &store_dir, &working_dir);
    // Reading the runs and writing the files is blocking work: off the async threads.
    let blocking = {
        let config = config.clone();
        let history = Arc::clone(&history);
        let (store_dir, working_dir, out, name) = (store_dir.clone(), working_dir.clone(), out.clone(), name.clone());
        move || -> Result<(Job, Written), String> {
            let tree = RunTree::load(history.as_ref(), report_run)?;
            let mut secrets = secret_values(&tree, &var)?;
            secrets.extend(smtp_password);
            let redactor = Redactor::new(&secrets, &config.redact)?;
            let job =
                Job { config, tree, store_dir, working_dir, redactor, out_dir: out, name, created_at: Utc::now() };
            let (written, _reused) = write_or_reuse(&job)?;
            Ok((job, written))
        }
    };
    let (job, written) = match tokio::task::spawn_blocking(blocking).await {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => return StepResult::failed(format!("bundle: {error}")),
        Err(error) => return StepResult::failed(format!("bundle: the writer stopped: {error}")),
    };

    let archive_text = written.archive.display().to_string();
    let mut notes = Vec::new();
    let recorded = own_events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::BundleCreated { archive, .. } if *archive == archive_text));
    if !recorded {
        notes.push(EventKind::BundleCreated {
            step: Some(step.clone()),
            directory: written.directory.display().to_string(),
            archive: archive_text.clone(),
            sha256: written.sha256.clone(),
            size: written.size,
        });
    }
    let mut values = serde_json::Map::new();
    values.insert("directory".to_owned(), written.directory.display().to_string().into());
    values.insert("archive".to_owned(), archive_text.clone().into());
    values.insert("sha256".to_owned(), written.sha256.clone().into());
    values.insert("size".to_owned(), written.size.into());
    values.insert("redactions".to_owned(), redactions_in(&written).into());
    values.insert("left_out".to_owned(), left_out_in(&written).into());
    let mut errors = Vec::new();

    match (&config.email, settings) {
        (None, _) | (_, None) => {
            values.insert("email".to_owned(), "off".into());
        }
        (Some(options), Some(settings)) => {
            let already = own_events.iter().find_map(|e| match &e.kind {
                EventKind::EmailSent { step: Some(s), archive, message_id, .. }
                    if *s == step && *archive == archive_text =>
                {
                    Some(message_id.clone())
                }
                _ => None,
            });
            if let Some(message_id) = already {
                values.insert("email".to_owned(), "already_sent".into());
                values.insert("message_id".to_owned(), message_id.into());
            } else {
                match settings {
                    Err(error) => {
                        notes.push(EventKind::EmailFailed { step: Some(step.clone()), error: error.clone() });
                        values.insert("email".to_owned(), "failed".into());
                        errors.push(format!("the email was not sent: {error}"));
                    }
                    Ok(settings) => {
                        let sent = send(&job, &written, options, &settings, &step, &request.cancel).await;
                        let (email_notes, outcome) = sent;
                        notes.extend(email_notes);
                        match outcome {
                            Ok(message_id) => {
                                values.insert("email".to_owned(), "sent".into());
                                values.insert("message_id".to_owned(), message_id.into());
                            }
                            Err(error) => {
                                values.insert("email".to_owned(), "failed".into());
                                errors.push(error);
                            }
                        }
                    }
                }
            }
        }
    }

    if let Some(ticket) = config.ticket.as_ref().filter(|t| t.create) {
        let description = job.redactor.redact_text(&ticket::description(&config, &name, &written.sha256));
        let args = ticket::arguments(&config, ticket, &name, &description);
        let line = job.redactor.redact_text(&ticket::command_line(&args));
        values.insert("ticket_command".to_owned(), line.into());
        let ticket_name = ticket.name.clone().unwrap_or_else(|| name.clone());
        let created = own_events.iter().find_map(|e| match &e.kind {
            EventKind::SupportTicketCreated { step: Some(s), ticket, dry_run: false } if *s == step => {
                Some(ticket.clone())
            }
            _ => None,
        });
        if ticket.dry_run {
            let prepared = own_events.iter().any(|e| {
                matches!(&e.kind, EventKind::SupportTicketCreated { step: Some(s), ticket, dry_run: true }
                    if *s == step && *ticket == ticket_name)
            });
            if !prepared {
                notes.push(EventKind::SupportTicketCreated {
                    step: Some(step.clone()),
                    ticket: ticket_name.clone(),
                    dry_run: true,
                });
            }
            values.insert("ticket".to_owned(), ticket_name.into());
        } else if let Some(id) = created {
            values.insert("ticket".to_owned(), id.into());
        } else {
            match ticket::create(&args, request.inherited_env.clone(), request.working_dir.clone(), &request.cancel)
                .await
            {
                Ok(id) => {
                    notes.push(EventKind::SupportTicketCreated {
                        step: Some(step.clone()),
                        ticket: id.clone(),
                        dry_run: false,
                    });
                    values.insert("ticket".to_owned(), id.into());
                }
                Err(error) => errors.push(format!("no support ticket: {}", job.redactor.redact_text(&error))),
            }
        }
    }

    let mut result = if errors.is_empty() {
        StepResult::succeeded(values)
    } else {
        StepResult::failed_with(
            format!(
                "the bundle is on disk at {archive_text}, but {}; send it later with `runbook bundle {} --email`",
                errors.join("; "),
                job.tree.root
            ),
            values,
        )
    };
    result.notes = notes;
    result
}

/// Sends the bundle's email with retries: the notes to record, and the Message-ID or the error.
async fn send(
    job: &Job,
    written: &Written,
    options: &EmailOptions,
    settings: &email::SmtpSettings,
    step: &StepId,
    cancel: &tokio_util::sync::CancellationToken,
) -> (Vec<EventKind>, Result<String, String>) {
    let mut notes = Vec::new();
    let outgoing = match compose(job, written, options, &job.redactor) {
        Ok(outgoing) => outgoing,
        Err(error) => {
            notes.push(EventKind::EmailFailed { step: Some(step.clone()), error: error.clone() });
            return (notes, Err(format!("the email was not sent: {error}")));
        }
    };
    let (failures, sent) = email::send_with_retries(settings, &outgoing, options.attempts, options.delay, cancel).await;
    let last = failures.last().cloned();
    for failure in failures {
        notes.push(EventKind::EmailFailed { step: Some(step.clone()), error: job.redactor.redact_text(&failure) });
    }
    if sent {
        notes.push(EventKind::EmailSent {
            step: Some(step.clone()),
            message_id: outgoing.message_id.clone(),
            to: settings.recipients(),
            archive: written.archive.display().to_string(),
            attached: outgoing.attachment.is_some(),
        });
        (notes, Ok(outgoing.message_id))
    } else {
        let error = last.unwrap_or_else(|| "no try was made".to_owned());
        (notes, Err(format!("the email could not be sent ({})", job.redactor.redact_text(&error))))
    }
}

/// The total redactions a written bundle's manifest counts.
fn redactions_in(written: &Written) -> u64 {
    manifest_of(written).and_then(|m| m["redactions"]["total"].as_u64()).unwrap_or(0)
}

fn left_out_in(written: &Written) -> u64 {
    manifest_of(written).and_then(|m| m["left_out"].as_array().map(|a| a.len() as u64)).unwrap_or(0)
}

fn manifest_of(written: &Written) -> Option<serde_json::Value> {
    let bytes = std::fs::read(written.directory.join("manifest.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_incident_the_run_and_the_time() {
        let config =
            config::parse(&serde_json::json!({"title": "LB 4.156.121.111: TCP times out"}), false).expect("valid");
        let at = DateTime::parse_from_rfc3339("2026-01-26T08:30:05Z").expect("time").with_timezone(&Utc);
        let run = RunId::new(12).expect("run id");
        assert_eq!(bundle_name(&config, run, at), "lb-4-156-121-111-tcp-times-out-run-12-20260126T083005Z");
        let named = config::parse(&serde_json::json!({"title": "x", "name": "lb-tcp"}), false).expect("valid");
        assert_eq!(bundle_name(&named, run, at), "lb-tcp-run-12-20260126T083005Z");
    }

    #[test]
    fn problems_point_at_what_was_written() {
        let node =
            runbook_engine::yaml::parse("title: t\nfiles:\n  a.yaml: { step: BAD }\nredact:\n  - ok\n  - \"(\"\n")
                .expect("yaml");
        let (position, field) = locate(&node, &["files".to_owned(), "a.yaml".to_owned(), "step".to_owned()]);
        assert_eq!((position.line, field.as_str()), (3, "files.a.yaml.step"));
        let (position, _) = locate(&node, &["redact[1]".to_owned()]);
        assert_eq!(position.line, 6);
    }
}
