//! Emailing a bundle with lettre over async SMTP (rustls with ring): the
//! settings from the environment or a config file, the message (plain text
//! and HTML with the key facts, the archive attached unless too large), and
//! sending with retries.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two tries.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The settings' names, in the environment and in the config file.
pub const URL: &str = "RUNBOOK_SMTP_URL";
pub const USER: &str = "RUNBOOK_SMTP_USER";
pub const PASSWORD: &str = "RUNBOOK_SMTP_PASSWORD";
pub const FROM: &str = "RUNBOOK_MAIL_FROM";
pub const TO: &str = "RUNBOOK_MAIL_TO";
/// Names the config file; by default `$XDG_CONFIG_HOME/runbook/config`, else `~/.config/runbook/config`.
pub const CONFIG: &str = "RUNBOOK_CONFIG";

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: no TLS (loopback relays and tests).
    Plain,
    /// `smtp://...?tls=required`: STARTTLS, never falling back to plain text.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

/// Validated SMTP settings.
#[derive(Clone)]
pub struct SmtpSettings {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    password: Option<String>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// Where the settings were read from, for messages.
    pub origin: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SmtpSettings {
    /// The password, for the redactor: it must never appear in a bundle or an email.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().map(|m| m.email.to_string()).collect()
    }
}

/// Reads the settings: each key from the environment, else from the config
/// file. `Ok(None)` when no SMTP URL is set anywhere; every problem at once otherwise.
pub fn settings(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<SmtpSettings>, String> {
    let (file_path, file) = config_file(var)?;
    let lookup = |name: &str| -> Option<(String, String)> {
        if let Some(value) = var(name).filter(|v| !v.trim().is_empty()) {
            return Some((value, "the environment".to_owned()));
        }
        file.iter().find(|(k, _)| k == name).map(|(_, v)| (v.clone(), file_path_text(&file_path)))
    };
    let Some((url, url_origin)) = lookup(URL) else { return Ok(None) };
    let mut problems = Vec::new();
    let parsed = parse_url(&url).map_err(|m| problems.push(format!("{URL} (from {url_origin}): {m}"))).ok();
    let user = lookup(USER).map(|(v, _)| v);
    let password = lookup(PASSWORD);
    if let Some((_, origin)) = &password
        && origin != "the environment"
        && let Some(path) = &file_path
    {
        check_private(path, &mut problems);
    }
    let password = password.map(|(v, _)| v);
    match (&user, &password) {
        (Some(_), None) => problems.push(format!("{USER} is set but {PASSWORD} is not: set both, or neither")),
        (None, Some(_)) => problems.push(format!("{PASSWORD} is set but {USER} is not: set both, or neither")),
        _ => {}
    }
    if let Some((security, host, _)) = &parsed
        && *security == Security::Plain
        && password.is_some()
        && !is_loopback(host)
    {
        problems.push(format!(
            "{URL} is a plain smtp:// URL to {host}: the password would cross the network unencrypted; use smtps://{host}:465 or smtp://{host}:587?tls=required"
        ));
    }
    let from = match lookup(FROM) {
        Some((text, _)) => match text.trim().parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(e) => {
                problems.push(format!("{FROM} `{text}` is not an email address: {e}"));
                None
            }
        },
        None => {
            problems.push(format!("{FROM} is not set: the sender address, like runbook@example.com"));
            None
        }
    };
    let mut to = Vec::new();
    match lookup(TO) {
        Some((text, _)) => {
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<Mailbox>() {
                    Ok(mailbox) => to.push(mailbox),
                    Err(e) => problems.push(format!("{TO}: `{part}` is not an email address: {e}")),
                }
            }
            if to.is_empty() && problems.is_empty() {
                problems.push(format!("{TO} names no address: give a comma-separated list"));
            }
        }
        None => problems.push(format!("{TO} is not set: the recipients, comma-separated")),
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let (Some((security, host, port)), Some(from)) = (parsed, from) else {
        return Err(format!("{URL} or {FROM} could not be read"));
    };
    Ok(Some(SmtpSettings { security, host, port, user, password, from, to, origin: url_origin }))
}

/// Settings that must be there: `email` was asked for.
pub fn required_settings(var: &dyn Fn(&str) -> Option<String>) -> Result<SmtpSettings, String> {
    match settings(var)? {
        Some(settings) => Ok(settings),
        None => {
            let (path, _) = config_file(var)?;
            Err(format!(
                "email was asked for but {URL} is not set, in the environment or in {}: set {URL}, {FROM} and {TO} (see docs/operations.md, Email (SMTP))",
                file_path_text(&path)
            ))
        }
    }
}

fn file_path_text(path: &Option<PathBuf>) -> String {
    path.as_ref().map_or_else(|| "the config file (no HOME to find it)".to_owned(), |p| p.display().to_string())
}

