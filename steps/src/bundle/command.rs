//! `runbook bundle RUN_ID [--out DIR] [--email]`: a bundle for a run that is
//! not executing, written with the configuration of the run's `bundle` step
//! when it has one, its events recorded on the run's stream (checked against the run).
//!
//! With `--email` and no `--out`, the last bundle the runs recorded is sent
//! when it is still on disk as recorded and was not emailed yet (the way to
//! send a bundle whose email failed); a bundle already emailed is not sent
//! again. Otherwise a new bundle is written first.

use chrono::Utc;
use runbook_engine::event::EventKind;
use runbook_engine::executor::RunEnvironment;
use runbook_engine::ids::RunId;
use runbook_engine::journal::Journal;
use runbook_engine::template::Templates;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use super::archive::Written;
use super::config::{BundleConfig, EmailOptions, Scope};
use super::redact::Redactor;
use super::report::RunTree;
use super::{Job, bundle_name, compose, email, out_dir, read_config, render, secret_values, write_or_reuse};

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct CommandOptions {
    pub run: RunId,
    /// Where to write a new bundle; relative to the caller's directory.
    pub out: Option<PathBuf>,
    pub email: bool,
}

/// What the command did: lines for stdout, and the error when the email failed (exit 1).
#[derive(Debug, Clone, Default)]
pub struct CommandOutcome {
    pub lines: Vec<String>,
    pub error: Option<String>,
}

