//! The `run` kind: a bash script, run as `bash -euo pipefail -c SCRIPT` in its
//! own process group so that a timeout or cancel stops everything it started.
//!
//! Values interpolated into the script are shell-quoted by the engine's shell
//! templates; stdout and stderr are captured (capped) into artifacts; the
//! step's `outputs` templates see `stdout` (trimmed), `json` (stdout parsed,
//! when it is JSON) and `exit_code`.

use async_trait::async_trait;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::{Node, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How long a step's processes get between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The `run` step kind.
pub struct RunKind;

#[async_trait]
impl StepKind for RunKind {
    fn name(&self) -> &'static str {
        "run"
    }

    fn output_locals(&self) -> &'static [&'static str] {
        &["stdout", "json", "exit_code"]
    }

    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        vec!["exit_code".to_owned()]
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        match &config.value {
            Value::String(script) if !script.trim().is_empty() => {}
            Value::String(_) => check.error(config.position, "", "the command is empty"),
            other => check.error(
                config.position,
                "",
                format!(
                    "expected a command (a string, quoted if it starts with a YAML symbol), found {}",
                    other.kind_name()
                ),
            ),
        }
        config.to_json()
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        let Some(template) = request.config.as_str() else {
            return StepResult::failed("the `run` configuration is not a string");
        };
        let script = match request.templates.render_shell(template, &request.context) {
            Ok(script) => script,
            Err(problem) => return StepResult::failed(format!("cannot render the command: {problem}")),
        };
        run_script(&script, &request).await
    }
}

async fn run_script(script: &str, request: &StepRequest) -> StepResult {
    let mut command = Command::new("bash");
    if let Some(vars) = &request.inherited_env {
        command.env_clear().envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(dir) = &request.working_dir {
        command.current_dir(dir);
    }
    command
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUNBOOK_RUN_ID", request.run_id.to_string())
        .env("RUNBOOK_STEP", request.step.as_str())
        .env("RUNBOOK_ATTEMPT", request.attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C at the terminal does not reach it, and
        // a timeout or cancel can signal the whole group, grandchildren included.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return StepResult::failed(format!("cannot start bash: {e}")),
    };
    let pid = child.id();
    let cap = request.artifacts.cap_bytes();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(capture(stdout, cap));
    let err_task = tokio::spawn(capture(stderr, cap));

    let cancelled = tokio::select! {
        status = child.wait() => Err(status),
        () = request.cancel.cancelled() => Ok(()),
    };
    let status = match cancelled {
        Err(status) => status,
        Ok(()) => {
            stop_group(pid, &mut child).await;
            child.wait().await
        }
    };
    // Grandchildren may still hold the pipes open; they share the group, so stop them too.
    if let Some(pid) = pid {
        let _ = signal_group(pid, rustix::process::Signal::KILL);
    }
    let (out, out_dropped) = out_task.await.unwrap_or_default();
    let (err, err_dropped) = err_task.await.unwrap_or_default();

    let mut artifacts = Vec::new();
    for (name, bytes, dropped) in [("stdout", &out, out_dropped), ("stderr", &err, err_dropped)] {
        match request.artifacts.write(name, bytes, dropped) {
            Ok(artifact) => artifacts.push(artifact),
            Err(e) => {
                return StepResult {
                    error: Some(format!("cannot keep the step's {name}: {e}")),
                    artifacts,
                    ..StepResult::default()
                };
            }
        }
    }
    if request.cancel.is_cancelled() {
        return StepResult { error: Some("stopped".to_owned()), artifacts, ..StepResult::default() };
    }
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return StepResult {
                error: Some(format!("cannot wait for bash: {e}")),
                artifacts,
                ..StepResult::default()
            };
        }
    };
    let exit_code = status.code();
    if !status.success() {
        let how = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended abnormally".to_owned(),
        };
        let masked_err = request.artifacts.masker().mask_bytes(&err);
        let last_line =
            String::from_utf8_lossy(&masked_err).lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned);
        let error = match last_line {
            Some(line) => format!("{how}: {}", truncate(line.trim(), 300)),
            None => how,
        };
        let mut values = serde_json::Map::new();
        if let Some(code) = exit_code {
            values.insert("exit_code".to_owned(), serde_json::Value::from(code));
        }
        return StepResult { values, error: Some(error), exit_code, artifacts, notes: Vec::new() };
    }
    let masked_out = request.artifacts.masker().mask_bytes(&out);
    let stdout_text = String::from_utf8_lossy(&masked_out).trim().to_owned();
    let mut values = serde_json::Map::new();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&stdout_text) {
        values.insert("json".to_owned(), json);
    }
    values.insert("stdout".to_owned(), serde_json::Value::String(stdout_text));
    values.insert("exit_code".to_owned(), serde_json::Value::from(exit_code.unwrap_or(0)));
    StepResult { values, error: None, exit_code, artifacts, notes: Vec::new() }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max_chars).collect();
    format!("{cut}…")
}

/// SIGTERM to the group, then SIGKILL after the grace period if bash is still there.
async fn stop_group(pid: Option<u32>, child: &mut tokio::process::Child) {
    let Some(pid) = pid else { return };
    let _ = signal_group(pid, rustix::process::Signal::TERM);
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        let _ = signal_group(pid, rustix::process::Signal::KILL);
    }
}

fn signal_group(pid: u32, signal: rustix::process::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw);
    match pid {
        Some(pid) => rustix::process::kill_process_group(pid, signal).map_err(std::io::Error::from),
        None => Ok(()),
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes and counting the rest.
async fn capture<R: AsyncRead + Unpin>(stream: Option<R>, cap: usize) -> (Vec<u8>, u64) {
    let Some(mut stream) = stream else { return (Vec::new(), 0) };
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                let keep = n.min(room);
                kept.extend_from_slice(&buffer[..keep]);
                dropped += (n - keep) as u64;
            }
        }
    }
    (kept, dropped)
}