/// The config file's path and its `KEY=VALUE` lines (none when it does not exist).
/// The config file's path (when there is a place for one) and its entries.
type ConfigFile = (Option<PathBuf>, Vec<(String, String)>);

fn config_file(var: &dyn Fn(&str) -> Option<String>) -> Result<ConfigFile, String> {
    let explicit = var(CONFIG).filter(|v| !v.is_empty()).map(PathBuf::from);
    let path = explicit.clone().or_else(|| {
        var("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(|d| PathBuf::from(d).join("runbook/config"))
            .or_else(|| var("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config/runbook/config")))
    });
    let Some(path) = path else { return Ok((None, Vec::new())) };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok((Some(path), Vec::new()));
        }
        Err(e) => return Err(format!("cannot read the config file {} ({CONFIG}): {e}", path.display())),
    };
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{}:{}: expected KEY=VALUE", path.display(), i + 1));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        entries.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok((Some(path), entries))
}

/// A config file that holds the password must be readable by its owner only.
fn check_private(path: &std::path::Path, problems: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        problems.push(format!(
            "{} holds {PASSWORD} but others may read it (mode {:o}): run chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        ));
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `smtp://HOST[:PORT]`, `smtp://HOST[:PORT]?tls=required`, `smtps://HOST[:PORT]`.
pub fn parse_url(url: &str) -> Result<(Security, String, u16), String> {
    let usage = "use smtp://HOST:PORT, smtp://HOST:587?tls=required (STARTTLS) or smtps://HOST:465";
    let (scheme, rest) = url.trim().split_once("://").ok_or_else(|| format!("`{url}` is not a URL: {usage}"))?;
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let authority = authority.trim_end_matches('/');
    if authority.contains('@') {
        return Err(format!("put the user and password in {USER} and {PASSWORD}, not in the URL"));
    }
    if authority.contains('/') {
        return Err(format!("`{url}` has a path; {usage}"));
    }
    let tls = match query {
        None | Some("") => None,
        Some(query) => match query.split('&').map(|p| p.split_once('=')).collect::<Vec<_>>().as_slice() {
            [Some(("tls", value))] => Some(*value),
            _ => return Err(format!("`{query}` is not an option: the only one is tls=required")),
        },
    };
    let security = match (scheme, tls) {
        ("smtp", None) => Security::Plain,
        ("smtp", Some("required")) => Security::StartTls,
        ("smtp", Some("opportunistic")) => {
            return Err(
                "tls=opportunistic falls back to plain text when an attacker asks it to; use tls=required".to_owned()
            );
        }
        ("smtps", None) => Security::Tls,
        ("smtps", Some(_)) => return Err("smtps:// is TLS already; drop the tls option".to_owned()),
        (_, Some(other)) => return Err(format!("tls={other} is not an option: the only one is tls=required")),
        (other, None) => return Err(format!("`{other}://` is not an SMTP scheme: {usage}")),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port number"))?;
            (host, Some(port))
        }
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{url}` names no host: {usage}"));
    }
    let default_port = match security {
        Security::Plain => 25,
        Security::StartTls => 587,
        Security::Tls => 465,
    };
    Ok((security, host.to_owned(), port.unwrap_or(default_port)))
}

/// What the email says and carries.
pub struct Outgoing {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The archive's file name and bytes, when it is attached.
    pub attachment: Option<(String, Vec<u8>)>,
    pub message_id: String,
}

/// The Message-ID of a bundle's email: the same bundle always gets the same one,
/// so that a receiving system can tell a resend from a new message.
pub fn message_id(run: u64, sha256: &str) -> String {
    format!("<run-{run}.bundle-{}@runbook>", &sha256[..sha256.len().min(16)])
}

fn build(settings: &SmtpSettings, outgoing: &Outgoing) -> Result<Message, String> {
    let mut builder = Message::builder()
        .message_id(Some(outgoing.message_id.clone()))
        .from(settings.from.clone())
        .subject(outgoing.subject.clone())
        .user_agent(format!("runbook {}", env!("CARGO_PKG_VERSION")));
    for to in &settings.to {
        builder = builder.to(to.clone());
    }
    let body = MultiPart::alternative_plain_html(outgoing.text.clone(), outgoing.html.clone());
    let message = match &outgoing.attachment {
        Some((name, bytes)) => {
            let content_type =
                ContentType::parse("application/zip").map_err(|e| format!("cannot name the attachment's type: {e}"))?;
            let attachment: SinglePart = Attachment::new(name.clone()).body(bytes.clone(), content_type);
            builder.multipart(MultiPart::mixed().multipart(body).singlepart(attachment))
        }
        None => builder.multipart(body),
    };
    message.map_err(|e| format!("cannot build the email: {e}"))
}

/// Sends once; the error names the server.
pub async fn send_once(settings: &SmtpSettings, outgoing: &Outgoing) -> Result<(), String> {
    // One provider for every rustls user of the process; an Err means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let message = build(settings, outgoing)?;
    let server = format!("{}:{}", settings.host, settings.port);
    let builder = match settings.security {
        Security::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str()),
        Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
            .map_err(|e| format!("cannot set up STARTTLS to {server}: {e}"))?,
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
            .map_err(|e| format!("cannot set up TLS to {server}: {e}"))?,
    };
    let mut builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport: AsyncSmtpTransport<Tokio1Executor> = builder.build();
    transport.send(message).await.map(drop).map_err(|e| format!("smtp server {server}: {}", error_text(&e)))
}

fn error_text(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Sends with up to `attempts` tries, waiting `delay` after the first failure
/// and twice as long after each next one. Returns the error of every failed
/// try, and whether one succeeded. Stops early when `cancel` fires.
pub async fn send_with_retries(
    settings: &SmtpSettings,
    outgoing: &Outgoing,
    attempts: u32,
    delay: Duration,
    cancel: &CancellationToken,
) -> (Vec<String>, bool) {
    let mut failures = Vec::new();
    let mut wait = delay;
    for attempt in 1..=attempts.max(1) {
        match send_once(settings, outgoing).await {
            Ok(()) => return (failures, true),
            Err(error) => failures.push(format!("try {attempt} of {attempts}: {error}")),
        }
        if attempt < attempts {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => {
                    failures.push("stopped before the next try".to_owned());
                    return (failures, false);
                }
            }
            wait = (wait * 2).min(MAX_DELAY);
        }
    }
    (failures, false)
}

/// Text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("smtp://127.0.0.1:2525"), Ok((Security::Plain, "127.0.0.1".to_owned(), 2525)));
        assert_eq!(
            parse_url("smtp://mail.example.com?tls=required"),
            Ok((Security::StartTls, "mail.example.com".to_owned(), 587))
        );
        assert_eq!(parse_url("smtps://mail.example.com"), Ok((Security::Tls, "mail.example.com".to_owned(), 465)));
        assert_eq!(parse_url("smtp://[::1]:25"), Ok((Security::Plain, "::1".to_owned(), 25)));
        for bad in [
            "mail.example.com",
            "http://x",
            "smtp://u:p@x",
            "smtp://x?tls=opportunistic",
            "smtp://x:port",
            "smtp://",
            "smtp://x/path",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked_all_at_once() {
        let none = vars(&[("HOME", "/nonexistent")]);
        assert!(settings(&none).expect("no error").is_none());
        assert!(required_settings(&none).expect_err("required").contains("RUNBOOK_SMTP_URL is not set"));
        let ok = vars(&[
            (URL, "smtp://127.0.0.1:2525"),
            (FROM, "runbook@example.com"),
            (TO, "a@example.com, b@example.com"),
            ("HOME", "/nonexistent"),
        ]);
        let s = settings(&ok).expect("valid").expect("set");
        assert_eq!(s.recipients(), ["a@example.com", "b@example.com"]);
        let bad = vars(&[
            (URL, "smtp://mail.example.com"),
            (USER, "u"),
            (PASSWORD, "p"),
            (TO, "nobody"),
            ("HOME", "/nonexistent"),
        ]);
        let error = settings(&bad).expect_err("invalid");
        assert!(error.contains("unencrypted"), "{error}");
        assert!(error.contains("RUNBOOK_MAIL_FROM is not set"), "{error}");
        assert!(error.contains("`nobody` is not an email address"), "{error}");
    }

    #[test]
    fn settings_come_from_a_private_config_file_too() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("config");
        std::fs::write(&path, "# smtp\nRUNBOOK_SMTP_URL=smtps://mail.example.com\nRUNBOOK_SMTP_USER=u\nRUNBOOK_SMTP_PASSWORD='p w'\nRUNBOOK_MAIL_FROM=r@example.com\nexport RUNBOOK_MAIL_TO=\"a@example.com\"\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let env = vars(&[(CONFIG, path.to_str().expect("utf-8"))]);
        assert!(settings(&env).expect_err("readable by others").contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let s = settings(&env).expect("valid").expect("set");
        assert_eq!((s.security, s.port, s.password()), (Security::Tls, 465, Some("p w")));
        assert!(!format!("{s:?}").contains("p w"));
    }

    #[test]
    fn message_ids_name_the_run_and_the_bundle() {
        assert_eq!(message_id(12, "0123456789abcdef0123"), "<run-12.bundle-0123456789abcdef@runbook>");
        assert_eq!(escape_html("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