/// Why the command did nothing.
#[derive(Debug, Clone)]
pub enum CommandError {
    /// The caller's mistake (unknown run, email asked for but not configured): exit 2.
    Usage(String),
    /// The run is executing: its executor records its events.
    Executing(String),
    Failed(String),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Usage(m) | CommandError::Executing(m) | CommandError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CommandError {}

/// Runs `runbook bundle`.
pub async fn run_command(
    journal: &Journal,
    environment: &RunEnvironment,
    options: CommandOptions,
    is_executing: &(dyn Fn(RunId) -> bool + Sync),
) -> Result<CommandOutcome, CommandError> {
    let run = options.run;
    if let Err(error) = journal.load(run) {
        return Err(match error {
            runbook_engine::error::EngineError::UnknownRun(_) => CommandError::Usage(error.to_string()),
            other => CommandError::Failed(other.to_string()),
        });
    }
    let var = |name: &str| environment.var(name);
    let working_dir =
        environment.dir.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_else(|| PathBuf::from("."));
    let given = RunTree::load(journal, run).map_err(CommandError::Failed)?;
    refuse_if_executing(&given, is_executing)?;

    let mut lines = Vec::new();
    let (config, scope_is_parent) = step_config(&given, &mut lines);
    let report_root = match (scope_is_parent, given.root_record().and_then(|r| r.state.parent.as_ref())) {
        (true, Some(parent)) => parent.run_id,
        _ => run,
    };
    let tree =
        if report_root == run { given } else { RunTree::load(journal, report_root).map_err(CommandError::Failed)? };
    refuse_if_executing(&tree, is_executing)?;

    let settings =
        if options.email { Some(email::required_settings(&var).map_err(CommandError::Usage)?) } else { None };
    let mut secrets = secret_values(&tree, &var).map_err(CommandError::Usage)?;
    secrets.extend(settings.as_ref().and_then(|s| s.password().map(str::to_owned)));
    let redactor = Redactor::new(&secrets, &config.redact).map_err(CommandError::Failed)?;
    let store_dir = runbook_engine::step::RunHistory::store_dir(journal);
    let email_options = config.email.clone().unwrap_or_default();

    // With --email and no --out: the last recorded bundle, if it is still there as recorded.
    let recorded = if options.email && options.out.is_none() { last_recorded_bundle(&tree) } else { None };
    if let Some(Recorded { written, sent: Some(message_id), .. }) = &recorded {
        lines.push(format!(
            "bundle {} was already emailed as {message_id}; nothing was sent (write and send a new bundle with --out DIR --email)",
            written.archive.display()
        ));
        return Ok(CommandOutcome { lines, error: None });
    }
    let created_at = Utc::now();
    let out = match &options.out {
        Some(out) if out.is_absolute() => out.clone(),
        Some(out) => working_dir.join(out),
        None => out_dir(&config, &store_dir, &working_dir),
    };
    let name = fresh_name(&out, &bundle_name(&config, report_root, created_at));
    let job = Job { config: config.clone(), tree, store_dir, working_dir, redactor, out_dir: out, name, created_at };
    let (holder, written) = match recorded {
        Some(recorded) => {
            lines.push(format!(
                "sending the bundle recorded by run {}: {}",
                recorded.holder,
                recorded.written.archive.display()
            ));
            (recorded.holder, recorded.written)
        }
        None => {
            let (written, _) = write_or_reuse(&job).map_err(CommandError::Failed)?;
            lines.push(format!("bundle written: {}", written.directory.display()));
            lines.push(format!(
                "archive: {} ({} bytes, sha256 {})",
                written.archive.display(),
                written.size,
                written.sha256
            ));
            lines.push(manifest_counts(&written));
            let event = EventKind::BundleCreated {
                step: None,
                directory: written.directory.display().to_string(),
                archive: written.archive.display().to_string(),
                sha256: written.sha256.clone(),
                size: written.size,
            };
            record(journal, run, vec![event]).await?;
            (run, written)
        }
    };
    let Some(settings) = &settings else { return Ok(CommandOutcome { lines, error: None }) };
    let outcome = send_and_record(journal, holder, &job, &written, &email_options, settings).await?;
    Ok(finish(lines, outcome))
}

/// A name no bundle in `out` has: a second `runbook bundle` within the same second gets `-2`.
fn fresh_name(out: &std::path::Path, name: &str) -> String {
    let taken = |candidate: &str| out.join(candidate).exists() || out.join(format!("{candidate}.zip")).exists();
    let mut candidate = name.to_owned();
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

fn finish(mut lines: Vec<String>, outcome: Result<String, String>) -> CommandOutcome {
    match outcome {
        Ok(line) => {
            lines.push(line);
            CommandOutcome { lines, error: None }
        }
        Err(error) => CommandOutcome { lines, error: Some(error) },
    }
}

fn refuse_if_executing(tree: &RunTree, is_executing: &(dyn Fn(RunId) -> bool + Sync)) -> Result<(), CommandError> {
    for record in &tree.runs {
        if is_executing(record.run_id) {
            return Err(CommandError::Executing(format!(
                "run {} is executing: its own `bundle` step records escalation events while it runs; wait for it to finish (or `runbook cancel {}`), then run `runbook bundle` again",
                record.run_id, tree.root
            )));
        }
    }
    Ok(())
}

/// The configuration of the first `bundle` step in the runs (rendered in its
/// run's context), and whether it reports on its parent run; a generic one
/// when there is none or it does not render.
fn step_config(tree: &RunTree, lines: &mut Vec<String>) -> (BundleConfig, bool) {
    let templates = Templates::new();
    for record in &tree.runs {
        let Some(spec) = record.state.workflow.steps.iter().find(|s| s.kind == "bundle") else { continue };
        let context = record.state.template_context();
        match render(&templates, &context, &spec.config).and_then(|rendered| read_config(&rendered)) {
            Ok(config) => {
                let parent = config.scope == Scope::Parent && record.run_id == tree.root;
                return (config, parent);
            }
            Err(error) => {
                lines.push(format!(
                    "note: step `{}` of run {} could not be rendered ({error}); the bundle has the runs' records only",
                    spec.id, record.run_id
                ));
                break;
            }
        }
    }
    let root = tree.root_record();
    let title = match root {
        Some(root) => {
            format!("Run {} of workflow {}: {}", root.run_id, root.state.workflow.name, root.state.status.as_str())
        }
        None => format!("Run {}", tree.root),
    };
    let mut config = BundleConfig::generic(title);
    config.name = root.map(|r| r.state.workflow.name.clone());
    (config, false)
}

struct Recorded {
    /// The run whose stream holds the `bundle_created`.
    holder: RunId,
    written: Written,
    /// The Message-ID, when it was emailed.
    sent: Option<String>,
}

/// The latest `bundle_created` of the runs whose archive is on disk with the recorded checksum.
fn last_recorded_bundle(tree: &RunTree) -> Option<Recorded> {
    let mut latest: Option<(chrono::DateTime<Utc>, RunId, &str, &str, &str)> = None;
    for record in &tree.runs {
        for (_, event) in &record.events {
            if let EventKind::BundleCreated { directory, archive, sha256, .. } = &event.kind
                && latest.as_ref().is_none_or(|(at, ..)| event.at >= *at)
            {
                latest = Some((event.at, record.run_id, directory, archive, sha256));
            }
        }
    }
    let (_, holder, directory, archive, recorded_sha) = latest?;
    // Checked right after reading: only the bundle that was recorded is sent.
    let bytes = std::fs::read(archive).ok()?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != recorded_sha {
        return None;
    }
    let sent = tree.runs.iter().flat_map(|r| r.events.iter()).find_map(|(_, e)| match &e.kind {
        EventKind::EmailSent { archive: a, message_id, .. } if a == archive => Some(message_id.clone()),
        _ => None,
    });
    Some(Recorded {
        holder,
        written: Written {
            directory: PathBuf::from(directory),
            archive: PathBuf::from(archive),
            sha256,
            size: bytes.len() as u64,
        },
        sent,
    })
}

fn manifest_counts(written: &Written) -> String {
    let manifest = std::fs::read(written.directory.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    format!(
        "{} files, {} redactions, {} left out over the size cap",
        manifest["files"].as_array().map_or(0, Vec::len) + 1,
        manifest["redactions"]["total"].as_u64().unwrap_or(0),
        manifest["left_out"].as_array().map_or(0, Vec::len)
    )
}

/// Emails the bundle and records what happened in `holder`'s stream.
async fn send_and_record(
    journal: &Journal,
    holder: RunId,
    job: &Job,
    written: &Written,
    options: &EmailOptions,
    settings: &email::SmtpSettings,
) -> Result<Result<String, String>, CommandError> {
    let outgoing = compose(job, written, options, &job.redactor).map_err(CommandError::Failed)?;
    let (failures, sent) =
        email::send_with_retries(settings, &outgoing, options.attempts, options.delay, &CancellationToken::new()).await;
    let last = failures.last().cloned();
    let mut events: Vec<EventKind> = failures
        .into_iter()
        .map(|error| EventKind::EmailFailed { step: None, error: job.redactor.redact_text(&error) })
        .collect();
    let outcome = if sent {
        events.push(EventKind::EmailSent {
            step: None,
            message_id: outgoing.message_id.clone(),
            to: settings.recipients(),
            archive: written.archive.display().to_string(),
            attached: outgoing.attachment.is_some(),
        });
        let how =
            if outgoing.attachment.is_some() { "attached" } else { "not attached (over the cap), its path given" };
        Ok(format!("email sent to {} as {} (bundle {how})", settings.recipients().join(", "), outgoing.message_id))
    } else {
        Err(format!(
            "the bundle is on disk at {}, but the email could not be sent ({})",
            written.archive.display(),
            job.redactor.redact_text(&last.unwrap_or_default())
        ))
    };
    record(journal, holder, events).await?;
    Ok(outcome)
}

/// Records events on a run's stream, checked against the run (`Journal::record`, which also
/// refreshes the run index).
async fn record(journal: &Journal, run: RunId, kinds: Vec<EventKind>) -> Result<(), CommandError> {
    if kinds.is_empty() {
        return Ok(());
    }
    journal.record(run, kinds).await.map_err(|e| CommandError::Failed(e.to_string()))?;
    Ok(())
}
