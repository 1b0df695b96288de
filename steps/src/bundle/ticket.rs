//! An Azure support ticket for the bundle: `az support in-subscription
//! tickets create` with the parameters the support extension takes, or on a
//! dry run the command line it would run.

use runbook_engine::template::shell_quote;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::config::{BundleConfig, TicketOptions};
use super::report::since_text;

/// How long `az` may take to open a ticket.
const AZ_TIMEOUT: Duration = Duration::from_secs(180);

/// The `az` arguments (without `az`) for a ticket about a bundle.
pub fn arguments(config: &BundleConfig, ticket: &TicketOptions, bundle_name: &str, description: &str) -> Vec<String> {
    let mut args: Vec<String> = ["support", "in-subscription", "tickets", "create"].map(str::to_owned).to_vec();
    let mut push = |flag: &str, value: &str| {
        args.push(flag.to_owned());
        args.push(value.to_owned());
    };
    let name = ticket.name.clone().unwrap_or_else(|| bundle_name.to_owned());
    push("--ticket-name", &name);
    push("--title", ticket.title.as_deref().unwrap_or(&config.title));
    push("--description", description);
    if let Some(classification) = &ticket.problem_classification {
        push("--problem-classification", classification);
    }
    if let Some(severity) = &ticket.severity {
        push("--severity", severity.trim());
    }
    let start = ticket.start_time.as_deref().or(config.summary.since.as_deref()).map(since_text);
    if let Some(start) = start.filter(|s| s.ends_with('Z')) {
        push("--start-time", &start);
    }
    if let Some(resource) = &ticket.technical_resource {
        push("--technical-resource", resource);
    }
    if let Some(consent) = ticket.diagnostic_consent {
        push("--diagnostic-consent", if consent { "Yes" } else { "No" });
    }
    if let Some(always) = ticket.require_24x7 {
        push("--require-24-by-7-response", if always { "true" } else { "false" });
    }
    let contact = &ticket.contact;
    let method = contact.method.as_deref().unwrap_or("email").trim().to_owned();
    for (flag, value) in [
        ("--contact-first-name", &contact.first_name),
        ("--contact-last-name", &contact.last_name),
        ("--contact-method", &Some(method)),
        ("--contact-email", &contact.email),
        ("--contact-phone-number", &contact.phone),
        ("--contact-timezone", &contact.timezone),
        ("--contact-country", &contact.country),
        ("--contact-language", &contact.language),
    ] {
        if let Some(value) = value {
            push(flag, value);
        }
    }
    if !contact.additional_emails.is_empty() {
        args.push("--contact-additional-emails".to_owned());
        args.extend(contact.additional_emails.iter().cloned());
    }
    args.push("-o".to_owned());
    args.push("json".to_owned());
    args
}

/// The command line as a shell would take it.
pub fn command_line(args: &[String]) -> String {
    std::iter::once("az".to_owned()).chain(args.iter().map(|a| shell_quote(a))).collect::<Vec<_>>().join(" ")
}

/// The ticket's description: the summary's key facts, as text.
pub fn description(config: &BundleConfig, bundle_name: &str, sha256: &str) -> String {
    let mut text = String::new();
    text.push_str(config.title.trim());
    text.push_str("\n\n");
    for (label, value) in [
        ("Symptom", &config.summary.symptom),
        ("Impact", &config.summary.impact),
        ("Since (UTC)", &config.summary.since.as_deref().map(since_text)),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("{label}: {}\n", value.trim()));
        }
    }
    for (label, value) in &config.facts {
        text.push_str(&format!("{label}: {value}\n"));
    }
    if let Some(question) = &config.question {
        text.push_str(&format!("\nQuestion: {}\n", question.trim()));
    }
    text.push_str(&format!("\nDiagnostics bundle: {bundle_name}.zip (sha256 {sha256}), available on request.\n"));
    text
}

/// Runs `az` and returns the ticket id it reports.
pub async fn create(
    args: &[String],
    env: Option<Arc<Vec<(String, String)>>>,
    dir: Option<PathBuf>,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let mut command = tokio::process::Command::new("az");
    if let Some(vars) = &env {
        command.env_clear().envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(dir) = &dir {
        command.current_dir(dir);
    }
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = command.spawn().map_err(|e| format!("cannot start az: {e}"))?;
    let output = tokio::select! {
        output = child.wait_with_output() => output.map_err(|e| format!("cannot wait for az: {e}"))?,
        () = tokio::time::sleep(AZ_TIMEOUT) => return Err(format!("az support tickets create took longer than {}s", AZ_TIMEOUT.as_secs())),
        () = cancel.cancelled() => return Err("stopped before the support ticket was created".to_owned()),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_owned();
        return Err(format!("az support tickets create failed ({}): {last}", output.status));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("az support tickets create printed no JSON: {e}"))?;
    json.get("supportTicketId")
        .or_else(|| json.get("name"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "az support tickets create printed no supportTicketId".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::config::{Contact, parse};

    #[test]
    fn the_command_carries_the_extensions_parameters() {
        let config = parse(&serde_json::json!({"title": "LB 1.2.3.4: ping ok, TCP times out", "summary": {"since": "2026-01-26T08:00:00Z"}}), false)
            .expect("valid");
        let ticket = TicketOptions {
            create: true,
            dry_run: true,
            severity: Some("moderate".to_owned()),
            problem_classification: Some("/providers/Microsoft.Support/services/s/problemClassifications/p".to_owned()),
            diagnostic_consent: Some(true),
            contact: Contact {
                first_name: Some("Ada".to_owned()),
                last_name: Some("Ops".to_owned()),
                email: Some("oncall@example.com".to_owned()),
                additional_emails: vec!["a@example.com".to_owned(), "b@example.com".to_owned()],
                timezone: Some("W. Europe Standard Time".to_owned()),
                country: Some("DEU".to_owned()),
                language: Some("en-us".to_owned()),
                ..Contact::default()
            },
            ..TicketOptions::default()
        };
        let args = arguments(&config, &ticket, "lb-run-1-20260126T080000Z", "desc");
        let line = command_line(&args);
        assert!(
            line.starts_with("az support in-subscription tickets create --ticket-name lb-run-1-20260126T080000Z"),
            "{line}"
        );
        for part in [
            "--severity moderate",
            "--start-time 2026-01-26T08:00:00Z",
            "--diagnostic-consent Yes",
            "--contact-method email",
            "--contact-timezone 'W. Europe Standard Time'",
            "--contact-additional-emails a@example.com b@example.com",
            "-o json",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }
}
